import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { newKeySpec, parseKeyring, type Keyring } from '../lib/crypto';
import { loadEnv, parseTokenSeeds, type Env } from '../lib/env';
import { openDatabase, postgresNotUpReason, postgresTarget, probePostgres, type Db } from '../store/db';
import { migrate } from '../store/migrate';
import { addToken, countTokens, createToken } from '../store/tokens';
import { startMeshHookSource } from '../meshhook/source';
import { parseProjectMap } from '../lib/meshhook';
import { createAlertsWorker } from '../worker';
import { serviceDeps, type ServiceDeps } from './deps';
import { startDevServer, type DevServer } from './dev-server';
import { createApiServer } from './http-server';
import { resolveTemporalCli } from './temporal-cli';
import { connectTemporal, temporalNotUpReason, type TemporalHandles } from './temporal';

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

const say = (line: string) => console.log(`[alerts] ${line}`);

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

/** A TCP port free on `host` at this moment (another process may still take it before it is used). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
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
/** The SDK logs at LOG_LEVEL (its INFO lines include the whole webpack report of the workflow bundle). */
function installTemporalRuntime(env: Env): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = env.LOG_LEVEL === 'debug' ? 'DEBUG' : env.LOG_LEVEL === 'info' ? 'WARN' : env.LOG_LEVEL.toUpperCase();
  Runtime.install({ logger: new DefaultLogger(level as 'WARN') });
}

export async function startService(options: { roles: Roles; env?: NodeJS.ProcessEnv }): Promise<RunningService> {
  const env = loadEnv(options.env ?? process.env);
  const { roles } = options;
  if (env.embeddedDatabase && !(roles.api && roles.worker)) {
    throw new Error('the embedded store (no DATABASE_URL) lives inside one process: run `npm start`, or set DATABASE_URL to run the API and worker apart');
  }
  if (env.embeddedTemporal && !(roles.api && roles.worker)) {
    throw new Error('TEMPORAL_ADDRESS is required to run the API or the worker alone; `npm start` runs the embedded Temporal dev server');
  }
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err) => console.error(`[alerts] shutdown step failed: ${err.message}`));
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
    await migrate(db, (line) => say(line), { keyring });
    const apiToken = await prepareTokens(env, db);

    // the embedded Web UI is told the codec endpoint's URL before the API listens: PORT=0 becomes a free port here
    const apiPort = env.PORT === 0 && env.embeddedTemporal && roles.api ? await freePort(env.HOST) : env.PORT;
    const apiBase = `${env.ALERTS_TLS_CERT_PATH ? 'https' : 'http'}://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${apiPort}`;
    let address = env.TEMPORAL_ADDRESS;
    let devServer: DevServer | undefined;
    if (env.embeddedTemporal) {
      const cliPath = await resolveTemporalCli({ cliPath: env.TEMPORAL_CLI_PATH, log: (line) => say(line) });
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
        log: (line) => say(line),
      });
      cleanups.push(() => devServer!.stop());
      address = devServer.address;
    }
    say(`connecting to Temporal at ${address}, namespace ${env.TEMPORAL_NAMESPACE}, task queue ${env.TEMPORAL_TASK_QUEUE}`);
    installTemporalRuntime(env);
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
        console.error(`[alerts] the worker stopped: ${err.message}`);
        process.exitCode = 1;
      });
      cleanups.push(async () => {
        if (worker!.getState() === 'RUNNING') worker!.shutdown();
        await running.catch(() => undefined);
      });
      say('worker running');
    }

    if (env.MESHHOOK_DATABASE_URL) {
      const source = await startMeshHookSource(deps, { url: env.MESHHOOK_DATABASE_URL, projects: parseProjectMap(env.MESHHOOK_PROJECTS), log: (line) => say(`meshhook: ${line}`) });
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
    console.error(`[alerts] could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  console.log('');
  if (service.apiUrl) say(`API          ${service.apiUrl}   (OpenAPI: ${service.apiUrl}/openapi.json)`);
  if (service.apiUrl) say(`Web UI       ${service.apiUrl}/   (sign in with the API token below)`);
  if (service.temporalUiUrl) say(`Temporal UI  ${service.temporalUiUrl}`);
  // payloads in Temporal are encrypted: the UI shows them once its codec server carries a token
  if (service.temporalUiDecodes) say(`Codec        the Temporal UI decodes project "default" through ${service.apiUrl}/codec/<API token>`);
  else if (service.temporalUiUrl && service.apiUrl) say(`Codec        ${service.apiUrl}/codec/<API token>   (Temporal UI: Codec Server setting, to read payloads)`);
  if (service.apiToken) say(`API token    ${service.apiToken}   (project "default"; also in ${path.join(service.env.dataDir, 'api-token')})`);
  else if (service.env.embeddedDatabase && !service.env.ALERTS_API_TOKENS) say(`API token    ${path.join(service.env.dataDir, 'api-token')} is missing; create a token with: npm run token -- default`);
  if (service.apiUrl && !service.env.ALERTS_EGRESS_ALLOW && !service.env.ALERTS_ALLOW_PRIVATE_NETWORKS) {
    say('Webhooks     public addresses only; to send to a receiver on this machine, start with ALERTS_EGRESS_ALLOW=127.0.0.1 (docs/security.md: Egress policy)');
  }
  say('ready; press Ctrl-C to stop');
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
