import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { AlertsError } from '../lib/errors';
import { delayDeadlineMs } from '../lib/conditions';
import { configDeliveryIdPrefix, delayWatcherId, delayWatchId, noiseWorkflowId } from '../lib/delivery-ids';
import { noteDeliveryFinished } from '../lib/metrics';
import { logger } from '../lib/log';
import type { NoiseAlertItem } from '../lib/noise';
import type { ExecutionEvent } from '../lib/schemas';
import * as sa from '../lib/search-attributes';
import type { ServiceDeps } from '../runtime/deps';
import { finishWatch, forgetWatcher, noteWakeSignalled, openWatch } from '../store/watches';
import type { AlertDeliveryInput, AlertNoiseInput, DelayWatcherInput, NoiseItem, RunFinishedSignal, StartedDelivery, WatchDeadlineSignal } from '../workflows/types';
import { NOISE_ITEM_SIGNAL, RUN_FINISHED_SIGNAL, WATCH_DEADLINE_SIGNAL } from '../workflows/types';

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

type Store = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal'>;

/** A run.started of a watched run (dispatch): where its watch is held. */
export interface WatchStart {
  deliveryId: string;
  projectId: string;
  configId: string;
  event: ExecutionEvent;
  thresholdSeconds: number;
  receivedAtMs: number;
}

/**
 * run.started of a watched run (docs/delay-watches.md): the watch is its delivery's row with a
 * deadline (store/watches.ts openWatch, one transaction); the config's DelayWatcher is signalled
 * (signalWithStart) only when it is committed to wake later than this deadline, or to nothing. In the
 * steady state deadlines come in start order: a new run costs one store transaction and no Temporal
 * call. A repeated event (duplicate) re-checks, so one sent again after a crash between the commit and
 * the signal still wakes the watcher; Temporal unreachable is a 503 and the resent event re-checks.
 */
export async function startDelayWatch(deps: Store, w: WatchStart): Promise<StartedDelivery> {
  const { event } = w;
  const deadlineMs = delayDeadlineMs(event, w.thresholdSeconds, w.receivedAtMs);
  const ref = { deliveryId: w.deliveryId, projectId: w.projectId, configId: w.configId, workflowId: event.workflowId, runId: event.runId, eventId: event.id, condition: 'delay' as const };
  const opened = await openWatch(deps.db, deps.keyring, ref, event, deadlineMs);
  if (opened.wake) {
    await wakeDelayWatcher(deps, w.projectId, w.configId, opened.deadlineMs);
    await noteWakeSignalled(deps.db, w.configId, opened.deadlineMs);
  }
  return { deliveryId: w.deliveryId, configId: w.configId, condition: 'delay', duplicate: opened.duplicate };
}

/** Tells the config's DelayWatcher of an earlier deadline, starting it when none runs. */
export async function wakeDelayWatcher({ temporal }: Temporal, projectId: string, configId: string, deadlineMs: number): Promise<void> {
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () => temporal.client.workflow.signalWithStart('DelayWatcher', {
      workflowId: delayWatcherId(configId),
      taskQueue: temporal.taskQueue,
      args: [{ projectId, configId } satisfies DelayWatcherInput],
      signal: WATCH_DEADLINE_SIGNAL,
      signalArgs: [{ deadlineMs } satisfies WatchDeadlineSignal],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: sa.AlertConfigId, value: configId },
        { key: sa.AlertProjectId, value: projectId },
      ]),
      staticSummary: `delay watches of config ${configId}`,
    }));
  } catch (err) {
    // the watch's row is committed: the event sent again finds it (duplicate) and wakes the watcher then
    throw new AlertsError('unavailable', `Temporal did not take the delay watch of config ${configId} (deadline ${new Date(deadlineMs).toISOString()}): ${firstLine(err)}; send the event again`);
  }
}

/**
 * A finishing event of a watched run: one statement on the watch's row (store/watches.ts
 * finishWatch): the run's finish time recorded, the watch suppressed when it finished at or before
 * its deadline, or a row already suppressed when the finishing event came before its run.started. A
 * watch of an earlier version (its own AlertDelivery holds the timer: a row without a deadline, still
 * scheduled) is signalled as before, so an upgrade in the middle of a watch sends no false alert.
 */
export async function endDelayWatch(deps: Store, projectId: string, configId: string, event: ExecutionEvent, receivedAtMs = Date.now()): Promise<void> {
  const deliveryId = delayWatchId(configId, event.runId);
  const finishedAtMs = event.occurredAt ? Date.parse(event.occurredAt) : receivedAtMs;
  const ref = { deliveryId, projectId, configId, workflowId: event.workflowId, runId: event.runId, eventId: event.id, condition: 'delay' as const };
  const finished = await finishWatch(deps.db, deps.keyring, ref, event, Number.isFinite(finishedAtMs) ? finishedAtMs : receivedAtMs);
  if (finished.suppressed) noteDeliveryFinished({ condition: 'delay', event }, 'suppressed');
  if (finished.created || finished.watchDeadlineMs !== null || finished.status !== 'scheduled') return;
  await signalEarlierWatch(deps, deliveryId, event);
}

/** The run finished: told to a watch of an earlier version (an AlertDelivery workflow holding its own timer). */
async function signalEarlierWatch({ temporal }: Temporal, deliveryId: string, event: ExecutionEvent): Promise<void> {
  try {
    await temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () => temporal.client.workflow.getHandle(deliveryId)
      .signal(RUN_FINISHED_SIGNAL, { eventId: event.id, type: event.type, occurredAt: event.occurredAt } satisfies RunFinishedSignal));
  } catch (err) {
    // the watch already ended (fired or suppressed): nothing to do
    if (err instanceof WorkflowNotFoundError) return;
    throw new AlertsError('unavailable', `Temporal did not take the end of the delay watch ${deliveryId}: ${firstLine(err)}; send the event again`);
  }
}

/**
 * Ends a deleted config's DelayWatcher and forgets its row: its watches could only fail as "the alert
 * config was deleted". Best effort, as endNoisePipeline.
 */
export async function endDelayWatcher(deps: Pick<ServiceDeps, 'db' | 'temporal'>, configId: string): Promise<void> {
  try {
    await deps.temporal.client.withDeadline(Date.now() + START_DEADLINE_MS, () =>
      deps.temporal.client.workflow.getHandle(delayWatcherId(configId)).terminate('its alert config was deleted'));
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) watchLog.warn({ configId, error: firstLine(err) }, `the delay watcher of deleted config ${configId} was not ended`);
  }
  await forgetWatcher(deps.db, configId);
}

const firstLine = (err: unknown) => (err as Error).message.split('\n')[0];
const noiseLog = logger('noise');
const watchLog = logger('watch');

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
