import { z } from 'zod';
import { isoTime } from './schemas';

/**
 * Operator alerts: the service's own operational events, first-class and signed like every alert
 * (docs/operator-alerts.md). They go to the deployment's operator webhook (ALERTS_OPERATOR_WEBHOOK_URL)
 * and to the project's own (PUT /api/project/settings), durably through Temporal with retries. An
 * operator alert's own failure raises nothing: operator alerts never recurse.
 */

export const OPERATOR_EVENT_TYPES = [
  'delivery.exhausted',
  'config.failing',
  'config.disabled',
  'config.reenabled',
  'delivery.failure_rate',
  'service.degraded',
] as const;
export type OperatorEventType = (typeof OPERATOR_EVENT_TYPES)[number];

export const operatorEventTypeSchema = z.enum(OPERATOR_EVENT_TYPES).meta({ id: 'OperatorEventType' });

/**
 * One operational event as raised by the service: `id` is deterministic (the same event raised
 * twice is sent once), `projectId` null for a deployment-wide event (service.degraded), `data` what
 * the type says (config id and name, delivery id, counts, times; never a secret or a webhook URL).
 */
export interface OperatorEvent {
  id: string;
  type: OperatorEventType;
  projectId: string | null;
  occurredAt: string;
  data: Record<string, unknown>;
}

export const operatorEventSchema = z
  .object({
    id: z.string(),
    type: operatorEventTypeSchema,
    projectId: z.string().nullable(),
    occurredAt: isoTime,
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'OperatorEvent', description: 'The body of an operator alert, as its receiver gets it' });
