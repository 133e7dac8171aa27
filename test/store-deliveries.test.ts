import assert from 'node:assert/strict';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { claimRetriedAttempt, logAttempt, LOST_ATTEMPT_ERROR, recordScheduledDelivery, startFirstAttempt } from '../store/deliveries';
import { STORE_KINDS, useStore } from './support/stores';

/**
 * A delay watch's first workflow task can be lost after its first POST (a worker killed, a server
 * restart refusing the completion) and run again from its start: the watch's row must keep counting
 * attempts on, and keep the first rendering, not start over (found by the chaos run).
 */
for (const kind of STORE_KINDS) {
  describe(`a delay watch's rows when its first task runs again (${kind})`, function () {
    this.timeout(60_000);
    const store = useStore(kind);
    const keyring = parseKeyring(newKeySpec('k1'));

    it('numbers the next attempt 2 and keeps the first rendering, though the watch is recorded scheduled again', async () => {
      const ref = { deliveryId: `dlv-cfg_x-run_${kind}-delay`, projectId: 'default', configId: 'cfg_x', workflowId: 'wf', runId: `run_${kind}`, eventId: 'evt_1', condition: 'delay' as const };
      const event = { id: 'evt_1', type: 'run.started' as const, workflowId: 'wf', runId: ref.runId, occurredAt: '2026-12-01T10:00:00Z' };
      const first = { url: 'https://hooks.example.com/a', headers: { 'X-A': '1' }, body: '{"run":{"durationMs":6001}}' };
      await recordScheduledDelivery(store.db, keyring, ref, event);
      assert.deepEqual(await startFirstAttempt(store.db, keyring, ref, event, first), { attempt: 1, request: first });
      // the task runs again from its start: the watch is recorded again, then the first attempt is made again
      await recordScheduledDelivery(store.db, keyring, ref, event);
      const [row] = await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [ref.deliveryId]);
      assert.equal(row.status, 'in_progress');
      const again = await startFirstAttempt(store.db, keyring, ref, event, { ...first, body: '{"run":{"durationMs":9002}}' });
      assert.deepEqual(again, { attempt: 2, request: first });
    });
  });
}

/**
 * A retried attempt is counted by its delivery just before its POST (claimRetriedAttempt), not by
 * Temporal's runs of its step: a run that failed before it counted nothing, one cut off after it
 * leaves a number with no row, which the next claim gives its lost row; the plan's count is the limit.
 */
for (const kind of STORE_KINDS) {
  describe(`a retried attempt counted by its delivery (${kind})`, function () {
    this.timeout(60_000);
    const store = useStore(kind);
    const keyring = parseKeyring(newKeySpec('k1'));

    it('counts on from the attempts made inside workflow tasks, gives a cut-off attempt its lost row, and stops at the plan\'s count', async () => {
      const ref = { deliveryId: `dlv-cfg_x-run_${kind}-claim`, projectId: 'default', configId: 'cfg_x', workflowId: 'wf', runId: `run_${kind}_claim`, eventId: 'evt_2', condition: 'failure' as const };
      const event = { id: 'evt_2', type: 'run.failed' as const, workflowId: 'wf', runId: ref.runId, occurredAt: '2026-12-01T10:00:00Z' };
      assert.deepEqual(await startFirstAttempt(store.db, keyring, ref, event, { url: 'https://hooks.example.com/a', headers: {}, body: '{}' }), { attempt: 1, request: { url: 'https://hooks.example.com/a', headers: {}, body: '{}' } });
      await logAttempt(store.db, ref, { attempt: 1, outcome: 'retrying', httpStatus: 503, error: 'HTTP 503' });
      const rows = () => store.db.query<{ attempt: number; outcome: string; error: string | null }>('SELECT attempt, outcome, error FROM alert_logs WHERE delivery_id = $1 ORDER BY attempt', [ref.deliveryId]);

      assert.deepEqual(await claimRetriedAttempt(store.db, ref, 1, 3), { attempt: 2 });
      // attempt 2's run was cut off after it was counted (no row): the next run is attempt 3, and 2 is logged lost
      assert.deepEqual(await claimRetriedAttempt(store.db, ref, 1, 3), { attempt: 3 });
      assert.deepEqual(await rows(), [
        { attempt: 1, outcome: 'retrying', error: 'HTTP 503' },
        { attempt: 2, outcome: 'retrying', error: LOST_ATTEMPT_ERROR },
      ]);
      // attempt 3 was cut off as well: the plan's three are used up; nothing is counted beyond them
      assert.deepEqual(await claimRetriedAttempt(store.db, ref, 1, 3), { usedUp: 3 });
      const [delivery] = await store.db.query<{ attempts: number }>('SELECT attempts FROM alert_deliveries WHERE delivery_id = $1', [ref.deliveryId]);
      assert.equal(delivery.attempts, 3);
      // a first step cut off after counting attempts the delivery's row does not show yet (an offset above its count) counts on from the offset
      const other = { ...ref, deliveryId: `${ref.deliveryId}-offset` };
      await startFirstAttempt(store.db, keyring, other, event, null);
      assert.deepEqual(await claimRetriedAttempt(store.db, other, 2, 5), { attempt: 3 });
      assert.deepEqual(await claimRetriedAttempt(store.db, { ...ref, deliveryId: `${ref.deliveryId}-erased` }, 1, 3), { missing: true });
    });
  });
}
