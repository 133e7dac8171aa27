import type { z } from 'zod';
import type { configStatsSchema, overviewSchema } from '../api/schemas';
import type { AlertConditionName, DeliveryStatus } from '../lib/schemas';
import { configHealth, HELD_COUNT, type HealthColumns } from './configs';
import type { Queryable } from './db';
import { notHeldAttempt } from './held';

/** GET /api/alerts/overview's answer; a config's health is lib/schemas.ts's ConfigHealth, as in every config answer. */
export type Overview = z.infer<typeof overviewSchema>;
/** GET /api/alerts/config/by-id/{configId}/stats's answer. */
export type ConfigStats = z.infer<typeof configStatsSchema>;
/** What the attempts of one hour came to; the totals are the same without `start`. */
export type StatsBucket = ConfigStats['buckets'][number];

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

interface OverviewRow extends HealthColumns {
  id: string; workflow_id: string; name: string; enabled: boolean; disabled_reason: string | null;
  delivery_id: string | null; status: DeliveryStatus | null; condition: AlertConditionName | null; http_status: number | null;
  delivery_created_at: Date | null; delivery_updated_at: Date | null;
}

/**
 * Every workflow of the project that has configs, each config with its health and last delivery, in
 * one statement. Reads no sealed column: the overview shows no URL, so nothing is decrypted.
 */
export async function projectOverview(db: Queryable, projectId: string): Promise<Overview> {
  const rows = await db.query<OverviewRow>(
    `SELECT alert_configs.id, alert_configs.workflow_id, alert_configs.name, alert_configs.enabled, alert_configs.disabled_reason,
            alert_configs.consecutive_failures, alert_configs.failing_since, alert_configs.last_success_at, alert_configs.last_failure_at, alert_configs.warned_at,
            ${HELD_COUNT},
            d.delivery_id, d.status, d.condition, d.http_status, d.created_at AS delivery_created_at, d.updated_at AS delivery_updated_at
     FROM alert_configs
     LEFT JOIN LATERAL (
       SELECT delivery_id, status, condition, http_status, created_at, updated_at FROM alert_deliveries
       WHERE project_id = alert_configs.project_id AND config_id = alert_configs.id
       ORDER BY created_at DESC, delivery_id DESC LIMIT 1
     ) d ON true
     WHERE alert_configs.project_id = $1
     ORDER BY alert_configs.workflow_id, alert_configs.created_at, alert_configs.id`,
    [projectId],
  );
  const workflows: Overview['workflows'] = [];
  for (const r of rows) {
    if (workflows.at(-1)?.workflowId !== r.workflow_id) workflows.push({ workflowId: r.workflow_id, configs: [] });
    workflows.at(-1)!.configs.push({
      id: r.id,
      name: r.name,
      enabled: r.enabled,
      disabledReason: r.disabled_reason,
      health: configHealth(r),
      lastDelivery: r.delivery_id
        ? { deliveryId: r.delivery_id, status: r.status!, condition: r.condition!, httpStatus: r.http_status, createdAt: iso(r.delivery_created_at)!, updatedAt: iso(r.delivery_updated_at)! }
        : null,
    });
  }
  return { workflows };
}

interface StatsRow {
  i: number | null; delivered: number; failed: number; retried: number; attempts: number; p50: number | null; p95: number | null; since: Date;
}

/**
 * Hourly buckets of a config's attempt log over the last `hours` hours, the current hour last, and
 * the totals of the window. Every number comes from alert_logs: a delivery's last attempt row says
 * how it ended (delivered, or failed for good), the rows before it are `retrying`; held alerts' rows
 * and the noise pipeline's decisions (attempt 0) are no attempts. Hours are whole
 * UTC hours counted from the epoch, so the buckets do not depend on the database's time zone.
 * `now` (tests: a clock they control) defaults to the database's.
 */
export async function configStats(db: Queryable, projectId: string, configId: string, hours: number, now?: Date): Promise<ConfigStats> {
  const rows = await db.query<StatsRow>(
    `WITH bounds AS (
       SELECT to_timestamp((floor(extract(epoch FROM COALESCE($4::timestamptz, now())) / 3600) - ($3::int - 1)) * 3600) AS since
     ), attempts AS (
       SELECT floor(extract(epoch FROM (l.created_at - b.since)) / 3600)::int AS i, l.outcome, l.duration_ms
       FROM alert_logs l CROSS JOIN bounds b
       WHERE l.project_id = $1 AND l.config_id = $2 AND l.created_at >= b.since AND l.created_at < b.since + make_interval(hours => $3::int) AND ${notHeldAttempt('l')}
         -- attempt 0: a noise pipeline decision (silenced, grouped, …), nothing was sent
         AND l.attempt > 0
     ), hours AS (
       SELECT generate_series(0, $3::int - 1) AS i
     )
     SELECT h.i,
            count(a.outcome) FILTER (WHERE a.outcome = 'delivered')::int AS delivered,
            count(a.outcome) FILTER (WHERE a.outcome = 'failed')::int AS failed,
            count(a.outcome) FILTER (WHERE a.outcome = 'retrying')::int AS retried,
            count(a.outcome)::int AS attempts,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95,
            (SELECT since FROM bounds) AS since
     FROM hours h LEFT JOIN attempts a ON a.i = h.i
     GROUP BY h.i
     UNION ALL
     SELECT NULL,
            count(*) FILTER (WHERE outcome = 'delivered')::int,
            count(*) FILTER (WHERE outcome = 'failed')::int,
            count(*) FILTER (WHERE outcome = 'retrying')::int,
            count(*)::int,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
            percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
            (SELECT since FROM bounds)
     FROM attempts
     ORDER BY 1 NULLS LAST`,
    [projectId, configId, hours, now ?? null],
  );
  const since = new Date(rows[0].since).getTime();
  const shape = (r: StatsRow): Omit<StatsBucket, 'start'> => ({
    delivered: r.delivered,
    failed: r.failed,
    retried: r.retried,
    attempts: r.attempts,
    successRate: r.delivered + r.failed === 0 ? null : r.delivered / (r.delivered + r.failed),
    latencyMs: { p50: r.p50 === null ? null : Math.round(Number(r.p50)), p95: r.p95 === null ? null : Math.round(Number(r.p95)) },
  });
  const buckets = rows.filter((r) => r.i !== null).map((r) => ({ start: new Date(since + r.i! * 3_600_000).toISOString(), ...shape(r) }));
  const totals = shape(rows.find((r) => r.i === null)!);
  return { configId, hours, from: new Date(since).toISOString(), to: new Date(since + hours * 3_600_000).toISOString(), buckets, totals };
}
