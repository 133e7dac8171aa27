/**
 * `npm run bench:cluster`: the deployment topology's throughput and cost per alert. For 1 and 2 worker
 * processes (CLUSTER_BENCH_WORKERS, default "1,2"), one API process, the real Temporal server on
 * PostgreSQL (test/support/cluster.ts, as `npm run cluster` starts it): open-loop failure events at
 * rising rates (CLUSTER_BENCH_RATES, default "25,50,100,150"; CLUSTER_BENCH_SECONDS per rate, default
 * 20) to one config whose webhook is a receiver in this process. Latency: the POST of the event to the
 * webhook's arrival. A rate is held when every alert arrived and the p99 is ≤ 500 ms; the first rate
 * not held ends the series. CPU per alert by process from /proc (utime + stime, children included:
 * the worker's template renderer children, PostgreSQL's backends): the Temporal server, PostgreSQL
 * (postmaster and backends), the API, the workers, and this process (sender + receiver).
 * Writes bench/results/cluster-<time>.json and prints a table.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TEMPORAL_SERVER_VERSION } from '../runtime/temporal-server';
import { startCluster, type Cluster } from '../test/support/cluster';

const P99_LIMIT_MS = 500;
const CLK_TCK = 100;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const list = (name: string, fallback: string) =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((v) => Number(v.trim()))
    .filter((v) => Number.isFinite(v) && v > 0);
const RATES = list('CLUSTER_BENCH_RATES', '25,50,100,150');
const WORKERS = list('CLUSTER_BENCH_WORKERS', '1,2');
const SECONDS = Number(process.env.CLUSTER_BENCH_SECONDS ?? 20);
const log = (line: string) => process.stderr.write(`[bench:cluster] ${line}\n`);

// ------------------------------------------------------------ CPU from /proc

function stat(pid: number): { ppid: number; ticks: number; comm: string } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields after comm: state ppid … utime(12) stime(13) cutime(14) cstime(15)
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]), comm };
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** CPU ms of a process and its live descendants (reaped children are in its cutime/cstime) */
function treeCpuMs(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const pid of allPids()) {
    const s = stat(pid);
    if (s) stats.set(pid, s);
  }
  let ticks = 0;
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 50; p = stats.get(p)?.ppid ?? 0, hops++) if (p === root) return true;
    return false;
  };
  for (const [pid, s] of stats) if (inTree(pid)) ticks += s.ticks;
  return (ticks * 1000) / CLK_TCK;
}

/** the postmaster listening on the port of `url` */
function postmasterPid(url: string): number | undefined {
  const port = new URL(url).port;
  for (const pid of allPids()) {
    const s = stat(pid);
    if (s?.comm !== 'postgres') continue;
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes('-D') && argv[argv.indexOf('-p') + 1] === port) return pid;
    } catch {
      /* gone */
    }
  }
  return undefined;
}

type Processes = Record<string, number[]>;
const cpuOf = (procs: Processes) => Object.fromEntries(Object.entries(procs).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + treeCpuMs(pid), 0)]));
const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
function machineBusy(): { busy: number; total: number } {
  const [cpu] = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  const n = cpu.split(/\s+/).slice(1).map(Number);
  const idle = n[3] + n[4];
  const total = n.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

// ------------------------------------------------------------ receiver and sender

interface Phase {
  workers: number;
  rate: number;
  sent: number;
  delivered: number;
  rejected: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  held: boolean;
  machineBusyPct: number;
  cpuMsPerAlert: Record<string, number>;
  cpuPctOfOneCore: Record<string, number>;
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);

async function runPhase(cluster: Cluster, apiUrl: string, workflowId: string, rate: number, seconds: number, arrivals: Map<string, number>, procs: Processes, label: string): Promise<Omit<Phase, 'workers'>> {
  const count = Math.round(rate * seconds);
  const sentAt = new Map<string, number>();
  let rejected = 0;
  const inflight = new Set<Promise<void>>();
  const cpu0 = cpuOf(procs);
  const self0 = selfCpuMs();
  const busy0 = machineBusy();
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const runId = `run_${label}_${i}`;
    sentAt.set(runId, Date.now());
    const p = fetch(`${apiUrl}/api/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: `evt_${label}_${i}`, type: 'run.failed', workflowId, runId, error: { message: 'bench' } }),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        if (res.status !== 202) rejected++;
      })
      .catch(() => void rejected++)
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  // wait for the stragglers: up to 15 s after the last send
  for (const until = Date.now() + 15_000; Date.now() < until; await sleep(100)) if ([...sentAt.keys()].every((id) => arrivals.has(id))) break;
  const elapsed = (Date.now() - t0) / 1000;
  const cpu1 = cpuOf(procs);
  const busy1 = machineBusy();
  const latencies = [...sentAt].filter(([id]) => arrivals.has(id)).map(([id, at]) => arrivals.get(id)! - at).sort((a, b) => a - b);
  const delivered = latencies.length;
  const per = (ms: number) => Math.round((ms / Math.max(1, delivered)) * 100) / 100;
  const cpuMs: Record<string, number> = { ...Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k] - cpu0[k]])), 'bench (sender + receiver)': selfCpuMs() - self0 };
  const p99 = percentile(latencies, 99);
  return {
    rate,
    sent: count,
    delivered,
    rejected,
    p50Ms: percentile(latencies, 50),
    p99Ms: p99,
    maxMs: latencies[latencies.length - 1] ?? NaN,
    held: delivered === count && rejected === 0 && p99 <= P99_LIMIT_MS,
    machineBusyPct: Math.round(((busy1.busy - busy0.busy) / Math.max(1, busy1.total - busy0.total)) * 1000) / 10,
    cpuMsPerAlert: Object.fromEntries(Object.entries(cpuMs).map(([k, v]) => [k, per(v)])),
    cpuPctOfOneCore: Object.fromEntries(Object.entries(cpuMs).map(([k, v]) => [k, Math.round((v / (elapsed * 1000)) * 1000) / 10])),
  };
}

async function main(): Promise<void> {
  const arrivals = new Map<string, number>();
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      try {
        const runId = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { runId?: string }).runId;
        if (runId && !arrivals.has(runId)) arrivals.set(runId, at);
      } catch {
        /* not ours */
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const phases: Phase[] = [];
  try {
    for (const workers of WORKERS) {
      log(`starting the cluster: 1 API, ${workers} worker(s), Temporal server ${TEMPORAL_SERVER_VERSION} on PostgreSQL ...`);
      const cluster = await startCluster({ apis: 1, workers, env: { ALERTS_RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn' }, log });
      // Ctrl-C: stop what was started (the API and worker processes would outlive a plain exit)
      const onSignal = () => void cluster.stop().finally(() => process.exit(130));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const api = cluster.apis[0].url;
        const workflowId = `wf_bench_cluster_${workers}`;
        const created = await fetch(`${api}/api/alerts/config`, {
          method: 'POST',
          headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ config: { workflowId, name: 'bench', conditions: [{ type: 'failure' }], webhook: { url: `${receiverUrl}/hook` }, payload: { template: { text: '{{ workflow.id }} {{ run.id }} failed: {{ error.message }}', runId: '{{ run.id }}' } } } }),
        });
        if (created.status !== 201) throw new Error(`config: ${created.status} ${await created.text()}`);
        const pg = postmasterPid(cluster.databaseUrl);
        const procs: Processes = {
          'Temporal server': [cluster.temporal.pid],
          PostgreSQL: pg ? [pg] : [],
          API: cluster.apis.map((a) => a.process.child.pid!),
          [`worker${workers > 1 ? 's' : ''} (${workers})`]: cluster.workers.map((w) => w.child.pid!),
        };
        log('warm-up: 5 s at 10/s');
        const warm = await runPhase(cluster, api, workflowId, 10, 5, arrivals, procs, `w${workers}_warm`);
        if (warm.delivered < warm.sent) throw new Error(`warm-up: ${warm.delivered} of ${warm.sent} alerts arrived`);
        for (const rate of RATES) {
          log(`${workers} worker(s): ${rate} alerts/s for ${SECONDS} s ...`);
          const phase = { workers, ...(await runPhase(cluster, api, workflowId, rate, SECONDS, arrivals, procs, `w${workers}_r${rate}`)) };
          phases.push(phase);
          log(`  delivered ${phase.delivered}/${phase.sent}, p50 ${phase.p50Ms} ms, p99 ${phase.p99Ms} ms, machine ${phase.machineBusyPct} % busy: ${phase.held ? 'held' : 'NOT held'}`);
          if (phase.delivered === 0) throw new Error(`no alert arrived at ${rate}/s: see the processes' output`);
          if (!phase.held) break;
        }
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        await cluster.stop();
      }
    }
  } finally {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  }
  const at = new Date().toISOString().replace(/[:.]/g, '-');
  const held = (w: number) => phases.filter((p) => p.workers === w && p.held).reduce((m, p) => Math.max(m, p.rate), 0);
  const result = {
    bench: 'cluster',
    at,
    host: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    temporalServer: TEMPORAL_SERVER_VERSION,
    seconds: SECONDS,
    p99LimitMs: P99_LIMIT_MS,
    heldAlertsPerSecond: Object.fromEntries(WORKERS.map((w) => [`${w} worker${w > 1 ? 's' : ''}`, held(w)])),
    phases,
  };
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `cluster-${at}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const names = [...new Set(phases.flatMap((p) => Object.keys(p.cpuMsPerAlert)))];
  const rows = phases.map((p) => [
    p.workers,
    p.rate,
    `${p.delivered}/${p.sent}`,
    p.p50Ms,
    p.p99Ms,
    p.held ? 'yes' : 'no',
    p.machineBusyPct,
    ...names.map((n) => p.cpuMsPerAlert[n] ?? ''),
  ]);
  const header = ['workers', 'rate/s', 'delivered', 'p50 ms', 'p99 ms', 'held', 'machine %', ...names.map((n) => `${n} CPU ms/alert`)];
  const md = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  process.stdout.write(`\n${md}\n\nheld (p99 ≤ ${P99_LIMIT_MS} ms, all delivered): ${JSON.stringify(result.heldAlertsPerSecond)}\nresults: ${path.relative(process.cwd(), file)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`[bench:cluster] ${err.stack ?? err.message}\n`);
  process.exit(1);
});
