import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { ALL_SEARCH_ATTRIBUTES } from '../lib/search-attributes';
import { isExecutable } from './host';

/**
 * The real Temporal server (go.temporal.io/server) on PostgreSQL, for `npm run cluster`, the cluster
 * tests and bench/cluster.ts: the topology of a deployment, run from a binary built here.
 *
 * The binary and its schema tool are built once with `go install` at a pinned version into a cache
 * outside the clone, keyed by version (a fresh CI clone reuses it):
 *   $TEMPORAL_SERVER_DIR, else ${XDG_CACHE_HOME:-~/.cache}/meshhook-alerts/temporal-server/<version>/
 * holding `server`, `sql` (the schema tool) and `schema/postgresql/v12/` (copied from the module).
 * v1.32 needs a newer Go than Debian's: GOTOOLCHAIN makes the go command fetch that toolchain.
 */
export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
export const TEMPORAL_SERVER_GOTOOLCHAIN = 'go1.27.3';
const MODULE = 'go.temporal.io/server';

type Log = (line: string) => void;

export interface TemporalServerBinaries {
  dir: string;
  server: string;
  sqlTool: string;
  /** schema/postgresql/v12 of the module: temporal/versioned and visibility/versioned */
  schemaDir: string;
}

export function temporalServerCacheDir(version = TEMPORAL_SERVER_VERSION): string {
  if (process.env.TEMPORAL_SERVER_DIR) return path.resolve(process.env.TEMPORAL_SERVER_DIR);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'meshhook-alerts', 'temporal-server', version);
}

function binariesIn(dir: string): TemporalServerBinaries {
  return { dir, server: path.join(dir, 'server'), sqlTool: path.join(dir, 'sql'), schemaDir: path.join(dir, 'schema', 'postgresql', 'v12') };
}

const complete = (b: TemporalServerBinaries) =>
  isExecutable(b.server) && isExecutable(b.sqlTool) && fs.existsSync(path.join(b.schemaDir, 'temporal', 'versioned')) && fs.existsSync(path.join(b.schemaDir, 'visibility', 'versioned'));

function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOTOOLCHAIN: TEMPORAL_SERVER_GOTOOLCHAIN, GOFLAGS: '-buildvcs=false' };
}

function runGo(args: string[], env: NodeJS.ProcessEnv, log: Log): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onData = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const ticker = setInterval(() => log(`still building (go ${args[0]}) ...`), 60_000);
    child.once('error', (err) => {
      clearInterval(ticker);
      reject(new Error(`could not run go (${err.message}): install Go (https://go.dev/dl/, Debian: golang) to build the Temporal server`));
    });
    child.once('exit', (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(new Error(`go ${args.join(' ')} failed (${code ?? signal}):\n${tail}`));
    });
  });
}

/**
 * The server binaries at TEMPORAL_SERVER_VERSION: the cached copy, else built now with
 * `go install` (about 6 minutes on two cores the first time; the Go build cache makes a rebuild quick).
 */
export async function resolveTemporalServer(options: { log?: Log; build?: boolean } = {}): Promise<TemporalServerBinaries> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[temporal-server] ${line}\n`));
  const dir = temporalServerCacheDir();
  const found = binariesIn(dir);
  if (complete(found)) return found;
  if (options.build === false) throw new Error(`the Temporal server ${TEMPORAL_SERVER_VERSION} is not built in ${dir}: run \`npm run cluster -- --build\``);
  fs.mkdirSync(dir, { recursive: true });
  const env = { ...goEnv(), GOBIN: dir };
  if (!isExecutable(found.server) || !isExecutable(found.sqlTool)) {
    log(`building the Temporal server ${TEMPORAL_SERVER_VERSION} with go install (GOTOOLCHAIN=${TEMPORAL_SERVER_GOTOOLCHAIN}) into ${dir}; the first build takes about 6 minutes ...`);
    const started = Date.now();
    await runGo(['install', `${MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`, `${MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`], env, log);
    log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  // the schema files of the same module version, from the Go module cache (downloaded by the build)
  const download = spawnSync('go', ['mod', 'download', '-json', `${MODULE}@${TEMPORAL_SERVER_VERSION}`], { env, encoding: 'utf8', cwd: os.tmpdir() });
  if (download.status !== 0) throw new Error(`go mod download ${MODULE}@${TEMPORAL_SERVER_VERSION} failed: ${download.stderr || download.error?.message}`);
  const moduleDir = (JSON.parse(download.stdout) as { Dir: string }).Dir;
  fs.rmSync(path.join(dir, 'schema'), { recursive: true, force: true });
  fs.cpSync(path.join(moduleDir, 'schema', 'postgresql', 'v12'), found.schemaDir, { recursive: true });
  makeWritable(path.join(dir, 'schema')); // the module cache is read-only; the copy should be removable
  if (!complete(found)) throw new Error(`the Temporal server build in ${dir} is incomplete`);
  return found;
}

function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) makeWritable(full);
    else fs.chmodSync(full, 0o644);
  }
}

// ------------------------------------------------------------ schemas

export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** host, port, user and password of a postgres:// URL (the database part is ignored) */
export function postgresTarget(url: string): PostgresTarget {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
}

/**
 * Sets up (or updates) Temporal's two schemas with its own tool and SQL files, in existing databases:
 * `setup-schema -v 0.0` then `update-schema -d <versioned>`, as the module's docs and auto-setup do.
 */
export function setupTemporalSchemas(bin: TemporalServerBinaries, target: PostgresTarget, databases: { persistence: string; visibility: string }, log: Log): void {
  for (const [database, schema] of [[databases.persistence, 'temporal'], [databases.visibility, 'visibility']] as const) {
    const base = ['--plugin', 'postgres12', '--ep', target.host, '-p', String(target.port), '-u', target.user, '--db', database];
    const env = { ...process.env, SQL_PASSWORD: target.password };
    for (const args of [
      ['setup-schema', '-v', '0.0'],
      ['update-schema', '-d', path.join(bin.schemaDir, schema, 'versioned')],
    ]) {
      const result = spawnSync(bin.sqlTool, [...base, ...args], { env, encoding: 'utf8', timeout: 120_000 });
      if (result.status !== 0) throw new Error(`temporal sql tool ${args[0]} on ${database} failed (${result.status ?? result.error?.message}):\n${result.stderr}${result.stdout}`);
    }
    log(`schema ${schema} ready in database ${database}`);
  }
}

// ------------------------------------------------------------ the server

export interface TemporalServerOptions {
  bin: TemporalServerBinaries;
  target: PostgresTarget;
  databases: { persistence: string; visibility: string };
  /** frontend gRPC port; the other services take the ports listed in `ports` */
  frontendPort: number;
  /** nine free ports: frontend http, membership ×4, history, matching, worker gRPC, metrics */
  ports: number[];
  dir: string;
  namespace: string;
  numHistoryShards?: number;
  /** connections per persistence pool of the server (each of its four services opens its own) */
  maxConns?: number;
  log?: Log;
}

export interface TemporalServer {
  address: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Our config, from the module's config/development-postgres12.yaml: the same stores and services,
 * every port given, archival off, the dynamic config of docker/temporal/dynamicconfig.yaml.
 */
export function temporalServerConfig(options: TemporalServerOptions, dynamicConfigFile: string): string {
  const [httpPort, fMember, hMember, mMember, wMember, historyPort, matchingPort, workerPort, metricsPort] = options.ports;
  const { target } = options;
  const store = (database: string, maxConns: number) => `
      sql:
        pluginName: "postgres12"
        databaseName: ${JSON.stringify(database)}
        connectAddr: ${JSON.stringify(`${target.host}:${target.port}`)}
        connectProtocol: "tcp"
        user: ${JSON.stringify(target.user)}
        password: ${JSON.stringify(target.password)}
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: "1h"`;
  const service = (grpc: number, membership: number, http?: number) => `
    rpc:
      grpcPort: ${grpc}
      membershipPort: ${membership}
      bindOnLocalHost: true${http ? `\n      httpPort: ${http}` : ''}`;
  return `# written by runtime/temporal-server.ts from go.temporal.io/server ${TEMPORAL_SERVER_VERSION} config/development-postgres12.yaml
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: ${options.numHistoryShards ?? 4}
  datastores:
    postgres-default:${store(options.databases.persistence, options.maxConns ?? 20)}
    postgres-visibility:${store(options.databases.visibility, 4)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "127.0.0.1:${metricsPort}"
services:
  frontend:${service(options.frontendPort, fMember, httpPort)}
  history:${service(historyPort, hMember)}
  matching:${service(matchingPort, mMember)}
  worker:${service(workerPort, wMember)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${options.frontendPort}"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: ${JSON.stringify(dynamicConfigFile)}
  pollInterval: "10s"
`;
}

/** the same keys as docker/temporal/dynamicconfig.yaml (eager start and eager activities: docs/deployment.md) */
export const DYNAMIC_CONFIG = `system.enableActivityEagerExecution:
  - value: true
system.enableEagerWorkflowStart:
  - value: true
`;

let setprivPath: string | null | undefined;
function setprivWithPdeathsig(): string | undefined {
  if (setprivPath === undefined) {
    setprivPath = null;
    if (process.platform === 'linux' && spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0) setprivPath = 'setpriv';
  }
  return setprivPath ?? undefined;
}

/**
 * Starts the server (all four services in one process, as a single-host deployment runs it), waits
 * for its frontend, then registers the namespace and the six search attributes when missing.
 * Started through `setpriv --pdeathsig KILL` where there is one, so it dies with us even on a SIGKILL.
 */
export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServer> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[temporal-server] ${line}\n`));
  fs.mkdirSync(options.dir, { recursive: true });
  const dynamicConfigFile = path.join(options.dir, 'dynamicconfig.yaml');
  fs.writeFileSync(dynamicConfigFile, DYNAMIC_CONFIG);
  const configFile = path.join(options.dir, 'temporal-server.yaml');
  fs.writeFileSync(configFile, temporalServerConfig(options, dynamicConfigFile), { mode: 0o600 });
  const logFile = path.join(options.dir, 'temporal-server.log');
  const fd = fs.openSync(logFile, 'a');
  const args = ['--config-file', configFile, '--allow-no-auth', 'start'];
  const setpriv = setprivWithPdeathsig();
  const [command, commandArgs] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', options.bin.server, ...args]] : [options.bin.server, args];
  const child = spawn(command, commandArgs, { stdio: ['ignore', fd, fd], detached: true, cwd: options.dir });
  fs.closeSync(fd);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.once('error', () => undefined);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    await stopChild(child, exitPromise);
  };
  const address = `127.0.0.1:${options.frontendPort}`;
  try {
    await registerNamespace(address, options.namespace, () => exited, logFile);
  } catch (err) {
    await stop();
    throw err;
  }
  log(`Temporal server ${TEMPORAL_SERVER_VERSION} ready on ${address} (pid ${child.pid}, log ${logFile})`);
  return { address, pid: child.pid!, logFile, stop };
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

const tail = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n  ') : '');

async function registerNamespace(address: string, namespace: string, exited: () => boolean, logFile: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`the Temporal server exited before it was ready; its log (${logFile}) ends:\n  ${tail(logFile)}`);
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address, connectTimeout: 1_000 });
      await ensureNamespace(connection, namespace);
      return;
    } catch (err) {
      lastError = (err as Error).message;
    } finally {
      await connection?.close().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the Temporal server was not ready within ${timeoutMs / 1000} s (${lastError}); its log (${logFile}) ends:\n  ${tail(logFile)}`);
}

const ALREADY_EXISTS = 6;

/** `temporal operator namespace create` and `search-attribute create` for our six, over gRPC */
export async function ensureNamespace(connection: Connection, namespace: string, retentionDays = 7): Promise<void> {
  try {
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(`${retentionDays} days`) });
  } catch (err) {
    if ((err as { code?: number }).code !== ALREADY_EXISTS) throw err;
  }
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = ALL_SEARCH_ATTRIBUTES.filter((key) => !(key.name in (existing.customAttributes ?? {})));
  if (missing.length) {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((key) => [key.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  }
  // a namespace just registered is served once the frontend's namespace cache has it (up to ~10 s)
  await connection.workflowService.describeNamespace({ namespace });
  const now = await connection.operatorService.listSearchAttributes({ namespace });
  const still = ALL_SEARCH_ATTRIBUTES.filter((key) => !(key.name in (now.customAttributes ?? {})));
  if (still.length) throw new Error(`search attributes not registered yet: ${still.map((k) => k.name).join(', ')}`);
}
