import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startService, type RunningService } from '../../runtime/boot';
import { createToken } from '../../store/tokens';
import { freePort } from '../../runtime/host';

/**
 * The whole embedded service (Temporal dev server, PGlite, worker, API) as
 * `npm start` runs it, started once per test run on free ports in a temp
 * DATA_DIR, and stopped by the root hook in test/setup/stack.ts.
 */
export interface TestStack {
  service: RunningService;
  apiUrl: string;
  /** token of project "default" */
  token: string;
  dataDir: string;
  /** a token for another project, made on demand */
  tokenFor(projectId: string): Promise<string>;
  /** fetch against the API with a token (default: the default project's) and a JSON body */
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any; headers: Headers }>;
}

let stack: Promise<TestStack> | undefined;

/**
 * The dev server picks its internal ports the way freePort() does, so once in
 * a while one of them takes the UI port we chose a moment before; start again
 * on new ports then.
 */
async function startWithFreePorts(dataDir: string): Promise<RunningService> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(dataDir);
    } catch (err) {
      // the API's port, chosen before the dev server starts (its UI is told the codec endpoint), can be lost the same way
      if (attempt >= 3 || !/exited .* before it was ready|EADDRINUSE/.test((err as Error).message)) throw err;
      console.warn(`[test stack] the dev server did not start (${(err as Error).message.split('\n').slice(-1)[0].trim()}); trying other ports`);
    }
  }
}

async function startOnce(dataDir: string): Promise<RunningService> {
  const [devPort, uiPort] = [await freePort(), await freePort()];
  return startService({
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
      TEMPORAL_TASK_QUEUE: 'meshhook-alerts-test',
      LOG_LEVEL: 'error',
      // the receivers are on 127.0.0.1: that one host is allowed, every other private address stays refused (test/egress.test.ts)
      ALERTS_EGRESS_ALLOW: '127.0.0.1',
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      NODE_ENV: 'test',
      // the suite (the fuzz run above all) sends far more than a client would; test/rate-limit.test.ts checks the limit
      ALERTS_RATE_LIMIT_PER_MINUTE: '1000000',
      ALERTS_TLS_CERT_PATH: '',
      ALERTS_TLS_KEY_PATH: '',
      // the embedded Web UI's origin is allowed by itself (test/codec.test.ts)
      ALERTS_CODEC_CORS_ORIGINS: '',
    },
  });
}

async function start(): Promise<TestStack> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-stack-'));
  const service = await startWithFreePorts(dataDir);
  const apiUrl = service.apiUrl!;
  const token = service.apiToken!;
  const tokens = new Map<string, string>([['default', token]]);
  return {
    service,
    apiUrl,
    token,
    dataDir,
    async tokenFor(projectId) {
      if (!tokens.has(projectId)) tokens.set(projectId, await createToken(service.db, projectId, 'test'));
      return tokens.get(projectId)!;
    },
    async api(method, urlPath, body, withToken = token) {
      const headers: Record<string, string> = {};
      if (withToken !== null) headers.authorization = `Bearer ${withToken}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${apiUrl}${urlPath}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
  };
}

/** The shared stack, started on first use (first start can take ~30 s: PGlite initdb, dev server, workflow bundle). */
export function useStack(): Promise<TestStack> {
  stack ??= start();
  return stack;
}

export async function stopStack(): Promise<void> {
  if (!stack) return;
  const s = await stack.catch(() => undefined);
  stack = undefined;
  if (!s) return;
  await s.service.stop();
  fs.rmSync(s.dataDir, { recursive: true, force: true });
}
