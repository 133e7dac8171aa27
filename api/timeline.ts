import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Payload, ProtoFailure } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import type { z } from 'zod';
import type { RetriedAttempts } from '../activities/delivery';
import { dependencyUnavailable } from '../lib/errors';
import { retryingIn } from '../lib/retry';
import type { AttemptLog } from '../lib/schemas';
import type { WatchStory } from '../store/watches';
import { NOISE_DECISION_SIGNAL, type AlertDeliveryInput } from '../workflows/types';
import * as sa from '../lib/search-attributes';
import type { timelineEntrySchema } from './schemas';

const EventType = temporal.api.enums.v1.EventType;

export type TimelineEntry = z.output<typeof timelineEntrySchema>;

const NAMES: Partial<Record<number, string>> = {
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]: 'delivery started',
  [EventType.EVENT_TYPE_TIMER_STARTED]: 'delay timer started',
  [EventType.EVENT_TYPE_TIMER_FIRED]: 'delay timer fired: run still not finished',
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]: 'run finished',
  [EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]: 'webhook POST scheduled',
  [EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]: 'webhook POST started',
  [EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]: 'webhook delivered',
  [EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]: 'webhook delivery failed',
  [EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]: 'webhook delivery timed out',
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED]: 'delivery finished',
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED]: 'delivery workflow failed',
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED]: 'delivery terminated',
  [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT]: 'delivery timed out',
};

const BACKOFF_NAMES: Partial<Record<number, string>> = {
  [EventType.EVENT_TYPE_TIMER_STARTED]: 'waiting before the next attempt',
  [EventType.EVENT_TYPE_TIMER_FIRED]: 'backoff over',
};

/** History events that come after the first attempt: the backoff, the retried attempts, the workflow's end. */
const AFTER_FIRST_ATTEMPT = new Set<number>([
  EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
]);

/** How workflows/alert-delivery.ts's summary of a watch's wait for its noise pipeline begins. */
export const NOISE_WAIT_SUMMARY = 'wait for the noise pipeline';

const formatDuration = (ms: number) => (ms < 1000 ? `${ms} ms` : ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`);

/** An attempt made inside a workflow task, as its log row tells it. */
function attemptEntry(row: AttemptLog): TimelineEntry {
  // attempt 0: the noise pipeline's decision (silenced, grouped, …), nothing was sent
  if (row.attempt === 0) return { time: row.createdAt, event: `not sent: ${row.outcome.replace('_', ' ')}`, detail: row.error ?? undefined };
  const at = { time: row.createdAt, attempt: row.attempt };
  if (row.outcome === 'retrying') return { ...at, event: 'webhook attempt failed', detail: row.error ?? undefined };
  if (row.outcome === 'delivered') return { ...at, event: 'webhook delivered', detail: `HTTP ${row.httpStatus}` };
  // nothing was sent: the config was deleted or disabled, or its template failed
  if (row.durationMs === null && row.httpStatus === null) return { time: row.createdAt, event: 'delivery failed before sending', detail: row.error ?? undefined };
  return { ...at, event: 'webhook delivery failed', detail: row.error ?? undefined };
}

const toIso = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : '';

/**
 * The delivery's story: the events an on-call engineer cares about, in order, from its Temporal
 * history, with the attempts made inside the workflow task (local activities, which the history
 * keeps in the SDK's own marker format) told by their log rows, our own record of every attempt.
 * The rows are read after the history, so they hold every attempt the history shows (`loadAttempts`:
 * the delivery's rows, first attempt first; `finalError`: the delivery's own error, the whole
 * message of a first attempt that was also its last). Answers the rows too.
 */
export async function readTimeline(
  client: Client,
  deliveryId: string,
  loadAttempts: () => Promise<AttemptLog[]>,
  finalError: string | null = null,
  loadWatch?: () => Promise<WatchStory | undefined>,
): Promise<{ attempts: AttemptLog[]; timeline: TimelineEntry[] }> {
  // a delay watch held as a row (docs/delay-watches.md) tells its watch from the row; its AlertDelivery, once fired, follows
  const watch = await loadWatch?.();
  const watchEntries = watch ? watchStoryEntries(watch) : [];
  let history;
  try {
    history = await client.workflow.getHandle(deliveryId).fetchHistory();
  } catch (err) {
    // an open or suppressed row watch has no workflow: its row is its whole story
    if (watch && (err instanceof WorkflowNotFoundError || (err as { name?: string }).name === 'WorkflowNotFoundError')) return { attempts: await loadAttempts(), timeline: watchEntries };
    return { attempts: await loadAttempts(), timeline: [...watchEntries, { time: new Date().toISOString(), event: 'history unavailable', detail: (err as Error).message.split('\n')[0] }] };
  }
  const attempts = await loadAttempts();
  const { payloadCodecs, payloadConverter, failureConverter } = client.options.loadedDataConverter;
  const decode = decoderOf(client);
  const messageOf = async (failure: ProtoFailure | null | undefined) =>
    failure ? (await decodeOptionalFailureToOptionalError({ payloadCodecs, payloadConverter, failureConverter }, failure).catch((err: Error) => err))?.message : undefined;

  const events = history.events ?? [];
  // a delay watch's first timer is the watch's, not a backoff (a redelivery of a delay alert has none)
  const started = await decode<AlertDeliveryInput>(events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads as Payload[] | undefined);
  // (a row watch's AlertDelivery starts fired: it has no watch timer of its own)
  const delayWatch = started?.delaySeconds !== undefined && started.watchFiredAtMs === undefined;
  // a fired delay watch (either kind) may wait for its noise pipeline: a row watch's wait is its first timer
  const firedWatch = started?.watchFiredAtMs !== undefined;
  // the retried attempts count on from those made inside workflow tasks (deliverWebhook's input says how many)
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes)?.activityTaskScheduledEventAttributes;
  const attemptOffset = scheduled ? (await decode<RetriedAttempts>(scheduled.input?.payloads as Payload[] | undefined))?.attemptOffset : undefined;
  // those attempts' rows, placed before the first event that follows them; the retried attempts' rows are told by their activity events
  let firstAttempts: TimelineEntry[] | undefined = attempts.filter((a) => attemptOffset === undefined || a.attempt <= attemptOffset).map(attemptEntry);
  // The retried attempts are numbered by the delivery's own count (store/deliveries.ts claimRetriedAttempt),
  // not by Temporal's runs of the activity (a run that failed before its POST made none): the history
  // records the activity's last run only, when it closed, and that run made the highest attempt logged.
  const lastRetried = attemptOffset === undefined ? 0 : Math.max(0, ...attempts.filter((a) => a.attempt > attemptOffset).map((a) => a.attempt));
  const entries: TimelineEntry[] = [...watchEntries];
  /** `backoffMs`: the timer that follows them, the delay the last of them was retried after */
  const placeFirstAttempts = (backoffMs?: number) => {
    const placed = firstAttempts ?? [];
    const last = placed[placed.length - 1];
    if (backoffMs !== undefined && last?.event === 'webhook attempt failed' && last.detail) last.detail = retryingIn(last.detail, backoffMs);
    // the first attempt was the last: the delivery's error says so ("…; giving up after 1 attempt")
    if (!scheduled && last?.event === 'webhook delivery failed' && finalError) last.detail = finalError;
    entries.push(...placed);
    firstAttempts = undefined;
  };
  let timers = 0;
  // a fired delay watch's wait for its noise pipeline's decision (workflows/alert-delivery.ts names its timer so): no backoff
  const noiseWaits = new Set<string>();
  for (const e of events) {
    const type = e.eventType ?? 0;
    const timerId = e.timerStartedEventAttributes?.timerId ?? e.timerFiredEventAttributes?.timerId;
    if (type === EventType.EVENT_TYPE_TIMER_STARTED && ((delayWatch && timers > 0) || firedWatch) && timerId) {
      const summary = await decode<string>(e.userMetadata?.summary ? [e.userMetadata.summary as Payload] : undefined);
      if (typeof summary === 'string' && summary.startsWith(NOISE_WAIT_SUMMARY)) noiseWaits.add(timerId);
    }
    const noiseWait = timerId !== undefined && timerId !== null && noiseWaits.has(timerId);
    if (noiseWait) {
      if (type === EventType.EVENT_TYPE_TIMER_STARTED) entries.push({ time: toIso(e.eventTime), event: "waiting for the noise pipeline's decision" });
      else if (type === EventType.EVENT_TYPE_TIMER_FIRED) entries.push({ time: toIso(e.eventTime), event: 'no decision from the noise pipeline in time: sending' });
      continue;
    }
    if (e.workflowExecutionSignaledEventAttributes?.signalName === NOISE_DECISION_SIGNAL) {
      entries.push({ time: toIso(e.eventTime), event: 'noise pipeline decided' });
      continue;
    }
    if (type === EventType.EVENT_TYPE_TIMER_STARTED) timers++;
    const isTimer = type === EventType.EVENT_TYPE_TIMER_STARTED || type === EventType.EVENT_TYPE_TIMER_FIRED;
    const backoff = isTimer && (!delayWatch || timers > 1);
    const timeout = e.timerStartedEventAttributes?.startToFireTimeout;
    const timeoutMs = timeout ? Number(timeout.seconds ?? 0) * 1000 + Math.round((timeout.nanos ?? 0) / 1e6) : undefined;
    if (AFTER_FIRST_ATTEMPT.has(type) || (backoff && type === EventType.EVENT_TYPE_TIMER_STARTED)) placeFirstAttempts(backoff ? timeoutMs : undefined);
    const name = backoff ? BACKOFF_NAMES[type] : NAMES[type];
    if (!name) continue;
    // the row's story began the delivery already
    if (watch && type === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) continue;
    const entry: TimelineEntry = { time: toIso(e.eventTime), event: name };
    if (e.activityTaskStartedEventAttributes) {
      entry.attempt = lastRetried || (e.activityTaskStartedEventAttributes.attempt ?? 1) + (attemptOffset ?? 0);
      const lastFailure = await messageOf(e.activityTaskStartedEventAttributes.lastFailure);
      if (lastFailure) entry.detail = `previous attempt: ${lastFailure}`;
    }
    const failed = await messageOf(e.activityTaskFailedEventAttributes?.failure);
    if (failed) entry.detail = failed;
    if (timeoutMs !== undefined) entry.detail = formatDuration(timeoutMs);
    entries.push(entry);
  }
  // the first attempt is still in its workflow task, or its task has not completed yet
  placeFirstAttempts();
  return { attempts, timeline: entries };
}

/**
 * A row watch's story as the timeline told a watch held by its own workflow (the same texts users
 * and tests know): started, its timer, and then the run's finish or the timer's firing.
 */
function watchStoryEntries(w: WatchStory): TimelineEntry[] {
  const entries: TimelineEntry[] = [
    { time: w.startedAt, event: 'delivery started' },
    { time: w.startedAt, event: 'delay timer started', detail: formatDuration(Math.max(0, Date.parse(w.deadline) - Date.parse(w.startedAt))) },
  ];
  if (w.firedAt) entries.push({ time: w.firedAt, event: 'delay timer fired: run still not finished' });
  else if (w.runFinishedAt) entries.push({ time: w.runFinishedAt, event: 'run finished' });
  if (!w.firedAt && w.status === 'suppressed') entries.push({ time: w.runFinishedAt ?? w.deadline, event: 'delivery finished', detail: 'suppressed: the run finished in time' });
  return entries;
}

/** Payloads and failure messages are encrypted in the history (lib/codec.ts): read through the client's codec; undefined when they do not decode. */
function decoderOf(client: Client) {
  const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
  return async <T>(payloads: Payload[] | null | undefined): Promise<T | undefined> => {
    if (!payloads?.length) return undefined;
    try {
      for (const codec of [...payloadCodecs].reverse()) payloads = await codec.decode(payloads);
      return payloadConverter.fromPayload<T>(payloads[0]);
    } catch {
      return undefined;
    }
  };
}

/**
 * The input a delivery's workflow started with (what a redelivery repeats beyond the event: a
 * digest's group, a recovery's incident), or undefined when its history is gone or unreadable.
 */
export async function deliveryStartInput(client: Client, deliveryId: string): Promise<AlertDeliveryInput | undefined> {
  let history;
  try {
    history = await client.workflow.getHandle(deliveryId).fetchHistory();
  } catch (err) {
    if (dependencyUnavailable(err)) throw err;
    return undefined;
  }
  return decoderOf(client)<AlertDeliveryInput>(history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads as Payload[] | undefined);
}

/**
 * A delivery whose workflow has started but has not yet written its row (the
 * moments right after POST /api/events answers), read from Temporal's search
 * attributes. Undefined unless it exists and belongs to the project.
 */
export async function describeStartingDelivery(client: Client, projectId: string, deliveryId: string) {
  let description;
  try {
    description = await client.workflow.getHandle(deliveryId).describe();
  } catch (err) {
    // no such workflow (or an id Temporal refuses) is a 404; Temporal unreachable is not (the caller answers 503)
    if (dependencyUnavailable(err)) throw err;
    return undefined;
  }
  const attributes = description.typedSearchAttributes;
  // a workflow without the attribute belongs to no project: never a match of two missing values
  const owner = attributes.get(sa.AlertProjectId);
  if (!owner || !projectId || owner !== projectId) return undefined;
  return {
    deliveryId,
    configId: attributes.get(sa.AlertConfigId) ?? null,
    workflowId: attributes.get(sa.MeshHookWorkflowId) ?? null,
    runId: attributes.get(sa.MeshHookRunId) ?? null,
    condition: attributes.get(sa.AlertCondition) ?? null,
    status: attributes.get(sa.AlertStatus) ?? 'in_progress',
    attempts: 0,
    createdAt: description.startTime.toISOString(),
  };
}
