/**
 * CPU by process, read from /proc (Linux; elsewhere every figure but this process's is null), for the
 * bench runners' "CPU per alert by process" tables:
 *
 * - service: this Node process (API + worker + PGlite, and the bench's own sender and receiver when
 *   they run in it: the receiver always, the sender in every runner but bench/watch-intake.ts, whose
 *   sender is a child by default; the no-Temporal baseline in bench/latency.ts shows what a sender +
 *   receiver of the same traffic costs alone);
 * - renderers: the template renderer child processes (runtime/template-sandbox.ts forks
 *   `template-renderer.ts`), the living ones plus any that exited and were reaped meanwhile (this
 *   process's cutime + cstime, which grows only when a child is reaped);
 * - devServer: the embedded Temporal dev server (`temporal server start-dev`, a direct child);
 * - sender: the bench's open-loop sender when it runs as a child (bench/lib/sender.ts), apart from
 *   the service as MeshHook is;
 * - otherChildren: any other direct child (tsx's esbuild service, when a transform was not cached);
 * - machine: every CPU of the host, busy (not idle, not iowait) core-seconds from /proc/stat: other
 *   processes on the host count here too.
 *
 * Only processes that are children of this one are seen: an external Temporal server (TEMPORAL_ADDRESS)
 * is not, and its figure is null.
 */
import fs from 'node:fs';
import os from 'node:os';
import { procStatFields } from '../../runtime/host';

const CLK_TCK = 100; // Linux USER_HZ

export interface CpuSnapshot {
  atMs: number;
  /** this process, user + system seconds */
  service: number;
  renderers: number | null;
  devServer: number | null;
  sender: number | null;
  otherChildren: number | null;
  /** busy core-seconds of the whole host */
  machineBusy: number | null;
  /** renderer pids seen (living) */
  rendererPids: number[];
}


function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

export type ChildKind = 'renderer' | 'devServer' | 'sender' | 'other';

/** Direct children of this process and what each is; undefined off Linux. */
export function children(): { pid: number; kind: ChildKind }[] | undefined {
  if (process.platform !== 'linux') return undefined;
  const out: { pid: number; kind: ChildKind }[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const fields = procStatFields(pid);
    if (!fields || Number(fields[1]) !== process.pid) continue;
    const args = cmdline(pid);
    const kind: ChildKind = args.includes('start-dev')
      ? 'devServer'
      : args.some((a) => a.includes('template-renderer'))
        ? 'renderer'
        : args.some((a) => a.includes('sender-child'))
          ? 'sender'
          : 'other';
    out.push({ pid, kind });
  }
  return out;
}

function machineBusySeconds(): number | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - v[3] - v[4]) / CLK_TCK;
  } catch {
    return null;
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const usage = process.cpuUsage();
  const snap: CpuSnapshot = {
    atMs: Date.now(),
    service: (usage.user + usage.system) / 1e6,
    renderers: null,
    devServer: null,
    sender: null,
    otherChildren: null,
    machineBusy: machineBusySeconds(),
    rendererPids: [],
  };
  const kids = children();
  if (!kids) return snap;
  const self = procStatFields('self');
  // reaped children: only renderers exit while the service runs (a renderer is replaced after a crash or a timeout)
  snap.renderers = self ? (Number(self[13]) + Number(self[14])) / CLK_TCK : 0;
  snap.devServer = 0;
  // null (a '-' in the tables) when the sender runs in this process, counted in `service`
  snap.sender = kids.some((k) => k.kind === 'sender') ? 0 : null;
  snap.otherChildren = 0;
  for (const { pid, kind } of kids) {
    const f = procStatFields(pid);
    if (!f) continue;
    const s = (Number(f[11]) + Number(f[12])) / CLK_TCK;
    if (kind === 'renderer') {
      snap.renderers += s;
      snap.rendererPids.push(pid);
    } else if (kind === 'devServer') snap.devServer += s;
    else if (kind === 'sender') snap.sender = (snap.sender ?? 0) + s;
    else snap.otherChildren += s;
  }
  return snap;
}

export interface CpuWindow {
  wallSeconds: number;
  /** CPU seconds spent in the window, by process */
  seconds: { service: number; renderers: number | null; devServer: number | null; sender: number | null; otherChildren: number | null; total: number; machineBusy: number | null };
  /** percent of one core, by process; machineBusyPercent: of all the host's cores */
  corePercent: { service: number; renderers: number | null; devServer: number | null; sender: number | null; otherChildren: number | null; total: number };
  machineBusyPercent: number | null;
  cores: number;
  renderersSeen: number;
}

const r2 = (n: number) => Math.round(n * 100) / 100;
const r1 = (n: number) => Math.round(n * 10) / 10;
const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);

/** What each process spent between two snapshots. */
export function cpuWindow(a: CpuSnapshot, b: CpuSnapshot): CpuWindow {
  const wall = Math.max(0.001, (b.atMs - a.atMs) / 1000);
  const service = b.service - a.service;
  const renderers = diff(a.renderers, b.renderers);
  const devServer = diff(a.devServer, b.devServer);
  const sender = diff(a.sender, b.sender);
  const otherChildren = diff(a.otherChildren, b.otherChildren);
  const total = service + (renderers ?? 0) + (devServer ?? 0) + (sender ?? 0) + (otherChildren ?? 0);
  const machineBusy = diff(a.machineBusy, b.machineBusy);
  const cores = os.cpus().length || 1;
  const pct = (s: number | null) => (s === null ? null : r1((s / wall) * 100));
  return {
    wallSeconds: r2(wall),
    seconds: { service: r2(service), renderers: renderers === null ? null : r2(renderers), devServer: devServer === null ? null : r2(devServer), sender: sender === null ? null : r2(sender), otherChildren: otherChildren === null ? null : r2(otherChildren), total: r2(total), machineBusy: machineBusy === null ? null : r2(machineBusy) },
    corePercent: { service: pct(service)!, renderers: pct(renderers), devServer: pct(devServer), sender: pct(sender), otherChildren: pct(otherChildren), total: pct(total)! },
    machineBusyPercent: machineBusy === null ? null : r1((machineBusy / wall / cores) * 100),
    cores,
    renderersSeen: new Set([...a.rendererPids, ...b.rendererPids]).size,
  };
}

/** CPU milliseconds per unit (alert, event, run) by process. */
export function perUnitMs(w: CpuWindow, units: number): { service: number | null; renderers: number | null; devServer: number | null; sender: number | null; otherChildren: number | null; total: number | null; machineBusy: number | null } {
  const per = (s: number | null) => (s === null || units <= 0 ? null : r2((s * 1000) / units));
  return { service: per(w.seconds.service), renderers: per(w.seconds.renderers), devServer: per(w.seconds.devServer), sender: per(w.seconds.sender), otherChildren: per(w.seconds.otherChildren), total: per(w.seconds.total), machineBusy: per(w.seconds.machineBusy) };
}

/** One line of a "CPU by process" table: ms per unit (and % of a core) for each process. */
export function cpuRow(label: string, w: CpuWindow, units: number): string {
  const p = perUnitMs(w, units);
  const cell = (ms: number | null, pct: number | null) => (ms === null ? '-'.padStart(16) : `${ms.toFixed(2)} (${pct ?? '-'}%)`.padStart(16));
  return (
    `${label.padEnd(34)} ${String(units).padStart(6)} ${cell(p.service, w.corePercent.service)} ${cell(p.renderers, w.corePercent.renderers)} ` +
    `${cell(p.devServer, w.corePercent.devServer)} ${cell(p.sender, w.corePercent.sender)} ${cell(p.total, w.corePercent.total)} ${(w.machineBusyPercent === null ? '-' : `${w.machineBusyPercent}%`).padStart(8)}`
  );
}

export const cpuHeader = (unit: string) =>
  `CPU ms per ${unit} (% of a core)`.padEnd(34) +
  ` ${'n'.padStart(6)} ${'service proc'.padStart(16)} ${'renderers'.padStart(16)} ${'dev server'.padStart(16)} ${'sender'.padStart(16)} ${'total'.padStart(16)} ${'machine'.padStart(8)}`;
