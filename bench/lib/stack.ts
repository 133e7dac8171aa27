/**
 * The embedded stack as the bench runners start it (bench/latency.ts,
 * bench/soak.ts): startService on free ports in a temp DATA_DIR, or an
 * existing cluster and database when TEMPORAL_ADDRESS is set; plus what they
 * read about processes from /proc.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startService, type RunningService } from '../../runtime/boot';
import { parseTokenSeeds } from '../../lib/env';
import { freePort, procStatFields } from '../../runtime/host';

const ROOT = path.join(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The code measured: commit, and whether files outside bench/ differed from it. */
export function gitState(): { commit: string | null; uncommittedChanges: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .map((l) => l.slice(3).trim())
      .filter((f) => f && !f.startsWith('bench/'));
    return { commit, uncommittedChanges: changed };
  } catch {
    return { commit: null, uncommittedChanges: [] };
  }
}

/** Starts a receiver on 127.0.0.1 with keep-alive connections; close() drops its connections too. */
export function listenLocal(server: http.Server): Promise<{ url: string; close(): Promise<void> }> {
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

const CLK_TCK = 100; // Linux USER_HZ

/** Pids of this process's direct children (the embedded Temporal dev server); Linux only, else undefined. */
export function childPids(): number[] | undefined {
  if (process.platform !== 'linux') return undefined;
  const pids: number[] = [];
  try {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const fields = procStatFields(Number(entry));
      if (fields && Number(fields[1]) === process.pid) pids.push(Number(entry));
    }
  } catch {
    return undefined;
  }
  return pids;
}


/**
 * Pids of the embedded Temporal dev server (`temporal server start-dev`, a direct child); Linux only, else
 * undefined. Other children (tsx's esbuild service, started when a transform is not cached) are left out.
 */
export function devServerPids(): number[] | undefined {
  return childPids()?.filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('start-dev');
    } catch {
      return false;
    }
  });
}

/** CPU seconds (user + system) of the embedded Temporal dev server; Linux only, else undefined. */
export function childrenCpuSeconds(): number | undefined {
  const pids = devServerPids();
  if (!pids) return undefined;
  let total = 0;
  for (const pid of pids) {
    const fields = procStatFields(pid);
    if (fields) total += (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  }
  return total;
}

/** VmRSS of a process in bytes, from /proc/<pid>/status; undefined when it cannot be read. */
export function procRssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface Target {
  service: RunningService;
  apiUrl: string;
  token: string;
  mode: 'embedded' | 'external';
  cleanup(): void;
}

/**
 * The service under measurement, API and worker in this process: the embedded
 * default in a temp DATA_DIR under `tmpdir`, or TEMPORAL_ADDRESS + DATABASE_URL.
 */
export async function startTarget(options: { tmpdir: string; taskQueue: string; keepData: boolean; log: (line: string) => void }): Promise<Target> {
  const { tmpdir, log } = options;
  const external = Boolean(process.env.TEMPORAL_ADDRESS);
  if (external) {
    if (!process.env.DATABASE_URL || !process.env.ALERTS_ENCRYPTION_KEYS || !process.env.ALERTS_API_TOKENS) {
      throw new Error('with TEMPORAL_ADDRESS, also set DATABASE_URL, ALERTS_ENCRYPTION_KEYS and ALERTS_API_TOKENS (the first token is used)');
    }
    const dataDir = fs.mkdtempSync(path.join(tmpdir, 'meshhook-alerts-bench-'));
    const service = await startService({
      roles: { api: true, worker: true },
      env: { ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: process.env.LOG_LEVEL ?? 'error', ALERTS_EGRESS_ALLOW: '127.0.0.1', ALERTS_RATE_LIMIT_PER_MINUTE: process.env.ALERTS_RATE_LIMIT_PER_MINUTE ?? '0' },
    });
    const token = parseTokenSeeds(process.env.ALERTS_API_TOKENS)[0].token;
    return { service, apiUrl: service.apiUrl!, token, mode: 'external', cleanup: () => fs.rmSync(dataDir, { recursive: true, force: true }) };
  }
  const dataDir = fs.mkdtempSync(path.join(tmpdir, 'meshhook-alerts-bench-'));
  const [devPort, uiPort] = [await freePort(), await freePort()];
  const service = await startService({
    roles: { api: true, worker: true },
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      TEMPORAL_DEV_PORT: String(devPort),
      TEMPORAL_UI_PORT: String(uiPort),
      TEMPORAL_ADDRESS: '',
      DATABASE_URL: '',
      ALERTS_API_TOKENS: '',
      ALERTS_ENCRYPTION_KEYS: '',
      ALERTS_EGRESS_ALLOW: '127.0.0.1', // the receiver
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      TEMPORAL_TASK_QUEUE: options.taskQueue,
      LOG_LEVEL: 'error',
      // the bench sends far more than one token's limit on purpose
      ALERTS_RATE_LIMIT_PER_MINUTE: process.env.ALERTS_RATE_LIMIT_PER_MINUTE ?? '0',
    },
  });
  const cleanup = () => {
    if (options.keepData) log(`kept the data directory ${dataDir} (temporal.log is there)`);
    else fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return { service, apiUrl: service.apiUrl!, token: service.apiToken!, mode: 'embedded', cleanup };
}

export async function api(target: Target, method: string, urlPath: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${target.apiUrl}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: res.status, body: parsed };
}

/** The failure config every bench run uses: default payload, webhook to the receiver. */
export async function createFailureConfig(target: Target, workflowId: string, receiverUrl: string, name: string): Promise<string> {
  const created = await api(target, 'POST', '/api/alerts/config', {
    config: {
      workflowId,
      name,
      enabled: true,
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiverUrl}/hook`, timeoutMs: 10_000 },
      payload: { template: null },
    },
  });
  if (created.status !== 201) throw new Error(`creating the config failed: ${created.status} ${JSON.stringify(created.body)}`);
  return String(created.body.config?.id ?? created.body.id);
}

/** The `run.failed` event the bench runners send. */
export function failedRunEvent(eventId: string, runId: string, workflowId: string): string {
  return JSON.stringify({
    id: eventId,
    type: 'run.failed',
    workflowId,
    runId,
    workflow: { name: 'Bench workflow', version: 1 },
    error: { message: 'HTTP 500 from CRM', step: 'createContact' },
  });
}
