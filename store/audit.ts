import type { AuditAction, AuditChange, AuditEntry } from '../lib/schemas';
import type { Queryable } from './db';

/** Who made a change: an API token (its id, never the token), or the service itself (tokenId null). */
export interface Actor {
  tokenId: string | null;
}

export const SERVICE_ACTOR: Actor = { tokenId: null };

/** Records one config change; callers run it in the transaction of the change itself. */
export async function recordAudit(
  db: Queryable,
  entry: { projectId: string; actor: Actor; action: AuditAction; configId: string | null; workflowId: string | null; changes: AuditChange[] },
): Promise<void> {
  await db.query(
    `INSERT INTO alert_audit_log (project_id, token_id, action, config_id, workflow_id, changes) VALUES ($1, $2, $3, $4, $5, $6::jsonb)`,
    [entry.projectId, entry.actor.tokenId, entry.action, entry.configId, entry.workflowId, JSON.stringify(entry.changes)],
  );
}

interface AuditRow {
  id: string;
  action: AuditAction;
  config_id: string | null;
  workflow_id: string | null;
  token_id: string | null;
  changes: AuditChange[];
  created_at: Date;
}

/** The project's audit entries, newest first; `nextCursor` is the `before` of the next page, null on the last. */
export async function listAudit(
  db: Queryable,
  projectId: string,
  filter: { configId?: string; before?: string; limit: number },
): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
  const rows = await db.query<AuditRow>(
    `SELECT id::text AS id, action, config_id, workflow_id, token_id, changes, created_at
     FROM alert_audit_log
     WHERE project_id = $1 AND ($2::text IS NULL OR config_id = $2) AND ($3::bigint IS NULL OR id < $3::bigint)
     ORDER BY alert_audit_log.id DESC LIMIT $4`,
    [projectId, filter.configId ?? null, filter.before ?? null, filter.limit + 1],
  );
  const page = rows.slice(0, filter.limit).map((r) => ({
    id: r.id,
    action: r.action,
    configId: r.config_id,
    workflowId: r.workflow_id,
    tokenId: r.token_id,
    changes: r.changes,
    createdAt: new Date(r.created_at).toISOString(),
  }));
  return { entries: page, nextCursor: rows.length > filter.limit ? page[page.length - 1].id : null };
}
