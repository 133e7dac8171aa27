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
 * so the outage always lands in that window, and the test opens it again STORE_DOWN_MS later. And
 * the other side of the POST: a retried step that finds the store down before its POST counts no
 * attempt (store/deliveries.ts claimRetriedAttempt), so an outage cannot use up the retry plan. The
 * worker runs one activity at a time, so that a retried step can be held in Temporal's queue.
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
        // one activity at a time: a retried step can be made to wait in the queue behind another (the last test)
        TEMPORAL_WORKER_MAX_CONCURRENT_ACTIVITIES: '1',
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
  async function alertTo(hookPath: string, retry = FAST_RETRY, timeoutMs = 5_000): Promise<string> {
    const workflowId = `wf_outage_${uid()}`;
    const created = await api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'Store outage', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hookPath}`, headers: {}, timeoutMs }, retry },
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

  /** The story of a delivery whose first attempt got a 503 and whose second a 2xx: delivered at attempt 2, two POSTs, a row each, none counted lost. */
  async function deliveredAtSecondAttempt(deliveryId: string, hookPath: string, what: string): Promise<void> {
    assert.deepEqual(await finalStatus(deliveryId), { status: 'delivered', attempts: 2 });
    await sleep(QUIET_MS);
    assert.equal(receiver.at(hookPath).length, 2, `POSTed twice: the 503, then the 2xx (${what})`);
    assert.deepEqual(
      (await logRows(deliveryId)).map((r) => [r.attempt, r.outcome, r.http_status]),
      [
        [1, 'retrying', 503],
        [2, 'delivered', 200],
      ],
      `one row an attempt, none counted lost (${what})`,
    );
  }

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
    await deliveredAtSecondAttempt(deliveryId, hookPath, 'no third POST');
  });

  /** The first attempt's log row: written once it is there (the store goes down only after it). */
  async function firstAttemptLogged(deliveryId: string): Promise<void> {
    for (const deadline = Date.now() + 30_000; (await logRows(deliveryId)).length === 0; await sleep(10)) {
      if (Date.now() > deadline) throw new Error('the first attempt was not logged in 30 s');
    }
  }

  /**
   * Watches the delivery's retried step (its pending activity, as Temporal describes it) while the store
   * is down: until Temporal has counted `runs` of it, or it closed (Temporal gave up on it).
   */
  async function retriedStepWhileDown(deliveryId: string, runs: number): Promise<{ closed: boolean; lastFailure?: string }> {
    const handle = service.temporal.client.workflow.getHandle(deliveryId);
    let scheduled = false;
    for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
      const pending = (await handle.describe()).raw.pendingActivities?.[0];
      if ((pending?.attempt ?? 0) >= runs) return { closed: false, lastFailure: pending?.lastFailure?.message ?? undefined };
      if (scheduled && !pending) return { closed: true };
      scheduled ||= pending !== undefined;
      if (Date.now() > deadline) throw new Error(`the retried step was neither run ${runs} times nor closed in 30 s (its attempt: ${JSON.stringify(pending?.attempt)})`);
    }
  }

  it('a retried attempt whose step finds the store down before its POST: the runs that failed count no attempt of the plan, and it is delivered once the store is back', async () => {
    // two attempts in the plan, and Temporal runs the retried step again every 1.5 s (the plan's interval)
    const retry = { maxAttempts: 2, initialIntervalMs: 1_500, backoffCoefficient: 1, maxIntervalMs: 1_500, maxDurationMs: 60_000 };
    const hookPath = `/before-post-${uid()}`;
    receiver.on(hookPath, (n) => (n === 1 ? { status: 503 } : { status: 200 }));
    const deliveryId = await alertTo(hookPath, retry);
    // the first attempt logged (503, retrying): the store goes down during the backoff, before the retried step runs
    await firstAttemptLogged(deliveryId);
    await forward.close();
    // held down until Temporal has seen two runs of the retried step fail before their POST (its third is due)
    const step = await retriedStepWhileDown(deliveryId, 3);
    // (asked before the store is back: its next run may POST at once)
    const postedWhileDown = receiver.at(hookPath).length;
    await forward.listen();
    assert.equal(step.closed, false, `the retried step closed while the store was down; the delivery ended ${JSON.stringify(await finalStatus(deliveryId))}`);
    assert.ok(step.lastFailure, 'the failed runs left their failure');
    assert.equal(postedWhileDown, 1, 'nothing was POSTed while the store was down');

    await deliveredAtSecondAttempt(deliveryId, hookPath, 'the runs that failed before their POST counted nothing');
    // the timeline numbers the retried POST by the delivery's count, not by the step's runs (3 or more)
    const delivery = await api('GET', `/api/alerts/deliveries/${deliveryId}`);
    assert.equal(delivery.status, 200, JSON.stringify(delivery.body));
    assert.equal(delivery.body.attempts.length, 2);
    const started = (delivery.body.timeline as { event: string; attempt?: number }[]).filter((e) => e.event === 'webhook POST started');
    assert.deepEqual(started.map((e) => e.attempt), [2]);
  });

  it('a store down past the retry plan\'s duration: the delivery fails with the store\'s error, and nothing more is POSTed', async () => {
    const retry = { maxAttempts: 5, initialIntervalMs: 1_000, backoffCoefficient: 1, maxIntervalMs: 1_000, maxDurationMs: 4_000 };
    const hookPath = `/past-duration-${uid()}`;
    receiver.on(hookPath, () => ({ status: 503 }));
    const deliveryId = await alertTo(hookPath, retry);
    await firstAttemptLogged(deliveryId);
    await forward.close();
    // held down until Temporal closed the retried step: its schedule-to-close timeout (the plan's duration) passed
    const step = await retriedStepWhileDown(deliveryId, Number.POSITIVE_INFINITY);
    await forward.listen();
    assert.equal(step.closed, true);
    const ended = await finalStatus(deliveryId);
    assert.equal(ended.status, 'failed');
    const [row] = await direct.query<{ error: string }>('SELECT error FROM alert_deliveries WHERE delivery_id = $1', [deliveryId]);
    // the store's error, and why Temporal stopped running the step
    assert.match(row.error, /ECONNREFUSED|PostgreSQL/i, row.error);
    assert.match(row.error, /the retry plan's duration ran out/, row.error);
    await sleep(QUIET_MS);
    assert.equal(receiver.at(hookPath).length, 1, 'only the first attempt was POSTed');
  });

  it('a retried step that waited in the queue still keeps its answer across a store outage: its time counts from its start, not from when it was scheduled', async () => {
    // Delivery A's retried POST takes the worker's one activity slot and is held by the test; delivery B's
    // retried step is scheduled meanwhile and waits behind it longer than its own start-to-close (5 s +
    // 5 s) less the 2 s margin: counted from when it was scheduled, it would have no time left to wait.
    const retry = { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 1, maxIntervalMs: 100, maxDurationMs: 120_000 };
    let releaseA!: () => void;
    const heldA = new Promise<void>((resolve) => (releaseA = resolve));
    const pathA = `/slot-${uid()}`;
    receiver.on(pathA, (n) => (n === 1 ? { status: 503 } : { status: 200, after: heldA }));
    // (its receiver's timeout longer than the hold: the slot stays taken)
    const deliveryA = await alertTo(pathA, retry, 20_000);
    const pathB = `/queued-${uid()}`;
    receiver.on(pathB, (n) => (n === 1 ? { status: 503 } : n === 2 ? { status: 200, after: storeOutage() } : { status: 200 }));
    try {
      // A's retried POST is on the wire (its step holds the slot)
      for (const deadline = Date.now() + 30_000; receiver.at(pathA).length < 2; await sleep(20)) {
        if (Date.now() > deadline) throw new Error("delivery A's retried attempt did not arrive in 30 s");
      }
      const deliveryB = await alertTo(pathB, retry);
      const handleB = service.temporal.client.workflow.getHandle(deliveryB);
      let scheduledAtMs: number | undefined;
      for (const deadline = Date.now() + 30_000; scheduledAtMs === undefined; await sleep(50)) {
        const pending = (await handleB.describe()).raw.pendingActivities?.[0];
        if (pending) scheduledAtMs = Date.now();
        if (Date.now() > deadline) throw new Error("delivery B's retried step was not scheduled in 30 s");
      }
      // queued 9 s: past scheduled + 10 s - 2 s by the time it runs
      await sleep(Math.max(0, scheduledAtMs + 9_000 - Date.now()));
      assert.equal(receiver.at(pathB).length, 1, "B's retried step waited in the queue");
      releaseA();
      assert.deepEqual(await finalStatus(deliveryA), { status: 'delivered', attempts: 2 });
      await deliveredAtSecondAttempt(deliveryB, pathB, "B's 2xx kept across the outage");
    } finally {
      releaseA();
    }
  });
});
