import type { StoreGauges } from '../lib/metrics';
import type { Queryable } from './db';

/**
 * What the /metrics gauges show of the store, read at scrape time across every project: deliveries
 * retrying now (in progress, and an attempt of theirs logged `retrying`: the in-progress rows are few
 * and alert_logs is indexed by delivery id), held alerts, and disabled configs by who disabled them.
 */
export async function readStoreGauges(db: Queryable): Promise<StoreGauges> {
  const [retrying, held, disabled] = await Promise.all([
    db.query<{ condition: string; n: number }>(
      `SELECT d.condition, count(*)::int AS n FROM alert_deliveries d
       WHERE d.status = 'in_progress'
         AND EXISTS (SELECT 1 FROM alert_logs l WHERE l.delivery_id = d.delivery_id AND l.outcome = 'retrying')
       GROUP BY d.condition`,
    ),
    db.query<{ n: number }>('SELECT count(*)::int AS n FROM alert_held'),
    db.query<{ by_service: number; by_user: number }>(
      `SELECT count(*) FILTER (WHERE disabled_reason IS NOT NULL)::int AS by_service,
              count(*) FILTER (WHERE disabled_reason IS NULL)::int AS by_user
       FROM alert_configs WHERE NOT enabled`,
    ),
  ]);
  return {
    retryingByCondition: Object.fromEntries(retrying.map((r) => [r.condition, r.n])),
    held: held[0]?.n ?? 0,
    disabledConfigs: { service: disabled[0]?.by_service ?? 0, user: disabled[0]?.by_user ?? 0 },
  };
}
