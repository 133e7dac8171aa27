import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Dispatcher } from 'undici';
import { maskUrl } from '../lib/audit';
import { logger } from '../lib/log';
import { noteOperatorAlert } from '../lib/metrics';
import { OPERATOR_RETRY, OPERATOR_TIMEOUT_MS, operatorWebhookId, type OperatorAlertInput } from '../lib/operator-delivery';
import { afterRetryableFailure, classifyStatus, givingUp, retryingIn } from '../lib/retry';
import { signatureHeaders } from '../lib/signing';
import type { ServiceDeps } from '../runtime/deps';
import { recordOperatorAlert, updateOperatorAlert, type OperatorAlertStatus } from '../store/operator-alerts';
import { projectOperatorWebhook, type OperatorWebhook } from '../store/project-settings';
import { postSigned } from './webhook-attempt';

const log = logger('operator');

/** The failure type of an operator alert attempt that did not deliver, as the Temporal Web UI shows it. */
const OPERATOR_ATTEMPT_FAILED = 'OperatorAlertAttemptFailed';

/**
 * The activities of the OperatorAlertDelivery workflow: one signed POST per attempt to the operator
 * webhook of the alert's target, loaded here by target so that no URL or secret enters Temporal
 * history. An attempt's store row is written best effort, so that an operator alert about the store
 * being down (service.degraded) still goes out; its outcome is recorded once the store takes it.
 */
export function operatorActivities(deps: Pick<ServiceDeps, 'db' | 'keyring' | 'operations'>, dispatcher: Dispatcher) {
  const note = async (input: OperatorAlertInput, update: { status: OperatorAlertStatus; attempts?: number; httpStatus?: number | null; error: string | null }) => {
    try {
      await recordOperatorAlert(deps.db, input);
      return await updateOperatorAlert(deps.db, input.alertId, update);
    } catch (err) {
      log.warn({ alertId: input.alertId, type: input.event.type, target: input.target, err: (err as Error).message }, 'could not record the operator alert in the store');
      return true;
    }
  };

  async function webhookOf(input: OperatorAlertInput): Promise<OperatorWebhook | null> {
    if (input.target === 'deployment') return deps.operations.operatorWebhook ?? null;
    return input.event.projectId ? projectOperatorWebhook(deps.db, deps.keyring, input.event.projectId) : null;
  }

  return {
    /** One attempt: POST the event, signed; delivered, or a failure that tells Temporal whether and when to try again. */
    async sendOperatorAlert(input: OperatorAlertInput, firstAttemptAtMs: number): Promise<{ httpStatus: number; attempt: number }> {
      const attempt = Context.current().info.attempt;
      const webhook = await webhookOf(input);
      if (!webhook) throw ApplicationFailure.create({ type: OPERATOR_ATTEMPT_FAILED, message: 'the operator webhook was removed', nonRetryable: true });
      const body = JSON.stringify(input.event);
      const signature = signatureHeaders([webhook.secret], operatorWebhookId(input.alertId), body);
      const sent = await postSigned(dispatcher, { url: webhook.url, headers: {}, body, timeoutMs: OPERATOR_TIMEOUT_MS }, signature);
      const fields = { alertId: input.alertId, type: input.event.type, projectId: input.event.projectId, target: input.target, url: maskUrl(webhook.url), attempt, httpStatus: sent.httpStatus, durationMs: sent.durationMs };
      const verdict = sent.refusal ? 'refused' : sent.httpStatus === null ? 'retryable' : classifyStatus(sent.httpStatus);
      if (verdict === 'delivered') {
        log.info({ ...fields, outcome: 'delivered' }, 'operator alert delivered');
        return { httpStatus: sent.httpStatus!, attempt };
      }
      const error = sent.refusal ?? sent.networkError ?? `HTTP ${sent.httpStatus}`;
      if (verdict === 'retryable') {
        const next = afterRetryableFailure(OPERATOR_RETRY, { attempt, elapsedMs: Date.now() - firstAttemptAtMs, retryAfterMs: sent.retryAfterMs });
        if (!next.last) {
          await note(input, { status: 'in_progress', attempts: attempt, httpStatus: sent.httpStatus, error });
          log.info({ ...fields, outcome: 'retrying', error }, 'operator alert attempt failed; retrying');
          throw ApplicationFailure.create({ type: OPERATOR_ATTEMPT_FAILED, message: retryingIn(error, next.delayMs), nextRetryDelay: next.delayMs });
        }
        await note(input, { status: 'in_progress', attempts: attempt, httpStatus: sent.httpStatus, error });
        throw ApplicationFailure.create({ type: OPERATOR_ATTEMPT_FAILED, message: givingUp(error, attempt), nonRetryable: true });
      }
      // a refusal by the egress policy, a 410 or another 4xx: retrying cannot help
      await note(input, { status: 'in_progress', attempts: attempt, httpStatus: sent.httpStatus, error });
      throw ApplicationFailure.create({ type: OPERATOR_ATTEMPT_FAILED, message: error, nonRetryable: true });
    },

    /**
     * The operator alert's outcome, recorded (retried until the store takes it: the alert may be
     * about the store being down) and counted. A failure is logged and raises nothing: operator
     * alerts never recurse.
     */
    async finishOperatorAlert(input: OperatorAlertInput, result: { status: 'delivered' | 'failed'; attempts?: number; httpStatus?: number | null; error: string | null }): Promise<void> {
      await recordOperatorAlert(deps.db, input);
      const moved = await updateOperatorAlert(deps.db, input.alertId, result);
      if (!moved) return; // a run of this step before it already did
      noteOperatorAlert(input.event.type, result.status);
      if (result.status === 'failed') {
        log.error({ alertId: input.alertId, type: input.event.type, projectId: input.event.projectId, target: input.target, outcome: 'failed', error: result.error }, 'operator alert failed; no operator alert is raised about it');
      }
    },
  };
}
