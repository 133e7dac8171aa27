import type { OperatorEvent } from './operator-events';
import type { RetrySettings } from './retry';

/**
 * How an operator alert travels (docs/operator-alerts.md): one OperatorAlertDelivery workflow per
 * event and target, its id deterministic so that the same event is sent once, its attempts under the
 * same retry plan as alerts (lib/retry.ts) with one fixed policy. Pure: safe in workflow code.
 */

/** deployment: ALERTS_OPERATOR_WEBHOOK_URL; project: the project's own operator webhook (PUT /api/project/settings). */
export type OperatorTarget = 'deployment' | 'project';

/** 10 attempts over up to a day: 5 s, 15 s, 45 s … capped at 4 h between attempts. A receiver's Retry-After sets the next delay. */
export const OPERATOR_RETRY: RetrySettings = {
  maxAttempts: 10,
  initialIntervalMs: 5_000,
  backoffCoefficient: 3,
  maxIntervalMs: 4 * 3_600_000,
  maxDurationMs: 86_400_000,
};

/** How long an operator webhook has to answer one attempt. */
export const OPERATOR_TIMEOUT_MS = 10_000;

/** The workflow id of an operator alert, and its row's id: `op:<target>:<event id>`. */
export const operatorAlertId = (target: OperatorTarget, eventId: string) => `op:${target}:${eventId}`;

/** Its `webhook-id` header: the workflow id with "." (not allowed there by Standard Webhooks) as "_". */
export const operatorWebhookId = (alertId: string) => alertId.replace(/\./g, '_');

/** Input of the OperatorAlertDelivery workflow: no URL and no secret (the activity loads them by target). */
export interface OperatorAlertInput {
  alertId: string;
  target: OperatorTarget;
  event: OperatorEvent;
}

export interface OperatorAlertResult {
  alertId: string;
  status: 'delivered' | 'failed';
  httpStatus: number | null;
  error: string | null;
}
