/**
 * The outage burst (issue 14, Done-when 4), the second phase of `npm run bench` (`npm run bench:burst`
 * alone): 500 MeshHook runs of one workflow fail at once, as in a CRM outage, and MeshHook sends their
 * `run.failed` events to POST /api/events as fast as it can (`{ events: [...] }` batches, every
 * request in flight at once).
 *
 * - grouped: one `failure` config with grouping { by: ['workflow.id'], waitSeconds 5, intervalSeconds
 *   30, maxEvents 500 }. Reported: the time from the burst's first event sent to the first digest's
 *   arrival (goal: within waitSeconds + 1 s), to the last digest, the digests count and the events
 *   they list (every one once), and the bound 1 + ceil(max(0, S − wait) / interval) for the S seconds
 *   the burst took to be taken in (first event sent to the last `grouped` log row written).
 * - ungrouped (issue 15, goal 4): the same 500 events to a config without grouping, twice, each mode
 *   to its own config: `single` (500 requests of one event, all at once) and `batch` (`{ events: [...] }`
 *   of BURST_BATCH). Per mode: every request's 202 time (p50/p99/max; goal: all within 1 s), the first
 *   and the last of the 500 alerts (send -> received; goal: the last within 5 s), lost, duplicates, CPU
 *   per event by process (bench/lib/procs.ts: this process, the template renderer children, the dev
 *   server; first send to last alert), and where the 202 time goes: the service's store and Temporal
 *   client calls started before the last 202 (count, most open at once, p50/p99/max), probes of the
 *   Temporal server every 100 ms, and this process's event-loop delay (bench/lib/calls.ts).
 *
 * The embedded default in this process (bench/lib/stack.ts startTarget: dev server, PGlite, worker,
 * API), a receiver on 127.0.0.1, a short warm-up through a plain config (not counted), then the
 * grouped burst; once its digests list every event, the ungrouped burst runs while the grouped config
 * waits one more interval (nothing more may come: a digest after that would be counted).
 *
 * Environment:
 *   BENCH_BURST           0 skips this phase (`npm run bench` then measures latency only)
 *   BURST_RUNS            failing runs in the burst (default 500)
 *   BURST_BATCH           events per request of the grouped burst and the `batch` mode (default 50, at most 100)
 *   BURST_MODES           the ungrouped bursts, in order (default single,batch)
 *   BURST_WAIT_SECONDS    grouping.waitSeconds (default 5)
 *   BURST_INTERVAL_SECONDS grouping.intervalSeconds (default 30)
 *   BURST_TIMEOUT_SECONDS how long each burst may take to arrive (default 120)
 *   BURST_OUT             results file (default bench/results/burst-<timestamp>.json)
 *   BENCH_TMPDIR, BENCH_KEEP_DATA, TEMPORAL_ADDRESS + DATABASE_URL: as bench/latency.ts
 *
 * Traffic goes only to 127.0.0.1. The exit code is 0 when the bench ran and the stack stopped, whatever
 * the figures are (BENCH_STRICT=1: 1 when an alert or an event was missing).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { temporal } from '@temporalio/proto';
import { noiseWorkflowId } from '../lib/delivery-ids';
import { api, failedRunEvent, gitState, listenLocal, sleep, startTarget, type Target } from './lib/stack';
import { CallRecorder } from './lib/calls';
import { cpuHeader, cpuRow, cpuSnapshot, cpuWindow, perUnitMs, type CpuWindow } from './lib/procs';
import { dist, fmt, type Dist } from './lib/stats';

/** At most this many digests for a burst taken in over `seconds`: the group's first digest after the wait, then one per interval that had events. */
export const digestBound = (seconds: number, waitSeconds: number, intervalSeconds: number) => 1 + Math.ceil(Math.max(0, seconds - waitSeconds) / intervalSeconds);

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number`);
  return n;
}

const log = (line: string) => console.log(`[bench:burst] ${line}`);
const seconds = (ms: number) => Math.round(ms / 100) / 10;

interface UngroupedResult {
  mode: string;
  eventsPerRequest: number;
  requests: number;
  note: string;
  lastAcceptedMs: number;
  accepted202PerRequest: Dist;
  accepted202PerEvent: Dist;
  resends: number;
  delivered: number;
  lost: number;
  duplicates: number;
  firstAlertMs: number;
  lastAlertMs: number;
  sendToReceived: Dist;
  allArrived: boolean;
  waitedMs: number;
  cpu: CpuWindow;
  cpuPerEventMs: ReturnType<typeof perUnitMs>;
  whereThe202TimeGoes: { note: string } & ReturnType<CallRecorder['stop']>;
}

interface Hit {
  at: number;
  webhookId: string;
  body: string;
}

/** The receiver: answers 200 and records each request by path. */
function startReceiver(): Promise<{ url: string; hits(path: string): Hit[]; close(): Promise<void> }> {
  const byPath = new Map<string, Hit[]>();
  const server = http.createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      const p = (req.url ?? '/').split('?')[0];
      if (!byPath.has(p)) byPath.set(p, []);
      byPath.get(p)!.push({ at, webhookId: String(req.headers['webhook-id'] ?? ''), body: Buffer.concat(chunks).toString('utf8') });
    });
  });
  return listenLocal(server).then((r) => ({ ...r, hits: (p: string) => byPath.get(p) ?? [] }));
}

async function createConfig(target: Target, workflowId: string, hookUrl: string, extra: Record<string, unknown>): Promise<string> {
  const created = await api(target, 'POST', '/api/alerts/config', {
    config: { workflowId, name: `Burst ${workflowId}`, conditions: [{ type: 'failure' }], webhook: { url: hookUrl, timeoutMs: 10_000 }, payload: { template: null }, ...extra },
  });
  if (created.status !== 201) throw new Error(`creating the config failed: ${created.status} ${JSON.stringify(created.body)}`);
  return String(created.body.config.id);
}

/**
 * Sends `runs` run.failed events of `workflowId`, `batch` per request, every request at once; a
 * request not answered 202 is sent again (as MeshHook does: the event ids make it safe).
 */
async function burst(
  target: Target,
  workflowId: string,
  tag: string,
  runs: number,
  batch: number,
): Promise<{ sentAt: number; sentAtPerf: number; acceptedAt: number; acceptedAtPerf: number; eventIds: string[]; resends: number; deliveryIds: string[]; answerMs: number[]; eventAnswerMs: number[] }> {
  const events = Array.from({ length: runs }, (_, i) => JSON.parse(failedRunEvent(`evt_burst_${tag}_${i}`, `run_burst_${tag}_${i}`, workflowId)) as Record<string, unknown>);
  const deliveryIds: string[] = [];
  let resends = 0;
  let acceptedAt = 0;
  const post = async (slice: Record<string, unknown>[]) => {
    const body = slice.length === 1 ? slice[0] : { events: slice };
    for (let attempt = 1; ; attempt++) {
      const res = await api(target, 'POST', '/api/events', body).catch((err: Error) => ({ status: 0, body: err.message }));
      if (res.status === 202) {
        acceptedAt = Math.max(acceptedAt, Date.now());
        const ms = performance.now() - sentAtPerf;
        answerMs.push(ms);
        for (let k = 0; k < slice.length; k++) eventAnswerMs.push(ms);
        for (const d of (res.body as { deliveries: { deliveryId: string }[] }).deliveries) deliveryIds.push(d.deliveryId);
        return;
      }
      if (attempt >= 10) throw new Error(`POST /api/events answered ${res.status} ten times: ${JSON.stringify(res.body).slice(0, 300)}`);
      resends++;
      await sleep(250 * attempt);
    }
  };
  const answerMs: number[] = [];
  const eventAnswerMs: number[] = [];
  const sentAt = Date.now();
  const sentAtPerf = performance.now();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < runs; i += batch) requests.push(post(events.slice(i, i + batch)));
  await Promise.all(requests);
  return { sentAt, sentAtPerf, acceptedAt, acceptedAtPerf: performance.now(), eventIds: events.map((e) => String(e.id)), resends, deliveryIds, answerMs, eventAnswerMs };
}

const EventTypeEnum = temporal.api.enums.v1.EventType;
const eventTimeMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Every event of a workflow id's latest run and the runs it continued (as-new) from, oldest first. */
async function chainHistory(target: Target, workflowId: string): Promise<HistoryEvent[]> {
  const runs: HistoryEvent[][] = [];
  let runId: string | undefined;
  for (let i = 0; i < 20; i++) {
    const history = await target.service.temporal.client.workflow.getHandle(workflowId, runId).fetchHistory().catch(() => undefined);
    const events = history?.events ?? [];
    if (events.length === 0) break;
    runs.unshift(events);
    runId = events[0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
    if (!runId) break;
  }
  return runs.flat();
}

/**
 * Where the time to the first digest goes, from the Temporal histories (ms after the first event was
 * sent): the noise workflow's start, its first and last signal, its timer, the workflow task the timer
 * woke and its local activities (log rows, the digest's start), then the digest's AlertDelivery.
 */
async function firstDigestTimeline(
  target: Target,
  configId: string,
  digestId: string | undefined,
  sentAt: number,
): Promise<{ steps: { step: string; ms: number }[]; noiseRuns: number; noiseHistoryEvents: number; signals: number }> {
  const steps: { step: string; ms: number }[] = [];
  const at = (e: HistoryEvent) => Math.round(eventTimeMs(e.eventTime) - sentAt);
  const name = (e: HistoryEvent) => (EventTypeEnum[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '').toLowerCase();
  const noise = await chainHistory(target, noiseWorkflowId(configId));
  const signals = noise.filter((e) => e.eventType === EventTypeEnum.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED);
  if (signals.length) {
    steps.push({ step: 'noise: first signal', ms: at(signals[0]) });
    steps.push({ step: `noise: last signal (${signals.length} signals)`, ms: at(signals[signals.length - 1]) });
  }
  // every other event up to the end of the second workflow task after the first timer fired
  const fired = noise.findIndex((e) => e.eventType === EventTypeEnum.EVENT_TYPE_TIMER_FIRED);
  let tasksAfterFire = 0;
  for (const [i, e] of noise.entries()) {
    if (e.eventType === EventTypeEnum.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) continue;
    const attempt = Number(e.workflowTaskScheduledEventAttributes?.attempt ?? 1);
    const failed = e.workflowTaskFailedEventAttributes;
    const why = failed ? `: ${temporal.api.enums.v1.WorkflowTaskFailedCause[failed.cause ?? 0] ?? failed.cause}${failed.failure?.message ? ` ${failed.failure.message.slice(0, 120)}` : ''}` : '';
    steps.push({ step: `noise: ${name(e)}${e.markerRecordedEventAttributes ? ' (local activity)' : ''}${attempt > 1 ? ` (attempt ${attempt})` : ''}${why}`, ms: at(e) });
    if (fired >= 0 && i > fired && e.eventType === EventTypeEnum.EVENT_TYPE_WORKFLOW_TASK_COMPLETED && ++tasksAfterFire >= 2) break;
  }
  if (digestId) {
    for (const e of await chainHistory(target, digestId)) steps.push({ step: `digest: ${name(e)}${e.markerRecordedEventAttributes ? ' (local activity)' : ''}`, ms: at(e) });
  }
  const noiseRuns = noise.filter((e) => e.eventType === EventTypeEnum.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED).length;
  return { steps, noiseRuns, noiseHistoryEvents: noise.length, signals: signals.length };
}

async function waitUntil(ok: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function main(): Promise<void> {
  if (process.env.BENCH_BURST === '0') {
    log('BENCH_BURST=0: skipped');
    return;
  }
  const RUNS = positive('BURST_RUNS', 500);
  const BATCH = Math.min(100, positive('BURST_BATCH', 50));
  const WAIT = positive('BURST_WAIT_SECONDS', 5);
  const INTERVAL = positive('BURST_INTERVAL_SECONDS', 30);
  const TIMEOUT_MS = positive('BURST_TIMEOUT_SECONDS', 120) * 1000;
  const TMPDIR = process.env.BENCH_TMPDIR || os.tmpdir();
  const grouping = { by: ['workflow.id'], waitSeconds: WAIT, intervalSeconds: INTERVAL, maxEvents: Math.min(1000, RUNS) };
  const MODES = (process.env.BURST_MODES ?? 'single,batch').split(',').map((m) => m.trim()).filter(Boolean).map((name) => {
    if (name !== 'single' && name !== 'batch') throw new Error('BURST_MODES: single and/or batch');
    return { name, batch: name === 'single' ? 1 : BATCH };
  });

  const gitAtStart = gitState();
  const receiver = await startReceiver();
  log(`receiver on ${receiver.url}`);
  const bootStarted = Date.now();
  const target = await startTarget({ tmpdir: TMPDIR, taskQueue: 'meshhook-alerts-bench-burst', keepData: process.env.BENCH_KEEP_DATA === '1', log });
  log(`service up in ${seconds(Date.now() - bootStarted)} s: API ${target.apiUrl}, Temporal ${target.service.temporalAddress}`);
  let exitCode = 0;
  try {
    const tag = Date.now().toString(36);
    const groupedWf = `wf_burst_grouped_${tag}`;
    const plainWf = `wf_burst_plain_${tag}`;
    const warmWf = `wf_burst_warmup_${tag}`;
    const groupedConfig = await createConfig(target, groupedWf, `${receiver.url}/grouped`, { grouping });
    for (const mode of MODES) await createConfig(target, `${plainWf}_${mode.name}`, `${receiver.url}/plain-${mode.name}`, {});
    await createConfig(target, warmWf, `${receiver.url}/warmup`, {});
    const recorder = new CallRecorder(target.service);

    log('warm-up: 50 alerts through a plain config (not counted)');
    await burst(target, warmWf, `${tag}w`, 50, 10);
    await waitUntil(() => new Set(receiver.hits('/warmup').map((h) => h.webhookId)).size >= 50, 60_000);
    await sleep(1_000);

    // ---- grouped
    log(`grouped: ${RUNS} run.failed events, ${BATCH} per request, all at once; grouping ${JSON.stringify(grouping)}`);
    const g = await burst(target, groupedWf, `${tag}g`, RUNS, BATCH);
    const digests = () => {
      const byId = new Map<string, { hit: Hit; repeats: number; group: { count: number; digest: number; events: { id: string }[] } }>();
      for (const hit of receiver.hits('/grouped')) {
        const known = byId.get(hit.webhookId);
        if (known) known.repeats++;
        else byId.set(hit.webhookId, { hit, repeats: 0, group: (JSON.parse(hit.body) as { group: { count: number; digest: number; events: { id: string }[] } }).group });
      }
      return [...byId.values()].sort((a, b) => a.hit.at - b.hit.at);
    };
    const listed = () => digests().flatMap((d) => d.group?.events.map((e) => e.id) ?? []);
    const allListed = await waitUntil(() => new Set(listed()).size >= RUNS, TIMEOUT_MS);
    const listedAt = Date.now();
    if (!allListed) log(`WARNING: the digests listed ${new Set(listed()).size} of ${RUNS} events within ${TIMEOUT_MS / 1000} s`);

    // ---- ungrouped, while the grouped config waits one more interval: each mode to its own config
    const ungroupedRuns: UngroupedResult[] = [];
    for (const mode of MODES) {
      log(`ungrouped, ${mode.name}: ${RUNS} run.failed events, ${mode.batch} per request (${Math.ceil(RUNS / mode.batch)} requests at once), to a config without grouping`);
      const hookPath = `/plain-${mode.name}`;
      const snap0 = cpuSnapshot();
      recorder.start(`${tag}${mode.name}`);
      const b = await burst(target, `${plainWf}_${mode.name}`, `${tag}p${mode.name}`, RUNS, mode.batch);
      const profile = recorder.stop(b.sentAtPerf, b.acceptedAtPerf);
      const received = () => new Set(receiver.hits(hookPath).map((h) => h.webhookId));
      const all = await waitUntil(() => received().size >= RUNS, TIMEOUT_MS);
      const doneAt = Date.now();
      const snap1 = cpuSnapshot();
      await sleep(1_000); // a short look for duplicates
      const hits = receiver.hits(hookPath);
      const firstArrival = new Map<string, number>();
      for (const h of hits) if (!firstArrival.has(h.webhookId)) firstArrival.set(h.webhookId, h.at);
      const times: Dist = dist([...firstArrival.values()].map((at) => at - b.sentAt));
      const cpu = cpuWindow(snap0, snap1);
      ungroupedRuns.push({
        mode: mode.name,
        eventsPerRequest: mode.batch,
        requests: Math.ceil(RUNS / mode.batch),
        note: 'times in ms after the first request was sent; 202: each request\'s answer (a resent request: its final 202); cpu: from the first send to the last alert received',
        lastAcceptedMs: b.acceptedAt - b.sentAt,
        accepted202PerRequest: dist(b.answerMs),
        accepted202PerEvent: dist(b.eventAnswerMs),
        resends: b.resends,
        delivered: firstArrival.size,
        lost: RUNS - firstArrival.size,
        duplicates: hits.length - firstArrival.size,
        firstAlertMs: times.min,
        lastAlertMs: times.max,
        sendToReceived: times,
        allArrived: all,
        waitedMs: doneAt - b.sentAt,
        cpu,
        cpuPerEventMs: perUnitMs(cpu, RUNS),
        whereThe202TimeGoes: { note: 'calls that started between the first send and the last 202, timed by wrappers on the service objects (bench/lib/calls.ts); probes every 100 ms', ...profile },
      });
      await sleep(2_000);
    }

    const lastGroupedHit = Math.max(...receiver.hits('/grouped').map((h) => h.at));
    const settleUntil = Math.max(listedAt, lastGroupedHit) + (INTERVAL + 2) * 1000;
    if (settleUntil > Date.now()) {
      log(`waiting ${seconds(settleUntil - Date.now())} s: the grouped config's next interval, in which nothing may come`);
      await sleep(settleUntil - Date.now());
    }

    const received = digests();
    const events = listed();
    const [{ lastRow }] = await target.service.db.query<{ lastRow: Date | string | null }>(
      `SELECT max(created_at) AS "lastRow" FROM alert_logs WHERE config_id = $1 AND attempt = 0 AND outcome = 'grouped'`,
      [groupedConfig],
    );
    const [{ groupedRows }] = await target.service.db.query<{ groupedRows: number }>(
      `SELECT count(*)::int AS "groupedRows" FROM alert_logs WHERE config_id = $1 AND attempt = 0 AND outcome = 'grouped'`,
      [groupedConfig],
    );
    const takenInMs = lastRow ? new Date(lastRow).getTime() - g.sentAt : NaN;
    const firstDigestMs = received.length ? received[0].hit.at - g.sentAt : NaN;
    const goalMs = (WAIT + 1) * 1000;

    const results = {
      benchmark: 'outage burst: 500 failing runs of one workflow, grouped and not',
      at: new Date().toISOString(),
      mode: target.mode,
      git: gitAtStart,
      settings: { runs: RUNS, eventsPerRequest: BATCH, requestsAtOnce: Math.ceil(RUNS / BATCH), grouping },
      host: { platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, totalMemMiB: Math.round(os.totalmem() / 2 ** 20) },
      grouped: {
        note: 'times in ms after the first event was sent; takenIn: to the last grouped log row written (an upper bound of the span the pipeline took the burst in over)',
        acceptedMs: g.acceptedAt - g.sentAt,
        resends: g.resends,
        firstDigestMs,
        goalMs,
        firstDigestWithinGoal: firstDigestMs <= goalMs,
        lastDigestMs: received.length ? received[received.length - 1].hit.at - g.sentAt : NaN,
        digests: received.length,
        digestSizes: received.map((d) => d.group.count),
        repeatedDeliveries: received.reduce((n, d) => n + d.repeats, 0),
        eventsListed: events.length,
        distinctEventsListed: new Set(events).size,
        missingEvents: g.eventIds.filter((id) => !events.includes(id)).length,
        groupedLogRows: groupedRows,
        takenInMs,
        bound: digestBound(takenInMs / 1000, WAIT, INTERVAL),
        withinBound: received.length >= 1 && received.length <= digestBound(takenInMs / 1000, WAIT, INTERVAL),
        firstDigestTimeline: await firstDigestTimeline(target, groupedConfig, received[0]?.hit.webhookId, g.sentAt).catch((err: Error) => ({ error: err.message })),
      },
      ungrouped: ungroupedRuns,
    };
    const r = results.grouped;
    console.log('');
    console.log(`outage burst, ${target.mode}: ${RUNS} run.failed events of one workflow, ${BATCH} per request, ${results.settings.requestsAtOnce} requests at once`);
    console.log('');
    console.log(`grouped (wait ${WAIT} s, interval ${INTERVAL} s, maxEvents ${grouping.maxEvents}):`);
    console.log(`  events accepted          ${fmt(seconds(r.acceptedMs))} s after the first was sent (${r.resends} resends)`);
    console.log(`  first digest             ${fmt(seconds(r.firstDigestMs))} s   (goal: within wait + 1 s = ${WAIT + 1} s: ${r.firstDigestWithinGoal ? 'met' : 'NOT met'})`);
    console.log(`  last digest              ${fmt(seconds(r.lastDigestMs))} s`);
    console.log(`  digests                  ${r.digests} (${r.digestSizes.join(' + ')} events; ${r.repeatedDeliveries} sent again), bound 1 + ceil(max(0, S - ${WAIT}) / ${INTERVAL}) = ${r.bound} for S = ${fmt(seconds(r.takenInMs))} s`);
    console.log(`  events listed            ${r.eventsListed} (${r.distinctEventsListed} distinct, ${r.missingEvents} missing); grouped log rows ${r.groupedLogRows}`);
    const tl = r.firstDigestTimeline;
    if ('steps' in tl) {
      console.log(`  where the time to the first digest went (Temporal history times; the noise workflow: ${tl.noiseRuns} run(s), ${tl.noiseHistoryEvents} events, ${tl.signals} signals):`);
      for (const step of tl.steps) console.log(`    ${String(step.ms).padStart(7)} ms  ${step.step}`);
    }
    console.log(`ungrouped (one webhook per run; 202 times per request, from the first request sent):`);
    console.log(`${'mode'.padEnd(22)} ${'reqs'.padStart(5)} ${'202 p50'.padStart(8)} ${'202 p99'.padStart(8)} ${'202 max'.padStart(8)} ${'1st alert'.padStart(10)} ${'last alert'.padStart(11)} ${'lost'.padStart(5)} ${'dup'.padStart(4)} ${'resends'.padStart(8)}`);
    for (const u of ungroupedRuns) {
      console.log(
        `${`${u.mode} (${u.eventsPerRequest}/req)`.padEnd(22)} ${String(u.requests).padStart(5)} ${fmt(u.accepted202PerRequest.p50).padStart(8)} ${fmt(u.accepted202PerRequest.p99).padStart(8)} ${fmt(u.accepted202PerRequest.max).padStart(8)} ` +
          `${fmt(u.firstAlertMs).padStart(10)} ${fmt(u.lastAlertMs).padStart(11)} ${String(u.lost).padStart(5)} ${String(u.duplicates).padStart(4)} ${String(u.resends).padStart(8)}`,
      );
    }
    console.log('(ms; goal: every 202 within 1,000 ms, the last alert within 5,000 ms)');
    console.log('');
    console.log(cpuHeader('event'));
    for (const u of ungroupedRuns) console.log(cpuRow(`${u.mode} (${u.eventsPerRequest}/req)`, u.cpu, RUNS));
    console.log('(service proc = this Node process: API + worker + PGlite + the bench sender and receiver; window: first send to last alert)');
    for (const u of ungroupedRuns) {
      const w = u.whereThe202TimeGoes;
      console.log('');
      console.log(`where the 202 time goes, ${u.mode}: calls started between the first send and the last 202 (${fmt(u.lastAcceptedMs)} ms); event-loop delay p50 ${w.eventLoopDelayMs.p50} / p99 ${w.eventLoopDelayMs.p99} / max ${w.eventLoopDelayMs.max} ms`);
      const ss = w.serverSide;
      console.log(
        `  at the service's HTTP server (${ss.requests} requests): arrived after the first send p50 ${fmt(ss.arrivedMs.p50)} / max ${fmt(ss.arrivedMs.max)} ms; ` +
          `arrival -> response end p50 ${fmt(ss.inServerMs.p50)} / p99 ${fmt(ss.inServerMs.p99)} / max ${fmt(ss.inServerMs.max)} ms`,
      );
      const cs = w.clientSide;
      console.log(
        `  the bench's client: ${cs.newConnections} new connections, up after p50 ${fmt(cs.connectedMs.p50)} / max ${fmt(cs.connectedMs.max)} ms; ` +
          `${cs.headersWritten} requests written after p50 ${fmt(cs.headersWrittenMs.p50)} / max ${fmt(cs.headersWrittenMs.max)} ms`,
      );
      console.log(`  ${'call'.padEnd(64)} ${'n'.padStart(5)} ${'open'.padStart(5)} ${'1st at'.padStart(7)} ${'last at'.padStart(8)} ${'total ms'.padStart(9)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`);
      for (const k of w.calls.slice(0, 12)) {
        console.log(
          `  ${k.name.slice(0, 64).padEnd(64)} ${String(k.n).padStart(5)} ${String(k.peakConcurrent).padStart(5)} ${String(k.firstAtMs).padStart(7)} ${String(k.lastAtMs).padStart(8)} ${String(k.totalMs).padStart(9)} ${fmt(k.ms.p50).padStart(8)} ${fmt(k.ms.p99).padStart(8)} ${fmt(k.ms.max).padStart(8)}`,
        );
      }
    }
    console.log('');

    const out = process.env.BURST_OUT ?? path.join(__dirname, 'results', `burst-${results.at.replace(/[:.]/g, '-')}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    log(`results written to ${path.relative(process.cwd(), out)}`);
    const missing = r.missingEvents > 0 || r.distinctEventsListed !== r.eventsListed || ungroupedRuns.some((u) => u.lost > 0);
    if (missing) {
      log('WARNING: an event was missing from the digests, listed twice, or an ungrouped alert was not delivered');
      if (process.env.BENCH_STRICT === '1') exitCode = 1;
    }
  } catch (err) {
    console.error(`[bench:burst] failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  } finally {
    log('stopping the service ...');
    await target.service.stop();
    await receiver.close();
    target.cleanup();
    log('stopped');
  }
  process.exit(exitCode);
}

if (require.main === module) void main();
