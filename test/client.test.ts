import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ZodError } from 'zod';
import { MAX_EVENTS_PER_REQUEST } from '../api/schemas';
import { AlertsApiError, AlertsUnavailableError, createAlertsClient, type AlertsClientOptions, type ExecutionEvent } from '../index';
import { FaultyFront, type FrontScript } from './support/faulty-front';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * createAlertsClient against the real service (the shared stack's API), reached through a faulty
 * front that answers 503/429/502/504, drops connections, loses answers or hangs before it forwards.
 * The alerts land on a real receiver: whatever the front does, each arrives exactly once.
 * (The Temporal way, publishExecutionEvent, is test/publish.test.ts.)
 */
const uid = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('createAlertsClient (MeshHook over HTTP, through a faulty front)', function () {
  this.timeout(30_000);
  let stack: TestStack;
  let receiver: Receiver;
  const fronts: FaultyFront[] = [];

  before(async function () {
    this.timeout(120_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });
  after(async () => {
    await Promise.all(fronts.map((f) => f.close()));
    await receiver.close();
  });

  /** a failure config of a new workflow, its receiver path, and a failed-run event for it */
  async function failureConfig() {
    const workflowId = `wf_client_${uid()}`;
    const path = `/${workflowId}`;
    const url = receiver.on(path, () => ({ status: 200 }));
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'client test', conditions: [{ type: 'failure' }], webhook: { url } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const event = (extra: Partial<ExecutionEvent> = {}): ExecutionEvent => ({ id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'boom' }, ...extra });
    return { workflowId, path, configId: created.body.config.id as string, event };
  }

  async function front(script: FrontScript): Promise<FaultyFront> {
    const f = await FaultyFront.start(stack.apiUrl, script);
    fronts.push(f);
    return f;
  }

  const clientVia = (f: FaultyFront, options: Partial<AlertsClientOptions> = {}) =>
    createAlertsClient({ url: f.url, token: stack.token, initialDelayMs: 20, maxDelayMs: 2_000, timeoutMs: 3_000, ...options });

  /** the alert on `path` arrived, and no second one follows */
  async function deliveredOnce(path: string) {
    const [webhook] = await receiver.waitFor(path, 1);
    await sleep(1_000);
    assert.equal(receiver.at(path).length, 1, 'alerts received');
    return webhook;
  }

  const gaps = (f: FaultyFront) => f.requests.slice(1).map((r, i) => r.at - f.requests[i].at);

  it('resends after 503s, waiting as their Retry-After says (seconds, then an HTTP date), and the alert arrives once', async () => {
    const { path, configId, event } = await failureConfig();
    const f = await front((n) =>
      n === 1 ? { status: 503, headers: { 'retry-after': '1' } } : n === 2 ? { status: 503, headers: { 'retry-after': new Date(Date.now() + 2_000).toUTCString() } } : 'forward',
    );

    const answer = await clientVia(f, { maxDelayMs: 5_000 }).publish(event());

    assert.equal(answer.accepted, 1);
    assert.equal(answer.deliveries.length, 1);
    assert.equal(answer.deliveries[0].configId, configId);
    assert.equal(answer.deliveries[0].condition, 'failure');
    assert.equal(answer.deliveries[0].duplicate, false);
    assert.equal(f.requests.length, 3);
    assert.equal(f.forwarded, 1);
    for (const gap of gaps(f)) assert.ok(gap >= 900, `waited ${gap} ms, Retry-After asked for at least 1 s`);
    // the client filled occurredAt once: every resend is the same bytes
    assert.ok(JSON.parse(f.requests[0].body).occurredAt);
    assert.deepEqual(new Set(f.requests.map((r) => r.body)).size, 1);
    const webhook = await deliveredOnce(path);
    assert.equal(webhook.headers['webhook-id'], answer.deliveries[0].deliveryId);
  });

  it('waits no longer than maxDelayMs when a 429 asks for an hour', async () => {
    const { path, event } = await failureConfig();
    const f = await front((n) => (n === 1 ? { status: 429, headers: { 'retry-after': '3600' } } : 'forward'));

    const answer = await clientVia(f, { maxDelayMs: 300 }).publish(event());

    assert.equal(answer.deliveries.length, 1);
    const [gap] = gaps(f);
    assert.ok(gap >= 250 && gap < 2_000, `waited ${gap} ms`);
    await deliveredOnce(path);
  });

  it('resends a request whose connection dropped before it reached the service, and the alert arrives once', async () => {
    const { path, event } = await failureConfig();
    const f = await front((n) => (n === 1 ? 'drop' : 'forward'));

    const answer = await clientVia(f).publish(event());

    assert.equal(answer.deliveries.length, 1);
    assert.equal(answer.deliveries[0].duplicate, false);
    assert.equal(f.requests.length, 2);
    assert.equal(f.forwarded, 1);
    const webhook = await deliveredOnce(path);
    assert.equal(webhook.headers['webhook-id'], answer.deliveries[0].deliveryId);
  });

  it('resends when the answer was lost after the service took the event: the resend is a duplicate and the alert arrives once', async () => {
    const { path, event } = await failureConfig();
    const f = await front((n) => (n === 1 ? 'drop-answer' : 'forward'));

    const answer = await clientVia(f).publish(event());

    assert.equal(f.forwarded, 2, 'the service saw the event twice');
    assert.equal(answer.deliveries.length, 1);
    assert.equal(answer.deliveries[0].duplicate, true);
    const webhook = await deliveredOnce(path);
    assert.equal(webhook.headers['webhook-id'], answer.deliveries[0].deliveryId);
  });

  it('resends after a try that got no answer within timeoutMs', async () => {
    const { path, event } = await failureConfig();
    const f = await front((n) => (n === 1 ? 'hang' : 'forward'));

    const started = Date.now();
    const answer = await clientVia(f, { timeoutMs: 300 }).publish(event());

    assert.equal(answer.deliveries.length, 1);
    assert.equal(f.requests.length, 2);
    assert.ok(Date.now() - started < 3_000);
    await deliveredOnce(path);
  });

  it("resends a proxy's 502 and 504", async () => {
    const { path, event } = await failureConfig();
    const f = await front((n) => (n === 1 ? { status: 502 } : n === 2 ? { status: 504 } : 'forward'));

    const answer = await clientVia(f).publish(event());

    assert.equal(answer.deliveries.length, 1);
    assert.equal(f.requests.length, 3);
    await deliveredOnce(path);
  });

  it('gives up after maxAttempts with an AlertsUnavailableError naming the attempts and the last reason', async () => {
    const { event } = await failureConfig();
    const f = await front(() => ({ status: 503, body: JSON.stringify({ error: { code: 'unavailable', message: 'store restarting' } }) }));

    await assert.rejects(clientVia(f, { maxAttempts: 3 }).publish(event()), (err: unknown) => {
      assert.ok(err instanceof AlertsUnavailableError, String(err));
      assert.equal(err.attempts, 3);
      assert.equal(err.lastStatus, 503);
      assert.match(err.message, /after 3 attempts; last: 503 unavailable: store restarting/);
      return true;
    });
    assert.equal(f.requests.length, 3);
  });

  it('does not resend an event the API refuses with 400 (a NUL character the schema lets through), and throws its code and message', async () => {
    const { path, event } = await failureConfig();
    const f = await front(() => 'forward');

    await assert.rejects(clientVia(f).publish(event({ data: { note: 'a\u0000b' } })), (err: unknown) => {
      assert.ok(err instanceof AlertsApiError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.code, 'invalid_request');
      assert.match(err.message, /NUL/);
      return true;
    });
    assert.equal(f.requests.length, 1);
    await sleep(500);
    assert.equal(receiver.at(path).length, 0);
  });

  it('does not resend a 401 (a wrong token)', async () => {
    const { event } = await failureConfig();
    const f = await front(() => 'forward');

    await assert.rejects(clientVia(f, { token: 'not-a-token' }).publish(event()), (err: unknown) => {
      assert.ok(err instanceof AlertsApiError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.code, 'unauthorized');
      return true;
    });
    assert.equal(f.requests.length, 1);
  });

  it('throws the ZodError of an invalid event and sends nothing, not even the valid events beside it', async () => {
    const { event } = await failureConfig();
    const f = await front(() => 'forward');
    const client = clientVia(f);

    await assert.rejects(client.publish({ ...event(), colour: 'red' } as never), ZodError);
    await assert.rejects(client.publish([event(), { ...event(), type: 'run.exploded' } as never]), ZodError);
    assert.equal(f.requests.length, 0);
  });

  it(`splits a list longer than ${MAX_EVENTS_PER_REQUEST} events into batches of at most that many, and sums their answers`, async () => {
    const { path, configId, event } = await failureConfig();
    const f = await front(() => 'forward');
    // two failures among runs that succeeded (which the failure config ignores)
    const events = Array.from({ length: 2 * MAX_EVENTS_PER_REQUEST + 5 }, (_, i) => event(i === 7 || i === 150 ? {} : { type: 'run.succeeded', error: undefined }));

    const answer = await clientVia(f).publish(events);

    assert.deepEqual(
      f.requests.map((r) => JSON.parse(r.body).events.length),
      [MAX_EVENTS_PER_REQUEST, MAX_EVENTS_PER_REQUEST, 5],
    );
    assert.deepEqual(f.requests.flatMap((r) => JSON.parse(r.body).events.map((e: ExecutionEvent) => e.id)), events.map((e) => e.id));
    assert.equal(answer.accepted, events.length);
    assert.equal(answer.deliveries.length, 2);
    assert.ok(answer.deliveries.every((d) => d.configId === configId && d.condition === 'failure'));
    await receiver.waitFor(path, 2);
    await sleep(1_000);
    assert.equal(receiver.at(path).length, 2);
  });
});
