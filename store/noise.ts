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
  // one array per column: one statement text for any number of rows (prepared once on PGlite)
  const columns: unknown[][] = Array.from({ length: 9 }, () => []);
  for (const { ref, outcome, note } of rows) {
    [ref.projectId, ref.deliveryId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, outcome, note].forEach((value, i) => columns[i].push(value));
  }
  await db.query(
    `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, error)
     SELECT project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, 0, outcome, error
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
       AS v (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, outcome, error)
     ON CONFLICT (delivery_id, attempt) DO NOTHING`,
    columns,
  );
}

/** The decision logged for alert `deliveryId` (its attempt-0 row), or undefined. */
export async function loggedNoiseDecision(db: Queryable, deliveryId: string): Promise<{ outcome: NoiseOutcome; note: string } | undefined> {
  const rows = await db.query<{ outcome: NoiseOutcome; error: string | null }>('SELECT outcome, error FROM alert_logs WHERE delivery_id = $1 AND attempt = 0', [deliveryId]);
  return rows[0] && { outcome: rows[0].outcome, note: rows[0].error ?? rows[0].outcome };
}
