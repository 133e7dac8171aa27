import { open, seal, type Keyring } from '../lib/crypto';
import { AlertsError } from '../lib/errors';
import type { AlertConditionName, DeliveryRef, ExecutionEvent } from '../lib/schemas';
import type { Db, Queryable } from './db';
import { logAttempt, recordLostAttempts } from './deliveries';

/**
 * Alerts held while the service has a config disabled (alert_held, migration 007;
 * docs/endpoint-health.md): the event sealed as alert_deliveries keeps it, one row per
 * (config, event, condition), until re-enabling sends or discards them.
 */

/**
 * How a held delivery's last log row and final error read: a failed "attempt" that sent nothing
 * because the alert was held. The text is the only mark alert_logs can keep without a column, so it
 * is written here only (heldError) and read here only (HELD_ATTEMPT): readers of the attempt log
 * that count failures (the insight chart, the failure-rate monitor) leave these rows out with it.
 */
const HELD_ERROR_PREFIX = 'held: ';

export const heldError = (reason: string) => `${HELD_ERROR_PREFIX}the alert config is disabled by the service (${reason}); re-enabling it sends or discards its held alerts`;

/** SQL: the alert_logs row (alias `l`) is a held alert's pseudo-attempt, not an attempt that failed. */
export const heldAttempt = (alias = 'alert_logs') => `COALESCE(${alias}.outcome = 'failed' AND ${alias}.error LIKE '${HELD_ERROR_PREFIX}%', false)`;

/** SQL: the alert_logs row (alias) is an attempt, not a held alert's pseudo-attempt. */
export const notHeldAttempt = (alias = 'alert_logs') => `NOT ${heldAttempt(alias)}`;

/** 409: the config has held alerts and the request did not say what to do with them. */
export function heldAlertsPending(count: number): AlertsError {
  return new AlertsError(
    'held_alerts_pending',
    `the config has ${count} held alert${count === 1 ? '' : 's'}: say what to do with ${count === 1 ? 'it' : 'them'} with held: "send" (oldest first, each signed afresh) or held: "discard"`,
    { heldCount: count, choices: ['send', 'discard'] },
  );
}

export interface HeldRef {
  projectId: string;
  configId: string;
  condition: AlertConditionName;
  /** the delivery that found the config disabled; absent when the event was held before any started */
  deliveryId?: string;
}

/** A held alert as the API lists it. */
export interface HeldAlert {
  id: string;
  eventId: string;
  runId: string;
  workflowId: string;
  condition: AlertConditionName;
  deliveryId: string | null;
  createdAt: string;
}

interface HeldRow {
  id: string; project_id: string; config_id: string; workflow_id: string; run_id: string; event_id: string;
  condition: AlertConditionName; delivery_id: string | null; key_id: string; event_sealed: string; created_at: Date;
}

// bound to its row's identity: a sealed event copied onto another row does not open
const eventAad = (r: { projectId: string; configId: string; eventId: string; condition: string }) => `${r.projectId}/${r.configId}/held/${r.eventId}/${r.condition}`;

const toHeld = (r: HeldRow): HeldAlert => ({
  id: r.id, eventId: r.event_id, runId: r.run_id, workflowId: r.workflow_id, condition: r.condition, deliveryId: r.delivery_id,
  createdAt: new Date(r.created_at).toISOString(),
});

/**
 * Holds one alert, if its config is still disabled by the service: `held`, `already_held` (this
 * event and condition were held before), or `not_disabled` (the config was re-enabled, or the user
 * turned it off: the caller does what it would for such a config). The config row is read FOR SHARE,
 * so a re-enable (which updates it) either waits for this hold and then sees it, or went first and
 * this finds the config enabled.
 */
export async function holdAlert(db: Queryable, keyring: Keyring, ref: HeldRef, event: ExecutionEvent): Promise<'held' | 'already_held' | 'not_disabled'> {
  const sealed = seal(keyring, JSON.stringify(event), eventAad({ ...ref, eventId: event.id }));
  const rows = await db.query<{ disabled: number; inserted: number }>(
    `WITH config AS (
       SELECT id FROM alert_configs WHERE project_id = $1 AND id = $2 AND NOT enabled AND disabled_reason IS NOT NULL FOR SHARE
     ), inserted AS (
       INSERT INTO alert_held (project_id, config_id, workflow_id, run_id, event_id, condition, delivery_id, key_id, event_sealed)
       SELECT $1, id, $3, $4, $5, $6, $7, $8, $9 FROM config
       ON CONFLICT (config_id, event_id, condition) DO NOTHING
       RETURNING id
     )
     SELECT (SELECT count(*) FROM config)::int AS disabled, (SELECT count(*) FROM inserted)::int AS inserted`,
    [ref.projectId, ref.configId, event.workflowId, event.runId, event.id, ref.condition, ref.deliveryId ?? null, sealed.keyId, sealed.ciphertext],
  );
  const { disabled, inserted } = rows[0];
  if (disabled === 0) return 'not_disabled';
  return inserted > 0 ? 'held' : 'already_held';
}

/**
 * A delivery that found its config disabled by the service holds its alert and ends, in one
 * transaction: the hold, the log row of the attempt it did not make (`held:` error) and the
 * delivery's final status `failed`. A retry of the step that did this finds the delivery ended and
 * sends nothing, whether or not a re-enable has sent or discarded the held alert since. `not_disabled`:
 * the config was re-enabled since the caller read it; nothing was written (the caller sends).
 */
export async function holdAndEndDelivery<Ended>(
  db: Db,
  keyring: Keyring,
  ref: DeliveryRef,
  event: ExecutionEvent,
  reason: string,
  /** the attempt's number, counted in the same transaction (the first attempt's start); `ended`: the delivery had ended, nothing is held */
  startAttempt: (tx: Queryable) => Promise<number | { ended: Ended }>,
): Promise<{ held: true; error: string } | { held: false } | { ended: Ended }> {
  const NOT_DISABLED = Symbol('not disabled');
  try {
    return await db.transaction(async (tx) => {
      const attempt = await startAttempt(tx);
      if (typeof attempt !== 'number') return attempt;
      const outcome = await holdAlert(tx, keyring, { projectId: ref.projectId, configId: ref.configId, condition: ref.condition, deliveryId: ref.deliveryId }, event);
      // rolls back the attempt's start too: the caller goes on as for an enabled config
      if (outcome === 'not_disabled') throw NOT_DISABLED;
      const error = heldError(reason);
      await recordLostAttempts(tx, ref, attempt);
      await logAttempt(tx, ref, { attempt, outcome: 'failed', error }, { status: 'failed', error });
      return { held: true as const, error };
    });
  } catch (err) {
    if (err === NOT_DISABLED) return { held: false };
    throw err;
  }
}

/** Whether the delivery's last attempt row is a held alert's (it ended held, store/held.ts's holdAndEndDelivery). */
export async function deliveryWasHeld(db: Queryable, deliveryId: string): Promise<boolean> {
  const rows = await db.query<{ held: boolean }>(
    `SELECT COALESCE((SELECT ${heldAttempt('l')} FROM alert_logs l WHERE l.delivery_id = $1 ORDER BY l.attempt DESC LIMIT 1), false) AS held`,
    [deliveryId],
  );
  return rows[0].held;
}

export async function countHeld(db: Queryable, projectId: string, configId: string): Promise<number> {
  const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM alert_held WHERE project_id = $1 AND config_id = $2', [projectId, configId]);
  return rows[0].n;
}

/** One page of a config's held alerts, oldest first; `nextCursor` (the last id) is the `before` of the next page, null on the last. */
export async function listHeld(
  db: Queryable,
  projectId: string,
  configId: string,
  page: { limit: number; before?: string },
): Promise<{ held: HeldAlert[]; nextCursor: string | null }> {
  const rows = await db.query<HeldRow>(
    `SELECT id::text AS id, project_id, config_id, workflow_id, run_id, event_id, condition, delivery_id, key_id, event_sealed, created_at
     FROM alert_held WHERE project_id = $1 AND config_id = $2 AND ($3::bigint IS NULL OR alert_held.id > $3::bigint)
     ORDER BY alert_held.id LIMIT $4`,
    [projectId, configId, page.before ?? null, page.limit + 1],
  );
  const held = rows.slice(0, page.limit).map(toHeld);
  return { held, nextCursor: rows.length > page.limit ? held[held.length - 1].id : null };
}

/** A held alert with its event opened, for sending it. */
export interface HeldForSending extends HeldAlert {
  event: ExecutionEvent;
}

/** The oldest held alerts of a config (at most `limit`), events opened. */
export async function oldestHeld(db: Queryable, keyring: Keyring, projectId: string, configId: string, limit: number): Promise<HeldForSending[]> {
  const rows = await db.query<HeldRow>(
    `SELECT id::text AS id, project_id, config_id, workflow_id, run_id, event_id, condition, delivery_id, key_id, event_sealed, created_at
     FROM alert_held WHERE project_id = $1 AND config_id = $2 ORDER BY alert_held.id LIMIT $3`,
    [projectId, configId, limit],
  );
  return rows.map((r) => ({
    ...toHeld(r),
    event: JSON.parse(open(keyring, { keyId: r.key_id, ciphertext: r.event_sealed }, eventAad({ projectId, configId, eventId: r.event_id, condition: r.condition }))) as ExecutionEvent,
  }));
}

export async function deleteHeld(db: Queryable, projectId: string, id: string): Promise<void> {
  await db.query('DELETE FROM alert_held WHERE project_id = $1 AND id = $2::bigint', [projectId, id]);
}

/** Deletes every held alert of a config; returns how many. */
export async function discardHeld(db: Queryable, projectId: string, configId: string): Promise<number> {
  const rows = await db.query<{ n: number }>(
    'WITH gone AS (DELETE FROM alert_held WHERE project_id = $1 AND config_id = $2 RETURNING 1) SELECT count(*)::int AS n FROM gone',
    [projectId, configId],
  );
  return rows[0].n;
}

/** Whether a delivery's first attempt has an outcome (a log row), or the delivery has ended: the next held alert may go. */
export async function firstAttemptDone(db: Queryable, deliveryId: string): Promise<boolean> {
  const rows = await db.query<{ done: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM alert_logs WHERE delivery_id = $1)
         OR EXISTS (SELECT 1 FROM alert_deliveries WHERE delivery_id = $1 AND status IN ('delivered', 'failed', 'suppressed')) AS done`,
    [deliveryId],
  );
  return rows[0].done;
}

/** The config's disable reason when the service disabled it (its alerts are held), else null; null too for a deleted config. */
export async function serviceDisabledReason(db: Queryable, projectId: string, configId: string): Promise<string | null> {
  const rows = await db.query<{ disabled_reason: string }>(
    'SELECT disabled_reason FROM alert_configs WHERE project_id = $1 AND id = $2 AND NOT enabled AND disabled_reason IS NOT NULL',
    [projectId, configId],
  );
  return rows[0]?.disabled_reason ?? null;
}
