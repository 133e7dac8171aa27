import { open, seal, type Keyring } from '../lib/crypto';
import { notFound } from '../lib/errors';
import type { AlertConditionName, AttemptLog, DeliveryRecord, DeliveryRef, DeliveryStatus, ExecutionEvent } from '../lib/schemas';
import type { Queryable } from './db';

const iso = (d: Date | string) => new Date(d).toISOString();

/**
 * Creates a delay watch's row as scheduled. A row that exists is left as it is: this step runs again
 * whenever the watch's first workflow task is lost, and by then the row may have gone on to
 * in_progress (its first attempt counted): moving it back would number the next attempt 1 again.
 */
export async function recordScheduledDelivery(
  db: Queryable,
  keyring: Keyring,
  ref: DeliveryRef,
  event: ExecutionEvent,
  redeliveryOf?: string,
): Promise<void> {
  const sealed = seal(keyring, JSON.stringify(event), `${ref.projectId}/${ref.deliveryId}`);
  await db.query(
    `INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, redelivery_of, key_id, event_sealed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $8, $9, $10)
     ON CONFLICT (delivery_id) DO NOTHING`,
    [ref.deliveryId, ref.projectId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, redeliveryOf ?? null, sealed.keyId, sealed.ciphertext],
  );
}

/**
 * Moves delivery $1 to its final status $2 (HTTP status $3, error $4), RETURNING a row when this
 * statement moved it. A final status is never overwritten by another (a retried workflow task must
 * not turn delivered into suppressed). Also the first part of store/health.ts's endDelivered.
 */
export const FINISH_DELIVERY = `UPDATE alert_deliveries SET status = $2, http_status = COALESCE($3, http_status), error = $4, updated_at = now()
  WHERE delivery_id = $1 AND status IN ('scheduled', 'in_progress') RETURNING 1`;

export async function finishDelivery(
  db: Queryable,
  deliveryId: string,
  result: { status: Exclude<DeliveryStatus, 'scheduled' | 'in_progress'>; httpStatus?: number | null; error?: string | null },
): Promise<boolean> {
  const rows = await db.query(FINISH_DELIVERY, [deliveryId, result.status, result.httpStatus ?? null, result.error ?? null]);
  // true: this call ended the delivery (the one that counts it into its config's health)
  return rows.length > 0;
}

/** What one attempt came to, as its log row keeps it (the columns of AttemptLog it writes), and the webhook-* headers it sent (null: it sent nothing). */
export type AttemptRecord = Pick<AttemptLog, 'attempt' | 'outcome'> &
  Partial<Pick<AttemptLog, 'httpStatus' | 'error' | 'durationMs' | 'responseSnippet'>> & { signatureHeaders?: Record<string, string> | null };

/**
 * One attempt's log row and the delivery's attempt count, in one statement; a replay of the same
 * attempt keeps the first row. With `delivery`, the delivery moves on to that status too (in_progress
 * while it will be retried), unless it has already finished.
 */
export async function logAttempt(
  db: Queryable,
  ref: DeliveryRef,
  attempt: AttemptRecord,
  delivery?: { status: Exclude<DeliveryStatus, 'scheduled' | 'suppressed'>; error: string | null },
): Promise<void> {
  await db.query(
    `WITH inserted AS (
       INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, http_status, error, duration_ms, response_snippet, signature_headers)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)
       ON CONFLICT (delivery_id, attempt) DO NOTHING RETURNING attempt
     )
     UPDATE alert_deliveries SET attempts = GREATEST(attempts, $8), http_status = COALESCE($10, http_status), updated_at = now(),
       status = COALESCE($15::text, status), error = CASE WHEN $15::text IS NULL THEN error ELSE $16 END
     WHERE delivery_id = $2
       AND CASE WHEN $15::text IS NULL THEN EXISTS (SELECT 1 FROM inserted) ELSE status IN ('scheduled', 'in_progress') END`,
    [
      ref.projectId, ref.deliveryId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition,
      attempt.attempt, attempt.outcome, attempt.httpStatus ?? null, attempt.error ?? null, attempt.durationMs ?? null, attempt.responseSnippet ?? null,
      attempt.signatureHeaders ? JSON.stringify(attempt.signatureHeaders) : null,
      delivery?.status ?? null, delivery?.error ?? null,
    ],
  );
}

/** URL, headers and body of a delivery, as rendered once for every attempt. */
export interface RenderedRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

const requestAad = (ref: Pick<DeliveryRef, 'projectId' | 'deliveryId'>) => `${ref.projectId}/${ref.deliveryId}/request`;

/**
 * Before the first attempt, made inside the workflow task (activities/delivery.ts): creates the
 * delivery row, or moves a delay watch's on to in_progress, counts the attempt and keeps the
 * rendered request, in one statement. A row already in progress means an earlier run of this step
 * was cut off (its worker died): this run's attempt number is one more, and the request that run
 * rendered is the one answered, so every attempt sends the same bytes. An earlier run whose attempt
 * was logged with a final outcome but cut off before it ended the delivery answers `logged`: nothing
 * is counted or sent again, the caller ends the delivery with that outcome. A delivery that already
 * finished answers `finished`: the step ran to its end before and must not send again.
 */
export async function startFirstAttempt(
  db: Queryable,
  keyring: Keyring,
  ref: DeliveryRef,
  event: ExecutionEvent,
  rendered: RenderedRequest | null,
  redeliveryOf?: string,
): Promise<{ attempt: number; request: RenderedRequest | null } | { finished: { status: DeliveryStatus; httpStatus: number | null; error: string | null } }
  /** an earlier run's attempt has a final outcome in the log but the delivery was not ended yet (it was cut off in between) */
  | { logged: { outcome: 'delivered' | 'failed'; httpStatus: number | null; error: string | null } }
> {
  const sealed = seal(keyring, JSON.stringify(event), `${ref.projectId}/${ref.deliveryId}`);
  const request = rendered && seal(keyring, JSON.stringify(rendered), requestAad(ref));
  const rows = await db.query<{
    attempt: number | null; request_key_id: string | null; request_sealed: string | null; status: DeliveryStatus | null; http_status: number | null; error: string | null;
    logged_outcome: 'delivered' | 'failed' | null; logged_http_status: number | null; logged_error: string | null;
  }>(
    `WITH prior AS (
       SELECT status, http_status, error FROM alert_deliveries WHERE delivery_id = $1
     ), logged AS (
       SELECT outcome, http_status, error FROM alert_logs WHERE delivery_id = $1 AND outcome IN ('delivered', 'failed') ORDER BY attempt DESC LIMIT 1
     ), started AS (
       INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, redelivery_of, key_id, event_sealed, attempts, request_key_id, request_sealed)
       SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, 'in_progress', $8::text, $9::text, $10::text, 1, $11::text, $12::text
       WHERE NOT EXISTS (SELECT 1 FROM logged)
       ON CONFLICT (delivery_id) DO UPDATE SET status = 'in_progress', updated_at = now(),
         attempts = CASE WHEN alert_deliveries.status = 'in_progress' THEN alert_deliveries.attempts + 1 ELSE GREATEST(alert_deliveries.attempts, 1) END,
         request_key_id = CASE WHEN alert_deliveries.request_sealed IS NULL THEN EXCLUDED.request_key_id ELSE alert_deliveries.request_key_id END,
         request_sealed = COALESCE(alert_deliveries.request_sealed, EXCLUDED.request_sealed)
       WHERE alert_deliveries.status IN ('scheduled', 'in_progress')
       RETURNING attempts, request_key_id, request_sealed
     )
     SELECT (SELECT attempts FROM started) AS attempt, (SELECT request_key_id FROM started) AS request_key_id, (SELECT request_sealed FROM started) AS request_sealed,
       prior.status, prior.http_status, prior.error, logged.outcome AS logged_outcome, logged.http_status AS logged_http_status, logged.error AS logged_error
     FROM (SELECT 1) AS one LEFT JOIN prior ON true LEFT JOIN logged ON true`,
    [ref.deliveryId, ref.projectId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, redeliveryOf ?? null, sealed.keyId, sealed.ciphertext, request?.keyId ?? null, request?.ciphertext ?? null],
  );
  const row = rows[0];
  if (row.attempt !== null) {
    const kept = row.request_sealed && row.request_key_id ? (JSON.parse(open(keyring, { keyId: row.request_key_id, ciphertext: row.request_sealed }, requestAad(ref))) as RenderedRequest) : null;
    return { attempt: row.attempt, request: kept };
  }
  if (row.logged_outcome && (row.status === 'scheduled' || row.status === 'in_progress')) {
    return { logged: { outcome: row.logged_outcome, httpStatus: row.logged_http_status, error: row.logged_error } };
  }
  return { finished: { status: row.status!, httpStatus: row.http_status, error: row.error } };
}

/** An attempt's final outcome as its log row keeps it; `sent`: it reached the wire (it has signature headers). */
export interface LoggedFinalAttempt {
  attempt: number;
  outcome: 'delivered' | 'failed';
  httpStatus: number | null;
  error: string | null;
  sent: boolean;
}

/**
 * The final outcome (delivered, or failed for good) logged for an attempt after `afterAttempt`: a
 * retried attempt's earlier run POSTed and logged it, and was cut off before Temporal heard of it.
 */
export async function finalAttemptAfter(db: Queryable, deliveryId: string, afterAttempt: number): Promise<LoggedFinalAttempt | undefined> {
  const rows = await db.query<{ attempt: number; outcome: 'delivered' | 'failed'; http_status: number | null; error: string | null; sent: boolean }>(
    `SELECT attempt, outcome, http_status, error, signature_headers IS NOT NULL AS sent FROM alert_logs
     WHERE delivery_id = $1 AND attempt > $2 AND outcome IN ('delivered', 'failed') ORDER BY attempt LIMIT 1`,
    [deliveryId, afterAttempt],
  );
  const r = rows[0];
  return r && { attempt: r.attempt, outcome: r.outcome, httpStatus: r.http_status, error: r.error, sent: r.sent };
}

/** The error of an attempt counted but never logged: its step was cut off (a worker that died) after counting it. */
export const LOST_ATTEMPT_ERROR = 'no outcome recorded: the worker stopped during this attempt (it timed out and was retried)';

/**
 * The rows of attempts 1 to `last` that have none (a lost one, LOST_ATTEMPT_ERROR in parameter
 * `error`), the delivery's ref in $1–$7; `from`: FROM items that `last` reads.
 */
const insertLostRows = (last: string, error: string, from = '') =>
  `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, error)
   SELECT $1, $2, $3, $4, $5, $6, $7, n, 'retrying', ${error}
   FROM ${from}generate_series(1, ${last}) AS n
   ON CONFLICT (delivery_id, attempt) DO NOTHING`;

/**
 * Attempt numbers below `attempt` with no row were cut off by a worker that
 * died mid-POST; give each a row so the log has one per attempt.
 */
export async function recordLostAttempts(db: Queryable, ref: DeliveryRef, attempt: number): Promise<void> {
  if (attempt <= 1) return;
  await db.query(insertLostRows('$8::int - 1', '$9'), [ref.projectId, ref.deliveryId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, attempt, LOST_ATTEMPT_ERROR]);
}

/**
 * Counts a retried attempt (the deliverWebhook activity) just before its POST, and gives the attempts
 * counted before it and never logged (cut off) their rows, in one statement. The delivery's count is
 * the attempt number, not Temporal's count of the activity's runs: a run that failed before it got
 * here (the store down) counted nothing, so an outage costs the retry plan no attempt.
 * `afterAttempt`: the attempts made inside workflow tasks; `maxAttempts`: the plan's. Answers the
 * attempt's number, or `usedUp` (the attempts counted, every one of them made or cut off: none is
 * left), or `ended` (another run ended the delivery meanwhile: held), or `missing` (the delivery has
 * no row: its project was erased).
 */
export async function claimRetriedAttempt(
  db: Queryable,
  ref: DeliveryRef,
  afterAttempt: number,
  maxAttempts: number,
): Promise<{ attempt: number } | { usedUp: number } | { ended: DeliveryStatus } | { missing: true }> {
  const rows = await db.query<{ attempt: number | null; counted: number | null; status: DeliveryStatus | null }>(
    `WITH claimed AS (
       UPDATE alert_deliveries SET attempts = GREATEST(attempts, $8) + 1, updated_at = now()
       WHERE delivery_id = $2 AND status IN ('scheduled', 'in_progress') AND GREATEST(attempts, $8) < $9
       RETURNING attempts
     ), lost AS (${insertLostRows('claimed.attempts - 1', '$10', 'claimed, ')})
     SELECT (SELECT attempts FROM claimed) AS attempt, d.counted, d.status
     FROM (SELECT 1) AS one LEFT JOIN (SELECT GREATEST(attempts, $8) AS counted, status FROM alert_deliveries WHERE delivery_id = $2) AS d ON true`,
    [ref.projectId, ref.deliveryId, ref.configId, ref.workflowId, ref.runId, ref.eventId, ref.condition, afterAttempt, maxAttempts, LOST_ATTEMPT_ERROR],
  );
  const { attempt, counted, status } = rows[0];
  if (attempt !== null) return { attempt };
  if (counted === null || status === null) return { missing: true };
  return status === 'scheduled' || status === 'in_progress' ? { usedUp: counted } : { ended: status };
}

interface DeliveryRow {
  delivery_id: string; project_id: string; config_id: string; workflow_id: string; run_id: string; event_id: string;
  condition: AlertConditionName; status: DeliveryStatus; attempts: number; http_status: number | null; error: string | null;
  redelivery_of: string | null; key_id: string; event_sealed: string; created_at: Date; updated_at: Date;
}

const toDelivery = (r: DeliveryRow): DeliveryRecord => ({
  deliveryId: r.delivery_id, projectId: r.project_id, configId: r.config_id, workflowId: r.workflow_id, runId: r.run_id,
  eventId: r.event_id, condition: r.condition, status: r.status, attempts: r.attempts, httpStatus: r.http_status,
  error: r.error, redeliveryOf: r.redelivery_of, createdAt: iso(r.created_at), updatedAt: iso(r.updated_at),
});

export async function findDelivery(db: Queryable, projectId: string, deliveryId: string): Promise<DeliveryRecord | undefined> {
  const rows = await db.query<DeliveryRow>('SELECT * FROM alert_deliveries WHERE project_id = $1 AND delivery_id = $2', [projectId, deliveryId]);
  return rows[0] && toDelivery(rows[0]);
}

export async function deliveryEvent(db: Queryable, keyring: Keyring, projectId: string, deliveryId: string): Promise<{ delivery: DeliveryRecord; event: ExecutionEvent }> {
  const rows = await db.query<DeliveryRow>('SELECT * FROM alert_deliveries WHERE project_id = $1 AND delivery_id = $2', [projectId, deliveryId]);
  if (!rows[0]) throw notFound(`delivery ${deliveryId}`);
  const event = JSON.parse(open(keyring, { keyId: rows[0].key_id, ciphertext: rows[0].event_sealed }, `${projectId}/${deliveryId}`)) as ExecutionEvent;
  return { delivery: toDelivery(rows[0]), event };
}

export async function listDeliveries(
  db: Queryable,
  projectId: string,
  filter: { configId?: string; limit: number },
): Promise<DeliveryRecord[]> {
  const rows = await db.query<DeliveryRow>(
    `SELECT * FROM alert_deliveries WHERE project_id = $1 AND ($2::text IS NULL OR config_id = $2)
     ORDER BY created_at DESC, delivery_id DESC LIMIT $3`,
    [projectId, filter.configId ?? null, filter.limit],
  );
  return rows.map(toDelivery);
}

interface LogRow {
  id: string; delivery_id: string; config_id: string; workflow_id: string; run_id: string; event_id: string; condition: AlertConditionName;
  attempt: number; outcome: AttemptLog['outcome']; http_status: number | null; error: string | null; duration_ms: number | null;
  response_snippet: string | null; created_at: Date;
}

const toLog = (r: LogRow): AttemptLog => ({
  deliveryId: r.delivery_id, configId: r.config_id, workflowId: r.workflow_id, runId: r.run_id, eventId: r.event_id,
  condition: r.condition, attempt: r.attempt, outcome: r.outcome, httpStatus: r.http_status, error: r.error,
  durationMs: r.duration_ms, responseSnippet: r.response_snippet, createdAt: iso(r.created_at),
});

export interface LogFilter {
  configId?: string;
  workflowId?: string;
  runId?: string;
  deliveryId?: string;
  /** id of the last row of the previous page */
  before?: string;
  limit: number;
}

/** Newest first; `nextCursor` is the id to pass as `before` for the next page, or null on the last page. */
export async function listLogs(db: Queryable, projectId: string, f: LogFilter): Promise<{ logs: AttemptLog[]; nextCursor: string | null }> {
  const rows = await db.query<LogRow>(
    `SELECT id::text AS id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome,
            http_status, error, duration_ms, response_snippet, created_at
     FROM alert_logs
     WHERE project_id = $1
       AND ($2::text IS NULL OR config_id = $2)
       AND ($3::text IS NULL OR workflow_id = $3)
       AND ($4::text IS NULL OR run_id = $4)
       AND ($5::text IS NULL OR delivery_id = $5)
       AND ($6::bigint IS NULL OR id < $6::bigint)
     ORDER BY alert_logs.id DESC LIMIT $7 -- the bigint column: the text alias "id" would sort 9 after 10`,
    [projectId, f.configId ?? null, f.workflowId ?? null, f.runId ?? null, f.deliveryId ?? null, f.before ?? null, f.limit + 1],
  );
  const page = rows.slice(0, f.limit);
  return { logs: page.map(toLog), nextCursor: rows.length > f.limit ? page[page.length - 1].id : null };
}

/** The webhook-* headers one attempt sent, when it sent any. */
export async function signatureHeadersOf(db: Queryable, projectId: string, deliveryId: string, attempt: number): Promise<Record<string, string> | null> {
  const rows = await db.query<{ signature_headers: Record<string, string> | string | null }>(
    `SELECT signature_headers FROM alert_logs WHERE project_id = $1 AND delivery_id = $2 AND attempt = $3`,
    [projectId, deliveryId, attempt],
  );
  const value = rows[0]?.signature_headers ?? null;
  return typeof value === 'string' ? (JSON.parse(value) as Record<string, string>) : value;
}

export async function attemptsOf(db: Queryable, projectId: string, deliveryId: string): Promise<AttemptLog[]> {
  const rows = await db.query<LogRow>(
    `SELECT id::text AS id, * FROM alert_logs WHERE project_id = $1 AND delivery_id = $2 ORDER BY attempt`,
    [projectId, deliveryId],
  );
  return rows.map(toLog);
}
