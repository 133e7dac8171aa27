import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { temporal } from '@temporalio/proto';
import { Webhook } from 'standardwebhooks';
import { renderAlertSandboxed, SANDBOX_LIMITS, templateRendererPids } from '../runtime/template-sandbox';
import { Receiver, type Received, type Script } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * AlertDelivery end to end: events go in through POST /api/events on the
 * shared embedded stack (real Temporal dev server, PGlite, worker, API), and
 * alerts come out at a real HTTP receiver on 127.0.0.1. Every test works on
 * its own MeshHook workflow id, receiver path and event ids.
 */

const EventType = temporal.api.enums.v1.EventType;
const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** retries that are quick but still visible (Temporal's timers have about 1 s granularity) */
const FAST_RETRY = { maxAttempts: 4, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };

/** how long to keep listening before saying "nothing (more) arrived" */
const QUIET_MS = 2_000;

const STARTED_AT = '2026-11-29T09:59:58Z';
const FINISHED_AT = '2026-11-29T10:00:00.500Z';
const RUN_MS = 2_500;

interface Delivered {
  deliveryId: string;
  configId: string;
  condition: string;
  duplicate?: boolean;
}

interface LogRow {
  deliveryId: string;
  configId: string;
  workflowId: string;
  runId: string;
  eventId: string;
  condition: string;
  attempt: number;
  outcome: 'delivered' | 'retrying' | 'failed';
  httpStatus: number | null;
  error: string | null;
  durationMs: number | null;
  createdAt: string;
}

describe('alert delivery (end to end on the embedded stack)', function () {
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(async () => {
    await receiver?.close();
  });

  // ------------------------------------------------------------ helpers

  /** a fresh receiver path for one test, optionally with a script */
  function hookPath(name: string, script?: Script): string {
    const path = `/${name}-${uid()}`;
    if (script) receiver.on(path, script);
    return path;
  }

  /** requests a path received, whatever their query string */
  const hits = (path: string): Received[] => receiver.requests.filter((r) => r.path.split('?')[0] === path);

  async function waitForHits(path: string, count = 1, timeoutMs = 20_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (hits(path).length < count) {
      if (Date.now() > deadline) throw new Error(`${path} received ${hits(path).length} of ${count} requests within ${timeoutMs} ms`);
      await sleep(50);
    }
    return hits(path);
  }

  /** polls `probe` until it returns something truthy */
  async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last seen: ${JSON.stringify(last)})`);
      last = value;
      await sleep(100);
    }
  }

  async function createConfig(config: Record<string, unknown>): Promise<{ config: { id: string; name: string; workflowId: string }; secret: string }> {
    const res = await stack.api('POST', '/api/alerts/config', { config: { retry: FAST_RETRY, ...config } });
    assert.equal(res.status, 201, `config create: ${JSON.stringify(res.body)}`);
    assert.match(res.body.secret, /^whsec_/);
    return res.body;
  }

  function makeEvent(type: string, workflowId: string, fields: Record<string, unknown> = {}) {
    return {
      id: `evt_${uid()}`,
      type,
      occurredAt: '2026-11-29T10:00:00Z',
      workflowId,
      runId: `run_${uid()}`,
      workflow: { name: 'Orders sync', version: 3 },
      run: { startedAt: STARTED_AT, finishedAt: FINISHED_AT },
      ...(type === 'run.failed' ? { error: { message: 'HTTP 500 from CRM', step: 'createContact' } } : {}),
      data: { orderId: 'ord_42' },
      ...fields,
    };
  }

  async function postEvent(event: unknown): Promise<{ accepted: number; deliveries: Delivered[] }> {
    const res = await stack.api('POST', '/api/events', event);
    assert.equal(res.status, 202, `POST /api/events: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** posts an event that must start exactly one delivery; returns its id */
  async function postOneDelivery(event: unknown, condition: string): Promise<string> {
    const answer = await postEvent(event);
    assert.equal(answer.accepted, 1);
    assert.equal(answer.deliveries.length, 1, `one delivery: ${JSON.stringify(answer)}`);
    assert.equal(answer.deliveries[0].condition, condition);
    assert.equal(answer.deliveries[0].duplicate, false);
    return answer.deliveries[0].deliveryId;
  }

  /** the delivery's log rows, by attempt */
  async function logsOf(deliveryId: string): Promise<LogRow[]> {
    const res = await stack.api('GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(deliveryId)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return [...(res.body.logs as LogRow[])].sort((a, b) => a.attempt - b.attempt);
  }

  async function waitForLogs(deliveryId: string, count: number): Promise<LogRow[]> {
    const rows = await eventually(`${count} log rows of ${deliveryId}`, async () => {
      const logs = await logsOf(deliveryId);
      return logs.length >= count ? logs : undefined;
    });
    assert.equal(rows.length, count, `log rows of ${deliveryId}: ${JSON.stringify(rows)}`);
    return rows;
  }

  async function getDelivery(deliveryId: string): Promise<any> {
    const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /**
   * Polls GET /api/alerts/deliveries/{id} until it shows `status`. The row is
   * written by the delivery workflow itself, so for a moment after the 202 the
   * id can still answer 404.
   */
  async function waitForStatus(deliveryId: string, status: string): Promise<any> {
    let last: any;
    try {
      return await eventually(`delivery ${deliveryId} to be ${status}`, async () => {
        const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
        if (res.status === 404) return undefined;
        assert.equal(res.status, 200, JSON.stringify(res.body));
        last = res.body;
        return last.status === status ? last : undefined;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}; last status ${last?.status}: ${JSON.stringify(last?.attempts)}`);
    }
  }

  /** the three Standard Webhooks headers of a received request */
  function signatureHeadersOf(r: Received): Record<string, string> {
    const h = (name: string) => {
      const value = r.headers[name];
      assert.equal(typeof value, 'string', `header ${name} is present once`);
      return value as string;
    };
    return { 'webhook-id': h('webhook-id'), 'webhook-timestamp': h('webhook-timestamp'), 'webhook-signature': h('webhook-signature') };
  }

  const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

  // ------------------------------------------------------------ rendering

  it('sends failure, success, paused and canceled alerts to the rendered URL with rendered headers and body', async function () {
    const workflowId = `wf_render_${uid()}`;
    const path = hookPath('render');
    const { config } = await createConfig({
      workflowId,
      name: 'Render check',
      conditions: [{ type: 'failure' }, { type: 'success' }, { type: 'manual_intervention' }, { type: 'canceled' }],
      webhook: {
        url: `${receiver.url}${path}/{{ condition }}/{{ workflow.id }}?name={{ workflow.name }}&region={{ data.region }}`,
        headers: { 'X-Run': '{{ run.id }}', 'X-Alert': '{{ condition }} for {{ workflow.name }}', 'X-Team': 'ops' },
        timeoutMs: 5_000,
      },
      payload: {
        template: {
          text: '{{ workflow.name }} {{ condition }}: {{ error.message }}',
          durationMs: '{{ run.durationMs }}',
          version: '{{ workflow.version }}',
          summary: 'run {{ run.id }} took {{ run.durationMs }} ms',
          delivery: '{{ delivery.id }}',
          config: '{{ config.name }}',
          fixed: 42,
          nested: { list: ['{{ data.region }}', true, null] },
        },
      },
    });

    const cases = [
      { type: 'run.failed', condition: 'failure', errorText: 'HTTP 500 from CRM' },
      { type: 'run.succeeded', condition: 'success', errorText: '' },
      { type: 'run.paused', condition: 'manual_intervention', errorText: '' },
      { type: 'run.canceled', condition: 'canceled', errorText: '' },
    ];
    const name = 'Orders sync & more';
    const region = 'eu west/1';
    const sent = [];
    for (const c of cases) {
      const event = makeEvent(c.type, workflowId, { workflow: { name, version: 7 }, data: { region } });
      const deliveryId = await postOneDelivery(event, c.condition);
      sent.push({ ...c, event, deliveryId });
    }

    for (const { condition, errorText, event, deliveryId } of sent) {
      const [req] = await waitForHits(`${path}/${condition}/${workflowId}`);
      assert.equal(req.method, 'POST');
      // URL templates URL-encode what they insert
      assert.equal(req.path, `${path}/${condition}/${workflowId}?name=Orders%20sync%20%26%20more&region=eu%20west%2F1`);
      assert.equal(req.headers['content-type'], 'application/json');
      assert.equal(req.headers['x-run'], event.runId);
      assert.equal(req.headers['x-alert'], `${condition} for ${name}`);
      assert.equal(req.headers['x-team'], 'ops');
      assert.equal(req.headers['webhook-id'], deliveryId);
      assert.deepEqual(JSON.parse(req.body), {
        text: `${name} ${condition}: ${errorText}`,
        durationMs: RUN_MS,
        version: 7,
        summary: `run ${event.runId} took ${RUN_MS} ms`,
        delivery: deliveryId,
        config: 'Render check',
        fixed: 42,
        nested: { list: [region, true, null] },
      });

      const [log] = await waitForLogs(deliveryId, 1);
      assert.equal(log.outcome, 'delivered');
      assert.equal(log.attempt, 1);
      assert.equal(log.httpStatus, 200);
      assert.equal(log.condition, condition);
      assert.equal(log.configId, config.id);
      assert.equal(log.eventId, event.id);
      assert.equal(log.runId, event.runId);
      assert.equal(log.workflowId, workflowId);
      const delivery = await waitForStatus(deliveryId, 'delivered');
      assert.equal(delivery.configId, config.id);
      assert.equal(delivery.attempts.length, 1);
    }
    await sleep(QUIET_MS);
    assert.equal(hits(`${path}/failure/${workflowId}`).length + hits(`${path}/success/${workflowId}`).length
      + hits(`${path}/manual_intervention/${workflowId}`).length + hits(`${path}/canceled/${workflowId}`).length, 4, 'one webhook per event');
  });

  it('sends the default payload when the config has no template', async function () {
    const workflowId = `wf_default_${uid()}`;
    const path = hookPath('default');
    const { config } = await createConfig({
      workflowId,
      name: 'Default payload',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const event = makeEvent('run.failed', workflowId);
    const deliveryId = await postOneDelivery(event, 'failure');
    const [req] = await waitForHits(path);
    assert.equal(req.headers['content-type'], 'application/json');
    const body = JSON.parse(req.body);
    assert.equal(body.type, 'alert.failure');
    assert.equal(body.condition, 'failure');
    assert.equal(body.text, `Orders sync run ${event.runId} failed: HTTP 500 from CRM`);
    assert.deepEqual(body.workflow, { id: workflowId, name: 'Orders sync', version: 3 });
    assert.deepEqual(body.run, { id: event.runId, startedAt: STARTED_AT, finishedAt: FINISHED_AT, durationMs: RUN_MS });
    assert.deepEqual(body.error, { message: 'HTTP 500 from CRM', step: 'createContact' });
    assert.deepEqual(body.event, { id: event.id, type: 'run.failed', occurredAt: '2026-11-29T10:00:00Z' });
    assert.deepEqual(body.data, { orderId: 'ord_42' });
    assert.deepEqual(body.config, { id: config.id, name: 'Default payload' });
    assert.deepEqual(body.delivery, { id: deliveryId });
    await waitForStatus(deliveryId, 'delivered');
  });

  // ------------------------------------------------------------ what sends nothing

  it('sends nothing for an event type the conditions do not match, nor for a disabled config', async function () {
    const workflowId = `wf_nomatch_${uid()}`;
    const path = hookPath('nomatch');
    await createConfig({
      workflowId,
      name: 'Failures only',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const succeeded = await postEvent(makeEvent('run.succeeded', workflowId));
    assert.equal(succeeded.accepted, 1);
    assert.deepEqual(succeeded.deliveries, []);
    const paused = await postEvent(makeEvent('run.paused', workflowId));
    assert.deepEqual(paused.deliveries, []);

    const disabledWorkflowId = `wf_disabled_${uid()}`;
    const disabledPath = hookPath('disabled');
    await createConfig({
      workflowId: disabledWorkflowId,
      name: 'Disabled',
      enabled: false,
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${disabledPath}`, headers: {}, timeoutMs: 5_000 },
    });
    const failedOnDisabled = await postEvent(makeEvent('run.failed', disabledWorkflowId));
    assert.deepEqual(failedOnDisabled.deliveries, []);

    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 0, 'nothing sent for run.succeeded / run.paused to a failure-only config');
    assert.equal(hits(disabledPath).length, 0, 'nothing sent for a disabled config');

    // the same receiver does get what matches: the silence above is not a broken receiver
    const failed = makeEvent('run.failed', workflowId);
    await postOneDelivery(failed, 'failure');
    const [req] = await waitForHits(path);
    assert.equal(JSON.parse(req.body).event.id, failed.id);
  });

  // ------------------------------------------------------------ delay

  it('sends a delay alert when a started run does not finish within the threshold', async function () {
    const workflowId = `wf_delay_${uid()}`;
    const path = hookPath('delay');
    const { config } = await createConfig({
      workflowId,
      name: 'Slow runs',
      conditions: [{ type: 'delay', thresholdSeconds: 2 }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const now = new Date().toISOString();
    const started = makeEvent('run.started', workflowId, { occurredAt: now, run: { startedAt: now } });
    const postedAt = Date.now();
    const deliveryId = await postOneDelivery(started, 'delay');
    // a delay watch shows as scheduled while its timer runs
    const scheduled = await waitForStatus(deliveryId, 'scheduled');
    assert.equal(scheduled.condition, 'delay');
    assert.equal(hits(path).length, 0);

    const [req] = await waitForHits(path, 1, 15_000);
    assert.ok(req.at - postedAt >= 2_000, `delay alert arrived ${req.at - postedAt} ms after run.started (threshold 2 s)`);
    assert.ok(req.at - postedAt < 10_000, `delay alert arrived ${req.at - postedAt} ms after run.started`);
    const body = JSON.parse(req.body);
    assert.equal(body.condition, 'delay');
    assert.equal(body.type, 'alert.delay');
    assert.equal(body.run.id, started.runId);
    assert.equal(typeof body.run.durationMs, 'number');
    assert.ok(body.run.durationMs >= 2_000, `duration so far: ${body.run.durationMs}`);
    assert.equal(req.headers['webhook-id'], deliveryId);

    const [log] = await waitForLogs(deliveryId, 1);
    assert.equal(log.condition, 'delay');
    assert.equal(log.outcome, 'delivered');
    const delivery = await waitForStatus(deliveryId, 'delivered');
    assert.equal(delivery.configId, config.id);
    assert.equal(delivery.condition, 'delay');
  });

  it('sends nothing when the run finishes before the delay threshold, and marks the watch suppressed', async function () {
    const workflowId = `wf_delay_ok_${uid()}`;
    const path = hookPath('delay-ok');
    await createConfig({
      workflowId,
      name: 'Slow runs',
      conditions: [{ type: 'delay', thresholdSeconds: 2 }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const runId = `run_${uid()}`;
    const now = new Date().toISOString();
    const deliveryId = await postOneDelivery(makeEvent('run.started', workflowId, { runId, occurredAt: now, run: { startedAt: now } }), 'delay');
    await sleep(500);
    const finished = await postEvent(makeEvent('run.succeeded', workflowId, { runId, occurredAt: new Date().toISOString() }));
    assert.deepEqual(finished.deliveries, [], 'a finishing event starts no alert of its own');

    await sleep(4_000);
    assert.equal(hits(path).length, 0, 'no delay alert for a run that finished in time');
    const delivery = await waitForStatus(deliveryId, 'suppressed');
    assert.equal(delivery.condition, 'delay');
    assert.equal(delivery.attempts.length, 0);
    assert.deepEqual(await logsOf(deliveryId), []);
  });

  it('keeps a delay alert delivered when the run finishes late while its first attempt is in flight', async function () {
    this.timeout(40_000);
    const workflowId = `wf_delay_late_${uid()}`;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // the receiver holds the first attempt until the finishing event is in the workflow's history
    const path = hookPath('delay-late', () => ({ status: 200, after: held }));
    await createConfig({
      workflowId,
      name: 'Slow runs',
      conditions: [{ type: 'delay', thresholdSeconds: 1 }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 10_000 },
    });
    const runId = `run_${uid()}`;
    const deliveryId = await postOneDelivery(makeEvent('run.started', workflowId, { runId, occurredAt: new Date().toISOString() }), 'delay');
    await waitForHits(path, 1, 15_000);
    // the run finishes now, after its deadline, while the alert's first attempt is in flight: the finish is
    // recorded on the watch's row (docs/delay-watches.md), and neither suppresses the watch nor stops the alert
    const finished = await postEvent(makeEvent('run.succeeded', workflowId, { runId, occurredAt: new Date().toISOString() }));
    assert.deepEqual(finished.deliveries, []);
    const handle = stack.service.temporal.client.workflow.getHandle(deliveryId);
    const [row] = await stack.service.db.query<{ status: string; run_finished_at: Date | null }>('SELECT status, run_finished_at FROM alert_deliveries WHERE delivery_id = $1', [deliveryId]);
    assert.ok(row.run_finished_at, 'the finish is recorded');
    assert.equal(row.status, 'in_progress', 'the late finish did not suppress the fired watch');
    release();
    const result = await handle.result();
    assert.equal(result.status, 'delivered');
    const delivery = await waitForStatus(deliveryId, 'delivered');
    assert.equal(delivery.attempts.length, 1);
    assert.equal(delivery.attempts[0].outcome, 'delivered');
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'sent once');
    assert.equal((await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`)).body.status, 'delivered', 'still delivered, not overwritten');
  });

  // ------------------------------------------------------------ duplicates

  it('sends one webhook for an event posted twice in a row', async function () {
    const workflowId = `wf_dup_${uid()}`;
    const path = hookPath('dup');
    await createConfig({
      workflowId,
      name: 'Dups',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const event = makeEvent('run.failed', workflowId);
    const first = await postEvent(event);
    const second = await postEvent(event);
    assert.equal(first.deliveries.length, 1);
    assert.equal(second.deliveries.length, 1);
    assert.equal(first.deliveries[0].duplicate, false);
    assert.equal(second.deliveries[0].duplicate, true);
    assert.equal(second.deliveries[0].deliveryId, first.deliveries[0].deliveryId);

    await waitForHits(path);
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'exactly one webhook');
    assert.equal(hits(path)[0].headers['webhook-id'], first.deliveries[0].deliveryId);
    await waitForLogs(first.deliveries[0].deliveryId, 1);
  });

  it('sends one webhook for the same event sent twice at the same moment', async function () {
    const workflowId = `wf_dup_race_${uid()}`;
    const path = hookPath('dup-race');
    await createConfig({
      workflowId,
      name: 'Dups at once',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const event = makeEvent('run.failed', workflowId);
    const answers = await Promise.all([postEvent(event), postEvent(event)]);
    const [a, b] = answers.map((answer) => {
      assert.equal(answer.deliveries.length, 1, JSON.stringify(answer));
      return answer.deliveries[0];
    });
    assert.equal(a.deliveryId, b.deliveryId);
    assert.deepEqual([a.duplicate, b.duplicate].sort(), [false, true], 'one start, one duplicate');

    await waitForHits(path);
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'exactly one webhook');
    await waitForLogs(a.deliveryId, 1);
  });

  // ------------------------------------------------------------ retries and outcomes

  it('retries a 503 and delivers on the third attempt', async function () {
    const workflowId = `wf_503_${uid()}`;
    const path = hookPath('503', (n) => (n <= 2 ? { status: 503, body: 'busy' } : { status: 200 }));
    const { secret } = await createConfig({
      workflowId,
      name: 'Flaky receiver',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    const requests = await waitForHits(path, 3);
    const logs = await waitForLogs(deliveryId, 3);
    assert.deepEqual(logs.map((l) => l.attempt), [1, 2, 3]);
    assert.deepEqual(logs.map((l) => l.outcome), ['retrying', 'retrying', 'delivered']);
    assert.deepEqual(logs.map((l) => l.httpStatus), [503, 503, 200]);
    assert.match(logs[0].error ?? '', /503/);
    assert.equal(logs[2].error, null);

    // a retry is the same delivery: same webhook-id and body, each attempt signed on its own
    for (const req of requests) {
      assert.equal(req.headers['webhook-id'], deliveryId);
      assert.equal(req.body, requests[0].body);
      new Webhook(secret).verify(req.body, signatureHeadersOf(req));
    }
    const delivery = await waitForStatus(deliveryId, 'delivered');
    assert.equal(delivery.attempts.length, 3);
    // the timeline numbers attempts as the log does: 1 inside the first workflow task, 2 and 3 as activity attempts
    const timeline: { event: string; attempt?: number; detail?: string }[] = delivery.timeline;
    const first = timeline.find((e) => e.event === 'webhook attempt failed');
    assert.equal(first?.attempt, 1, JSON.stringify(timeline));
    assert.match(first?.detail ?? '', /^HTTP 503; retrying in \d+ ms$/);
    assert.ok(timeline.some((e) => e.event === 'waiting before the next attempt'), JSON.stringify(timeline));
    // Temporal records the start of an activity's last attempt only, with the failure of the one before
    const started = timeline.filter((e) => e.event === 'webhook POST started');
    assert.deepEqual(started.map((e) => [e.attempt, e.detail]), [[3, started[0]?.detail]], JSON.stringify(timeline));
    assert.match(started[0].detail ?? '', /^previous attempt: HTTP 503; retrying in \d+ ms$/);
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 3, 'nothing after the delivered attempt');
  });

  it('delivers an alert that lands first time in one workflow task, with no activity task', async function () {
    const workflowId = `wf_one_task_${uid()}`;
    const path = hookPath('one-task');
    await createConfig({
      workflowId,
      name: 'Healthy receiver',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    await waitForHits(path, 1);
    await waitForStatus(deliveryId, 'delivered');
    // the row is written inside the workflow task, a moment before Temporal records that task: read both after the workflow ends
    const handle = stack.service.temporal!.client.workflow.getHandle(deliveryId);
    assert.equal((await handle.result()).status, 'delivered');
    const delivery = await getDelivery(deliveryId);
    assert.deepEqual(delivery.attempts.map((a: LogRow) => [a.attempt, a.outcome, a.httpStatus]), [[1, 'delivered', 200]]);
    const history = await handle.fetchHistory();
    const types = (history.events ?? []).map((e) => String(e.eventType));
    const count = (type: temporal.api.enums.v1.EventType) => types.filter((t) => t === String(type)).length;
    assert.equal(count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), 1, types.join(','));
    assert.equal(count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 0, types.join(','));
    assert.equal(count(EventType.EVENT_TYPE_MARKER_RECORDED), 1, 'one local activity: the first attempt');
    assert.equal(count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED), 1);
    const timeline: { event: string; detail?: string }[] = delivery.timeline;
    assert.deepEqual(timeline.map((e) => e.event), ['delivery started', 'webhook delivered', 'delivery finished']);
    assert.equal(timeline[1].detail, 'HTTP 200');
  });

  it('waits for Retry-After after a 429 and signs the retry with a fresh timestamp', async function () {
    const workflowId = `wf_429_${uid()}`;
    const path = hookPath('429', (n) => (n === 1 ? { status: 429, headers: { 'Retry-After': '2' } } : { status: 200 }));
    const { secret } = await createConfig({
      workflowId,
      name: 'Rate limited',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
      retry: { maxAttempts: 4, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 10_000, maxDurationMs: 60_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    const [first, second] = await waitForHits(path, 2);
    const gap = second.at - first.at;
    assert.ok(gap >= 1_800 && gap < 6_000, `retry came ${gap} ms after the 429 with Retry-After: 2`);

    const logs = await waitForLogs(deliveryId, 2);
    assert.deepEqual(logs.map((l) => [l.attempt, l.outcome, l.httpStatus]), [[1, 'retrying', 429], [2, 'delivered', 200]]);

    const [h1, h2] = [signatureHeadersOf(first), signatureHeadersOf(second)];
    assert.equal(h1['webhook-id'], deliveryId);
    assert.equal(h2['webhook-id'], deliveryId);
    assert.ok(Number(h2['webhook-timestamp']) > Number(h1['webhook-timestamp']), 'the retry has its own timestamp');
    assert.notEqual(h2['webhook-signature'], h1['webhook-signature'], 'the retry has its own signature');
    assert.equal(second.body, first.body);
    new Webhook(secret).verify(first.body, h1);
    new Webhook(secret).verify(second.body, h2);
    await waitForStatus(deliveryId, 'delivered');
  });

  it('stops after one attempt on a 404', async function () {
    const workflowId = `wf_404_${uid()}`;
    const path = hookPath('404', () => ({ status: 404, body: 'no such hook' }));
    await createConfig({
      workflowId,
      name: 'Wrong URL',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    await waitForHits(path);
    const delivery = await waitForStatus(deliveryId, 'failed');
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'no retry after a 404');
    const logs = await logsOf(deliveryId);
    assert.equal(logs.length, 1);
    assert.equal(logs[0].attempt, 1);
    assert.equal(logs[0].outcome, 'failed');
    assert.equal(logs[0].httpStatus, 404);
    assert.match(logs[0].error ?? '', /404/);
    assert.equal(delivery.attempts.length, 1);
  });

  it('stops on a 410 and disables the config, so later events send nothing', async function () {
    const workflowId = `wf_410_${uid()}`;
    const path = hookPath('410', () => ({ status: 410, body: 'gone' }));
    const { config } = await createConfig({
      workflowId,
      name: 'Gone receiver',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    await waitForHits(path);
    await waitForStatus(deliveryId, 'failed');
    const logs = await logsOf(deliveryId);
    assert.equal(logs.length, 1);
    assert.equal(logs[0].outcome, 'failed');
    assert.equal(logs[0].httpStatus, 410);

    const res = await stack.api('GET', `/api/alerts/config/${workflowId}`);
    assert.equal(res.status, 200);
    const shown = res.body.configs.find((c: { id: string }) => c.id === config.id);
    assert.ok(shown, 'the config is still listed');
    assert.equal(shown.enabled, false);
    assert.equal(typeof shown.disabledReason, 'string');
    assert.match(shown.disabledReason, /410/);
    assert.equal(shown.secret, undefined);

    const later = await postEvent(makeEvent('run.failed', workflowId));
    assert.deepEqual(later.deliveries, []);
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'nothing sent after the config was disabled');
  });

  it('times out a receiver that never answers and retries it', async function () {
    const workflowId = `wf_hang_${uid()}`;
    const path = hookPath('hang', () => 'hang');
    await createConfig({
      workflowId,
      name: 'Silent receiver',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 500 },
      retry: { maxAttempts: 2, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 200, maxDurationMs: 60_000 },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    const requests = await waitForHits(path, 2);
    assert.equal(requests[1].headers['webhook-id'], deliveryId);
    const logs = await waitForLogs(deliveryId, 2);
    assert.deepEqual(logs.map((l) => [l.attempt, l.outcome, l.httpStatus]), [[1, 'retrying', null], [2, 'failed', null]]);
    for (const log of logs) assert.match(log.error ?? '', /timed out/);
    await waitForStatus(deliveryId, 'failed');
    assert.equal(hits(path).length, 2, 'maxAttempts 2: two requests');
  });

  // ------------------------------------------------------------ signatures

  it('signs alerts so that standardwebhooks verifies them with the secret and not with another', async function () {
    const workflowId = `wf_sig_${uid()}`;
    const path = hookPath('sig');
    const { secret } = await createConfig({
      workflowId,
      name: 'Signed',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const event = makeEvent('run.failed', workflowId);
    const deliveryId = await postOneDelivery(event, 'failure');
    const [req] = await waitForHits(path);
    const headers = signatureHeadersOf(req);

    assert.equal(headers['webhook-id'], deliveryId);
    assert.ok(!deliveryId.includes('.'), `webhook-id ${deliveryId} has no "."`);
    assert.match(headers['webhook-timestamp'], /^\d+$/);
    assert.ok(Math.abs(Number(headers['webhook-timestamp']) - req.at / 1000) < 10, 'timestamp is the time of the attempt');
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/, 'one v1 signature');

    const payload = new Webhook(secret).verify(req.body, headers) as { event: { id: string } };
    assert.equal(payload.event.id, event.id);
    assert.throws(() => new Webhook(newSecret()).verify(req.body, headers), /signature/i);
    assert.throws(() => new Webhook(secret).verify(req.body.replace('HTTP 500', 'HTTP 501'), headers), /signature/i);
  });

  it('signs with both the old and the new secret after a rotation', async function () {
    const workflowId = `wf_rotate_${uid()}`;
    const path = hookPath('rotate');
    const { config, secret: oldSecret } = await createConfig({
      workflowId,
      name: 'Rotating',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
    });
    const rotated = await stack.api('POST', `/api/alerts/config/by-id/${encodeURIComponent(config.id)}/rotate-secret`);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const newSecretValue: string = rotated.body.secret;
    assert.match(newSecretValue, /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/);
    assert.notEqual(newSecretValue, oldSecret);

    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    const [req] = await waitForHits(path);
    const headers = signatureHeadersOf(req);
    assert.equal(headers['webhook-id'], deliveryId);
    const signatures = headers['webhook-signature'].split(' ');
    assert.equal(signatures.length, 2, `two signatures: ${headers['webhook-signature']}`);
    for (const s of signatures) assert.match(s, /^v1,[A-Za-z0-9+/]+=*$/);
    assert.notEqual(signatures[0], signatures[1]);
    new Webhook(oldSecret).verify(req.body, headers);
    new Webhook(newSecretValue).verify(req.body, headers);
    assert.throws(() => new Webhook(newSecret()).verify(req.body, headers), /signature/i);
  });

  // ------------------------------------------------------------ template failures

  it('fails a delivery whose template fails at render time, logs why, and sends nothing', async function () {
    const workflowId = `wf_tpl_${uid()}`;
    const path = hookPath('tpl');
    await createConfig({
      workflowId,
      name: 'Runaway template',
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
      // valid Liquid (accepted at save time) that blows the render memory limit
      payload: { template: { text: '{% for i in (1..100000000) %}x{% endfor %}' } },
    });
    const deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
    const delivery = await waitForStatus(deliveryId, 'failed');
    const logs = await logsOf(deliveryId);
    assert.equal(logs.length, 1, JSON.stringify(logs));
    assert.equal(logs[0].attempt, 1);
    assert.equal(logs[0].outcome, 'failed');
    assert.equal(logs[0].httpStatus, null);
    assert.match(logs[0].error ?? '', /template/);
    assert.match(logs[0].error ?? '', /payload\.template/);
    assert.equal(delivery.attempts.length, 1);
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 0, 'nothing sent');
  });

  it('delivers an alert whose renderers got no CPU past their deadline (a machine too busy): rendered again, not failed as a template error', async function () {
    this.timeout(60_000);
    const workflowId = `wf_starved_${uid()}`;
    const path = hookPath('starved', () => ({ status: 200 }));
    await createConfig({ workflowId, name: 'Starved', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${path}?run={{ run.id }}`, headers: {}, timeoutMs: 5_000 } });
    // every renderer running and then held (SIGSTOP): they use no CPU while the deadline of the alert's render passes, as on a machine whose cores are all taken
    await Promise.all(Array.from({ length: SANDBOX_LIMITS.processes * 2 }, () => renderAlertSandboxed({ webhook: { url: 'https://warm.invalid/', headers: {} }, payload: { template: null } } as never, {} as never).catch(() => undefined)));
    const held = templateRendererPids();
    assert.equal(held.length, SANDBOX_LIMITS.processes);
    for (const pid of held) process.kill(pid, 'SIGSTOP');
    let deliveryId: string;
    try {
      deliveryId = await postOneDelivery(makeEvent('run.failed', workflowId), 'failure');
      // the first render passes its deadline on a held renderer (the renderer is stopped for good), and its step is retried
      await sleep(SANDBOX_LIMITS.deadlineMs + 500);
    } finally {
      for (const pid of held) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* stopped for good at its deadline */
        }
      }
    }
    const [hit] = await waitForHits(path, 1, 30_000);
    assert.match(hit.path, /\?run=run_/);
    const delivery = await waitForStatus(deliveryId, 'delivered');
    const logs = await logsOf(deliveryId);
    assert.deepEqual(logs.map((l) => [l.attempt, l.outcome]), [[1, 'delivered']], 'one attempt, delivered: the renders that were cut short were no attempt and no failure');
    assert.equal(delivery.status, 'delivered');
    await sleep(QUIET_MS);
    assert.equal(hits(path).length, 1, 'sent once');
  });

  it('fails only its own delivery when a template would exhaust memory, and the service keeps delivering', async function () {
    this.timeout(60_000);
    const workflowId = `wf_bomb_${uid()}`;
    const bombPath = hookPath('bomb');
    const okPath = hookPath('bomb-neighbour', () => ({ status: 200 }));
    // the template that aborted Node with "Fatal JavaScript invalid size error" (capture was not counted)
    const bomb = '{% capture s %}xxxxxxxxxxxxxxxx{% endcapture %}{% for i in (1..24) %}{% capture s %}{{s}}{{s}}{% endcapture %}{% endfor %}{{ s | replace: "x", "yy" | size }}';
    const preview = await stack.api('POST', '/api/alerts/preview', {
      config: { workflowId, name: 'Bomb', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${bombPath}` }, payload: { template: { n: bomb } } },
    });
    assert.equal(preview.status, 400, JSON.stringify(preview.body));
    assert.match(preview.body.error.message, /config\.payload\.template: .*memory/);
    await createConfig({ workflowId, name: 'Bomb', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${bombPath}`, headers: {}, timeoutMs: 5_000 }, payload: { template: { n: bomb } } });
    await createConfig({ workflowId, name: 'Neighbour', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${okPath}`, headers: {}, timeoutMs: 5_000 } });
    const res = await stack.api('POST', '/api/events', makeEvent('run.failed', workflowId));
    assert.equal(res.status, 202);
    assert.equal(res.body.deliveries.length, 2);
    await waitForHits(okPath, 1);
    const statuses = await Promise.all(res.body.deliveries.map((d: { deliveryId: string }) => eventually(`delivery ${d.deliveryId} finished`, async () => {
      const got = await stack.api('GET', `/api/alerts/deliveries/${d.deliveryId}`);
      return got.status === 200 && ['delivered', 'failed'].includes(got.body.status) && got.body;
    })));
    const failed = statuses.find((d: { status: string }) => d.status === 'failed');
    assert.ok(failed, JSON.stringify(statuses.map((d: { status: string }) => d.status)));
    assert.equal(statuses.filter((d: { status: string }) => d.status === 'delivered').length, 1);
    const logs = await logsOf(failed.deliveryId);
    assert.equal(logs.length, 1, JSON.stringify(logs));
    assert.equal(logs[0].outcome, 'failed');
    assert.match(logs[0].error ?? '', /template error in payload\.template: .*memory/);
    await sleep(QUIET_MS);
    assert.equal(hits(bombPath).length, 0, 'nothing sent for the bomb');
    // and the service is still up: a later alert is delivered
    const later = await stack.api('POST', '/api/events', makeEvent('run.failed', workflowId));
    assert.equal(later.status, 202);
    await waitForHits(okPath, 2);
  });
});
