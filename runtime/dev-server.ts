import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { logger } from '../lib/log';
import { ALL_SEARCH_ATTRIBUTES } from '../lib/search-attributes';
import { procStatFields } from './host';

/**
 * The Temporal dev server as a child process: SQLite under the data
 * directory, the Web UI on, our search attributes registered and eager
 * activity execution enabled. Its log goes to <dataDir>/temporal.log.
 *
 * It must not outlive us, even when we are SIGKILLed (then no 'exit' handler
 * runs): on Linux it is started through util-linux's `setpriv --pdeathsig KILL`,
 * so the kernel kills it when we die. <dataDir>/temporal.pid records it, so
 * that a start which finds one left over anyway (no setpriv, an older version)
 * stops it instead of failing on its ports.
 */
export interface DevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  cliPath: string;
  dataDir: string;
  namespace: string;
  port: number;
  uiPort: number;
  /** SQLite pragmas, e.g. ['journal_mode=WAL', 'synchronous=OFF'] */
  sqlitePragmas?: string[];
  /**
   * remote codec endpoint the Web UI calls to decode payloads; it may hold a token in its path, so it
   * goes to the CLI in a 0600 file, not on the command line (which `ps` shows every user)
   */
  codecEndpoint?: string;
  log?: (line: string) => void;
}

const READY_TIMEOUT_MS = 60_000;

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const devLog = logger('dev-server', { lifecycle: true });
  const log = options.log ?? ((line: string) => devLog.info({}, line));
  fs.mkdirSync(options.dataDir, { recursive: true });
  const dbFile = path.join(options.dataDir, 'temporal.sqlite');
  const pidFile = path.join(options.dataDir, PID_FILE);
  await stopLeftoverDevServer(pidFile, dbFile, log);
  for (const port of [options.port, options.uiPort]) {
    if (await portInUse(port)) {
      throw new Error(`port ${port} on 127.0.0.1 is already in use; stop what uses it or set TEMPORAL_DEV_PORT / TEMPORAL_UI_PORT`);
    }
  }
  // The CLI reads flag values from an "environment" file; ours replaces the user's ~/.config/temporalio one.
  const envFile = path.join(options.dataDir, 'temporal-cli-env.yaml');
  const settings = options.codecEndpoint ? `\n    ui-codec-endpoint: ${JSON.stringify(options.codecEndpoint)}` : ' {}';
  fs.writeFileSync(envFile, `env:\n  default:${settings}\n`, { mode: 0o600 });
  fs.chmodSync(envFile, 0o600); // mode applies only when the file is created
  const args = [
    'server', 'start-dev',
    '--env-file', envFile,
    '--db-filename', dbFile,
    '--ip', '127.0.0.1',
    '--port', String(options.port),
    '--ui-port', String(options.uiPort),
    '--namespace', options.namespace,
    '--log-level', 'warn',
    '--ui-disable-news-fetch',
    ...ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=Keyword`]),
    '--dynamic-config-value', 'system.enableActivityEagerExecution=true',
    '--dynamic-config-value', 'system.enableEagerWorkflowStart=true',
    ...(options.sqlitePragmas ?? []).flatMap((pragma) => ['--sqlite-pragma', pragma]),
  ];
  const setpriv = setprivWithPdeathsig();
  // setpriv sets the parent-death signal and execs the CLI (same pid). The signal is tied to the thread that
  // forked it: Node spawns on its main thread, which lives as long as the process.
  const [command, commandArgs] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', options.cliPath, ...args]] : [options.cliPath, args];
  const logFile = fs.openSync(path.join(options.dataDir, 'temporal.log'), 'a');
  // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the server after the worker.
  const child = spawn(command, commandArgs, { stdio: ['ignore', logFile, logFile], detached: true });
  fs.closeSync(logFile);
  if (child.pid !== undefined) {
    const record: PidRecord = { pid: child.pid, owner: process.pid, cliPath: options.cliPath, dbFile, startedAt: new Date().toISOString() };
    fs.writeFileSync(pidFile, `${JSON.stringify(record)}\n`);
  }
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exited = { code, signal }), resolve())));
  const forgetPid = () => removePidFile(pidFile, child.pid);
  // If this process exits without running its shutdown, do not leave the server behind (a SIGKILL skips this: pdeathsig).
  const killOnExit = () => {
    child.kill('SIGKILL');
    forgetPid();
  };
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${options.port}`;
  try {
    await waitUntilReady(address, options.namespace, () => exited, options.dataDir);
  } catch (err) {
    await stopChild(child, exitPromise);
    forgetPid();
    process.removeListener('exit', killOnExit);
    throw err;
  }
  log(`Temporal dev server ready on ${address} (pid ${child.pid}${setpriv ? '' : '; no setpriv --pdeathsig here, so it would outlive a SIGKILL of this process until the next start stops it'})`);
  return {
    address,
    uiUrl: `http://127.0.0.1:${options.uiPort}`,
    async stop() {
      await stopChild(child, exitPromise);
      forgetPid();
      process.removeListener('exit', killOnExit);
    },
  };
}

/** <dataDir>/temporal.pid: the dev server we started, and who started it */
const PID_FILE = 'temporal.pid';
interface PidRecord {
  pid: number;
  /** the process that started it */
  owner: number;
  cliPath: string;
  dbFile: string;
  startedAt: string;
}

let setprivPath: string | null | undefined;
/** util-linux's setpriv, when it is on PATH and knows --pdeathsig (Linux, util-linux 2.33+) */
function setprivWithPdeathsig(): string | undefined {
  if (setprivPath === undefined) {
    setprivPath = null;
    if (process.platform === 'linux') {
      for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
        const candidate = path.join(dir, 'setpriv');
        if (!fs.existsSync(candidate)) continue;
        if (spawnSync(candidate, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0) setprivPath = candidate;
        break;
      }
    }
  }
  return setprivPath ?? undefined;
}

function removePidFile(pidFile: string, pid: number | undefined): void {
  try {
    const record = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as PidRecord;
    if (record.pid === pid) fs.unlinkSync(pidFile);
  } catch {
    /* gone already, or another start's */
  }
}

/** the argv of a live process (Linux /proc), or undefined when it is gone, a zombie, or not readable */
function commandLine(pid: number): { argv: string[]; ppid: number } | undefined {
  try {
    const fields = procStatFields(pid);
    if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { argv, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** true when argv is `<cli> server start-dev … --db-filename <dbFile> …` */
function isDevServerOf(argv: string[], dbFile: string): boolean {
  const start = argv.indexOf('start-dev');
  const db = argv.indexOf('--db-filename');
  return start > 0 && argv[start - 1] === 'server' && db > start && argv[db + 1] === dbFile;
}

/**
 * A dev server recorded in the pid file that is still running on this data dir's SQLite file, and whose
 * starter is gone, is a leftover of a crash: stop it (SIGTERM, then SIGKILL). A pid that is now another
 * program, or a dev server of another data dir, is not ours and is left alone; one whose starter still
 * runs is another start using this DATA_DIR, and this start stops.
 */
async function stopLeftoverDevServer(pidFile: string, dbFile: string, log: (line: string) => void): Promise<void> {
  let record: PidRecord;
  try {
    record = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as PidRecord;
  } catch {
    return; // no pid file (or not ours to read): nothing was left behind that we know of
  }
  const proc = Number.isInteger(record.pid) && record.pid > 1 ? commandLine(record.pid) : undefined;
  if (!proc || !isDevServerOf(proc.argv, dbFile)) {
    fs.rmSync(pidFile, { force: true });
    return;
  }
  if (proc.ppid === record.owner && commandLine(record.owner)) {
    throw new Error(
      `the Temporal dev server on ${dbFile} (pid ${record.pid}) belongs to process ${record.owner}, which is still running: ` +
        'another `npm start` uses this DATA_DIR; stop it first, or give this one its own DATA_DIR',
    );
  }
  log(`stopping the Temporal dev server left running by an earlier start on this DATA_DIR (pid ${record.pid}, started ${record.startedAt})`);
  const gone = async (ms: number) => {
    for (const until = Date.now() + ms; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      if (!commandLine(record.pid)) return true;
    }
    return !commandLine(record.pid);
  };
  process.kill(record.pid, 'SIGTERM');
  if (!(await gone(10_000))) {
    log(`the old Temporal dev server (pid ${record.pid}) did not stop within 10 s: killing it`);
    process.kill(record.pid, 'SIGKILL');
    if (!(await gone(5_000))) throw new Error(`could not stop the Temporal dev server left running on ${dbFile} (pid ${record.pid})`);
  }
  fs.rmSync(pidFile, { force: true });
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

async function waitUntilReady(address: string, namespace: string, exited: () => object | undefined, dataDir: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (exited()) {
      const logFile = path.join(dataDir, 'temporal.log');
      const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n  ') : '';
      throw new Error(`the Temporal dev server exited (${JSON.stringify(exited())}) before it was ready; its log (${logFile}) ends:\n  ${tail}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the Temporal dev server did not become ready within ${READY_TIMEOUT_MS / 1000}s (${lastError}); see ${path.join(dataDir, 'temporal.log')}`);
}
