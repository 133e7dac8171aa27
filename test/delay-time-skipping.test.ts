import assert from 'node:assert/strict';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema } from '../lib/schemas';
import { ALL_SEARCH_ATTRIBUTES } from '../lib/search-attributes';
import { temporal } from '@temporalio/proto';
import { resolveTimeSkippingServer } from '../runtime/temporal-cli';
import { saveConfig } from '../store/configs';
import type { AlertDeliveryInput } from '../workflows/types';
import { Receiver } from './support/receiver';
import { openStore, type TestStore } from './support/stores';

/**
 * A five-minute delay watch, proved on Temporal's time-skipping test server:
 * the workflow's durable timer is the real one, only the clock jumps.
 */
describe('delay watch of five minutes (time-skipping test server)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let store: TestStore;
  let receiver: Receiver;
  let worker: Worker;
  let running: Promise<void>;
  const keyring = parseKeyring(newKeySpec('k1'));
  const taskQueue = 'time-skipping';
  let configId: string;

  before(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: await resolveTimeSkippingServer() } } });
    // the workflow keeps its AlertStatus search attribute current: register ours as the dev server does
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((key) => [key.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
    store = await openStore('pglite');
    receiver = await Receiver.start();
    const saved = await saveConfig(
      store.db,
      keyring,
      'default',
      alertConfigInputSchema.parse({
        workflowId: 'wf_slow',
        name: 'slow runs',
        conditions: [{ type: 'delay', thresholdSeconds: 300 }],
        webhook: { url: receiver.on('/slow', () => ({ status: 200 })) },
        payload: { template: { text: '{{ workflow.id }} {{ condition }}', minutes: '{{ run.durationMs | divided_by: 60000 | floor }}' } },
      }),
    );
    configId = saved.config.id;
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts'),
      activities: createActivities({ db: store.db, keyring, client: env.client, taskQueue, egress: parseEgressPolicy({ allow: '127.0.0.1' }) }),
    });
    running = worker.run();
  });

  after(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running?.catch(() => undefined);
    await env?.teardown();
    await store?.close();
    await receiver?.close();
  });

  const watch = (runId: string): AlertDeliveryInput => ({
    deliveryId: `dlv-${configId}-${runId}-delay`,
    projectId: 'default',
    configId,
    condition: 'delay',
    delaySeconds: 300,
    event: { id: `evt_${runId}`, type: 'run.started', workflowId: 'wf_slow', runId, occurredAt: new Date().toISOString() },
  });

  it('sends the delay alert when the run is still going after five minutes, without waiting five minutes', async () => {
    const input = watch('run_never_ends');
    const startedAt = Date.now();
    const handle = await env.client.workflow.start('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    const result = await handle.result();
    const realMs = Date.now() - startedAt;

    assert.equal(result.status, 'delivered');
    const [webhook] = receiver.at('/slow');
    assert.ok(webhook, 'the delay alert arrived');
    const body = JSON.parse(webhook.body);
    assert.equal(body.text, 'wf_slow delay');
    assert.ok(body.minutes >= 5, `the run had been going ${body.minutes} minutes by the alert's clock`);
    assert.ok(realMs < 60_000, `took ${realMs} ms of real time`);
    const history = await handle.fetchHistory();
    const timer = history.events?.find((e) => e.timerStartedEventAttributes)?.timerStartedEventAttributes;
    // the timer runs for what is left of the 300 s, counted from the workflow's start
    const timerSeconds = Number(timer?.startToFireTimeout?.seconds ?? 0) + (timer?.startToFireTimeout?.nanos ?? 0) / 1e9;
    assert.ok(timerSeconds > 299 && timerSeconds <= 300, `timer of ${timerSeconds} s`);
  });

  it('stays quiet when the run finishes at 4 min 59 s', async () => {
    const before = receiver.at('/slow').length;
    const input = watch('run_finishes_in_time');
    const handle = await env.client.workflow.start('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    await env.sleep('299s');
    await handle.signal('runFinished', { eventId: 'evt_done', type: 'run.succeeded' });
    const result = await handle.result();
    assert.equal(result.status, 'suppressed');
    assert.equal(receiver.at('/slow').length, before);
    const [row] = await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [input.deliveryId]);
    assert.equal(row.status, 'suppressed');
  });
});
