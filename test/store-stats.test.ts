import assert from 'node:assert/strict';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { overviewSchema } from '../api/schemas';
import { alertConfigInputSchema, configHealthSchema } from '../lib/schemas';
import { getConfig, saveConfig } from '../store/configs';
import { configStats, projectOverview } from '../store/stats';
import { STORE_KINDS, useStore } from './support/stores';

/**
 * The insight queries (store/stats.ts) on both stores: a config's attempt log summed up per UTC hour
 * (delivered, failed, retried, success rate, p50/p95 of the attempts' POST duration), and the project
 * overview with each config's health columns, held count and last delivery.
 */
for (const kind of STORE_KINDS) {
  describe(`insight queries (${kind})`, function () {
    this.timeout(60_000);
    const store = useStore(kind);
    const keyring = parseKeyring(newKeySpec('k1'));
    const config = (projectId: string, workflowId: string, name: string) =>
      saveConfig(store.db, keyring, projectId, alertConfigInputSchema.parse({ workflowId, name, conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a' } })).then((r) => r.config);

    // the clock of the queries: 40 minutes into an hour
    const hour = 3_600_000;
    const currentHour = Date.UTC(2026, 11, 1, 12);
    const now = new Date(currentHour + 40 * 60_000);

    /** an attempt row `hoursAgo` hours before the start of the current hour, plus `minutes` */
    async function attempt(projectId: string, configId: string, deliveryId: string, n: number, outcome: string, durationMs: number | null, hoursAgo: number, minutes = 5) {
      await store.db.query(
        `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, duration_ms, created_at)
         VALUES ($1, $2, $3, 'wf', 'run', $2, 'failure', $4, $5, $6, $7)`,
        [projectId, deliveryId, configId, n, outcome, durationMs, new Date(currentHour - hoursAgo * hour + minutes * 60_000)],
      );
    }

    it('sums a config’s attempts per hour: delivered, failed for good, retried, the success rate and the POST latency percentiles', async () => {
      const c = await config('stats', 'wf_a', 'A');
      const other = await config('stats', 'wf_a', 'B');
      // two hours ago: d1 delivered at once (100 ms); d2 retried twice then delivered (200, 300, 400 ms); d3 failed for good after one retry
      await attempt('stats', c.id, 'd1', 1, 'delivered', 100, 2);
      await attempt('stats', c.id, 'd2', 1, 'retrying', 200, 2);
      await attempt('stats', c.id, 'd2', 2, 'retrying', 300, 2);
      await attempt('stats', c.id, 'd2', 3, 'delivered', 400, 2);
      await attempt('stats', c.id, 'd3', 1, 'retrying', 1000, 2, 10);
      await attempt('stats', c.id, 'd3', 2, 'failed', null, 2, 20);
      // this hour: one delivered in 50 ms
      await attempt('stats', c.id, 'd4', 1, 'delivered', 50, 0, 0);
      // outside the window of 24 hours, and another config's
      await attempt('stats', c.id, 'd5', 1, 'failed', 10, 24);
      await attempt('stats', other.id, 'd6', 1, 'failed', 10, 0, 0);

      // and one later than the clock: not yet
      await attempt('stats', c.id, 'd7', 1, 'failed', 10, -1);

      const stats = await configStats(store.db, 'stats', c.id, 24, now);
      assert.equal(stats.buckets.length, 24);
      assert.equal(stats.buckets[23].start, new Date(currentHour).toISOString());
      assert.equal(stats.from, new Date(currentHour - 23 * hour).toISOString());
      assert.equal(stats.to, new Date(currentHour + hour).toISOString());
      assert.deepEqual(stats.buckets[21], {
        start: new Date(currentHour - 2 * hour).toISOString(),
        delivered: 2, failed: 1, retried: 3, attempts: 6, successRate: 2 / 3,
        // durations 100, 200, 300, 400, 1000 (the failed attempt sent nothing it could time): continuous percentiles
        latencyMs: { p50: 300, p95: 880 },
      });
      assert.deepEqual(stats.buckets[23], { start: new Date(currentHour).toISOString(), delivered: 1, failed: 0, retried: 0, attempts: 1, successRate: 1, latencyMs: { p50: 50, p95: 50 } });
      for (const [i, b] of stats.buckets.entries()) {
        if (i === 21 || i === 23) continue;
        assert.deepEqual({ ...b, start: undefined }, { start: undefined, delivered: 0, failed: 0, retried: 0, attempts: 0, successRate: null, latencyMs: { p50: null, p95: null } }, `hour ${i}`);
      }
      assert.deepEqual(stats.totals, { delivered: 3, failed: 1, retried: 3, attempts: 7, successRate: 0.75, latencyMs: { p50: 250, p95: 850 } });

      // a window of 1 hour sees only this hour; 25 hours sees the old failure too
      assert.deepEqual((await configStats(store.db, 'stats', c.id, 1, now)).totals, { delivered: 1, failed: 0, retried: 0, attempts: 1, successRate: 1, latencyMs: { p50: 50, p95: 50 } });
      assert.equal((await configStats(store.db, 'stats', c.id, 25, now)).totals.failed, 2);
      // another project sees nothing of it
      assert.equal((await configStats(store.db, 'elsewhere', c.id, 24, now)).totals.attempts, 0);
    });

    it('lists every workflow with its configs, health, held count and last delivery', async () => {
      const a1 = await config('ov', 'wf_b', 'B first');
      const a2 = await config('ov', 'wf_b', 'B second');
      const z = await config('ov', 'wf_a', 'A only');
      await config('ov-other', 'wf_c', 'not this project');
      await store.db.query(
        `UPDATE alert_configs SET enabled = false, disabled_reason = 'the receiver answered 410 Gone', consecutive_failures = 3,
           failing_since = '2026-12-01T10:00:00Z', last_failure_at = '2026-12-01T11:00:00Z', last_success_at = '2026-12-01T09:00:00Z', warned_at = '2026-12-01T10:30:00Z'
         WHERE id = $1`,
        [a2.id],
      );
      for (const n of [1, 2]) {
        await store.db.query(
          `INSERT INTO alert_held (project_id, config_id, workflow_id, run_id, event_id, condition, key_id, event_sealed) VALUES ('ov', $1, 'wf_b', 'run', $2, 'failure', 'k1', 'x')`,
          [a2.id, `evt_${n}`],
        );
      }
      for (const [id, at, status] of [['dlv-old', '2026-12-01T08:00:00Z', 'delivered'], ['dlv-new', '2026-12-01T11:00:00Z', 'failed']]) {
        await store.db.query(
          `INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, http_status, key_id, event_sealed, created_at, updated_at)
           VALUES ($1, 'ov', $2, 'wf_b', 'run', $1, 'failure', $3, 410, 'k1', 'x', $4, $4)`,
          [id, a2.id, status, at],
        );
      }

      const { workflows } = await projectOverview(store.db, 'ov');
      assert.deepEqual(workflows.map((w) => [w.workflowId, w.configs.map((c) => c.id)]), [['wf_a', [z.id]], ['wf_b', [a1.id, a2.id]]]);
      const [first, second] = workflows[1].configs;
      assert.deepEqual(first, {
        id: a1.id, name: 'B first', enabled: true, disabledReason: null, lastDelivery: null,
        health: { consecutiveFailures: 0, failingSince: null, lastSuccessAt: null, lastFailureAt: null, warnedAt: null, heldCount: 0 },
      });
      assert.deepEqual(second, {
        id: a2.id, name: 'B second', enabled: false, disabledReason: 'the receiver answered 410 Gone',
        health: { consecutiveFailures: 3, failingSince: '2026-12-01T10:00:00.000Z', lastSuccessAt: '2026-12-01T09:00:00.000Z', lastFailureAt: '2026-12-01T11:00:00.000Z', warnedAt: '2026-12-01T10:30:00.000Z', heldCount: 2 },
        lastDelivery: { deliveryId: 'dlv-new', status: 'failed', condition: 'failure', httpStatus: 410, createdAt: '2026-12-01T11:00:00.000Z', updatedAt: '2026-12-01T11:00:00.000Z' },
      });
      assert.deepEqual(await projectOverview(store.db, 'nobody'), { workflows: [] });
    });

    it('shows each config’s health as every config answer does: the same schema, the same values', async () => {
      // one schema: the overview's health is lib/schemas.ts's ConfigHealth (OpenAPI: the same component), not a copy
      const overviewConfig = overviewSchema.shape.workflows.element.shape.configs.element;
      assert.equal(overviewConfig.shape.health, configHealthSchema);
      const c = await config('same', 'wf_same', 'failing');
      await store.db.query(
        `UPDATE alert_configs SET enabled = false, disabled_reason = 'failing since 2026-11-25', consecutive_failures = 7,
           failing_since = '2026-11-25T10:00:00Z', last_failure_at = '2026-12-01T11:00:00Z', warned_at = '2026-11-26T10:00:00Z'
         WHERE id = $1`,
        [c.id],
      );
      await store.db.query(
        `INSERT INTO alert_held (project_id, config_id, workflow_id, run_id, event_id, condition, key_id, event_sealed) VALUES ('same', $1, 'wf_same', 'run', 'evt_1', 'failure', 'k1', 'x')`,
        [c.id],
      );
      const [{ configs: [shown] }] = (await projectOverview(store.db, 'same')).workflows;
      const stored = await getConfig(store.db, keyring, 'same', c.id);
      assert.deepEqual(shown.health, stored.health);
      assert.deepEqual(configHealthSchema.parse(shown.health), { consecutiveFailures: 7, failingSince: '2026-11-25T10:00:00.000Z', lastSuccessAt: null, lastFailureAt: '2026-12-01T11:00:00.000Z', warnedAt: '2026-11-26T10:00:00.000Z', heldCount: 1 });
    });
  });
}
