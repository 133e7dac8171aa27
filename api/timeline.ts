import type { Client } from '@temporalio/client';
import type { ProtoFailure } from '@temporalio/common';
import { decodeFromPayloadsAtIndex, decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import type { z } from 'zod';
import type { FirstAttemptResult } from '../activities/prepare';
import { dependencyUnavailable } from '../lib/errors';
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

const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

const formatDuration = (ms: number) => (ms < 1000 ? `${ms} ms` : ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`);

/** The first attempt's entry, read from its local activity marker (other local activities are store writes: no entry). */
async function firstAttemptEntry(
  client: Client,
  marker: temporal.api.history.v1.IMarkerRecordedEventAttributes,
  time: string,
  messageOf: (failure: ProtoFailure | null | undefined) => Promise<string | undefined>,
): Promise<TimelineEntry | undefined> {
  const data = marker.details?.data?.payloads?.[0]?.data;
  let activityType: string | undefined;
  try {
    activityType = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type : undefined;
  } catch {
    return undefined;
  }
  if (activityType !== 'sendFirstAttempt') return undefined;
  if (marker.failure) return { time, event: 'first attempt could not run', detail: await messageOf(marker.failure) };
  let result: FirstAttemptResult;
  try {
    result = await decodeFromPayloadsAtIndex<FirstAttemptResult>(client.options.loadedDataConverter, 0, marker.details?.result?.payloads);
  } catch (err) {
    return { time, event: 'webhook POST made', attempt: 1, detail: `outcome unreadable: ${(err as Error).message}` };
  }
  if (result.kind === 'retry') return { time, event: 'webhook attempt failed', attempt: result.attempt, detail: result.error };
  if (!result.attempted) return { time, event: 'delivery failed before sending', detail: result.error ?? undefined };
  if (result.status === 'delivered') return { time, event: 'webhook delivered', detail: `HTTP ${result.httpStatus}` };
  return { time, event: 'webhook delivery failed', detail: result.error ?? undefined };
}

const toIso = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : '';

/** The delivery's story as Temporal recorded it: the events an on-call engineer cares about, in order. */
export async function readTimeline(client: Client, deliveryId: string): Promise<TimelineEntry[]> {
  let history;
  try {
    history = await client.workflow.getHandle(deliveryId).fetchHistory();
  } catch (err) {
    return [{ time: new Date().toISOString(), event: 'history unavailable', detail: (err as Error).message.split('\n')[0] }];
  }
  // failure messages are encrypted in the history (lib/codec.ts): read them through the client's codec
  const messageOf = async (failure: ProtoFailure | null | undefined) =>
    failure ? (await decodeOptionalFailureToOptionalError(client.options.loadedDataConverter, failure).catch((err: Error) => err))?.message : undefined;
  const entries: TimelineEntry[] = [];
  // the first attempt runs inside the workflow task (a local activity marker); activity attempts count on from it
  let attemptOffset = 0;
  for (const e of history.events ?? []) {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) {
      const entry = await firstAttemptEntry(client, marker, toIso(e.eventTime), messageOf);
      if (entry) {
        attemptOffset = entry.attempt ?? 1;
        entries.push(entry);
      }
      continue;
    }
    const isTimer = e.eventType === EventType.EVENT_TYPE_TIMER_STARTED || e.eventType === EventType.EVENT_TYPE_TIMER_FIRED;
    const name = isTimer && attemptOffset > 0 ? BACKOFF_NAMES[e.eventType!] : e.eventType != null ? NAMES[e.eventType] : undefined;
    if (!name) continue;
    const entry: TimelineEntry = { time: toIso(e.eventTime), event: name };
    if (e.activityTaskStartedEventAttributes) {
      entry.attempt = (e.activityTaskStartedEventAttributes.attempt ?? 1) + attemptOffset;
      const lastFailure = await messageOf(e.activityTaskStartedEventAttributes.lastFailure);
      if (lastFailure) entry.detail = `previous attempt: ${lastFailure}`;
    }
    const failed = await messageOf(e.activityTaskFailedEventAttributes?.failure);
    if (failed) entry.detail = failed;
    const timeout = e.timerStartedEventAttributes?.startToFireTimeout;
    if (timeout) entry.detail = formatDuration(Number(timeout.seconds ?? 0) * 1000 + Math.round((timeout.nanos ?? 0) / 1e6));
    entries.push(entry);
  }
  return entries;
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
