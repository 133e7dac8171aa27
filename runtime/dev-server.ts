import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { ALL_SEARCH_ATTRIBUTES } from '../lib/search-attributes';

/**
 * The Temporal dev server as a child process: SQLite under the data
 * directory, the Web UI on, our search attributes registered and eager
 * activity execution enabled. Its log goes to <dataDir>/temporal.log.
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
  /** remote codec endpoint the Web UI calls to decode payloads */
  codecEndpoint?: string;
  log?: (line: string) => void;
}

const READY_TIMEOUT_MS = 60_000;

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const log = options.log ?? (() => undefined);
  fs.mkdirSync(options.dataDir, { recursive: true });
  for (const port of [options.port, options.uiPort]) {
    if (await portInUse(port)) {
      throw new Error(`port ${port} on 127.0.0.1 is already in use; stop what uses it or set TEMPORAL_DEV_PORT / TEMPORAL_UI_PORT`);
    }
  }
  const args = [
    'server', 'start-dev',
    '--db-filename', path.join(options.dataDir, 'temporal.sqlite'),
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
    ...(options.codecEndpoint ? ['--ui-codec-endpoint', options.codecEndpoint] : []),
  ];
  const logFile = fs.openSync(path.join(options.dataDir, 'temporal.log'), 'a');
  // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the server after the worker.
  const child = spawn(options.cliPath, args, { stdio: ['ignore', logFile, logFile], detached: true });
  fs.closeSync(logFile);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exited = { code, signal }), resolve())));
  // If this process dies without running its shutdown, do not leave the server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${options.port}`;
  try {
    await waitUntilReady(address, options.namespace, () => exited, options.dataDir);
  } catch (err) {
    await stopChild(child, exitPromise);
    process.removeListener('exit', killOnExit);
    throw err;
  }
  log(`Temporal dev server ready on ${address} (pid ${child.pid})`);
  return {
    address,
    uiUrl: `http://127.0.0.1:${options.uiPort}`,
    async stop() {
      await stopChild(child, exitPromise);
      process.removeListener('exit', killOnExit);
    },
  };
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
