import assert from 'node:assert/strict';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { dispatchEvent } from '../dispatch/process-event';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { delayWatcherId } from '../lib/delivery-ids';
import { parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema } from '../lib/schemas';
import { defaultOperations, type ServiceDeps } from '../runtime/deps';
import { saveConfig } from '../store/configs';
import { openWatch } from '../store/watches';
import type { AlertDeliveryInput } from '../workflows/types';
import { Receiver } from './support/receiver';
import { openStore, type TestStore } from './support/stores';
import { startTimeSkippingEnv } from './support/time-skipping';

/**
 * Delay watches held as rows, watched by one DelayWatcher per config (docs/delay-watches.md), on
 * Temporal's time-skipping test server: the watcher's durable timer is the real one, only the clock
 * jumps. Events go through dispatch (the code path of POST /api/events).
 */
/** Runs `probe` until it stops throwing (an assertion, a workflow not started yet), and answers what it answers. */
async function eventually<T>(probe: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise<void>((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe('delay watches as rows: the DelayWatcher (time-skipping test server)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let store: TestStore;
  let receiver: Receiver;
  let worker: Worker;
  let running: Promise<void>;
  let workerOptions: Omit<Parameters<typeof Worker.create>[0], 'connection'>;
  let deps: Pick<ServiceDeps, 'db' | 'keyring' | 'temporal'>;
  const keyring = parseKeyring(newKeySpec('k1'));
  const taskQueue = 'watcher-time-skipping';
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
        payload: { template: { text: '{{ workflow.id }} {{ condition }} {{ run.id }}', minutes: '{{ run.durationMs | divided_by: 60000 | floor }}' } },
      }),
    );
    configId = saved.config.id;
    const temporal = { client: env.client, namespace: 'default', taskQueue, eagerStart: false };
    deps = { db: store.db, keyring, temporal };
    workerOptions = {
      taskQueue,
      // no sticky cache: a workflow task of a stopped worker goes straight back to the task queue
      maxCachedWorkflows: 0,
      workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts'),
      activities: createActivities({ db: store.db, keyring, egress: parseEgressPolicy({ allow: '127.0.0.1' }), temporal, operations: defaultOperations() }),
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

  /** The worker stopped: workflow tasks wait in the queue (a worker busy, killed or restarting). */
  async function holdWorker(): Promise<void> {
    worker.shutdown();
    await running;
  }

  async function resumeWorker(): Promise<void> {
    worker = await Worker.create({ ...workerOptions, connection: env.nativeConnection });
    running = worker.run();
  }

  const nowIso = async (offsetSeconds = 0) => new Date((await env.currentTimeMs()) + offsetSeconds * 1000).toISOString();
  const event = (runId: string, type: string, occurredAt: string) => ({ id: `evt_${type}_${runId}`, type, workflowId: 'wf_slow', runId, occurredAt });
  const deliveryIdOf = (runId: string) => `dlv-${configId}-${runId}-delay`;
  const row = async (runId: string) =>
    (await store.db.query<{ status: string; watch_fired_at: Date | null }>('SELECT status, watch_fired_at FROM alert_deliveries WHERE delivery_id = $1', [deliveryIdOf(runId)]))[0];
  const wakeAt = async () => (await store.db.query<{ wake_at: Date | null }>('SELECT wake_at FROM delay_watchers WHERE config_id = $1', [configId]))[0]?.wake_at ?? null;
  const alertsFor = (runId: string) => receiver.at('/slow').filter((r) => JSON.parse(r.body).text.endsWith(` ${runId}`));

  /** run.started through dispatch, at the test server's clock; waits until the watcher is committed to wake by its deadline. */
  async function startRun(runId: string): Promise<{ startedAt: string; deadlineMs: number }> {
    const startedAt = await nowIso();
    const { deliveries } = await dispatchEvent(deps, 'default', event(runId, 'run.started', startedAt));
    assert.deepEqual(deliveries, [{ deliveryId: deliveryIdOf(runId), configId, condition: 'delay', duplicate: false }]);
    const deadlineMs = Date.parse(startedAt) + 300_000;
    await eventually(async () => {
      const w = await wakeAt();
      assert.ok(w !== null && w.getTime() <= deadlineMs, `the watcher wakes at ${w?.toISOString()}`);
    });
    return { startedAt, deadlineMs };
  }

  it('a five-minute watch fires without waiting five minutes: one AlertDelivery, started by the watcher, sends the delay alert', async () => {
    const realStart = Date.now();
    await startRun('run_never_ends');
    assert.equal((await row('run_never_ends')).status, 'scheduled');
    // no AlertDelivery workflow while the watch is open: the watch is a row
    await assert.rejects(env.client.workflow.getHandle(deliveryIdOf('run_never_ends')).describe());
    await env.sleep('301s');
    const result = await eventually(async () => env.client.workflow.getHandle(deliveryIdOf('run_never_ends')).result());
    assert.equal(result.status, 'delivered');
    const [webhook] = alertsFor('run_never_ends');
    const body = JSON.parse(webhook.body);
    assert.equal(body.text, 'wf_slow delay run_never_ends');
    assert.ok(body.minutes >= 5, `the run had been going ${body.minutes} minutes by the alert's clock`);
    assert.ok(Date.now() - realStart < 60_000);
    const history = await env.client.workflow.getHandle(deliveryIdOf('run_never_ends')).fetchHistory();
    assert.ok(!(history.events ?? []).some((e) => e.timerStartedEventAttributes), 'the fired watch holds no timer of its own');
    assert.equal((await row('run_never_ends')).status, 'delivered');
  });

  it('stays quiet when the run finishes at 4 min 59 s: no AlertDelivery at all', async () => {
    const { startedAt } = await startRun('run_in_time');
    await env.sleep('299s');
    await dispatchEvent(deps, 'default', event('run_in_time', 'run.succeeded', new Date(Date.parse(startedAt) + 299_000).toISOString()));
    assert.equal((await row('run_in_time')).status, 'suppressed');
    await env.sleep('10s');
    // the watcher has been past the deadline: it woke, found nothing open, and is asleep on nothing
    await eventually(async () => assert.equal(await wakeAt(), null));
    assert.equal(alertsFor('run_in_time').length, 0);
    await assert.rejects(env.client.workflow.getHandle(deliveryIdOf('run_in_time')).describe());
  });

  /**
   * The race: the worker is held, the deadline passes (the watcher's timer fires, its task waits), a
   * finishing event is recorded while it waits, the worker resumes. Decided by the finish's time.
   */
  async function raceWithHeldWorker(runId: string, finishedAfterSeconds: number) {
    const { startedAt } = await startRun(runId);
    // the watcher sleeps on its timer: the pass the signal woke it for ran, and its history ends in
    // the timer's start. (A pass scheduled but not run when the worker stops keeps the test server
    // from skipping time, and the sleep below takes minutes of real time; the test server's describe
    // shows no pending workflow task, so the history is what tells: the watcher awaits its pass
    // before it starts a timer, and a signal after the timer's start adds events after it.)
    await eventually(async () => {
      const events = (await env.client.workflow.getHandle(delayWatcherId(configId)).fetchHistory()).events ?? [];
      assert.ok(events.at(-1)?.timerStartedEventAttributes, `the watcher's last history event is of type ${events.at(-1)?.eventType}`);
    });
    await holdWorker();
    await env.sleep('301s');
    await dispatchEvent(deps, 'default', event(runId, 'run.succeeded', new Date(Date.parse(startedAt) + finishedAfterSeconds * 1000).toISOString()));
    const whileHeld = (await row(runId)).status;
    await resumeWorker();
    return { whileHeld };
  }

  it('the race: a run that finished after its deadline, recorded while the watcher\'s worker was held, gets the delay alert', async () => {
    const { whileHeld } = await raceWithHeldWorker('run_late_held', 301);
    assert.equal(whileHeld, 'scheduled');
    const result = await eventually(async () => env.client.workflow.getHandle(deliveryIdOf('run_late_held')).result());
    assert.equal(result.status, 'delivered');
    assert.equal(alertsFor('run_late_held').length, 1);
  });

  it('the race: a run that finished before its deadline, recorded while the worker was held past it, stays quiet', async () => {
    const { whileHeld } = await raceWithHeldWorker('run_in_time_held', 299);
    assert.equal(whileHeld, 'suppressed');
    // the watcher ran its pass after the deadline (it is asleep on nothing again): nothing was started
    await env.sleep('5s');
    await eventually(async () => assert.equal(await wakeAt(), null));
    assert.equal(alertsFor('run_in_time_held').length, 0);
    await assert.rejects(env.client.workflow.getHandle(deliveryIdOf('run_in_time_held')).describe());
  });

  it('a run.started committed but never signalled (a crash between the commit and the signal) fires once the event is sent again', async () => {
    const runId = 'run_crash_before_signal';
    const startedAt = await nowIso();
    const started = event(runId, 'run.started', startedAt);
    // the watcher is asleep on nothing (wake_at NULL): the store transaction alone, no signal
    await eventually(async () => assert.equal(await wakeAt(), null));
    const ref = { deliveryId: deliveryIdOf(runId), projectId: 'default', configId, workflowId: 'wf_slow', runId, eventId: started.id, condition: 'delay' as const };
    assert.equal((await openWatch(store.db, keyring, ref, { ...started, type: 'run.started' }, Date.parse(startedAt) + 300_000)).wake, true);
    // MeshHook sends the event again (it got no 202): a duplicate, which still wakes the watcher
    const { deliveries } = await dispatchEvent(deps, 'default', started);
    assert.equal(deliveries[0].duplicate, true);
    await eventually(async () => assert.equal((await wakeAt())?.getTime(), Date.parse(startedAt) + 300_000));
    await env.sleep('301s');
    const result = await eventually(async () => env.client.workflow.getHandle(deliveryIdOf(runId)).result());
    assert.equal(result.status, 'delivered');
  });

  it('an in-flight watch of the earlier version (an AlertDelivery holding its own timer) is ended by a finishing event in time: no false alert after the upgrade', async () => {
    const runId = 'run_old_style';
    const startedAt = await nowIso();
    const input: AlertDeliveryInput = { deliveryId: deliveryIdOf(runId), projectId: 'default', configId, condition: 'delay', delaySeconds: 300, event: event(runId, 'run.started', startedAt) as AlertDeliveryInput['event'] };
    const handle = await env.client.workflow.start('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    await eventually(async () => assert.equal((await row(runId))?.status, 'scheduled'));
    await dispatchEvent(deps, 'default', event(runId, 'run.succeeded', new Date(Date.parse(startedAt) + 200_000).toISOString()));
    const result = await handle.result();
    assert.equal(result.status, 'suppressed');
    assert.equal(alertsFor(runId).length, 0);
  });

  it('the watcher shows its open watches and next deadline in the Web UI (current details)', async () => {
    const { deadlineMs } = await startRun('run_details');
    await eventually(async () => {
      const metadata = await env.client.workflow.getHandle(delayWatcherId(configId)).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(metadata.currentDetails ?? '', /open watches: 1\n/);
      assert.match(metadata.currentDetails ?? '', new RegExp(`next deadline: ${new Date(deadlineMs).toISOString()}`));
      assert.match(metadata.currentDetails ?? '', /fired \(late runs alerted\) so far: \d+\n- suppressed at their deadline so far: \d+/);
    });
  });
});
