import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

/** The tables the sweep deletes from, in this order; the audit log has its own, longer period. */
export const RETENTION_TABLES = ['alert_logs', 'alert_deliveries', 'alert_held', 'operator_alerts', 'alert_audit_log'] as const;
export type RetentionTable = (typeof RETENTION_TABLES)[number];

/** Input of the RetentionSweep workflow (the retention schedule's action, runtime/schedules.ts). */
export interface RetentionSweepInput {
  /** rows older than this many days expire (ALERTS_RETENTION_DAYS) */
  days: number;
  /** audit entries older than this many days expire (ALERTS_AUDIT_RETENTION_DAYS) */
  auditDays: number;
  /** rows per DELETE statement */
  batchSize: number;
}

/** Input of the deleteExpiredRows activity: one table. */
export interface DeleteExpiredRowsInput {
  table: RetentionTable;
  /** ISO time: rows older than this go */
  before: string;
  batchSize: number;
}

export interface TableSweep {
  deleted: number;
  /** DELETE statements run (the last one deleted fewer than batchSize rows) */
  batches: number;
  /** the table is not in this store (operator_alerts before migration 008) */
  missing?: boolean;
}

export interface RetentionSweepResult {
  /** the workflow's clock when the sweep began (for a scheduled run: when the schedule fired) */
  at: string;
  before: string;
  auditBefore: string;
  batchSize: number;
  tables: Record<RetentionTable, TableSweep>;
  /** rows deleted, all tables */
  deleted: number;
}

const DAY_MS = 86_400_000;

// One activity per table, each DELETE its own statement; the activity heartbeats after each batch, so
// a worker that dies mid-table is noticed within a minute and the table is swept on (by another worker).
const sweepOptions = {
  startToCloseTimeout: '6h',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '10s', maximumInterval: '5m', maximumAttempts: 10 },
} as const;

const { reportRetentionSweep } = proxyLocalActivities<Activities>({ startToCloseTimeout: '10s' });

/**
 * Deletes what is older than the retention periods, table by table, in batches. Deterministic: the
 * cutoffs come from the workflow's clock, so a replay computes the same ones.
 */
export async function RetentionSweep(input: RetentionSweepInput): Promise<RetentionSweepResult> {
  const now = Date.now();
  const before = new Date(now - input.days * DAY_MS).toISOString();
  const auditBefore = new Date(now - input.auditDays * DAY_MS).toISOString();
  const tables = {} as Record<RetentionTable, TableSweep>;
  for (const table of RETENTION_TABLES) {
    const { deleteExpiredRows } = proxyActivities<Activities>({ ...sweepOptions, summary: `delete expired rows of ${table}` });
    tables[table] = await deleteExpiredRows({ table, before: table === 'alert_audit_log' ? auditBefore : before, batchSize: input.batchSize });
  }
  const result: RetentionSweepResult = {
    at: new Date(now).toISOString(),
    before,
    auditBefore,
    batchSize: input.batchSize,
    tables,
    deleted: Object.values(tables).reduce((sum, t) => sum + t.deleted, 0),
  };
  await reportRetentionSweep(result);
  return result;
}
