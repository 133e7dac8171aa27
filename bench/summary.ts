/**
 * The last step of `npm run bench`: one table of what its three phases measured (bench/latency.ts,
 * bench/watch-intake.ts, bench/burst.ts), CPU per alert by process with the no-Temporal baseline
 * beside them, read from their results files. Printed and written to
 * bench/results/bench-summary-<timestamp>.{json,md}.
 *
 * It takes the newest results file of each phase; one written more than SAME_RUN_MS before the
 * newest of the three is from an earlier run (a phase skipped with BENCH_WATCHES=0 or BENCH_BURST=0)
 * and is left out, and said so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { markdownTable, resultPaths, textTable } from './lib/runs';

const RESULTS = path.join(__dirname, 'results');
/** one `npm run bench` takes about 5 minutes with its defaults */
const SAME_RUN_MS = 30 * 60_000;

interface Cpu {
  service: number;
  renderers: number;
  devServer: number;
  sender: number | null;
  total: number;
}
interface Latency {
  at: string;
  settings: { rate: number; seconds: number };
  latencyMs: { sendToReceived: { p50: number; p99: number }; sendToAccepted: { p99: number } };
  counts: { sent: number; delivered: number; lost: number; duplicates: number };
  cpuByProcess: { perAlertMs: Cpu; machineBusyPercent?: number; window?: { machineBusyPercent: number } };
  memory: { peakRssMiB: number };
  baseline?: { sent: number; sendToReceived: { p50: number; p99: number }; cpuByProcess: { perMessageMs: Cpu; window: { machineBusyPercent: number } } };
}
interface WatchIntake {
  at: string;
  phases: { rate: number; runs: number; saturated: boolean; accepted: { all: { p99: number } }; cpu: { machineBusyPercent: number }; cpuPerRunMs: Cpu }[];
}
interface Burst {
  at: string;
  ungrouped: {
    mode: string;
    requests: number;
    eventsPerRequest: number;
    accepted202PerRequest: { max: number };
    lastAlertMs: number;
    lost: number;
    duplicates: number;
    cpu: { machineBusyPercent: number };
    cpuPerEventMs: Cpu;
  }[];
}

function newest<T extends { at: string }>(kind: string): { file: string; results: T } | undefined {
  const pattern = new RegExp(`^${kind}-\\d{4}-\\d{2}-\\d{2}T[\\d-]+Z\\.json$`);
  const files = fs.existsSync(RESULTS) ? fs.readdirSync(RESULTS).filter((f) => pattern.test(f)).sort() : [];
  const file = files.at(-1);
  return file ? { file, results: JSON.parse(fs.readFileSync(path.join(RESULTS, file), 'utf8')) as T } : undefined;
}

const ms = (n: number | null | undefined) => (n === null || n === undefined ? '-' : n.toFixed(2));
const cpuCells = (c: Cpu) => [ms(c.service), ms(c.renderers), ms(c.devServer), ms(c.sender), ms(c.total)];

function main(): void {
  const found = { latency: newest<Latency>('latency'), watches: newest<WatchIntake>('watch-intake'), burst: newest<Burst>('burst') };
  const times = Object.values(found).flatMap((f) => (f ? [Date.parse(f.results.at)] : []));
  if (times.length === 0) {
    console.error(`[bench:summary] no results of bench/latency.ts, bench/watch-intake.ts or bench/burst.ts in ${RESULTS}: run npm run bench`);
    process.exit(1);
  }
  const latest = Math.max(...times);
  const left: string[] = [];
  const take = <T extends { at: string }>(name: string, f: { file: string; results: T } | undefined) => {
    if (f && latest - Date.parse(f.results.at) <= SAME_RUN_MS) return f;
    left.push(f ? `${name}: its newest results (${f.file}) are from an earlier run` : `${name}: no results`);
    return undefined;
  };
  const latency = take('latency', found.latency);
  const watches = take('watch intake', found.watches);
  const burst = take('burst', found.burst);

  const header = ['measured', 'n', 'figure', 'machine', 'service proc', 'renderers', 'dev server', 'sender', 'total'];
  const rows: (string | number)[][] = [];
  if (latency) {
    const r = latency.results;
    const busy = r.cpuByProcess.window?.machineBusyPercent ?? r.cpuByProcess.machineBusyPercent;
    rows.push([
      `alerts, ${r.settings.rate}/s for ${r.settings.seconds} s (per alert)`,
      r.counts.delivered,
      `send→webhook p50 ${r.latencyMs.sendToReceived.p50} / p99 ${r.latencyMs.sendToReceived.p99} ms; 202 p99 ${r.latencyMs.sendToAccepted.p99} ms; not delivered within the grace ${r.counts.lost}, dup ${r.counts.duplicates}; peak RSS ${r.memory.peakRssMiB} MiB`,
      busy === undefined ? '-' : `${busy}%`,
      ...cpuCells(r.cpuByProcess.perAlertMs),
    ]);
    if (r.baseline) {
      const b = r.baseline;
      rows.push([
        `baseline, no Temporal, ${r.settings.rate}/s (per message)`,
        b.sent,
        `send→received p50 ${b.sendToReceived.p50} / p99 ${b.sendToReceived.p99} ms`,
        `${b.cpuByProcess.window.machineBusyPercent}%`,
        ...cpuCells(b.cpuByProcess.perMessageMs),
      ]);
    }
  }
  for (const p of watches?.results.phases ?? []) {
    rows.push([
      `watched runs, ${p.rate}/s (per run)`,
      p.runs,
      `202 p99 ${p.accepted.all.p99} ms${p.saturated ? ', saturated' : ''}`,
      `${p.cpu.machineBusyPercent}%`,
      ...cpuCells(p.cpuPerRunMs),
    ]);
  }
  for (const u of burst?.results.ungrouped ?? []) {
    rows.push([
      `burst of ${u.requests * u.eventsPerRequest}, ${u.eventsPerRequest === 1 ? 'one event a request' : `${u.eventsPerRequest} a request`} (per event)`,
      u.requests * u.eventsPerRequest,
      `202 max ${u.accepted202PerRequest.max} ms, last alert ${u.lastAlertMs} ms; lost ${u.lost}, dup ${u.duplicates}`,
      `${u.cpu.machineBusyPercent}%`,
      ...cpuCells(u.cpuPerEventMs),
    ]);
  }
  const sources = [latency, watches, burst].flatMap((f) => (f ? [f.file] : []));
  const at = new Date().toISOString();
  const note = 'CPU in ms (per alert, per message, per run or per event, as the row says) by process; service proc = the one Node process (API, worker, PGlite; in the latency and burst phases also the bench sender and receiver), sender = the watch intake sender, a process of its own';
  console.log(`\nnpm run bench, summary (${note})\n`);
  console.log(textTable(header, rows));
  console.log(`\nfrom ${sources.join(', ')}`);
  for (const l of left) console.log(`left out: ${l}`);
  const out = resultPaths('bench-summary', at);
  fs.writeFileSync(out.json, `${JSON.stringify({ benchmark: 'npm run bench summary', at, note, sources, leftOut: left, header, rows }, null, 2)}\n`);
  fs.writeFileSync(out.md, `# npm run bench, ${at}\n\n${note}.\n\n${markdownTable(header, rows)}\n\nFrom ${sources.join(', ')}.${left.map((l) => `\nLeft out: ${l}.`).join('')}\n`);
  console.log(`[bench:summary] written to ${path.relative(process.cwd(), out.md)} and .json`);
}

main();
