import { recordAudit, type Actor } from './audit';
import type { Db, Queryable } from './db';
import { tableExists } from './retention';

/** What erasing a project deleted, by kind (the answer of POST /api/project/erase and its audit entry). */
export interface ErasedCounts {
  configs: number;
  deliveries: number;
  logs: number;
  held: number;
  settings: number;
  operatorAlerts: number;
  /** Temporal workflow executions (terminated when running, then deleted) */
  workflows: number;
}

const deleteCount = async (tx: Queryable, table: string, projectId: string): Promise<number> => {
  const [row] = await tx.query<{ deleted: number }>(
    `WITH deleted AS (DELETE FROM ${table} WHERE project_id = $1 RETURNING 1) SELECT count(*)::int AS deleted FROM deleted`,
    [projectId],
  );
  return row.deleted;
};

/**
 * Deletes every row of the project in the store (configs, attempt logs, deliveries with their sealed
 * events, held alerts, settings, operator alerts) and records `project.erased` with the counts, in one
 * transaction: either all of it is gone and the entry says so, or nothing changed. The audit log
 * itself is kept (its entries hold no secrets, URLs or payloads; they expire after
 * ALERTS_AUDIT_RETENTION_DAYS), and so are the API tokens, so the caller can still read the entry.
 */
export async function eraseProjectRows(db: Db, projectId: string, actor: Actor, workflows: number): Promise<ErasedCounts> {
  return db.transaction(async (tx) => {
    const configs = await deleteCount(tx, 'alert_configs', projectId);
    const held = await deleteCount(tx, 'alert_held', projectId);
    const deliveries = await deleteCount(tx, 'alert_deliveries', projectId);
    const logs = await deleteCount(tx, 'alert_logs', projectId);
    const settings = await deleteCount(tx, 'project_settings', projectId);
    // migration 008's table (operator alerts): absent in a store without it
    const operatorAlerts = (await tableExists(tx, 'operator_alerts')) ? await deleteCount(tx, 'operator_alerts', projectId) : 0;
    const erased: ErasedCounts = { configs, deliveries, logs, held, settings, operatorAlerts, workflows };
    await recordAudit(tx, {
      projectId,
      actor,
      action: 'project.erased',
      configId: null,
      workflowId: null,
      changes: Object.entries(erased).map(([field, count]) => ({ field, from: count, to: 0 })),
    });
    return erased;
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
