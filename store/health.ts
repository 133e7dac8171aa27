import type { HealthSettings } from '../lib/schemas';
import { recordAudit, SERVICE_ACTOR } from './audit';
import type { Queryable } from './db';
import { FINISH_DELIVERY } from './deliveries';

/**
 * Endpoint health per config (migration 007's columns; docs/endpoint-health.md): the streak of
 * failed deliveries since the last delivered one, its early warning and the disable it leads to.
 * A failure is counted by one statement on the config's row, under its row lock, so two deliveries
 * that finish at once each count once and the warning is decided by one of them only. The caller
 * counts in the transaction that ended the delivery (dispatch/endpoint-health.ts), so a delivery is
 * counted once however often the step that ended it runs.
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
 * The audit entry of a disable by the service (a 410, or failing too long; tokenId null): the one
 * writer of `config.disabled`, in the transaction that disabled the config.
 */
export async function auditServiceDisable(
  tx: Queryable,
  d: { projectId: string; configId: string; workflowId: string; wasEnabled: boolean; previousReason: string | null; reason: string },
): Promise<void> {
  await recordAudit(tx, {
    projectId: d.projectId,
    actor: SERVICE_ACTOR,
    action: 'config.disabled',
    configId: d.configId,
    workflowId: d.workflowId,
    changes: [...(d.wasEnabled ? [{ field: 'enabled', from: true, to: false }] : []), { field: 'disabledReason', from: d.previousReason, to: d.reason }],
  });
}

/** The start of the reason a config disabled for failing too long has (the other reason is a 410's). */
export const FAILING_REASON_PREFIX = 'failing since ';

/**
 * A delivery of the config ended failed: one more failure in the streak (it starts now if none was
 * running). Reaching warnAfterFailures sets warned_at (once per streak); failing for at least
 * disableAfterSeconds (0: never) with at least warnAfterFailures failures disables an enabled config
 * with a reason saying since when and how many, and writes the audit entry. `thresholds`: the
 * project's (store/project-settings.ts's projectHealthSettings). Run it in a transaction: the
 * disable and its audit entry are two statements.
 */
export async function countFailure(tx: Queryable, thresholds: HealthSettings, projectId: string, configId: string): Promise<FailureCounted | undefined> {
  const rows = await tx.query<{
    id: string; workflow_id: string; name: string; consecutive_failures: number; failing_since: Date;
    disabled_at: Date | null; disabled_reason: string | null; previous_reason: string | null; warn: boolean; disable: boolean;
  }>(
    `WITH previous AS (
       SELECT id, enabled, disabled_reason, warned_at, consecutive_failures + 1 AS failures, COALESCE(failing_since, now()) AS since
       FROM alert_configs WHERE project_id = $1 AND id = $2 FOR UPDATE
     ), decided AS (
       SELECT p.*,
              (p.warned_at IS NULL AND p.failures >= $3::int) AS warn,
              (p.enabled AND $4::int > 0 AND p.failures >= $3::int AND now() - p.since >= $4::int * interval '1 second') AS disable
       FROM previous p
     )
     UPDATE alert_configs c SET
       consecutive_failures = d.failures, last_failure_at = now(), failing_since = d.since,
       warned_at = CASE WHEN d.warn THEN now() ELSE c.warned_at END,
       enabled = CASE WHEN d.disable THEN false ELSE c.enabled END,
       disabled_at = CASE WHEN d.disable THEN now() ELSE c.disabled_at END,
       disabled_reason = CASE WHEN d.disable THEN
         '${FAILING_REASON_PREFIX}' || to_char(d.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ': ' || d.failures ||
         ' deliveries failed in a row and none was delivered for ' || $4::int || ' s'
         ELSE c.disabled_reason END,
       updated_at = CASE WHEN d.disable THEN now() ELSE c.updated_at END
     FROM decided d WHERE c.project_id = $1 AND c.id = d.id
     RETURNING c.id, c.workflow_id, c.name, c.consecutive_failures, c.failing_since, c.disabled_at, c.disabled_reason, d.disabled_reason AS previous_reason, d.warn, d.disable`,
    [projectId, configId, thresholds.warnAfterFailures, thresholds.disableAfterSeconds],
  );
  const r = rows[0];
  if (!r) return undefined;
  if (r.disable) await auditServiceDisable(tx, { projectId, configId: r.id, workflowId: r.workflow_id, wasEnabled: true, previousReason: r.previous_reason, reason: r.disabled_reason! });
  return {
    configId: r.id,
    workflowId: r.workflow_id,
    configName: r.name,
    consecutiveFailures: r.consecutive_failures,
    failingSince: iso(r.failing_since),
    warnAfterFailures: thresholds.warnAfterFailures,
    disableAfterSeconds: thresholds.disableAfterSeconds,
    warned: r.warn,
    disabled: r.disable ? { at: iso(r.disabled_at!), reason: r.disabled_reason! } : null,
  };
}

/** A delivery of the config was delivered: the streak ends (and its warning with it). */
/**
 * A delivered alert ends its config's streak of failures. A healthy config's row is rewritten only
 * when its last_success_at is older than this: not on every delivered alert, each of which would
 * write and lock the one row that every delivery of the config ends on.
 */
export const LAST_SUCCESS_RESOLUTION_SECONDS = 60;

const COUNT_SUCCESS = (project: string, config: string) => `UPDATE alert_configs SET consecutive_failures = 0, last_success_at = now(), failing_since = NULL, warned_at = NULL
  WHERE project_id = ${project} AND id = ${config}
    AND (consecutive_failures <> 0 OR failing_since IS NOT NULL OR warned_at IS NOT NULL OR last_success_at IS NULL
         OR last_success_at < now() - interval '${LAST_SUCCESS_RESOLUTION_SECONDS} seconds')`;

export async function countSuccess(db: Queryable, projectId: string, configId: string): Promise<void> {
  await db.query(COUNT_SUCCESS('$1', '$2'), [projectId, configId]);
}

/**
 * The alert path's common end, in one statement: moves the delivery to delivered and, when this
 * statement moved it and `counts` (not a test alert), counts the success. Answers whether it moved it.
 */
export async function endDelivered(db: Queryable, deliveryId: string, httpStatus: number | null, ref: { projectId: string; configId: string; counts: boolean }): Promise<boolean> {
  const [row] = await db.query<{ moved: boolean }>(
    `WITH moved AS (${FINISH_DELIVERY}),
     counted AS (${COUNT_SUCCESS('$5', '$6')} AND $7::boolean AND EXISTS (SELECT 1 FROM moved))
     SELECT EXISTS (SELECT 1 FROM moved) AS moved`,
    [deliveryId, 'delivered', httpStatus, null, ref.projectId, ref.configId, ref.counts],
  );
  return row.moved;
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

/**
 * Turns the config back on: no disable reason, and its health starts afresh (no streak, no warning;
 * the last success and failure times stay). The one re-enable, for POST …/enable and for saving a
 * config with enabled true (store/configs.ts's saveConfig), in the caller's transaction after it
 * locked the row.
 */
export async function reenableConfig(tx: Queryable, projectId: string, configId: string): Promise<void> {
  await tx.query(
    `UPDATE alert_configs SET enabled = true, disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0, failing_since = NULL, warned_at = NULL, updated_at = now()
     WHERE project_id = $1 AND id = $2`,
    [projectId, configId],
  );
}

/** A config's health as it is now, for raising again what a repeated step had decided (dispatch/endpoint-health.ts). */
export interface HealthState {
  workflowId: string;
  configName: string;
  enabled: boolean;
  consecutiveFailures: number;
  failingSince: string | null;
  warnedAt: string | null;
  disabledAt: string | null;
  disabledReason: string | null;
}

export async function healthState(db: Queryable, projectId: string, configId: string): Promise<HealthState | undefined> {
  const rows = await db.query<{
    workflow_id: string; name: string; enabled: boolean; consecutive_failures: number; failing_since: Date | null; warned_at: Date | null; disabled_at: Date | null; disabled_reason: string | null;
  }>(
    'SELECT workflow_id, name, enabled, consecutive_failures, failing_since, warned_at, disabled_at, disabled_reason FROM alert_configs WHERE project_id = $1 AND id = $2',
    [projectId, configId],
  );
  const r = rows[0];
  return r && {
    workflowId: r.workflow_id, configName: r.name, enabled: r.enabled, consecutiveFailures: r.consecutive_failures,
    failingSince: r.failing_since && iso(r.failing_since), warnedAt: r.warned_at && iso(r.warned_at),
    disabledAt: r.disabled_at && iso(r.disabled_at), disabledReason: r.disabled_reason,
  };
}
