import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import type { TestPostgres } from './postgres';
import { atProcessEnd } from './scratch';

/**
 * Restarts the throwaway PostgreSQL server of a `startPostgres()` (mode `local`) for real: the
 * postmaster is stopped with an immediate (SIGQUIT: no checkpoint, crash recovery at the next start)
 * or fast (SIGINT: sessions are ended, then a checkpoint) shutdown, then started again with the same
 * command line, so on the same port and data directory. The server tells us where it lives
 * (`SHOW data_directory`, its postmaster.pid and /proc/<pid>/cmdline), so nothing of postgres.ts's
 * internals is needed.
 *
 * postgres.ts runs its server with synchronous_commit=off: a commit returns before its WAL leaves the
 * server's memory, so an immediate shutdown loses the last moments, as a crash of such a server would
 * (a production server commits durably). The restarted server therefore commits durably
 * (synchronous_commit=on; with fsync=off the WAL still reaches the OS, which a process kill does not
 * lose), and while the first server is still running, restart('immediate') does a fast shutdown.
 *
 * Call stop() of the returned object instead of the TestPostgres's: once restarted, the postmaster
 * is no longer the process postgres.ts started, and must be ended before postgres.ts removes its folder.
 */
export interface RestartablePostgres {
  readonly url: string;
  /**
   * stops the server (immediate or fast shutdown), starts it again on the same port and data dir;
   * resolves once it answers, with the shutdown it used (fast while commits are not durable yet);
   * `downForMs`: how long it stays stopped before it is started again
   */
  restart(mode?: ShutdownMode, downForMs?: number): Promise<{ downMs: number; mode: ShutdownMode }>;
  stop(): Promise<void>;
}

export type ShutdownMode = 'immediate' | 'fast';
const SHUTDOWN_SIGNAL = { immediate: 'SIGQUIT', fast: 'SIGINT' } as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** true while pid is a live (not zombie) process */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function ask<T>(url: string, sql: string): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as T;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Restartable only when the server is ours (mode `local`); a TEST_DATABASE_URL server is someone else's: undefined. */
export async function restartablePostgres(pg: TestPostgres): Promise<RestartablePostgres | undefined> {
  if (pg.mode !== 'local' || process.platform !== 'linux') return undefined;
  const { data_directory: dataDir } = await ask<{ data_directory: string }>(pg.url, 'SHOW data_directory');
  const postmasterPid = () => Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const firstPid = postmasterPid();
  // a later -c wins over an earlier one
  const argv = [...fs.readFileSync(`/proc/${firstPid}/cmdline`, 'utf8').split('\0').filter(Boolean), '-c', 'synchronous_commit=on'];
  let durableCommits = (await ask<{ synchronous_commit: string }>(pg.url, 'SHOW synchronous_commit')).synchronous_commit !== 'off';
  const owner = fs.statSync(dataDir);
  // initdb refuses root, so as root the server runs as the data dir's owner (postgres.ts: user postgres)
  const asOwner = process.getuid?.() === 0 && owner.uid !== 0;
  const logFile = path.join(path.dirname(dataDir), 'postgres-restarted.log');

  let pid = firstPid;
  let restarted = false;
  const killSync = () => {
    if (restarted && alive(pid)) process.kill(pid, 'SIGKILL');
  };
  const forget = atProcessEnd(killSync);

  const shutdown = async (mode: ShutdownMode) => {
    process.kill(pid, SHUTDOWN_SIGNAL[mode]);
    for (const until = Date.now() + 30_000; alive(pid); await sleep(20)) {
      if (Date.now() > until) {
        process.kill(pid, 'SIGKILL');
        await sleep(200);
        break;
      }
    }
  };

  const start = async () => {
    const fd = fs.openSync(logFile, 'a');
    const [command, args] = asOwner ? ['runuser', ['-u', userName(owner.uid), '--', ...argv]] : [argv[0], argv.slice(1)];
    const child = spawn(command, args, { cwd: path.dirname(dataDir), stdio: ['ignore', fd, fd], detached: true });
    fs.closeSync(fd);
    child.once('error', () => undefined);
    child.unref();
    restarted = true;
    for (const until = Date.now() + 60_000; ; await sleep(50)) {
      try {
        await ask(pg.url, 'SELECT 1');
        pid = postmasterPid();
        if (!alive(pid)) continue; // the old file, read before the new postmaster wrote its own
        return;
      } catch (err) {
        if (Date.now() > until) throw new Error(`PostgreSQL did not come back within 60 s (${(err as Error).message}); see ${logFile}`);
      }
    }
  };

  let stopping: Promise<void> | undefined;
  return {
    url: pg.url,
    async restart(asked = 'immediate', downForMs = 0) {
      const mode = durableCommits ? asked : 'fast';
      const down = Date.now();
      await shutdown(mode);
      await sleep(downForMs);
      await start();
      durableCommits = true;
      return { downMs: Date.now() - down, mode };
    },
    stop() {
      stopping ??= (async () => {
        if (restarted && alive(pid)) await shutdown('immediate');
        forget();
        await pg.stop();
      })();
      return stopping;
    },
  };
}

function userName(uid: number): string {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , id] = line.split(':');
    if (Number(id) === uid) return name;
  }
  throw new Error(`no user with uid ${uid} in /etc/passwd to run PostgreSQL as`);
}
