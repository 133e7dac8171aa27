import assert from 'node:assert/strict';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema } from '../lib/schemas';
import { defaultOperations } from '../runtime/deps';
import { saveConfig } from '../store/configs';
import { createSilence } from '../store/silences';
import type { AlertDeliveryInput } from '../workflows/types';
import { startTimeSkippingEnv } from './support/time-skipping';
import { Receiver } from './support/receiver';
import { openStore, type TestStore } from './support/stores';

/**
 * A recurring silence crossed by delay watches on Temporal's time-skipping test server: each watch
 * decides at its deadline by the workflow's clock, so the watches of one slow workflow whose
 * deadlines fall before, inside and after a window of the silence are sent, silenced and sent.
 */
describe('recurring silence across its window, delay watches (time-skipping test server)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let store: TestStore;
  let receiver: Receiver;
  let worker: Worker;
  let running: Promise<void>;
  const keyring = parseKeyring(newKeySpec('k1'));
  const taskQueue = 'silence-time-skipping';
  const workflowId = 'wf_nightly_export';
  const THRESHOLD_SECONDS = 1800;
  const WINDOW_SECONDS = 600;
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
        workflowId,
        name: 'slow exports',
        conditions: [{ type: 'delay', thresholdSeconds: THRESHOLD_SECONDS }],
        webhook: { url: receiver.on('/slow', () => ({ status: 200 })) },
        payload: { template: { run: '{{ run.id }}', text: '{{ workflow.id }} {{ condition }}' } },
      }),
    );
    configId = saved.config.id;
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts'),
      activities: createActivities({ db: store.db, keyring, egress: parseEgressPolicy({ allow: '127.0.0.1' }), temporal: { client: env.client, namespace: 'default', taskQueue, eagerStart: true }, operations: defaultOperations() }),
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

  /** A watch of a run that started at `startedAtMs` (its deadline: that plus the threshold). */
  const watch = (runId: string, startedAtMs: number): AlertDeliveryInput => ({
    deliveryId: `dlv-${configId}-${runId}-delay`,
    projectId: 'default',
    configId,
    condition: 'delay',
    delaySeconds: THRESHOLD_SECONDS,
    event: { id: `evt_${runId}`, type: 'run.started', workflowId, runId, occurredAt: new Date(startedAtMs).toISOString() },
  });

  it('sends the alert due before the window, silences the one due inside it, and sends the one due after it ends', async () => {
    // a window every day at the Berlin wall-clock minute 5 to 6 minutes ahead of the test server's clock
    const nowMs = await env.currentTimeMs();
    const windowStartMs = Math.ceil((nowMs + 5 * 60_000) / 60_000) * 60_000;
    const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(windowStartMs);
    const [hour, minute] = local.split(':').map(Number);
    const silence = await createSilence(store.db, 'default', {
      workflowId,
      recurrence: { cron: `${minute} ${hour} * * *`, durationSeconds: WINDOW_SECONDS, timeZone: 'Europe/Berlin' },
      comment: 'nightly maintenance',
    });
    const windowEndMs = windowStartMs + WINDOW_SECONDS * 1000;
    const dueAt = { before: windowStartMs - 2 * 60_000, inside: windowStartMs + 5 * 60_000, after: windowEndMs + 2 * 60_000 };
    const watches = Object.fromEntries(
      Object.entries(dueAt).map(([which, deadlineMs]) => [which, watch(`run_${which}_${windowStartMs}`, deadlineMs - THRESHOLD_SECONDS * 1000)]),
    ) as Record<keyof typeof dueAt, AlertDeliveryInput>;

    // One watch at a time, each started before its deadline: while one watch's workflow task runs its
    // local activities, the test server would skip the clock to another watch's timer, past the task's
    // timeout, and the task would run again at a later time (real time does not jump like that).
    const run = async (input: AlertDeliveryInput) => env.client.workflow.execute('AlertDelivery', { workflowId: input.deliveryId, taskQueue, args: [input] });
    const before = await run(watches.before);
    const inside = await run(watches.inside);
    const after = await run(watches.after);

    assert.equal(before.status, 'delivered');
    assert.equal(after.status, 'delivered');
    assert.equal(inside.status, 'silenced');
    assert.match(inside.error ?? '', new RegExp(`^silenced by ${silence.id} \\(maintenance window until ${new Date(windowEndMs).toISOString()}: nightly maintenance\\)$`));

    const received = receiver.at('/slow').map((r) => JSON.parse(r.body).run);
    assert.deepEqual(received.sort(), [watches.before.event.runId, watches.after.event.runId].sort(), 'the receiver got the alerts due before and after the window, not the one inside');

    const deliveries = await store.db.query<{ delivery_id: string; status: string }>(
      'SELECT delivery_id, status FROM alert_deliveries WHERE delivery_id = ANY($1)',
      [Object.values(watches).map((w) => w.deliveryId)],
    );
    const statusOf = Object.fromEntries(deliveries.map((d) => [d.delivery_id, d.status]));
    assert.equal(statusOf[watches.before.deliveryId], 'delivered');
    assert.equal(statusOf[watches.inside.deliveryId], 'silenced');
    assert.equal(statusOf[watches.after.deliveryId], 'delivered');

    const logs = await store.db.query<{ attempt: number; outcome: string; error: string | null }>(
      'SELECT attempt, outcome, error FROM alert_logs WHERE delivery_id = $1 ORDER BY attempt',
      [watches.inside.deliveryId],
    );
    assert.deepEqual(logs.map((l) => [l.attempt, l.outcome]), [[0, 'silenced']], 'the silenced alert has one log row, attempt 0, and no attempt');
    assert.equal(logs[0].error, inside.error);
    for (const which of ['before', 'after'] as const) {
      const rows = await store.db.query<{ attempt: number; outcome: string }>('SELECT attempt, outcome FROM alert_logs WHERE delivery_id = $1', [watches[which].deliveryId]);
      assert.deepEqual(rows.map((r) => [r.attempt, r.outcome]), [[1, 'delivered']], `the alert due ${which} the window was sent once`);
    }
  });
});
