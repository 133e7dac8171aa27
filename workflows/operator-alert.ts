import { ActivityFailure, ApplicationFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { OPERATOR_RETRY, OPERATOR_TIMEOUT_MS, type OperatorAlertInput, type OperatorAlertResult } from '../lib/operator-delivery';
import { retriedAttemptOptions } from '../lib/retry';

// the operator retry plan's attempts, each one sendOperatorAlert activity; it hands Temporal the plan's delay, or fails for good.
// Its attempts are Temporal's runs of it (activities/operator.ts): Temporal counts them, up to the plan's.
const operatorOptions = retriedAttemptOptions(OPERATOR_RETRY, { timeoutMs: OPERATOR_TIMEOUT_MS, elapsedMs: 0 });
const { sendOperatorAlert } = proxyActivities<Activities>({
  ...operatorOptions,
  retry: { ...operatorOptions.retry, maximumAttempts: OPERATOR_RETRY.maxAttempts },
  summary: 'POST the operator alert',
});

// recording the outcome is retried until the store takes it (the alert may be about the store being down)
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

/**
 * One operator alert to one operator webhook: POST it, signed, under the operator retry plan. A
 * failure is recorded and logged, and raises nothing: operator alerts never recurse.
 */
export async function OperatorAlertDelivery(input: OperatorAlertInput): Promise<OperatorAlertResult> {
  const firstAttemptAtMs = Date.now();
  let result: OperatorAlertResult;
  let attempts: number | undefined;
  try {
    const sent = await sendOperatorAlert(input, firstAttemptAtMs);
    attempts = sent.attempt;
    result = { alertId: input.alertId, status: 'delivered', httpStatus: sent.httpStatus, error: null };
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    const cause = err.cause;
    const error = cause instanceof ApplicationFailure || cause instanceof Error ? cause.message : err.message;
    result = { alertId: input.alertId, status: 'failed', httpStatus: null, error };
  }
  await local.finishOperatorAlert(input, {
    status: result.status,
    attempts,
    ...(result.status === 'delivered' ? { httpStatus: result.httpStatus } : {}),
    error: result.error,
  });
  return result;
}
