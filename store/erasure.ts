import type { z } from 'zod';
import type { erasedProjectSchema } from '../api/schemas';
import { recordAudit, type Actor } from './audit';
import type { Db, Queryable } from './db';
import { tableExists } from './retention';

/** What erasing a project deleted, by kind (the answer of POST /api/project/erase and its audit entry). */
export type ErasedCounts = z.infer<typeof erasedProjectSchema>['erased'];
/** The store's part of it: the rows of each kind one erase pass deleted. */
export type ErasedRows = Omit<ErasedCounts, 'workflows'>;

export const NOTHING_ERASED: ErasedCounts = { configs: 0, deliveries: 0, logs: 0, held: 0, settings: 0, operatorAlerts: 0, workflows: 0 };

/** The counts so far plus one pass's. */
export const addErased = (sum: ErasedCounts, pass: Partial<ErasedCounts>): ErasedCounts =>
  Object.fromEntries(Object.entries(sum).map(([kind, n]) => [kind, n + (pass[kind as keyof ErasedCounts] ?? 0)])) as ErasedCounts;

const deleteRows = async (tx: Queryable, table: string, projectId: string): Promise<number> => {
  const [row] = await tx.query<{ deleted: number }>(
    `WITH deleted AS (DELETE FROM ${table} WHERE project_id = $1 RETURNING 1) SELECT count(*)::int AS deleted FROM deleted`,
    [projectId],
  );
  return row.deleted;
};

/**
 * One pass of erasing a project from the store, in one transaction: deletes every row of the project
 * (configs, attempt logs, deliveries with their sealed events, held alerts, settings, operator alerts).
 * Answers what it deleted, and the ids of the operator alerts it deleted: their workflows carry no
 * search attribute, so these ids are how the next pass finds one raised after this pass listed them.
 *
 * With `audit`, the same transaction records `project.erased` with the totals (`audit.before`, the
 * earlier passes' counts and the workflows, plus this pass's rows): the entry and the last deletions
 * commit together. The audit log itself is kept (its entries hold no secrets, URLs or payloads; they
 * expire after ALERTS_AUDIT_RETENTION_DAYS), and so are the API tokens, so the caller can still read
 * the entry.
 */
export async function eraseProjectRows(
  db: Db,
  projectId: string,
  audit?: { actor: Actor; before: ErasedCounts },
): Promise<{ deleted: ErasedRows; operatorAlertIds: string[]; erased?: ErasedCounts }> {
  return db.transaction(async (tx) => {
    // A delivery ending in the meantime locks its delivery row, then its config's (dispatch/endpoint-health.ts,
    // store/held.ts): deleting in that order, configs last, makes it wait for this transaction, never deadlock with it.
    const deliveries = await deleteRows(tx, 'alert_deliveries', projectId);
    const logs = await deleteRows(tx, 'alert_logs', projectId);
    const held = await deleteRows(tx, 'alert_held', projectId);
    const settings = await deleteRows(tx, 'project_settings', projectId);
    // silences (migration 011) hold the project's comments; not counted in the answer (its schema has no field for them)
    await deleteRows(tx, 'alert_silences', projectId);
    // delay watchers (migration 012): each config's committed wake; its workflow is terminated with the project's
    if (await tableExists(tx, 'delay_watchers')) await deleteRows(tx, 'delay_watchers', projectId);
    // migration 008's table (operator alerts): absent in a store without it
    const operatorAlertIds = (await tableExists(tx, 'operator_alerts'))
      ? (await tx.query<{ alert_id: string }>('DELETE FROM operator_alerts WHERE project_id = $1 RETURNING alert_id', [projectId])).map((r) => r.alert_id)
      : [];
    const configs = await deleteRows(tx, 'alert_configs', projectId);
    const deleted: ErasedRows = { configs, deliveries, logs, held, settings, operatorAlerts: operatorAlertIds.length };
    if (!audit) return { deleted, operatorAlertIds };
    const erased = addErased(audit.before, deleted);
    await recordAudit(tx, {
      projectId,
      actor: audit.actor,
      action: 'project.erased',
      configId: null,
      workflowId: null,
      changes: Object.entries(erased).map(([field, count]) => ({ field, from: count, to: 0 })),
    });
    return { deleted, operatorAlertIds, erased };
  });
}

/**
 * The workflow ids of the project's operator alerts (an operator alert's id is its workflow's,
 * `op:<target>:<event id>`): those workflows carry no search attributes, so the erasure finds them here.
 */
export async function operatorAlertWorkflowIds(db: Queryable, projectId: string): Promise<string[]> {
  if (!(await tableExists(db, 'operator_alerts'))) return [];
  return (await db.query<{ alert_id: string }>('SELECT alert_id FROM operator_alerts WHERE project_id = $1 ORDER BY seq', [projectId])).map((r) => r.alert_id);
}
