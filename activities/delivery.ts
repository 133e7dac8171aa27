import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Dispatcher } from 'undici';
import { logger } from '../lib/log';
import { noteDeliveryFinished, noteFirstAttemptSent } from '../lib/metrics';
import { buildTemplateContext } from '../lib/render';
import { classifyStatus, givingUp } from '../lib/retry';
import { noiseOn, noiseSettingsOf, type DeliveryRef } from '../lib/schemas';
import { TemplateError } from '../lib/templates';
import type { ServiceDeps } from '../runtime/deps';
import type { Queryable } from '../store/db';
import { renderAlertSandboxed, starvedTooOften } from '../runtime/template-sandbox';
import { endDelivery, raiseDisabledAgain, raiseFailedAgain, type DeliveryEnd } from '../dispatch/endpoint-health';
import { loadSilences, noiseAlertItem } from '../dispatch/noise-routing';
import { sendToNoisePipeline } from '../dispatch/start-delivery';
import { findConfig, signingSecrets, type StoredConfig } from '../store/configs';
import { loggedNoiseDecision, recordNoiseDecisions } from '../store/noise';
import { deliveryWasHeld, holdAndEndDelivery, serviceDisabledReason } from '../store/held';
import {
  claimRetriedAttempt, deliveryEvent, finalAttemptAfter, findDelivery, finishDelivery, logAttempt, LOST_ATTEMPT_ERROR, recordLostAttempts,
  recordScheduledDelivery, startFirstAttempt, type LoggedFinalAttempt, type RenderedRequest,
} from '../store/deliveries';
import { ALERT_HELD, type AlertDeliveryInput, type AlertDeliveryStatus } from '../workflows/types';
import { makeAttempt, type AttemptRequest } from './webhook-attempt';

/** What the first attempt came to: finished (delivered, or failed for good), or to be retried by the deliverWebhook activity. */
export type FirstAttemptResult =
  | { kind: 'finished'; status: AlertDeliveryStatus; httpStatus: number | null; error: string | null }
  /** `attempt`: the attempt just made (1, or more when an earlier run of this step was cut off) */
  | { kind: 'retry'; attempt: number; error: string; delayMs: number; firstAttemptAtMs: number; request: AttemptRequest };

/**
 * What a fired delay watch does with its alert (routeDueAlert): send it as before, end as silenced
 * (its config has no noise settings), or wait for its noise pipeline's decision (NOISE_DECISION_SIGNAL).
 */
export type DueAlertRoute = { route: 'send' } | { route: 'silenced'; note: string } | { route: 'pipeline' };

/** Input of deliverWebhook: the request, and where the retried attempts count on from. */
export interface RetriedAttempts extends AttemptRequest {
  /** attempts made before this activity started (inside the workflow task) */
  attemptOffset: number;
  /** when the first attempt started (epoch ms): the plan's maxDurationMs counts from it */
  firstAttemptAtMs: number;
}

/** How often a waiting recovery looks whether its incident's alerts have ended. */
const AWAIT_DELIVERIES_POLL_MS = 1_000;

/** The failure type of a retried attempt that did not deliver, as the Temporal Web UI shows it (the message says why). */
const ATTEMPT_FAILED = 'WebhookAttemptFailed';

/**
 * The message of the failure a retried attempt threw, from its log row (which keeps the attempt's own
 * error): as makeAttempt (webhook-attempt.ts) words it, the error alone, or for the last of a
 * retryable failure (an HTTP status to retry, or a network error: something was sent) with
 * "giving up after N attempts".
 */
function loggedFailure(logged: LoggedFinalAttempt): string {
  const error = logged.error ?? `HTTP ${logged.httpStatus}`;
  const retryable = logged.httpStatus === null ? logged.sent : classifyStatus(logged.httpStatus) === 'retryable';
  return retryable ? givingUp(error, logged.attempt) : error;
}

const deliveryRef = (input: AlertDeliveryInput): DeliveryRef => ({
  deliveryId: input.deliveryId,
  projectId: input.projectId,
  configId: input.configId,
  workflowId: input.event.workflowId,
  runId: input.event.runId,
  eventId: input.event.id,
  condition: input.condition,
});

const deliveryLog = logger('delivery');

/**
 * Ends the delivery (its final status and its config's health, one transaction: dispatch/endpoint-health.ts)
 * and raises what follows; metrics and the log line only from the call that ended it.
 */
async function endAndNote(deps: ServiceDeps, input: AlertDeliveryInput, end: DeliveryEnd, options?: { endpoint?: boolean }): Promise<void> {
  const ended = await endDelivery(deps, input, end, options);
  if (!ended) return;
  noteDeliveryFinished(input, end.status);
  if (end.status === 'failed') {
    const { deliveryId, projectId, configId, condition } = input;
    deliveryLog.warn({ deliveryId, projectId, configId, runId: input.event.runId, condition, outcome: end.status, error: end.error }, `delivery ${deliveryId} failed`);
  }
}

/** The finishDelivery activity's input: `held`, the delivery's retry found its config disabled by the service (failure type AlertHeld). */
export interface FinishedDelivery extends DeliveryEnd {
  held?: boolean;
}

/** The activities of the AlertDelivery workflow, in the order it runs them. */
export function deliveryActivities(deps: ServiceDeps, dispatcher: Dispatcher) {
  /** sendFirstAttempt for a config read as enabled (or deleted, or turned off by the user): render, start, POST. */
  async function attemptFirst(input: AlertDeliveryInput, nowMs: number, config: StoredConfig | undefined, stepStartedAtMs: number): Promise<FirstAttemptResult> {
    const ref = deliveryRef(input);
    let rendered: RenderedRequest | null = null;
    // a config deleted or disabled stops the delivery; a template that fails stops it only when no earlier run rendered it
    let configRefusal: string | undefined;
    let renderError: string | undefined;
    if (!config) configRefusal = 'the alert config was deleted';
    else if (!config.enabled && input.condition !== 'test') configRefusal = `the alert config is disabled${config.disabledReason ? `: ${config.disabledReason}` : ''}`;
    else {
      try {
        const { group, recovery, noise } = input;
        rendered = await renderAlertSandboxed(config, buildTemplateContext(input.event, config, input.condition, input.deliveryId, nowMs, { group, recovery, noise }));
      } catch (err) {
        const failure = err instanceof TemplateError ? err : starvedTooOften(err);
        if (!failure) throw err;
        renderError = `template error in ${failure.message}`;
      }
    }
    const started = await startFirstAttempt(deps.db, deps.keyring, ref, input.event, rendered, input.redeliveryOf);
    if (!('attempt' in started)) return afterStarted(input, started);
    const { attempt } = started;
    // an earlier run's rendering wins over this one's (the same bytes on every attempt)
    const kept = started.request ?? rendered;
    if (!config || configRefusal !== undefined || !kept) {
      const error = configRefusal ?? renderError ?? 'the alert could not be rendered';
      await recordLostAttempts(deps.db, ref, attempt);
      // the log row and the end in one statement; nothing reached the receiver: not a failure of the endpoint
      await logAttempt(deps.db, ref, { attempt, outcome: 'failed', error }, { status: 'failed', error });
      noteDeliveryFinished(input, 'failed');
      deliveryLog.warn({ deliveryId: input.deliveryId, projectId: input.projectId, configId: input.configId, runId: input.event.runId, condition: input.condition, outcome: 'failed', error }, `delivery ${input.deliveryId} failed`);
      if (input.condition !== 'test') await raiseFailedAgain(deps, input, error, { endpoint: false });
      return { kind: 'finished', status: 'failed', httpStatus: null, error };
    }
    const request: AttemptRequest = { ref, ...kept, timeoutMs: config.webhook.timeoutMs, retry: config.retry };
    const firstAttemptAtMs = Date.now();
    if (attempt === 1) noteFirstAttemptSent(input, firstAttemptAtMs);
    // an earlier run of this step was cut off after it counted its attempt: that attempt gets its row
    await recordLostAttempts(deps.db, ref, attempt);
    // writes the log row only: the delivery is ended below, with its health, in one transaction
    const v = await makeAttempt(deps, dispatcher, request, config.secrets, { attempt, elapsedMs: 0, stepStartedAtMs });
    if (v.outcome === 'retrying') return { kind: 'retry', attempt, error: v.message, delayMs: v.delayMs, firstAttemptAtMs, request };
    const error = v.outcome === 'failed' ? v.message : null;
    await endAndNote(deps, input, { status: v.outcome, httpStatus: v.httpStatus, error });
    return { kind: 'finished', status: v.outcome, httpStatus: v.httpStatus, error };
  }

  /**
   * An earlier run of sendFirstAttempt got this far: it ended the delivery (its workflow task was lost
   * afterwards, or the local activity timed out and is retried), or it POSTed, logged the outcome and
   * was cut off before it ended the delivery. Nothing is sent or counted again; a failure's operator
   * alerts are raised again (each is sent once).
   */
  async function afterStarted(input: AlertDeliveryInput, started: Exclude<Awaited<ReturnType<typeof startFirstAttempt>>, { attempt: number }>): Promise<FirstAttemptResult> {
    if ('logged' in started) {
      const { outcome, httpStatus, error } = started.logged;
      await endAndNote(deps, input, { status: outcome, httpStatus, error });
      return { kind: 'finished', status: outcome, httpStatus, error };
    }
    const { status, httpStatus, error } = started.finished;
    if (status === 'scheduled' || status === 'in_progress') throw new Error(`delivery ${input.deliveryId} is ${status}, not finished`);
    // ended by a noise decision (silenced, grouped, …) in an earlier run of its workflow task: it stands, nothing is sent
    if (status !== 'delivered' && status !== 'failed' && status !== 'suppressed') return { kind: 'finished', status, httpStatus, error };
    if (status === 'failed' && input.condition !== 'test') {
      // held: the earlier run may have been cut off before it raised its config's config.disabled again
      if (await deliveryWasHeld(deps.db, input.deliveryId)) await raiseDisabledAgain(deps, input);
      else await raiseFailedAgain(deps, input, error);
    }
    return { kind: 'finished', status, httpStatus, error };
  }

  /** A retried attempt that could not be counted: it ends the activity, nothing is sent. */
  async function notClaimed(ref: DeliveryRef, claimed: Exclude<Awaited<ReturnType<typeof claimRetriedAttempt>>, { attempt: number }>): Promise<never> {
    if ('missing' in claimed) throw ApplicationFailure.create({ type: ATTEMPT_FAILED, message: 'the delivery has no record (its project was erased)', nonRetryable: true });
    if ('ended' in claimed) throw ApplicationFailure.create({ type: ALERT_HELD, message: `the delivery has ended (${claimed.ended})`, nonRetryable: true });
    // the plan's last attempts were cut off (their workers died) after they were counted: none is left
    await recordLostAttempts(deps.db, ref, claimed.usedUp + 1);
    throw ApplicationFailure.create({ type: ATTEMPT_FAILED, message: givingUp(LOST_ATTEMPT_ERROR, claimed.usedUp), nonRetryable: true });
  }

  return {
    /** Records a delay watch as scheduled. */
    async recordDelivery(input: AlertDeliveryInput): Promise<void> {
      await recordScheduledDelivery(deps.db, deps.keyring, deliveryRef(input), input.event, input.redeliveryOf);
    },

    /**
     * A delay watch whose deadline passed, at `nowMs` (the workflow's clock: a time-skipping test
     * crosses a silence's boundary with it): a silence in force then silences a config's alert
     * without noise settings (its log row here; the watch ends `silenced`); a noise config's alert goes
     * to its pipeline, silenced or not, and the watch waits to be told. A config deleted or disabled
     * is sendFirstAttempt's to decide (refused, or held), as before.
     */
    async routeDueAlert(input: AlertDeliveryInput, nowMs: number): Promise<DueAlertRoute> {
      // An earlier run of this workflow task got somewhere and was lost before Temporal heard of it: what
      // it did stands. Routed again at this run's later clock, a silence may have begun or ended since.
      const current = await findDelivery(deps.db, input.projectId, input.deliveryId);
      if (current?.status === 'silenced') return { route: 'silenced', note: current.error ?? 'silenced' };
      // it made the first attempt (or ended the delivery): the first attempt carries on from what it kept
      if (current && current.status !== 'scheduled') return { route: 'send' };
      // it logged the alert silenced and was cut off before it ended the delivery
      const logged = await loggedNoiseDecision(deps.db, input.deliveryId);
      if (logged?.outcome === 'silenced') return { route: 'silenced', note: logged.note };
      const config = await findConfig(deps.db, deps.keyring, input.projectId, input.configId);
      if (!config || !config.enabled) return { route: 'send' };
      const silence = (await loadSilences(deps.db, input.projectId, input.event.workflowId))(input.configId, nowMs);
      const noise = noiseSettingsOf(config);
      if (noiseOn(noise)) {
        const item = await noiseAlertItem(
          { id: config.id, name: config.name, noise },
          { deliveryId: input.deliveryId, condition: 'delay', event: input.event, receivedAt: input.receivedAt, silencedBy: silence?.id ?? null, silenceNote: silence?.note ?? null, watch: true },
          nowMs,
        );
        await sendToNoisePipeline(deps, { projectId: input.projectId, configId: input.configId }, item);
        return { route: 'pipeline' };
      }
      if (!silence) return { route: 'send' };
      await recordNoiseDecisions(deps.db, [{ ref: deliveryRef(input), outcome: 'silenced', note: silence.note }]);
      return { route: 'silenced', note: silence.note };
    },

    /**
     * Waits until none of these AlertDelivery workflows runs any more (a recovery's incident alerts),
     * heartbeating as it polls; one not found (never started, or closed and gone) has ended.
     */
    async awaitDeliveriesEnded(deliveryIds: string[]): Promise<void> {
      const { client } = deps.temporal;
      let waiting = [...deliveryIds];
      for (;;) {
        const running = await Promise.all(
          waiting.map(async (id) => {
            try {
              return (await client.workflow.getHandle(id).describe()).status.name === 'RUNNING' ? id : null;
            } catch (err) {
              if (err instanceof WorkflowNotFoundError) return null;
              throw err;
            }
          }),
        );
        waiting = running.filter((id): id is string => id !== null);
        Context.current().heartbeat({ waitingFor: waiting });
        if (waiting.length === 0) return;
        await Context.current().sleep(AWAIT_DELIVERIES_POLL_MS);
      }
    },

    /**
     * Loads the config, renders URL, headers and body once (every retry sends
     * the same bytes) and makes the first attempt, all inside the workflow
     * task that started the delivery: a delivery that lands first time costs
     * Temporal one workflow task and no activity task. Two writes: the
     * delivery row and the attempt's number before the POST, its log row and
     * the outcome after it, so an attempt cut off by a dying worker is still
     * counted and logged. A template that fails, or a config deleted or
     * disabled, is a permanent failure.
     */
    async sendFirstAttempt(input: AlertDeliveryInput, nowMs: number): Promise<FirstAttemptResult> {
      // its start-to-close counts from now, however long it waited for a local activity slot
      const stepStartedAtMs = Date.now();
      const ref = deliveryRef(input);
      // A pass that decides nothing read the config disabled by the service and found it re-enabled at its
      // hold: the next pass reads it again. Another pass needs another disable since that re-enable, so
      // the loop ends once the config stops changing; leaving it earlier would refuse the alert (attemptFirst
      // with a config read as disabled), neither holding nor sending it.
      for (;;) {
        // Render before the row is written, so that the row keeps this rendering: a run of this step cut
        // off after it (its worker died) is followed by one that sends the kept bytes, not a new rendering.
        const config = await findConfig(deps.db, deps.keyring, input.projectId, input.configId);
        const disabledBy = config && !config.enabled && input.condition !== 'test' ? config.disabledReason : null;
        if (disabledBy === null) return attemptFirst(input, nowMs, config, stepStartedAtMs);
        // A config the service disabled holds the alert (a delay watch that fired while it was off, a
        // delivery started just before the disable): its start, the hold and its end are one transaction.
        const held = await holdAndEndDelivery(deps.db, deps.keyring, ref, input.event, disabledBy, async (tx) => {
          const started = await startFirstAttempt(tx, deps.keyring, ref, input.event, null, input.redeliveryOf);
          return 'attempt' in started ? started.attempt : { ended: started };
        });
        if ('ended' in held) return afterStarted(input, held.ended);
        if (held.held) {
          noteDeliveryFinished(input, 'held');
          await raiseDisabledAgain(deps, input);
          return { kind: 'finished', status: 'failed', httpStatus: null, error: held.error };
        }
        // re-enabled since it was read (nothing was written): read it again, and send
      }
    },

    /**
     * A retried attempt: load the secrets, count the attempt, POST, log it, and tell Temporal whether
     * and when to try again (the plan's delay as nextRetryDelay, or a non-retryable failure after the
     * last). The attempt's number is the delivery's own count (claimRetriedAttempt), taken just before
     * the POST: a run of this activity that fails before it (the store down, so nothing was sent)
     * counts no attempt, and Temporal runs it again, within the plan's duration, until the store is
     * back; only attempts that were made, or cut off on the way, use up the plan.
     */
    async deliverWebhook(req: RetriedAttempts): Promise<{ httpStatus: number; attempt: number }> {
      // its start-to-close counts from now, however long its task waited for a worker
      const stepStartedAtMs = Date.now();
      const { ref } = req;
      // reads first, before anything is counted: null, the config was deleted
      const secrets = await signingSecrets(deps.db, deps.keyring, ref.projectId, ref.configId).catch((err) => {
        if ((err as { code?: string }).code === 'not_found') return null;
        throw err;
      });
      // An earlier run of this activity held the alert and ended the delivery (and was cut off before it
      // threw): held still, whatever a re-enable did with the held alert since; nothing is sent.
      const current = await findDelivery(deps.db, ref.projectId, ref.deliveryId);
      if (current && current.status !== 'scheduled' && current.status !== 'in_progress') {
        if (await deliveryWasHeld(deps.db, ref.deliveryId)) await raiseDisabledAgain(deps, ref);
        throw ApplicationFailure.create({ type: ALERT_HELD, message: current.error ?? `delivery ${ref.deliveryId} has ended`, nonRetryable: true });
      }
      // An earlier run of this attempt POSTed and logged its final outcome, and its worker died before
      // Temporal heard of it: that outcome stands (before the hold below: a delivered alert is not held),
      // and nothing is sent again.
      const logged = await finalAttemptAfter(deps.db, ref.deliveryId, req.attemptOffset);
      if (logged?.outcome === 'delivered') return { httpStatus: logged.httpStatus!, attempt: logged.attempt };
      if (logged) throw ApplicationFailure.create({ type: ATTEMPT_FAILED, message: loggedFailure(logged), nonRetryable: true });
      const disabledBy = ref.condition === 'test' || secrets === null ? null : await serviceDisabledReason(deps.db, ref.projectId, ref.configId);
      const claim = (db: Queryable) => claimRetriedAttempt(db, ref, req.attemptOffset, req.retry.maxAttempts);

      // disabled by the service since the first attempt (a 410 or the failing streak of another delivery):
      // held, not sent to the failing receiver again; the attempt's count, the hold and the delivery's
      // end are one transaction, so a store failing in between counts nothing
      if (disabledBy !== null) {
        const { event } = await deliveryEvent(deps.db, deps.keyring, ref.projectId, ref.deliveryId);
        const held = await holdAndEndDelivery(deps.db, deps.keyring, ref, event, disabledBy, async (tx) => {
          const claimed = await claim(tx);
          return 'attempt' in claimed ? claimed.attempt : { ended: claimed };
        });
        if ('ended' in held) await notClaimed(ref, held.ended);
        if ('held' in held && held.held) {
          await raiseDisabledAgain(deps, ref);
          throw ApplicationFailure.create({ type: ALERT_HELD, message: held.error, nonRetryable: true });
        }
        // re-enabled since it was read: the hold and its count were rolled back; counted and sent below
      }
      const claimed = await claim(deps.db);
      if (!('attempt' in claimed)) return notClaimed(ref, claimed);
      const { attempt } = claimed;
      if (secrets === null) {
        await logAttempt(deps.db, ref, { attempt, outcome: 'failed', error: 'the alert config was deleted' });
        throw ApplicationFailure.create({ type: ATTEMPT_FAILED, message: 'the alert config was deleted', nonRetryable: true });
      }
      const v = await makeAttempt(deps, dispatcher, req, secrets, { attempt, elapsedMs: Date.now() - req.firstAttemptAtMs, stepStartedAtMs });
      if (v.outcome === 'delivered') return { httpStatus: v.httpStatus!, attempt };
      throw ApplicationFailure.create({
        type: ATTEMPT_FAILED,
        message: v.message,
        nonRetryable: v.outcome === 'failed',
        ...(v.outcome === 'retrying' ? { nextRetryDelay: v.delayMs } : {}),
      });
    },

    /**
     * Records the final outcome of a retried delivery or a suppressed delay watch, and counts it into its
     * config's health in the same transaction (dispatch/endpoint-health.ts): run again (a retried local
     * activity), it counts nothing twice and raises the same operator alerts (each sent once).
     */
    async finishDelivery(input: AlertDeliveryInput, result: FinishedDelivery): Promise<void> {
      const { held, ...end } = result;
      if (held) {
        // ended with the hold already (store/held.ts): not a failure of the endpoint, not exhausted
        await finishDelivery(deps.db, input.deliveryId, end);
        noteDeliveryFinished(input, 'held');
        return;
      }
      await endAndNote(deps, input, end);
    },
  };
}
