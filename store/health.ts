import type { Operations } from '../runtime/deps';
import type { Queryable } from './db';

/**
 * Endpoint health per config (migration 007's columns; docs/endpoint-health.md): the streak of
 * failed deliveries since the last delivered one, its early warning and the disable it leads to.
 * Each outcome is one statement on the config's row, under its row lock, so two deliveries that
 * finish at once each count once and the warning is decided by one of them only.
 */

/** What a failed delivery did to its config's health; undefined when the config no longer exists. */
export interface FailureCounted {
  configId: string;
  workflowId: string;
  configName: string;
  consecutiveFailures: number;
  failingSince: string;
  /** the project's thresholds this failure was judged by */
  warnAfterFailures: number;
  disableAfterSeconds: number;
  /** this failure reached warnAfterFailures: config.failing is to be raised (once per streak) */
  warned: boolean;
  /** this failure disabled the config (failing for disableAfterSeconds): config.disabled is to be raised */
  disabled: { at: string; reason: string } | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();

/**
 * The project's thresholds, as SQL: project_settings.health overrides the deployment's
 * (ALERTS_ENDPOINT_*) field by field. $1 is the project, $3 and $4 the deployment's values.
 */
const THRESHOLDS = `
  SELECT COALESCE((SELECT (health->>'warnAfterFailures')::int FROM project_settings WHERE project_id = $1), $3::int) AS warn_after,
         COALESCE((SELECT (health->>'disableAfterSeconds')::int FROM project_settings WHERE project_id = $1), $4::int) AS disable_after`;

/**
 * A delivery of the config ended failed: one more failure in the streak (it starts now if none was
 * running). Reaching warnAfterFailures sets warned_at (once per streak); failing for at least
 * disableAfterSeconds (0: never) with at least warnAfterFailures failures disables an enabled config
 * with a reason saying since when and how many, and writes the audit entry, in the same statement.
 */
export async function countFailure(db: Queryable, health: Operations['health'], projectId: string, configId: string): Promise<FailureCounted | undefined> {
  const rows = await db.query<{
    id: string; workflow_id: string; name: string; consecutive_failures: number; failing_since: Date;
    disabled_at: Date | null; disabled_reason: string | null; warn: boolean; disable: boolean; warn_after: number; disable_after: number;
  }>(
    `WITH thresholds AS (${THRESHOLDS}
     ), previous AS (
       SELECT id, enabled, disabled_reason, warned_at, consecutive_failures + 1 AS failures, COALESCE(failing_since, now()) AS since
       FROM alert_configs WHERE project_id = $1 AND id = $2 FOR UPDATE
     ), decided AS (
       SELECT p.*, t.warn_after, t.disable_after,
              (p.warned_at IS NULL AND p.failures >= t.warn_after) AS warn,
              (p.enabled AND t.disable_after > 0 AND p.failures >= t.warn_after AND now() - p.since >= t.disable_after * interval '1 second') AS disable
       FROM previous p, thresholds t
     ), updated AS (
       UPDATE alert_configs c SET
         consecutive_failures = d.failures, last_failure_at = now(), failing_since = d.since,
         warned_at = CASE WHEN d.warn THEN now() ELSE c.warned_at END,
         enabled = CASE WHEN d.disable THEN false ELSE c.enabled END,
         disabled_at = CASE WHEN d.disable THEN now() ELSE c.disabled_at END,
         disabled_reason = CASE WHEN d.disable THEN
           'failing since ' || to_char(d.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ': ' || d.failures ||
           ' deliveries failed in a row and none was delivered for ' || d.disable_after || ' s'
           ELSE c.disabled_reason END,
         updated_at = CASE WHEN d.disable THEN now() ELSE c.updated_at END
       FROM decided d WHERE c.project_id = $1 AND c.id = d.id
       RETURNING c.id, c.workflow_id, c.name, c.consecutive_failures, c.failing_since, c.disabled_at, c.disabled_reason, d.warn, d.disable,
                 d.warn_after, d.disable_after, d.disabled_reason AS previous_reason
     ), audit AS (
       INSERT INTO alert_audit_log (project_id, token_id, action, config_id, workflow_id, changes)
       SELECT $1, NULL, 'config.disabled', id, workflow_id,
              jsonb_build_array(jsonb_build_object('field', 'enabled', 'from', true, 'to', false),
                                jsonb_build_object('field', 'disabledReason', 'from', previous_reason, 'to', disabled_reason))
       FROM updated WHERE disable
     )
     SELECT id, workflow_id, name, consecutive_failures, failing_since, disabled_at, disabled_reason, warn, disable, warn_after, disable_after FROM updated`,
    [projectId, configId, health.warnAfterFailures, health.disableAfterSeconds],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    configId: r.id,
    workflowId: r.workflow_id,
    configName: r.name,
    consecutiveFailures: r.consecutive_failures,
    failingSince: iso(r.failing_since),
    warnAfterFailures: r.warn_after,
    disableAfterSeconds: r.disable_after,
    warned: r.warn,
    disabled: r.disable ? { at: iso(r.disabled_at!), reason: r.disabled_reason! } : null,
  };
}

/** A delivery of the config was delivered: the streak ends (and its warning with it). */
export async function countSuccess(db: Queryable, projectId: string, configId: string): Promise<void> {
  await db.query(
    `UPDATE alert_configs SET consecutive_failures = 0, last_success_at = now(), failing_since = NULL, warned_at = NULL
     WHERE project_id = $1 AND id = $2`,
    [projectId, configId],
  );
}

/** Re-enabling starts the endpoint afresh: no streak, no warning, not disabled (the last success and failure times stay). */
export async function resetHealth(db: Queryable, projectId: string, configId: string): Promise<void> {
  await db.query(
    `UPDATE alert_configs SET consecutive_failures = 0, failing_since = NULL, warned_at = NULL, disabled_at = NULL
     WHERE project_id = $1 AND id = $2`,
    [projectId, configId],
  );
}

/** The config's state before a re-enable, under its row lock; undefined: no such config in the project. */
export interface BeforeReenable {
  workflowId: string;
  name: string;
  enabled: boolean;
  disabledReason: string | null;
}

/** Locks the config's row for a re-enable (in the caller's transaction) and reads its state. */
export async function lockForReenable(tx: Queryable, projectId: string, configId: string): Promise<BeforeReenable | undefined> {
  const rows = await tx.query<{ workflow_id: string; name: string; enabled: boolean; disabled_reason: string | null }>(
    'SELECT workflow_id, name, enabled, disabled_reason FROM alert_configs WHERE project_id = $1 AND id = $2 FOR UPDATE',
    [projectId, configId],
  );
  const r = rows[0];
  return r && { workflowId: r.workflow_id, name: r.name, enabled: r.enabled, disabledReason: r.disabled_reason };
}

/** Turns the config back on: no disable reason, and its health starts afresh (resetHealth). */
export async function reenableConfig(tx: Queryable, projectId: string, configId: string): Promise<void> {
  await tx.query(
    `UPDATE alert_configs SET enabled = true, disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0, failing_since = NULL, warned_at = NULL, updated_at = now()
     WHERE project_id = $1 AND id = $2`,
    [projectId, configId],
  );
}
