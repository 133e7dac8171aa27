import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { alertSearchAttributes } from '../dispatch/start-delivery';
import { publishExecutionEvent } from '../index';
import type { AlertDeliveryInput } from '../workflows/types';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * Tenant isolation where the other test files do not already check it. Covered elsewhere: config
 * list/get/update/delete, rotate-secret and test alerts (api-configs.test.ts, "another project's
 * token"), logs, one recorded delivery, redeliver and rotate-secret (endpoints.test.ts), the audit
 * log (audit.test.ts), event matching through Temporal (publish.test.ts). Here: the deliveries list,
 * event matching over HTTP, a delivery still starting (read from Temporal, not the store), and two
 * projects whose event ids used to share one ProcessExecutionEvent workflow id.
 */

const uid = () => randomBytes(4).toString('hex');

describe('tenant isolation', function () {
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(() => receiver?.close());

  async function configIn(token: string, workflowId: string, path: string): Promise<string> {
    const url = receiver.on(path, () => ({ status: 200 }));
    const res = await stack.api('POST', '/api/alerts/config', { config: { workflowId, name: path, conditions: [{ type: 'failure' }], webhook: { url } } }, token);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.config.id;
  }

  const failed = (workflowId: string, id: string) => ({ id, type: 'run.failed', workflowId, runId: `run_${uid()}` });

  it("matches an event over HTTP against the sending project's configs only, and the same event id in each project alerts each once", async function () {
    this.timeout(30_000);
    const workflowId = `wf_iso_${uid()}`;
    const otherToken = await stack.tokenFor(`prj_iso_${uid()}`);
    const mine = await configIn(stack.token, workflowId, `/iso-mine-${workflowId}`);
    const theirs = await configIn(otherToken, workflowId, `/iso-theirs-${workflowId}`);
    const eventId = `evt_${uid()}`;

    const sentByThem = await stack.api('POST', '/api/events', failed(workflowId, eventId), otherToken);
    assert.equal(sentByThem.status, 202);
    assert.deepEqual(sentByThem.body.deliveries.map((d: { configId: string }) => d.configId), [theirs]);
    const sentByMe = await stack.api('POST', '/api/events', failed(workflowId, eventId));
    assert.deepEqual(sentByMe.body.deliveries.map((d: { configId: string; duplicate: boolean }) => [d.configId, d.duplicate]), [[mine, false]]);

    await receiver.waitFor(`/iso-theirs-${workflowId}`, 1);
    await receiver.waitFor(`/iso-mine-${workflowId}`, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(receiver.at(`/iso-theirs-${workflowId}`).length, 1);
    assert.equal(receiver.at(`/iso-mine-${workflowId}`).length, 1);

    // GET /api/alerts/deliveries: each project lists its own delivery only, even when filtering by the other's config
    const myList = await stack.api('GET', '/api/alerts/deliveries?limit=200');
    const theirList = await stack.api('GET', '/api/alerts/deliveries?limit=200', undefined, otherToken);
    assert.ok(myList.body.deliveries.some((d: { configId: string }) => d.configId === mine));
    assert.ok(!myList.body.deliveries.some((d: { configId: string }) => d.configId === theirs), "my list holds none of theirs");
    assert.deepEqual(theirList.body.deliveries.map((d: { configId: string }) => d.configId), [theirs]);
    assert.deepEqual((await stack.api('GET', `/api/alerts/deliveries?configId=${mine}`, undefined, otherToken)).body.deliveries, []);
  });

  it('shows a delivery that is still starting (in Temporal, not yet in the store) to its own project only', async () => {
    const projectId = `prj_iso_start_${uid()}`;
    const token = await stack.tokenFor(projectId);
    const deliveryId = `dlv-iso-starting-${uid()}`;
    const input: AlertDeliveryInput = {
      deliveryId,
      projectId,
      configId: `cfg_iso_${uid()}`,
      condition: 'failure',
      event: { id: `evt_${uid()}`, type: 'run.failed', workflowId: `wf_iso_${uid()}`, runId: 'run_1', occurredAt: new Date().toISOString() },
    };
    // a task queue no worker polls: the workflow stays "starting" and never writes its row
    const handle = await stack.service.temporal.client.workflow.start('AlertDelivery', {
      workflowId: deliveryId,
      taskQueue: `nobody-polls-${uid()}`,
      args: [input],
      typedSearchAttributes: alertSearchAttributes(input, 'in_progress'),
    });
    try {
      const owner = await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`, undefined, token);
      assert.equal(owner.status, 200, JSON.stringify(owner.body));
      assert.equal(owner.body.configId, input.configId);
      assert.equal(owner.body.status, 'in_progress');

      const stranger = await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`);
      assert.equal(stranger.status, 404, JSON.stringify(stranger.body));
      assert.equal(stranger.body.error.code, 'not_found');
      assert.equal((await stack.api('POST', `/api/alerts/deliveries/${deliveryId}/redeliver`)).status, 404);
    } finally {
      await handle.terminate('test over');
    }
  });

  it('processes the same event id of two projects whose ids differ only in where a "-" falls (one ProcessExecutionEvent workflow id each)', async function () {
    this.timeout(30_000);
    const base = `prj_iso_${uid()}`;
    const [projectA, eventA] = [`${base}-x`, 'e1'];
    const [projectB, eventB] = [base, 'x-e1'];
    const workflowId = `wf_iso_pub_${uid()}`;
    const configA = await configIn(await stack.tokenFor(projectA), workflowId, `/iso-a-${workflowId}`);
    const configB = await configIn(await stack.tokenFor(projectB), workflowId, `/iso-b-${workflowId}`);
    const client = stack.service.temporal.client;
    const taskQueue = stack.service.env.TEMPORAL_TASK_QUEUE;

    const a = await publishExecutionEvent(client, { id: eventA, type: 'run.failed', workflowId, runId: 'run_1' }, { projectId: projectA, taskQueue });
    const b = await publishExecutionEvent(client, { id: eventB, type: 'run.failed', workflowId, runId: 'run_1' }, { projectId: projectB, taskQueue });
    assert.deepEqual(a.map((d) => d.configId), [configA]);
    assert.deepEqual(b.map((d) => d.configId), [configB], "project B's event is not taken for a duplicate of project A's");
    await receiver.waitFor(`/iso-a-${workflowId}`, 1);
    await receiver.waitFor(`/iso-b-${workflowId}`, 1);
  });
});
