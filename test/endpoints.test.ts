import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { immediateDeliveryId } from '../lib/delivery-ids';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The delivery endpoints of the contract (DESIGN.md, HTTP API) through real
 * HTTP on the shared embedded stack: logs, one delivery, redeliver, test
 * alerts, secret rotation and event batches. Every test works with its own
 * MeshHook workflow id, configs and receiver paths.
 */

const LOG_FIELDS = ['deliveryId', 'configId', 'workflowId', 'runId', 'eventId', 'condition', 'attempt', 'outcome', 'httpStatus', 'error', 'durationMs', 'createdAt'];
const FAST_RETRY = { maxAttempts: 5, initialIntervalMs: 100, backoffCoefficient: 1, maxIntervalMs: 100, maxDurationMs: 60_000 };

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The signatures of `webhook-signature` that verify with `secret` (Standard Webhooks, v1). */
function verifiedSignatures(req: Received, secret: string): number {
  const id = String(req.headers['webhook-id']);
  const timestamp = String(req.headers['webhook-timestamp']);
  const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`${id}.${timestamp}.${req.body}`).digest('base64');
  return signaturesOf(req).filter((s) => s === `v1,${expected}`).length;
}

const signaturesOf = (req: Received) => String(req.headers['webhook-signature'] ?? '').split(' ').filter(Boolean);

describe('alert endpoints over HTTP (embedded stack)', function () {
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(5 * 60_000); // first start of the shared stack: PGlite initdb, dev server, workflow bundle
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(async () => {
    await receiver?.close();
  });

  /** Creates a config through the API; returns it and its signing secret. */
  async function createConfig(fields: Record<string, unknown>): Promise<{ config: any; secret: string }> {
    const res = await stack.api('POST', '/api/alerts/config', {
      config: {
        name: 'endpoint test',
        conditions: [{ type: 'failure' }],
        retry: FAST_RETRY,
        ...fields,
        webhook: { timeoutMs: 5_000, ...(fields.webhook as object) },
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.secret, /^whsec_/);
    return { config: res.body.config, secret: res.body.secret };
  }

  function failedEvent(workflowId: string, runId: string, id = `evt_${uid()}`) {
    return { id, type: 'run.failed', workflowId, runId, workflow: { name: 'Orders sync', version: 3 }, error: { message: 'HTTP 500 from CRM', step: 'createContact' } };
  }

  async function sendEvents(body: unknown): Promise<{ deliveryId: string; configId: string; condition: string }[]> {
    const res = await stack.api('POST', '/api/events', body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.deliveries;
  }

  /** Polls GET /api/alerts/deliveries/{id} until its status is one of `statuses`. */
  const FINAL = ['delivered', 'failed', 'suppressed'];
  const closed = (timeline: { event: string }[] = []) => timeline.some((e) => e.event === 'delivery finished');

  async function waitForStatus(deliveryId: string, statuses: string[], timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      last = res.body;
      // a final row is written inside the delivery's last workflow task, a moment before Temporal records it:
      // wait for the history to show the workflow finished too, so the timeline is whole
      if (res.status === 200 && statuses.includes(res.body.status) && (!FINAL.includes(res.body.status) || closed(res.body.timeline))) return res.body;
      await sleep(100);
    }
    throw new Error(`delivery ${deliveryId} did not reach ${statuses.join('/')} within ${timeoutMs} ms; last answer: ${JSON.stringify(last)}`);
  }

  describe('GET /api/alerts/logs', () => {
    const workflowId = `wf_logs_${uid()}`;
    const otherWorkflowId = `wf_logs_other_${uid()}`;
    const [run1, run2, run3] = [`run_${uid()}`, `run_${uid()}`, `run_${uid()}`];
    let configA: any;
    let configB: any;
    let configC: any;
    /** delivery ids by config and run */
    const ids: Record<string, string> = {};
    /** every row of `workflowId`, as the unpaginated answer lists them */
    let allRows: any[];

    before(async function () {
      this.timeout(60_000);
      const base = `/logs-${uid()}`;
      // A answers 200; B answers 503 once per run, then 200 (two rows per delivery); C is another MeshHook workflow
      configA = (await createConfig({ workflowId, webhook: { url: `${receiver.url}${base}/a` } })).config;
      configB = (await createConfig({ workflowId, webhook: { url: `${receiver.url}${base}/b/{{ run.id }}` } })).config;
      configC = (await createConfig({ workflowId: otherWorkflowId, webhook: { url: `${receiver.url}${base}/c` } })).config;
      for (const run of [run1, run2]) receiver.on(`${base}/b/${run}`, (n) => ({ status: n === 1 ? 503 : 200 }));

      const started = await sendEvents({ events: [failedEvent(workflowId, run1), failedEvent(workflowId, run2), failedEvent(otherWorkflowId, run3)] });
      assert.equal(started.length, 5);
      // name each delivery by its config and run
      for (const d of started) {
        const res = await waitForStatus(d.deliveryId, ['delivered']);
        const name = `${d.configId === configA.id ? 'A' : d.configId === configB.id ? 'B' : 'C'}-${res.runId}`;
        ids[name] = d.deliveryId;
      }
      const res = await stack.api('GET', `/api/alerts/logs?workflowId=${workflowId}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      allRows = res.body.logs;
    });

    it('lists attempt rows newest first with the contract fields', async () => {
      assert.equal(allRows.length, 6, JSON.stringify(allRows)); // A: 1 + 1, B: 2 + 2
      for (const row of allRows) {
        for (const field of LOG_FIELDS) assert.ok(field in row, `log row has ${field}: ${JSON.stringify(row)}`);
        assert.equal(row.workflowId, workflowId);
        assert.equal(row.condition, 'failure');
        assert.equal(typeof row.durationMs, 'number');
        assert.ok(!Number.isNaN(Date.parse(row.createdAt)), `createdAt is a date: ${row.createdAt}`);
      }
      const times = allRows.map((r) => Date.parse(r.createdAt));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');

      const bRun1 = allRows.filter((r) => r.deliveryId === ids[`B-${run1}`]);
      assert.deepEqual(
        bRun1.map((r) => [r.attempt, r.outcome, r.httpStatus, r.error]),
        [
          [2, 'delivered', 200, null],
          [1, 'retrying', 503, 'HTTP 503'],
        ],
      );
      const aRun2 = allRows.find((r) => r.deliveryId === ids[`A-${run2}`]);
      assert.deepEqual(
        { configId: aRun2.configId, runId: aRun2.runId, attempt: aRun2.attempt, outcome: aRun2.outcome, httpStatus: aRun2.httpStatus },
        { configId: configA.id, runId: run2, attempt: 1, outcome: 'delivered', httpStatus: 200 },
      );
      assert.match(aRun2.eventId, /^evt_/);
    });

    it('narrows by configId, workflowId, runId and deliveryId', async () => {
      const list = async (query: string) => {
        const res = await stack.api('GET', `/api/alerts/logs?${query}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.logs as any[];
      };
      const byConfigA = await list(`configId=${configA.id}`);
      assert.deepEqual(byConfigA.map((r) => r.deliveryId).sort(), [ids[`A-${run1}`], ids[`A-${run2}`]].sort());

      const byOtherWorkflow = await list(`workflowId=${otherWorkflowId}`);
      assert.deepEqual(byOtherWorkflow.map((r) => [r.deliveryId, r.configId]), [[ids[`C-${run3}`], configC.id]]);

      const byRun1 = await list(`runId=${run1}`);
      assert.equal(byRun1.length, 3); // A once, B twice
      assert.ok(byRun1.every((r) => r.runId === run1));

      const byDelivery = await list(`deliveryId=${encodeURIComponent(ids[`B-${run2}`])}`);
      assert.deepEqual(byDelivery.map((r) => [r.deliveryId, r.attempt]), [
        [ids[`B-${run2}`], 2],
        [ids[`B-${run2}`], 1],
      ]);

      const combined = await list(`configId=${configB.id}&runId=${run2}`);
      assert.deepEqual(combined.map((r) => r.deliveryId), [ids[`B-${run2}`], ids[`B-${run2}`]]);
    });

    it('walks every row exactly once with cursor pagination (limit=2) and ends with nextCursor null', async () => {
      const seen: any[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await stack.api('GET', `/api/alerts/logs?workflowId=${workflowId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(res.body.logs.length <= 2);
        assert.ok('nextCursor' in res.body);
        seen.push(...res.body.logs);
        cursor = res.body.nextCursor;
        pages++;
        assert.ok(pages <= 10, 'pagination ends');
      } while (cursor !== null);
      assert.equal(pages, 3);
      const keys = seen.map((r) => `${r.deliveryId}#${r.attempt}`);
      assert.equal(new Set(keys).size, keys.length, `no duplicates: ${keys.join(', ')}`);
      assert.deepEqual(keys, allRows.map((r) => `${r.deliveryId}#${r.attempt}`));
    });

    for (const [query, parameter] of [
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['cursor=xyz', 'cursor'],
      ['colour=blue', 'colour'],
    ]) {
      it(`answers 400 naming the parameter for ${query}`, async () => {
        const res = await stack.api('GET', `/api/alerts/logs?${query}`);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'invalid_request');
        assert.ok(res.body.error.message.includes(parameter), `message names ${parameter}: ${res.body.error.message}`);
      });
    }

    it("shows none of these rows to another project's token", async () => {
      const other = await stack.tokenFor(`prj_other_${uid()}`);
      for (const query of [`workflowId=${workflowId}`, `configId=${configA.id}`, `deliveryId=${encodeURIComponent(ids[`A-${run1}`])}`, 'limit=500']) {
        const res = await stack.api('GET', `/api/alerts/logs?${query}`, undefined, other);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.logs, [], query);
        assert.equal(res.body.nextCursor, null);
      }
    });
  });

  describe('GET /api/alerts/deliveries/{id}', () => {
    it('shows a delivered delivery with its attempts, Temporal timeline and Temporal UI link', async () => {
      const workflowId = `wf_dlv_ok_${uid()}`;
      const path = `/dlv-ok-${uid()}`;
      const { config } = await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
      const runId = `run_${uid()}`;
      const [d] = await sendEvents(failedEvent(workflowId, runId));
      const delivery = await waitForStatus(d.deliveryId, ['delivered']);
      assert.equal(delivery.deliveryId, d.deliveryId);
      assert.equal(delivery.configId, config.id);
      assert.equal(delivery.attempts.length, 1);
      assert.deepEqual(
        LOG_FIELDS.filter((f) => !(f in delivery.attempts[0])),
        [],
        'attempts are log rows',
      );
      assert.equal(delivery.attempts[0].outcome, 'delivered');
      assert.equal(delivery.attempts[0].httpStatus, 200);
      assert.equal(delivery.attempts[0].runId, runId);
      const events = delivery.timeline.map((e: { event: string }) => e.event);
      assert.ok(events.length > 0);
      assert.equal(events[0], 'delivery started');
      assert.ok(events.includes('webhook delivered'), events.join(', '));
      for (const entry of delivery.timeline) assert.ok(!Number.isNaN(Date.parse(entry.time)), `timeline time: ${JSON.stringify(entry)}`);
      assert.match(delivery.temporalUrl, /^http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\//);
      assert.ok(delivery.temporalUrl.endsWith(encodeURIComponent(d.deliveryId)), delivery.temporalUrl);
      assert.equal((await receiver.waitFor(path, 1)).length, 1);
    });

    it('shows a permanently refused delivery as failed', async () => {
      const workflowId = `wf_dlv_fail_${uid()}`;
      const path = `/dlv-fail-${uid()}`;
      receiver.on(path, () => ({ status: 400, body: 'bad payload' }));
      await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
      const [d] = await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      const delivery = await waitForStatus(d.deliveryId, ['delivered', 'failed']);
      assert.equal(delivery.status, 'failed');
      assert.deepEqual(
        delivery.attempts.map((a: any) => [a.attempt, a.outcome, a.httpStatus, a.error]),
        [[1, 'failed', 400, 'HTTP 400']],
      );
      const events = delivery.timeline.map((e: { event: string }) => e.event);
      assert.ok(events.includes('delivery started') && events.includes('webhook delivery failed'), events.join(', '));
      assert.equal(receiver.at(path).length, 1, 'a 400 is not retried');
    });

    it('shows a delay watch as scheduled while it waits and suppressed when the run finishes in time', async function () {
      this.timeout(30_000);
      const workflowId = `wf_dlv_delay_${uid()}`;
      const path = `/dlv-delay-${uid()}`;
      await createConfig({ workflowId, conditions: [{ type: 'delay', thresholdSeconds: 60 }], webhook: { url: `${receiver.url}${path}` } });
      const runId = `run_${uid()}`;
      const [watch] = await sendEvents({ id: `evt_${uid()}`, type: 'run.started', workflowId, runId });
      assert.equal(watch.condition, 'delay');
      const scheduled = await waitForStatus(watch.deliveryId, ['scheduled']);
      assert.deepEqual(scheduled.attempts, []);
      assert.ok(scheduled.timeline.some((e: { event: string }) => e.event === 'delivery started'));

      const finished = await sendEvents({ id: `evt_${uid()}`, type: 'run.succeeded', workflowId, runId });
      assert.deepEqual(finished, [], 'a finishing event starts no new delivery');
      const suppressed = await waitForStatus(watch.deliveryId, ['suppressed', 'delivered', 'failed']);
      assert.equal(suppressed.status, 'suppressed');
      assert.deepEqual(suppressed.attempts, []);
      const events = suppressed.timeline.map((e: { event: string }) => e.event);
      assert.ok(events.includes('delay timer started') && events.includes('run finished'), events.join(', '));
      assert.equal(receiver.at(path).length, 0, 'nothing was sent');
    });

    it("answers 404 for an unknown id and for another project's delivery", async () => {
      const unknown = await stack.api('GET', `/api/alerts/deliveries/dlv-nope-${uid()}`);
      assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
      assert.equal(unknown.body.error.code, 'not_found');

      const workflowId = `wf_dlv_other_${uid()}`;
      await createConfig({ workflowId, webhook: { url: `${receiver.url}/dlv-other-${uid()}` } });
      const other = await stack.tokenFor(`prj_other_${uid()}`);
      const [d] = await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      // at once (the delivery may be known only to Temporal yet) and once it is done
      const starting = await stack.api('GET', `/api/alerts/deliveries/${d.deliveryId}`, undefined, other);
      assert.equal(starting.status, 404, JSON.stringify(starting.body));
      await waitForStatus(d.deliveryId, ['delivered']);
      const res = await stack.api('GET', `/api/alerts/deliveries/${d.deliveryId}`, undefined, other);
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'not_found');
    });
  });

  describe('POST /api/alerts/deliveries/{id}/redeliver', () => {
    it('sends the same alert again as a new delivery with a new webhook-id', async () => {
      const workflowId = `wf_redeliver_${uid()}`;
      const path = `/redeliver-${uid()}`;
      const { secret } = await createConfig({
        workflowId,
        webhook: { url: `${receiver.url}${path}` },
        payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}', run: '{{ run.id }}', event: '{{ event.id }}', at: '{{ event.occurredAt }}' } },
      });
      const [original] = await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      await waitForStatus(original.deliveryId, ['delivered']);
      const [first] = await receiver.waitFor(path, 1);

      const res = await stack.api('POST', `/api/alerts/deliveries/${original.deliveryId}/redeliver`);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(typeof res.body.deliveryId, 'string');
      assert.notEqual(res.body.deliveryId, original.deliveryId);

      const [, again] = await receiver.waitFor(path, 2);
      assert.equal(again.body, first.body, 'the same alert body');
      assert.equal(again.headers['webhook-id'], res.body.deliveryId);
      assert.notEqual(again.headers['webhook-id'], first.headers['webhook-id']);
      assert.equal(verifiedSignatures(again, secret), 1);

      const redelivery = await waitForStatus(res.body.deliveryId, ['delivered']);
      assert.equal(redelivery.redeliveryOf, original.deliveryId);
      assert.equal(redelivery.attempts.length, 1);
      const originalNow = await waitForStatus(original.deliveryId, ['delivered']);
      assert.equal(originalNow.attempts.length, 1, 'the original delivery is unchanged');
    });

    it("answers 404 to another project's token and for an unknown delivery", async () => {
      const workflowId = `wf_redeliver_other_${uid()}`;
      const path = `/redeliver-other-${uid()}`;
      await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
      const [d] = await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      await waitForStatus(d.deliveryId, ['delivered']);
      const other = await stack.tokenFor(`prj_other_${uid()}`);
      const res = await stack.api('POST', `/api/alerts/deliveries/${d.deliveryId}/redeliver`, undefined, other);
      assert.equal(res.status, 404, JSON.stringify(res.body));
      const unknown = await stack.api('POST', `/api/alerts/deliveries/dlv-nope-${uid()}/redeliver`);
      assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
      await sleep(500);
      assert.equal(receiver.at(path).length, 1, 'nothing was sent again');
    });
  });

  describe('POST /api/alerts/test', () => {
    it('answers with the first attempt of a test alert delivered to a 200 receiver', async () => {
      const path = `/test-ok-${uid()}`;
      const { config, secret } = await createConfig({ workflowId: `wf_test_${uid()}`, name: 'Test me', webhook: { url: `${receiver.url}${path}` } });
      const res = await stack.api('POST', '/api/alerts/test', { configId: config.id });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(typeof res.body.deliveryId, 'string');
      assert.equal(res.body.outcome, 'delivered');
      assert.equal(res.body.httpStatus, 200);
      assert.equal(res.body.attempt, 1);
      assert.equal(typeof res.body.durationMs, 'number');
      assert.ok(res.body.durationMs >= 0);

      const [hook] = await receiver.waitFor(path, 1);
      assert.equal(hook.headers['webhook-id'], res.body.deliveryId);
      assert.equal(verifiedSignatures(hook, secret), 1);
      const payload = JSON.parse(hook.body);
      assert.equal(payload.condition, 'test');
      assert.equal(payload.workflow.id, config.workflowId);
      assert.equal(payload.config.id, config.id);
      const delivery = await waitForStatus(res.body.deliveryId, ['delivered']);
      assert.equal(delivery.condition, 'test');
    });

    it('answers retrying 503 when the receiver answers 503', async () => {
      const path = `/test-503-${uid()}`;
      receiver.on(path, () => ({ status: 503 }));
      const { config } = await createConfig({
        workflowId: `wf_test_${uid()}`,
        webhook: { url: `${receiver.url}${path}` },
        retry: { ...FAST_RETRY, maxAttempts: 2 },
      });
      const res = await stack.api('POST', '/api/alerts/test', { configId: config.id });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(
        { outcome: res.body.outcome, httpStatus: res.body.httpStatus, attempt: res.body.attempt },
        { outcome: 'retrying', httpStatus: 503, attempt: 1 },
      );
      assert.equal(typeof res.body.durationMs, 'number');
      const delivery = await waitForStatus(res.body.deliveryId, ['failed', 'delivered']);
      assert.equal(delivery.status, 'failed');
      assert.deepEqual(delivery.attempts.map((a: any) => a.outcome), ['retrying', 'failed']);
      assert.equal(receiver.at(path).length, 2);
    });

    it('answers 404 for an unknown configId and 400 without one', async () => {
      const unknown = await stack.api('POST', '/api/alerts/test', { configId: `cfg_nope_${uid()}` });
      assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
      assert.equal(unknown.body.error.code, 'not_found');
      const missing = await stack.api('POST', '/api/alerts/test', {});
      assert.equal(missing.status, 400, JSON.stringify(missing.body));
      assert.ok(missing.body.error.message.includes('configId'), missing.body.error.message);
    });
  });

  describe('POST /api/alerts/config/by-id/{id}/rotate-secret', () => {
    it('issues a new secret, signs with both for 24 h by default, and with graceSeconds 0 drops the old ones at once', async function () {
      this.timeout(30_000);
      const workflowId = `wf_rotate_${uid()}`;
      const path = `/rotate-${uid()}`;
      const { config, secret: original } = await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });

      const before = Date.now();
      const rotated = await stack.api('POST', `/api/alerts/config/by-id/${config.id}/rotate-secret`);
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      assert.match(rotated.body.secret, /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/);
      assert.notEqual(rotated.body.secret, original);
      const expires = Date.parse(rotated.body.previousSecretExpiresAt);
      const DAY = 24 * 3600 * 1000;
      assert.ok(expires >= before + DAY - 1000 && expires <= Date.now() + DAY + 1000, `about 24 h ahead: ${rotated.body.previousSecretExpiresAt}`);

      await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      const [during] = await receiver.waitFor(path, 1);
      assert.equal(signaturesOf(during).length, 2, String(during.headers['webhook-signature']));
      assert.equal(verifiedSignatures(during, rotated.body.secret), 1);
      assert.equal(verifiedSignatures(during, original), 1);

      const atOnce = await stack.api('POST', `/api/alerts/config/by-id/${config.id}/rotate-secret`, { graceSeconds: 0 });
      assert.equal(atOnce.status, 200, JSON.stringify(atOnce.body));
      assert.match(atOnce.body.secret, /^whsec_/);
      assert.ok(Math.abs(Date.parse(atOnce.body.previousSecretExpiresAt) - Date.now()) < 5_000, atOnce.body.previousSecretExpiresAt);

      await sendEvents(failedEvent(workflowId, `run_${uid()}`));
      const [, after] = await receiver.waitFor(path, 2);
      assert.equal(signaturesOf(after).length, 1, String(after.headers['webhook-signature']));
      assert.equal(verifiedSignatures(after, atOnce.body.secret), 1);
      assert.equal(verifiedSignatures(after, rotated.body.secret), 0);
      assert.equal(verifiedSignatures(after, original), 0);
    });

    it("answers 404 for another project's config", async () => {
      const { config } = await createConfig({ workflowId: `wf_rotate_${uid()}`, webhook: { url: `${receiver.url}/rotate-other-${uid()}` } });
      const other = await stack.tokenFor(`prj_other_${uid()}`);
      const res = await stack.api('POST', `/api/alerts/config/by-id/${config.id}/rotate-secret`, undefined, other);
      assert.equal(res.status, 404, JSON.stringify(res.body));
    });
  });

  describe('POST /api/events', () => {
    it('accepts a batch of 3 events and answers with their deliveries', async () => {
      const workflowId = `wf_batch_${uid()}`;
      const path = `/batch-${uid()}`;
      const { config } = await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
      const events = [1, 2, 3].map(() => failedEvent(workflowId, `run_${uid()}`));
      const res = await stack.api('POST', '/api/events', { events });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.accepted, 3);
      assert.equal(res.body.deliveries.length, 3);
      for (const d of res.body.deliveries) {
        assert.equal(d.configId, config.id);
        assert.equal(d.condition, 'failure');
      }
      assert.deepEqual(
        res.body.deliveries.map((d: any) => d.deliveryId).sort(),
        events.map((e) => immediateDeliveryId(config.id, e.id)).sort(),
      );
      const hooks = await receiver.waitFor(path, 3);
      assert.deepEqual(
        hooks.map((h) => JSON.parse(h.body).event.id).sort(),
        events.map((e) => e.id).sort(),
      );
    });

    it('refuses 101 events with 400', async () => {
      const workflowId = `wf_batch_big_${uid()}`;
      const path = `/batch-big-${uid()}`;
      await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
      const events = Array.from({ length: 101 }, () => failedEvent(workflowId, `run_${uid()}`));
      const res = await stack.api('POST', '/api/events', { events });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.match(res.body.error.message, /events/);
      assert.match(res.body.error.message, /100/);
      await sleep(1_000);
      assert.equal(receiver.at(path).length, 0);
    });

    for (const [what, broken, field] of [
      ['a missing runId', { runId: undefined }, 'runId'],
      ['a bad type', { type: 'run.exploded' }, 'type'],
    ] as const) {
      it(`refuses a batch with ${what} with 400 naming the field, and starts nothing`, async function () {
        this.timeout(30_000);
        const workflowId = `wf_batch_bad_${uid()}`;
        const path = `/batch-bad-${uid()}`;
        const { config } = await createConfig({ workflowId, webhook: { url: `${receiver.url}${path}` } });
        const good = failedEvent(workflowId, `run_${uid()}`);
        const bad = { ...failedEvent(workflowId, `run_${uid()}`), ...broken };
        const res = await stack.api('POST', '/api/events', { events: [good, bad] });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'invalid_request');
        assert.ok(res.body.error.message.includes(field), `message names ${field}: ${res.body.error.message}`);

        const single = await stack.api('POST', '/api/events', bad);
        assert.equal(single.status, 400, JSON.stringify(single.body));
        assert.ok(single.body.error.message.includes(field), `message names ${field}: ${single.body.error.message}`);

        await sleep(1_000);
        const goodId = immediateDeliveryId(config.id, good.id);
        assert.equal((await stack.api('GET', `/api/alerts/deliveries/${goodId}`)).status, 404, 'no delivery for the valid event of the refused batch');
        const logs = await stack.api('GET', `/api/alerts/logs?workflowId=${workflowId}`);
        assert.deepEqual(logs.body.logs, []);
        assert.equal(receiver.at(path).length, 0);

        // the valid event alone goes through: the delivery above was missing because of the refusal
        const [d] = await sendEvents(good);
        assert.equal(d.deliveryId, goodId);
        await waitForStatus(goodId, ['delivered']);
      });
    }
  });
});
