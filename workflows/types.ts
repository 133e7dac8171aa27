import type { AlertConditionName, DeliveryStatus, ExecutionEvent, StartedDelivery } from '../lib/schemas';

/** Input of the AlertDelivery workflow (its workflow id is `deliveryId`). */
export interface AlertDeliveryInput {
  deliveryId: string;
  projectId: string;
  configId: string;
  condition: AlertConditionName;
  /** the event, with occurredAt filled in */
  event: ExecutionEvent;
  /** delay watch: wait this long for the run to finish before alerting */
  delaySeconds?: number;
  /** when the service received the event (ISO time), for the dispatch latency metric */
  receivedAt?: string;
  /** set on a redelivery: the delivery it repeats */
  redeliveryOf?: string;
}

/** How a delivery ends. */
export type AlertDeliveryStatus = Exclude<DeliveryStatus, 'scheduled' | 'in_progress'>;

export interface AlertDeliveryResult {
  deliveryId: string;
  status: AlertDeliveryStatus;
  httpStatus: number | null;
  error: string | null;
}

/** Input of the ProcessExecutionEvent workflow: MeshHook's way in through its own Temporal client. */
export interface ProcessExecutionEventInput {
  projectId: string;
  /** validated by the service; same shape as the body of POST /api/events */
  event: unknown;
}

export type { StartedDelivery };

export const RUN_FINISHED_SIGNAL = 'runFinished';

/** The failure type of a retried attempt that found its config disabled by the service: the alert is held (activities/delivery.ts). */
export const ALERT_HELD = 'AlertHeld';

/** What a finishing event of the run tells its delay watch. */
export interface RunFinishedSignal {
  eventId: string;
  type: string;
  /** when the run finished: the event's occurredAt, else when the service received it; absent from signals of earlier versions */
  occurredAt?: string;
}
