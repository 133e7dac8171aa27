import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let base: string | undefined;

/**
 * Where the tests put throwaway databases: /dev/shm (memory) when it exists and has room (a
 * PostgreSQL or PGlite cluster is ~40 MB and its files are copied and synced a lot), else the OS
 * temp folder. Docker's default /dev/shm (64 MB) is too small, so it needs at least 1 GiB free.
 */
export function scratchBase(): string {
  if (base) return base;
  base = os.tmpdir();
  try {
    const shm = '/dev/shm';
    fs.accessSync(shm, fs.constants.W_OK);
    const stats = fs.statfsSync(shm);
    if (stats.bavail * stats.bsize >= 1024 ** 3) base = shm;
  } catch {
    /* no usable /dev/shm */
  }
  return base;
}

/** a new, empty folder under scratchBase() */
export const makeScratchDir = (prefix: string) => fs.mkdtempSync(path.join(scratchBase(), prefix));

// ------------------------------------------------------------ cleanup when the process ends

const cleanups = new Set<() => void>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function runCleanups() {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      /* best effort: the process is ending */
    }
  }
}

function onSignal(signal: NodeJS.Signals) {
  runCleanups();
  uninstall();
  // keep the default behaviour (end the process) unless someone else handles the signal
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

let installed = false;
function install() {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}
function uninstall() {
  if (!installed) return;
  installed = false;
  process.removeListener('exit', runCleanups);
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
}

/**
 * Runs fn (synchronously) when the process exits or is stopped by SIGINT, SIGTERM or SIGHUP before the
 * returned function is called: for throwaway servers and folders a test run must not leave behind.
 */
export function atProcessEnd(fn: () => void): () => void {
  cleanups.add(fn);
  install();
  return () => {
    cleanups.delete(fn);
    if (cleanups.size === 0) uninstall();
  };
}
