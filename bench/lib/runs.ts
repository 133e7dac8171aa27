/**
 * Runs bench/latency.ts as a child process (a fresh stack per run) for the
 * sweep and tuning runners, streams its output with a prefix, and reads back
 * its results JSON; plus the markdown table they write.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BENCH_DIR = path.join(__dirname, '..');
export const ROOT = path.join(BENCH_DIR, '..');

/** The parts of bench/latency.ts's results JSON the runners read. */
export interface LatencyResults {
  at: string;
  settings: { rate: number; seconds: number; graceSeconds: number };
  counts: { sent: number; accepted: number; delivered: number; lost: number; late: number; duplicates: number; rejected: number; requestErrors: number; unansweredAtDeadline: number };
  achievedRatePerSecond: number;
  deliveredRatePerSecond: number;
  latencyMs: { sendToReceived: { count: number; p50: number; p95: number; p99: number; max: number } };
  cpu: {
    processUserSeconds: number;
    processSystemSeconds: number;
    processCorePercent: number;
    temporalServerSeconds: number | null;
    temporalServerCorePercent: number | null;
    wallSeconds: number;
  };
  memory: { peakRssMiB: number; maxRssMiB: number };
  baseline?: null | { sendToReceived: { p50: number; p99: number }; ratio: { p50: number | null; p99: number | null } };
}

export interface LatencyRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
  results?: LatencyResults;
  /** why there are no results */
  error?: string;
}

/** `node --import tsx bench/latency.ts` with `env` on top of this process's environment; its lines printed after `prefix`. */
export function runLatency(env: Record<string, string>, prefix: string): Promise<LatencyRun> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-bench-run-')), 'latency.json');
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'latency.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, BENCH_OUT: out },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stream = (from: NodeJS.ReadableStream, to: NodeJS.WriteStream) => {
    let pending = '';
    from.setEncoding('utf8');
    from.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) to.write(`${prefix} ${line}\n`);
    });
    from.on('end', () => {
      if (pending) to.write(`${prefix} ${pending}\n`);
    });
  };
  stream(child.stdout!, process.stdout);
  stream(child.stderr!, process.stderr);
  // Ctrl-C on the runner: the child gets it too (same process group) and stops its stack
  return new Promise((resolve) => {
    child.on('close', (exitCode, signal) => {
      const run: LatencyRun = { exitCode, signal, seconds: Math.round((Date.now() - started) / 100) / 10 };
      try {
        run.results = JSON.parse(fs.readFileSync(out, 'utf8')) as LatencyResults;
      } catch (err) {
        run.error = `no results from bench/latency.ts (exit ${exitCode ?? signal}): ${(err as Error).message}`;
      }
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
      resolve(run);
    });
  });
}

export function markdownTable(header: string[], rows: (string | number | null | undefined)[][]): string {
  const cell = (v: string | number | null | undefined) => (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '-' : String(v).replace(/\|/g, '\\|'));
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

/** Fixed-width text table for the terminal. */
export function textTable(header: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((v) => (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '-' : String(v))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r, n) => r.map((v, i) => (i === 0 || (n > 0 && isNaN(Number(v)) && v !== '-') ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ')).join('\n');
}

/** results file paths for one runner invocation: bench/results/<name>-<timestamp>.{json,md} */
export function resultPaths(name: string, at: string): { json: string; md: string } {
  const base = path.join(BENCH_DIR, 'results', `${name}-${at.replace(/[:.]/g, '-')}`);
  fs.mkdirSync(path.dirname(base), { recursive: true });
  return { json: `${base}.json`, md: `${base}.md` };
}

export const hostLine = () => `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;

export function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
  return n;
}

/** "abc1234567", plus the uncommitted source files (the JSON keeps the whole list) */
export function commitLine(git: { commit: string | null; uncommittedChanges: string[] }): string {
  if (!git.commit) return 'unknown';
  const code = git.uncommittedChanges.filter((f) => /\.(ts|js|mjs|json|svelte)$/.test(f) && !f.startsWith('test/') && !f.startsWith('docs/'));
  if (code.length === 0) return git.commit.slice(0, 10);
  return `${git.commit.slice(0, 10)} plus uncommitted changes to ${code.join(', ')}`;
}
