import { deliveriesFinished } from '../lib/metrics';
import { buildTemplateContext, renderAlert } from '../lib/render';
import type { RetrySettings } from '../lib/retry';
import { TemplateError } from '../lib/templates';
import { findConfig } from '../store/configs';
import { finishDelivery, logAttempt, upsertDelivery, type DeliveryRef, type DeliveryStatus } from '../store/deliveries';
import type { AlertDeliveryInput } from '../workflows/types';
import type { ActivityDeps } from './deps';

export type PreparedAlert =
  | { ok: true; url: string; headers: Record<string, string>; body: string; timeoutMs: number; retry: RetrySettings }
  | { ok: false; error: string };

export const deliveryRef = (input: AlertDeliveryInput): DeliveryRef => ({
  deliveryId: input.deliveryId,
  projectId: input.projectId,
  configId: input.configId,
  workflowId: input.event.workflowId,
  runId: input.event.runId,
  eventId: input.event.id,
  condition: input.condition,
});

export function prepareActivities(deps: ActivityDeps) {
  return {
    /** Records a delivery as scheduled (a delay watch) or in progress. */
    async recordDelivery(input: AlertDeliveryInput, status: Extract<DeliveryStatus, 'scheduled' | 'in_progress'>): Promise<void> {
      await upsertDelivery(deps.db, deps.keyring, deliveryRef(input), status, input.event, input.redeliveryOf);
    },

    /**
     * Loads the config and renders URL, headers and body once, so every retry
     * sends the same bytes. A template that fails is a permanent failure.
     */
    async prepareAlert(input: AlertDeliveryInput, nowMs: number): Promise<PreparedAlert> {
      await upsertDelivery(deps.db, deps.keyring, deliveryRef(input), 'in_progress', input.event, input.redeliveryOf);
      const config = await findConfig(deps.db, deps.keyring, input.projectId, input.configId);
      if (!config) return { ok: false, error: 'the alert config was deleted' };
      if (!config.enabled && input.condition !== 'test') {
        return { ok: false, error: `the alert config is disabled${config.disabledReason ? `: ${config.disabledReason}` : ''}` };
      }
      try {
        const rendered = renderAlert(config, buildTemplateContext(input.event, config, input.condition, input.deliveryId, nowMs));
        return { ok: true, ...rendered, timeoutMs: config.webhook.timeoutMs, retry: config.retry };
      } catch (err) {
        if (err instanceof TemplateError) return { ok: false, error: `template error in ${err.message}` };
        throw err;
      }
    },

    /** Records the delivery's final outcome; a delivery that failed before any attempt gets one failed log row saying why. */
    async finishDelivery(
      input: AlertDeliveryInput,
      result: { status: 'delivered' | 'failed' | 'suppressed'; httpStatus: number | null; error: string | null; attempted: boolean },
    ): Promise<void> {
      const ref = deliveryRef(input);
      if (result.status === 'failed' && !result.attempted) {
        await logAttempt(deps.db, ref, { attempt: 1, outcome: 'failed', error: result.error });
      }
      await finishDelivery(deps.db, input.deliveryId, result);
      deliveriesFinished.inc({ status: result.status });
      if (result.status === 'failed') {
        // An exhausted or refused delivery is an operator event, not only a log row.
        console.warn(`[alerts] delivery ${input.deliveryId} failed for config ${input.configId}: ${result.error}`);
      }
    },
  };
}
