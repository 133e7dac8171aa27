import type { OperatorAlertRecord } from '../api/schemas';
import type { OperatorEvent } from '../lib/operator-events';
import type { Queryable } from './db';

/**
 * The operator_alerts table (migration 008): one row per operator event and target, keyed by the
 * delivery's workflow id, moved on by its attempts (docs/operator-alerts.md).
 */

export type OperatorTarget = OperatorAlertRecord['target'];
export type OperatorAlertStatus = OperatorAlertRecord['status'];

interface OperatorAlertRow {
  alert_id: string;
  seq: string;
  project_id: string | null;
  type: OperatorAlertRecord['type'];
  target: OperatorTarget;
  status: OperatorAlertStatus;
  attempts: number;
  http_status: number | null;
  error: string | null;
  event: OperatorEvent | string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'alert_id, seq::text AS seq, project_id, type, target, status, attempts, http_status, error, event, created_at, updated_at';

const toRecord = (r: OperatorAlertRow): OperatorAlertRecord => ({
  alertId: r.alert_id,
  type: r.type,
  projectId: r.project_id,
  target: r.target,
  status: r.status,
  attempts: r.attempts,
  httpStatus: r.http_status,
  error: r.error,
  event: typeof r.event === 'string' ? (JSON.parse(r.event) as OperatorEvent) : r.event,
  createdAt: new Date(r.created_at).toISOString(),
  updatedAt: new Date(r.updated_at).toISOString(),
});

/** Records an operator alert as in progress; false when it was already recorded (the same event raised again). */
export async function recordOperatorAlert(db: Queryable, alert: { alertId: string; target: OperatorTarget; event: OperatorEvent }): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO operator_alerts (alert_id, event_id, project_id, type, target, event) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
     ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id`,
    [alert.alertId, alert.event.id, alert.event.projectId, alert.event.type, alert.target, JSON.stringify(alert.event)],
  );
  return rows.length === 1;
}

/**
 * Moves an operator alert on after an attempt (or a start that failed): its attempt count, last
 * answer and status. A final status is never moved back: a late write of an earlier attempt, or a
 * delivery that Temporal's own limit ended after its last attempt, does not undo an outcome.
 */
export async function updateOperatorAlert(
  db: Queryable,
  alertId: string,
  update: { status: OperatorAlertStatus; attempts?: number; httpStatus?: number | null; error: string | null },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE operator_alerts SET status = $2, attempts = GREATEST(attempts, COALESCE($3, attempts)),
       http_status = CASE WHEN $4::boolean THEN $5 ELSE http_status END, error = $6, updated_at = now()
     WHERE alert_id = $1 AND status = 'in_progress' RETURNING alert_id`,
    [alertId, update.status, update.attempts ?? null, update.httpStatus !== undefined, update.httpStatus ?? null, update.error],
  );
  return rows.length === 1;
}

/** An alert whose delivery could not start (failed, no attempt made) is in progress again once it has started. */
export async function reopenUnstartedOperatorAlert(db: Queryable, alertId: string): Promise<void> {
  await db.query(`UPDATE operator_alerts SET status = 'in_progress', error = NULL, updated_at = now() WHERE alert_id = $1 AND status = 'failed' AND attempts = 0`, [alertId]);
}

export async function getOperatorAlert(db: Queryable, alertId: string): Promise<OperatorAlertRecord | null> {
  const rows = await db.query<OperatorAlertRow>(`SELECT ${COLUMNS} FROM operator_alerts WHERE alert_id = $1`, [alertId]);
  return rows[0] ? toRecord(rows[0]) : null;
}

/**
 * An operator alert as its project sees it. The deployment's webhook is the operator's, not the
 * tenant's: its answers and errors (which can name the operator's host) are not shown, only that
 * the alert went there and how it ended.
 */
const asSeenByProject = (alert: OperatorAlertRecord): OperatorAlertRecord => (alert.target === 'deployment' ? { ...alert, httpStatus: null, error: null } : alert);

/**
 * The project's operator alerts (both targets; the deployment's without httpStatus and error), newest
 * first; `nextCursor` is the `before` of the next page, null on the last.
 */
export async function listOperatorAlerts(
  db: Queryable,
  projectId: string,
  page: { limit: number; before?: string },
): Promise<{ alerts: OperatorAlertRecord[]; nextCursor: string | null }> {
  const rows = await db.query<OperatorAlertRow>(
    `SELECT ${COLUMNS} FROM operator_alerts
     WHERE project_id = $1 AND ($2::bigint IS NULL OR operator_alerts.seq < $2::bigint)
     ORDER BY operator_alerts.seq DESC LIMIT $3`,
    [projectId, page.before ?? null, page.limit + 1],
  );
  const shown = rows.slice(0, page.limit);
  return { alerts: shown.map((r) => asSeenByProject(toRecord(r))), nextCursor: rows.length > page.limit ? shown[shown.length - 1].seq : null };
}
