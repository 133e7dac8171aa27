import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineSignal,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { AlertStatus } from '../lib/search-attributes';
import type { AlertDeliveryInput, AlertDeliveryResult } from './types';
import { RUN_FINISHED_SIGNAL } from './types';

/** Sent by a finishing event of the run (run.succeeded, run.failed, run.canceled) to its delay watch. */
export const runFinished = defineSignal<[{ eventId: string; type: string }]>(RUN_FINISHED_SIGNAL);

// Store writes and rendering are quick and local to the worker: local activities, no extra round trip to the server.
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

// The first attempt is a local activity too; it may wait for the receiver's whole timeout (at most 30 s).
// It returns every delivery outcome; it throws (and is retried) only when the store fails.
const firstAttempt = proxyLocalActivities<Activities>({
  startToCloseTimeout: '45s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

/**
 * One alert: (for a delay watch) wait for the run to finish or the threshold
 * to pass, render once and POST; if that first attempt must be retried, POST
 * again under a retry policy built from the config.
 */
export async function AlertDelivery(input: AlertDeliveryInput): Promise<AlertDeliveryResult> {
  let runEnded = false;
  setHandler(runFinished, () => {
    runEnded = true;
  });

  if (input.delaySeconds !== undefined) {
    await local.recordDelivery(input);
    // counted from the workflow's start, so a worker crash before the timer starts does not push the alert back
    const remainingMs = Math.max(0, input.delaySeconds * 1000 - (Date.now() - workflowInfo().startTime.getTime()));
    const ended = await condition(() => runEnded, remainingMs, {
      summary: `wait ${input.delaySeconds}s for run ${input.event.runId} to finish`,
    });
    if (ended) return finish(input, { status: 'suppressed', httpStatus: null, error: null });
  }

  // Render and make the first attempt inside this workflow task (the workflow's clock: a delay
  // alert's run.durationMs is measured when the timer fired). Most alerts end here.
  const first = await firstAttempt.sendFirstAttempt(input, Date.now());
  if (first.kind === 'finished') {
    upsertSearchAttributes([{ key: AlertStatus, value: first.status }]);
    return { deliveryId: input.deliveryId, status: first.status, httpStatus: first.httpStatus, error: first.error };
  }
  // an immediate delivery starts as in_progress; a delay watch started as scheduled (each upsert is a visibility write)
  if (input.delaySeconds !== undefined) upsertSearchAttributes([{ key: AlertStatus, value: 'in_progress' }]);

  // attempts 2 and on: a durable backoff timer, then the deliverWebhook activity under the config's retry policy
  const { request, firstAttemptAtMs } = first;
  const { retry } = request;
  await sleep(first.delayMs);
  const { deliverWebhook } = proxyActivities<Activities>({
    // the receiver's timeout plus time to load the secret and write the log row
    startToCloseTimeout: request.timeoutMs + 5_000,
    scheduleToCloseTimeout: Math.max(1_000, retry.maxDurationMs - (Date.now() - firstAttemptAtMs)),
    retry: {
      initialInterval: retry.initialIntervalMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: retry.maxIntervalMs,
      maximumAttempts: retry.maxAttempts - first.attempt,
    },
    summary: `POST ${new URL(request.url).host}`,
  });
  try {
    const result = await deliverWebhook({ ...request, attemptOffset: first.attempt, firstAttemptAtMs });
    return finish(input, { status: 'delivered', httpStatus: result.httpStatus, error: null });
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    const cause = err.cause;
    const message = cause instanceof ApplicationFailure || cause instanceof Error ? cause.message : err.message;
    return finish(input, { status: 'failed', httpStatus: null, error: message });
  }
}

async function finish(
  input: AlertDeliveryInput,
  result: { status: AlertDeliveryResult['status']; httpStatus: number | null; error: string | null },
): Promise<AlertDeliveryResult> {
  await local.finishDelivery(input, result);
  upsertSearchAttributes([{ key: AlertStatus, value: result.status }]);
  return { deliveryId: input.deliveryId, status: result.status, httpStatus: result.httpStatus, error: result.error };
}
