import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The delivery timeline of GET /api/alerts/deliveries/{id}: Temporal's history, with the attempts
 * made inside a workflow task told by their log rows, each where it happened. Real deliveries on the
 * shared stack; each test has its own workflow id and receiver path.
 */
const uid = () => randomBytes(4).toString('hex');
const FAST_RETRY = { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };

interface Entry {
  event: string;
  attempt?: number;
  detail?: string;
}

describe('the delivery timeline', function () {
  this.timeout(60_000);
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(async () => receiver?.close());

  async function createConfig(workflowId: string, path: string, extra: object): Promise<void> {
    const res = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'timeline', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${path}` }, ...extra },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }

  async function send(event: object): Promise<string> {
    const res = await stack.api('POST', '/api/events', { id: `evt_${uid()}`, runId: `run_${uid()}`, ...event });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.deliveries[0].deliveryId;
  }

  /** The delivery once it has finished and its history shows the workflow closed. */
  async function finished(deliveryId: string): Promise<{ status: string; timeline: Entry[] }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      const timeline: Entry[] = res.body?.timeline ?? [];
      if (res.status === 200 && ['delivered', 'failed'].includes(res.body.status) && timeline.some((e) => e.event === 'delivery finished')) return res.body;
      if (Date.now() > deadline) throw new Error(`delivery ${deliveryId} did not finish: ${JSON.stringify(res.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The story after a first attempt answered 503: the backoff, then the second attempt delivered. */
  const RETRIED_ONCE = [
    'webhook attempt failed #1',
    'waiting before the next attempt',
    'backoff over',
    'webhook POST scheduled',
    'webhook POST started #2',
    'webhook delivered',
    'delivery finished',
  ];
  const shape = (timeline: Entry[]) => timeline.map((e) => (e.attempt ? `${e.event} #${e.attempt}` : e.event));

  it('tells a first attempt that was also the last with the whole message, between the start and the end', async () => {
    const workflowId = `wf_tl_last_${uid()}`;
    const path = `/tl-last-${workflowId}`;
    receiver.on(path, () => ({ status: 503 }));
    await createConfig(workflowId, path, { retry: { ...FAST_RETRY, maxAttempts: 1 } });
    const delivery = await finished(await send({ type: 'run.failed', workflowId }));
    assert.equal(delivery.status, 'failed');
    assert.deepEqual(shape(delivery.timeline), ['delivery started', 'webhook delivery failed #1', 'delivery finished']);
    assert.equal(delivery.timeline[1].detail, 'HTTP 503; giving up after 1 attempt');
  });

  it('tells a delay watch that fired and was retried in order: the watch, the first attempt, the backoff, the retried attempt', async () => {
    const workflowId = `wf_tl_delay_${uid()}`;
    const path = `/tl-delay-${workflowId}`;
    receiver.on(path, (n) => ({ status: n === 1 ? 503 : 200 }));
    await createConfig(workflowId, path, { conditions: [{ type: 'delay', thresholdSeconds: 1 }], retry: FAST_RETRY });
    const delivery = await finished(await send({ type: 'run.started', workflowId }));
    assert.equal(delivery.status, 'delivered');
    assert.deepEqual(shape(delivery.timeline), [
      'delivery started',
      'delay timer started',
      'delay timer fired: run still not finished',
      ...RETRIED_ONCE,
    ]);
    assert.match(delivery.timeline[3].detail ?? '', /^HTTP 503; retrying in \d+ ms$/);
  });

  it("tells a redelivered delay alert's first timer as a backoff: a redelivery has no watch", async () => {
    const workflowId = `wf_tl_redeliver_${uid()}`;
    const path = `/tl-redeliver-${workflowId}`;
    // the delay alert lands; its redelivery is answered 503 once, then 200
    receiver.on(path, (n) => ({ status: n === 2 ? 503 : 200 }));
    await createConfig(workflowId, path, { conditions: [{ type: 'delay', thresholdSeconds: 1 }], retry: FAST_RETRY });
    const original = await finished(await send({ type: 'run.started', workflowId }));
    assert.equal(original.status, 'delivered');
    const redelivered = await stack.api('POST', `/api/alerts/deliveries/${encodeURIComponent((original as unknown as { deliveryId: string }).deliveryId)}/redeliver`);
    assert.equal(redelivered.status, 202, JSON.stringify(redelivered.body));
    const delivery = await finished(redelivered.body.deliveryId);
    assert.equal(delivery.status, 'delivered');
    assert.deepEqual(shape(delivery.timeline), [
      'delivery started',
      ...RETRIED_ONCE,
    ]);
  });
});
