import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Client as PgClient } from 'pg';
import { ENCODING_ENCRYPTED } from '../lib/codec';
import { TEMPORAL_SERVER_VERSION } from '../runtime/temporal-server';
import { pidConnectedTo, startCluster, type Cluster } from './support/cluster';
import { Receiver, type Received } from './support/receiver';

/**
 * The deployment topology, for real: the Temporal server (go.temporal.io/server, built here at a
 * pinned version) on PostgreSQL, two API processes and two worker processes on PostgreSQL, started
 * by test/support/cluster.ts as `npm run cluster` starts them. Everything goes through the public
 * HTTP API (delay watches too: their design may change underneath), with a process killed here and
 * there. The Temporal server is built on first use when it is not cached (minutes): never skipped.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FAST_RETRY = { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1_000, maxDurationMs: 60_000 };

function verifies(req: Received, secret: string): boolean {
  const signed = `${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`;
  const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(signed).digest('base64');
  return String(req.headers['webhook-signature']).split(' ').includes(`v1,${expected}`);
}

describe(`a Temporal cluster (server ${TEMPORAL_SERVER_VERSION} on PostgreSQL), two API and two worker processes`, function () {
  this.timeout(120_000);

  const otherToken = `cluster_other_${randomBytes(16).toString('hex')}`;
  let cluster: Cluster;
  let receiver: Receiver;
  let connection: Connection;
  /** a Temporal client without the codec: it sees what the server stores */
  let plain: Client;

  before(async function () {
    this.timeout(20 * 60_000); // the first run builds the Temporal server (about 6 minutes on two cores)
    receiver = await Receiver.start();
    cluster = await startCluster({ apis: 2, workers: 2, extraTokens: [`${otherToken}:other_project`] });
    connection = await Connection.connect({ address: cluster.temporal.address });
    plain = new Client({ connection, namespace: 'default' });
  });

  after(async function () {
    this.timeout(60_000);
    await connection?.close();
    await receiver?.close();
    const pids = cluster ? [cluster.temporal.pid, ...cluster.apis.map((a) => a.process.child.pid!), ...cluster.workers.map((w) => w.child.pid!)] : [];
    await cluster?.stop();
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, [], 'every process the cluster started has ended');
  });

  const liveApi = () => cluster.apis.find((a) => !a.process.exited())!;

  async function call(apiIndex: number, method: string, urlPath: string, body?: unknown, token = cluster.token): Promise<{ status: number; body: any }> {
    const api = cluster.apis[apiIndex];
    const res = await fetch(`${api.url}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async function createConfig(apiIndex: number, config: Record<string, unknown>): Promise<{ id: string; secret: string }> {
    const res = await call(apiIndex, 'POST', '/api/alerts/config', { config: { name: 'cluster test', retry: FAST_RETRY, ...config } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.config.id, secret: res.body.secret };
  }

  async function sendEvent(apiIndex: number, event: Record<string, unknown>): Promise<{ deliveryId: string; condition: string }[]> {
    const res = await call(apiIndex, 'POST', '/api/events', { id: `evt_${uid()}`, ...event });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.deliveries;
  }

  const closed = (timeline: { event: string }[] = []) => timeline.some((e) => e.event === 'delivery finished');
  async function waitForStatus(apiIndex: number, deliveryId: string, statuses: string[], timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const res = await call(apiIndex, 'GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      last = res.body;
      const final = ['delivered', 'failed'].includes(res.body?.status);
      if (res.status === 200 && statuses.includes(res.body.status) && (!final || closed(res.body.timeline))) return res.body;
      await sleep(200);
    }
    throw new Error(`delivery ${deliveryId} did not reach ${statuses.join('/')} within ${timeoutMs} ms; last answer: ${JSON.stringify(last)}`);
  }

  async function rawHistory(workflowId: string): Promise<Buffer> {
    const events: temporal.api.history.v1.IHistoryEvent[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await plain.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId }, nextPageToken });
      events.push(...(page.history?.events ?? []));
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    return Buffer.from(temporal.api.history.v1.History.encode({ events } as temporal.api.history.v1.IHistory).finish());
  }

  let delivered: { deliveryId: string; hookPath: string; secret: string; marker: string } | undefined;

  it('sends an alert: event to one API, signed webhook from a worker, the delivery read through the other API', async () => {
    const hookPath = `/alert-${uid()}`;
    const workflowId = `wf_cluster_${uid()}`;
    const marker = `secret-marker-${uid()}`;
    const config = await createConfig(0, { workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hookPath}`, headers: { 'X-Marker': marker } } });
    const runId = `run_${uid()}`;
    const [{ deliveryId, condition }] = await sendEvent(0, { type: 'run.failed', workflowId, runId, error: { message: `boom ${marker}` }, data: { marker } });
    assert.equal(condition, 'failure');
    const [hook] = await receiver.waitFor(hookPath, 1, 30_000);
    assert.equal(hook.headers['webhook-id'], deliveryId);
    assert.equal(hook.headers['x-marker'], marker);
    assert.ok(verifies(hook, config.secret), 'signed with the config secret');
    assert.equal(JSON.parse(hook.body).run.id, runId);
    const delivery = await waitForStatus(1, deliveryId, ['delivered']);
    assert.deepEqual(delivery.attempts.map((a: { outcome: string; httpStatus: number }) => [a.outcome, a.httpStatus]), [['delivered', 200]]);
    assert.ok(delivery.timeline.some((e: { event: string }) => e.event === 'webhook delivered'), JSON.stringify(delivery.timeline));
    delivered = { deliveryId, hookPath, secret: config.secret, marker };

    // and Temporal keeps it in PostgreSQL: the execution's row in the server's persistence database
    const db = new PgClient({ connectionString: cluster.temporalDatabaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query('SELECT count(*)::int AS n FROM executions WHERE workflow_id = $1', [deliveryId]);
      assert.equal(rows[0].n, 1, 'one execution row in the temporal database');
    } finally {
      await db.end();
    }
  });

  it('keeps payloads encrypted in the server’s history, decodes them through /codec for the project’s token only', async () => {
    assert.ok(delivered, 'the first test sent an alert');
    const bytes = await rawHistory(delivered.deliveryId);
    for (const secret of [delivered.marker, delivered.hookPath, new URL(receiver.url).host]) {
      assert.equal(bytes.includes(secret), false, `"${secret}" is in the raw history stored by the Temporal server`);
    }
    const history = await plain.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: delivered.deliveryId } });
    const input = history.history!.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
    assert.equal(Buffer.from(input.metadata!.encoding!).toString(), ENCODING_ENCRYPTED);
    const payload = { metadata: Object.fromEntries(Object.entries(input.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(input.data!).toString('base64') };
    const decode = (token: string) =>
      fetch(`${cluster.apis[1].url}/codec/decode`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ payloads: [payload] }) });
    const ok = await decode(cluster.token);
    assert.equal(ok.status, 200);
    const [decoded] = ((await ok.json()) as { payloads: { data: string }[] }).payloads;
    assert.match(Buffer.from(decoded.data, 'base64').toString(), new RegExp(delivered.marker));
    assert.equal((await decode(otherToken)).status, 403, "another project's token decodes nothing");
  });

  it('finds the alert by its search attributes in the server’s SQL visibility', async () => {
    assert.ok(delivered);
    const deadline = Date.now() + 30_000;
    let ids: string[] = [];
    while (Date.now() < deadline) {
      ids = [];
      for await (const wf of plain.workflow.list({ query: `AlertStatus = "delivered" AND AlertCondition = "failure"` })) ids.push(wf.workflowId);
      if (ids.includes(delivered.deliveryId)) break;
      await sleep(500);
    }
    assert.ok(ids.includes(delivered.deliveryId), `visibility lists ${JSON.stringify(ids)}`);
  });

  it('keeps projects apart: another project’s token neither sees the delivery nor matches the config', async () => {
    assert.ok(delivered);
    const read = await call(1, 'GET', `/api/alerts/deliveries/${encodeURIComponent(delivered.deliveryId)}`, undefined, otherToken);
    assert.equal(read.status, 404, JSON.stringify(read.body));
    const workflowId = `wf_cluster_iso_${uid()}`;
    await createConfig(0, { workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}/iso-${workflowId}` } });
    const res = await call(1, 'POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: 'run_1' }, otherToken);
    assert.equal(res.status, 202);
    assert.deepEqual(res.body.deliveries, [], "the other project's event matches none of this project's configs");
  });

  it('refuses a webhook target outside the egress policy (only 127.0.0.1 is allowed here) and stores nothing', async () => {
    const workflowId = `wf_cluster_egress_${uid()}`;
    const res = await call(0, 'POST', '/api/alerts/config', { config: { workflowId, name: 'egress', conditions: [{ type: 'failure' }], webhook: { url: 'http://127.0.0.2:9/hook' } } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const list = await call(1, 'GET', `/api/alerts/config/${workflowId}`);
    assert.deepEqual(list.body.configs, []);
  });

  it('retries a 503 twice and delivers on the third attempt, the same signed bytes each time', async () => {
    const hookPath = `/retried-${uid()}`;
    receiver.on(hookPath, (n) => ({ status: n <= 2 ? 503 : 200 }));
    const workflowId = `wf_cluster_retry_${uid()}`;
    const config = await createConfig(1, { workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hookPath}` } });
    const [{ deliveryId }] = await sendEvent(1, { type: 'run.failed', workflowId, runId: `run_${uid()}` });
    const delivery = await waitForStatus(0, deliveryId, ['delivered']);
    const hooks = receiver.at(hookPath);
    assert.equal(hooks.length, 3);
    for (const hook of hooks) {
      assert.equal(hook.body, hooks[0].body);
      assert.equal(hook.headers['webhook-id'], deliveryId);
      assert.ok(verifies(hook, config.secret));
    }
    assert.deepEqual(
      delivery.attempts.map((a: { attempt: number; outcome: string; httpStatus: number }) => [a.attempt, a.outcome, a.httpStatus]),
      [[1, 'retrying', 503], [2, 'retrying', 503], [3, 'delivered', 200]],
    );
  });

  it('sends a delay alert for a run still not finished after its threshold, and keeps quiet for one that finished in time', async () => {
    const workflowId = `wf_cluster_delay_${uid()}`;
    const hookPath = `/delay-${uid()}`;
    const config = await createConfig(0, { workflowId, conditions: [{ type: 'delay', thresholdSeconds: 2 }], webhook: { url: `${receiver.url}${hookPath}` } });
    const lateRun = `run_late_${uid()}`;
    const quietRun = `run_quiet_${uid()}`;
    const sentAt = Date.now();
    const [late] = await sendEvent(0, { type: 'run.started', workflowId, runId: lateRun });
    const [quiet] = await sendEvent(1, { type: 'run.started', workflowId, runId: quietRun });
    assert.equal(late.condition, 'delay');
    assert.equal((await call(1, 'GET', `/api/alerts/deliveries/${encodeURIComponent(quiet.deliveryId)}`)).body.status, 'scheduled');
    await sendEvent(0, { type: 'run.succeeded', workflowId, runId: quietRun });
    const suppressed = await waitForStatus(1, quiet.deliveryId, ['suppressed'], 30_000);
    assert.equal(suppressed.status, 'suppressed');

    const [hook] = await receiver.waitFor(hookPath, 1, 30_000);
    assert.ok(hook.at - sentAt >= 2_000, `the alert came ${hook.at - sentAt} ms after run.started, not before the 2 s threshold`);
    assert.equal(hook.headers['webhook-id'], late.deliveryId);
    assert.ok(verifies(hook, config.secret));
    assert.equal(JSON.parse(hook.body).run.id, lateRun);
    assert.equal(JSON.parse(hook.body).condition, 'delay');
    assert.equal((await waitForStatus(0, late.deliveryId, ['delivered'])).status, 'delivered');
    await sleep(1_000);
    assert.equal(receiver.at(hookPath).length, 1, 'one alert: the run that finished in time sent none');
    assert.equal((await call(0, 'GET', `/api/alerts/deliveries/${encodeURIComponent(quiet.deliveryId)}`)).body.status, 'suppressed');
  });

  it('redelivers an alert as a new delivery with the same body', async () => {
    assert.ok(delivered);
    const res = await call(1, 'POST', `/api/alerts/deliveries/${encodeURIComponent(delivered.deliveryId)}/redeliver`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.notEqual(res.body.deliveryId, delivered.deliveryId);
    assert.equal(res.body.redeliveryOf, delivered.deliveryId);
    const hooks = await receiver.waitFor(delivered.hookPath, 2, 30_000);
    assert.equal(hooks[1].headers['webhook-id'], res.body.deliveryId);
    assert.ok(verifies(hooks[1], delivered.secret));
    assert.deepEqual(JSON.parse(hooks[1].body).run, JSON.parse(hooks[0].body).run);
    assert.equal((await waitForStatus(0, res.body.deliveryId, ['delivered'])).status, 'delivered');
  });

  it('finishes a delivery on the other worker when the worker sending it is SIGKILLed mid-attempt', async () => {
    // a receiver of its own: the only connection to it is the one of the attempt in flight
    const own = await Receiver.start();
    try {
      const hookPath = `/killed-${uid()}`;
      own.on(hookPath, (n) => (n === 1 ? 'hang' : { status: 200 }));
      const workflowId = `wf_cluster_kill_${uid()}`;
      const config = await createConfig(0, { workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${own.url}${hookPath}`, timeoutMs: 20_000 } });
      const [{ deliveryId }] = await sendEvent(0, { type: 'run.failed', workflowId, runId: `run_${uid()}` });
      const [first] = await own.waitFor(hookPath, 1, 30_000);
      const workerPids = cluster.workers.filter((w) => !w.exited()).map((w) => w.child.pid!);
      const sender = pidConnectedTo(Number(new URL(own.url).port), workerPids);
      assert.ok(sender, `one of the workers ${workerPids.join(', ')} holds the connection of the attempt`);
      const victim = cluster.workers.find((w) => w.child.pid === sender)!;
      const survivor = cluster.workers.find((w) => w !== victim && !w.exited())!;
      await victim.kill('SIGKILL');
      assert.equal(victim.child.signalCode, 'SIGKILL');

      const [, second] = await own.waitFor(hookPath, 2, 90_000);
      assert.equal(second.headers['webhook-id'], deliveryId);
      assert.equal(second.body, first.body, 'the same bytes again');
      assert.ok(verifies(second, config.secret));
      const delivery = await waitForStatus(1, deliveryId, ['delivered'], 60_000);
      assert.equal(delivery.attempts[delivery.attempts.length - 1].outcome, 'delivered');
      assert.equal(survivor.exited(), false, 'the other worker finished it');
    } finally {
      await own.close();
    }
    // back to two workers for what follows
    await cluster.startWorker();
  });

  it('answers through the other API when one API process is SIGKILLed, and alerts still flow', async () => {
    assert.ok(delivered);
    const victim = cluster.apis[0];
    await victim.process.kill('SIGKILL');
    await assert.rejects(fetch(`${victim.url}/healthz`), 'the killed API answers nothing');
    const survivor = liveApi();
    assert.equal(survivor, cluster.apis[1]);
    const read = await call(1, 'GET', `/api/alerts/deliveries/${encodeURIComponent(delivered.deliveryId)}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.status, 'delivered');
    const ready = await fetch(`${survivor.url}/readyz`);
    assert.equal(ready.status, 200, await ready.text());

    const hookPath = `/after-api-kill-${uid()}`;
    const workflowId = `wf_cluster_apikill_${uid()}`;
    await createConfig(1, { workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hookPath}` } });
    const [{ deliveryId }] = await sendEvent(1, { type: 'run.failed', workflowId, runId: `run_${uid()}` });
    await receiver.waitFor(hookPath, 1, 30_000);
    assert.equal((await waitForStatus(1, deliveryId, ['delivered'])).status, 'delivered');
  });
});
