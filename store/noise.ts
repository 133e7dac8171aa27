import type { DeliveryRef, NoiseOutcome } from '../lib/schemas';
import type { Queryable } from './db';

/** One decision of the noise pipeline: the alert `ref` was not sent on its own, for `note`'s reason. */
export interface NoiseDecisionRow {
  ref: DeliveryRef;
  outcome: NoiseOutcome;
  /** shown as the log row's error: why, and where it went (the digest's delivery id, the silence, …) */
  note: string;
}

/**
 * The pipeline's decisions as log rows with attempt 0 (nothing was sent), in one statement; a
 * decision recorded before (a replayed workflow task, an event sent twice) keeps its first row.
 */
export async function recordNoiseDecisions(db: Queryable, rows: NoiseDecisionRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values: unknown[] = [];
  const tuples = rows.map(({ ref, outcome, note }, i) => {
    values.push(ref.projectId, ref.deliveryId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, outcome, note);
    const b = i * 9;
    return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, 0, $${b + 8}, $${b + 9})`;
  });
  await db.query(
    `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, error)
     VALUES ${tuples.join(', ')} ON CONFLICT (delivery_id, attempt) DO NOTHING`,
    values,
  );
}

/** The decision logged for alert `deliveryId` (its attempt-0 row), or undefined. */
export async function loggedNoiseDecision(db: Queryable, deliveryId: string): Promise<{ outcome: NoiseOutcome; note: string } | undefined> {
  const rows = await db.query<{ outcome: NoiseOutcome; error: string | null }>('SELECT outcome, error FROM alert_logs WHERE delivery_id = $1 AND attempt = 0', [deliveryId]);
  return rows[0] && { outcome: rows[0].outcome, note: rows[0].error ?? rows[0].outcome };
}
