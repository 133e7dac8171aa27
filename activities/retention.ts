import { CancelledFailure, Context } from '@temporalio/activity';
import { logger } from '../lib/log';
import type { ServiceDeps } from '../runtime/deps';
import { deleteExpiredBatch, tableExists } from '../store/retention';
import type { DeleteExpiredRowsInput, RetentionSweepResult, TableSweep } from '../workflows/retention';

const log = logger('retention');

/** The activities of the RetentionSweep workflow (workflows/retention.ts). */
export function retentionActivities(deps: Pick<ServiceDeps, 'db'>) {
  return {
    /**
     * Deletes one table's expired rows, batch after batch, until a batch comes back short. Heartbeats
     * the running counts after each batch: a retry (another worker, after this one died) goes on from
     * them, so the result still counts every row this sweep deleted.
     */
    async deleteExpiredRows(input: DeleteExpiredRowsInput): Promise<TableSweep> {
      if (input.table === 'operator_alerts' && !(await tableExists(deps.db, input.table))) return { deleted: 0, batches: 0, missing: true };
      const context = Context.current();
      const sweep: TableSweep = (context.info.heartbeatDetails as TableSweep | undefined) ?? { deleted: 0, batches: 0 };
      const before = new Date(input.before);
      for (;;) {
        if (context.cancellationSignal.aborted) throw new CancelledFailure(`retention sweep of ${input.table} canceled`);
        const deleted = await deleteExpiredBatch(deps.db, input.table, before, input.batchSize);
        sweep.deleted += deleted;
        sweep.batches += 1;
        context.heartbeat({ ...sweep });
        if (deleted < input.batchSize) return sweep;
      }
    },

    /** The sweep's one log line: rows deleted per table. */
    async reportRetentionSweep(result: RetentionSweepResult): Promise<void> {
      const deleted = Object.fromEntries(Object.entries(result.tables).map(([table, t]) => [table, t.missing ? null : t.deleted]));
      log.info({ deleted, total: result.deleted, before: result.before, auditBefore: result.auditBefore, batchSize: result.batchSize }, `retention sweep deleted ${result.deleted} expired rows`);
    },
  };
}
