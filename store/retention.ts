import type { RetentionTable } from '../workflows/retention';
import { NOISE_OUTCOMES } from '../lib/schemas';
import type { Queryable } from './db';

/**
 * A held alert waits for its config's re-enable (send or discard), however old: the issue asks for
 * alerts held, not dropped. That holds while the service has the config disabled, and after a
 * re-enable too, while its release is under way (a cut-off release is finished by repeating the
 * request). Only the held alerts of a config deleted, or turned off by its user, wait for nothing,
 * and expire.
 */
const HELD_FOR_NOTHING = `NOT EXISTS (
  SELECT 1 FROM alert_configs c
  WHERE c.id = alert_held.config_id AND c.project_id = alert_held.project_id AND (c.enabled OR c.disabled_reason IS NOT NULL)
)`;

/**
 * Which rows of each table expire: older than the cutoff by `time`, and `also` true. Finished
 * deliveries only: a scheduled delay watch or a delivery still retrying keeps its row however old it
 * is. Each has an index on its time column (migrations/009_retention.sql), so a batch reads just the
 * rows it deletes (and, for alert_held, the old rows it keeps: those of configs still disabled by the
 * service).
 */
const EXPIRY: Record<RetentionTable, { time: string; also?: string }> = {
  alert_logs: { time: 'created_at' },
  // a delay watch the noise pipeline ended (silenced, grouped, …) is finished too
  alert_deliveries: { time: 'updated_at', also: `status IN ('delivered', 'failed', 'suppressed', ${NOISE_OUTCOMES.map((o) => `'${o}'`).join(', ')})` },
  alert_held: { time: 'created_at', also: HELD_FOR_NOTHING },
  // migration 008 (operator alerts, indexed by created_at there); a store without it has nothing to delete there
  operator_alerts: { time: 'created_at', also: `status IN ('delivered', 'failed')` },
  alert_audit_log: { time: 'created_at' },
};

/** Whether a table exists in the store (operator_alerts comes with migration 008). */
export async function tableExists(db: Queryable, table: string): Promise<boolean> {
  const [row] = await db.query<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [table]);
  return row.found;
}

/**
 * Deletes at most `limit` of the oldest rows of `table` older than `before`, in one statement of its
 * own (its own transaction): the locks it takes are on those rows only, and are held for as long as
 * one small batch takes. The rows are found by their physical address (ctid), which every table has,
 * through the time index; the outer condition is checked again, so a row changed in between (a
 * delivery that restarted) is left alone. Answers how many rows it deleted: fewer than `limit` means
 * nothing older is left.
 */
export async function deleteExpiredBatch(db: Queryable, table: RetentionTable, before: Date, limit: number): Promise<number> {
  const { time, also } = EXPIRY[table];
  const expired = `${time} < $1${also ? ` AND ${also}` : ''}`;
  const [row] = await db.query<{ deleted: number }>(
    `WITH deleted AS (
       DELETE FROM ${table}
       WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE ${expired} ORDER BY ${time} LIMIT $2)) AND ${expired}
       RETURNING 1
     )
     SELECT count(*)::int AS deleted FROM deleted`,
    [before, limit],
  );
  return row.deleted;
}
