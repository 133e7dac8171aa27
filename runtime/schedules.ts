import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, type ScheduleHandle, type ScheduleOptionsAction, type ScheduleSpec } from '@temporalio/client';
import { logger } from '../lib/log';
import type { RetentionSweepInput } from '../workflows/retention';
import type { ServiceDeps } from './deps';

const log = logger('retention');

/** Rows per DELETE statement of the retention sweep: small enough that no batch holds its locks for long. */
export const RETENTION_BATCH_SIZE = 1000;

// The memo is set once, at creation (a schedule's memo cannot be updated): it says what, not the numbers.
const RETENTION_MEMO =
  'MeshHook Alerts retention: deletes attempt logs, finished deliveries, operator alerts and the held alerts nothing will send (their config deleted or turned off) older than ALERTS_RETENTION_DAYS, and audit entries older than ALERTS_AUDIT_RETENTION_DAYS, in small batches (docs/retention.md)';

/** The retention schedule of a deployment: one per task queue (deployments sharing a namespace keep apart). */
export const retentionScheduleId = (taskQueue: string) => `${taskQueue}-retention`;

export interface RetentionScheduleOptions {
  /** how often the sweep runs (ALERTS_RETENTION_INTERVAL_SECONDS; default an hour) */
  intervalSeconds?: number;
  batchSize?: number;
  /** default: retentionScheduleId(task queue) */
  scheduleId?: string;
}

/**
 * Creates the retention schedule, or brings an existing one up to this process's settings (periods,
 * interval, batch size), so every worker start is idempotent and the last deployed settings win. A
 * schedule paused in the Web UI stays paused, with its note; otherwise the note (the Web UI's Notes) says what it does.
 *
 * The schedule is written with Temporal's default data converter, not the encrypting one: its memo,
 * summary and input (periods and a batch size, nothing secret) are then readable in the Web UI.
 * The worker's codec passes plain payloads through, so it reads the input as usual.
 */
export async function ensureRetentionSchedule(deps: Pick<ServiceDeps, 'temporal' | 'operations'>, options: RetentionScheduleOptions = {}): Promise<ScheduleHandle> {
  const { days, auditDays } = deps.operations.retention;
  const intervalSeconds = options.intervalSeconds ?? 3600;
  const input: RetentionSweepInput = { days, auditDays, batchSize: options.batchSize ?? RETENTION_BATCH_SIZE };
  const scheduleId = options.scheduleId ?? retentionScheduleId(deps.temporal.taskQueue);
  const what = `Deletes attempt logs, finished deliveries, operator alerts and the held alerts nothing will send (their config deleted or turned off) older than ${days} days, and audit entries older than ${auditDays} days, in batches of ${input.batchSize} rows`;
  const spec: ScheduleSpec = { intervals: [{ every: `${intervalSeconds}s` }] };
  const action: ScheduleOptionsAction = {
    type: 'startWorkflow',
    workflowType: 'RetentionSweep',
    workflowId: `${scheduleId}-sweep`,
    taskQueue: deps.temporal.taskQueue,
    args: [input],
    staticSummary: `retention sweep: older than ${days} days (audit: ${auditDays} days)`,
    staticDetails: `${what} (docs/retention.md). Its result and the worker's log line \`retention sweep deleted N expired rows\` count the rows per table.`,
  };
  // a sweep still running when the next one is due: skip that one; a worker down for a while: one catch-up run, not many
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: intervalSeconds * 1000 };
  const plain = new Client({ connection: deps.temporal.client.connection, namespace: deps.temporal.namespace });
  try {
    // the note is what the Web UI's schedule page shows as Notes: what the schedule does (a pause replaces it with its reason)
    const handle = await plain.schedule.create({ scheduleId, spec, action, policies, memo: { description: RETENTION_MEMO }, state: { note: what } });
    log.info({ scheduleId, intervalSeconds, ...input }, `created the retention schedule ${scheduleId} (every ${intervalSeconds} s)`);
    return handle;
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = plain.schedule.getHandle(scheduleId);
  await handle.update((previous) => ({
    spec,
    action,
    policies,
    state: { paused: previous.state.paused, note: previous.state.paused ? previous.state.note : what, remainingActions: previous.state.remainingActions },
  }));
  log.debug({ scheduleId, intervalSeconds, ...input }, `updated the retention schedule ${scheduleId}`);
  return handle;
}

/**
 * boot.ts's call once the worker runs: the schedule is created or updated, and a failure to do so
 * (an old server without schedules, a permission missing) is logged as an error rather than stopping
 * alert delivery; the next worker start tries again.
 */
export async function keepRetentionScheduled(deps: Pick<ServiceDeps, 'temporal' | 'operations'>, intervalSeconds: number): Promise<void> {
  try {
    await ensureRetentionSchedule(deps, { intervalSeconds });
  } catch (err) {
    log.error({ err: (err as Error).message }, 'could not create or update the retention schedule: expired rows are not deleted until a worker start succeeds (docs/retention.md)');
  }
}
