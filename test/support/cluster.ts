import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client } from 'pg';
import { newKeySpec } from '../../lib/crypto';
import { resolveTemporalServer, setupTemporalSchemas, startTemporalServer, postgresTarget, type TemporalServer } from '../../runtime/temporal-server';
import { freePort } from '../../runtime/host';
import { startPostgres, type TestPostgres } from './postgres';
import { startServiceProcess, type ServiceProcess } from './processes';
import { makeScratchDir } from './scratch';

/**
 * The deployment topology on one machine: PostgreSQL (throwaway, or the server of TEST_DATABASE_URL),
 * the real Temporal server on it (runtime/temporal-server.ts), N API processes on N ports and M
 * worker processes (`node --import tsx api/server.ts` / `worker.ts`, as the image runs them), every
 * one on PostgreSQL. Used by test/cluster.test.ts, bench/cluster.ts and scripts/cluster.ts.
 * stop() ends every process it started and drops what it made.
 */
export interface Cluster {
  temporal: TemporalServer;
  postgres: TestPostgres;
  /** the alerts database */
  databaseUrl: string;
  /** Temporal's persistence database (role temporal) */
  temporalDatabaseUrl: string;
  apis: ClusterApi[];
  workers: ServiceProcess[];
  /** environment every API and worker gets (add PORT for an API) */
  env: Record<string, string>;
  token: string;
  dir: string;
  /** starts one more worker and waits until it is ready */
  startWorker(): Promise<ServiceProcess>;
  /** starts one more API process on a free port and waits until it is ready */
  startApi(): Promise<ClusterApi>;
  stop(): Promise<void>;
}

export interface ClusterApi {
  url: string;
  process: ServiceProcess;
}

export interface ClusterOptions {
  apis?: number;
  workers?: number;
  /** `token:projectId` pairs beyond the cluster's own token (project `default`) */
  extraTokens?: string[];
  env?: Record<string, string>;
  numHistoryShards?: number;
  /** the Temporal frontend's port (default: a free one) */
  temporalPort?: number;
  /** the first API's port, the next ones follow (default: free ones) */
  apiPort?: number;
  /** called with each API and worker process as it starts (npm run cluster shows their output) */
  onProcess?: (proc: ServiceProcess) => void;
  log?: (line: string) => void;
}

const READY = /ready; press Ctrl-C/;

/**
 * A free port below 32768: Temporal's cluster_membership table keeps ports as smallint, so the
 * server's ports (not only its membership ports: rpc_port too) must stay under it; the kernel's
 * ephemeral ports are above it.
 */
async function freeLowPort(taken: number[]): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.includes(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[cluster] ${line}\n`));
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const processes: ServiceProcess[] = [];
  const stop = async () => {
    const problems: string[] = [];
    await Promise.all(processes.map((p) => p.kill('SIGTERM').catch((err: Error) => problems.push(`${p.name}: ${err.message}`))));
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    if (problems.length) throw new Error(`cluster stop: ${problems.join('; ')}`);
  };
  try {
    const bin = await resolveTemporalServer({ log });
    const dir = makeScratchDir('meshhook-alerts-cluster-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const postgres = await startPostgres();
    cleanups.push(() => postgres.stop());
    const { temporalUrl, visibilityUrl, databaseUrl, dropRoles } = await databasesAndRoles(postgres);
    cleanups.push(dropRoles);
    const target = postgresTarget(temporalUrl);
    const databases = { persistence: databaseName(temporalUrl), visibility: databaseName(visibilityUrl) };
    setupTemporalSchemas(bin, target, databases, log);
    const ports: number[] = [];
    if (options.temporalPort) ports.push(options.temporalPort);
    while (ports.length < 10) ports.push(await freeLowPort(ports));
    const temporal = await startTemporalServer({
      bin,
      target,
      databases,
      frontendPort: ports[0],
      ports: ports.slice(1),
      dir: path.join(dir, 'temporal'),
      namespace: 'default',
      numHistoryShards: options.numHistoryShards,
      log,
    });
    cleanups.push(() => temporal.stop());

    const token = `cluster_${randomBytes(16).toString('hex')}`;
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'meshhook-alerts',
      ALERTS_ENCRYPTION_KEYS: newKeySpec(),
      ALERTS_API_TOKENS: [`${token}:default`, ...(options.extraTokens ?? [])].join(','),
      ALERTS_EGRESS_ALLOW: '127.0.0.1',
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      DATA_DIR: path.join(dir, 'data'),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...options.env,
    };
    const apis: ClusterApi[] = [];
    const workers: ServiceProcess[] = [];
    const startApi = async () => {
      const port = options.apiPort ? options.apiPort + apis.length : await freePort();
      const proc = startServiceProcess(`api ${apis.length + 1}`, 'api/server.ts', { ...env, PORT: String(port) });
      processes.push(proc);
      options.onProcess?.(proc);
      await proc.waitForOutput(READY, 120_000);
      const api = { url: `http://127.0.0.1:${port}`, process: proc };
      apis.push(api);
      return api;
    };
    const startWorker = async () => {
      const proc = startServiceProcess(`worker ${workers.length + 1}`, 'worker.ts', env);
      processes.push(proc);
      options.onProcess?.(proc);
      await proc.waitForOutput(READY, 120_000);
      workers.push(proc);
      return proc;
    };
    // one at a time: each runs the migrations under an advisory lock and bundles its workflows
    for (let i = 0; i < (options.apis ?? 2); i++) await startApi();
    for (let i = 0; i < (options.workers ?? 2); i++) await startWorker();
    return { temporal, postgres, databaseUrl, temporalDatabaseUrl: temporalUrl, apis, workers, env, token, dir, startApi, startWorker, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/**
 * The databases and roles of docker/postgres-init/01-databases.sh: a `temporal` role that owns the
 * persistence and visibility databases (no superuser: Temporal's schema tool runs as the owner), an
 * `alerts` role that owns the alerts database, each database reachable by its owner only. Role names
 * get a random suffix (roles are server-wide); on TEST_DATABASE_URL's server dropRoles() removes them.
 */
async function databasesAndRoles(postgres: TestPostgres): Promise<{ temporalUrl: string; visibilityUrl: string; databaseUrl: string; dropRoles: () => Promise<void> }> {
  const suffix = randomBytes(4).toString('hex');
  const roles = { temporal: `temporal_${suffix}`, alerts: `alerts_${suffix}` };
  const passwords = { temporal: randomBytes(12).toString('hex'), alerts: randomBytes(12).toString('hex') };
  const urls = [await postgres.createDatabase(), await postgres.createDatabase(), await postgres.createDatabase()];
  const admin = new Client({ connectionString: postgres.url });
  await admin.connect();
  const asRole = (url: string, role: 'temporal' | 'alerts') => {
    const u = new URL(url);
    u.username = roles[role];
    u.password = passwords[role];
    return u.toString();
  };
  try {
    for (const role of ['temporal', 'alerts'] as const) await admin.query(`CREATE ROLE "${roles[role]}" LOGIN PASSWORD '${passwords[role]}'`);
    for (const [url, role] of [[urls[0], 'temporal'], [urls[1], 'temporal'], [urls[2], 'alerts']] as const) {
      const name = databaseName(url);
      await admin.query(`ALTER DATABASE "${name}" OWNER TO "${roles[role]}"`);
      await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE "${name}" FROM PUBLIC`);
    }
  } finally {
    await admin.end();
  }
  return {
    temporalUrl: asRole(urls[0], 'temporal'),
    visibilityUrl: asRole(urls[1], 'temporal'),
    databaseUrl: asRole(urls[2], 'alerts'),
    async dropRoles() {
      if (postgres.mode !== 'external') return; // a throwaway server goes whole
      for (const url of urls) await postgres.dropDatabase(url);
      const client = new Client({ connectionString: postgres.url });
      await client.connect();
      try {
        for (const role of Object.values(roles)) await client.query(`DROP ROLE IF EXISTS "${role}"`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The pid of the process (among `pids`) that has a TCP connection open to 127.0.0.1:`port` (Linux /proc). */
export function pidConnectedTo(port: number, pids: number[]): number | undefined {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const remotePort = parseInt(fields[2].split(':')[1], 16);
      if (remotePort === port && fields[3] === '01') inodes.add(fields[9]); // 01: ESTABLISHED
    }
  }
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (inode && inodes.has(inode)) return pid;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}
