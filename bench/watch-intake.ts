/**
 * The watch-intake figure (issue 15, goal 1), the second phase of `npm run bench` (`npm run bench:watches`
 * alone): what delay watches cost while none of them is late.
 *
 * One config with a delay condition (thresholdSeconds 60) on one workflow; MeshHook reports every run
 * of it: `run.started`, then `run.succeeded` 1 s later (scheduled by the clock from the start's send,
 * never waiting for its answer: open loop), at 20, 40, 100 and 200 runs/s, WATCH_SECONDS each. Per rate:
 * the events' 202 p50/p99 (run.started and run.succeeded apart and together), the machine's busy %, and
 * CPU % and CPU per run by process (this process = API + worker + PGlite + the bench's sender and
 * receiver; the template renderer children; the Temporal dev server). A rate is saturated when fewer
 * than 90 % of its events were answered 202 by the end of its drain, or its 202 p99 is over
 * WATCH_SATURATED_P99_MS: the higher rates are then skipped.
 *
 * Among the first rate's runs, WATCH_LATE_RUNS (default 3) get no run.succeeded: they are late, and must
 * still alert. After the last rate the bench waits (at most threshold + WATCH_LATE_GRACE_SECONDS after
 * their start) for their webhooks and reports how long after its deadline (run.started's occurredAt +
 * threshold) each arrived; any other webhook is a false alert and is counted.
 *
 * Measured only through the public API (POST /api/events, GET /api/alerts/deliveries/{id}) and process
 * CPU, so the same script measures a watch as an AlertDelivery workflow per run and as a row watched by
 * one workflow per config. A rate's window ends when every event was answered and its last run's
 * delivery reads `suppressed` (the watch closed), at most WATCH_DRAIN_SECONDS after the last send.
 *
 * Environment:
 *   WATCH_RATES              runs per second, in order (default 20,40,100,200)
 *   WATCH_SECONDS            seconds per rate (default 20)
 *   WATCH_THRESHOLD_SECONDS  the delay condition (default 60)
 *   WATCH_FINISH_AFTER_MS    run.succeeded this long after run.started (default 1000)
 *   WATCH_LATE_RUNS          late runs among the first rate's (default 3; 0: no late check)
 *   WATCH_LATE_GRACE_SECONDS how long after its deadline a late run's alert may arrive (default 15)
 *   WATCH_SATURATED_P99_MS   202 p99 over this: saturated (default 1000)
 *   WATCH_DRAIN_SECONDS      (default 15)
 *   WATCH_SENDER             child (default): the sender is a process of its own (bench/lib/sender.ts), as
 *                            MeshHook is, and its CPU is the `sender` column; inline: in this process,
 *                            beside the service, as every run before 2026-12-03 12:50 UTC
 *   WATCH_OUT                results file (default bench/results/watch-intake-<timestamp>.json)
 *   BENCH_WATCHES            0 skips this phase in `npm run bench`
 *   BENCH_TMPDIR, BENCH_KEEP_DATA, BENCH_STRICT, TEMPORAL_ADDRESS + DATABASE_URL: as bench/latency.ts
 *
 * Traffic goes only to 127.0.0.1. Exit code 0 when the bench ran and the stack stopped (BENCH_STRICT=1:
 * 1 when a late run did not alert in time or a run alerted that was not late).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { api, gitState, listenLocal, sleep, startTarget, type Target } from './lib/stack';
import { cpuHeader, cpuRow, cpuSnapshot, cpuWindow, perUnitMs, type CpuWindow } from './lib/procs';
import { startSender, type Sender } from './lib/sender';
import { dist, fmt, type Dist } from './lib/stats';

const log = (line: string) => console.log(`[bench:watches] ${line}`);

function num(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}`);
  return n;
}

const RATES = (process.env.WATCH_RATES ?? '20,40,100,200')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => {
    if (!Number.isFinite(n) || n <= 0) throw new Error('WATCH_RATES: positive numbers, comma-separated');
    return true;
  });
const SECONDS = num('WATCH_SECONDS', 20, 1);
const THRESHOLD = Math.round(num('WATCH_THRESHOLD_SECONDS', 60, 1));
const FINISH_AFTER_MS = num('WATCH_FINISH_AFTER_MS', 1000);
const LATE_RUNS = Math.round(num('WATCH_LATE_RUNS', 3));
const LATE_GRACE_SECONDS = num('WATCH_LATE_GRACE_SECONDS', 15, 1);
const SATURATED_P99_MS = num('WATCH_SATURATED_P99_MS', 1000, 1);
const DRAIN_SECONDS = num('WATCH_DRAIN_SECONDS', 15, 1);
const SENDER = (process.env.WATCH_SENDER || 'child') as 'child' | 'inline';
if (SENDER !== 'child' && SENDER !== 'inline') throw new Error('WATCH_SENDER: child or inline');

interface Sent {
  kind: 'started' | 'succeeded';
  t0: number;
  answered?: number;
  status?: number;
  error?: string;
  deliveryId?: string;
}

interface Hit {
  at: number;
  webhookId: string;
}

function startReceiver(): Promise<{ url: string; hits: Hit[]; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    const at = Date.now();
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      hits.push({ at, webhookId: String(req.headers['webhook-id'] ?? '') });
    });
  });
  return listenLocal(server).then((r) => ({ ...r, hits }));
}

const runEvent = (type: 'run.started' | 'run.succeeded', runId: string, workflowId: string, occurredAt: string) =>
  JSON.stringify({ id: `evt_${runId}_${type === 'run.started' ? 'start' : 'done'}`, type, occurredAt, workflowId, runId, workflow: { name: 'Bench watched workflow', version: 1 } });

interface LateRun {
  runId: string;
  deadlineMs: number;
  sample?: Sent;
  deliveryId?: string;
}

/** One event of a phase's schedule: sent `atMs` after the phase's start. */
interface Scheduled {
  kind: Sent['kind'];
  /** the run's number in its phase */
  index: number;
  runId: string;
  atMs: number;
}

const eventBody = (e: Scheduled, workflowId: string) => runEvent(e.kind === 'started' ? 'run.started' : 'run.succeeded', e.runId, workflowId, '%DUE%');

/** A phase's sends (bench/lib/sender.ts), each event's sample in schedule order; `sentAt`: the last send, on this process's clock. */
async function send(sender: Sender, target: Target, workflowId: string, schedule: Scheduled[]) {
  const items = schedule.map((e) => ({ atMs: e.atMs, body: eventBody(e, workflowId) }));
  const headers = { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' };
  const run = await sender.run(`${target.apiUrl}/api/events`, headers, items, DRAIN_SECONDS * 1000);
  const samples = run.samples.map((r, k): Sent => {
    const s: Sent = { kind: schedule[k].kind, t0: r.t0 ?? 0 };
    if (r.answered !== null) s.answered = r.answered;
    if (r.status !== null) s.status = r.status;
    if (r.error !== null) s.error = r.error;
    if (r.deliveryId !== null) s.deliveryId = r.deliveryId;
    return s;
  });
  // the sender's drain took doneMs - sentMs of this phase's DRAIN_SECONDS
  return { samples, startWallMs: run.startWallMs, sendSpanMs: run.sentMs, sentAt: performance.now() - (run.doneMs - run.sentMs), maxLagMs: run.maxLagMs };
}

interface PhaseResult {
  rate: number;
  runs: number;
  events: number;
  achievedRunsPerSecond: number;
  maxSendLagMs: number;
  /** where the sender ran (WATCH_SENDER) */
  sender: string;
  answered202: number;
  rejected: number;
  requestErrors: number;
  unanswered: number;
  saturated: boolean;
  why: string | null;
  lastWatchClosed: boolean;
  drainMs: number;
  accepted: { all: Dist; started: Dist; succeeded: Dist };
  cpu: CpuWindow;
  cpuPerRunMs: ReturnType<typeof perUnitMs>;
  errors: string[];
}

async function deliveryStatus(target: Target, deliveryId: string): Promise<string | undefined> {
  const res = await api(target, 'GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`, undefined).catch(() => undefined);
  return res?.status === 200 ? String((res.body as { status?: string }).status) : undefined;
}

async function phase(target: Target, sender: Sender, configId: string, workflowId: string, tag: string, rate: number, seconds: number, late: LateRun[], lateCount: number): Promise<PhaseResult> {
  const runs = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const lateEvery = lateCount > 0 ? Math.floor(runs / (lateCount + 1)) : 0;
  const lateIndex = new Set(Array.from({ length: lateCount }, (_, k) => (k + 1) * lateEvery));
  // the schedule, in send order: run.started every interval, its run.succeeded FINISH_AFTER_MS later (none for a late run)
  const schedule: Scheduled[] = [];
  for (let i = 0, j = 0; i < runs || j < runs; ) {
    const dueStart = i < runs ? i * interval : Infinity;
    const dueFinish = j < runs ? j * interval + FINISH_AFTER_MS : Infinity;
    if (dueStart <= dueFinish) schedule.push({ kind: 'started', index: i, runId: `run_w_${tag}_${rate}_${i++}`, atMs: dueStart });
    else if (!lateIndex.has(j)) schedule.push({ kind: 'succeeded', index: j, runId: `run_w_${tag}_${rate}_${j++}`, atMs: dueFinish });
    else j++;
  }
  const snap0 = cpuSnapshot();
  const run = await send(sender, target, workflowId, schedule);
  const { samples } = run;
  const sentAt = run.sentAt;
  const drainDeadline = sentAt + DRAIN_SECONDS * 1000;
  schedule.forEach((e, k) => {
    if (e.kind === 'started' && lateIndex.has(e.index)) {
      late.push({ runId: e.runId, deadlineMs: Math.round(run.startWallMs + e.atMs) + THRESHOLD * 1000, sample: samples[k] });
    }
  });
  // the last run's watch closed (its run finished in time): the work the phase caused is done
  let lastWatchClosed = false;
  const lastDelivery = [...samples].reverse().find((x) => x.kind === 'started')?.deliveryId;
  while (lastDelivery && performance.now() < drainDeadline) {
    if ((await deliveryStatus(target, lastDelivery)) === 'suppressed') {
      lastWatchClosed = true;
      break;
    }
    await sleep(100);
  }
  const snap1 = cpuSnapshot();
  const drainMs = Math.round(performance.now() - sentAt);
  for (const l of late) {
    // the contract's delivery id of a watch, when the 202 did not list it
    l.deliveryId ??= l.sample?.deliveryId ?? `dlv-${configId}-${l.runId}-delay`;
  }
  const ok = samples.filter((s) => s.status === 202);
  const lat = (list: Sent[]) => dist(list.map((s) => s.answered! - s.t0));
  const accepted = { all: lat(ok), started: lat(ok.filter((s) => s.kind === 'started')), succeeded: lat(ok.filter((s) => s.kind === 'succeeded')) };
  const rejected = samples.filter((s) => s.status !== undefined && s.status !== 202).length;
  const requestErrors = samples.filter((s) => s.status === undefined && s.error).length;
  const unanswered = samples.filter((s) => s.status === undefined && !s.error).length;
  let why: string | null = null;
  if (ok.length < 0.9 * samples.length) why = `${ok.length} of ${samples.length} events answered 202 within ${DRAIN_SECONDS} s of the last send`;
  else if (accepted.all.p99 > SATURATED_P99_MS) why = `202 p99 ${accepted.all.p99} ms > ${SATURATED_P99_MS} ms`;
  const cpu = cpuWindow(snap0, snap1);
  return {
    rate,
    runs,
    events: samples.length,
    achievedRunsPerSecond: Math.round((runs / ((run.sendSpanMs - FINISH_AFTER_MS) / 1000)) * 10) / 10,
    maxSendLagMs: Math.round(run.maxLagMs),
    sender: SENDER === 'child' ? 'child process' : 'this process',
    answered202: ok.length,
    rejected,
    requestErrors,
    unanswered,
    saturated: why !== null,
    why,
    lastWatchClosed,
    drainMs,
    accepted,
    cpu,
    cpuPerRunMs: perUnitMs(cpu, runs),
    errors: [...new Set(samples.filter((s) => s.error).map((s) => s.error!))].slice(0, 5),
  };
}

async function main(): Promise<void> {
  if (process.env.BENCH_WATCHES === '0') {
    log('BENCH_WATCHES=0: skipped');
    return;
  }
  const gitAtStart = gitState();
  const receiver = await startReceiver();
  const sender = await startSender(SENDER);
  const TMPDIR = process.env.BENCH_TMPDIR || os.tmpdir();
  const booted = Date.now();
  const target = await startTarget({ tmpdir: TMPDIR, taskQueue: 'meshhook-alerts-bench-watches', keepData: process.env.BENCH_KEEP_DATA === '1', log });
  log(`service up in ${((Date.now() - booted) / 1000).toFixed(1)} s: API ${target.apiUrl}, Temporal ${target.service.temporalAddress}`);
  let exitCode = 0;
  try {
    const tag = Date.now().toString(36);
    const workflowId = `wf_watched_${tag}`;
    const created = await api(target, 'POST', '/api/alerts/config', {
      config: { workflowId, name: 'Bench watched workflow', conditions: [{ type: 'delay', thresholdSeconds: THRESHOLD }], webhook: { url: `${receiver.url}/hook`, timeoutMs: 10_000 }, payload: { template: null } },
    });
    if (created.status !== 201) throw new Error(`creating the config failed: ${created.status} ${JSON.stringify(created.body)}`);
    const configId = String(created.body.config.id);
    log(`config ${configId}: delay ${THRESHOLD} s on ${workflowId}`);

    // warm-up: 3 s at 10 runs/s, not counted
    log('warm-up: 3 s at 10 runs/s (not counted)');
    await phase(target, sender, configId, workflowId, `${tag}w`, 10, 3, [], 0).catch(() => undefined);
    // idle: what the stack burns doing nothing, to read the figures against
    const idle0 = cpuSnapshot();
    await sleep(3_000);
    const idle = cpuWindow(idle0, cpuSnapshot());

    const late: LateRun[] = [];
    const phases: PhaseResult[] = [];
    for (const [k, rate] of RATES.entries()) {
      log(`${rate} runs/s for ${SECONDS} s: run.started, run.succeeded ${FINISH_AFTER_MS} ms later${k === 0 && LATE_RUNS > 0 ? `; ${LATE_RUNS} runs never finish (late)` : ''}`);
      const p = await phase(target, sender, configId, workflowId, tag, rate, SECONDS, late, k === 0 ? LATE_RUNS : 0);
      phases.push(p);
      log(`  202 p50 ${fmt(p.accepted.all.p50)} ms, p99 ${fmt(p.accepted.all.p99)} ms; machine ${p.cpu.machineBusyPercent ?? '-'}% busy; ${p.answered202}/${p.events} answered 202${p.saturated ? `; SATURATED: ${p.why}` : ''}`);
      if (p.saturated) {
        const skipped = RATES.slice(k + 1);
        if (skipped.length) log(`  saturated: ${skipped.join(', ')} runs/s skipped`);
        break;
      }
      await sleep(2_000);
    }

    // the late runs: each alert's arrival after its deadline
    const lastDeadline = Math.max(0, ...late.map((l) => l.deadlineMs));
    if (late.length) {
      const until = lastDeadline + LATE_GRACE_SECONDS * 1000;
      const arrived = () => late.every((l) => receiver.hits.some((h) => h.webhookId === l.deliveryId));
      if (!arrived() && Date.now() < until) log(`waiting for the ${late.length} late runs' alerts (deadline ${((lastDeadline - Date.now()) / 1000).toFixed(1)} s from now, grace ${LATE_GRACE_SECONDS} s)`);
      while (!arrived() && Date.now() < until) await sleep(100);
    }
    await sleep(500);
    const lateIds = new Set(late.map((l) => l.deliveryId));
    const lateResults = late.map((l) => {
      const hit = receiver.hits.find((h) => h.webhookId === l.deliveryId);
      return { runId: l.runId, deliveryId: l.deliveryId ?? null, deadline: new Date(l.deadlineMs).toISOString(), alerted: Boolean(hit), msAfterDeadline: hit ? hit.at - l.deadlineMs : null };
    });
    const falseAlerts = receiver.hits.filter((h) => !lateIds.has(h.webhookId)).length;
    const repeats = receiver.hits.filter((h) => lateIds.has(h.webhookId)).length - lateResults.filter((l) => l.alerted).length;

    const held = phases.filter((p) => !p.saturated);
    const results = {
      benchmark: 'watch intake: run.started + run.succeeded of a workflow with a delay condition, none late',
      at: new Date().toISOString(),
      mode: target.mode,
      git: gitAtStart,
      settings: { rates: RATES, seconds: SECONDS, thresholdSeconds: THRESHOLD, finishAfterMs: FINISH_AFTER_MS, lateRuns: LATE_RUNS, saturatedP99Ms: SATURATED_P99_MS, drainSeconds: DRAIN_SECONDS, sender: SENDER },
      host: { platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version },
      note: `CPU: bench/lib/procs.ts; service = this Node process (API + worker + PGlite + the bench's receiver${SENDER === 'child' ? '' : ' and sender'}); sender = ${SENDER === 'child' ? 'the sender process' : 'none (inline)'}; per run = one run.started + one run.succeeded; machine = all of the host's cores, busy`,
      idle,
      phases,
      highestRateHeld: held.length ? held[held.length - 1].rate : null,
      late: { runs: lateResults, alerted: lateResults.filter((l) => l.alerted).length, maxMsAfterDeadline: Math.max(...lateResults.map((l) => l.msAfterDeadline ?? Infinity)), falseAlerts, repeats },
    };

    console.log('');
    console.log(`watch intake, ${target.mode}: delay ${THRESHOLD} s, run.succeeded ${FINISH_AFTER_MS} ms after run.started, ${SECONDS} s per rate, open loop`);
    console.log('');
    console.log(`${'runs/s'.padStart(7)} ${'events'.padStart(7)} ${'202 ok'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)} ${'start p99'.padStart(10)} ${'done p99'.padStart(9)} ${'machine'.padStart(8)}  verdict`);
    for (const p of phases) {
      console.log(
        `${String(p.rate).padStart(7)} ${String(p.events).padStart(7)} ${String(p.answered202).padStart(7)} ${fmt(p.accepted.all.p50).padStart(8)} ${fmt(p.accepted.all.p99).padStart(8)} ${fmt(p.accepted.all.max).padStart(8)} ` +
          `${fmt(p.accepted.started.p99).padStart(10)} ${fmt(p.accepted.succeeded.p99).padStart(9)} ${(p.cpu.machineBusyPercent === null ? '-' : `${p.cpu.machineBusyPercent}%`).padStart(8)}  ${p.saturated ? `saturated (${p.why})` : p.lastWatchClosed ? 'held' : 'held (last watch not seen closed)'}`,
      );
    }
    console.log('');
    console.log(cpuHeader('run'));
    for (const p of phases) console.log(cpuRow(`${p.rate} runs/s`, p.cpu, p.runs));
    console.log(`idle (3 s, % of a core): service ${idle.corePercent.service}%, renderers ${idle.corePercent.renderers ?? '-'}%, dev server ${idle.corePercent.devServer ?? '-'}%; machine ${idle.machineBusyPercent ?? '-'}%`);
    console.log(`sender: ${SENDER === 'child' ? 'its own process (WATCH_SENDER=child)' : 'this process, beside the service (WATCH_SENDER=inline)'}`);
    console.log('');
    if (late.length) {
      console.log(`late runs (no run.succeeded, among the ${RATES[0]} runs/s phase): ${results.late.alerted} of ${late.length} alerted; after their deadline: ${lateResults.map((l) => (l.msAfterDeadline === null ? 'none' : `${l.msAfterDeadline} ms`)).join(', ')}`);
    }
    console.log(`false alerts (a webhook for a run that finished in time): ${falseAlerts}; late alerts sent again: ${repeats}`);
    console.log('');
    const out = process.env.WATCH_OUT ?? path.join(__dirname, 'results', `watch-intake-${results.at.replace(/[:.]/g, '-')}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    log(`results written to ${path.relative(process.cwd(), out)}`);
    const bad = results.late.alerted < late.length || falseAlerts > 0 || lateResults.some((l) => l.msAfterDeadline !== null && l.msAfterDeadline > 1000);
    if (bad) {
      log('WARNING: a late run did not alert within 1 s of its deadline, or a run that finished in time alerted');
      if (process.env.BENCH_STRICT === '1') exitCode = 1;
    }
  } catch (err) {
    console.error(`[bench:watches] failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  } finally {
    log('stopping the service ...');
    await target.service.stop();
    await receiver.close();
    await sender.close();
    target.cleanup();
    log('stopped');
  }
  process.exit(exitCode);
}

if (require.main === module) void main();
