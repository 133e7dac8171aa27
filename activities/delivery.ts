import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Dispatcher } from 'undici';
import { logger } from '../lib/log';
import { noteDeliveryFinished, noteFirstAttemptSent } from '../lib/metrics';
import { buildTemplateContext } from '../lib/render';
import type { DeliveryRef } from '../lib/schemas';
import { TemplateError } from '../lib/templates';
import type { ServiceDeps } from '../runtime/deps';
import { renderAlertSandboxed } from '../runtime/template-sandbox';
import { noteDeliveryOutcome } from '../dispatch/endpoint-health';
import { findConfig, signingSecrets } from '../store/configs';
import { holdAlert, serviceDisabledReason } from '../store/held';
import { deliveryEvent, finishDelivery, logAttempt, recordLostAttempts, recordScheduledDelivery, startFirstAttempt, type RenderedRequest } from '../store/deliveries';
import type { AlertDeliveryInput, AlertDeliveryStatus } from '../workflows/types';
import { makeAttempt, type AttemptRequest } from './webhook-attempt';

/** What the first attempt came to: finished (delivered, or failed for good), or to be retried by the deliverWebhook activity. */
export type FirstAttemptResult =
  | { kind: 'finished'; status: AlertDeliveryStatus; httpStatus: number | null; error: string | null }
  /** `attempt`: the attempt just made (1, or more when an earlier run of this step was cut off) */
  | { kind: 'retry'; attempt: number; error: string; delayMs: number; firstAttemptAtMs: number; request: AttemptRequest };

/** Input of deliverWebhook: the request, and where the retried attempts count on from. */
export interface RetriedAttempts extends AttemptRequest {
  /** attempts made before this activity started (inside the workflow task) */
  attemptOffset: number;
  /** when the first attempt started (epoch ms): the plan's maxDurationMs counts from it */
  firstAttemptAtMs: number;
}

/** The failure type of a retried attempt that did not deliver, as the Temporal Web UI shows it (the message says why). */
const ATTEMPT_FAILED = 'WebhookAttemptFailed';

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

/** A delivery reached its final status: metrics, and its config's endpoint health (which raises delivery.exhausted for a failed one). */
async function noteFinished(deps: ServiceDeps, input: AlertDeliveryInput, status: AlertDeliveryStatus, error: string | null, options?: { endpoint?: boolean }): Promise<void> {
  noteDeliveryFinished(input, status);
  if (status === 'failed') {
    const { deliveryId, projectId, configId, condition } = input;
    deliveryLog.warn({ deliveryId, projectId, configId, runId: input.event.runId, condition, outcome: status, error }, `delivery ${deliveryId} failed`);
  }
  // an exhausted or refused delivery is also an operator event (delivery.exhausted), raised here
  await noteDeliveryOutcome(deps, input, status, error, options);
}

/**
 * Why a delivery that found its config disabled by the service did not send: it is held
 * (docs/endpoint-health.md). The prefix tells finishDelivery that the delivery's failure is not the
 * endpoint's (the workflow hands it the attempt's failure message).
 */
const HELD_PREFIX = 'held: ';
const heldError = (reason: string) => `${HELD_PREFIX}the alert config is disabled by the service (${reason}); re-enabling it sends or discards its held alerts`;

/** The failure type of a retried attempt that found its config disabled by the service: the alert is held. */
const ALERT_HELD = 'AlertHeld';

/** The activities of the AlertDelivery workflow, in the order it runs them. */
export function deliveryActivities(deps: ServiceDeps, dispatcher: Dispatcher) {
  return {
    /** Records a delay watch as scheduled. */
    async recordDelivery(input: AlertDeliveryInput): Promise<void> {
      await recordScheduledDelivery(deps.db, deps.keyring, deliveryRef(input), input.event, input.redeliveryOf);
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
      const ref = deliveryRef(input);
      // Render before the row is written, so that the row keeps this rendering: a run of this step cut
      // off after it (its worker died) is followed by one that sends the kept bytes, not a new rendering.
      const config = await findConfig(deps.db, deps.keyring, input.projectId, input.configId);
      let rendered: RenderedRequest | null = null;
      // a config deleted or disabled stops the delivery; a template that fails stops it only when no earlier run rendered it
      let configRefusal: string | undefined;
      let renderError: string | undefined;
      if (!config) configRefusal = 'the alert config was deleted';
      else if (!config.enabled && input.condition !== 'test') configRefusal = `the alert config is disabled${config.disabledReason ? `: ${config.disabledReason}` : ''}`;
      else {
        try {
          rendered = await renderAlertSandboxed(config, buildTemplateContext(input.event, config, input.condition, input.deliveryId, nowMs));
        } catch (err) {
          if (!(err instanceof TemplateError)) throw err;
          renderError = `template error in ${err.message}`;
        }
      }
      const started = await startFirstAttempt(deps.db, deps.keyring, ref, input.event, rendered, input.redeliveryOf);
      if ('finished' in started) {
        // this step already ran to its end (its workflow task was lost afterwards): report, do not send again
        const { status, httpStatus, error } = started.finished;
        if (status === 'delivered' || status === 'failed' || status === 'suppressed') return { kind: 'finished', status, httpStatus, error };
        throw new Error(`delivery ${input.deliveryId} is ${status}, not finished`);
      }
      const { attempt } = started;
      // an earlier run's rendering wins over this one's (the same bytes on every attempt)
      const kept = started.request ?? rendered;
      if (!config || configRefusal !== undefined || !kept) {
        // A config the service disabled holds the alert (a delay watch that fired while it was off, a
        // delivery started just before the disable): the delivery ends failed, saying it is held.
        const disabledBy = config && !config.enabled && input.condition !== 'test' ? config.disabledReason : null;
        const held =
          disabledBy !== null &&
          (await holdAlert(deps.db, deps.keyring, { projectId: input.projectId, configId: input.configId, condition: input.condition, deliveryId: input.deliveryId }, input.event)) !== 'not_disabled';
        const error = held && disabledBy !== null ? heldError(disabledBy) : (configRefusal ?? renderError ?? 'the alert could not be rendered');
        await recordLostAttempts(deps.db, ref, attempt);
        await logAttempt(deps.db, ref, { attempt, outcome: 'failed', error }, { status: 'failed', error });
        if (held) noteDeliveryFinished(input, 'held');
        // nothing reached the receiver: not a failure of the endpoint
        else await noteFinished(deps, input, 'failed', error, { endpoint: false });
        return { kind: 'finished', status: 'failed', httpStatus: null, error };
      }
      const request: AttemptRequest = { ref, ...kept, timeoutMs: config.webhook.timeoutMs, retry: config.retry };
      const firstAttemptAtMs = Date.now();
      if (attempt === 1) noteFirstAttemptSent(input, firstAttemptAtMs);
      const v = await makeAttempt(deps, dispatcher, request, config.secrets, { attempt, elapsedMs: 0, movesDelivery: true });
      if (v.outcome === 'retrying') return { kind: 'retry', attempt, error: v.message, delayMs: v.delayMs, firstAttemptAtMs, request };
      const error = v.outcome === 'failed' ? v.message : null;
      await noteFinished(deps, input, v.outcome, error);
      return { kind: 'finished', status: v.outcome, httpStatus: v.httpStatus, error };
    },

    /**
     * A retried attempt: load the secrets, POST, log the attempt, and tell Temporal whether and when
     * to try again (the plan's delay as nextRetryDelay, or a non-retryable failure after the last).
     */
    async deliverWebhook(req: RetriedAttempts): Promise<{ httpStatus: number; attempt: number }> {
      // the attempt as the receiver and the log count them, first attempts included
      const attempt = Context.current().info.attempt + req.attemptOffset;
      const secrets = await signingSecrets(deps.db, deps.keyring, req.ref.projectId, req.ref.configId).catch(async (err) => {
        if ((err as { code?: string }).code !== 'not_found') throw err;
        await logAttempt(deps.db, req.ref, { attempt, outcome: 'failed', error: 'the alert config was deleted' });
        throw ApplicationFailure.create({ type: ATTEMPT_FAILED, message: 'the alert config was deleted', nonRetryable: true });
      });
      // disabled by the service since the first attempt (a 410 or the failing streak of another delivery):
      // held, not sent to the failing receiver again
      const disabledBy = req.ref.condition === 'test' ? null : await serviceDisabledReason(deps.db, req.ref.projectId, req.ref.configId);
      if (disabledBy !== null) {
        const { event } = await deliveryEvent(deps.db, deps.keyring, req.ref.projectId, req.ref.deliveryId);
        if ((await holdAlert(deps.db, deps.keyring, { projectId: req.ref.projectId, configId: req.ref.configId, condition: req.ref.condition, deliveryId: req.ref.deliveryId }, event)) !== 'not_disabled') {
          const error = heldError(disabledBy);
          await recordLostAttempts(deps.db, req.ref, attempt);
          await logAttempt(deps.db, req.ref, { attempt, outcome: 'failed', error });
          throw ApplicationFailure.create({ type: ALERT_HELD, message: error, nonRetryable: true });
        }
      }
      const v = await makeAttempt(deps, dispatcher, req, secrets, { attempt, elapsedMs: Date.now() - req.firstAttemptAtMs });
      if (v.outcome === 'delivered') return { httpStatus: v.httpStatus!, attempt };
      throw ApplicationFailure.create({
        type: ATTEMPT_FAILED,
        message: v.message,
        nonRetryable: v.outcome === 'failed',
        ...(v.outcome === 'retrying' ? { nextRetryDelay: v.delayMs } : {}),
      });
    },

    /** Records the final outcome of a retried delivery or a suppressed delay watch. */
    async finishDelivery(input: AlertDeliveryInput, result: { status: AlertDeliveryStatus; httpStatus: number | null; error: string | null }): Promise<void> {
      await finishDelivery(deps.db, input.deliveryId, result);
      if (result.status === 'failed' && result.error?.startsWith(HELD_PREFIX)) noteDeliveryFinished(input, 'held');
      else await noteFinished(deps, input, result.status, result.error);
    },
  };
}
