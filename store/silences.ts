import { randomBytes } from 'node:crypto';
import { notFound } from '../lib/errors';
import type { AuditChange, SilenceInput } from '../lib/schemas';
import type { StoredSilence } from '../lib/silences';
import { recordAudit, SERVICE_ACTOR, type Actor } from './audit';
import type { Db, Queryable } from './db';

/** Silences (maintenance windows; alert_silences, migration 011; docs/silences.md). Whether one is in force is lib/silences.ts's. */

export const newSilenceId = () => `sil_${randomBytes(12).toString('base64url')}`;

/** A one-off silence that ended longer ago than this is left out of the list, unless all are asked for. */
export const ENDED_SILENCES_LISTED_DAYS = 7;

interface SilenceRow {
  id: string;
  config_id: string | null;
  workflow_id: string | null;
  starts_at: Date | null;
  ends_at: Date | null;
  cron: string | null;
  duration_seconds: number | null;
  time_zone: string | null;
  comment: string;
  created_at: Date;
}

const COLUMNS = 's.id, s.config_id, s.workflow_id, s.starts_at, s.ends_at, s.cron, s.duration_seconds, s.time_zone, s.comment, s.created_at';

const iso = (d: Date | null) => (d === null ? null : new Date(d).toISOString());

const toSilence = (r: SilenceRow): StoredSilence => ({
  id: r.id,
  configId: r.config_id,
  workflowId: r.workflow_id,
  from: iso(r.starts_at),
  until: iso(r.ends_at),
  recurrence: r.cron === null ? null : { cron: r.cron, durationSeconds: r.duration_seconds!, timeZone: r.time_zone! },
  comment: r.comment,
  createdAt: new Date(r.created_at).toISOString(),
});

/** What the audit log records of a silence: its fields, none a secret. */
function silenceFields(s: StoredSilence): [string, string | number | null][] {
  return [
    ['id', s.id],
    ['configId', s.configId],
    ['workflowId', s.workflowId],
    ['from', s.from],
    ['until', s.until],
    ['recurrence.cron', s.recurrence?.cron ?? null],
    ['recurrence.durationSeconds', s.recurrence?.durationSeconds ?? null],
    ['recurrence.timeZone', s.recurrence?.timeZone ?? null],
    ['comment', s.comment],
  ];
}
const created = (s: StoredSilence): AuditChange[] => silenceFields(s).filter(([, v]) => v !== null).map(([field, to]) => ({ field, to }));
const deleted = (s: StoredSilence): AuditChange[] => silenceFields(s).filter(([, v]) => v !== null).map(([field, from]) => ({ field, from }));

/** The MeshHook workflow of a config of the project; not_found for a config of another project or none. */
async function workflowOfConfig(db: Queryable, projectId: string, configId: string): Promise<string> {
  const rows = await db.query<{ workflow_id: string }>('SELECT workflow_id FROM alert_configs WHERE project_id = $1 AND id = $2', [projectId, configId]);
  if (rows.length === 0) throw notFound(`alert config ${configId}`);
  return rows[0].workflow_id;
}

/**
 * Stores a silence (checked by lib/silences.ts silenceInputIssues) and its audit entry
 * `silence.created` in one transaction. A config's silence must be of a config of this project.
 */
export async function createSilence(db: Db, projectId: string, input: SilenceInput, actor: Actor = SERVICE_ACTOR): Promise<StoredSilence> {
  return db.transaction(async (tx) => {
    // the config's workflow goes into the audit entry, as a config change's does
    const auditWorkflowId = input.configId !== undefined ? await workflowOfConfig(tx, projectId, input.configId) : input.workflowId!;
    const [row] = await tx.query<SilenceRow>(
      `INSERT INTO alert_silences AS s (id, project_id, config_id, workflow_id, starts_at, ends_at, cron, duration_seconds, time_zone, comment, token_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       RETURNING ${COLUMNS}`,
      [
        newSilenceId(), projectId, input.configId ?? null, input.workflowId ?? null,
        input.recurrence ? null : input.from, input.recurrence ? null : input.until,
        input.recurrence?.cron ?? null, input.recurrence?.durationSeconds ?? null, input.recurrence?.timeZone ?? null,
        input.comment ?? '', actor.tokenId,
      ],
    );
    const silence = toSilence(row);
    await recordAudit(tx, { projectId, actor, action: 'silence.created', configId: silence.configId, workflowId: auditWorkflowId, changes: created(silence) });
    return silence;
  });
}

/**
 * The project's silences, oldest first: all, or those of one config (`configId`; not_found for a
 * config not of this project), or those of one MeshHook workflow as a whole (`workflowId`; not its
 * configs' own: silencesFor reads what covers a workflow's configs). One-off silences that ended
 * more than ENDED_SILENCES_LISTED_DAYS ago are left out unless `all`.
 */
export async function listSilences(
  db: Queryable,
  projectId: string,
  filter: { configId?: string; workflowId?: string; all?: boolean; nowMs?: number } = {},
): Promise<StoredSilence[]> {
  if (filter.configId !== undefined) await workflowOfConfig(db, projectId, filter.configId);
  const endedBefore = new Date((filter.nowMs ?? Date.now()) - ENDED_SILENCES_LISTED_DAYS * 86_400_000);
  const rows = await db.query<SilenceRow>(
    `SELECT ${COLUMNS} FROM alert_silences s
     WHERE s.project_id = $1 AND ($2::text IS NULL OR s.config_id = $2) AND ($3::text IS NULL OR s.workflow_id = $3)
       AND ($4 OR s.cron IS NOT NULL OR s.ends_at > $5)
     ORDER BY s.created_at, s.id`,
    [projectId, filter.configId ?? null, filter.workflowId ?? null, filter.all ?? false, endedBefore],
  );
  return rows.map(toSilence);
}

// the silences of workflow $2 and of its configs ($1 the project), through the two partial indexes of migration 011
const COVERING_WORKFLOW = `s.project_id = $1 AND (s.workflow_id = $2 OR s.config_id IN (SELECT c.id FROM alert_configs c WHERE c.project_id = $1 AND c.workflow_id = $2))`;

/**
 * Every silence of a MeshHook workflow or of one of its configs, in one indexed query: what
 * dispatch reads once per event, then asks lib/silences.ts activeSilence for each matched config.
 */
export async function silencesFor(db: Queryable, projectId: string, workflowId: string): Promise<StoredSilence[]> {
  const rows = await db.query<SilenceRow>(`SELECT ${COLUMNS} FROM alert_silences s WHERE ${COVERING_WORKFLOW} ORDER BY s.created_at, s.id`, [projectId, workflowId]);
  return rows.map(toSilence);
}

/** Deletes a silence of the project, with its audit entry `silence.deleted`, in one transaction; not_found when there is none. */
export async function deleteSilence(db: Db, projectId: string, silenceId: string, actor: Actor = SERVICE_ACTOR): Promise<void> {
  await db.transaction(async (tx) => {
    const rows = await tx.query<SilenceRow & { config_workflow_id: string | null }>(
      `DELETE FROM alert_silences s WHERE s.project_id = $1 AND s.id = $2
       RETURNING ${COLUMNS}, (SELECT c.workflow_id FROM alert_configs c WHERE c.project_id = s.project_id AND c.id = s.config_id) AS config_workflow_id`,
      [projectId, silenceId],
    );
    if (rows.length === 0) throw notFound(`silence ${silenceId}`);
    const silence = toSilence(rows[0]);
    await recordAudit(tx, {
      projectId, actor, action: 'silence.deleted', configId: silence.configId, workflowId: silence.workflowId ?? rows[0].config_workflow_id, changes: deleted(silence),
    });
  });
}
