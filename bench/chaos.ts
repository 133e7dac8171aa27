/**
 * Chaos run: zero loss while things break (issue 5 and the hardening issue's fault test, `npm run chaos`).
 *
 * Starts, in the production topology, a file-backed Temporal dev server, the
 * API and N workers as `node --import tsx` child processes on a real
 * PostgreSQL (DATABASE_URL, or a throwaway server from test/support/postgres.ts),
 * and a receiver on 127.0.0.1 that answers 30 % of requests 503 and never
 * answers 5 % (the configs' webhook.timeoutMs is 1 s). While it sends events:
 *
 * - a worker is SIGKILLed every few seconds (a new one is started each time);
 * - every `faultEveryMs` one more fault, in turn: the API SIGKILLed (a new one
 *   started on the same port), PostgreSQL restarted (immediate shutdown, the
 *   first one fast: see test/support/postgres-restart.ts; skipped, and said so,
 *   when the server is not ours), the Temporal dev server SIGKILLed and the dev
 *   server stopped gracefully; each stays down `outageMs` and is started again on
 *   the same port (and SQLite file or data directory).
 *
 * Two kinds of alerts are sent, like MeshHook would: resending an event on a
 * connection error, a timeout and a 503 until it is accepted (the event ids
 * make that safe), and counting every answer of every API route called.
 *
 * - immediate: `run.failed` events at `rate`/s to a `failure` config;
 * - delay watches: `run.started` at `delay.runsPerSecond` to a
 *   `{ type: 'delay', thresholdSeconds: T }` config, each run finished
 *   (`run.succeeded`, occurredAt the time it was meant to be sent) in turn
 *   before the threshold (T/3: expect `suppressed` and no webhook), just after
 *   it (T + 1.5 s), long after it (3T) or never (each: expect `delivered`).
 *   A finishing event is sent once its run.started was accepted (MeshHook
 *   reports a run's events in order). A run that finished in time but whose
 *   finishing event could only be accepted after its deadline (the API, the
 *   store or Temporal was down) may legitimately alert: it is counted as
 *   "in time, accepted late", either status fine as long as the webhooks agree.
 *
 * Then it waits (bounded) for every delivery to end, reads each delay
 * delivery's status from GET /api/alerts/deliveries/<id>, and checks:
 *
 * - every accepted immediate alert and every late run's delay alert reached the
 *   receiver (a 2xx answer, by `webhook-id`): zero lost;
 * - zero wrong statuses: immediate `delivered`; a run finished in time
 *   `suppressed` with no request to the receiver; a late run `delivered`;
 * - zero 5xx answers other than 503 from any route, and no API exit of its own;
 * - duplicates (more than one 2xx for one webhook-id: at-least-once, a POST whose
 *   answer was lost to a kill or an outage is sent again) are counted, each
 *   with the fault that explains it; one with no fault between its 2xx and the
 *   POST again is a second send, and fails the run;
 * - every request the receiver saw has its `alert_logs` row (rows per delivery
 *   >= requests seen for it; lost attempts are logged by the next attempt).
 *
 * Environment: CHAOS_SECONDS (600), CHAOS_RATE (immediate alerts/s, 6: what this 2-core machine delivers under the kills),
 * CHAOS_DELAY_RATE (delay runs/s, 1), CHAOS_DELAY_THRESHOLD_SECONDS (6), CHAOS_WORKERS (2), CHAOS_KILL_EVERY_MS (5000),
 * CHAOS_FAULT_EVERY_MS (20000), CHAOS_DRAIN_SECONDS (600), CHAOS_OUT (results file, default
 * bench/results/chaos-<timestamp>.json), DATABASE_URL (then PostgreSQL is not restarted).
 * test/chaos.test.ts runs the same runner with small parameters.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Client } from 'pg';
import { newKeySpec } from '../lib/crypto';
import { startDevServer, type DevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { startServiceProcess, type ServiceProcess } from '../test/support/processes';
import { freePort } from '../runtime/host';

export type FaultKind = 'api-kill' | 'postgres-restart' | 'temporal-kill' | 'temporal-restart';
/** the order faults come in, over and over */
export const FAULT_CYCLE: readonly FaultKind[] = ['api-kill', 'postgres-restart', 'temporal-kill', 'temporal-restart'];

export interface ChaosOptions {
  /** how long events are sent */
  seconds: number;
  /** immediate (`run.failed`) alerts per second */
  rate: number;
  /** delay watches: runs started per second, and the config's threshold */
  delay: { runsPerSecond: number; thresholdSeconds: number };
  /** workers running at once */
  workers: number;
  /** a worker is SIGKILLed (and a new one started) this often */
  killEveryMs: number;
  /** one fault of `faults` (in turn, from the first) this often from the first send, one at a time */
  faultEveryMs: number;
  /** default FAULT_CYCLE */
  faults?: readonly FaultKind[];
  /** how long a killed or stopped API, dev server or PostgreSQL stays down before it is started again (3000) */
  outageMs?: number;
  /**
   * restarts the PostgreSQL server of `databaseUrl` (test/support/postgres-restart.ts); absent (its server is
   * not ours), postgres-restart faults are skipped and `postgresNotRestarted` says why
   */
  restartPostgres?: (downForMs: number) => Promise<{ downMs: number; mode: string }>;
  postgresNotRestarted?: string;
  /** how long to wait, after the last event, for every delivery to end */
  drainTimeoutMs: number;
  /** PostgreSQL database the service uses (made empty for this run) */
  databaseUrl: string;
  /** share of requests answered 503 (0.30) and left without answer (0.05) */
  failShare?: number;
  hangShare?: number;
  /** progress output every ms (10 s) */
  progressEveryMs?: number;
  log?: (line: string) => void;
}

export type DelayKind = 'before' | 'just-after' | 'long-after' | 'never';
const DELAY_KINDS: readonly DelayKind[] = ['before', 'just-after', 'long-after', 'never'];

/** One delay-watch run as the sender saw it (times in ms since the epoch). */
export interface DelayRun {
  runId: string;
  kind: DelayKind;
  deliveryId: string;
  /** run.started's occurredAt (its first send); the deadline is this + threshold */
  startedAtMs: number;
  deadlineMs: number;
  startAcceptedAtMs?: number;
  /** the finishing event's occurredAt: when the sender meant to send it */
  finishedAtMs?: number;
  finishAcceptedAtMs?: number;
  /** an event of this run was never accepted */
  notAccepted?: boolean;
}

export type DelayVerdict = 'ok' | 'ambiguous' | 'lost' | 'wrong' | 'lost and wrong' | 'not accepted';

/**
 * How one delay run ended against what it should have done. `status` is the delivery's final status,
 * `requests` and `delivered` the receiver's requests and 2xx answers for its delivery id.
 */
export function judgeDelayRun(run: DelayRun, status: string | undefined, requests: number, delivered: number): DelayVerdict {
  if (run.notAccepted) return 'not accepted';
  const inTime = run.finishedAtMs !== undefined && run.finishedAtMs <= run.deadlineMs;
  if (inTime && run.finishAcceptedAtMs! > run.deadlineMs) {
    // the deadline passed before the service could know: either outcome, as long as the receiver agrees
    const consistent = (status === 'suppressed' && requests === 0) || (status === 'delivered' && delivered > 0);
    return consistent ? 'ambiguous' : 'wrong';
  }
  if (inTime) return status === 'suppressed' && requests === 0 ? 'ok' : 'wrong';
  const lost = delivered === 0;
  const wrong = status !== 'delivered';
  return lost && wrong ? 'lost and wrong' : lost ? 'lost' : wrong ? 'wrong' : 'ok';
}

/** A fault as a duplicate is judged against it (ms since the epoch): a worker SIGKILL has no length. */
export interface FaultSpan {
  kind: FaultKind | 'worker-kill';
  fromMs: number;
  toMs: number;
}

/**
 * How long before the receiver's 2xx a fault can begin and still cost that 2xx its record: the POST
 * was on its way (sent, not yet answered) when its worker was killed or its store went away.
 */
export const IN_FLIGHT_MS = 500;

/** Alerts POSTed again after a 2xx (the same `webhook-id`), and what explains each extra POST. */
export interface Duplicates {
  deliveries: number;
  extraPosts: number;
  /**
   * extra 2xx POSTs by the fault that explains them: of the faults under way between the earlier 2xx
   * (less IN_FLIGHT_MS) and the POST again, the one that began nearest the 2xx. A kill or an outage there can lose the answer
   * before its log row is written, and the next run of the step cannot know the receiver has it.
   */
  byCause: Partial<Record<FaultSpan['kind'], number>>;
  /** delivery ids POSTed again after a 2xx with no fault in between: a second send, a bug (at most 20) */
  unexplained: string[];
  /** ms from the earlier 2xx to the start of the fault that explains the extra POST (negative: it began first) */
  msFrom2xxToFault: { min: number; p50: number; max: number } | null;
}

/**
 * Counts the alerts whose receiver answered 2xx more than once, and names the fault behind each extra
 * POST. `histories`: per delivery id, the receiver's requests in order (epoch ms, answer).
 */
export function attributeDuplicates(histories: Iterable<[string, { atMs: number; answer: string }[]]>, faults: FaultSpan[]): Duplicates {
  const d: Duplicates = { deliveries: 0, extraPosts: 0, byCause: {}, unexplained: [], msFrom2xxToFault: null };
  const gaps: number[] = [];
  for (const [id, history] of histories) {
    const oks = history.filter((h) => h.answer === '2xx').map((h) => h.atMs);
    if (oks.length < 2) continue;
    d.deliveries++;
    for (let i = 1; i < oks.length; i++) {
      d.extraPosts++;
      const [earlier, again] = [oks[i - 1]!, oks[i]!];
      // of the faults under way in between, the one that began nearest the 2xx (an outage begun long
      // before, a kill next to it: the kill)
      const cause = faults
        .filter((f) => f.toMs >= earlier - IN_FLIGHT_MS && f.fromMs <= again)
        .reduce<FaultSpan | undefined>((best, f) => (!best || Math.abs(f.fromMs - earlier) < Math.abs(best.fromMs - earlier) ? f : best), undefined);
      if (!cause) {
        if (d.unexplained.length < 20) d.unexplained.push(id);
        continue;
      }
      d.byCause[cause.kind] = (d.byCause[cause.kind] ?? 0) + 1;
      gaps.push(cause.fromMs - earlier);
    }
  }
  if (gaps.length) {
    gaps.sort((a, b) => a - b);
    d.msFrom2xxToFault = { min: gaps[0]!, p50: gaps[Math.floor((gaps.length - 1) / 2)]!, max: gaps[gaps.length - 1]! };
  }
  return d;
}

export interface FaultRecord {
  kind: FaultKind;
  /** from the first send */
  atSeconds: number;
  /** until the restarted process answered */
  downMs: number;
  /** PostgreSQL: the shutdown used; a skipped fault: why */
  note?: string;
}

export interface ChaosResult {
  at: string;
  options: Omit<ChaosOptions, 'log' | 'databaseUrl' | 'restartPostgres'>;
  host: { cpus: number; loadStart: number[]; loadEnd: number[] };
  /** immediate alerts */
  sent: number;
  accepted: number;
  /** events the API never accepted (each was resent until then), immediate and delay */
  notAccepted: number;
  /** POST /api/events sent again after a 503, a timeout or a connection error */
  eventResends: number;
  arrived: number;
  lost: number;
  lostIds: string[];
  /** immediate deliveries whose final status is not `delivered` */
  wrongStatuses: number;
  wrongIds: string[];
  duplicates: Duplicates;
  delay: {
    thresholdSeconds: number;
    runs: number;
    eventsSent: number;
    byKind: Record<DelayKind, Record<string, number>>;
    /** late runs with no delivered webhook */
    lost: number;
    wrong: number;
    /** finished in time, finishing event accepted only after the deadline: status either way */
    inTimeAcceptedLate: { runs: number; delivered: number; suppressed: number };
    duplicates: Duplicates;
    /** GET /api/alerts/deliveries/<id> and alert_deliveries disagreed */
    apiStoreMismatches: number;
    /** each lost or wrong run: what the sender did, what the service answered */
    problems: unknown[];
  };
  /** every answer of every route called, by route and status ('connection error', 'timeout' when none) */
  answers: Record<string, Record<string, number>>;
  /** 5xx answers other than 503: must be none */
  serverErrors: { count: number; examples: string[] };
  requests: { total: number; answered2xx: number; answered503: number; leftHanging: number; perDeliveryMax: number; meanPerDelivery: number };
  logRows: { total: number; deliveriesMissingRows: number; missingRows: number; examples: string[]; lostAttemptRows: number; diagnosis: unknown[] };
  statuses: Record<string, number>;
  workerKills: number;
  /** when each worker was SIGKILLed, s from the first send */
  workerKillsAt: number[];
  workerStarts: number;
  unexpectedWorkerExits: number;
  apiKills: number;
  apiStarts: number;
  unexpectedApiExits: number;
  temporalKills: number;
  devServerRestarts: number;
  postgresRestarts: number;
  postgresNotRestarted?: string;
  faults: FaultRecord[];
  /** the end of the API processes' output, kept when an answer was a 5xx other than 503 or an API exited on its own */
  apiOutput?: string[];
  sendSeconds: number;
  achievedRate: number;
  drainSeconds: number;
  drainedInTime: boolean;
  totalSeconds: number;
  /** accepted immediate alerts / (send + drain seconds) */
  deliveredRate: number;
  ok: boolean;
}

const READY = /ready; press Ctrl-C/;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The chaotic receiver: per webhook-id, requests seen and 2xx answers given. */
class ChaosReceiver {
  readonly seen = new Map<string, { requests: number; ok: number }>();
  /** per webhook-id, when each request came (epoch ms) and how it was answered: for the report of a problem */
  readonly history = new Map<string, { atMs: number; answer: '2xx' | '503' | 'no answer' }[]>();
  total = 0;
  answered2xx = 0;
  answered503 = 0;
  leftHanging = 0;
  url = '';
  private hanging = new Set<http.ServerResponse>();
  private server: http.Server;

  constructor(private failShare: number, private hangShare: number) {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = String(req.headers['webhook-id'] ?? '');
        const entry = this.seen.get(id) ?? { requests: 0, ok: 0 };
        this.seen.set(id, entry);
        entry.requests++;
        this.total++;
        const history = this.history.get(id) ?? [];
        this.history.set(id, history);
        const r = Math.random();
        history.push({ atMs: Date.now(), answer: r < this.failShare ? '503' : r < this.failShare + this.hangShare ? 'no answer' : '2xx' });
        if (r < this.failShare) {
          this.answered503++;
          res.writeHead(503, { 'content-type': 'text/plain' }).end('chaos: unavailable');
        } else if (r < this.failShare + this.hangShare) {
          this.leftHanging++;
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
        } else {
          entry.ok++;
          this.answered2xx++;
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        }
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  of(id: string): { requests: number; ok: number } {
    return this.seen.get(id) ?? { requests: 0, ok: 0 };
  }

  arrived(id: string): boolean {
    return this.of(id).ok > 0;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The API as MeshHook calls it, counting every answer by route and status. */
class CountingApi {
  readonly answers: Record<string, Record<string, number>> = {};
  readonly serverErrors: string[] = [];

  constructor(private baseUrl: string, private token: string, private since: () => number) {}

  async call(route: string, method: string, urlPath: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number | 'connection error' | 'timeout'; body: any; error?: string }> {
    let answer: { status: number | 'connection error' | 'timeout'; body: any; error?: string };
    try {
      const res = await fetch(`${this.baseUrl}${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* keep the text */
      }
      answer = { status: res.status, body: parsed };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
      answer = { status: timedOut ? 'timeout' : 'connection error', body: undefined, error: e.cause?.code ?? e.cause?.message ?? e.message };
    }
    const counts = (this.answers[route] ??= {});
    counts[String(answer.status)] = (counts[String(answer.status)] ?? 0) + 1;
    if (typeof answer.status === 'number' && answer.status >= 500 && answer.status !== 503) {
      this.serverErrors.push(`${(this.since() / 1000).toFixed(1)} s: ${method} ${urlPath} -> ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
    }
    return answer;
  }
}

/** a dev server's pid, from the pid file startDevServer writes, when it is the one this process started */
function devServerPid(devDir: string): number {
  const record = JSON.parse(fs.readFileSync(path.join(devDir, 'temporal.pid'), 'utf8')) as { pid: number; owner: number };
  if (record.owner !== process.pid) throw new Error(`the dev server of ${devDir} was not started by this process`);
  return record.pid;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[chaos] ${line}\n`));
  const failShare = options.failShare ?? 0.3;
  const hangShare = options.hangShare ?? 0.05;
  const progressEveryMs = options.progressEveryMs ?? 10_000;
  const faultCycle = options.faults ?? FAULT_CYCLE;
  const outageMs = options.outageMs ?? 3_000;
  const threshold = options.delay.thresholdSeconds;
  const loadStart = os.loadavg().map((n) => Math.round(n * 100) / 100);
  const t0 = Date.now();
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-chaos-'));
  const token = `chaos_${randomBytes(16).toString('hex')}`;
  const receiver = new ChaosReceiver(failShare, hangShare);
  const processes = new Set<ServiceProcess>();
  /** every API and worker process of the run, for the lines of their output about a delivery with a problem */
  const everyProcess: ServiceProcess[] = [];
  let devServer: DevServer | undefined;
  let stopping = false;
  const cleanup: (() => Promise<unknown>)[] = [];
  let sendStart = 0;
  const sinceSend = () => (sendStart ? Date.now() - sendStart : 0);

  try {
    await receiver.start();
    const cliPath = await resolveTemporalCli({ log: (line) => log(`temporal-cli: ${line}`) });
    const devDir = path.join(tempDir, 'temporal');
    const [devPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const startDev = () =>
      startDevServer({ cliPath, dataDir: devDir, namespace: 'default', port: devPort, uiPort, sqlitePragmas: ['journal_mode=WAL', 'synchronous=OFF'] });
    devServer = await startDev();
    log(`Temporal dev server on ${devServer.address} (db ${path.join(devDir, 'temporal.sqlite')})`);

    const env: Record<string, string> = {
      DATABASE_URL: options.databaseUrl,
      TEMPORAL_ADDRESS: devServer.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: `alerts-chaos-${randomBytes(4).toString('hex')}`,
      ALERTS_ENCRYPTION_KEYS: newKeySpec(),
      ALERTS_API_TOKENS: `${token}:default`,
      ALERTS_EGRESS_ALLOW: '127.0.0.1', // the receiver
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      ALERTS_RATE_LIMIT_PER_MINUTE: '0', // we send more than a token's limit on purpose
      DATA_DIR: path.join(tempDir, 'data'),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    };

    // ---------------------------------------------------------- the API (one at a time, always on apiPort)
    let apiStarts = 0;
    let apiKills = 0;
    let unexpectedApiExits = 0;
    const apiOutputs: string[] = [];
    const killedApis = new Set<ServiceProcess>();
    let apiProcess: ServiceProcess;
    const startApi = async (): Promise<void> => {
      const proc = startServiceProcess(`api ${++apiStarts}`, 'api/server.ts', { ...env, PORT: String(apiPort) });
      apiProcess = proc;
      processes.add(proc);
      everyProcess.push(proc);
      proc.child.once('exit', () => {
        processes.delete(proc);
        apiOutputs.push(`--- ${proc.name} (${proc.child.exitCode ?? proc.child.signalCode}) ---\n${proc.output().slice(-4_000)}`);
        if (!killedApis.has(proc) && !stopping) {
          unexpectedApiExits++;
          log(`${proc.name} exited on its own (${proc.child.exitCode ?? proc.child.signalCode}); starting another. Its output ends:\n${proc.output().slice(-600)}`);
          void startApi().catch((err: Error) => log(`the API did not start again: ${err.message.split('\n')[0]}`));
        }
      });
      await proc.waitForOutput(READY, 180_000);
    };
    await startApi();
    const api = new CountingApi(`http://127.0.0.1:${apiPort}`, token, sinceSend);

    // ---------------------------------------------------------- workers
    let workerStarts = 0;
    let workerKills = 0;
    const workerKillsAt: number[] = [];
    let unexpectedWorkerExits = 0;
    const workers: { proc: ServiceProcess; ready: boolean; killed: boolean }[] = [];
    const startWorker = () => {
      const proc = startServiceProcess(`worker ${++workerStarts}`, 'worker.ts', env);
      processes.add(proc);
      everyProcess.push(proc);
      const w = { proc, ready: false, killed: false };
      workers.push(w);
      proc.waitForOutput(READY, 300_000).then(
        () => (w.ready = true),
        (err: Error) => log(`${proc.name} did not become ready: ${err.message.split('\n')[0]}`),
      );
      proc.child.once('exit', () => {
        workers.splice(workers.indexOf(w), 1);
        processes.delete(proc);
        if (!w.killed && !stopping) {
          unexpectedWorkerExits++;
          log(`${proc.name} exited on its own (${proc.child.exitCode ?? proc.child.signalCode}); starting another in 1 s. Its output ends:\n${proc.output().slice(-600)}`);
          setTimeout(() => stopping || startWorker(), 1_000);
        }
      });
      return w;
    };
    for (let i = 0; i < options.workers; i++) startWorker();
    while (!workers.some((w) => w.ready)) {
      if (Date.now() - t0 > 300_000) throw new Error('no worker became ready within 300 s');
      await sleep(200);
    }
    await sleep(1_000);

    // ---------------------------------------------------------- the configs
    const webhook = { url: `${receiver.url}/hook`, timeoutMs: 1_000 };
    const retry = { maxAttempts: 100, initialIntervalMs: 200, backoffCoefficient: 1.5, maxIntervalMs: 2_000, maxDurationMs: 3_600_000 };
    const workflowId = 'wf_chaos';
    const delayWorkflowId = 'wf_chaos_delay';
    for (const config of [
      { workflowId, name: 'chaos', conditions: [{ type: 'failure' }], webhook, retry },
      { workflowId: delayWorkflowId, name: 'chaos delay', conditions: [{ type: 'delay', thresholdSeconds: threshold }], webhook, retry },
    ]) {
      const created = await api.call('POST /api/alerts/config', 'POST', '/api/alerts/config', { config });
      if (created.status !== 201) throw new Error(`config not created: ${created.status} ${JSON.stringify(created.body)}`);
    }

    // ---------------------------------------------------------- sending
    const runTag = randomBytes(3).toString('hex');
    let notAccepted = 0;
    let eventResends = 0;
    /** POSTs one event until the API accepts it; its 202 body and when it came, or undefined when refused or given up */
    const postEvent = async (event: Record<string, unknown>): Promise<{ body: any; atMs: number } | undefined> => {
      const giveUpAt = Date.now() + 300_000;
      for (;;) {
        const res = await api.call('POST /api/events', 'POST', '/api/events', event);
        if (res.status === 202) return { body: res.body, atMs: Date.now() };
        const outcome = `${res.status} ${res.error ?? JSON.stringify(res.body).slice(0, 200)}`;
        if (typeof res.status === 'number' && res.status < 500 && res.status !== 429) {
          log(`event ${event.id} refused: ${outcome}`);
          return undefined;
        }
        if (Date.now() > giveUpAt) {
          log(`event ${event.id} not accepted within 300 s; last answer ${outcome}`);
          return undefined;
        }
        eventResends++;
        await sleep(500);
      }
    };

    const accepted = new Set<string>();
    let sent = 0;
    const sendImmediate = async (index: number) => {
      const eventId = `evt_chaos_${runTag}_${index}`;
      const answer = await postEvent({ id: eventId, type: 'run.failed', workflowId, runId: `run_${runTag}_${index}`, workflow: { name: 'Chaos', version: 1 }, error: { message: `chaos ${index}` } });
      if (answer?.body?.deliveries?.length === 1) accepted.add(answer.body.deliveries[0].deliveryId);
      else {
        notAccepted++;
        if (answer) log(`event ${eventId}: 202 without one delivery: ${JSON.stringify(answer.body).slice(0, 200)}`);
      }
    };

    const delayRuns: DelayRun[] = [];
    let delayEventsSent = 0;
    const finishOffsetMs: Record<DelayKind, number | undefined> = {
      before: (threshold * 1000) / 3,
      'just-after': threshold * 1000 + 1_500,
      'long-after': threshold * 3000,
      never: undefined,
    };
    const runDelayWatch = async (index: number) => {
      const kind = DELAY_KINDS[index % DELAY_KINDS.length];
      const runId = `run_${runTag}_d${index}`;
      const startedAtMs = Date.now();
      const run: DelayRun = { runId, kind, deliveryId: '', startedAtMs, deadlineMs: startedAtMs + threshold * 1000 };
      delayRuns.push(run);
      delayEventsSent++;
      const started = await postEvent({ id: `evt_${runId}_start`, type: 'run.started', occurredAt: new Date(startedAtMs).toISOString(), workflowId: delayWorkflowId, runId, workflow: { name: 'Chaos delay', version: 1 } });
      const deliveryId = started?.body?.deliveries?.[0]?.deliveryId;
      if (!started || started.body.deliveries.length !== 1 || !String(deliveryId).endsWith('-delay')) {
        run.notAccepted = true;
        notAccepted++;
        if (started) log(`run ${runId}: run.started got ${JSON.stringify(started.body).slice(0, 200)}`);
        return;
      }
      run.deliveryId = deliveryId;
      run.startAcceptedAtMs = started.atMs;
      const offset = finishOffsetMs[kind];
      if (offset === undefined) return;
      run.finishedAtMs = startedAtMs + offset;
      await sleep(run.finishedAtMs - Date.now());
      delayEventsSent++;
      const finished = await postEvent({ id: `evt_${runId}_end`, type: 'run.succeeded', occurredAt: new Date(run.finishedAtMs).toISOString(), workflowId: delayWorkflowId, runId, workflow: { name: 'Chaos delay', version: 1 } });
      if (!finished) {
        run.notAccepted = true;
        notAccepted++;
        return;
      }
      run.finishAcceptedAtMs = finished.atMs;
    };

    // While the faults happen, other routes are asked too: they must answer 503, never 500.
    const probe = async (n: number) => {
      const ids = [...accepted];
      const id = ids[ids.length - 1 - (n % Math.max(1, Math.min(ids.length, 50)))];
      if (n % 3 === 0) await api.call('GET /readyz', 'GET', '/readyz', undefined, 15_000);
      else if (id && n % 3 === 1) await api.call('GET /api/alerts/deliveries/{id}', 'GET', `/api/alerts/deliveries/${id}`, undefined, 15_000);
      else if (id) await api.call('GET /api/alerts/logs', 'GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(id)}`, undefined, 15_000);
    };

    // ---------------------------------------------------------- faults
    let temporalKills = 0;
    let devServerRestarts = 0;
    let postgresRestarts = 0;
    const faults: FaultRecord[] = [];
    /** every fault with its times, worker kills too: what explains a duplicate */
    const faultSpans: FaultSpan[] = [];
    const bringBackDevServer = async () => {
      await devServer!.stop(); // graceful, or (after a SIGKILL) only waits for the exit
      await sleep(outageMs);
      devServer = await startDev();
    };
    const runFault = async (kind: FaultKind) => {
      const at = Date.now();
      let note: string | undefined;
      log(`fault: ${kind}`);
      if (kind === 'api-kill') {
        killedApis.add(apiProcess);
        await apiProcess.kill('SIGKILL');
        apiKills++;
        await sleep(outageMs);
        await startApi();
      } else if (kind === 'temporal-kill') {
        process.kill(devServerPid(devDir), 'SIGKILL');
        temporalKills++;
        await bringBackDevServer();
      } else if (kind === 'temporal-restart') {
        await bringBackDevServer();
        devServerRestarts++;
      } else if (!options.restartPostgres) {
        note = `skipped: ${options.postgresNotRestarted ?? 'no way to restart this PostgreSQL'}`;
      } else {
        note = `${(await options.restartPostgres(outageMs)).mode} shutdown`;
        postgresRestarts++;
      }
      const record = { kind, atSeconds: Math.round((at - sendStart) / 100) / 10, downMs: Date.now() - at, ...(note ? { note } : {}) };
      faults.push(record);
      faultSpans.push({ kind, fromMs: at, toMs: at + record.downMs });
      log(`fault: ${kind} done, ${record.downMs} ms${note ? ` (${note})` : ''}`);
    };

    const killOne = async () => {
      // kill the oldest worker that is ready, keep the number of workers, never wait for the new one
      const victim = workers.find((w) => w.ready && !w.killed);
      if (!victim) return;
      victim.killed = true;
      startWorker();
      workerKillsAt.push(Math.round(sinceSend() / 100) / 10);
      faultSpans.push({ kind: 'worker-kill', fromMs: Date.now(), toMs: Date.now() });
      await victim.proc.kill('SIGKILL');
      workerKills++;
    };

    const expected = Math.round(options.seconds * options.rate);
    const expectedDelayRuns = Math.round(options.seconds * options.delay.runsPerSecond);
    log(
      `sending ${expected} immediate alerts at ${options.rate}/s and ${expectedDelayRuns} delay runs at ${options.delay.runsPerSecond}/s (threshold ${threshold} s; finished at ` +
        `${DELAY_KINDS.map((k) => `${k} ${finishOffsetMs[k] === undefined ? '-' : `+${finishOffsetMs[k]! / 1000} s`}`).join(', ')}) for ${options.seconds} s; ` +
        `${options.workers} workers, one SIGKILLed every ${options.killEveryMs} ms; a fault every ${options.faultEveryMs} ms (${faultCycle.join(', ')}; each down ${outageMs} ms before it is started again); ` +
        `receiver: ${failShare * 100} % 503, ${hangShare * 100} % no answer`,
    );
    const inflight = new Set<Promise<void>>();
    const track = (p: Promise<void>) => {
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    const delayCounts = () => {
      const c = { pending: 0, arrived: 0 };
      for (const r of delayRuns) if (r.deliveryId && r.kind !== 'before') receiver.arrived(r.deliveryId) ? c.arrived++ : c.pending++;
      return c;
    };
    const progressLine = (phase: string) => {
      const arrived = [...accepted].filter((id) => receiver.arrived(id)).length;
      const ready = workers.filter((w) => w.ready && !w.killed).length;
      const d = delayCounts();
      const answers = api.answers['POST /api/events'] ?? {};
      log(
        `${phase} ${Math.round(sinceSend() / 1000)} s: sent ${sent}, accepted ${accepted.size}, arrived ${arrived} (pending ${accepted.size - arrived}); ` +
          `delay runs ${delayRuns.length} (late ones alerted ${d.arrived}, pending ${d.pending}); events ${JSON.stringify(answers)}; ` +
          `requests ${receiver.total} (503 ${receiver.answered503}, no answer ${receiver.leftHanging}); ` +
          `worker kills ${workerKills}, workers ready ${ready}/${workers.length}, faults ${faults.length}; load ${os.loadavg()[0].toFixed(2)}`,
      );
    };
    sendStart = Date.now();
    let lastKill = sendStart;
    let faultIndex = 0;
    let nextFaultAt = options.faultEveryMs;
    let fault: Promise<void> | undefined;
    let probes = 0;
    let lastProbe = sendStart;
    let delayStarted = 0;
    const progress = setInterval(() => progressLine('sending'), progressEveryMs);
    try {
      while (sent < expected || delayStarted < expectedDelayRuns) {
        const now = Date.now();
        const elapsedS = (now - sendStart) / 1000;
        const due = Math.min(expected, Math.floor(elapsedS * options.rate) + 1);
        while (sent < due) track(sendImmediate(sent++));
        const delayDue = Math.min(expectedDelayRuns, Math.floor(elapsedS * options.delay.runsPerSecond) + 1);
        while (delayStarted < delayDue) track(runDelayWatch(delayStarted++));
        if (now - lastKill >= options.killEveryMs) {
          lastKill = now;
          void killOne();
        }
        if (!fault && now - sendStart >= nextFaultAt && now - sendStart < options.seconds * 1000) {
          const kind = faultCycle[faultIndex++ % faultCycle.length];
          fault = runFault(kind).finally(() => {
            // the next one a few seconds after this one is over at the earliest
            nextFaultAt = Math.max(nextFaultAt + options.faultEveryMs, Date.now() - sendStart + 3_000);
            fault = undefined;
          });
        }
        if (now - lastProbe >= 1_000) {
          lastProbe = now;
          track(probe(probes++));
        }
        await sleep(Math.max(5, Math.min(100, 1000 / Math.max(options.rate, options.delay.runsPerSecond) / 2)));
      }
      const sendSeconds = (Date.now() - sendStart) / 1000;
      await fault;
      await Promise.all([...inflight]); // the finishing events of the last runs too
      clearInterval(progress);

      // ---------------------------------------------------------- drain
      const db = new Client({ connectionString: options.databaseUrl });
      db.on('error', () => undefined);
      await db.connect();
      cleanup.push(() => db.end());
      const drainStart = Date.now();
      const drainProgress = setInterval(() => progressLine('draining'), progressEveryMs);
      let drainedInTime = false;
      const ids = [...accepted];
      const delayIds = delayRuns.filter((r) => r.deliveryId).map((r) => r.deliveryId);
      const allIds = [...ids, ...delayIds];
      const finalStatuses = async () => {
        const rows = await db.query<{ delivery_id: string; status: string }>(`SELECT delivery_id, status FROM alert_deliveries WHERE delivery_id = ANY($1)`, [allIds]);
        return new Map(rows.rows.map((r) => [r.delivery_id, r.status]));
      };
      try {
        while (Date.now() - drainStart < options.drainTimeoutMs) {
          if (ids.every((id) => receiver.arrived(id))) {
            const statuses = await finalStatuses();
            const ended = allIds.every((id) => ['delivered', 'failed', 'suppressed'].includes(statuses.get(id) ?? ''));
            // a delivered delay alert's row is final a moment after its 2xx; wait for the 2xx of each too
            const delayArrived = delayIds.every((id) => statuses.get(id) !== 'delivered' || receiver.arrived(id));
            if (ended && delayArrived) {
              drainedInTime = true;
              break;
            }
          }
          await sleep(1_000);
        }
      } finally {
        clearInterval(drainProgress);
      }
      const drainSeconds = (Date.now() - drainStart) / 1000;
      progressLine(drainedInTime ? 'drained' : 'drain timed out');

      // ---------------------------------------------------------- checks
      const storeStatus = await finalStatuses();
      const logRows = await db.query<{ delivery_id: string; n: string; lost: string }>(
        `SELECT delivery_id, count(*) AS n, count(*) FILTER (WHERE error LIKE 'no outcome recorded%') AS lost FROM alert_logs WHERE delivery_id = ANY($1) GROUP BY delivery_id`,
        [allIds],
      );
      const rowsBy = new Map(logRows.rows.map((r) => [r.delivery_id, Number(r.n)]));
      const lostAttemptRows = logRows.rows.reduce((s, r) => s + Number(r.lost), 0);
      const statuses: Record<string, number> = {};
      for (const id of ids) statuses[storeStatus.get(id) ?? 'no row'] = (statuses[storeStatus.get(id) ?? 'no row'] ?? 0) + 1;
      const lostIds = ids.filter((id) => !receiver.arrived(id));
      const wrongIds = ids.filter((id) => storeStatus.get(id) !== 'delivered');
      const duplicatesOf = (list: string[]) => attributeDuplicates(list.map((id) => [id, receiver.history.get(id) ?? []]), faultSpans);
      let missingRows = 0;
      let deliveriesMissingRows = 0;
      let perDeliveryMax = 0;
      let requestsOfOurs = 0;
      const examples: string[] = [];
      for (const id of allIds) {
        const seen = receiver.of(id);
        requestsOfOurs += seen.requests;
        perDeliveryMax = Math.max(perDeliveryMax, seen.requests);
        const rows = rowsBy.get(id) ?? 0;
        if (rows < seen.requests) {
          deliveriesMissingRows++;
          missingRows += seen.requests - rows;
          if (examples.length < 10) examples.push(`${id}: ${seen.requests} requests, ${rows} rows`);
        }
      }
      const at = (ms?: number) => (ms === undefined ? undefined : `${((ms - sendStart) / 1000).toFixed(2)} s`);
      /** what the receiver, the service's output and GET /api/alerts/deliveries/<id> say about one delivery */
      const historyOf = async (id: string): Promise<string[]> => {
        // every event of the workflow (types and times, no payloads): workflow tasks that timed out show here, not in the timeline
        const connection = await Connection.connect({ address: devServer!.address });
        try {
          const history = await new TemporalClient({ connection, namespace: 'default' }).workflow.getHandle(id).fetchHistory();
          return (history.events ?? []).map((e) => {
            const ms = e.eventTime ? Number(e.eventTime.seconds ?? 0) * 1000 + Math.round((e.eventTime.nanos ?? 0) / 1e6) : undefined;
            return `${at(ms)} ${temporal.api.enums.v1.EventType[e.eventType ?? 0]?.replace('EVENT_TYPE_', '')}`;
          });
        } catch (err) {
          return [`history not read: ${(err as Error).message}`];
        } finally {
          await connection.close();
        }
      };
      const diagnose = async (id: string, answer?: { body: any }) => ({
        receiver: (receiver.history.get(id) ?? []).map((h) => `${at(h.atMs)} ${h.answer}`),
        history: await historyOf(id),
        store: (await db.query(`SELECT attempt, outcome, http_status, error, created_at FROM alert_logs WHERE delivery_id = $1 ORDER BY attempt`, [id])).rows.map(
          (r) => `${at(new Date(r.created_at).getTime())} attempt ${r.attempt} ${r.outcome} ${r.http_status ?? ''} ${r.error ?? ''}`.trim(),
        ),
        output: everyProcess.flatMap((p) => p.output().split('\n').filter((line) => line.includes(id)).map((line) => `${p.name}: ${line.slice(0, 500)}`)).slice(0, 30),
        delivery: (answer ?? (await api.call('GET /api/alerts/deliveries/{id}', 'GET', `/api/alerts/deliveries/${id}`))).body,
      });
      const missingRowDeliveries: unknown[] = [];
      for (const id of allIds) {
        if ((rowsBy.get(id) ?? 0) < receiver.of(id).requests && missingRowDeliveries.length < 10) missingRowDeliveries.push({ deliveryId: id, ...(await diagnose(id)) });
      }
      const known = new Set(allIds);
      const strangers = [...receiver.seen.keys()].filter((id) => !known.has(id));
      if (strangers.length) log(`the receiver saw ${strangers.length} webhook-id(s) of no accepted alert: ${strangers.slice(0, 5).join(', ')}`);

      // each delay delivery's status as a user reads it, and how it should have ended
      const byKind = Object.fromEntries(DELAY_KINDS.map((k) => [k, {} as Record<string, number>])) as Record<DelayKind, Record<string, number>>;
      const inTimeAcceptedLate = { runs: 0, delivered: 0, suppressed: 0 };
      let delayLost = 0;
      let delayWrong = 0;
      let apiStoreMismatches = 0;
      const problems: unknown[] = [];
      const readDelivery = async (id: string) => {
        for (let i = 0; ; i++) {
          const res = await api.call('GET /api/alerts/deliveries/{id}', 'GET', `/api/alerts/deliveries/${id}`);
          if (res.status === 200 || i >= 10) return res;
          await sleep(1_000);
        }
      };
      const queue = [...delayRuns];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let run = queue.shift(); run; run = queue.shift()) {
            const seen = receiver.of(run.deliveryId);
            let status: string | undefined;
            let answer: Awaited<ReturnType<typeof readDelivery>> | undefined;
            if (run.deliveryId) {
              answer = await readDelivery(run.deliveryId);
              status = answer.status === 200 ? answer.body.status : `GET answered ${answer.status}`;
              if (status !== storeStatus.get(run.deliveryId)) apiStoreMismatches++;
            }
            const verdict = judgeDelayRun(run, status, seen.requests, seen.ok);
            const counts = byKind[run.kind];
            counts[status ?? 'not accepted'] = (counts[status ?? 'not accepted'] ?? 0) + 1;
            if (verdict === 'ambiguous') {
              inTimeAcceptedLate.runs++;
              if (status === 'delivered') inTimeAcceptedLate.delivered++;
              else inTimeAcceptedLate.suppressed++;
            }
            if (verdict.includes('lost')) delayLost++;
            if (verdict.includes('wrong')) delayWrong++;
            if (verdict.includes('lost') || verdict.includes('wrong')) {
              problems.push({
                verdict,
                deliveryId: run.deliveryId,
                kind: run.kind,
                started: at(run.startedAtMs),
                startAccepted: at(run.startAcceptedAtMs),
                deadline: at(run.deadlineMs),
                finished: at(run.finishedAtMs),
                finishAccepted: at(run.finishAcceptedAtMs),
                status,
                storeStatus: storeStatus.get(run.deliveryId),
                ...(await diagnose(run.deliveryId, answer)),
              });
            }
          }
        }),
      );

      const totalSeconds = (Date.now() - t0) / 1000;
      const serverErrors = { count: api.serverErrors.length, examples: api.serverErrors.slice(0, 20) };
      const delayDuplicates = duplicatesOf(delayIds);
      const immediateDuplicates = duplicatesOf(ids);
      const result: ChaosResult = {
        at: new Date(t0).toISOString(),
        options: {
          seconds: options.seconds,
          rate: options.rate,
          delay: options.delay,
          workers: options.workers,
          killEveryMs: options.killEveryMs,
          faultEveryMs: options.faultEveryMs,
          faults: faultCycle,
          outageMs,
          postgresNotRestarted: options.postgresNotRestarted,
          drainTimeoutMs: options.drainTimeoutMs,
          failShare,
          hangShare,
          progressEveryMs,
        },
        host: { cpus: os.cpus().length, loadStart, loadEnd: os.loadavg().map((n) => Math.round(n * 100) / 100) },
        sent,
        accepted: accepted.size,
        notAccepted,
        eventResends,
        arrived: ids.length - lostIds.length,
        lost: lostIds.length,
        lostIds: lostIds.slice(0, 100),
        wrongStatuses: wrongIds.length,
        wrongIds: wrongIds.slice(0, 100),
        duplicates: immediateDuplicates,
        delay: {
          thresholdSeconds: threshold,
          runs: delayRuns.length,
          eventsSent: delayEventsSent,
          byKind,
          lost: delayLost,
          wrong: delayWrong,
          inTimeAcceptedLate,
          duplicates: delayDuplicates,
          apiStoreMismatches,
          problems: problems.slice(0, 20),
        },
        answers: api.answers,
        serverErrors,
        requests: {
          total: receiver.total,
          answered2xx: receiver.answered2xx,
          answered503: receiver.answered503,
          leftHanging: receiver.leftHanging,
          perDeliveryMax,
          meanPerDelivery: allIds.length ? Math.round((requestsOfOurs / allIds.length) * 100) / 100 : 0,
        },
        logRows: { total: logRows.rows.reduce((s, r) => s + Number(r.n), 0), deliveriesMissingRows, missingRows, examples, lostAttemptRows, diagnosis: missingRowDeliveries },
        statuses,
        workerKills,
        workerKillsAt,
        workerStarts,
        unexpectedWorkerExits,
        apiKills,
        apiStarts,
        unexpectedApiExits,
        temporalKills,
        devServerRestarts,
        postgresRestarts,
        ...(options.restartPostgres ? {} : { postgresNotRestarted: options.postgresNotRestarted ?? 'no way to restart this PostgreSQL' }),
        faults,
        sendSeconds: Math.round(sendSeconds * 10) / 10,
        achievedRate: Math.round((sent / sendSeconds) * 100) / 100,
        drainSeconds: Math.round(drainSeconds * 10) / 10,
        drainedInTime,
        totalSeconds: Math.round(totalSeconds * 10) / 10,
        deliveredRate: Math.round(((ids.length - lostIds.length) / (sendSeconds + drainSeconds)) * 100) / 100,
        ok:
          lostIds.length === 0 &&
          wrongIds.length === 0 &&
          delayLost === 0 &&
          delayWrong === 0 &&
          serverErrors.count === 0 &&
          unexpectedApiExits === 0 &&
          notAccepted === 0 &&
          deliveriesMissingRows === 0 &&
          strangers.length === 0 &&
          // an alert POSTed again after a 2xx with no kill or outage between is a second send
          immediateDuplicates.unexplained.length === 0 &&
          delayDuplicates.unexplained.length === 0 &&
          drainedInTime,
      };
      if (serverErrors.count || unexpectedApiExits || problems.length || missingRowDeliveries.length) {
        result.apiOutput = [...apiOutputs, `--- ${apiProcess!.name} (running) ---\n${apiProcess!.output().slice(-4_000)}`];
      }
      return result;
    } finally {
      clearInterval(progress);
    }
  } finally {
    stopping = true;
    const problems: string[] = [];
    for (const fn of cleanup) await fn().catch((err: Error) => problems.push(err.message));
    await Promise.all([...processes].map((p) => p.kill('SIGKILL')));
    await devServer?.stop().catch((err: Error) => problems.push(`dev server stop: ${err.message}`));
    await receiver.close().catch(() => undefined);
    fs.rmSync(tempDir, { recursive: true, force: true });
    if (problems.length) log(`cleanup: ${problems.join('; ')}`);
  }
}

function describeDuplicates(d: Duplicates): string {
  const causes = Object.entries(d.byCause).map(([kind, n]) => `${kind} ${n}`).join(', ');
  const gap = d.msFrom2xxToFault ? `; the fault began ${d.msFrom2xxToFault.min} / ${d.msFrom2xxToFault.p50} / ${d.msFrom2xxToFault.max} ms (min / p50 / max) after the earlier 2xx` : '';
  const unexplained = d.unexplained.length ? ` (${d.unexplained.slice(0, 5).join(', ')})` : '';
  return `${d.deliveries} alerts got ${d.extraPosts} extra 2xx POSTs with the same webhook-id${causes ? `, after ${causes}` : ''}${gap}; WITH NO FAULT BETWEEN ${d.unexplained.length}${unexplained}`;
}

export function summarize(r: ChaosResult): string[] {
  const faults = r.faults.map((f) => `${f.kind} at ${f.atSeconds} s (${(f.downMs / 1000).toFixed(1)} s${f.note ? `, ${f.note}` : ''})`).join('; ');
  const d = r.delay;
  const kinds = Object.entries(d.byKind)
    .map(([kind, counts]) => `${kind} ${JSON.stringify(counts)}`)
    .join(', ');
  const answers = Object.entries(r.answers)
    .map(([route, counts]) => `${route} ${JSON.stringify(counts)}`)
    .join('; ');
  return [
    `immediate: sent ${r.sent} alerts in ${r.sendSeconds} s (${r.achievedRate}/s), accepted ${r.accepted}; events not accepted ${r.notAccepted} (resends after 503s, timeouts and connection errors: ${r.eventResends})`,
    `immediate: arrived ${r.arrived}, LOST ${r.lost}${r.lost ? ` (${r.lostIds.slice(0, 10).join(', ')})` : ''}, WRONG STATUS ${r.wrongStatuses}${r.wrongStatuses ? ` (${r.wrongIds.slice(0, 10).join(', ')})` : ''}; duplicates: ${describeDuplicates(r.duplicates)}; statuses ${JSON.stringify(r.statuses)}`,
    `delay (threshold ${d.thresholdSeconds} s): ${d.runs} runs, ${d.eventsSent} events; final status by kind: ${kinds}`,
    `delay: LOST ${d.lost}, WRONG ${d.wrong}; finished in time but accepted late: ${d.inTimeAcceptedLate.runs} (delivered ${d.inTimeAcceptedLate.delivered}, suppressed ${d.inTimeAcceptedLate.suppressed}); duplicates: ${describeDuplicates(d.duplicates)}; API/store status mismatches ${d.apiStoreMismatches}`,
    `API answers: ${answers}; 5xx OTHER THAN 503: ${r.serverErrors.count}${r.serverErrors.count ? ` (${r.serverErrors.examples.slice(0, 3).join(' | ')})` : ''}`,
    `receiver: ${r.requests.total} requests (2xx ${r.requests.answered2xx}, 503 ${r.requests.answered503}, no answer ${r.requests.leftHanging}); ${r.requests.meanPerDelivery} per alert on average, at most ${r.requests.perDeliveryMax}`,
    `alert_logs: ${r.logRows.total} rows (${r.logRows.lostAttemptRows} of them lost attempts); alerts with fewer rows than requests seen: ${r.logRows.deliveriesMissingRows} (${r.logRows.missingRows} rows missing)${r.logRows.examples.length ? `: ${r.logRows.examples.join('; ')}` : ''}`,
    `chaos: ${r.workerKills} worker SIGKILLs (${r.workerStarts} worker starts, ${r.unexpectedWorkerExits} exits on their own); ${r.apiKills} API SIGKILLs (${r.apiStarts} API starts, ${r.unexpectedApiExits} exits on their own); ` +
      `${r.temporalKills} dev server SIGKILLs, ${r.devServerRestarts} graceful dev server restarts, ${r.postgresRestarts} PostgreSQL restarts${r.postgresNotRestarted ? ` (not restarted: ${r.postgresNotRestarted})` : ''}`,
    `faults: ${faults || 'none'}`,
    `drain: ${r.drainSeconds} s after the last event (${r.drainedInTime ? 'all ended' : 'TIMED OUT'}); delivered ${r.deliveredRate}/s over send + drain; total ${r.totalSeconds} s; load ${r.host.loadStart.join(' ')} -> ${r.host.loadEnd.join(' ')} on ${r.host.cpus} CPUs`,
    r.ok
      ? 'OK: zero immediate and zero delay alerts lost, zero wrong statuses, zero 5xx other than 503, every attempt logged'
      : `FAILED: see above${d.problems.length ? `; delay problems: ${JSON.stringify(d.problems.slice(0, 3)).slice(0, 3_000)}` : ''}`,
  ];
}

// ---------------------------------------------------------------- npm run chaos

async function main(): Promise<void> {
  const num = (name: string, fallback: number) => {
    const v = process.env[name];
    return v === undefined || v === '' ? fallback : Number(v);
  };
  const log = (line: string) => console.log(`[chaos] ${line}`);
  let databaseUrl = process.env.DATABASE_URL;
  let stopPostgres: (() => Promise<void>) | undefined;
  let restartPostgres: ChaosOptions['restartPostgres'];
  let postgresNotRestarted: string | undefined;
  if (!databaseUrl) {
    const { startPostgres } = await import('../test/support/postgres');
    const { restartablePostgres } = await import('../test/support/postgres-restart');
    const pg = await startPostgres();
    const restartable = await restartablePostgres(pg);
    databaseUrl = pg.url;
    if (restartable) {
      stopPostgres = () => restartable.stop();
      restartPostgres = (downForMs) => restartable.restart('immediate', downForMs);
    } else {
      stopPostgres = () => pg.stop();
      postgresNotRestarted = `the server (${pg.mode}: TEST_DATABASE_URL) is not ours`;
    }
    log(`PostgreSQL (${pg.mode}) started for this run${restartable ? '' : `; it will not be restarted: ${postgresNotRestarted}`}`);
  } else {
    postgresNotRestarted = 'DATABASE_URL names a server that is not ours';
    log('PostgreSQL from DATABASE_URL: not ours, so its restarts are skipped');
  }
  const seconds = num('CHAOS_SECONDS', 600);
  const rate = num('CHAOS_RATE', 6);
  log(`rate ${rate} alerts/s (CHAOS_RATE): ${Math.round(seconds * rate)} alerts in ${seconds} s`);
  let result: ChaosResult;
  try {
    result = await runChaos({
      seconds,
      rate,
      delay: { runsPerSecond: num('CHAOS_DELAY_RATE', 1), thresholdSeconds: num('CHAOS_DELAY_THRESHOLD_SECONDS', 6) },
      workers: num('CHAOS_WORKERS', 2),
      killEveryMs: num('CHAOS_KILL_EVERY_MS', 5_000),
      faultEveryMs: num('CHAOS_FAULT_EVERY_MS', 20_000),
      restartPostgres,
      postgresNotRestarted,
      drainTimeoutMs: num('CHAOS_DRAIN_SECONDS', 600) * 1000,
      databaseUrl,
      log,
    });
  } finally {
    await stopPostgres?.();
  }
  for (const line of summarize(result)) log(line);
  const out = process.env.CHAOS_OUT ?? path.join(__dirname, 'results', `chaos-${result.at.replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  log(`results written to ${path.relative(process.cwd(), out)}`);
  process.exit(result.ok ? 0 : 1);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(2);
  });
}
