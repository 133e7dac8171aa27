/**
 * `npm run bench`: event-accepted to webhook-received latency of the embedded
 * default (AlertDelivery "Done when" item 4).
 *
 * Starts the whole service in this process (startService: Temporal dev server,
 * PGlite, worker, API) on free ports in a temp DATA_DIR, a plain HTTP receiver
 * on 127.0.0.1 that answers 200, creates one failure config with the default
 * payload through the API, warms up, then POSTs `run.failed` events to
 * /api/events open-loop at a fixed rate (one event per request, each send
 * scheduled by the clock, never waiting for earlier answers).
 *
 * Per event: t0 just before the POST, `accepted` when the 202 arrives,
 * `received` when the receiver gets the webhook (matched by webhook-id =
 * deliveryId from the 202, or by `event.id` in the default payload).
 *
 * Environment:
 *   BENCH_RATE      events per second (default 50)
 *   BENCH_SECONDS   measured seconds (default 30)
 *   BENCH_WARMUP_SECONDS  warm-up seconds at the same rate, not counted (default 2)
 *   BENCH_GRACE_SECONDS   how long after the last send a webhook may still arrive (default 10)
 *   BENCH_OUT       results file (default bench/results/latency-<timestamp>.json)
 *   BENCH_BASELINE  0 turns off the baseline: after the service measurement, the first webhook the service
 *                   delivered (same body bytes and headers, freshly signed) is POSTed straight to the receiver
 *                   from this process, no Temporal, at the same rate for the same number of events; its
 *                   send->received p50/p95/p99/max and the ratio service/baseline (p50, p99) go to `baseline`
 *   BENCH_PROFILE   0 turns off the profile (timed wrappers on the service's db and Temporal client,
 *                   server probes, a median timeline from sampled workflow histories)
 *   BENCH_KEEP_DATA 1 keeps the temp DATA_DIR (with the dev server's temporal.log)
 *   BENCH_STRICT    1 makes the exit code 1 when an event was rejected or not delivered in the grace period
 *                   (by default the exit code is 0 whenever the bench ran and the stack stopped)
 *   BENCH_TMPDIR    where the temp DATA_DIR is made (default os.tmpdir()); e.g. /dev/shm to take the
 *                   disk out of the picture (the dev server's SQLite file is disk-bound)
 *   TEMPORAL_ADDRESS + DATABASE_URL (+ ALERTS_ENCRYPTION_KEYS, ALERTS_API_TOKENS):
 *                   measure against an existing cluster and database instead of the embedded default
 *
 * Traffic goes only to 127.0.0.1 (the receiver, the API and, embedded, the dev server).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { temporal } from '@temporalio/proto';
import type { RunningService } from '../runtime/boot';
import { Agent, request } from 'undici';
import { signatureHeaders } from '../lib/signing';
import { childrenCpuSeconds, createFailureConfig, failedRunEvent, gitState, listenLocal, sleep, startTarget, type Target } from './lib/stack';
import { cpuHeader, cpuRow, cpuSnapshot, cpuWindow, perUnitMs, type CpuWindow } from './lib/procs';
import { dist, fmt, percentile, type Dist } from './lib/stats';

const RATE = positive('BENCH_RATE', 50);
const SECONDS = positive('BENCH_SECONDS', 30);
const WARMUP_SECONDS = nonNegative('BENCH_WARMUP_SECONDS', 2);
const GRACE_SECONDS = positive('BENCH_GRACE_SECONDS', 10);
const PROFILE = process.env.BENCH_PROFILE !== '0';
const BASELINE = process.env.BENCH_BASELINE !== '0';
const TMPDIR = process.env.BENCH_TMPDIR || os.tmpdir();
const HISTORY_SAMPLES = 25;
const AFTER_SECONDS = 60;
const PROGRESS_EVERY_MS = 5_000;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
  return n;
}
function nonNegative(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number >= 0`);
  return n;
}

const log = (line: string) => console.log(`[bench] ${line}`);

// ---------------------------------------------------------------- measurements

interface Sample {
  eventId: string;
  warmup: boolean;
  /** performance.now() just before the POST */
  t0: number;
  /** when the 202 arrived */
  accepted?: number;
  status?: number;
  error?: string;
  deliveryId?: string;
  /** first webhook arrival */
  received?: number;
  receipts: number;
}

const samples: Sample[] = [];
const byEventId = new Map<string, Sample>();
const byDeliveryId = new Map<string, Sample>();
/** webhooks that arrived before their 202 told us the delivery id (joined by event id instead) or that match nothing */
let unmatchedWebhooks = 0;

// ---------------------------------------------------------------- baseline: the same webhook POSTed straight from this process, no Temporal

const BASELINE_ID_PREFIX = 'bench_baseline_';
/** a test secret; the receiver does not verify, the point is the signing work and the header bytes */
const BASELINE_SECRET = `whsec_${Buffer.from('meshhook-alerts-bench-baseline-secret').toString('base64')}`;
interface BaselineSample {
  t0: number;
  status?: number;
  error?: string;
  received?: number;
  receipts: number;
}
const baselineById = new Map<string, BaselineSample>();
let unmatchedBaselineWebhooks = 0;
/** the first webhook the service delivered: its body bytes and headers are what the baseline sends */
let webhookTemplate: { body: string; headers: http.IncomingHttpHeaders } | undefined;
/** headers of a delivered webhook the baseline sends again as they were (the signature ones are made fresh per request) */
const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);

/**
 * POSTs the captured webhook `count` times at `rate`/s, open loop, to the receiver with an undici keep-alive
 * Agent (as the worker does), each signed with the Standard Webhooks scheme (lib/signing.ts) under its own id.
 */
async function runBaseline(receiverUrl: string, count: number, rate: number, graceSeconds: number) {
  const template = webhookTemplate!;
  const fixedHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(template.headers)) {
    if (!HOP_BY_HOP.has(name) && typeof value === 'string') fixedHeaders[name] = value;
  }
  const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
  const inflight = new Set<Promise<void>>();
  const interval = 1000 / rate;
  const startedAt = performance.now();
  let maxLagMs = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const due = startedAt + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    maxLagMs = Math.max(maxLagMs, performance.now() - due);
    const id = `${BASELINE_ID_PREFIX}${i}`;
    const sample: BaselineSample = { t0: performance.now(), receipts: 0 };
    baselineById.set(id, sample);
    const headers = { ...fixedHeaders, ...signatureHeaders([BASELINE_SECRET], id, template.body) };
    const p = request(`${receiverUrl}/hook`, { dispatcher, method: 'POST', headers, body: template.body })
      .then(async (res) => {
        sample.status = res.statusCode;
        await res.body.dump();
      })
      .catch((err: Error) => {
        sample.error = err.message;
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }
  const endedAt = performance.now();
  const deadline = endedAt + graceSeconds * 1000;
  while (performance.now() < deadline && (inflight.size > 0 || [...baselineById.values()].some((b) => b.received === undefined && !b.error))) await sleep(20);
  const cpu = process.cpuUsage(cpu0);
  await dispatcher.close();
  const all = [...baselineById.values()];
  const received = all.filter((b) => b.received !== undefined && b.received <= deadline);
  const lastReceived = Math.max(...received.map((b) => b.received!));
  return {
    sent: all.length,
    delivered: received.length,
    lost: all.length - received.length,
    duplicates: all.reduce((n, b) => n + Math.max(0, b.receipts - 1), 0),
    requestErrors: all.filter((b) => b.error).length,
    unmatchedWebhooks: unmatchedBaselineWebhooks,
    achievedRatePerSecond: Math.round((all.length / ((endedAt - startedAt) / 1000)) * 100) / 100,
    deliveredRatePerSecond: Math.round((received.length / ((lastReceived - startedAt) / 1000)) * 100) / 100,
    maxSendLagMs: Math.round(maxLagMs * 10) / 10,
    bodyBytes: Buffer.byteLength(template.body),
    processCpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100,
    sendToReceived: dist(received.map((b) => b.received! - b.t0)),
  };
}

// ---------------------------------------------------------------- receiver

function startReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    // the webhook counts as received when its request (headers) arrives; the body is read for the event-id fallback
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      const webhookId = String(req.headers['webhook-id'] ?? '');
      if (webhookId.startsWith(BASELINE_ID_PREFIX)) {
        const b = baselineById.get(webhookId);
        if (!b) unmatchedBaselineWebhooks++;
        else {
          b.receipts++;
          if (b.received === undefined) b.received = at;
        }
        return;
      }
      if (!webhookTemplate) webhookTemplate = { body: Buffer.concat(chunks).toString('utf8'), headers: { ...req.headers } };
      let sample = byDeliveryId.get(webhookId);
      if (!sample) {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { event?: { id?: string } };
          sample = body.event?.id ? byEventId.get(body.event.id) : undefined;
          if (sample && !sample.deliveryId && webhookId) {
            sample.deliveryId = webhookId;
            byDeliveryId.set(webhookId, sample);
          }
        } catch {
          /* not JSON */
        }
      }
      if (!sample) {
        unmatchedWebhooks++;
        return;
      }
      sample.receipts++;
      if (sample.received === undefined) sample.received = at;
    });
  });
  return listenLocal(server);
}

// ---------------------------------------------------------------- process stats

let peakRssBytes = 0;
/** process.memoryUsage() when the RSS was at its peak: where the memory goes */
let atPeak: NodeJS.MemoryUsage | undefined;
function sampleRss(): void {
  const rss = process.memoryUsage.rss();
  if (rss <= peakRssBytes) return;
  peakRssBytes = rss;
  atPeak = process.memoryUsage();
}

/**
 * The peak RSS split, approximately: the main thread's V8 heap, external memory less ArrayBuffers
 * (PGlite's WASM memory, sized as allocated, not as resident), ArrayBuffers, and the rest (the heaps
 * of the worker threads that run workflows, Temporal's core SDK, code, the allocator).
 */
function peakBreakdownMiB() {
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  if (!atPeak) return null;
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = atPeak;
  return { heapTotal: mib(heapTotal), heapUsed: mib(heapUsed), wasm: mib(external - arrayBuffers), arrayBuffers: mib(arrayBuffers), rest: mib(rss - heapTotal - external) };
}

// ---------------------------------------------------------------- profiling (no change to the service: wrappers on its objects)

interface Timing {
  n: number;
  totalMs: number;
  values: number[];
}
const timings = new Map<string, Timing>();
let profiling = false;
function record(name: string, ms: number): void {
  if (!profiling) return;
  let t = timings.get(name);
  if (!t) timings.set(name, (t = { n: 0, totalMs: 0, values: [] }));
  t.n++;
  t.totalMs += ms;
  t.values.push(ms);
}
function timed<A extends unknown[], R>(name: (...args: A) => string, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const started = performance.now();
    try {
      return await fn(...args);
    } finally {
      record(name(...args), performance.now() - started);
    }
  };
}
const sqlName = (sql: string) => `db: ${sql.replace(/\s+/g, ' ').trim().slice(0, 60)}`;

/** Times the store's queries and transactions and the client's workflow starts (API side: processEvent = config lookup + workflow.start). */
function instrument(service: RunningService): void {
  const db = service.db as unknown as Record<string, (...args: any[]) => Promise<any>>;
  const query = db.query.bind(db);
  db.query = timed((sql: string) => sqlName(sql), query);
  const transaction = db.transaction.bind(db);
  db.transaction = timed(() => 'db: transaction (whole)', transaction);
  const wf = service.temporal.client.workflow as unknown as Record<string, (...args: any[]) => Promise<any>>;
  const start = wf.start.bind(wf);
  unwrappedStart = start;
  wf.start = timed(() => 'temporal: client.workflow.start', start);
}
let unwrappedStart: ((...args: any[]) => Promise<any>) | undefined;

/**
 * Probes the Temporal server while the bench runs, to tell server-side delay from worker-side delay:
 * - getSystemInfo: an RPC with no persistence;
 * - a workflow start on a task queue no worker polls, without eager start: server RPC + persistence only.
 */
function startProbes(service: RunningService, tag: string): () => void {
  let i = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const n = i++;
    const t = performance.now();
    void service.temporal.client.connection.workflowService
      .getSystemInfo({})
      .then(() => record('probe: server getSystemInfo (no persistence)', performance.now() - t))
      .catch(() => record('probe: server getSystemInfo (no persistence) FAILED', performance.now() - t));
    const t2 = performance.now();
    void unwrappedStart?.('BenchProbe', {
      workflowId: `bench-probe-${tag}-${n}`,
      taskQueue: `bench-probe-${tag}`,
      workflowExecutionTimeout: '1 minute',
    })
      .then(() => record('probe: start on a queue no worker polls (server + persistence)', performance.now() - t2))
      .catch(() => record('probe: start on a queue no worker polls FAILED', performance.now() - t2));
  };
  const timer = setInterval(tick, 500);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

const EventTypeEnum = temporal.api.enums.v1.EventType;
const tsMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);
const wallOf = (perfMs: number) => performance.timeOrigin + perfMs;

/** Median timeline of a few deliveries, from their Temporal histories, in ms after the event was sent. */
async function historyTimeline(service: RunningService, picked: Sample[]): Promise<{ step: string; medianMs: number; p95Ms: number; n: number }[]> {
  const steps = new Map<string, number[]>();
  const add = (step: string, ms: number) => {
    if (!steps.has(step)) steps.set(step, []);
    steps.get(step)!.push(ms);
  };
  for (const s of picked) {
    const history = await service.temporal.client.workflow.getHandle(s.deliveryId!).fetchHistory().catch(() => undefined);
    if (!history) continue;
    const t0 = wallOf(s.t0);
    add('00 event POST sent (t0)', 0);
    add('zz 202 accepted', s.accepted! - s.t0);
    add('zz webhook received', s.received! - s.t0);
    for (const [i, e] of (history.events ?? []).entries()) {
      const name = (EventTypeEnum[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '');
      let detail = '';
      if (e.markerRecordedEventAttributes) detail = ' (local activity)';
      add(`${String(i + 1).padStart(2, '0')} ${name}${detail}`, tsMs(e.eventTime) - t0);
    }
  }
  const r = (n: number) => Math.round(n * 10) / 10;
  return [...steps.entries()]
    .map(([step, values]) => {
      const sorted = values.sort((a, b) => a - b);
      return { step, medianMs: r(percentile(sorted, 50)), p95Ms: r(percentile(sorted, 95)), n: sorted.length };
    })
    .sort((a, b) => a.medianMs - b.medianMs);
}

// ---------------------------------------------------------------- the run

/** Sends one event; never awaited by the scheduler (open loop). */
function sendEvent(target: Target, runTag: string, index: number, warmup: boolean, workflowId: string, inflight: Set<Promise<void>>): void {
  const eventId = `evt_bench_${runTag}_${warmup ? 'w' : 'm'}${index}`;
  const payload = failedRunEvent(eventId, `run_${runTag}_${warmup ? 'w' : 'm'}${index}`, workflowId);
  const sample: Sample = { eventId, warmup, t0: 0, receipts: 0 };
  samples.push(sample);
  byEventId.set(eventId, sample);
  sample.t0 = performance.now();
  const p = fetch(`${target.apiUrl}/api/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
    body: payload,
  })
    .then(async (res) => {
      sample.accepted = performance.now();
      sample.status = res.status;
      const body = (await res.json().catch(() => undefined)) as { deliveries?: { deliveryId: string }[] } | undefined;
      if (res.status !== 202) {
        sample.error = `HTTP ${res.status}: ${JSON.stringify(body)?.slice(0, 200)}`;
        return;
      }
      const deliveryId = body?.deliveries?.[0]?.deliveryId;
      if (deliveryId && !sample.deliveryId) {
        sample.deliveryId = deliveryId;
        byDeliveryId.set(deliveryId, sample);
      }
    })
    .catch((err: Error) => {
      sample.error = `request failed: ${err.message}`;
    })
    .finally(() => inflight.delete(p));
  inflight.add(p);
}

/** Sends `count` events at `rate`/s, each at start + i/rate (late sends go out at once: the schedule never waits for answers). */
async function sendAtRate(
  target: Target,
  runTag: string,
  count: number,
  rate: number,
  warmup: boolean,
  workflowId: string,
  inflight: Set<Promise<void>>,
  onTick?: () => void,
): Promise<{ startedAt: number; endedAt: number; maxLagMs: number }> {
  const interval = 1000 / rate;
  const startedAt = performance.now();
  let maxLagMs = 0;
  for (let i = 0; i < count; i++) {
    const due = startedAt + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    maxLagMs = Math.max(maxLagMs, performance.now() - due);
    sendEvent(target, runTag, i, warmup, workflowId, inflight);
    onTick?.();
  }
  return { startedAt, endedAt: performance.now(), maxLagMs };
}

async function main(): Promise<void> {
  const gitAtStart = gitState();
  const receiver = await startReceiver();
  log(`receiver on ${receiver.url}`);
  const bootStarted = performance.now();
  log('starting the service (embedded default unless TEMPORAL_ADDRESS is set) ...');
  const target = await startTarget({ tmpdir: TMPDIR, taskQueue: 'meshhook-alerts-bench', keepData: process.env.BENCH_KEEP_DATA === '1', log });
  log(`service up in ${((performance.now() - bootStarted) / 1000).toFixed(1)} s: API ${target.apiUrl}, Temporal ${target.service.temporalAddress}`);
  const sampler = setInterval(sampleRss, 250);
  if (PROFILE) instrument(target.service);
  // the histogram records the time between its 10 ms timer's ticks: the delay is that less the 10 ms
  const LOOP_RESOLUTION_MS = 10;
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  const lateMs = (ns: number) => Math.max(0, Math.round(ns / 1e4) / 100 - LOOP_RESOLUTION_MS);
  let exitCode = 0;
  try {
    const runTag = Date.now().toString(36);
    const workflowId = `wf_bench_${runTag}`;
    const configId = await createFailureConfig(target, workflowId, receiver.url, 'Bench failures');
    log(`config ${configId} created for ${workflowId}`);

    // idle baseline: what the stack burns doing nothing (pollers, timers), to read the CPU figures against
    const idleCpu0 = process.cpuUsage();
    const idleChild0 = childrenCpuSeconds();
    const idleStarted = performance.now();
    await sleep(3_000);
    const idleWall = (performance.now() - idleStarted) / 1000;
    const idleCpu = process.cpuUsage(idleCpu0);
    const idleChild1 = childrenCpuSeconds();
    const idle = {
      processCorePercent: Math.round(((idleCpu.user + idleCpu.system) / 1e6 / idleWall) * 1000) / 10,
      temporalServerCorePercent: idleChild0 !== undefined && idleChild1 !== undefined ? Math.round(((idleChild1 - idleChild0) / idleWall) * 1000) / 10 : null,
    };

    const inflight = new Set<Promise<void>>();
    if (WARMUP_SECONDS > 0) {
      log(`warm-up: ${WARMUP_SECONDS} s at ${RATE}/s (not counted)`);
      await sendAtRate(target, runTag, Math.round(WARMUP_SECONDS * RATE), RATE, true, workflowId, inflight);
      // let the warm-up drain so it does not overlap the measured window
      const drainUntil = performance.now() + GRACE_SECONDS * 1000;
      while (performance.now() < drainUntil && samples.some((s) => s.warmup && s.received === undefined && !s.error)) await sleep(50);
      await Promise.all([...inflight]);
    }

    const count = Math.round(SECONDS * RATE);
    log(`measuring: ${count} events, ${RATE}/s for ${SECONDS} s, open loop`);
    const load0 = os.loadavg();
    profiling = true;
    loopDelay.enable();
    const stopProbes = PROFILE ? startProbes(target.service, runTag) : () => undefined;
    const cpu0 = process.cpuUsage();
    const childCpu0 = childrenCpuSeconds();
    const snap0 = cpuSnapshot();
    const measured = () => samples.filter((s) => !s.warmup);
    const progress = setInterval(() => {
      const m = measured();
      const recent = m.filter((s) => s.received !== undefined && s.t0 >= performance.now() - PROGRESS_EVERY_MS).map((s) => s.received! - s.t0);
      const all = m.filter((s) => s.received !== undefined).map((s) => s.received! - s.t0);
      log(
        `sent ${m.length}, accepted ${m.filter((s) => s.status === 202).length}, received ${all.length}, ` +
          `p99 send->received ${fmt(dist(all).p99)} ms (last 5 s: ${fmt(dist(recent).p99)} ms), rss ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`,
      );
    }, PROGRESS_EVERY_MS);
    const sending = await sendAtRate(target, runTag, count, RATE, false, workflowId, inflight);
    const sendSeconds = (sending.endedAt - sending.startedAt) / 1000;

    // wait for answers and webhooks: at most GRACE_SECONDS after the last send
    const deadline = sending.endedAt + GRACE_SECONDS * 1000;
    while (performance.now() < deadline) {
      const m = measured();
      if (inflight.size === 0 && m.every((s) => s.received !== undefined || s.error)) break;
      await sleep(50);
    }
    const drainedAt = performance.now();
    // a short look for late duplicates
    await sleep(500);
    clearInterval(progress);
    stopProbes();
    profiling = false;
    loopDelay.disable();
    const load1 = os.loadavg();
    const cpu = process.cpuUsage(cpu0);
    const childCpu1 = childrenCpuSeconds();
    const snap1 = cpuSnapshot();
    sampleRss();

    const m = measured();
    const accepted = m.filter((s) => s.status === 202);
    const received = m.filter((s) => s.received !== undefined && s.received <= deadline);
    const late = m.filter((s) => s.received !== undefined && s.received > deadline).length;
    const lost = m.filter((s) => s.status === 202 && (s.received === undefined || s.received > deadline)).length;
    const rejected = m.filter((s) => s.status !== undefined && s.status !== 202);
    const failedRequests = m.filter((s) => s.status === undefined && s.error);
    const unanswered = m.filter((s) => s.status === undefined && !s.error);
    const duplicates = m.reduce((n, s) => n + Math.max(0, s.receipts - 1), 0);
    const withAll = received.filter((s) => s.accepted !== undefined);
    const lastReceived = Math.max(...received.map((s) => s.received!));
    const wallSeconds = (drainedAt - sending.startedAt) / 1000;

    const sendToAccepted = dist(accepted.map((s) => s.accepted! - s.t0));
    const sendToReceived = dist(received.map((s) => s.received! - s.t0));
    const acceptedToReceived = dist(withAll.map((s) => s.received! - s.accepted!));
    const beforeAccepted = withAll.filter((s) => s.received! < s.accepted!).length;

    const results = {
      benchmark: 'event-accepted to webhook-received latency',
      at: new Date().toISOString(),
      mode: target.mode,
      dataDirParent: TMPDIR,
      git: gitAtStart,
      settings: { rate: RATE, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, graceSeconds: GRACE_SECONDS, eventsPerRequest: 1, openLoop: true },
      host: { platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, totalMemMiB: Math.round(os.totalmem() / 2 ** 20) },
      counts: {
        sent: m.length,
        accepted: accepted.length,
        rejected: rejected.length,
        requestErrors: failedRequests.length,
        unansweredAtDeadline: unanswered.length,
        delivered: received.length,
        lost,
        late,
        duplicates,
        unmatchedWebhooks,
        webhookBeforeAccepted: beforeAccepted,
      },
      achievedRatePerSecond: Math.round((m.length / sendSeconds) * 100) / 100,
      deliveredRatePerSecond: Math.round((received.length / ((lastReceived - sending.startedAt) / 1000)) * 100) / 100,
      maxSendLagMs: Math.round(sending.maxLagMs * 10) / 10,
      latencyMs: {
        sendToReceived,
        sendToAccepted,
        acceptedToReceived,
      },
      cpu: {
        note: 'process = API + worker + PGlite + bench client + receiver (one Node process); temporalServer = the embedded dev server child process',
        processUserSeconds: Math.round(cpu.user / 1e4) / 100,
        processSystemSeconds: Math.round(cpu.system / 1e4) / 100,
        processCorePercent: Math.round(((cpu.user + cpu.system) / 1e6 / wallSeconds) * 1000) / 10,
        temporalServerSeconds: childCpu0 !== undefined && childCpu1 !== undefined ? Math.round((childCpu1 - childCpu0) * 100) / 100 : null,
        temporalServerCorePercent: childCpu0 !== undefined && childCpu1 !== undefined ? Math.round(((childCpu1 - childCpu0) / wallSeconds) * 1000) / 10 : null,
        wallSeconds: Math.round(wallSeconds * 100) / 100,
        idleBaseline: idle,
      },
      cpuByProcess: {
        note: 'bench/lib/procs.ts: CPU from the first measured send to the end of the drain; service = this Node process (API + worker + PGlite + the bench sender and receiver, which run in it); renderers = the template renderer child processes; devServer = the Temporal dev server; perAlertMs divides by the webhooks delivered',
        window: cpuWindow(snap0, snap1),
        perAlertMs: perUnitMs(cpuWindow(snap0, snap1), received.length),
      },
      memory: { peakRssMiB: Math.round(peakRssBytes / 2 ** 20), maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), atPeakMiB: peakBreakdownMiB() },
      hostLoad: {
        note: 'os.loadavg() (1, 5, 15 min) at the start and the end of the measured window; other processes on this host share its CPUs',
        start: load0.map((l) => Math.round(l * 100) / 100),
        end: load1.map((l) => Math.round(l * 100) / 100),
      },
      eventLoopDelayMs: {
        note: 'how late the event loop ran a 10 ms timer (the resolution subtracted)',
        p50: Math.round(lateMs(loopDelay.percentile(50)) * 100) / 100,
        p99: Math.round(lateMs(loopDelay.percentile(99)) * 100) / 100,
        max: Math.round(lateMs(loopDelay.max) * 100) / 100,
      },
      errors: [...new Set([...rejected, ...failedRequests].map((s) => s.error ?? `HTTP ${s.status}`))].slice(0, 5),
      profile: undefined as unknown,
      afterGrace: undefined as undefined | Record<string, unknown> & { secondsAfterLastSend: number; answered202: number; answeredError: number; stillOpen: number; deliveredSoFar: number; duplicatesSoFar: number },
      baseline: undefined as undefined | null | (Awaited<ReturnType<typeof runBaseline>> & { note: string; ratio: { p50: number | null; p99: number | null }; cpuByProcess: { window: CpuWindow; perMessageMs: ReturnType<typeof perUnitMs> } }),
    };
    if (PROFILE) {
      const r = (n: number) => Math.round(n * 10) / 10;
      const measuredSeconds = wallSeconds;
      const calls = [...timings.entries()]
        .map(([name, t]) => {
          const d = dist(t.values);
          return { name, n: t.n, totalMs: r(t.totalMs), busyPercentOfWall: r((t.totalMs / (measuredSeconds * 1000)) * 100), p50: d.p50, p99: d.p99, max: d.max };
        })
        .sort((a, b) => (a.name.startsWith('probe') ? 1 : 0) - (b.name.startsWith('probe') ? 1 : 0) || b.totalMs - a.totalMs)
        .slice(0, 14);
      const done = received.filter((s) => s.deliveryId && s.accepted !== undefined);
      const step = Math.max(1, Math.floor(done.length / HISTORY_SAMPLES));
      const picked = done.filter((_, i) => i % step === 0).slice(0, HISTORY_SAMPLES);
      const timeline = await historyTimeline(target.service, picked);
      results.profile = {
        note: 'calls: timed wrappers on the service db and Temporal client during the measured window (times include waiting for the single PGlite connection); timeline: median ms after t0 of each step, from the Temporal histories of sampled deliveries',
        calls,
        timeline,
      };
    }

    console.log('');
    console.log(`event-accepted to webhook-received latency, ${target.mode} (DATA_DIR under ${TMPDIR}), ${RATE}/s for ${SECONDS} s (open loop, 1 event per request)`);
    console.log('');
    const row = (name: string, d: Dist) =>
      `${name.padEnd(34)} ${String(d.count).padStart(6)} ${fmt(d.p50).padStart(9)} ${fmt(d.p95).padStart(9)} ${fmt(d.p99).padStart(9)} ${fmt(d.max).padStart(9)}`;
    console.log(`${'latency (ms)'.padEnd(34)} ${'n'.padStart(6)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}`);
    console.log(row('send -> webhook received', sendToReceived));
    console.log(row('send -> 202 accepted', sendToAccepted));
    console.log(row('202 accepted -> webhook received', acceptedToReceived));
    console.log('');
    const c = results.counts;
    console.log(
      `sent ${c.sent}, accepted ${c.accepted}, rejected ${c.rejected}, request errors ${c.requestErrors}, no answer by the deadline ${c.unansweredAtDeadline}, ` +
        `delivered ${c.delivered}, accepted but not delivered within the ${GRACE_SECONDS} s grace ${c.lost} ("lost" in the results file; see the line after the grace for those delivered later), duplicates ${c.duplicates}, unmatched ${c.unmatchedWebhooks}`,
    );
    console.log(`achieved send rate ${results.achievedRatePerSecond}/s (max send lag ${results.maxSendLagMs} ms), delivered rate ${results.deliveredRatePerSecond}/s`);
    console.log(
      `CPU: this process ${results.cpu.processUserSeconds}s user + ${results.cpu.processSystemSeconds}s sys (${results.cpu.processCorePercent}% of a core)` +
        (results.cpu.temporalServerSeconds !== null ? `, Temporal dev server ${results.cpu.temporalServerSeconds}s (${results.cpu.temporalServerCorePercent}% of a core)` : '') +
        ` over ${results.cpu.wallSeconds}s (idle baseline ${idle.processCorePercent}% / ${idle.temporalServerCorePercent ?? '-'}%); peak RSS ${results.memory.peakRssMiB} MiB`,
    );
    const peak = results.memory.atPeakMiB;
    if (peak) console.log(`memory at the peak (approximate): main thread's V8 heap ${peak.heapTotal} MiB (${peak.heapUsed} used), PGlite's WASM memory ${peak.wasm} MiB, ArrayBuffers ${peak.arrayBuffers} MiB, rest ${peak.rest} MiB (workflow threads' heaps, Temporal's core SDK, code, allocator)`);
    console.log(`event-loop delay p50 ${results.eventLoopDelayMs.p50} ms, p99 ${results.eventLoopDelayMs.p99} ms, max ${results.eventLoopDelayMs.max} ms; host load ${results.hostLoad.start.join(' ')} -> ${results.hostLoad.end.join(' ')} on ${results.host.cpus} CPUs`);
    console.log(cpuHeader('alert'));
    console.log(cpuRow(`service, ${RATE}/s`, results.cpuByProcess.window, c.delivered));
    console.log(`(service proc = this Node process: API + worker + PGlite + the bench's sender and receiver; renderer processes seen: ${results.cpuByProcess.window.renderersSeen})`);
    if (results.errors.length) console.log(`errors: ${results.errors.join(' | ')}`);
    if (results.profile) {
      const p = results.profile as { calls: { name: string; n: number; totalMs: number; busyPercentOfWall: number; p50: number; p99: number; max: number }[]; timeline: { step: string; medianMs: number; p95Ms: number; n: number }[] };
      console.log('');
      console.log('profile: service calls in the measured window (time includes waiting for the single PGlite connection)');
      console.log(`${'call'.padEnd(72)} ${'n'.padStart(6)} ${'total ms'.padStart(9)} ${'%wall'.padStart(6)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`);
      for (const k of p.calls) {
        console.log(`${k.name.padEnd(72)} ${String(k.n).padStart(6)} ${fmt(k.totalMs).padStart(9)} ${fmt(k.busyPercentOfWall).padStart(6)} ${fmt(k.p50).padStart(8)} ${fmt(k.p99).padStart(8)} ${fmt(k.max).padStart(8)}`);
      }
      console.log('');
      console.log(`profile: timeline of ${p.timeline[0]?.n ?? 0} sampled deliveries (ms after the event POST was sent; Temporal history event times)`);
      for (const t of p.timeline) console.log(`  ${t.step.padEnd(60)} median ${fmt(t.medianMs).padStart(9)}   p95 ${fmt(t.p95Ms).padStart(9)}   (n ${t.n})`);
    }

    console.log('');
    if (inflight.size > 0) {
      // let requests still open finish (bounded) so the stop below does not cut them off mid-call
      log(`waiting (at most ${AFTER_SECONDS} s) for ${inflight.size} event requests still open ...`);
      await Promise.race([Promise.all([...inflight]), sleep(AFTER_SECONDS * 1000)]);
    }
    // what happened after the grace period: answers that came late, webhooks that still arrived (deliveries are durable)
    results.afterGrace = {
      note: 'counted just before the stop, after waiting for open event requests; not part of the latency figures',
      secondsAfterLastSend: Math.round((performance.now() - sending.endedAt) / 100) / 10,
      answered202: m.filter((s) => s.status === 202).length,
      answeredError: m.filter((s) => (s.status !== undefined && s.status !== 202) || s.error).length,
      stillOpen: m.filter((s) => s.status === undefined && !s.error).length,
      deliveredSoFar: m.filter((s) => s.received !== undefined).length,
      duplicatesSoFar: m.reduce((n, s) => n + Math.max(0, s.receipts - 1), 0),
    };
    if (BASELINE && webhookTemplate) {
      log(`baseline: the same webhook (${Buffer.byteLength(webhookTemplate.body)} body bytes, Standard Webhooks signed) POSTed straight to the receiver, no Temporal: ${count} at ${RATE}/s, open loop ...`);
      const bSnap0 = cpuSnapshot();
      const b = await runBaseline(receiver.url, count, RATE, GRACE_SECONDS);
      const bWindow = cpuWindow(bSnap0, cpuSnapshot());
      const ratio = (service: number, base: number) => (Number.isFinite(service) && Number.isFinite(base) && base > 0 ? Math.round((service / base) * 10) / 10 : null);
      results.baseline = {
        note: 'the first webhook the service delivered in this run (same body bytes, same headers; signature headers made fresh per request with a test secret) POSTed from this process to the same receiver with an undici keep-alive Agent, open loop at the same rate for the same number of events, after the service measurement (the service idle meanwhile); ratio = service send->webhook / baseline send->received',
        ...b,
        ratio: { p50: ratio(sendToReceived.p50, b.sendToReceived.p50), p99: ratio(sendToReceived.p99, b.sendToReceived.p99) },
        cpuByProcess: { window: bWindow, perMessageMs: perUnitMs(bWindow, b.delivered) },
      };
      const bl = results.baseline;
      console.log('');
      console.log(`baseline, no Temporal: the same webhook POSTed straight to the receiver, ${RATE}/s for ${count} events (open loop)`);
      console.log(`${'latency (ms)'.padEnd(34)} ${'n'.padStart(6)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}`);
      console.log(row('baseline send -> received', bl.sendToReceived));
      console.log(row('service send -> webhook received', sendToReceived));
      console.log(`ratio service/baseline: p50 ${bl.ratio.p50 ?? '-'}x, p99 ${bl.ratio.p99 ?? '-'}x`);
      console.log('');
      console.log('CPU per alert by process, service beside the no-Temporal baseline (the baseline\'s "service proc" is this process sending and receiving, the service idle)');
      console.log(cpuHeader('alert'));
      console.log(cpuRow(`service, ${RATE}/s`, results.cpuByProcess.window, c.delivered));
      console.log(cpuRow(`baseline (no Temporal), ${RATE}/s`, bWindow, b.delivered));
      console.log(`baseline sent ${bl.sent}, delivered ${bl.delivered}, lost ${bl.lost}, duplicates ${bl.duplicates}, request errors ${bl.requestErrors}; achieved rate ${bl.achievedRatePerSecond}/s (max send lag ${bl.maxSendLagMs} ms), delivered rate ${bl.deliveredRatePerSecond}/s; CPU of this process ${bl.processCpuSeconds}s`);
      console.log('');
    } else if (BASELINE) {
      log('baseline skipped: no webhook arrived to copy');
      results.baseline = null;
    }
    const out = process.env.BENCH_OUT ?? path.join(__dirname, 'results', `latency-${results.at.replace(/[:.]/g, '-')}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    const a = results.afterGrace;
    log(`${a.secondsAfterLastSend} s after the last send: ${a.answered202} answered 202, ${a.answeredError} answered with an error, ${a.stillOpen} still open; ${a.deliveredSoFar} webhooks received, ${a.duplicatesSoFar} duplicates`);
    log(`results written to ${path.relative(process.cwd(), out)}`);
    if (lost > 0 || rejected.length > 0 || failedRequests.length > 0 || unanswered.length > 0) {
      log(`WARNING: ${c.sent - c.delivered} of ${c.sent} events were not delivered within ${GRACE_SECONDS} s of the last send`);
      if (process.env.BENCH_STRICT === '1') exitCode = 1;
    }
  } catch (err) {
    console.error(`[bench] failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  } finally {
    clearInterval(sampler);
    log('stopping the service ...');
    await target.service.stop();
    await receiver.close();
    target.cleanup();
    log('stopped');
  }
  process.exit(exitCode);
}

void main();
