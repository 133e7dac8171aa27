import { randomBytes } from 'node:crypto';
import { configChanges, MASK, secretChange, type AuditedConfig } from '../lib/audit';
import { open, seal, type Keyring } from '../lib/crypto';
import { newWebhookSecret } from '../lib/crypto';
import { notFound } from '../lib/errors';
import { NOISE_OFF, noiseOn, noiseSettingsOf, type AlertConfig, type AlertConfigInput, type AlertCondition, type NoiseSettings } from '../lib/schemas';
import type { PresetName } from '../lib/presets';
import type { JsonValue } from '../lib/templates';
import { recordAudit, SERVICE_ACTOR, type Actor } from './audit';
import type { Db, Queryable } from './db';
import { auditServiceDisable, reenableConfig } from './health';
import { countHeld, heldAlertsPending } from './held';
import { readCache } from './read-cache';

/** What is sealed in alert_configs.sealed: everything a leaked database row must not reveal. */
interface SealedParts {
  url: string;
  /** names and values: a value is often an API key, and a name can say whose */
  headers: Record<string, string>;
  /** newest first; an older secret keeps signing until expiresAt (rotation grace) */
  secrets: { secret: string; expiresAt: string | null }[];
  /**
   * payload.template, which can hold a static credential (a token in the body). Absent from rows
   * sealed before migration 005 whose template was null (the default payload): absent is null.
   */
  template?: JsonValue | null;
  /** payload.preset (lib/presets.ts), sealed with the template merged over it; absent: none */
  preset?: PresetName;
}

interface ConfigRow {
  id: string;
  project_id: string;
  workflow_id: string;
  name: string;
  enabled: boolean;
  disabled_reason: string | null;
  conditions: AlertCondition[];
  retry: AlertConfig['retry'];
  /** migration 011: the noise settings; null: all off */
  noise: NoiseSettings | null;
  timeout_ms: number;
  key_id: string;
  sealed: string;
  created_at: Date;
  updated_at: Date;
  // endpoint health (migration 007, store/health.ts) and the alerts held while disabled
  consecutive_failures: number;
  failing_since: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  warned_at: Date | null;
  held_count?: number;
}

/** A config with its decrypted parts, as the worker needs it. Never sent to a client. */
export interface StoredConfig extends AlertConfig {
  projectId: string;
  secrets: string[];
}

export const newConfigId = () => `cfg_${randomBytes(12).toString('base64url')}`;

// The sealed parts are bound to their project and config: copied onto another row, they do not open.
const sealParts = (keyring: Keyring, projectId: string, configId: string, parts: SealedParts) =>
  seal(keyring, JSON.stringify(parts), `${projectId}/${configId}`);
const openParts = (keyring: Keyring, row: Pick<ConfigRow, 'project_id' | 'id' | 'key_id' | 'sealed'>): SealedParts =>
  JSON.parse(open(keyring, { keyId: row.key_id, ciphertext: row.sealed }, `${row.project_id}/${row.id}`));

const BACKFILL_BATCH = 100;

/**
 * The step of migration 005 that SQL cannot do: moves each config's clear payload_template into
 * its sealed parts, re-sealed with the keyring's first key (as any write does), before the
 * migration's SQL drops the column. Runs in the migration's transaction (store/migrate.ts), in
 * batches so that a large table is not held in memory at once. Needs the keyring only when there
 * is a template to seal; returns how many rows it sealed.
 */
export async function sealClearPayloadTemplates(tx: Queryable, keyring: Keyring | undefined): Promise<number> {
  const clear = `payload_template IS NOT NULL AND jsonb_typeof(payload_template) <> 'null'`;
  const [{ n }] = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM alert_configs WHERE ${clear}`);
  if (n === 0) return 0;
  if (!keyring) {
    throw new Error(
      `${n === 1 ? '1 alert config has' : `${n} alert configs have`} a payload template in clear; sealing ${n === 1 ? 'it' : 'them'} needs ` +
        'the encryption keyring (ALERTS_ENCRYPTION_KEYS, or the embedded key file), which this migrate() was not given',
    );
  }
  type ClearRow = Pick<ConfigRow, 'id' | 'project_id' | 'key_id' | 'sealed'> & { payload_template: JsonValue };
  let after = '';
  for (;;) {
    const rows = await tx.query<ClearRow>(
      `SELECT id, project_id, key_id, sealed, payload_template FROM alert_configs WHERE ${clear} AND id > $1 ORDER BY id LIMIT ${BACKFILL_BATCH} FOR UPDATE`,
      [after],
    );
    for (const row of rows) {
      let parts: SealedParts;
      try {
        parts = openParts(keyring, row);
      } catch (err) {
        throw new Error(`alert config ${row.id}: ${(err as Error).message}`);
      }
      const sealed = sealParts(keyring, row.project_id, row.id, { ...parts, template: row.payload_template });
      await tx.query('UPDATE alert_configs SET key_id = $2, sealed = $3 WHERE id = $1', [row.id, sealed.keyId, sealed.ciphertext]);
    }
    if (rows.length < BACKFILL_BATCH) return n;
    after = rows[rows.length - 1].id;
  }
}

const isoOrNull = (d: Date | null) => (d === null ? null : new Date(d).toISOString());
/** The alerts held for the row's config (alert_held), as a column of a SELECT or RETURNING on alert_configs. */
export const HELD_COUNT = '(SELECT count(*)::int FROM alert_held h WHERE h.project_id = alert_configs.project_id AND h.config_id = alert_configs.id) AS held_count';

/** The health columns of alert_configs (migration 007) and HELD_COUNT, as every config answer shows them. */
export type HealthColumns = Pick<ConfigRow, 'consecutive_failures' | 'failing_since' | 'last_success_at' | 'last_failure_at' | 'warned_at' | 'held_count'>;
export const configHealth = (row: HealthColumns): StoredConfig['health'] => ({
  consecutiveFailures: row.consecutive_failures,
  failingSince: isoOrNull(row.failing_since),
  lastSuccessAt: isoOrNull(row.last_success_at),
  lastFailureAt: isoOrNull(row.last_failure_at),
  warnedAt: isoOrNull(row.warned_at),
  heldCount: row.held_count ?? 0,
});

function unsealRow(keyring: Keyring, row: ConfigRow): StoredConfig {
  const parts = openParts(keyring, row);
  const now = Date.now();
  return {
    id: row.id,
    projectId: row.project_id,
    workflowId: row.workflow_id,
    name: row.name,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    conditions: row.conditions,
    webhook: { url: parts.url, headers: parts.headers, timeoutMs: row.timeout_ms },
    payload: parts.preset ? { preset: parts.preset, template: parts.template ?? null } : { template: parts.template ?? null },
    retry: row.retry,
    ...noiseOf(row),
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
    health: configHealth(row),
    secrets: parts.secrets.filter((s) => s.expiresAt === null || Date.parse(s.expiresAt) > now).map((s) => s.secret),
  };
}

/** A row's noise settings, every field present (a row saved before migration 011 has none: all off). */
export const noiseOf = (row: Pick<ConfigRow, 'noise'>): NoiseSettings => ({ ...NOISE_OFF, ...(row.noise ?? {}) });

/** The noise settings of a config input, as the noise column keeps them (null when all are off). */
function noiseColumn(input: AlertConfigInput): string | null {
  const noise = noiseSettingsOf(input);
  return noiseOn(noise) ? JSON.stringify(noise) : null;
}

/** The public face of a config: no secret, no project. */
export function publicConfig(config: StoredConfig): AlertConfig {
  const { secrets: _secrets, projectId: _projectId, ...visible } = config;
  return visible;
}

export interface SaveResult {
  config: StoredConfig;
  created: boolean;
  /** the save turned a disabled config on (store/health.ts's reenableConfig, in the same transaction): its state before */
  reenabled?: { disabledReason: string | null; heldCount: number };
  /** set only when the service generated the secret: shown to the user this once */
  generatedSecret?: string;
}

/**
 * Creates (no id) or updates (id of a config of this project) a config, and
 * records the change in the audit log in the same transaction. Every write
 * re-seals the sensitive parts with the current primary key, so rotating
 * ALERTS_ENCRYPTION_KEYS re-encrypts rows as they are touched.
 */
export async function saveConfig(
  db: Db,
  keyring: Keyring,
  projectId: string,
  input: AlertConfigInput,
  secret?: string,
  actor: Actor = SERVICE_ACTOR,
  /** `heldDecided`: the request says what becomes of held alerts; without it, enabling a config that has any is a 409 (held_alerts_pending) */
  { heldDecided = false }: { heldDecided?: boolean } = {},
): Promise<SaveResult> {
  return db.transaction(async (tx) => {
    const created = !input.id;
    let secrets: SealedParts['secrets'];
    let generatedSecret: string | undefined;
    let before: StoredConfig | undefined;
    let heldCount = 0;
    const id = input.id ?? newConfigId();
    if (input.id) {
      const existing = await selectRows(tx, 'project_id = $1 AND id = $2 FOR UPDATE', [projectId, input.id]);
      if (existing.length === 0) throw notFound(`alert config ${input.id}`);
      before = unsealRow(keyring, existing[0]);
      // counted after the row lock, by a statement of its own (its snapshot sees a hold that committed while
      // this waited): a later hold waits for this save and then finds the config enabled (store/held.ts)
      heldCount = input.enabled ? await countHeld(tx, projectId, input.id) : 0;
      if (heldCount > 0 && !heldDecided) throw heldAlertsPending(heldCount);
      // turning it on: no disable reason, health afresh, in this transaction (the UPDATE below keeps both)
      if (input.enabled && !before.enabled) await reenableConfig(tx, projectId, input.id);
      const previous = openParts(keyring, existing[0]);
      secrets = secret ? [{ secret, expiresAt: null }] : previous.secrets;
    } else {
      if (!secret) secret = generatedSecret = newWebhookSecret();
      secrets = [{ secret, expiresAt: null }];
    }
    const sealed = sealParts(keyring, projectId, id, { url: input.webhook.url, headers: input.webhook.headers, secrets, template: input.payload.template, ...(input.payload.preset ? { preset: input.payload.preset } : {}) });
    const values = [
      id, projectId, input.workflowId, input.name, input.enabled,
      JSON.stringify(input.conditions), JSON.stringify(input.retry),
      input.webhook.timeoutMs, sealed.keyId, sealed.ciphertext, noiseColumn(input),
    ];
    const rows = created
      ? await tx.query<ConfigRow>(
          `INSERT INTO alert_configs (id, project_id, workflow_id, name, enabled, conditions, retry, timeout_ms, key_id, sealed, noise)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11::jsonb) RETURNING *, ${HELD_COUNT}`,
          values,
        )
      : await tx.query<ConfigRow>(
          `UPDATE alert_configs SET workflow_id = $3, name = $4, enabled = $5,
             conditions = $6::jsonb, retry = $7::jsonb, timeout_ms = $8,
             key_id = $9, sealed = $10, noise = $11::jsonb, updated_at = now()
           WHERE id = $1 AND project_id = $2 RETURNING *, ${HELD_COUNT}`,
          values,
        );
    const config = unsealRow(keyring, rows[0]);
    await recordAudit(tx, {
      projectId,
      actor,
      action: created ? 'config.created' : 'config.updated',
      configId: id,
      workflowId: config.workflowId,
      changes: [...configChanges(before, config), ...(secret ? [secretChange(!created)] : [])],
    });
    const reenabled = before && !before.enabled && config.enabled ? { disabledReason: before.disabledReason, heldCount } : undefined;
    return { config, created, generatedSecret, ...(reenabled ? { reenabled } : {}) };
  });
}

async function selectRows(db: Queryable, where: string, params: unknown[]): Promise<ConfigRow[]> {
  return db.query<ConfigRow>(`SELECT *, ${HELD_COUNT} FROM alert_configs WHERE ${where}`, params);
}

export async function getConfig(db: Queryable, keyring: Keyring, projectId: string, configId: string): Promise<StoredConfig> {
  const rows = await selectRows(db, 'project_id = $1 AND id = $2', [projectId, configId]);
  if (rows.length === 0) throw notFound(`alert config ${configId}`);
  return unsealRow(keyring, rows[0]);
}

export async function listConfigs(db: Queryable, keyring: Keyring, projectId: string, workflowId?: string): Promise<StoredConfig[]> {
  const rows = workflowId
    ? await selectRows(db, 'project_id = $1 AND workflow_id = $2 ORDER BY created_at, id', [projectId, workflowId])
    : await selectRows(db, 'project_id = $1 ORDER BY workflow_id, created_at, id', [projectId]);
  return rows.map((row) => unsealRow(keyring, row));
}

export async function deleteConfig(db: Db, keyring: Keyring, projectId: string, configId: string, actor: Actor = SERVICE_ACTOR): Promise<void> {
  await db.transaction(async (tx) => {
    const rows = await tx.query<ConfigRow>('DELETE FROM alert_configs WHERE project_id = $1 AND id = $2 RETURNING *', [projectId, configId]);
    if (rows.length === 0) throw notFound(`alert config ${configId}`);
    // its own silences match nothing any more (a workflow's silences stay: they are the workflow's)
    await tx.query('DELETE FROM alert_silences WHERE project_id = $1 AND config_id = $2', [projectId, configId]);
    await recordAudit(tx, { projectId, actor, action: 'config.deleted', configId, workflowId: rows[0].workflow_id, changes: configChanges(deletedConfig(keyring, rows[0]), undefined) });
  });
}

/** What the audit log keeps of a deleted row; one whose key is gone (so its sealed parts do not open) can still be deleted. */
function deletedConfig(keyring: Keyring, row: ConfigRow): AuditedConfig {
  // unknown without the key: recorded as a masked URL and template, without headers
  let webhook: AuditedConfig['webhook'] = { url: '', headers: {}, timeoutMs: row.timeout_ms };
  let payload: AuditedConfig['payload'] = { template: MASK };
  try {
    ({ webhook, payload } = unsealRow(keyring, row));
  } catch {
    /* keep the masked forms */
  }
  return {
    workflowId: row.workflow_id,
    name: row.name,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    conditions: row.conditions,
    webhook,
    payload,
    retry: row.retry,
    ...noiseOf(row),
  };
}

/** Enabled configs of a MeshHook workflow, without decrypting anything: what event matching needs. */
export async function enabledConfigsFor(db: Queryable, projectId: string, workflowId: string): Promise<{ id: string; conditions: AlertCondition[] }[]> {
  return db.query('SELECT id, conditions FROM alert_configs WHERE project_id = $1 AND workflow_id = $2 AND enabled', [projectId, workflowId]);
}

/**
 * Configs of a MeshHook workflow that events are matched against, without decrypting anything: the
 * enabled ones, and those the service disabled (`held`: their alerts are held, store/held.ts). A
 * config the user disabled is not matched.
 */
export type DispatchableConfig = { id: string; name: string; conditions: AlertCondition[]; held: boolean; noise: NoiseSettings; silenceable: boolean };

/** on the embedded store, one lookup per workflow until a config or a silence is written (store/read-cache.ts) */
const dispatchableCache = readCache<readonly DispatchableConfig[]>(['alert_configs', 'alert_silences']);

/** The configs an event of `workflowId` is matched against (shared by callers: not to be changed). */
export function dispatchableConfigsFor(db: Queryable, projectId: string, workflowId: string): Promise<readonly DispatchableConfig[]> {
  return dispatchableCache(db, `${projectId}\n${workflowId}`, () => readDispatchableConfigs(db, projectId, workflowId));
}

async function readDispatchableConfigs(db: Queryable, projectId: string, workflowId: string): Promise<DispatchableConfig[]> {
  // `silenceable`: a silence exists for the config or its workflow (in force or not), so that dispatch
  // reads silences only then: one round trip fewer on the alert path of every config without any
  const rows = await db.query<{ id: string; name: string; conditions: AlertCondition[]; held: boolean; noise: NoiseSettings | null; silenceable: boolean }>(
    `SELECT id, name, conditions, NOT enabled AS held, noise,
       EXISTS (SELECT 1 FROM alert_silences s WHERE s.project_id = alert_configs.project_id
                 AND (s.config_id = alert_configs.id OR s.workflow_id = alert_configs.workflow_id)) AS silenceable
     FROM alert_configs WHERE project_id = $1 AND workflow_id = $2 AND (enabled OR disabled_reason IS NOT NULL)`,
    [projectId, workflowId],
  );
  return rows.map((row) => ({ ...row, noise: noiseOf(row) }));
}

/**
 * Turns a config off on the service's own initiative (a 410 from its receiver), saying why; the
 * audit entry (token_id NULL: the service) is written by the same statement. `disabledAt` is kept
 * when the service had disabled it already (one config.disabled per disable); undefined: no such config.
 */
export async function disableConfig(
  db: Db,
  projectId: string,
  configId: string,
  reason: string,
): Promise<{ configId: string; workflowId: string; configName: string; disabledAt: string } | undefined> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ id: string; workflow_id: string; name: string; disabled_at: Date; was_enabled: boolean; previous_reason: string | null }>(
      `WITH previous AS (
         SELECT id, enabled, disabled_reason FROM alert_configs WHERE project_id = $1 AND id = $2 FOR UPDATE
       )
       UPDATE alert_configs c SET enabled = false, disabled_reason = $3, updated_at = now(),
         disabled_at = CASE WHEN previous.enabled OR c.disabled_at IS NULL THEN now() ELSE c.disabled_at END
       FROM previous WHERE c.project_id = $1 AND c.id = previous.id
       RETURNING c.id, c.workflow_id, c.name, c.disabled_at, previous.enabled AS was_enabled, previous.disabled_reason AS previous_reason`,
      [projectId, configId, reason],
    );
    const r = rows[0];
    if (!r) return undefined;
    await auditServiceDisable(tx, { projectId, configId: r.id, workflowId: r.workflow_id, wasEnabled: r.was_enabled, previousReason: r.previous_reason, reason });
    return { configId: r.id, workflowId: r.workflow_id, configName: r.name, disabledAt: new Date(r.disabled_at).toISOString() };
  });
}

/** A config's name, or null when it was deleted (without opening its sealed parts). */
export async function configName(db: Queryable, projectId: string, configId: string): Promise<string | null> {
  const rows = await db.query<{ name: string }>('SELECT name FROM alert_configs WHERE project_id = $1 AND id = $2', [projectId, configId]);
  return rows[0]?.name ?? null;
}

export const ROTATION_GRACE_MS = 24 * 3600 * 1000;

/**
 * Issues a new signing secret; the current ones keep signing until the grace
 * period ends, so receivers can switch without dropping an alert.
 */
export async function rotateSecret(
  db: Db,
  keyring: Keyring,
  projectId: string,
  configId: string,
  graceMs = ROTATION_GRACE_MS,
  actor: Actor = SERVICE_ACTOR,
): Promise<{ secret: string; previousExpiresAt: string }> {
  return db.transaction(async (tx) => {
    const rows = await selectRows(tx, 'project_id = $1 AND id = $2 FOR UPDATE', [projectId, configId]);
    if (rows.length === 0) throw notFound(`alert config ${configId}`);
    const parts = openParts(keyring, rows[0]);
    const now = Date.now();
    const previousExpiresAt = new Date(now + graceMs).toISOString();
    const secret = newWebhookSecret();
    const kept = parts.secrets
      .filter((s) => s.expiresAt === null || Date.parse(s.expiresAt) > now)
      .map((s) => ({ secret: s.secret, expiresAt: s.expiresAt === null || Date.parse(s.expiresAt) > now + graceMs ? previousExpiresAt : s.expiresAt }));
    const sealed = sealParts(keyring, projectId, configId, { ...parts, secrets: [{ secret, expiresAt: null }, ...kept] });
    await tx.query('UPDATE alert_configs SET key_id = $3, sealed = $4, updated_at = now() WHERE project_id = $1 AND id = $2', [projectId, configId, sealed.keyId, sealed.ciphertext]);
    await recordAudit(tx, {
      projectId,
      actor,
      action: 'config.secret_rotated',
      configId,
      workflowId: rows[0].workflow_id,
      changes: [secretChange(true), { field: 'previousSecretExpiresAt', to: previousExpiresAt }],
    });
    return { secret, previousExpiresAt };
  });
}

/** The secrets that sign a delivery right now: the current one and any still in their rotation grace. */
export async function signingSecrets(db: Queryable, keyring: Keyring, projectId: string, configId: string): Promise<string[]> {
  const rows = await db.query<Pick<ConfigRow, 'project_id' | 'id' | 'key_id' | 'sealed'>>(
    'SELECT project_id, id, key_id, sealed FROM alert_configs WHERE project_id = $1 AND id = $2',
    [projectId, configId],
  );
  if (rows.length === 0) throw notFound(`alert config ${configId}`);
  const parts = openParts(keyring, rows[0]);
  const now = Date.now();
  return parts.secrets.filter((s) => s.expiresAt === null || Date.parse(s.expiresAt) > now).map((s) => s.secret);
}

/** A config by id within a project, or undefined if it was deleted. */
export async function findConfig(db: Queryable, keyring: Keyring, projectId: string, configId: string): Promise<StoredConfig | undefined> {
  const rows = await selectRows(db, 'project_id = $1 AND id = $2', [projectId, configId]);
  return rows[0] && unsealRow(keyring, rows[0]);
}
