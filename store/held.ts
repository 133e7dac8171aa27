import { open, seal, type Keyring } from '../lib/crypto';
import type { AlertConditionName, ExecutionEvent } from '../lib/schemas';
import type { Queryable } from './db';

/**
 * Alerts held while the service has a config disabled (alert_held, migration 007;
 * docs/endpoint-health.md): the event sealed as alert_deliveries keeps it, one row per
 * (config, event, condition), until re-enabling sends or discards them.
 */

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
