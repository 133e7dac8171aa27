/**
 * `npm run bench:sweep`: the rate sweep of issue 5. Runs bench/latency.ts as a
 * child process once per rate, each in a fresh stack (its output streamed with
 * a `[sweep <rate>/s]` prefix), in ascending order, and stops after the first
 * rate that saturates: delivered rate below 90 % of the send rate, or an event
 * not delivered within the grace period (lost, rejected, request error,
 * unanswered). It prints and writes a table (send->webhook p50/p95/p99/max,
 * delivered rate, lost/duplicates, CPU of the service process and of the dev
 * server, peak RSS) and the highest rate held with p99 < 500 ms and < 50 ms.
 *
 * Environment:
 *   SWEEP_RATES     comma-separated events/s (default 10,20,25,30,40,50,100,200,400)
 *   SWEEP_SECONDS   measured seconds per rate (default 30; passed as BENCH_SECONDS)
 *   BENCH_PROFILE   default 0 here (the profile's probes add load); 1 turns it on
 *   BENCH_BASELINE  default 0 here (it doubles each run); 1 adds the no-Temporal baseline p99 and ratio
 *   any other BENCH_* / service variable is passed to every run (e.g. BENCH_TMPDIR=/dev/shm)
 *
 * Writes bench/results/sweep-<timestamp>.json (every run's full results) and
 * bench/results/sweep-<timestamp>.md (a section for docs/benchmarks.md). The
 * exit code is 0 when the sweep ran, saturated or not; 1 when a run gave no results.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gitState } from './lib/stack';
import { fmt } from './lib/stats';
import { commitLine, hostLine, markdownTable, positiveEnv, resultPaths, runLatency, textTable, ROOT, type LatencyResults, type LatencyRun } from './lib/runs';

const RATES = (process.env.SWEEP_RATES || '10,20,25,30,40,50,100,200,400')
  .split(',')
  .map((r) => Number(r.trim()))
  .filter((r) => {
    if (!Number.isFinite(r) || r <= 0) throw new Error('SWEEP_RATES must be comma-separated positive numbers');
    return true;
  })
  .sort((a, b) => a - b);
const SECONDS = positiveEnv('SWEEP_SECONDS', 30);
/** delivered rate below this share of the send rate = saturated */
const HELD_SHARE = 0.9;
const P99_LIMITS_MS = [500, 50];

const log = (line: string) => console.log(`[sweep] ${line}`);

interface Row {
  rate: number;
  run: LatencyRun;
  saturated: boolean;
  why: string | null;
}

/** Why a run did not hold its rate, or null. */
function saturation(rate: number, r: LatencyResults | undefined, run: LatencyRun): string | null {
  if (!r) return run.error ?? 'no results';
  const notDelivered = r.counts.sent - r.counts.delivered;
  const reasons: string[] = [];
  if (r.deliveredRatePerSecond < HELD_SHARE * rate) reasons.push(`delivered rate ${r.deliveredRatePerSecond}/s < ${HELD_SHARE * 100} % of ${rate}/s`);
  if (notDelivered > 0) reasons.push(`${notDelivered} of ${r.counts.sent} not delivered within ${r.settings.graceSeconds} s (lost ${r.counts.lost}, rejected ${r.counts.rejected}, request errors ${r.counts.requestErrors}, unanswered ${r.counts.unansweredAtDeadline})`);
  return reasons.length ? reasons.join('; ') : null;
}

function cells(row: Row): (string | number | null)[] {
  const r = row.run.results;
  if (!r) return [row.rate, ...Array(13).fill(null), 'no results'];
  const l = r.latencyMs.sendToReceived;
  return [
    row.rate,
    r.achievedRatePerSecond,
    fmt(l.p50),
    fmt(l.p95),
    fmt(l.p99),
    fmt(l.max),
    r.deliveredRatePerSecond,
    `${r.counts.delivered}/${r.counts.sent}`,
    r.counts.lost,
    r.counts.duplicates,
    r.cpu.processCorePercent,
    r.cpu.temporalServerCorePercent,
    r.memory.peakRssMiB,
    r.baseline ? `${fmt(r.baseline.sendToReceived.p99)} (${r.baseline.ratio.p99 ?? '-'}x)` : null,
    row.saturated ? 'saturated' : 'held',
  ];
}
const HEADER = ['rate/s', 'sent/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'delivered/s', 'delivered', 'lost', 'dup', 'service CPU %', 'dev server CPU %', 'peak RSS MiB', 'baseline p99 ms (ratio)', 'verdict'];

function highestHeld(rows: Row[], p99LimitMs: number): number | null {
  const held = rows.filter((r) => !r.saturated && r.run.results && r.run.results.latencyMs.sendToReceived.p99 < p99LimitMs).map((r) => r.rate);
  return held.length ? Math.max(...held) : null;
}

async function main(): Promise<void> {
  const at = new Date().toISOString();
  const git = gitState();
  const passed = Object.entries(process.env)
    .filter(([k]) => /^(BENCH_|TEMPORAL_|ALERTS_|SWEEP_)/.test(k) && k !== 'BENCH_OUT')
    .map(([k, v]) => `${k}=${v}`);
  const childEnv: Record<string, string> = { BENCH_SECONDS: String(SECONDS), BENCH_PROFILE: process.env.BENCH_PROFILE ?? '0', BENCH_BASELINE: process.env.BENCH_BASELINE ?? '0' };
  log(`rates ${RATES.join(', ')} events/s, ${SECONDS} s each, a fresh stack per rate; stops after the first saturated rate`);
  const rows: Row[] = [];
  let stoppedEarly: string | null = null;
  for (const [i, rate] of RATES.entries()) {
    log(`run ${i + 1}/${RATES.length}: ${rate}/s for ${SECONDS} s ...`);
    const run = await runLatency({ ...childEnv, BENCH_RATE: String(rate) }, `[sweep ${rate}/s]`);
    const why = saturation(rate, run.results, run);
    const row: Row = { rate, run, saturated: why !== null, why };
    rows.push(row);
    const r = run.results;
    log(
      r
        ? `${rate}/s: p99 send->webhook ${fmt(r.latencyMs.sendToReceived.p99)} ms, delivered ${r.deliveredRatePerSecond}/s, lost ${r.counts.lost}, duplicates ${r.counts.duplicates} (${run.seconds} s) -> ${why ? `SATURATED: ${why}` : 'held'}`
        : `${rate}/s: ${why}`,
    );
    if (why) {
      const rest = RATES.slice(i + 1);
      stoppedEarly = `stopped after ${rate}/s, the first rate that saturated (${why})${rest.length ? `; not run: ${rest.join(', ')}/s` : ''}`;
      break;
    }
  }

  const held = Object.fromEntries(P99_LIMITS_MS.map((limit) => [`p99Below${limit}ms`, highestHeld(rows, limit)]));
  const table = rows.map(cells);
  console.log('');
  console.log(`sweep: send -> webhook received latency by rate (${SECONDS} s per rate, open loop, embedded default unless TEMPORAL_ADDRESS)`);
  console.log(textTable(HEADER, table));
  console.log('');
  for (const limit of P99_LIMITS_MS) console.log(`highest rate held with p99 < ${limit} ms: ${held[`p99Below${limit}ms`] ?? 'none of the rates measured'}${held[`p99Below${limit}ms`] ? '/s' : ''}`);
  if (stoppedEarly) console.log(stoppedEarly);
  else console.log('no rate saturated');

  const command = `${passed.length ? `${passed.join(' ')} ` : ''}npm run bench:sweep`;
  const paths = resultPaths('sweep', at);
  const json = {
    benchmark: 'rate sweep of bench/latency.ts',
    at,
    command,
    git,
    host: hostLine(),
    settings: { rates: RATES, secondsPerRate: SECONDS, heldShare: HELD_SHARE, childEnv },
    saturationRule: `a rate saturates when its delivered rate is below ${HELD_SHARE * 100} % of the send rate or an event is not delivered within the grace period`,
    highestRateHeld: held,
    stoppedEarly,
    columns: HEADER,
    table,
    runs: rows.map((r) => ({ rate: r.rate, saturated: r.saturated, why: r.why, exitCode: r.run.exitCode, signal: r.run.signal, runSeconds: r.run.seconds, error: r.run.error, results: r.run.results })),
  };
  fs.writeFileSync(paths.json, `${JSON.stringify(json, null, 2)}\n`);
  const commit = commitLine(git);
  const md = [
    `## Sweep: send -> webhook latency by rate`,
    '',
    `Command: \`${command}\` (${SECONDS} s measured per rate, 2 s warm-up, open loop, one event per request, a fresh embedded stack per rate; ` +
      `profile ${childEnv.BENCH_PROFILE === '0' ? 'off' : 'on'}). Commit ${commit}. Host: ${hostLine()}. Run ${at}.`,
    '',
    markdownTable(HEADER, table),
    '',
    ...P99_LIMITS_MS.map((limit) => `- Highest rate held with p99 < ${limit} ms: **${held[`p99Below${limit}ms`] !== null ? `${held[`p99Below${limit}ms`]}/s` : 'none of the rates measured'}**`),
    `- ${stoppedEarly ? stoppedEarly.charAt(0).toUpperCase() + stoppedEarly.slice(1) : 'No rate saturated'}.`,
    `- A rate is held when at least ${HELD_SHARE * 100} % of the send rate is delivered and every event is delivered within the grace period. ` +
      `CPU % is of one core over the measured window: "service" is the Node process (API + worker + PGlite + bench client + receiver), "dev server" the Temporal dev server child.`,
    `- Results: \`${path.relative(ROOT, paths.json)}\`.`,
    '',
  ].join('\n');
  fs.writeFileSync(paths.md, md);
  log(`results written to ${path.relative(process.cwd(), paths.json)} and ${path.relative(process.cwd(), paths.md)}`);
  process.exit(rows.some((r) => !r.run.results) ? 1 : 0);
}

void main();
