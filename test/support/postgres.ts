import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { freePort, isExecutable } from '../../runtime/host';
import { atProcessEnd, makeScratchDir } from './scratch';

/**
 * A real, throwaway PostgreSQL for the tests.
 *
 * - `TEST_DATABASE_URL` set: uses that server (the user needs CREATEDB); every database made here is
 *   named `alerts_test_<random>…` and dropped by stop().
 * - otherwise: runs `initdb` + `postgres` from the installed PostgreSQL (Debian's
 *   /usr/lib/postgresql/<newest>/bin, else PATH) in a temp folder, listening on 127.0.0.1 and a free
 *   port, trust auth, fsync off. As root it runs them as user `postgres` (initdb refuses root). If no
 *   PostgreSQL is installed and we are root on Debian, it installs the `postgresql` package.
 *
 * stop() ends the server and removes its folder; if the process ends (exit, SIGINT, SIGTERM, SIGHUP)
 * without calling it, the same happens then, so no postgres process outlives the test run.
 */
export interface TestPostgres {
  /** a fresh, empty database of this run */
  readonly url: string;
  /** `external` when TEST_DATABASE_URL named the server, `local` for one started here */
  readonly mode: 'external' | 'local';
  /** makes another fresh, empty database on the same server and returns its URL; stop() drops it */
  createDatabase(): Promise<string>;
  /** drops a database made by createDatabase (its connections are closed first) */
  dropDatabase(url: string): Promise<void>;
  stop(): Promise<void>;
}

const log = (line: string) => process.stderr.write(`[test postgres] ${line}\n`);

export async function startPostgres(): Promise<TestPostgres> {
  const external = process.env.TEST_DATABASE_URL?.trim();
  if (external) return withDatabases(external, 'external', async () => undefined);
  const server = await startLocalServer();
  try {
    return await withDatabases(server.adminUrl, 'local', server.stop);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

// ------------------------------------------------------------ databases on a server

async function withDatabases(adminUrl: string, mode: 'external' | 'local', stopServer: () => Promise<void>): Promise<TestPostgres> {
  const admin = new Client({ connectionString: adminUrl });
  admin.on('error', () => undefined); // the server going away at stop() is expected
  await admin.connect();
  const runName = `alerts_test_${randomBytes(4).toString('hex')}`;
  const created = new Set<string>();
  let counter = 0;
  const urlFor = (name: string) => {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };
  const create = async (name: string) => {
    // template0: always present and never has extra objects or connections in it
    await admin.query(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8'`);
    created.add(name);
    return urlFor(name);
  };
  const drop = async (name: string) => {
    try {
      // waits a few seconds for sessions that are closing (pg's pool.end() does not wait for its sockets)
      await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
    } catch (err) {
      if ((err as { code?: string }).code !== '55006') throw err; // object_in_use: a connection was left open
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
    created.delete(name);
  };
  let url: string;
  try {
    url = await create(runName);
  } catch (err) {
    await admin.end().catch(() => undefined);
    if (mode === 'external') throw new Error(`TEST_DATABASE_URL: could not create a test database (the user needs CREATEDB): ${(err as Error).message}`);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url,
    mode,
    createDatabase: () => create(`${runName}_${++counter}`),
    async dropDatabase(databaseUrl: string) {
      const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
      if (!created.has(name)) throw new Error(`database ${name} was not made by this test server`);
      await drop(name);
    },
    stop() {
      stopping ??= (async () => {
        try {
          // On a throwaway server the databases go with it; on someone else's server they must be dropped.
          if (mode === 'external') for (const name of [...created]) await drop(name);
        } finally {
          await admin.end().catch(() => undefined);
          await stopServer();
        }
      })();
      return stopping;
    },
  };
}

// ------------------------------------------------------------ the local server

interface Binaries {
  initdb: string;
  postgres: string;
}

/** Debian's /usr/lib/postgresql/<newest>/bin first, then initdb and postgres on PATH. */
export function findPostgresBinaries(): Binaries | undefined {
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const versions = fs
      .readdirSync(debian)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const bin = path.join(debian, version, 'bin');
      const found = { initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') };
      if (isExecutable(found.initdb) && isExecutable(found.postgres)) return found;
    }
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const initdb = path.join(dir, 'initdb');
    if (!isExecutable(initdb)) continue;
    // postgres next to the real initdb (PATH often holds symlinks), else beside the link
    for (const bin of [path.dirname(fs.realpathSync(initdb)), dir]) {
      if (isExecutable(path.join(bin, 'postgres'))) return { initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') };
    }
  }
  return undefined;
}

const HOW_TO_INSTALL =
  'PostgreSQL is needed for the PostgreSQL store tests, and its server programs (initdb, postgres) were not found. ' +
  'Install it (Debian/Ubuntu: `sudo apt-get install postgresql`; Fedora: `sudo dnf install postgresql-server`; ' +
  'macOS: `brew install postgresql@16`), or set TEST_DATABASE_URL to a PostgreSQL server whose user may CREATE DATABASE, ' +
  'e.g. TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres';

const isRoot = () => process.getuid?.() === 0;

function run(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', process.stderr, process.stderr],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function ensureBinaries(): Promise<Binaries> {
  const found = findPostgresBinaries();
  if (found) return found;
  if (!(isRoot() && fs.existsSync('/etc/debian_version') && isExecutable('/usr/bin/apt-get'))) throw new Error(HOW_TO_INSTALL);
  log('PostgreSQL is not installed: running `apt-get install -y postgresql` (set TEST_DATABASE_URL to use an existing server instead)');
  let status = await run('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql']);
  if (status !== 0) {
    log('apt-get install failed: running `apt-get update` and trying again');
    await run('apt-get', ['update']);
    status = await run('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql']);
  }
  const installed = findPostgresBinaries();
  if (status !== 0) throw new Error(`apt-get install postgresql failed (exit ${status}). ${HOW_TO_INSTALL}`);
  if (!installed) throw new Error(`apt-get installed postgresql, yet initdb and postgres are still not found. ${HOW_TO_INSTALL}`);
  return installed;
}

function lookupUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`running as root, and there is no "${name}" user to run PostgreSQL as (initdb refuses to run as root). ${HOW_TO_INSTALL}`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** synchronous sleep, for the 'exit' handler */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** true while pid is a live (not zombie) process */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc: trust kill(pid, 0)
  }
}

const tail = (file: string, lines = 20) => {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
};

async function startLocalServer(): Promise<{ adminUrl: string; stop: () => Promise<void> }> {
  const bin = await ensureBinaries();
  const root = isRoot();
  const owner = root ? lookupUser('postgres') : undefined;
  // initdb refuses to run as root: as root, initdb and postgres run as the `postgres` user
  const asOwner = (command: string, args: string[]): [string, string[]] => (root ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]);

  const dir = makeScratchDir('meshhook-alerts-pg-');
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  let child: ChildProcess | undefined;
  let postmasterPid: number | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;

  // Ends the server without waiting on the event loop: used by stop() as a last resort and at process exit.
  const killSync = () => {
    if (postmasterPid !== undefined && alive(postmasterPid)) {
      // immediate shutdown: the postmaster ends its backends itself, then exits
      try {
        process.kill(postmasterPid, 'SIGQUIT');
      } catch {
        /* gone already */
      }
      for (let waited = 0; waited < 5_000 && alive(postmasterPid); waited += 20) sleepSync(20);
      if (alive(postmasterPid)) process.kill(postmasterPid, 'SIGKILL');
    }
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL'); // its process group: runuser and a postmaster that never got ready
      } catch {
        /* gone already */
      }
    }
  };
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  const forget = atProcessEnd(() => {
    if (stopped) return;
    stopped = true;
    killSync();
    removeDir();
  });

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    forget();
    if (postmasterPid !== undefined && alive(postmasterPid)) {
      process.kill(postmasterPid, 'SIGQUIT');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 10_000)));
      const outcome = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') killSync();
    } else killSync();
    removeDir();
  };

  try {
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
    const [initCmd, initArgs] = asOwner(bin.initdb, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
    const init = spawnSync(initCmd, initArgs, { encoding: 'utf8', cwd: dir });
    if (init.error) throw init.error;
    if (init.status !== 0) throw new Error(`initdb failed (exit ${init.status}):\n${init.stderr || init.stdout}`);

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const logFd = fs.openSync(logFile, 'a');
      const [cmd, args] = asOwner(bin.postgres, [
        '-D', dataDir,
        '-p', String(port),
        '-k', dir,
        '-c', 'listen_addresses=127.0.0.1',
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'max_connections=200',
      ]);
      child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', logFd, logFd], detached: true });
      fs.closeSync(logFd);
      const proc = child;
      exited = new Promise((resolve) => proc.once('exit', () => resolve()));
      child.once('error', () => undefined); // reported through 'exit' and the log
      const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
      const ready = await waitReady(adminUrl, proc, 30_000);
      if (ready === 'ready') {
        postmasterPid = root ? Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]) : proc.pid;
        return { adminUrl, stop };
      }
      const why = tail(logFile);
      if (ready === 'exited' && /could not bind|address already in use/i.test(why) && attempt < 5) continue; // lost the port race
      throw new Error(`PostgreSQL (${bin.postgres}) did not start (${ready}); the end of its log:\n${why}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitReady(url: string, proc: ChildProcess, timeoutMs: number): Promise<'ready' | 'exited' | 'timed out'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return 'exited';
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return 'ready';
    } catch {
      await sleep(50);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return 'timed out';
}
