import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { publishExecutionEvent } from '../index';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

describe('publishExecutionEvent (MeshHook through its own Temporal client)', () => {
  let stack: TestStack;
  let receiver: Receiver;
  before(async function () {
    this.timeout(120_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });
  after(() => receiver.close());

  it('runs the same matching as POST /api/events and the webhook arrives once, even when published twice', async () => {
    const workflowId = `wf_pub_${randomBytes(4).toString('hex')}`;
    const url = receiver.on(`/${workflowId}`, () => ({ status: 200 }));
    const created = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'via Temporal', conditions: [{ type: 'failure' }], webhook: { url } },
    });
    assert.equal(created.status, 201);
    const client = stack.service.temporal.client;
    const event = { id: `evt_${randomBytes(4).toString('hex')}`, type: 'run.failed' as const, workflowId, runId: 'run_1', error: { message: 'boom' } };
    const options = { projectId: 'default', taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE };

    const deliveries = await publishExecutionEvent(client, event, options);
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0].configId, created.body.config.id);
    assert.equal(deliveries[0].condition, 'failure');
    const [webhook] = await receiver.waitFor(`/${workflowId}`, 1);
    assert.equal(webhook.headers['webhook-id'], deliveries[0].deliveryId);
    assert.equal(JSON.parse(webhook.body).error.message, 'boom');

    assert.deepEqual(await publishExecutionEvent(client, event, options), []);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(receiver.at(`/${workflowId}`).length, 1);
  });

  it('refuses an invalid event before anything starts', async () => {
    const client = stack.service.temporal.client;
    await assert.rejects(
      publishExecutionEvent(client, { id: 'evt_x', type: 'run.exploded', workflowId: 'wf', runId: 'r' } as never, { projectId: 'default' }),
      /type/,
    );
  });

  it("never matches another project's configs", async () => {
    const workflowId = `wf_pub_${randomBytes(4).toString('hex')}`;
    const url = receiver.on(`/${workflowId}`, () => ({ status: 200 }));
    assert.equal((await stack.api('POST', '/api/alerts/config', { config: { workflowId, name: 'a', conditions: [{ type: 'failure' }], webhook: { url } } })).status, 201);
    const event = { id: `evt_${randomBytes(4).toString('hex')}`, type: 'run.failed' as const, workflowId, runId: 'run_1' };
    const deliveries = await publishExecutionEvent(stack.service.temporal.client, event, { projectId: 'another-project', taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE });
    assert.deepEqual(deliveries, []);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(receiver.at(`/${workflowId}`).length, 0);
  });
});
