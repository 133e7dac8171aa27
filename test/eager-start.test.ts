import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { createActivities } from '../activities';
import { createApp } from '../api/app';
import { alertsDataConverter } from '../lib/codec';
import { loadEnv } from '../lib/env';
import { serviceDeps } from '../runtime/deps';
import { createApiServer } from '../runtime/http-server';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * ALERTS_EAGER_WORKFLOW_START reaches the call that starts a delivery, on every way in: POST
 * /api/events and MeshHook's own Temporal way in (the processExecutionEvent activity). The
 * environment is parsed by lib/env.ts and the bag built by runtime/deps.ts's serviceDeps, as boot
 * does; the start is seen by a client interceptor on a real Temporal client, and the alert it starts
 * is delivered by the test stack's worker.
 */
const uid = () => randomBytes(4).toString('hex');

describe('the eager workflow start setting', function () {
  this.timeout(60_000);
  let stack: TestStack;
  let receiver: Receiver;
  const starts: { workflowId: string; requestEagerStart: boolean | undefined }[] = [];
  let client: Client;
  const servers: http.Server[] = [];

  before(async () => {
    stack = await useStack();
    receiver = await Receiver.start();
    const recordStart: WorkflowClientInterceptor = {
      async start(input, next) {
        starts.push({ workflowId: input.options.workflowId, requestEagerStart: input.options.requestEagerStart });
        return next(input);
      },
    };
    client = new Client({
      connection: stack.service.temporal.connection,
      namespace: stack.service.temporal.namespace,
      dataConverter: alertsDataConverter(stack.service.keyring),
      interceptors: { workflow: [recordStart] },
    });
  });

  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    await receiver?.close();
  });

  /** An API built as boot builds it, from this environment, on the stack's store and Temporal. */
  async function apiWith(environment: Record<string, string | undefined>) {
    const env = loadEnv({ ...process.env, DATA_DIR: stack.dataDir, ALERTS_EGRESS_ALLOW: '127.0.0.1', ALERTS_EAGER_WORKFLOW_START: undefined, ...environment });
    const deps = serviceDeps(env, { db: stack.service.db, keyring: stack.service.keyring, temporal: { ...stack.service.temporal, client } });
    const server = createApiServer(createApp(deps, { rateLimitPerMinute: 0 }).callback());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { deps, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  async function configFor(workflowId: string, path: string) {
    receiver.on(path, () => ({ status: 200 }));
    const res = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId, name: 'eager start', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${path}` } },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }

  async function postEvent(url: string, workflowId: string): Promise<string> {
    const res = await fetch(`${url}/api/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}` }),
    });
    const body = (await res.json()) as { deliveries: { deliveryId: string }[] };
    assert.equal(res.status, 202, JSON.stringify(body));
    assert.equal(body.deliveries.length, 1);
    return body.deliveries[0].deliveryId;
  }

  const startOf = (deliveryId: string) => starts.filter((s) => s.workflowId === deliveryId);

  it('ALERTS_EAGER_WORKFLOW_START=false: POST /api/events starts the delivery without asking for an eager start, and it is delivered', async () => {
    const { url } = await apiWith({ ALERTS_EAGER_WORKFLOW_START: 'false' });
    const workflowId = `wf_eager_off_${uid()}`;
    await configFor(workflowId, `/eager-off-${workflowId}`);
    const deliveryId = await postEvent(url, workflowId);
    assert.deepEqual(startOf(deliveryId), [{ workflowId: deliveryId, requestEagerStart: false }]);
    assert.equal((await receiver.waitFor(`/eager-off-${workflowId}`)).length, 1);
  });

  it('by default POST /api/events asks for an eager start', async () => {
    const { url } = await apiWith({});
    const workflowId = `wf_eager_on_${uid()}`;
    await configFor(workflowId, `/eager-on-${workflowId}`);
    const deliveryId = await postEvent(url, workflowId);
    assert.deepEqual(startOf(deliveryId), [{ workflowId: deliveryId, requestEagerStart: true }]);
    assert.equal((await receiver.waitFor(`/eager-on-${workflowId}`)).length, 1);
  });

  it("ALERTS_EAGER_WORKFLOW_START=false reaches the start made by MeshHook's Temporal way in (processExecutionEvent) too", async () => {
    const { deps } = await apiWith({ ALERTS_EAGER_WORKFLOW_START: 'false' });
    const workflowId = `wf_eager_wf_${uid()}`;
    await configFor(workflowId, `/eager-wf-${workflowId}`);
    const [started] = await createActivities(deps).processExecutionEvent({
      projectId: 'default',
      event: { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}` },
    });
    assert.deepEqual(startOf(started.deliveryId), [{ workflowId: started.deliveryId, requestEagerStart: false }]);
    assert.equal((await receiver.waitFor(`/eager-wf-${workflowId}`)).length, 1);
  });
});
