import type { AlertConditionName, ExecutionEvent, GroupField, NoiseOutcome, NoiseSettings } from './schemas';

/**
 * The noise pipeline of one config (docs/noise-control.md): silence → dedup (and repeat) → throttle →
 * group → deliver. Pure and deterministic: the AlertNoise workflow (workflows/alert-noise.ts) holds a
 * NoiseState, feeds it each item and each wake-up, and carries out the actions. Silence is decided
 * before an item gets here (it needs the store: dispatch/process-event.ts at the event's time, or a
 * fired delay watch at its deadline), so a silenced item only comes to be counted.
 *
 * Windows (dedup, throttle, repeat, group wait and interval) run on `nowMs`, the workflow's clock
 * when it takes the item in; the times an alert shows (firstAt, lastAt, failingSince) are the events'.
 * No module here may import Node built-ins: workflow code imports it.
 */

/** One event as a digest lists it (no `data`: a digest of many runs would carry each run's). */
export interface GroupedEvent {
  id: string;
  type: ExecutionEvent['type'];
  workflowId: string;
  runId: string;
  occurredAt: string;
  error: ExecutionEvent['error'] | null;
  /** the delivery id this event's own alert would have had (its log row's deliveryId) */
  deliveryId: string;
}

/** A digest: what the template context's `group` is (DESIGN's template context, plus this). */
export interface DigestGroup {
  /** the group's key: the condition and the grouping.by fields' values, e.g. "failure|wf_orders|createContact" */
  key: string;
  by: GroupField[];
  condition: AlertConditionName;
  /** events in this digest (listed or not) */
  count: number;
  /** the events themselves, oldest first, at most grouping.maxEvents */
  events: GroupedEvent[];
  /** count - events.length */
  more: number;
  /** earliest and latest event time (occurredAt) in this digest */
  firstAt: string;
  lastAt: string;
  /** 1 for the group's first digest, 2 for the next (after intervalSeconds), … */
  digest: number;
}

/** What the pipeline held back since the last alert that went out: told by the next one (`noise` in templates). */
export interface NoiseSummary {
  silenced: number;
  deduplicated: number;
  throttled: number;
  repeatSuppressed: number;
  /** when the first of them was held back */
  since: string;
}

/** A recovery notification: the template context's `recovery`. */
export interface RecoveryInfo {
  /** the first failing event's time (occurredAt) of the incident */
  failingSince: string;
  /** the successful run's event time */
  recoveredAt: string;
  failingForMs: number;
  /** failure and delay alerts of the incident, sent or not (silenced, grouped, … included) */
  failures: number;
  /** the dedup key of the incident's alerts: the config's dedup key of its first alert, else the workflow id */
  incidentKey: string;
}

/** What enters the pipeline: the signal `noiseItem` of AlertNoise. */
export type NoiseItem =
  | {
      kind: 'alert';
      /** the alert's own delivery id (immediateDeliveryId, or the delay watch's id): its log row's, and the one it is sent under */
      deliveryId: string;
      condition: Exclude<AlertConditionName, 'test' | 'recovered'>;
      /** the event, occurredAt filled in */
      event: ExecutionEvent;
      /** when the service received the event (ISO), carried into a delivery's metrics */
      receivedAt?: string;
      /** lib/noise.ts groupKey(settings.grouping.by, event, condition); '' without grouping */
      groupKey: string;
      /** the config's dedup.key rendered for this alert; null without dedup */
      dedupKey: string | null;
      /** the silence (its id) in force at the alert's time: counted, logged, not sent */
      silencedBy: string | null;
      /** a fired delay watch waiting for NOISE_DECISION_SIGNAL: it sends the alert itself when told `send` */
      watch: boolean;
      /** the config's settings as the sender read them (the newest item's win) */
      settings: NoiseSettings;
    }
  | {
      /** a successful run of the config's workflow: closes an open incident (recovery, repeat) */
      kind: 'success';
      event: ExecutionEvent;
      settings: NoiseSettings;
    };
export type NoiseAlertItem = Extract<NoiseItem, { kind: 'alert' }>;

/** What the AlertNoise workflow tells a waiting delay watch (NOISE_DECISION_SIGNAL). */
export type NoiseDecision =
  | { outcome: 'send'; noise: NoiseSummary | null }
  | { outcome: NoiseOutcome; note: string };

/** What the workflow must do after a step; in this order. */
export type NoiseAction =
  /** a log row with attempt 0 and this outcome, `note` as its error; for a watch item, also tell the watch */
  | { kind: 'decided'; item: NoiseAlertItem; outcome: NoiseOutcome; note: string }
  /** the alert goes out on its own, under item.deliveryId (a watch item: tell the watch `send`) */
  | { kind: 'send'; item: NoiseAlertItem; noise: NoiseSummary | null }
  /** a digest goes out, under deliveryId; `event`: its newest event (the template's `event`) */
  | { kind: 'digest'; deliveryId: string; group: DigestGroup; event: ExecutionEvent; noise: NoiseSummary | null }
  /** a recovery goes out, under deliveryId, condition `recovered`; `event`: the successful run's */
  | { kind: 'recovery'; deliveryId: string; recovery: RecoveryInfo; event: ExecutionEvent; noise: NoiseSummary | null };

/** The whole state of a config's pipeline, JSON as it is (continue-as-new carries it). Fields are lib/noise.ts's own. */
export interface NoiseState {
  [field: string]: unknown;
}

/** Fixed per pipeline run: how ids are built (see lib/delivery-ids.ts configDeliveryIdPrefix). */
export interface NoiseIds {
  /** configDeliveryIdPrefix(configId) */
  idPrefix: string;
  /** the AlertNoise workflow's firstExecutionRunId: a new life of the pipeline never reuses a digest id */
  chain: string;
}

export const digestDeliveryId = (ids: NoiseIds, seq: number) => `${ids.idPrefix}-digest-${ids.chain.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}-${seq}`;
/** The recovery of the incident whose first alert had `openingDeliveryId`: one per incident. */
export const recoveryDeliveryId = (openingDeliveryId: string) => `${openingDeliveryId}-recovered`;

/** The group an alert belongs to: its condition and the values of grouping.by ('' for a missing value). */
export function groupKey(by: GroupField[], event: ExecutionEvent, condition: string): string {
  throw new Error('not implemented');
}

export function emptyNoiseState(): NoiseState {
  throw new Error('not implemented');
}

/** Takes one item in at `nowMs`: mutates `state`, returns what to do. An item already taken in (same deliveryId, or the same success event) returns []. */
export function admitItem(state: NoiseState, item: NoiseItem, nowMs: number, ids: NoiseIds): NoiseAction[] {
  throw new Error('not implemented');
}

/** What has come due by `nowMs` (digests whose wait or interval passed; groups that close): mutates `state`. */
export function dueActions(state: NoiseState, nowMs: number, ids: NoiseIds): NoiseAction[] {
  throw new Error('not implemented');
}

/** When dueActions next has something to do (epoch ms), or undefined when nothing is waiting for time. */
export function nextWakeMs(state: NoiseState): number | undefined {
  throw new Error('not implemented');
}

/** Whether the pipeline holds nothing any more (no group, no window, no open incident, no count to tell): the workflow may end. */
export function isIdle(state: NoiseState, nowMs: number): boolean {
  throw new Error('not implemented');
}
