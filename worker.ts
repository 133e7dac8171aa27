import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from './activities';
import { alertsDataConverter } from './lib/codec';
import { logger } from './lib/log';
import type { ServiceDeps } from './runtime/deps';
import { loadWorkflowBundle } from './runtime/workflow-bundle';

/**
 * The alert worker: AlertDelivery and ProcessExecutionEvent workflows plus
 * their activities. `npm start` runs it inside the one embedded process;
 * `npm run worker` (this file) runs it alone, one process per replica.
 */
/** Worker sizes; undefined keeps the SDK's default (lib/env.ts: TEMPORAL_WORKER_*). */
export interface WorkerTuning {
  maxCachedWorkflows?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentLocalActivityExecutions?: number;
  workflowThreadPoolSize?: number;
}

const bundleLog = logger('worker', { lifecycle: true });

export async function createAlertsWorker(connection: NativeConnection, deps: ServiceDeps, tuning: WorkerTuning = {}): Promise<Worker> {
  const sizes = Object.fromEntries(Object.entries(tuning).filter(([, v]) => v !== undefined));
  return Worker.create({
    ...sizes,
    connection,
    namespace: deps.temporal.namespace,
    taskQueue: deps.temporal.taskQueue,
    workflowBundle: await loadWorkflowBundle((line) => bundleLog.info({}, line)),
    activities: createActivities(deps),
    // payloads and failure messages are encrypted before they reach Temporal (lib/codec.ts)
    dataConverter: alertsDataConverter(deps.keyring),
    // let a POST in flight finish on SIGTERM rather than cancel it and send it again on another worker
    shutdownGraceTime: '15s',
    // after a worker dies, hand its workflows to another worker after 3 s instead of the default 10 s
    stickyQueueScheduleToStartTimeout: '3s',
  });
}

if (require.main === module) {
  // Imported lazily so that importing createAlertsWorker does not load the boot code.
  void import('./runtime/boot').then(({ runService }) => runService({ roles: { worker: true, api: false } }));
}
