import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { AlertsError } from '../lib/errors';
import { configDeliveryIdPrefix, delayWatchId, noiseWorkflowId } from '../lib/delivery-ids';
import { logger } from '../lib/log';
import type { NoiseAlertItem } from '../lib/noise';
import type { ExecutionEvent } from '../lib/schemas';
import * as sa from '../lib/search-attributes';
import type { ServiceDeps } from '../runtime/deps';
import type { AlertDeliveryInput, AlertNoiseInput, NoiseItem, RunFinishedSignal, StartedDelivery } from '../workflows/types';
import { NOISE_ITEM_SIGNAL, RUN_FINISHED_SIGNAL } from '../workflows/types';

/**
 * Starting AlertDelivery workflows, signalling delay watches and handing alerts to a config's noise
 * pipeline (AlertNoise): the Temporal client side of a delivery, shared by the API (events, test
 * alerts, redeliveries) and the worker (MeshHook's own Temporal way in, the ProcessExecutionEvent
 * workflow, and a fired delay watch).
 */

type Temporal = Pick<ServiceDeps, 'temporal'>;

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
export async function startDelivery({ temporal }: Temporal, input: AlertDeliveryInput): Promise<StartedDelivery> {
  const started: StartedDelivery = { deliveryId: input.deliveryId, configId: input.configId, condition: input.condition, duplicate: false };
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () => temporal.client.workflow.start('AlertDelivery', {
      workflowId: input.deliveryId,
      taskQueue: temporal.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: alertSearchAttributes(input, input.delaySeconds ? 'scheduled' : 'in_progress'),
      staticSummary: `${input.condition} alert for ${input.event.workflowId} run ${input.event.runId}`,
      requestEagerStart: temporal.eagerStart,
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

/**
 * Tells a run's delay watch that the run finished. signalWithStart also
 * covers a finishing event that arrives before its run.started: the watch is
 * created already finished, so the late run.started starts nothing.
 */
export async function endDelayWatch({ temporal }: Temporal, projectId: string, configId: string, event: ExecutionEvent): Promise<void> {
  const input: AlertDeliveryInput = { deliveryId: delayWatchId(configId, event.runId), projectId, configId, condition: 'delay', event, delaySeconds: 1 };
  try {
    await temporal.client.workflow.signalWithStart('AlertDelivery', {
      workflowId: input.deliveryId,
      taskQueue: temporal.taskQueue,
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

const firstLine = (err: unknown) => (err as Error).message.split('\n')[0];
const noiseLog = logger('noise');

/**
 * Hands one alert to its config's noise pipeline (docs/noise-control.md): signals the config's
 * AlertNoise workflow, starting it when none runs. An alert signalled twice (a repeated event, a
 * retried call) is taken in once: the pipeline knows each alert by its delivery id.
 */
export async function sendToNoisePipeline({ temporal }: Temporal, { projectId, configId }: { projectId: string; configId: string }, item: NoiseAlertItem): Promise<void> {
  const input: AlertNoiseInput = { projectId, configId, idPrefix: configDeliveryIdPrefix(configId) };
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () => temporal.client.workflow.signalWithStart('AlertNoise', {
      workflowId: noiseWorkflowId(configId),
      taskQueue: temporal.taskQueue,
      args: [input],
      signal: NOISE_ITEM_SIGNAL,
      signalArgs: [item satisfies NoiseItem],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: sa.AlertConfigId, value: configId },
        { key: sa.AlertProjectId, value: projectId },
      ]),
      staticSummary: `noise pipeline of config ${configId}`,
    }));
  } catch (err) {
    // as startDelivery: the caller sends the event again; the pipeline takes a repeated alert in once
    throw new AlertsError('unavailable', `Temporal did not accept the alert ${item.deliveryId} for the noise pipeline of ${configId}: ${firstLine(err)}; send the event again`);
  }
}

/**
 * Tells a config's noise pipeline that a run succeeded (it closes an open incident: recovery,
 * repeat). A plain signal, never a start: with no AlertNoise running there is no open incident, and
 * a successful run costs no workflow.
 */
export async function tellNoisePipelineOfSuccess({ temporal }: Temporal, configId: string, item: Extract<NoiseItem, { kind: 'success' }>): Promise<void> {
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () => temporal.client.workflow.getHandle(noiseWorkflowId(configId)).signal(NOISE_ITEM_SIGNAL, item));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return;
    throw new AlertsError('unavailable', `Temporal did not take the successful run ${item.event.runId} to the noise pipeline of ${configId}: ${firstLine(err)}; send the event again`);
  }
}

/**
 * Ends a deleted config's noise pipeline: what it holds could only be sent for a config that no
 * longer exists (each digest would fail as "the alert config was deleted"). Best effort: with
 * Temporal unreachable the delete still stands, and the pipeline's own deliveries find the config gone.
 */
export async function endNoisePipeline({ temporal }: Temporal, configId: string): Promise<void> {
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () =>
      temporal.client.workflow.getHandle(noiseWorkflowId(configId)).terminate('its alert config was deleted'));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return;
    noiseLog.warn({ configId, error: firstLine(err) }, `the noise pipeline of deleted config ${configId} was not ended`);
  }
}
