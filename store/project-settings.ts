import type { ProjectSettings, ProjectSettingsUpdate } from '../api/schemas';
import { maskUrl, MASK } from '../lib/audit';
import { newWebhookSecret, open, seal, type Keyring } from '../lib/crypto';
import type { FailureRateSettings, HealthSettings } from '../lib/schemas';
import type { AuditChange } from '../lib/schemas';
import type { Operations } from '../runtime/deps';
import { recordAudit, SERVICE_ACTOR, type Actor } from './audit';
import type { Db, Queryable } from './db';

/**
 * A project's own operating settings (project_settings, migration 007): its operator webhook, sealed
 * like a config's URL and secret, and overrides of the deployment's health and failure-rate
 * thresholds, field by field. A project without a row has the deployment's settings.
 */

interface SettingsRow {
  project_id: string;
  key_id: string | null;
  operator_sealed: string | null;
  health: Partial<HealthSettings> | string;
  failure_rate: Partial<FailureRateSettings> | string;
}

export interface OperatorWebhook {
  url: string;
  secret: string;
}

const jsonb = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);
// bound to its project: a sealed webhook copied onto another project's row does not open
const aad = (projectId: string) => `${projectId}/operator-webhook`;

async function settingsRow(db: Queryable, projectId: string, forUpdate = false): Promise<SettingsRow | undefined> {
  const rows = await db.query<SettingsRow>(
    `SELECT project_id, key_id, operator_sealed, health, failure_rate FROM project_settings WHERE project_id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [projectId],
  );
  return rows[0];
}

const openWebhook = (keyring: Keyring, row: SettingsRow | undefined): OperatorWebhook | null =>
  row?.operator_sealed && row.key_id ? (JSON.parse(open(keyring, { keyId: row.key_id, ciphertext: row.operator_sealed }, aad(row.project_id))) as OperatorWebhook) : null;

/** The project's own operator webhook (URL and secret), or null when it has none. */
export async function projectOperatorWebhook(db: Queryable, keyring: Keyring, projectId: string): Promise<OperatorWebhook | null> {
  return openWebhook(keyring, await settingsRow(db, projectId));
}

// The one place a project's thresholds are read: its overrides, field by field, over the deployment's.
const healthOf = (row: Pick<SettingsRow, 'health'> | undefined, defaults: HealthSettings): HealthSettings => ({ ...defaults, ...(row ? jsonb(row.health) : {}) });
const failureRateOf = (row: Pick<SettingsRow, 'failure_rate'> | undefined, defaults: FailureRateSettings): FailureRateSettings => ({
  ...defaults,
  ...(row ? jsonb(row.failure_rate) : {}),
});

/** The project's effective endpoint health thresholds: its overrides over the deployment's `defaults`. */
export async function projectHealthSettings(db: Queryable, projectId: string, defaults: HealthSettings): Promise<HealthSettings> {
  return healthOf(await settingsRow(db, projectId), defaults);
}

/**
 * The effective failure-rate settings of every project that overrides any (the failure-rate monitor
 * reads them once per check); a project not in the map has the deployment's `defaults`.
 */
export async function failureRateSettingsByProject(db: Queryable, defaults: FailureRateSettings): Promise<Map<string, FailureRateSettings>> {
  const rows = await db.query<Pick<SettingsRow, 'project_id' | 'failure_rate'>>(`SELECT project_id, failure_rate FROM project_settings WHERE failure_rate <> '{}'::jsonb`);
  return new Map(rows.map((r) => [r.project_id, failureRateOf(r, defaults)]));
}

function effective(keyring: Keyring, row: SettingsRow | undefined, defaults: Pick<Operations, 'health' | 'failureRate'>): ProjectSettings {
  const webhook = openWebhook(keyring, row);
  return { operatorWebhook: webhook ? { url: webhook.url } : null, health: healthOf(row, defaults.health), failureRate: failureRateOf(row, defaults.failureRate) };
}

/** The project's settings as GET /api/project/settings answers them: effective values, no secret. */
export async function getProjectSettings(db: Queryable, keyring: Keyring, projectId: string, defaults: Pick<Operations, 'health' | 'failureRate'>): Promise<ProjectSettings> {
  return effective(keyring, await settingsRow(db, projectId), defaults);
}

/** Overrides merged with an update: a field given replaces it, null drops every override. */
const merged = <T extends object>(current: Partial<T>, update: Partial<T> | null | undefined): Partial<T> =>
  update === undefined ? current : update === null ? {} : { ...current, ...update };

function changesOf<T extends object>(group: string, before: Partial<T>, after: Partial<T>): AuditChange[] {
  const fields = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<keyof T & string>;
  return [...fields]
    .filter((f) => before[f] !== after[f])
    .map((f) => ({ field: `${group}.${f}`, ...(before[f] !== undefined ? { from: before[f] as number } : {}), ...(after[f] !== undefined ? { to: after[f] as number } : {}) }));
}

/**
 * Applies PUT /api/project/settings (the URL already checked against the egress policy) and records
 * `project.settings_updated` in the same transaction. An operator webhook without a secret keeps the
 * current one, or gets a generated one, answered this once as `operatorSecret`.
 */
export async function saveProjectSettings(
  db: Db,
  keyring: Keyring,
  projectId: string,
  update: ProjectSettingsUpdate,
  defaults: Pick<Operations, 'health' | 'failureRate'>,
  actor: Actor = SERVICE_ACTOR,
): Promise<ProjectSettings> {
  return db.transaction(async (tx) => {
    const row = await settingsRow(tx, projectId, true);
    const before = openWebhook(keyring, row);
    let webhook = before;
    let generated: string | undefined;
    if (update.operatorWebhook === null) webhook = null;
    else if (update.operatorWebhook) {
      const secret = update.operatorWebhook.secret ?? before?.secret ?? (generated = newWebhookSecret());
      webhook = { url: update.operatorWebhook.url, secret };
    }
    const health = merged<HealthSettings>(row ? jsonb(row.health) : {}, update.health);
    const failureRate = merged<FailureRateSettings>(row ? jsonb(row.failure_rate) : {}, update.failureRate);
    const sealed = webhook ? seal(keyring, JSON.stringify(webhook), aad(projectId)) : null;
    const [saved] = await tx.query<SettingsRow>(
      `INSERT INTO project_settings (project_id, key_id, operator_sealed, health, failure_rate) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)
       ON CONFLICT (project_id) DO UPDATE SET key_id = $2, operator_sealed = $3, health = $4::jsonb, failure_rate = $5::jsonb, updated_at = now()
       RETURNING project_id, key_id, operator_sealed, health, failure_rate`,
      [projectId, sealed?.keyId ?? null, sealed?.ciphertext ?? null, JSON.stringify(health), JSON.stringify(failureRate)],
    );
    const changes: AuditChange[] = [];
    if (before?.url !== webhook?.url) changes.push({ field: 'operatorWebhook.url', ...(before ? { from: maskUrl(before.url) } : {}), ...(webhook ? { to: maskUrl(webhook.url) } : {}) });
    if (webhook && before?.secret !== webhook.secret) changes.push({ field: 'operatorWebhook.secret', ...(before ? { from: MASK } : {}), to: MASK });
    changes.push(...changesOf('health', row ? jsonb(row.health) : {}, health), ...changesOf('failureRate', row ? jsonb(row.failure_rate) : {}, failureRate));
    await recordAudit(tx, { projectId, actor, action: 'project.settings_updated', configId: null, workflowId: null, changes });
    return { ...effective(keyring, saved, defaults), ...(generated ? { operatorSecret: generated } : {}) };
  });
}
