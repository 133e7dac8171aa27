import fs from 'node:fs';
import path from 'node:path';

/**
 * The Temporal dev servers of a data dir as the OS sees them (Linux /proc): for tests that check that
 * none outlives the process that started it.
 */

/** true while pid is a live process (not a zombie) */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2)[0]);
  } catch {
    return false;
  }
}

/** pids of the live Temporal dev servers whose SQLite file is in dataDir */
export function devServerPids(dataDir: string): number[] {
  const dbFile = path.join(dataDir, 'temporal.sqlite');
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv.includes('start-dev') && argv.includes(dbFile);
      } catch {
        return false;
      }
    })
    .map(Number)
    .filter(processAlive);
}

/** resolves once check() holds, or rejects after timeoutMs with `what` */
export async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGKILLs every dev server of dataDir (for after() hooks) */
export function killDevServers(dataDir: string): void {
  for (const pid of devServerPids(dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}
