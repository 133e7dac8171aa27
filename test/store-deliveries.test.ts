import assert from 'node:assert/strict';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { recordScheduledDelivery, startFirstAttempt } from '../store/deliveries';
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
