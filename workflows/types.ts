import type { AlertConditionName, DeliveryStatus, ExecutionEvent, StartedDelivery } from '../lib/schemas';
import type { DigestGroup, NoiseDecision, NoiseItem, NoiseState, NoiseSummary, RecoveryInfo } from '../lib/noise';

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
  /**
   * a delay watch held as a row whose config's DelayWatcher found it late (epoch ms, the watcher's
   * clock at its claim): no timer, the alert is routed and sent at once. Absent: the workflow holds
   * the watch's timer itself (watches started before delay watches became rows).
   */
  watchFiredAtMs?: number;
  /** when the service received the event (ISO time), for the dispatch latency metric */
  receivedAt?: string;
  /** set on a redelivery: the delivery it repeats */
  redeliveryOf?: string;
  /** a digest of grouped events (condition: the group's), sent by the config's AlertNoise workflow */
  group?: DigestGroup;
  /** a recovery notification (condition `recovered`), sent by the config's AlertNoise workflow */
  recovery?: RecoveryInfo;
  /** what the noise pipeline held back since the last alert that went out, told by this one */
  noise?: NoiseSummary;
  /** the noise pipeline let this alert through: it is not routed to the pipeline again */
  pipelined?: boolean;
  /** a recovery: the deliveries of its incident's alerts, which must end before it is sent */
  after?: string[];
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

/** Input of the AlertNoise workflow (id: lib/delivery-ids.ts noiseWorkflowId): one per config, started by its first alert. */
export interface AlertNoiseInput {
  projectId: string;
  configId: string;
  /** lib/delivery-ids.ts configDeliveryIdPrefix(configId): digests' and recoveries' ids start with it */
  idPrefix: string;
  /** carried over by continue-as-new */
  state?: NoiseState;
  /** items received but not yet taken in when the run continued as new */
  pending?: NoiseItem[];
  /** continue as new past this many history events (default 4000; tests set it low) */
  continueAsNewAfterEvents?: number;
}

/** Signal to AlertNoise: one alert (or a successful run, for recovery and repeat) enters the pipeline. */
export const NOISE_ITEM_SIGNAL = 'noiseItem';
/** Signal from AlertNoise to a fired delay watch that handed its alert to the pipeline: what became of it. */
export const NOISE_DECISION_SIGNAL = 'noiseDecision';
export type { NoiseDecision, NoiseItem };

/** Input of the DelayWatcher workflow (id: lib/delivery-ids.ts delayWatcherId): one per config with open delay watches. */
export interface DelayWatcherInput {
  projectId: string;
  configId: string;
  /** carried over by continue-as-new: watches fired (late) and suppressed at their deadline so far */
  fired?: number;
  suppressed?: number;
  /** continue as new after this many passes (default DELAY_WATCHER_PASSES; tests set it low) */
  continueAsNewAfterPasses?: number;
}

/** Signal to DelayWatcher: a watch with this deadline (epoch ms) opened, earlier than the wake it was committed to (or none). */
export const WATCH_DEADLINE_SIGNAL = 'watchDeadline';
export interface WatchDeadlineSignal {
  deadlineMs: number;
}

/** What one pass of the watcher (activity fireDueWatches) did, and when it must wake next. */
export interface WatcherPass {
  /** late watches whose AlertDelivery this pass started */
  fired: number;
  /** watches suppressed at their deadline (their run finished in time) */
  suppressed: number;
  /** the earliest open deadline (epoch ms), now the watcher's wake_at; null: none open */
  wakeAtMs: number | null;
  /** open watches */
  open: number;
  /** fired watches still to start: go round again at once */
  more: boolean;
}
