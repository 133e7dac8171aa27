/**
 * Chaos run: zero loss while things break (issue 5, `npm run chaos`).
 *
 * Starts, in the production topology, a file-backed Temporal dev server, the
 * API and N workers as `node --import tsx` child processes on a real
 * PostgreSQL (DATABASE_URL, or a throwaway server from test/support/postgres.ts),
 * and a receiver on 127.0.0.1 that answers 30 % of requests 503 and never
 * answers 5 % (the config's webhook.timeoutMs is 1 s). It sends `run.failed`
 * events at a fixed rate while a worker is killed with SIGKILL every few
 * seconds (a new one is started each time) and the dev server is restarted
 * once on the same SQLite file. Then it waits (bounded) for every delivery to
 * end and checks:
 *
 * - every accepted alert reached the receiver (a 2xx answer, by `webhook-id`);
 * - duplicates (more than one 2xx for one webhook-id: at-least-once, a POST whose
 *   answer was lost to a kill is sent again) are counted, not failed;
 * - every request the receiver saw has its `alert_logs` row (rows per delivery
 *   >= requests seen for it; lost attempts are logged by the next attempt).
 *
 * Environment: CHAOS_SECONDS (600), CHAOS_RATE (alerts/s, 6: what this 2-core machine delivers under the kills), CHAOS_WORKERS (2),
 * CHAOS_KILL_EVERY_MS (5000), CHAOS_DRAIN_SECONDS (600), CHAOS_OUT (results
 * file, default bench/results/chaos-<timestamp>.json), DATABASE_URL.
 * test/chaos.test.ts runs the same runner with small parameters.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { newKeySpec } from '../lib/crypto';
import { startDevServer, type DevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { startServiceProcess, type ServiceProcess } from '../test/support/processes';

export interface ChaosOptions {
  /** how long events are sent */
  seconds: number;
  /** events (alerts) per second */
  rate: number;
  /** workers running at once */
  workers: number;
  /** a worker is SIGKILLed (and a new one started) this often */
  killEveryMs: number;
  /** when the dev server is restarted, from the first send (default: half of `seconds`) */
  devServerRestartAtMs?: number;
  /** how long to wait, after the last send, for every delivery to end */
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

export interface ChaosResult {
  at: string;
  options: Omit<ChaosOptions, 'log' | 'databaseUrl'>;
  host: { cpus: number; loadStart: number[]; loadEnd: number[] };
  sent: number;
  accepted: number;
  /** events the API never accepted (each was resent until then) */
  notAccepted: number;
  /** 503 / network answers of POST /api/events that were sent again */
  eventResends: number;
  arrived: number;
  lost: number;
  lostIds: string[];
  duplicates: { deliveries: number; extraPosts: number };
  requests: { total: number; answered2xx: number; answered503: number; leftHanging: number; perDeliveryMax: number; meanPerDelivery: number };
  logRows: { total: number; deliveriesMissingRows: number; missingRows: number; examples: string[]; lostAttemptRows: number };
  statuses: Record<string, number>;
  workerKills: number;
  workerStarts: number;
  unexpectedWorkerExits: number;
  devServerRestarts: number;
  devServerDownMs: number;
  sendSeconds: number;
  achievedRate: number;
  drainSeconds: number;
  drainedInTime: boolean;
  totalSeconds: number;
  /** accepted alerts / (send + drain seconds) */
  deliveredRate: number;
  ok: boolean;
}

const READY = /ready; press Ctrl-C/;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The chaotic receiver: per webhook-id, requests seen and 2xx answers given. */
class ChaosReceiver {
  readonly seen = new Map<string, { requests: number; ok: number }>();
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
        const r = Math.random();
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

  arrived(id: string): boolean {
    return (this.seen.get(id)?.ok ?? 0) > 0;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[chaos] ${line}\n`));
  const failShare = options.failShare ?? 0.3;
  const hangShare = options.hangShare ?? 0.05;
  const progressEveryMs = options.progressEveryMs ?? 10_000;
  const restartAtMs = options.devServerRestartAtMs ?? Math.round((options.seconds * 1000) / 2);
  const loadStart = os.loadavg().map((n) => Math.round(n * 100) / 100);
  const t0 = Date.now();
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-chaos-'));
  const token = `chaos_${randomBytes(16).toString('hex')}`;
  const receiver = new ChaosReceiver(failShare, hangShare);
  const processes = new Set<ServiceProcess>();
  let devServer: DevServer | undefined;
  let stopping = false;
  const cleanup: (() => Promise<unknown>)[] = [];

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
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const apiProcess = startServiceProcess('api', 'api/server.ts', { ...env, PORT: String(apiPort) });
    processes.add(apiProcess);
    await apiProcess.waitForOutput(READY, 180_000);

    // ---------------------------------------------------------- workers
    let workerStarts = 0;
    let workerKills = 0;
    let unexpectedWorkerExits = 0;
    const workers: { proc: ServiceProcess; ready: boolean; killed: boolean }[] = [];
    const startWorker = () => {
      const proc = startServiceProcess(`worker ${++workerStarts}`, 'worker.ts', env);
      processes.add(proc);
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

    // ---------------------------------------------------------- the config
    const api = async (method: string, urlPath: string, body?: unknown) => {
      const res = await fetch(`${apiUrl}${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* keep the text */
      }
      return { status: res.status, body: parsed };
    };
    const workflowId = 'wf_chaos';
    const created = await api('POST', '/api/alerts/config', {
      config: {
        workflowId,
        name: 'chaos',
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}/hook`, timeoutMs: 1_000 },
        retry: { maxAttempts: 100, initialIntervalMs: 200, backoffCoefficient: 1.5, maxIntervalMs: 2_000, maxDurationMs: 3_600_000 },
      },
    });
    if (created.status !== 201) throw new Error(`config not created: ${created.status} ${JSON.stringify(created.body)}`);

    // ---------------------------------------------------------- sending
    const runTag = randomBytes(3).toString('hex');
    const accepted = new Set<string>();
    let sent = 0;
    let notAccepted = 0;
    let eventResends = 0;
    const inflight = new Set<Promise<void>>();
    const sendOne = async (index: number) => {
      const eventId = `evt_chaos_${runTag}_${index}`;
      const event = { id: eventId, type: 'run.failed', workflowId, runId: `run_${runTag}_${index}`, workflow: { name: 'Chaos', version: 1 }, error: { message: `chaos ${index}` } };
      const giveUpAt = Date.now() + 300_000;
      for (;;) {
        let outcome = '';
        try {
          const res = await api('POST', '/api/events', event);
          if (res.status === 202 && res.body?.deliveries?.length === 1) {
            accepted.add(res.body.deliveries[0].deliveryId);
            return;
          }
          outcome = `${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
          if (res.status < 500 && res.status !== 429) {
            notAccepted++;
            log(`event ${eventId} refused: ${outcome}`);
            return;
          }
        } catch (err) {
          outcome = (err as Error).message;
        }
        if (Date.now() > giveUpAt) {
          notAccepted++;
          log(`event ${eventId} not accepted within 300 s; last answer ${outcome}`);
          return;
        }
        eventResends++;
        await sleep(1_000);
      }
    };

    let devServerRestarts = 0;
    let devServerDownMs = 0;
    let devRestart: Promise<void> | undefined;
    const restartDevServer = async () => {
      const down = Date.now();
      log('restarting the Temporal dev server (same db file)');
      await devServer!.stop();
      devServer = await startDev();
      devServerDownMs = Date.now() - down;
      devServerRestarts++;
      log(`Temporal dev server back after ${devServerDownMs} ms`);
    };

    const killOne = async () => {
      // kill the oldest worker that is ready, keep the number of workers, never wait for the new one
      const victim = workers.find((w) => w.ready && !w.killed);
      if (!victim) return;
      victim.killed = true;
      startWorker();
      await victim.proc.kill('SIGKILL');
      workerKills++;
    };

    const expected = Math.round(options.seconds * options.rate);
    log(`sending ${expected} alerts at ${options.rate}/s for ${options.seconds} s; ${options.workers} workers, one SIGKILLed every ${options.killEveryMs} ms; dev server restart at ${Math.round(restartAtMs / 1000)} s; receiver: ${failShare * 100} % 503, ${hangShare * 100} % no answer`);
    const sendStart = Date.now();
    let lastKill = sendStart;
    const progressLine = (phase: string) => {
      const arrived = [...accepted].filter((id) => receiver.arrived(id)).length;
      const ready = workers.filter((w) => w.ready && !w.killed).length;
      log(
        `${phase} ${Math.round((Date.now() - sendStart) / 1000)} s: sent ${sent}, accepted ${accepted.size}, arrived ${arrived} (pending ${accepted.size - arrived}), ` +
          `requests ${receiver.total} (503 ${receiver.answered503}, no answer ${receiver.leftHanging}), event resends ${eventResends}, ` +
          `worker kills ${workerKills}, workers ready ${ready}/${workers.length}, dev server restarts ${devServerRestarts}, load ${os.loadavg()[0].toFixed(2)}`,
      );
    };
    const progress = setInterval(() => progressLine('sending'), progressEveryMs);
    try {
      while (sent < expected) {
        const now = Date.now();
        const due = Math.min(expected, Math.floor(((now - sendStart) / 1000) * options.rate) + 1);
        while (sent < due) {
          const p = sendOne(sent++);
          inflight.add(p);
          void p.finally(() => inflight.delete(p));
        }
        if (now - lastKill >= options.killEveryMs) {
          lastKill = now;
          void killOne();
        }
        if (!devRestart && now - sendStart >= restartAtMs) devRestart = restartDevServer();
        await sleep(Math.max(5, Math.min(100, 1000 / options.rate / 2)));
      }
      const sendSeconds = (Date.now() - sendStart) / 1000;
      if (!devRestart) devRestart = restartDevServer();
      await devRestart;
      await Promise.all([...inflight]);
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
      try {
        while (Date.now() - drainStart < options.drainTimeoutMs) {
          const allArrived = ids.every((id) => receiver.arrived(id));
          if (allArrived) {
            const rows = await db.query<{ n: string }>(
              `SELECT count(*) AS n FROM alert_deliveries WHERE delivery_id = ANY($1) AND status IN ('delivered', 'failed')`,
              [ids],
            );
            if (Number(rows.rows[0].n) === ids.length) {
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
      const logRows = await db.query<{ delivery_id: string; n: string; lost: string }>(
        `SELECT delivery_id, count(*) AS n, count(*) FILTER (WHERE error LIKE 'no outcome recorded%') AS lost FROM alert_logs WHERE delivery_id = ANY($1) GROUP BY delivery_id`,
        [ids],
      );
      const rowsBy = new Map(logRows.rows.map((r) => [r.delivery_id, Number(r.n)]));
      const lostAttemptRows = logRows.rows.reduce((s, r) => s + Number(r.lost), 0);
      const statusRows = await db.query<{ status: string; n: string }>(
        `SELECT status, count(*) AS n FROM alert_deliveries WHERE delivery_id = ANY($1) GROUP BY status`,
        [ids],
      );
      const statuses: Record<string, number> = Object.fromEntries(statusRows.rows.map((r) => [r.status, Number(r.n)]));
      const lostIds = ids.filter((id) => !receiver.arrived(id));
      let dupDeliveries = 0;
      let extraPosts = 0;
      let missingRows = 0;
      let deliveriesMissingRows = 0;
      let perDeliveryMax = 0;
      let requestsOfOurs = 0;
      const examples: string[] = [];
      for (const id of ids) {
        const seen = receiver.seen.get(id) ?? { requests: 0, ok: 0 };
        requestsOfOurs += seen.requests;
        perDeliveryMax = Math.max(perDeliveryMax, seen.requests);
        if (seen.ok > 1) {
          dupDeliveries++;
          extraPosts += seen.ok - 1;
        }
        const rows = rowsBy.get(id) ?? 0;
        if (rows < seen.requests) {
          deliveriesMissingRows++;
          missingRows += seen.requests - rows;
          if (examples.length < 10) examples.push(`${id}: ${seen.requests} requests, ${rows} rows`);
        }
      }
      const strangers = [...receiver.seen.keys()].filter((id) => !accepted.has(id));
      if (strangers.length) log(`the receiver saw ${strangers.length} webhook-id(s) of no accepted alert: ${strangers.slice(0, 5).join(', ')}`);
      const totalSeconds = (Date.now() - t0) / 1000;
      const result: ChaosResult = {
        at: new Date(t0).toISOString(),
        options: { seconds: options.seconds, rate: options.rate, workers: options.workers, killEveryMs: options.killEveryMs, devServerRestartAtMs: restartAtMs, drainTimeoutMs: options.drainTimeoutMs, failShare, hangShare, progressEveryMs },
        host: { cpus: os.cpus().length, loadStart, loadEnd: os.loadavg().map((n) => Math.round(n * 100) / 100) },
        sent,
        accepted: accepted.size,
        notAccepted,
        eventResends,
        arrived: ids.length - lostIds.length,
        lost: lostIds.length,
        lostIds: lostIds.slice(0, 100),
        duplicates: { deliveries: dupDeliveries, extraPosts },
        requests: {
          total: receiver.total,
          answered2xx: receiver.answered2xx,
          answered503: receiver.answered503,
          leftHanging: receiver.leftHanging,
          perDeliveryMax,
          meanPerDelivery: ids.length ? Math.round((requestsOfOurs / ids.length) * 100) / 100 : 0,
        },
        logRows: { total: logRows.rows.reduce((s, r) => s + Number(r.n), 0), deliveriesMissingRows, missingRows, examples, lostAttemptRows },
        statuses,
        workerKills,
        workerStarts,
        unexpectedWorkerExits,
        devServerRestarts,
        devServerDownMs,
        sendSeconds: Math.round(sendSeconds * 10) / 10,
        achievedRate: Math.round((sent / sendSeconds) * 100) / 100,
        drainSeconds: Math.round(drainSeconds * 10) / 10,
        drainedInTime,
        totalSeconds: Math.round(totalSeconds * 10) / 10,
        deliveredRate: Math.round(((ids.length - lostIds.length) / (sendSeconds + drainSeconds)) * 100) / 100,
        ok: lostIds.length === 0 && notAccepted === 0 && deliveriesMissingRows === 0 && strangers.length === 0,
      };
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

export function summarize(r: ChaosResult): string[] {
  return [
    `sent ${r.sent} alerts in ${r.sendSeconds} s (${r.achievedRate}/s), accepted ${r.accepted}, not accepted ${r.notAccepted} (event resends after 503/network errors: ${r.eventResends})`,
    `arrived ${r.arrived}, LOST ${r.lost}${r.lost ? ` (${r.lostIds.slice(0, 10).join(', ')})` : ''}; duplicates: ${r.duplicates.deliveries} alerts got ${r.duplicates.extraPosts} extra 2xx POSTs`,
    `receiver: ${r.requests.total} requests (2xx ${r.requests.answered2xx}, 503 ${r.requests.answered503}, no answer ${r.requests.leftHanging}); ${r.requests.meanPerDelivery} per alert on average, at most ${r.requests.perDeliveryMax}`,
    `alert_logs: ${r.logRows.total} rows (${r.logRows.lostAttemptRows} of them lost attempts); alerts with fewer rows than requests seen: ${r.logRows.deliveriesMissingRows} (${r.logRows.missingRows} rows missing)${r.logRows.examples.length ? `: ${r.logRows.examples.join('; ')}` : ''}`,
    `delivery statuses: ${JSON.stringify(r.statuses)}`,
    `chaos: ${r.workerKills} worker SIGKILLs (${r.workerStarts} worker starts, ${r.unexpectedWorkerExits} exits on their own), ${r.devServerRestarts} dev server restart(s) (${r.devServerDownMs} ms down)`,
    `drain: ${r.drainSeconds} s after the last send (${r.drainedInTime ? 'all ended' : 'TIMED OUT'}); delivered ${r.deliveredRate}/s over send + drain; total ${r.totalSeconds} s; load ${r.host.loadStart.join(' ')} -> ${r.host.loadEnd.join(' ')} on ${r.host.cpus} CPUs`,
    r.ok ? 'OK: zero lost, every attempt logged' : 'FAILED: see above',
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
  if (!databaseUrl) {
    const { startPostgres } = await import('../test/support/postgres');
    const pg = await startPostgres();
    databaseUrl = pg.url;
    stopPostgres = () => pg.stop();
    log(`PostgreSQL (${pg.mode}) started for this run`);
  } else log('PostgreSQL from DATABASE_URL');
  const seconds = num('CHAOS_SECONDS', 600);
  const rate = num('CHAOS_RATE', 6);
  log(`rate ${rate} alerts/s (CHAOS_RATE): ${Math.round(seconds * rate)} alerts in ${seconds} s`);
  let result: ChaosResult;
  try {
    result = await runChaos({
      seconds,
      rate,
      workers: num('CHAOS_WORKERS', 2),
      killEveryMs: num('CHAOS_KILL_EVERY_MS', 5_000),
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
  process.exit(result.lost === 0 && result.ok ? 0 : 1);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(2);
  });
}
