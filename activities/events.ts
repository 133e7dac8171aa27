import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { matchConditions } from '../lib/conditions';
import { AlertsError } from '../lib/errors';
import { delayWatchId, immediateDeliveryId } from '../lib/delivery-ids';
import { executionEventSchema, type ExecutionEvent } from '../lib/schemas';
import { deliveriesStarted, eventsAccepted } from '../lib/metrics';
import * as sa from '../lib/search-attributes';
import { enabledConfigsFor } from '../store/configs';
import type { Queryable } from '../store/db';
import type { AlertDeliveryInput, RunFinishedSignal, StartedDelivery } from '../workflows/types';
import { RUN_FINISHED_SIGNAL } from '../workflows/types';

export interface EventDeps {
  db: Queryable;
  client: Client;
  taskQueue: string;
  /** eager workflow start: the start answer carries the first workflow task to this process's worker (default true) */
  eagerStart?: boolean;
}

/** How long a caller waits for Temporal to take a start before it is told to send the event again (503). */
export const START_DEADLINE_MS = 10_000;

/** Search attributes of an alert workflow, for finding it in the Temporal Web UI. */
export function alertSearchAttributes(input: AlertDeliveryInput, status: string): TypedSearchAttributes {
  return new TypedSearchAttributes([
    { key: sa.AlertConfigId, value: input.configId },
    { key: sa.AlertProjectId, value: input.projectId },
    { key: sa.MeshHookWorkflowId, value: input.event.workflowId },
    { key: sa.MeshHookRunId, value: input.event.runId },
    { key: sa.AlertCondition, value: input.condition },
    { key: sa.AlertStatus, value: status },
  ]);
}

/**
 * Starts one AlertDelivery workflow. Its id is deterministic, and with the
 * FAIL conflict and REJECT_DUPLICATE reuse policies a running or closed
 * workflow with that id is never started again, so a repeated event,
 * even two sent at the same moment, sends nothing new.
 */
export async function startDelivery(deps: Omit<EventDeps, 'db'>, input: AlertDeliveryInput): Promise<StartedDelivery> {
  const started: StartedDelivery = { deliveryId: input.deliveryId, configId: input.configId, condition: input.condition, duplicate: false };
  try {
    await deps.client.withDeadline(Date.now() + START_DEADLINE_MS, () => deps.client.workflow.start('AlertDelivery', {
      workflowId: input.deliveryId,
      taskQueue: deps.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: alertSearchAttributes(input, input.delaySeconds ? 'scheduled' : 'in_progress'),
      staticSummary: `${input.condition} alert for ${input.event.workflowId} run ${input.event.runId}`,
      requestEagerStart: deps.eagerStart ?? true,
    }));
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
      // Temporal did not confirm the start (overloaded, unreachable): the caller sends the event again, which
      // the deterministic workflow id makes safe: a start that did happen after all answers duplicate: true.
      throw new AlertsError('unavailable', `Temporal did not accept the alert ${input.deliveryId}: ${(err as Error).message.split('\n')[0]}; send the event again`);
    }
    started.duplicate = true;
  }
  return started;
}

/** Matches one event against its project's enabled configs and starts what it triggers. The one code path for every way in. */
export async function processEvent(deps: EventDeps, projectId: string, rawEvent: unknown, receivedAt = new Date()): Promise<StartedDelivery[]> {
  const parsed = executionEventSchema.parse(rawEvent);
  const event: ExecutionEvent = { ...parsed, occurredAt: parsed.occurredAt ?? receivedAt.toISOString() };
  const configs = await enabledConfigsFor(deps.db, projectId, event.workflowId);
  const work: Promise<StartedDelivery | undefined>[] = [];
  for (const config of configs) {
    for (const action of matchConditions(config.conditions, event.type)) {
      if (action.kind === 'send') {
        work.push(
          startDelivery(deps, { deliveryId: immediateDeliveryId(config.id, event.id), projectId, configId: config.id, condition: action.condition, event, receivedAt: receivedAt.toISOString() }),
        );
      } else if (action.kind === 'watch') {
        work.push(
          startDelivery(deps, {
            deliveryId: delayWatchId(config.id, event.runId),
            projectId,
            configId: config.id,
            condition: 'delay',
            event,
            delaySeconds: action.thresholdSeconds,
          }),
        );
      } else {
        work.push(endDelayWatch(deps, projectId, config.id, event).then(() => undefined));
      }
    }
  }
  const started = (await Promise.all(work)).filter((d): d is StartedDelivery => d !== undefined);
  eventsAccepted.inc({ type: event.type });
  for (const d of started) deliveriesStarted.inc({ condition: d.condition, duplicate: String(d.duplicate) });
  return started;
}

/**
 * Tells a run's delay watch that the run finished. signalWithStart also
 * covers a finishing event that arrives before its run.started: the watch is
 * created already finished, so the late run.started starts nothing.
 */
async function endDelayWatch(deps: EventDeps, projectId: string, configId: string, event: ExecutionEvent): Promise<void> {
  const input: AlertDeliveryInput = { deliveryId: delayWatchId(configId, event.runId), projectId, configId, condition: 'delay', event, delaySeconds: 1 };
  try {
    await deps.client.workflow.signalWithStart('AlertDelivery', {
      workflowId: input.deliveryId,
      taskQueue: deps.taskQueue,
      args: [input],
      signal: RUN_FINISHED_SIGNAL,
      signalArgs: [{ eventId: event.id, type: event.type, occurredAt: event.occurredAt } satisfies RunFinishedSignal],
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: alertSearchAttributes(input, 'scheduled'),
    });
  } catch (err) {
    // the watch already ended (fired or suppressed): nothing to do
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}
