import type { Dispatcher } from 'undici';
import { deliveriesFinished, dispatchLatency } from '../lib/metrics';
import { buildTemplateContext } from '../lib/render';
import { TemplateError } from '../lib/templates';
import { renderAlertSandboxed } from '../runtime/template-sandbox';
import { findConfig } from '../store/configs';
import { finishAttempt, finishDelivery, recordLostAttempts, startFirstAttempt, recordScheduledDelivery, type DeliveryRef, type RenderedRequest } from '../store/deliveries';
import type { AlertDeliveryInput } from '../workflows/types';
import { attemptDelivery, type AttemptRequest } from './deliver';
import type { ActivityDeps } from './deps';

/** What the first attempt came to: finished (delivered, or failed for good), or to be retried by the deliverWebhook activity. */
export type FirstAttemptResult =
  | { kind: 'finished'; status: 'delivered' | 'failed' | 'suppressed'; httpStatus: number | null; error: string | null; attempted: boolean }
  /** `attempt`: the attempt just made (1, or more when an earlier run of this step was cut off) */
  | { kind: 'retry'; attempt: number; error: string; delayMs: number; firstAttemptAtMs: number; request: AttemptRequest };

export const deliveryRef = (input: AlertDeliveryInput): DeliveryRef => ({
  deliveryId: input.deliveryId,
  projectId: input.projectId,
  configId: input.configId,
  workflowId: input.event.workflowId,
  runId: input.event.runId,
  eventId: input.event.id,
  condition: input.condition,
});

function noteFinished(input: AlertDeliveryInput, status: 'delivered' | 'failed' | 'suppressed', error: string | null): void {
  deliveriesFinished.inc({ status });
  if (status === 'failed') {
    // An exhausted or refused delivery is an operator event, not only a log row.
    console.warn(`[alerts] delivery ${input.deliveryId} failed for config ${input.configId}: ${error}`);
  }
}

export function prepareActivities(deps: ActivityDeps, dispatcher: Dispatcher) {
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
        if (status === 'delivered' || status === 'failed' || status === 'suppressed') return { kind: 'finished', status, httpStatus, error, attempted: true };
        throw new Error(`delivery ${input.deliveryId} is ${status}, not finished`);
      }
      const { attempt } = started;
      if (attempt > 1) await recordLostAttempts(deps.db, ref, attempt);
      // an earlier run's rendering wins over this one's (the same bytes on every attempt)
      const kept = started.request ?? rendered;
      if (!config || configRefusal !== undefined || !kept) {
        const error = configRefusal ?? renderError ?? 'the alert could not be rendered';
        await finishAttempt(deps.db, ref, { status: 'failed', error }, { attempt, outcome: 'failed', error });
        noteFinished(input, 'failed', error);
        return { kind: 'finished', status: 'failed', httpStatus: null, error, attempted: false };
      }
      const request: AttemptRequest = { ref, ...kept, timeoutMs: config.webhook.timeoutMs, retry: config.retry };
      const firstAttemptAtMs = Date.now();
      if (input.receivedAt && attempt === 1) dispatchLatency.observe((firstAttemptAtMs - Date.parse(input.receivedAt)) / 1000);
      const v = await attemptDelivery(deps, dispatcher, request, config.secrets, attempt, 0);
      const status = v.outcome === 'retrying' ? 'in_progress' : v.outcome;
      const finalError = v.outcome === 'failed' ? v.message : null;
      await finishAttempt(deps.db, ref, { status, error: finalError }, {
        attempt, outcome: v.outcome, httpStatus: v.httpStatus, error: v.error, durationMs: v.durationMs, responseSnippet: v.responseSnippet, signatureHeaders: v.signatureHeaders,
      });
      if (v.outcome === 'retrying') return { kind: 'retry', attempt, error: v.message, delayMs: v.delayMs, firstAttemptAtMs, request };
      noteFinished(input, v.outcome, finalError);
      return { kind: 'finished', status: v.outcome, httpStatus: v.httpStatus, error: finalError, attempted: true };
    },

    /** Records the final outcome of a retried delivery or a suppressed delay watch. */
    async finishDelivery(
      input: AlertDeliveryInput,
      result: { status: 'delivered' | 'failed' | 'suppressed'; httpStatus: number | null; error: string | null },
    ): Promise<void> {
      await finishDelivery(deps.db, input.deliveryId, result);
      noteFinished(input, result.status, result.error);
    },
  };
}
