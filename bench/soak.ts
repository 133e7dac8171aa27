/**
 * `npm run bench:soak`: memory over a steady load (issue 5, "Soak").
 *
 * Starts the embedded stack in this process as bench/latency.ts does
 * (bench/lib/stack.ts: Temporal dev server child, PGlite, worker, API), a
 * receiver on 127.0.0.1, one failure config, and sends `run.failed` events
 * open loop at a steady rate. Every SOAK_SAMPLE_SECONDS it takes a sample:
 * this process's RSS, V8 heapUsed (after `global.gc()` when run with
 * --expose-gc, as the npm script does) and external memory, the dev server's
 * RSS (VmRSS of this process's `temporal server start-dev` child, /proc/<pid>/status), webhooks delivered
 * so far and the p99 send->webhook of the webhooks received in that window,
 * and prints it as a line.
 *
 * Judgement (samples taken while sending): the first quarter is warm-up and
 * skipped; the mean of the second quarter is compared with the mean of the
 * last quarter (MiB, and %/hour over the time between the two quarters'
 * midpoints), and a least-squares slope over every post-warm-up sample gives
 * MiB/hour. A metric shows "no growth" when its slope is below
 * SOAK_GROWTH_PERCENT_PER_HOUR (default 5) % of its post-warm-up mean per
 * hour; the headline verdict is heapUsed's (RSS follows the allocator and the
 * page cache, and is judged the same way for reference). Then it waits up to
 * SOAK_GRACE_SECONDS for the last webhooks and counts delivered / lost /
 * duplicates (by event id; webhook-id = delivery id is one per event here).
 *
 * The bench's own bookkeeping is fixed-size (typed arrays sized for the run
 * before it starts), so it does not add growth of its own.
 *
 * Environment:
 *   SOAK_RATE            events/s (default 10)
 *   SOAK_MINUTES         minutes of sending (default 10)
 *   SOAK_SAMPLE_SECONDS  seconds between samples (default 10)
 *   SOAK_GRACE_SECONDS   how long after the last send a webhook may still count (default 30)
 *   SOAK_GROWTH_PERCENT_PER_HOUR  the "no growth" threshold (default 5)
 *   SOAK_STRICT          1: exit 1 when heapUsed grows or an event is lost (default: exit 0 whenever the run completed)
 *   SOAK_OUT             results file base (default bench/results/soak-<timestamp>; .json and .md are written)
 *   BENCH_TMPDIR         parent of the temp DATA_DIR (default os.tmpdir())
 *   BENCH_KEEP_DATA      1 keeps the temp DATA_DIR
 *   TEMPORAL_ADDRESS + DATABASE_URL (+ ALERTS_ENCRYPTION_KEYS, ALERTS_API_TOKENS): an existing cluster and database
 *
 * Traffic goes only to 127.0.0.1.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { childrenCpuSeconds, devServerPids, createFailureConfig, failedRunEvent, gitState, listenLocal, procRssBytes, sleep, startTarget, type Target } from './lib/stack';
import { dist, fmt, linearSlope, mean, round } from './lib/stats';
import { commitLine, hostLine, markdownTable, positiveEnv, ROOT, textTable } from './lib/runs';

const RATE = positiveEnv('SOAK_RATE', 10);
const MINUTES = positiveEnv('SOAK_MINUTES', 10);
const SAMPLE_SECONDS = positiveEnv('SOAK_SAMPLE_SECONDS', 10);
const GRACE_SECONDS = positiveEnv('SOAK_GRACE_SECONDS', 30);
const GROWTH_PERCENT_PER_HOUR = positiveEnv('SOAK_GROWTH_PERCENT_PER_HOUR', 5);
const TMPDIR = process.env.BENCH_TMPDIR || os.tmpdir();
const MiB = 2 ** 20;
const gc = (globalThis as { gc?: () => void }).gc;

const log = (line: string) => console.log(`[soak] ${line}`);

// ---------------------------------------------------------------- per-event bookkeeping, fixed size

const COUNT = Math.round(RATE * MINUTES * 60);
const sentAt = new Float64Array(COUNT).fill(NaN);
const receivedAt = new Float64Array(COUNT).fill(NaN);
const receipts = new Uint16Array(COUNT);
/** 0: no answer yet, -1: request failed, else the HTTP status */
const answer = new Int16Array(COUNT);
let runTag = '';
let unmatchedWebhooks = 0;
let delivered = 0;
/** send->received of the webhooks received since the last sample */
let windowLatencies: number[] = [];

function eventIndex(eventId: string | undefined): number {
  const prefix = `evt_soak_${runTag}_`;
  if (!eventId?.startsWith(prefix)) return -1;
  const i = Number(eventId.slice(prefix.length));
  return Number.isInteger(i) && i >= 0 && i < COUNT ? i : -1;
}

function startReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      let i = -1;
      try {
        i = eventIndex((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { event?: { id?: string } }).event?.id);
      } catch {
        /* not JSON */
      }
      if (i < 0) {
        unmatchedWebhooks++;
        return;
      }
      receipts[i]++;
      if (Number.isNaN(receivedAt[i])) {
        receivedAt[i] = at;
        delivered++;
        windowLatencies.push(at - sentAt[i]);
      }
    });
  });
  return listenLocal(server);
}

let inflight = 0;
function sendEvent(target: Target, i: number, workflowId: string): void {
  const payload = failedRunEvent(`evt_soak_${runTag}_${i}`, `run_soak_${runTag}_${i}`, workflowId);
  sentAt[i] = performance.now();
  inflight++;
  fetch(`${target.apiUrl}/api/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
    body: payload,
  })
    .then(async (res) => {
      answer[i] = res.status;
      await res.arrayBuffer();
    })
    .catch(() => {
      answer[i] = -1;
    })
    .finally(() => inflight--);
}

// ---------------------------------------------------------------- samples

interface MemorySample {
  /** seconds since the first send */
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  devServerRssMiB: number | null;
  sent: number;
  delivered: number;
  /** p99 send->webhook of the webhooks received in this window */
  windowP99Ms: number | null;
  windowReceived: number;
}

function takeSample(startedAt: number, sent: number): MemorySample {
  if (gc) gc();
  const m = process.memoryUsage();
  const pids = devServerPids();
  const devRss = pids?.length ? pids.reduce((sum, pid) => sum + (procRssBytes(pid) ?? 0), 0) : undefined;
  const window = windowLatencies;
  windowLatencies = [];
  const r = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
  return {
    t: Math.round((performance.now() - startedAt) / 100) / 10,
    rssMiB: r(m.rss),
    heapUsedMiB: r(m.heapUsed),
    heapTotalMiB: r(m.heapTotal),
    externalMiB: r(m.external),
    devServerRssMiB: devRss === undefined ? null : r(devRss),
    sent,
    delivered,
    windowP99Ms: window.length ? dist(window).p99 : null,
    windowReceived: window.length,
  };
}

type Metric = 'heapUsedMiB' | 'rssMiB' | 'externalMiB' | 'devServerRssMiB';
const METRICS: { key: Metric; label: string }[] = [
  { key: 'heapUsedMiB', label: 'V8 heapUsed (service process)' },
  { key: 'rssMiB', label: 'RSS (service process)' },
  { key: 'externalMiB', label: 'external memory (service process)' },
  { key: 'devServerRssMiB', label: 'RSS (Temporal dev server)' },
];

/** Quarter means and a regression slope of one metric over the samples taken while sending. */
function growth(samples: MemorySample[], key: Metric, durationSeconds: number) {
  const points = samples.filter((s) => s[key] !== null).map((s) => ({ t: s.t, v: s[key] as number }));
  const q = durationSeconds / 4;
  const afterWarmUp = points.filter((p) => p.t >= q);
  const second = afterWarmUp.filter((p) => p.t < 2 * q).map((p) => p.v);
  const last = afterWarmUp.filter((p) => p.t >= 3 * q).map((p) => p.v);
  const secondMean = mean(second);
  const lastMean = mean(last);
  const hoursBetween = (2 * q) / 3600; // from the middle of the second quarter to the middle of the last
  const diff = lastMean - secondMean;
  const slopePerHour = linearSlope(afterWarmUp.map((p) => p.t / 3600), afterWarmUp.map((p) => p.v));
  // the second half alone: a bounded cache that filled during the first half levels off here
  const secondHalf = points.filter((p) => p.t >= 2 * q);
  const lastHalfSlopePerHour = linearSlope(secondHalf.map((p) => p.t / 3600), secondHalf.map((p) => p.v));
  const postMean = mean(afterWarmUp.map((p) => p.v));
  const thresholdPerHour = (GROWTH_PERCENT_PER_HOUR / 100) * postMean;
  const judged = afterWarmUp.length >= 3 && Number.isFinite(slopePerHour);
  return {
    samplesAfterWarmUp: afterWarmUp.length,
    secondQuarterMeanMiB: round(secondMean),
    lastQuarterMeanMiB: round(lastMean),
    lastMinusSecondMiB: round(diff, 2),
    quarterChangePercentPerHour: round((diff / secondMean / hoursBetween) * 100, 2),
    slopeMiBPerHour: round(slopePerHour, 2),
    slopePercentOfMeanPerHour: round((slopePerHour / postMean) * 100, 2),
    lastHalfSlopeMiBPerHour: round(lastHalfSlopePerHour, 2),
    thresholdMiBPerHour: round(thresholdPerHour, 2),
    verdict: !judged ? 'not enough samples' : slopePerHour < thresholdPerHour ? 'no growth' : 'growth',
  };
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const at = new Date().toISOString();
  const git = gitState();
  runTag = Date.now().toString(36);
  if (!gc) log('note: global.gc is not exposed (run with node --expose-gc, as `npm run bench:soak` does); heapUsed is sampled without a collection first');
  const receiver = await startReceiver();
  log(`receiver on ${receiver.url}`);
  log('starting the service (embedded default unless TEMPORAL_ADDRESS is set) ...');
  const bootStarted = performance.now();
  const target = await startTarget({ tmpdir: TMPDIR, taskQueue: 'meshhook-alerts-soak', keepData: process.env.BENCH_KEEP_DATA === '1', log });
  log(`service up in ${((performance.now() - bootStarted) / 1000).toFixed(1)} s: API ${target.apiUrl}, Temporal ${target.service.temporalAddress}; dev server pid ${devServerPids()?.join(', ') || '-'}`);
  let exitCode = 0;
  try {
    const workflowId = `wf_soak_${runTag}`;
    const configId = await createFailureConfig(target, workflowId, receiver.url, 'Soak failures');
    log(`config ${configId} created for ${workflowId}`);
    log(`sending ${COUNT} events: ${RATE}/s for ${MINUTES} min, open loop; a sample every ${SAMPLE_SECONDS} s`);
    console.log(`[soak] ${'t s'.padStart(6)} ${'sent'.padStart(7)} ${'delivered'.padStart(9)} ${'p99 ms'.padStart(8)} ${'rss MiB'.padStart(8)} ${'heap MiB'.padStart(9)} ${'ext MiB'.padStart(8)} ${'dev srv MiB'.padStart(11)}`);

    const samples: MemorySample[] = [];
    const cpu0 = process.cpuUsage();
    const childCpu0 = childrenCpuSeconds();
    const startedAt = performance.now();
    const interval = 1000 / RATE;
    let sent = 0;
    let nextSampleAt = startedAt + SAMPLE_SECONDS * 1000;
    let maxLagMs = 0;
    const sample = () => {
      const s = takeSample(startedAt, sent);
      samples.push(s);
      console.log(
        `[soak] ${fmt(s.t).padStart(6)} ${String(s.sent).padStart(7)} ${String(s.delivered).padStart(9)} ${fmt(s.windowP99Ms).padStart(8)} ` +
          `${fmt(s.rssMiB).padStart(8)} ${fmt(s.heapUsedMiB).padStart(9)} ${fmt(s.externalMiB).padStart(8)} ${fmt(s.devServerRssMiB).padStart(11)}`,
      );
    };
    for (let i = 0; i < COUNT; i++) {
      const due = startedAt + i * interval;
      if (due >= nextSampleAt) {
        sample();
        nextSampleAt += SAMPLE_SECONDS * 1000;
      }
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      maxLagMs = Math.max(maxLagMs, performance.now() - due);
      sendEvent(target, i, workflowId);
      sent++;
    }
    const endedAt = performance.now();
    sample(); // the end of sending
    const durationSeconds = (endedAt - startedAt) / 1000;

    log(`sending done; waiting at most ${GRACE_SECONDS} s for the last webhooks ...`);
    const deadline = endedAt + GRACE_SECONDS * 1000;
    while (performance.now() < deadline && (inflight > 0 || delivered < countAnswered202())) await sleep(100);
    await sleep(500); // a short look for late duplicates
    const cpu = process.cpuUsage(cpu0);
    const childCpu1 = childrenCpuSeconds();
    const wallSeconds = (performance.now() - startedAt) / 1000;

    let accepted = 0;
    let rejected = 0;
    let requestErrors = 0;
    let unanswered = 0;
    let duplicates = 0;
    let lost = 0;
    const latencies: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      if (answer[i] === 202) accepted++;
      else if (answer[i] === -1) requestErrors++;
      else if (answer[i] === 0) unanswered++;
      else rejected++;
      duplicates += Math.max(0, receipts[i] - 1);
      if (Number.isNaN(receivedAt[i])) {
        if (answer[i] === 202) lost++;
      } else latencies.push(receivedAt[i] - sentAt[i]);
    }

    const judged = Object.fromEntries(METRICS.map(({ key }) => [key, growth(samples, key, durationSeconds)])) as Record<Metric, ReturnType<typeof growth>>;
    const verdict = judged.heapUsedMiB.verdict;
    const results = {
      benchmark: 'soak: memory over a steady load',
      at,
      mode: target.mode,
      dataDirParent: TMPDIR,
      git,
      host: hostLine(),
      settings: { rate: RATE, minutes: MINUTES, sampleSeconds: SAMPLE_SECONDS, graceSeconds: GRACE_SECONDS, growthPercentPerHourThreshold: GROWTH_PERCENT_PER_HOUR, gcBeforeSample: Boolean(gc) },
      judgementRule:
        `samples taken while sending; the first quarter is warm-up; quarter change = mean of the last quarter - mean of the second quarter, per hour over the ${round((durationSeconds / 2 / 60), 1)} min between their midpoints; ` +
        `slope = least squares over the post-warm-up samples; "no growth" when the slope is below ${GROWTH_PERCENT_PER_HOUR} % of the post-warm-up mean per hour; the verdict is heapUsed's`,
      verdict,
      growth: judged,
      counts: { sent: COUNT, accepted, rejected, requestErrors, unansweredAtDeadline: unanswered, delivered: latencies.length, lost, duplicates, unmatchedWebhooks },
      sendSeconds: round(durationSeconds, 2),
      maxSendLagMs: round(maxLagMs, 1),
      latencyMs: { sendToReceived: dist(latencies) },
      cpu: {
        processSeconds: round((cpu.user + cpu.system) / 1e6, 2),
        processCorePercent: round(((cpu.user + cpu.system) / 1e6 / wallSeconds) * 100, 1),
        temporalServerSeconds: childCpu0 !== undefined && childCpu1 !== undefined ? round(childCpu1 - childCpu0, 2) : null,
        temporalServerCorePercent: childCpu0 !== undefined && childCpu1 !== undefined ? round(((childCpu1 - childCpu0) / wallSeconds) * 100, 1) : null,
        wallSeconds: round(wallSeconds, 2),
      },
      samples,
    };

    const growthHeader = ['metric', '2nd quarter mean MiB', 'last quarter mean MiB', 'change MiB', 'change %/hour', 'slope MiB/hour', 'slope % of mean/hour', 'last-half slope MiB/hour', 'threshold MiB/hour', 'verdict'];
    const growthRows = METRICS.map(({ key, label }) => {
      const g = judged[key];
      return [label, g.secondQuarterMeanMiB, g.lastQuarterMeanMiB, g.lastMinusSecondMiB, g.quarterChangePercentPerHour, g.slopeMiBPerHour, g.slopePercentOfMeanPerHour, g.lastHalfSlopeMiBPerHour, g.thresholdMiBPerHour, g.verdict];
    });
    const c = results.counts;
    const l = results.latencyMs.sendToReceived;
    const countsLine =
      `sent ${c.sent}, accepted ${c.accepted}, rejected ${c.rejected}, request errors ${c.requestErrors}, unanswered ${c.unansweredAtDeadline}, ` +
      `delivered ${c.delivered}, lost ${c.lost}, duplicates ${c.duplicates}, unmatched ${c.unmatchedWebhooks}`;
    const latencyLine = `send -> webhook received over the whole run: p50 ${fmt(l.p50)} ms, p95 ${fmt(l.p95)} ms, p99 ${fmt(l.p99)} ms, max ${fmt(l.max)} ms (n ${l.count})`;
    const cpuLine =
      `CPU: service process ${results.cpu.processSeconds} s (${results.cpu.processCorePercent}% of a core), Temporal dev server ${results.cpu.temporalServerSeconds ?? '-'} s ` +
      `(${results.cpu.temporalServerCorePercent ?? '-'}% of a core) over ${results.cpu.wallSeconds} s; max send lag ${results.maxSendLagMs} ms`;
    console.log('');
    console.log(`soak: ${RATE}/s for ${MINUTES} min, ${samples.length} samples every ${SAMPLE_SECONDS} s${gc ? ' (after global.gc())' : ' (no gc before sampling)'}`);
    console.log(textTable(growthHeader, growthRows));
    console.log(`verdict (heapUsed): ${verdict.toUpperCase()} (slope ${judged.heapUsedMiB.slopeMiBPerHour ?? '-'} MiB/hour, threshold ${GROWTH_PERCENT_PER_HOUR} % of the mean = ${judged.heapUsedMiB.thresholdMiBPerHour ?? '-'} MiB/hour)`);
    console.log(countsLine);
    console.log(latencyLine);
    console.log(cpuLine);

    const base = process.env.SOAK_OUT ?? path.join(__dirname, 'results', `soak-${at.replace(/[:.]/g, '-')}`);
    fs.mkdirSync(path.dirname(base), { recursive: true });
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    const passed = Object.entries(process.env)
      .filter(([k]) => /^(SOAK_|BENCH_|TEMPORAL_|ALERTS_)/.test(k) && k !== 'SOAK_OUT')
      .map(([k, v]) => `${k}=${v}`);
    const commit = commitLine(git);
    const sampleHeader = ['t s', 'sent', 'delivered', 'window p99 ms', 'RSS MiB', 'heapUsed MiB', 'external MiB', 'dev server RSS MiB'];
    fs.writeFileSync(
      `${base}.md`,
      [
        '## Soak: memory over a steady load',
        '',
        `Command: \`${passed.length ? `${passed.join(' ')} ` : ''}npm run bench:soak\` (${RATE}/s for ${MINUTES} min, open loop, ${target.mode}, ` +
          `a sample every ${SAMPLE_SECONDS} s${gc ? ' after `global.gc()`' : ' without gc'}). Commit ${commit}. Host: ${hostLine()}. Run ${at}.`,
        '',
        markdownTable(growthHeader, growthRows),
        '',
        `- Verdict (heapUsed): **${verdict}**. ${results.judgementRule}.`,
        `- ${countsLine}.`,
        `- ${latencyLine}.`,
        `- ${cpuLine}.`,
        `- "Service process" is the one Node process holding the API, the worker, PGlite, the bench client and the receiver (whose bookkeeping is fixed-size).`,
        '',
        '<details><summary>samples</summary>',
        '',
        markdownTable(sampleHeader, samples.map((s) => [s.t, s.sent, s.delivered, s.windowP99Ms, s.rssMiB, s.heapUsedMiB, s.externalMiB, s.devServerRssMiB])),
        '',
        '</details>',
        '',
        `Results: \`${path.relative(ROOT, `${base}.json`)}\`.`,
        '',
      ].join('\n'),
    );
    log(`results written to ${path.relative(process.cwd(), `${base}.json`)} and ${path.relative(process.cwd(), `${base}.md`)}`);
    if (process.env.SOAK_STRICT === '1' && (verdict !== 'no growth' || lost > 0 || c.delivered < c.sent)) exitCode = 1;
  } catch (err) {
    console.error(`[soak] failed: ${(err as Error).stack ?? err}`);
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

function countAnswered202(): number {
  let n = 0;
  for (let i = 0; i < COUNT; i++) if (answer[i] === 202) n++;
  return n;
}

void main();
