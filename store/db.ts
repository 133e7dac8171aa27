import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { Pool, PoolClient } from 'pg';
import { logger } from '../lib/log';
import { CHANGES_SCHEMA, preparedQueries } from './pglite-prepared';

/**
 * The one seam between the store code and its database: the embedded PGlite
 * (a directory under DATA_DIR) or a PostgreSQL server (DATABASE_URL). Both take
 * the same SQL with $n parameters.
 */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** several statements, no parameters (migrations) */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Present when this process is the store's only writer (the embedded PGlite, which one process
   * holds): how many statements of this process wrote to given tables, for caches of reads
   * (store/read-cache.ts). Absent for PostgreSQL, which other processes write to.
   */
  readonly localWrites?: LocalWrites;
  /** runs fn inside BEGIN … COMMIT on one connection, ROLLBACK on error */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** runs fn on one connection (for session-level advisory locks) */
  session<T>(fn: (conn: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A count of this process's writes to the store, by table (see Db.localWrites). */
export interface LocalWrites {
  /** a number that changes whenever a statement that may write to one of `tables` is run (never decreases) */
  versionOf(tables: readonly string[]): number;
}

// The tables a statement writes to: INSERT INTO, UPDATE, DELETE FROM, anywhere in it (a CTE's too),
// optionally schema-qualified or quoted ("FOR UPDATE" and "DO UPDATE SET" count a write to a table
// named like the next word: harmless). DDL, TRUNCATE, COPY and MERGE count as writes to every table.
// The store's schema has no triggers, rules, cascades or functions that write.
const WRITE_TARGET = /\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?(?:"?\w+"?\.)?"?(\w+)"?/gi;
const WRITES_ANY = /\b(?:CREATE|ALTER|DROP|TRUNCATE|COPY|MERGE)\b/i;

/** Counts writes by table from each statement's text (memoized: the store's statements are constants). */
export function writeTracker(): LocalWrites & { saw(sql: string): void } {
  const byTable = new Map<string, number>();
  let all = 0;
  const parsed = new Map<string, string[] | 'all'>();
  const targetsOf = (sql: string): string[] | 'all' => {
    let targets = parsed.get(sql);
    if (targets) return targets;
    targets = WRITES_ANY.test(sql) ? 'all' : [...sql.matchAll(WRITE_TARGET)].map((m) => m[1].toLowerCase());
    if (parsed.size >= 2_000) parsed.clear(); // statement texts built at run time (erasure's table names) stay few
    parsed.set(sql, targets);
    return targets;
  };
  return {
    saw(sql) {
      const targets = targetsOf(sql);
      if (targets === 'all') all++;
      else for (const table of targets) byTable.set(table, (byTable.get(table) ?? 0) + 1);
    },
    versionOf(tables) {
      let version = all;
      for (const table of tables) version += byTable.get(table) ?? 0;
      return version;
    },
  };
}

/** the script a child process runs to create a PGlite data directory: argv[1] the module's URL, argv[2] the directory */
const INITDB_SCRIPT = `const { PGlite } = await import(process.argv[1]); const pg = await PGlite.create(process.argv[2]); await pg.close();`;
const INITDB_TIMEOUT_MS = 300_000;

/**
 * Creates PGlite's data directory `dir` (initdb) in a child process, when it has none yet.
 *
 * Measured (PGlite 0.5.17, Node 20): a `PGlite.create` that runs initdb leaves the process at about
 * 790 MiB RSS (initdb's WASM instance and its buffers stay reachable from the instance), while one
 * that opens an existing directory takes it to 250–300 MiB. Done in a child, initdb's memory goes
 * with the child, and the service opens the directory as it does on every later start. In the
 * whole service (bench/latency.ts at 20/s), the peak RSS went from 688–1,054 MiB to 579–617 MiB.
 *
 * initdb writes into a sibling folder that is renamed into place when it is complete: a start cut
 * off during initdb leaves no half-made directory at `dir`, and of two processes creating it at
 * once, one renames and the other uses that one's. An empty `dir` (a mount point) is written in
 * place; one that holds files but no PG_VERSION is refused, as it is not a database. A process
 * killed during initdb leaves its `<dir>.initdb-*` folder behind, which may be deleted.
 */
export async function initPgliteDir(dir: string): Promise<void> {
  if (fs.existsSync(path.join(dir, 'PG_VERSION'))) return;
  const fail = (reason: string) => new Error(`could not create the PGlite data directory ${dir}: ${reason}`);
  let entries: string[] | undefined;
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail((err as Error).message);
  }
  if (entries?.length) throw fail(`it holds files (${entries.slice(0, 3).join(', ')}) but no PG_VERSION; move it away, or point DATA_DIR elsewhere`);
  const inPlace = entries !== undefined;
  let target = dir;
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    if (!inPlace) target = fs.mkdtempSync(`${dir}.initdb-`);
    const moduleUrl = pathToFileURL(require.resolve('@electric-sql/pglite')).href;
    // NODE_OPTIONS cleared: an --inspect or --require meant for the service is not the child's
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', INITDB_SCRIPT, moduleUrl, target], {
      timeout: INITDB_TIMEOUT_MS,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
  } catch (err) {
    if (target !== dir) fs.rmSync(target, { recursive: true, force: true });
    const { killed, stderr, message } = err as { killed?: boolean; stderr?: string; message: string };
    if (killed) throw fail(`initdb did not finish within ${INITDB_TIMEOUT_MS / 1000} s`);
    const lines = (stderr || message).split('\n');
    throw fail((lines.find((line) => /^\w*Error\b/.test(line.trim())) ?? lines[0]).trim());
  }
  if (inPlace) return;
  try {
    fs.renameSync(target, dir);
  } catch (err) {
    fs.rmSync(target, { recursive: true, force: true });
    // another process renamed its directory into place first: that one is used
    if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) throw fail((err as Error).message);
  }
}

/**
 * PGlite's shared buffers (a start parameter: postgresql.conf stays as initdb wrote it). Its
 * default, 128MB, is memory the service holds from the start (RSS 299 MiB after opening a
 * directory, 173 MiB with 16MB); the store's statements cost the same with either
 * (bench/store-cost.ts, 3,000 alerts, two runs each: 5.8 and 6.4 ms of CPU per alert with 16MB,
 * 5.7 and 6.4 ms with 128MB), as the pages they miss are in the operating system's file cache.
 */
export const PGLITE_SHARED_BUFFERS = '16MB';

export async function openPglite(dir: string): Promise<Db> {
  await initPgliteDir(dir);
  // PGlite ships as ESM and CommonJS; the dynamic import keeps its WASM off the path of a PostgreSQL deployment.
  const { PGlite } = await import('@electric-sql/pglite');
  const pg: PGlite = await PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`] });
  const writes = writeTracker();
  const prepared = await preparedQueries(pg);
  // a write is counted before it runs: a read that began before it is not cached (store/read-cache.ts)
  const wrap = (q: PGlite | Transaction): Queryable => {
    const inTransaction = q !== pg;
    return {
      async query<T>(sql: string, params: unknown[] = []) {
        writes.saw(sql);
        if (inTransaction && (q as Transaction).closed) throw new Error('Transaction is closed');
        const rows = inTransaction ? prepared.runInTransaction<T>(sql, params) : prepared.run<T>(sql, params);
        if (rows) return rows;
        const result = (await q.query<T>(sql, params)).rows;
        if (CHANGES_SCHEMA.test(sql)) prepared.forget();
        return result;
      },
      async exec(sql: string) {
        writes.saw(sql);
        await q.exec(sql);
        if (CHANGES_SCHEMA.test(sql)) prepared.forget();
      },
    };
  };
  const base = wrap(pg);
  // PGlite is a single connection: every call is already on "one connection". That also makes its
  // session-level advisory locks re-entrant for every caller in this process (two concurrent migrate()
  // calls both "got" the lock and interleaved their BEGIN/COMMIT), so sessions take turns here.
  let sessions: Promise<unknown> = Promise.resolve();
  return {
    kind: 'pglite',
    localWrites: writes,
    ...base,
    transaction: (fn) => pg.transaction((tx) => fn(wrap(tx))),
    session: (fn) => {
      const turn = sessions.then(() => fn(base));
      sessions = turn.catch(() => undefined);
      return turn;
    },
    close: () => pg.close(),
  };
}

export async function openPostgres(url: string, options: { max?: number } = {}): Promise<Db> {
  const { Pool } = await import('pg');
  const pool: Pool = new Pool({ connectionString: url, max: options.max ?? 10 });
  pool.on('error', (err) => logger('store').error({ error: err.message }, `idle PostgreSQL connection failed: ${err.message}`));
  const wrap = (c: Pool | PoolClient): Queryable => ({
    async query<T>(sql: string, params?: unknown[]) {
      return (await c.query(sql, params as unknown[])).rows as T[];
    },
    async exec(sql: string) {
      await c.query(sql);
    },
  });
  // A client checked out of the pool has no 'error' listener of the pool's (pg-pool takes its idle one
  // off): a connection cut while a transaction or session holds it (PostgreSQL restarting) would emit
  // an unhandled 'error' and end the process. The statement in flight, or the next, fails with it and
  // the caller answers 503; the broken client is destroyed, not given back to the pool.
  const onOneClient = async <T>(fn: (client: PoolClient) => Promise<T>) => {
    const client = await pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onError);
    try {
      return await fn(client);
    } finally {
      if (!broken) client.removeListener('error', onError);
      client.release(broken);
    }
  };
  return {
    kind: 'postgres',
    ...wrap(pool),
    transaction: (fn) =>
      onOneClient(async (client) => {
        await client.query('BEGIN');
        try {
          const result = await fn(wrap(client));
          await client.query('COMMIT');
          return result;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }),
    session: (fn) => onOneClient((client) => fn(wrap(client))),
    close: () => pool.end(),
  };
}

/** where DATABASE_URL points, for messages: host:port, never the user or password */
export function postgresTarget(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.searchParams.get('host') ?? (parsed.hostname || 'localhost');
    return `${host}:${parsed.port || parsed.searchParams.get('port') || '5432'}`;
  } catch {
    return 'DATABASE_URL';
  }
}

/** network errors, and the answers of a server that is starting or shutting down: worth waiting for */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
const SERVER_NOT_READY = new Map([
  ['57P03', 'the database system is starting up'],
  ['57P01', 'the server is shutting down'],
  ['53300', 'too many connections'],
]);

/** Why `err` (from probePostgres) says PostgreSQL is not up yet, or undefined when waiting would not help (a wrong password, a missing database, bad TLS settings). */
export function postgresNotUpReason(err: unknown): string | undefined {
  const { code, message } = err as { code?: string; message?: string };
  if (code && NETWORK_ERRORS.has(code)) return code;
  if (code && SERVER_NOT_READY.has(code)) return `${SERVER_NOT_READY.get(code)}, ${code}`;
  if (/timeout expired/i.test(message ?? '')) return 'connect timeout';
  if (/Connection terminated/i.test(message ?? '')) return 'connection closed by the server';
  return undefined;
}

/** Connects once to DATABASE_URL and runs `SELECT 1`; rejects with the driver's error. */
export async function probePostgres(url: string, timeoutMs = 5_000): Promise<void> {
  const { Client } = await import('pg');
  const client = new Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined); // reported by connect() or query()
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function openDatabase(options: { databaseUrl?: string; dataDir: string }): Promise<Db> {
  return options.databaseUrl ? openPostgres(options.databaseUrl) : openPglite(path.join(options.dataDir, 'pglite'));
}
