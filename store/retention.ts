import type { RetentionTable } from '../workflows/retention';
import type { Queryable } from './db';

/**
 * Which rows of each table expire, and by which time. Finished deliveries only: a scheduled delay
 * watch or a delivery still retrying keeps its row however old it is. Each has an index on its time
 * column (migrations/009_retention.sql), so a batch reads just the rows it deletes.
 */
const EXPIRY: Record<RetentionTable, { time: string; finished?: string }> = {
  alert_logs: { time: 'created_at' },
  alert_deliveries: { time: 'updated_at', finished: `status IN ('delivered', 'failed', 'suppressed')` },
  alert_held: { time: 'created_at' },
  // migration 008 (operator alerts, indexed by created_at there); a store without it has nothing to delete there
  operator_alerts: { time: 'created_at', finished: `status IN ('delivered', 'failed')` },
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
  const { time, finished } = EXPIRY[table];
  const expired = `${time} < $1${finished ? ` AND ${finished}` : ''}`;
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
