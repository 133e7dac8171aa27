import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Runtime, type Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { newKeySpec, parseKeyring, type Keyring } from '../lib/crypto';
import { loadEnv, parseTokenSeeds, type Env } from '../lib/env';
import { configureLogging, errorFields, logger, printBanner, temporalLogger } from '../lib/log';
import { metricsText, setTemporalMetricsUrl } from '../lib/metrics';
import { readStoreGauges } from '../store/gauges';
import { openDatabase, postgresNotUpReason, postgresTarget, probePostgres, type Db } from '../store/db';
import { migrate } from '../store/migrate';
import { addToken, countTokens, createToken } from '../store/tokens';
import { startMeshHookSource } from '../meshhook/source';
import { parseProjectMap } from '../lib/meshhook';
import { createAlertsWorker } from '../worker';
import { serviceDeps, type ServiceDeps } from './deps';
import { startDevServer, type DevServer } from './dev-server';
import { startDegradedMonitor } from './degraded-monitor';
import { startFailureRateMonitor } from './failure-rate-monitor';
import { keepRetentionScheduled } from './schedules';
import { createApiServer } from './http-server';
import { resolveTemporalCli } from './temporal-cli';
import { connectTemporal, temporalNotUpReason, type TemporalHandles } from './temporal';
import { freePort } from './host';

export interface Roles {
  worker: boolean;
  api: boolean;
}

export interface RunningService {
  env: Env;
  db: Db;
  keyring: Keyring;
  temporal: TemporalHandles;
  temporalAddress: string;
  apiUrl?: string;
  /** what the API was built from (API role only): a test builds a second app on it, e.g. with another rate limit */
  apiDeps?: ServiceDeps;
  temporalUiUrl?: string;
  /** the API token printed at start (embedded default only) */
  apiToken?: string;
  /** the embedded Temporal UI decodes payloads itself (its codec endpoint carries the embedded default's token) */
  temporalUiDecodes?: boolean;
  stop(): Promise<void>;
}

const log = logger('alerts');
/** the start's and the stop's narration: one log line each, shown at every LOG_LEVEL (lib/log.ts: lifecycle) */
const lifecycle = logger('alerts', { lifecycle: true });
const say = (line: string, fields: Record<string, unknown> = {}) => lifecycle.info(fields, line);
const lineLogger = (component: string) => {
  const componentLog = logger(component, { lifecycle: true });
  return (line: string) => componentLog.info({}, line);
};
/** the MeshHook source's lines: its start is lifecycle, a failed read a warning, its batches info */
const meshhookLogger = () => {
  const [life, plain] = [logger('meshhook', { lifecycle: true }), logger('meshhook')];
  return (line: string) => (line.startsWith('dispatched ') ? plain.info({}, line) : line.startsWith('stopped reading') ? plain.warn({}, line) : life.info({}, line));
};

/** The keyring from ALERTS_ENCRYPTION_KEYS; the embedded default keeps one in a key file under DATA_DIR. */
export function loadKeyring(env: Env): Keyring {
  if (env.ALERTS_ENCRYPTION_KEYS) return parseKeyring(env.ALERTS_ENCRYPTION_KEYS);
  if (!env.embeddedDatabase) {
    throw new Error('ALERTS_ENCRYPTION_KEYS is required with DATABASE_URL (e.g. ALERTS_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32))');
  }
  const file = path.join(env.dataDir, 'encryption-keys');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(env.dataDir, { recursive: true });
    fs.writeFileSync(file, `${newKeySpec()}\n`, { mode: 0o600, flag: 'wx' });
    say(`created an encryption key for data at rest in ${file} (mode 0600); keep it with the data, or set ALERTS_ENCRYPTION_KEYS`);
  }
  return parseKeyring(fs.readFileSync(file, 'utf8').trim());
}

/** Seeds ALERTS_API_TOKENS; the embedded default makes one token for project "default" when there is none. */
async function prepareTokens(env: Env, db: Db): Promise<string | undefined> {
  for (const seed of parseTokenSeeds(env.ALERTS_API_TOKENS)) await addToken(db, seed.token, seed.projectId, 'ALERTS_API_TOKENS');
  if (!env.embeddedDatabase) return undefined;
  const file = path.join(env.dataDir, 'api-token');
  if ((await countTokens(db)) === 0) {
    const token = await createToken(db, 'default', 'embedded default');
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    say(`created an API token for project "default" and wrote it to ${file} (mode 0600)`);
    return token;
  }
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : undefined;
}

/** The Web UI's origin as a browser sends it, under both names of the loopback address. */
function webUiOrigins(uiUrl: string): string[] {
  const url = new URL(uiUrl);
  const origins = [url.origin];
  const other = { '127.0.0.1': 'localhost', localhost: '127.0.0.1' }[url.hostname];
  if (other) origins.push(`${url.protocol}//${other}${url.port ? `:${url.port}` : ''}`);
  return origins;
}

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 5_000;
const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * Runs `attempt` until it succeeds, retrying with exponential backoff (0.5 s doubling up to 5 s) while
 * `notUpReason` says the dependency is not up yet and the start's deadline (ALERTS_STARTUP_WAIT_SECONDS)
 * has not passed: in a deployment PostgreSQL, Temporal and this service come up in any order.
 */
async function waitUntilUp<T>(
  what: { name: string; target: string; setting: string },
  deadline: { at: number; limitSeconds: number },
  attempt: () => Promise<T>,
  notUpReason: (err: unknown) => string | undefined,
): Promise<T> {
  for (let retry = 1; ; retry++) {
    try {
      return await attempt();
    } catch (err) {
      const reason = notUpReason(err);
      if (!reason) throw err;
      const left = deadline.at - Date.now();
      if (left <= 0) {
        const waited = deadline.limitSeconds ? `still not up after waiting ${deadline.limitSeconds} s` : 'not up (ALERTS_STARTUP_WAIT_SECONDS=0: no waiting)';
        throw new Error(`${what.name} at ${what.target} is ${waited}: ${reason} (${(err as Error).message.split('\n')[0]}); check ${what.setting}, or wait longer with ALERTS_STARTUP_WAIT_SECONDS`);
      }
      const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (retry - 1), BACKOFF_MAX_MS, left);
      say(`waiting for ${what.name} at ${what.target} (${reason}); retry ${retry} in ${seconds(delay)}, giving up in ${Math.ceil(left / 1000)} s`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

let runtimeInstalled = false;
/**
 * The Temporal runtime of this process: the SDK's log lines and its native core's (forwarded) go to
 * pino at LOG_LEVEL (its INFO lines include the whole webpack report of the workflow bundle, so info
 * shows its warnings); its worker and client metrics go to a Prometheus exporter on a free loopback
 * port, which GET /metrics appends to ours (lib/metrics.ts metricsText).
 */
async function installTemporalRuntime(env: Env): Promise<void> {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = env.LOG_LEVEL === 'debug' ? 'DEBUG' : env.LOG_LEVEL === 'error' ? 'ERROR' : 'WARN';
  const logging = { forward: {}, filter: { core: level, other: 'ERROR' } } as const;
  const bindAddress = `127.0.0.1:${await freePort()}`;
  // a webhook attempt or an operator alert that failed has its own log line (activities/webhook-attempt.ts, activities/operator.ts)
  const sdkLogger = temporalLogger(level, { expectedFailures: ['WebhookAttemptFailed', 'OperatorAlertAttemptFailed'] });
  try {
    Runtime.install({ logger: sdkLogger, telemetryOptions: { logging, metrics: { prometheus: { bindAddress, useSecondsForDurations: true } } } });
    setTemporalMetricsUrl(`http://${bindAddress}/metrics`);
  } catch (err) {
    // another part of this process (a test harness) made the runtime first: keep it, without our exporter
    if (/already been (installed|instantiated)/.test((err as Error).message)) {
      log.warn(errorFields(err), 'the Temporal runtime was made before the service started: its metrics are not in /metrics');
      return;
    }
    // the exporter's port was taken between freePort() and its bind: run without the SDK's metrics rather than not at all
    log.warn(errorFields(err), `the Temporal SDK's metrics exporter could not start on ${bindAddress}: its metrics are not in /metrics`);
    Runtime.install({ logger: sdkLogger, telemetryOptions: { logging } });
  }
}

/** GET /metrics on its own port (ALERTS_METRICS_PORT): how a process without the API is scraped. */
async function startMetricsListener(host: string, port: number, db: Db): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    metricsText(() => readStoreGauges(db)).then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
      (err) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export async function startService(options: { roles: Roles; env?: NodeJS.ProcessEnv; /** operator monitors' intervals (tests make them short) */ monitors?: { failureRateCheckMs?: number; degradedProbeMs?: number } }): Promise<RunningService> {
  const env = loadEnv(options.env ?? process.env);
  configureLogging({ level: env.LOG_LEVEL, format: env.LOG_FORMAT });
  const { roles } = options;
  if (env.embeddedDatabase && !(roles.api && roles.worker)) {
    throw new Error('the embedded store (no DATABASE_URL) lives inside one process: run `npm start`, or set DATABASE_URL to run the API and worker apart');
  }
  if (env.embeddedTemporal && !(roles.api && roles.worker)) {
    throw new Error('TEMPORAL_ADDRESS is required to run the API or the worker alone; `npm start` runs the embedded Temporal dev server');
  }
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err) => log.error(errorFields(err), `shutdown step failed: ${err.message}`));
  };
  const deadline = { at: Date.now() + env.ALERTS_STARTUP_WAIT_SECONDS * 1000, limitSeconds: env.ALERTS_STARTUP_WAIT_SECONDS };
  try {
    const keyring = loadKeyring(env);
    say(env.embeddedDatabase ? `store: embedded PostgreSQL (PGlite) in ${path.join(env.dataDir, 'pglite')}` : 'store: PostgreSQL from DATABASE_URL');
    if (env.DATABASE_URL) {
      const url = env.DATABASE_URL;
      await waitUntilUp({ name: 'PostgreSQL', target: postgresTarget(url), setting: 'DATABASE_URL' }, deadline, () => probePostgres(url), postgresNotUpReason);
    }
    const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
    cleanups.push(() => db.close());
    await migrate(db, lineLogger('migrate'), { keyring });
    const apiToken = await prepareTokens(env, db);

    // the embedded Web UI is told the codec endpoint's URL before the API listens: PORT=0 becomes a free port here
    const apiPort = env.PORT === 0 && env.embeddedTemporal && roles.api ? await freePort(env.HOST) : env.PORT;
    const apiBase = `${env.ALERTS_TLS_CERT_PATH ? 'https' : 'http'}://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${apiPort}`;
    let address = env.TEMPORAL_ADDRESS;
    let devServer: DevServer | undefined;
    if (env.embeddedTemporal) {
      const cliPath = await resolveTemporalCli({ cliPath: env.TEMPORAL_CLI_PATH, log: lineLogger('temporal-cli') });
      say(`starting the Temporal dev server (${cliPath}), state in ${path.join(env.dataDir, 'temporal.sqlite')}`);
      devServer = await startDevServer({
        cliPath,
        dataDir: env.dataDir,
        namespace: env.TEMPORAL_NAMESPACE,
        port: env.TEMPORAL_DEV_PORT,
        uiPort: env.TEMPORAL_UI_PORT,
        sqlitePragmas: env.TEMPORAL_DEV_SQLITE_PRAGMAS.split(',').map((p) => p.trim()).filter(Boolean),
        // the embedded UI has no login; with the token in the path it decodes project "default" by itself
        codecEndpoint: roles.api ? `${apiBase}/codec${apiToken ? `/${encodeURIComponent(apiToken)}` : ''}` : undefined,
        log: lineLogger('dev-server'),
      });
      cleanups.push(() => devServer!.stop());
      address = devServer.address;
    }
    say(`connecting to Temporal at ${address}, namespace ${env.TEMPORAL_NAMESPACE}, task queue ${env.TEMPORAL_TASK_QUEUE}`);
    await installTemporalRuntime(env);
    const temporal = await waitUntilUp(
      { name: 'Temporal', target: address!, setting: 'TEMPORAL_ADDRESS' },
      deadline,
      () => connectTemporal(env, address!, keyring),
      (err) => temporalNotUpReason(err, env.TEMPORAL_NAMESPACE),
    );
    cleanups.push(() => temporal.connection.close());

    const uiUrl = env.TEMPORAL_UI_PUBLIC_URL ?? devServer?.uiUrl;
    // the one bag of dependencies: the worker and the API get the same settings
    const deps = serviceDeps(env, { db, keyring, temporal, temporalUiUrl: uiUrl });
    // service.degraded: this process probes Temporal and the store (docs/operator-alerts.md)
    const degraded = startDegradedMonitor(deps, { probeEveryMs: options.monitors?.degradedProbeMs });
    cleanups.push(() => degraded.stop());
    let worker: Worker | undefined;
    if (roles.worker) {
      worker = await createAlertsWorker(
        temporal.connection,
        deps,
        {
          maxCachedWorkflows: env.TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS,
          maxConcurrentWorkflowTaskExecutions: env.TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
          maxConcurrentActivityTaskExecutions: env.TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES,
          maxConcurrentLocalActivityExecutions: env.TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES,
          workflowThreadPoolSize: env.TEMPORAL_WORKER_WORKFLOW_THREADS,
        },
      );
      const running = worker.run();
      running.catch((err) => {
        log.error(errorFields(err), `the worker stopped: ${err.message}`);
        process.exitCode = 1;
      });
      cleanups.push(async () => {
        if (worker!.getState() === 'RUNNING') worker!.shutdown();
        await running.catch(() => undefined);
      });
      say('worker running');
      const failureRate = startFailureRateMonitor(deps, { checkEveryMs: options.monitors?.failureRateCheckMs });
      cleanups.push(() => failureRate.stop());
      await keepRetentionScheduled(deps, env.ALERTS_RETENTION_INTERVAL_SECONDS);
    }

    if (env.MESHHOOK_DATABASE_URL) {
      const source = await startMeshHookSource(deps, { url: env.MESHHOOK_DATABASE_URL, projects: parseProjectMap(env.MESHHOOK_PROJECTS), log: meshhookLogger() });
      cleanups.push(() => source.stop());
    }

    let apiUrl: string | undefined;
    let apiDeps: ServiceDeps | undefined;
    if (roles.api) {
      apiDeps = deps;
      const app = createApp(deps, {
        trustProxy: env.TRUST_PROXY,
        rateLimitPerMinute: env.ALERTS_RATE_LIMIT_PER_MINUTE,
        codecCorsOrigins: [...env.ALERTS_CODEC_CORS_ORIGINS, ...[uiUrl, devServer?.uiUrl].flatMap((url) => (url ? webUiOrigins(url) : []))],
      });
      const tls = env.ALERTS_TLS_CERT_PATH && env.ALERTS_TLS_KEY_PATH ? { certPath: env.ALERTS_TLS_CERT_PATH, keyPath: env.ALERTS_TLS_KEY_PATH } : undefined;
      const server = createApiServer(app.callback(), tls);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(apiPort, env.HOST, () => resolve());
      });
      const { port } = server.address() as AddressInfo;
      apiUrl = `${tls ? 'https' : 'http'}://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${port}`;
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
    }
    if (env.ALERTS_METRICS_PORT) {
      const metricsServer = await startMetricsListener(env.HOST, env.ALERTS_METRICS_PORT, db);
      cleanups.push(() => new Promise<void>((resolve) => metricsServer.close(() => resolve())));
      say(`metrics on http://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${env.ALERTS_METRICS_PORT}/metrics`, { metricsPort: env.ALERTS_METRICS_PORT });
    }
    const temporalUiDecodes = Boolean(devServer && roles.api && apiToken);
    return { env, db, keyring, temporal, temporalAddress: address!, apiUrl, apiDeps, temporalUiUrl: uiUrl, apiToken, temporalUiDecodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs the service until SIGINT/SIGTERM, then shuts everything down (a second signal forces the exit). */
export async function runService(options: { roles: Roles }): Promise<void> {
  let service: RunningService;
  try {
    service = await startService(options);
  } catch (err) {
    log.error(errorFields(err), `could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  // the banner: plain lines in a terminal, log lines (same messages, and the URLs as fields) in JSON
  const banner = [''];
  if (service.apiUrl) banner.push(`API          ${service.apiUrl}   (OpenAPI: ${service.apiUrl}/openapi.json)`);
  if (service.apiUrl) banner.push(`Web UI       ${service.apiUrl}/   (sign in with the API token below)`);
  if (service.temporalUiUrl) banner.push(`Temporal UI  ${service.temporalUiUrl}   (each delivery is a workflow there)`);
  // payloads in Temporal are encrypted: the UI shows them once its codec server carries a token
  if (service.temporalUiDecodes) banner.push(`Codec        the Temporal UI decodes project "default" through ${service.apiUrl}/codec/<API token>`);
  else if (service.temporalUiUrl && service.apiUrl) banner.push(`Codec        ${service.apiUrl}/codec/<API token>   (Temporal UI: Codec Server setting, to read payloads)`);
  // the embedded default's own token, made at its first start; a deployment seeds ALERTS_API_TOKENS and prints none
  if (service.apiToken) banner.push(`API token    ${service.apiToken}   (project "default"; also in ${path.join(service.env.dataDir, 'api-token')})`);
  else if (service.env.embeddedDatabase && !service.env.ALERTS_API_TOKENS) banner.push(`API token    ${path.join(service.env.dataDir, 'api-token')} is missing; create a token with: npm run token -- default`);
  if (service.apiUrl && !service.env.ALERTS_EGRESS_ALLOW && !service.env.ALERTS_ALLOW_PRIVATE_NETWORKS) {
    banner.push('Webhooks     public addresses only; to send to a receiver on this machine, start with ALERTS_EGRESS_ALLOW=127.0.0.1 (docs/security.md: Egress policy)');
  }
  banner.push('ready; press Ctrl-C to stop');
  printBanner('alerts', banner, { apiUrl: service.apiUrl, temporalUiUrl: service.temporalUiUrl });
  let stopping = 0;
  const shutdown = (signal: string) => {
    // npm passes a terminal's Ctrl-C on to us as well: a repeat within a moment is the same request
    if (stopping && Date.now() - stopping < 500) return;
    if (stopping) {
      say(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = Date.now();
    say(`${signal}: shutting down`);
    void service.stop().then(() => {
      say('stopped');
      process.exit(process.exitCode ?? 0);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}
