import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newKeySpec } from '../lib/crypto';
import { startService, type RunningService } from '../runtime/boot';
import { freePort } from '../runtime/host';
import { openPostgres, type Db } from '../store/db';
import { createToken } from '../store/tokens';
import { Receiver } from './support/receiver';
import { useStack } from './support/stack';
import { sharedPostgres } from './support/stores';
import { tcpForward, type TcpForward } from './support/tcp-forward';

/**
 * A receiver's answer outlives a store outage (activities/webhook-attempt.ts keepAnswer): when
 * PostgreSQL goes away after the receiver answered and before the attempt's log row is written, the
 * attempt waits for the store instead of failing its step, whose next run could not know the receiver
 * has the alert and would POST it again. A service of its own (API and worker, as boot starts them) on
 * the shared dev server and on a PostgreSQL database reached through a TCP forwarder; the receiver
 * cuts the forwarder (connections cut and refused, as while PostgreSQL restarts) before it answers,
 * so the outage always lands in that window, and the test opens it again STORE_DOWN_MS later.
 */
const uid = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const STORE_DOWN_MS = 2_500;
/** how long to keep listening before saying "nothing more arrived" */
const QUIET_MS = 2_000;
const FAST_RETRY = { maxAttempts: 4, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };

describe('a receiver answer kept across a store outage: recorded once the store is back, never POSTed again', function () {
  this.timeout(120_000);
  let receiver: Receiver;
  let service: RunningService;
  let forward: TcpForward;
  let direct: Db;
  let dataDir: string;
  let token: string;

  before(async function () {
    this.timeout(240_000);
    const stack = await useStack();
    receiver = await Receiver.start();
    const databaseUrl = new URL(await (await sharedPostgres()).createDatabase());
    direct = await openPostgres(databaseUrl.toString());
    forward = tcpForward(await freePort(), { host: '127.0.0.1', port: Number(databaseUrl.port) });
    await forward.listen();
    const viaForward = new URL(databaseUrl);
    viaForward.port = String(forward.port);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-outage-'));
    service = await startService({
      roles: { api: true, worker: true },
      env: {
        ...process.env,
        DATA_DIR: dataDir,
        PORT: '0',
        HOST: '127.0.0.1',
        TEMPORAL_ADDRESS: stack.service.temporalAddress,
        TEMPORAL_NAMESPACE: stack.service.env.TEMPORAL_NAMESPACE,
        TEMPORAL_TASK_QUEUE: `store-outage-test-${uid()}`,
        TEMPORAL_UI_PUBLIC_URL: '',
        DATABASE_URL: viaForward.toString(),
        MESHHOOK_DATABASE_URL: '',
        ALERTS_API_TOKENS: '',
        ALERTS_ENCRYPTION_KEYS: newKeySpec('k1'),
        LOG_LEVEL: 'error',
        ALERTS_EGRESS_ALLOW: '127.0.0.1',
        ALERTS_ALLOW_PRIVATE_NETWORKS: '',
        ALERTS_RATE_LIMIT_PER_MINUTE: '0',
        ALERTS_TLS_CERT_PATH: '',
        ALERTS_TLS_KEY_PATH: '',
        ALERTS_METRICS_PORT: '',
        ALERTS_OPERATOR_WEBHOOK_URL: '',
        NODE_ENV: 'test',
      },
    });
    token = await createToken(direct, `prj_outage_${uid()}`, 'test');
  });

  after(async function () {
    this.timeout(60_000);
    await forward?.listen().catch(() => undefined);
    await service?.stop();
    await receiver?.close();
    await forward?.close();
    await direct?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function api(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${service.apiUrl}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** cuts the store now and opens it again STORE_DOWN_MS later; resolves once it is cut */
  async function storeOutage(): Promise<void> {
    await forward.close();
    setTimeout(() => void forward.listen(), STORE_DOWN_MS);
  }

  /** a config for one receiver path; an event for it; the delivery id */
  async function alertTo(hookPath: string): Promise<string> {
    const workflowId = `wf_outage_${uid()}`;
    const created = await api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'Store outage', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hookPath}`, headers: {}, timeoutMs: 5_000 }, retry: FAST_RETRY },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sent = await api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'boom' } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.equal(sent.body.deliveries.length, 1);
    return sent.body.deliveries[0].deliveryId as string;
  }

  async function finalStatus(deliveryId: string, timeoutMs = 60_000): Promise<{ status: string; attempts: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await direct.query<{ status: string; attempts: number }>('SELECT status, attempts FROM alert_deliveries WHERE delivery_id = $1', [deliveryId]);
      if (row && row.status !== 'scheduled' && row.status !== 'in_progress') return row;
      if (Date.now() > deadline) throw new Error(`delivery ${deliveryId} still ${row?.status ?? 'not recorded'} after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  const logRows = (deliveryId: string) =>
    direct.query<{ attempt: number; outcome: string; http_status: number | null; error: string | null }>(
      'SELECT attempt, outcome, http_status, error FROM alert_logs WHERE delivery_id = $1 ORDER BY attempt',
      [deliveryId],
    );

  it('the first attempt (inside the workflow task): the store cut before the 2xx, the alert is delivered with one POST and one log row', async () => {
    const hookPath = `/first-${uid()}`;
    receiver.on(hookPath, (n) => (n === 1 ? { status: 200, after: storeOutage() } : { status: 200 }));
    const deliveryId = await alertTo(hookPath);
    assert.deepEqual(await finalStatus(deliveryId), { status: 'delivered', attempts: 1 });
    await sleep(QUIET_MS);
    assert.equal(receiver.at(hookPath).length, 1, 'POSTed once');
    assert.deepEqual(await logRows(deliveryId), [{ attempt: 1, outcome: 'delivered', http_status: 200, error: null }]);
  });

  it('a retried attempt (the deliverWebhook activity): the store cut before its 2xx, delivered at attempt 2 with no third POST', async () => {
    const hookPath = `/retried-${uid()}`;
    receiver.on(hookPath, (n) => (n === 1 ? { status: 503 } : n === 2 ? { status: 200, after: storeOutage() } : { status: 200 }));
    const deliveryId = await alertTo(hookPath);
    assert.deepEqual(await finalStatus(deliveryId), { status: 'delivered', attempts: 2 });
    await sleep(QUIET_MS);
    assert.equal(receiver.at(hookPath).length, 2, 'POSTed twice: the 503, then the 2xx');
    const rows = await logRows(deliveryId);
    assert.deepEqual(
      rows.map((r) => [r.attempt, r.outcome, r.http_status]),
      [
        [1, 'retrying', 503],
        [2, 'delivered', 200],
      ],
    );
  });
});
