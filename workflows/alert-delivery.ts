import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineSignal,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { AlertStatus } from '../lib/search-attributes';
import { delayDeadlineMs, finishedInTime } from '../lib/conditions';
import { retriedAttemptOptions } from '../lib/retry';
import type { AlertDeliveryInput, AlertDeliveryResult, NoiseDecision, RunFinishedSignal } from './types';
import { ALERT_HELD, NOISE_DECISION_SIGNAL, RUN_FINISHED_SIGNAL } from './types';

/** Sent by a finishing event of the run (run.succeeded, run.failed, run.canceled) to its delay watch. */
export const runFinished = defineSignal<[RunFinishedSignal]>(RUN_FINISHED_SIGNAL);

/** Sent by the config's AlertNoise workflow to a fired delay watch that handed it its alert: send it, or why not. */
export const noiseDecision = defineSignal<[NoiseDecision]>(NOISE_DECISION_SIGNAL);

/**
 * A fired delay watch routes its alert (silence, noise pipeline) before sending: histories of
 * earlier versions went from the timer straight to the first attempt, and replay that way.
 */
export const ROUTE_DUE_ALERT_PATCH = 'route-due-alert';

/** Beside the last failure of a retried step that Temporal stopped running: why it stopped. */
const PLAN_DURATION_RAN_OUT = "the retry plan's duration ran out";

/** How long a fired watch waits for its noise pipeline's decision; none by then, it sends: an alert is never lost. */
const NOISE_DECISION_TIMEOUT = '1h';

// Store writes and rendering are quick and local to the worker: local activities, no extra round trip to the server.
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

// Ending a delivery may raise up to three operator alerts (delivery.exhausted, config.failing,
// config.disabled), each a workflow start that may wait START_DEADLINE_MS (10 s) for Temporal: room
// for all three and the store. A retry after a timeout counts nothing twice (dispatch/endpoint-health.ts).
const ending = proxyLocalActivities<Activities>({
  startToCloseTimeout: '45s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

// Routing a fired watch's alert may render its dedup key (the template sandbox, which may have to
// start a renderer) and signal the noise pipeline (a call that may wait START_DEADLINE_MS, 10 s).
const routing = proxyLocalActivities<Activities>({
  startToCloseTimeout: '45s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

// The first attempt is a local activity too; it may wait for the receiver's whole timeout (at most 30 s),
// and then for the operator alerts a failure raises (three starts of at most 10 s each, as `ending`).
// It returns every delivery outcome; it throws (and is retried) only when the store fails.
const firstAttempt = proxyLocalActivities<Activities>({
  startToCloseTimeout: '75s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

// A recovery waits for the alerts of its incident that are still being delivered (a retried digest
// may take the config's whole retry duration, at most 30 days): one long activity that heartbeats.
const awaiting = proxyActivities<Activities>({
  startToCloseTimeout: '31 days',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '1 minute' },
});

/**
 * One alert: (for a delay watch) wait for the run to finish or the threshold
 * to pass, render once and POST; if that first attempt must be retried, POST
 * again under a retry policy built from the config.
 */
export async function AlertDelivery(input: AlertDeliveryInput): Promise<AlertDeliveryResult> {
  // when the run finished, by the finishing event's own time (the earliest, if several came)
  let finishedAtMs: number | undefined;
  setHandler(runFinished, ({ occurredAt }) => {
    // a signal without a time (an earlier version's, or one sent by hand) counts from when it is handled
    const at = occurredAt ? Date.parse(occurredAt) : Date.now();
    finishedAtMs = Math.min(finishedAtMs ?? at, at);
  });
  // the first decision counts (the pipeline decides each alert once; a repeated signal changes nothing)
  let decision: NoiseDecision | undefined;
  setHandler(noiseDecision, (d) => {
    decision ??= d;
  });
  // what the pipeline held back, told by this alert (a watch's: its decision's)
  let noise = input.noise;

  if (input.delaySeconds !== undefined) {
    // A watch held as a row (docs/delay-watches.md) comes here fired and late, decided by its
    // config's DelayWatcher: no row to write, no timer. Otherwise (watches started before delay
    // watches became rows, still replayed) this workflow holds the watch's timer itself.
    if (input.watchFiredAtMs === undefined) {
      await local.recordDelivery(input);
      // created by a finishing event that came before its run.started: that run is over
      if (input.event.type !== 'run.started') return finish(input, { status: 'suppressed', httpStatus: null, error: null });
      const deadlineMs = delayDeadlineMs(input.event, input.delaySeconds, workflowInfo().startTime.getTime());
      // a timer even when the deadline has passed (1 ms): histories of earlier versions always have one
      await condition(() => finishedAtMs !== undefined, Math.max(1, deadlineMs - Date.now()), { summary: `wait ${input.delaySeconds}s for run ${input.event.runId} to finish` });
      // Decided by time, not by which of the timer and the signal this workflow task happened to see
      // first: both can land in one task (a busy or restarted worker), and a run that finished after
      // its deadline was late however the task saw it.
      if (finishedAtMs !== undefined && finishedInTime(finishedAtMs, deadlineMs)) return finish(input, { status: 'suppressed', httpStatus: null, error: null });
    }
    // the run is late: silenced, or the noise pipeline's to decide (docs/noise-control.md), at the
    // workflow's clock when its timer fired (a fired row watch: the watcher's clock at its claim)
    if (!input.pipelined && patched(ROUTE_DUE_ALERT_PATCH)) {
      const routed = await routing.routeDueAlert(input, input.watchFiredAtMs ?? Date.now());
      if (routed.route === 'silenced') return finish(input, { status: 'silenced', httpStatus: null, error: routed.note });
      if (routed.route === 'pipeline') {
        // the summary begins as api/timeline.ts NOISE_WAIT_SUMMARY says: the timeline tells this wait from a backoff
        await condition(() => decision !== undefined, NOISE_DECISION_TIMEOUT, { summary: `wait for the noise pipeline of config ${input.configId}` });
        const decided = decision as NoiseDecision | undefined;
        if (decided && decided.outcome !== 'send') return finish(input, { status: decided.outcome, httpStatus: null, error: decided.note });
        if (decided?.outcome === 'send') noise = decided.noise ?? undefined;
      }
    }
  }

  // A recovery goes out after the alerts it resolves: a PagerDuty resolve or an Opsgenie close that
  // overtook its trigger (still retrying) would leave the incident open. (Only inputs of this version
  // have `after`: earlier histories never come here.)
  if (input.after?.length) await awaiting.awaitDeliveriesEnded(input.after);

  // Render and make the first attempt inside this workflow task (the workflow's clock: a delay
  // alert's run.durationMs is measured when the timer fired). Most alerts end here.
  const first = await firstAttempt.sendFirstAttempt(noise === input.noise ? input : { ...input, noise }, Date.now());
  if (first.kind === 'finished') {
    upsertSearchAttributes([{ key: AlertStatus, value: first.status }]);
    return { deliveryId: input.deliveryId, status: first.status, httpStatus: first.httpStatus, error: first.error };
  }
  // an immediate delivery starts as in_progress; a delay watch started as scheduled (each upsert is a visibility write)
  if (input.delaySeconds !== undefined) upsertSearchAttributes([{ key: AlertStatus, value: 'in_progress' }]);

  // attempts 2 and on: a durable backoff timer, then the deliverWebhook activity under Temporal options derived from the retry plan
  const { request, firstAttemptAtMs } = first;
  await sleep(first.delayMs);
  const { deliverWebhook } = proxyActivities<Activities>({
    ...retriedAttemptOptions(request.retry, { timeoutMs: request.timeoutMs, elapsedMs: Date.now() - firstAttemptAtMs }),
    summary: `POST ${new URL(request.url).host}`,
  });
  try {
    const result = await deliverWebhook({ ...request, attemptOffset: first.attempt, firstAttemptAtMs });
    return finish(input, { status: 'delivered', httpStatus: result.httpStatus, error: null });
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    const cause = err.cause;
    // a step that timed out: why its last run failed, when Temporal kept that
    const last = cause instanceof TimeoutFailure && cause.cause ? cause.cause : cause;
    const reason = last instanceof Error ? last.message : err.message;
    // Temporal stopped running the step at its schedule-to-close: it kept failing (the store down, say) until the plan's duration ran out
    const message = err.retryState === 'TIMEOUT' ? `${reason} (${PLAN_DURATION_RAN_OUT})` : reason;
    // the alert was held (its config disabled by the service since the first attempt): not a failure of the endpoint
    const held = cause instanceof ApplicationFailure && cause.type === ALERT_HELD;
    return finish(input, { status: 'failed', httpStatus: null, error: message, ...(held ? { held } : {}) });
  }
}

async function finish(
  input: AlertDeliveryInput,
  result: { status: AlertDeliveryResult['status']; httpStatus: number | null; error: string | null; held?: boolean },
): Promise<AlertDeliveryResult> {
  await ending.finishDelivery(input, result);
  upsertSearchAttributes([{ key: AlertStatus, value: result.status }]);
  return { deliveryId: input.deliveryId, status: result.status, httpStatus: result.httpStatus, error: result.error };
}
