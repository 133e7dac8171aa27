import assert from 'node:assert/strict';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { parseEgressPolicy } from '../lib/egress';
import { defaultOperations } from '../runtime/deps';
import { alertConfigInputSchema } from '../lib/schemas';
import { temporal } from '@temporalio/proto';
import { saveConfig } from '../store/configs';
import type { AlertDeliveryInput } from '../workflows/types';
import { startTimeSkippingEnv } from './support/time-skipping';
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
  let workerOptions: Omit<Parameters<typeof Worker.create>[0], 'connection'>;
  const keyring = parseKeyring(newKeySpec('k1'));
  const taskQueue = 'time-skipping';
  let configId: string;

  before(async () => {
    env = await startTimeSkippingEnv();
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
    workerOptions = {
      taskQueue,
      // no sticky cache: a workflow task of a stopped worker goes straight back to the task queue
      maxCachedWorkflows: 0,
      workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts'),
      activities: createActivities({ db: store.db, keyring, egress: parseEgressPolicy({ allow: '127.0.0.1' }), temporal: { client: env.client, namespace: 'default', taskQueue, eagerStart: true }, operations: defaultOperations() }),
    };
    await resumeWorker();
  });

  after(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running?.catch(() => undefined);
    await env?.teardown();
    await store?.close();
    await receiver?.close();
  });

  // the run starts now by the test server's clock, which the earlier tests moved on
  const watch = async (runId: string): Promise<AlertDeliveryInput> => ({
    deliveryId: `dlv-${configId}-${runId}-delay`,
    projectId: 'default',
    configId,
    condition: 'delay',
    delaySeconds: 300,
    event: { id: `evt_${runId}`, type: 'run.started', workflowId: 'wf_slow', runId, occurredAt: new Date(await env.currentTimeMs()).toISOString() },
  });

  /** The worker stopped: workflow tasks wait in the queue (a worker busy, killed or restarting). */
  async function holdWorker(): Promise<void> {
    worker.shutdown();
    await running;
  }

  async function resumeWorker(): Promise<void> {
    worker = await Worker.create({ ...workerOptions, connection: env.nativeConnection });
    running = worker.run();
  }

  /** Whether the timer's firing and the finishing signal were handed to the workflow in one task. */
  function inOneTask(history: temporal.api.history.v1.IHistory): boolean {
    const events = history.events ?? [];
    const fired = events.findIndex((e) => e.timerFiredEventAttributes);
    const signaled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes);
    const taskAfter = (i: number) => events.findIndex((e, j) => j > i && e.workflowTaskStartedEventAttributes);
    return fired >= 0 && signaled >= 0 && taskAfter(fired) === taskAfter(signaled);
  }

  async function lateFinishInOneTask(runId: string, finishedAfterSeconds: number) {
    const input = await watch(runId);
    const handle = await env.client.workflow.start('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    // the first task ran: the timer is started
    for (let i = 0; i < 200 && !((await handle.fetchHistory()).events ?? []).some((e) => e.timerStartedEventAttributes); i++) await new Promise((r) => setTimeout(r, 50));
    await holdWorker();
    await env.sleep('301s');
    const finishedAt = new Date(Date.parse(input.event.occurredAt!) + finishedAfterSeconds * 1000).toISOString();
    await handle.signal('runFinished', { eventId: `evt_done_${runId}`, type: 'run.succeeded', occurredAt: finishedAt });
    await resumeWorker();
    const result = await handle.result();
    const history = await handle.fetchHistory();
    assert.ok(inOneTask(history), 'the timer and the finishing event reached the workflow in one task');
    return { input, result };
  }

  it('sends the delay alert when the run is still going after five minutes, without waiting five minutes', async () => {
    const input = await watch('run_never_ends');
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
    // the timer runs for what is left of the 300 s, counted from the run's start (its run.started time)
    const timerSeconds = Number(timer?.startToFireTimeout?.seconds ?? 0) + (timer?.startToFireTimeout?.nanos ?? 0) / 1e9;
    assert.ok(timerSeconds > 299 && timerSeconds <= 300, `timer of ${timerSeconds} s`);
  });

  it('stays quiet when the run finishes at 4 min 59 s', async () => {
    const before = receiver.at('/slow').length;
    const input = await watch('run_finishes_in_time');
    const handle = await env.client.workflow.start('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    await env.sleep('299s');
    await handle.signal('runFinished', { eventId: 'evt_done', type: 'run.succeeded' });
    const result = await handle.result();
    assert.equal(result.status, 'suppressed');
    assert.equal(receiver.at('/slow').length, before);
    const [row] = await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [input.deliveryId]);
    assert.equal(row.status, 'suppressed');
  });

  it('sends the delay alert for a run that finished after its deadline, though the worker saw the timer and the finish in one task', async () => {
    const before = receiver.at('/slow').length;
    const { input, result } = await lateFinishInOneTask('run_late_one_task', 301);
    assert.equal(result.status, 'delivered');
    assert.equal(receiver.at('/slow').length, before + 1);
    const [row] = await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [input.deliveryId]);
    assert.equal(row.status, 'delivered');
  });

  it('stays quiet for a run that finished before its deadline, though its event reached the worker with the timer', async () => {
    const before = receiver.at('/slow').length;
    const { input, result } = await lateFinishInOneTask('run_in_time_one_task', 299);
    assert.equal(result.status, 'suppressed');
    assert.equal(receiver.at('/slow').length, before);
    const [row] = await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [input.deliveryId]);
    assert.equal(row.status, 'suppressed');
  });
});
