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
      /** that silence's note for the log row (lib/silences.ts silenceNote: id, window, comment); without it "silenced by <id>" */
      silenceNote?: string | null;
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

/** How long an item's id is remembered (a repeated item is recognised), and how long an idle AlertNoise workflow lingers. */
export const NOISE_LINGER_MS = 3_600_000;
/** At most this many ids are remembered, the newest. */
export const SEEN_IDS_MAX = 10_000;
/**
 * A listed event's error.message is cut to this many characters: a digest lists up to 1000 events and
 * a message may be 10 000 long, and the digest is one Temporal payload (at most 2 MB). The digest's
 * newest event (its template `event` and `error`) stays whole.
 */
export const LISTED_MESSAGE_MAX = 500;

/** An open group of alerts of one key: its next flush and the events waiting for it. */
export interface GroupState {
  key: string;
  by: GroupField[];
  condition: NoiseAlertItem['condition'];
  /** from the newest event's settings: the next flush after a digest, and how many events a digest lists */
  intervalSeconds: number;
  maxEvents: number;
  /** when dueActions flushes it: the first event's time + waitSeconds, or the last digest's + intervalSeconds */
  flushAtMs: number;
  /** digests this group sent since it opened */
  digests: number;
  /** the events of its next digest; null when none came since the last one (the group closes at its flush) */
  buffer: {
    /** the digest's sequence number (its delivery id), reserved when the buffer got its first event */
    seq: number;
    count: number;
    /** the oldest maxEvents events (by occurredAt) */
    events: GroupedEvent[];
    firstAtMs: number;
    lastAtMs: number;
    /** the newest event whole (data included): the digest's template `event` */
    newest: ExecutionEvent;
  } | null;
}

/** An incident of the config (with recovery or repeatIntervalSeconds): from its first failure or delay alert until a successful run. */
export interface IncidentState {
  /** the delivery id of the alert that opened it: the recovery's id is built from it */
  openedBy: string;
  /** the opening event's time */
  since: string;
  failures: number;
  /** a send or digest of its failures went out: only then does a recovery follow */
  alerted: boolean;
  lastNotifiedAtMs: number | null;
  key: string;
}

/** The whole state of a config's pipeline, JSON as it is (continue-as-new carries it). */
export interface NoiseState {
  version: 1;
  /** item ids taken in (alert: deliveryId without the config's idPrefix, success: "success:" + event id) → when (nowMs), oldest first */
  seen: Record<string, number>;
  seenCount: number;
  /** dedup key → its fixed window, from the key's first alert */
  dedup: Record<string, { firstAtMs: number; untilMs: number }>;
  /** the throttle's fixed window, from its first counted alert */
  throttle: { startMs: number; untilMs: number; count: number } | null;
  groups: Record<string, GroupState>;
  incident: IncidentState | null;
  /** what was held back since the last alert that went out */
  heldBack: { silenced: number; deduplicated: number; throttled: number; repeatSuppressed: number; sinceMs: number } | null;
  /** the next digest's sequence number (digestDeliveryId) */
  nextDigestSeq: number;
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

const iso = (ms: number) => new Date(ms).toISOString();
/** An event's time in ms; an event without a readable occurredAt counts as taken in at `nowMs`. */
const eventMs = (event: { occurredAt?: string }, nowMs: number) => {
  const ms = event.occurredAt ? Date.parse(event.occurredAt) : NaN;
  return Number.isFinite(ms) ? ms : nowMs;
};
/** A key or id as a note shows it: whole when short. */
const shown = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}…` : text);
const FAILING = new Set<string>(['failure', 'delay']);
const successSeenId = (eventId: string) => `success:${eventId}`;
// every alert id of the config starts with its prefix: remembered without it (up to SEEN_IDS_MAX of them are carried by continue-as-new)
const alertSeenId = (ids: NoiseIds, deliveryId: string) => (deliveryId.startsWith(`${ids.idPrefix}-`) ? deliveryId.slice(ids.idPrefix.length) : deliveryId);

const GROUP_VALUE: Record<GroupField, (event: ExecutionEvent) => string | number | undefined> = {
  'workflow.id': (e) => e.workflowId,
  'error.step': (e) => e.error?.step,
  'error.code': (e) => e.error?.code,
  'error.message': (e) => e.error?.message,
  'workflow.version': (e) => e.workflow?.version,
};

/**
 * The group an alert belongs to: its condition and the values of grouping.by ('' for a missing value),
 * joined by "|". A "|" or "\" inside a value is escaped, so two different sets of values never share a key.
 */
export function groupKey(by: GroupField[], event: ExecutionEvent, condition: string): string {
  const escape = (value: string) => value.replace(/[\\|]/g, (c) => `\\${c}`);
  return [condition, ...by.map((field) => String(GROUP_VALUE[field](event) ?? ''))].map(escape).join('|');
}

export function emptyNoiseState(): NoiseState {
  return { version: 1, seen: {}, seenCount: 0, dedup: {}, throttle: null, groups: {}, incident: null, heldBack: null, nextDigestSeq: 1 };
}

/** Remembers an item's id; false when it was taken in before. Keeps at most SEEN_IDS_MAX, the newest. */
function firstSight(state: NoiseState, id: string, nowMs: number): boolean {
  if (Object.prototype.hasOwnProperty.call(state.seen, id)) return false;
  state.seen[id] = nowMs;
  state.seenCount += 1;
  if (state.seenCount > SEEN_IDS_MAX) {
    for (const oldest in state.seen) {
      delete state.seen[oldest];
      state.seenCount -= 1;
      if (state.seenCount <= SEEN_IDS_MAX) break;
    }
  }
  return true;
}

function forgetOldIds(state: NoiseState, nowMs: number) {
  const cutoff = nowMs - NOISE_LINGER_MS;
  for (const id in state.seen) {
    if (state.seen[id] > cutoff) break; // oldest first: the rest are newer
    delete state.seen[id];
    state.seenCount -= 1;
  }
}

function holdBack(state: NoiseState, what: 'silenced' | 'deduplicated' | 'throttled' | 'repeatSuppressed', nowMs: number) {
  state.heldBack ??= { silenced: 0, deduplicated: 0, throttled: 0, repeatSuppressed: 0, sinceMs: nowMs };
  state.heldBack[what] += 1;
}

/** The held-back counts for the alert going out now, which tells them: they start again from zero. */
function takeHeldBack(state: NoiseState): NoiseSummary | null {
  const held = state.heldBack;
  state.heldBack = null;
  if (!held) return null;
  const { sinceMs, ...counts } = held;
  return { ...counts, since: iso(sinceMs) };
}

/** A failure or delay alert (sent, or in a digest) went out now: the open incident was notified. */
function markNotified(state: NoiseState, condition: string, nowMs: number) {
  if (!state.incident || !FAILING.has(condition)) return;
  state.incident.alerted = true;
  state.incident.lastNotifiedAtMs = nowMs;
}

/** The digest of a group's buffer, now; the group then waits intervalSeconds for the next one. */
function flushGroup(state: NoiseState, group: GroupState, nowMs: number, ids: NoiseIds): NoiseAction {
  const buffer = group.buffer!;
  group.digests += 1;
  group.buffer = null;
  group.flushAtMs = nowMs + group.intervalSeconds * 1000;
  markNotified(state, group.condition, nowMs);
  return {
    kind: 'digest',
    deliveryId: digestDeliveryId(ids, buffer.seq),
    group: {
      key: group.key,
      by: group.by,
      condition: group.condition,
      count: buffer.count,
      events: buffer.events,
      more: buffer.count - buffer.events.length,
      firstAt: iso(buffer.firstAtMs),
      lastAt: iso(buffer.lastAtMs),
      digest: group.digests,
    },
    event: buffer.newest,
    noise: takeHeldBack(state),
  };
}

function listedError(error: ExecutionEvent['error']): GroupedEvent['error'] {
  if (!error) return null;
  const { message } = error;
  return message !== undefined && message.length > LISTED_MESSAGE_MAX ? { ...error, message: `${message.slice(0, LISTED_MESSAGE_MAX)}…` } : error;
}

/** Puts the event into its group's next digest (opening the group when needed); the grouped note. */
function addToGroup(state: NoiseState, item: NoiseAlertItem, grouping: NonNullable<NoiseSettings['grouping']>, nowMs: number, ids: NoiseIds): string {
  let group: GroupState | undefined = state.groups[item.groupKey];
  // a group whose flush passed with nothing to send is closed, even if dueActions has not run yet
  if (group && !group.buffer && group.flushAtMs <= nowMs) group = undefined;
  if (!group) {
    group = {
      key: item.groupKey, by: grouping.by, condition: item.condition, intervalSeconds: grouping.intervalSeconds, maxEvents: grouping.maxEvents,
      flushAtMs: nowMs + grouping.waitSeconds * 1000, digests: 0, buffer: null,
    };
    state.groups[item.groupKey] = group;
  }
  group.intervalSeconds = grouping.intervalSeconds;
  group.maxEvents = grouping.maxEvents;
  const event = item.event;
  const atMs = eventMs(event, nowMs);
  const listed: GroupedEvent = {
    id: event.id, type: event.type, workflowId: event.workflowId, runId: event.runId,
    occurredAt: event.occurredAt ?? iso(atMs), error: listedError(event.error), deliveryId: item.deliveryId,
  };
  if (!group.buffer) {
    group.buffer = { seq: state.nextDigestSeq++, count: 0, events: [], firstAtMs: atMs, lastAtMs: atMs, newest: event };
  }
  const buffer = group.buffer;
  buffer.count += 1;
  buffer.firstAtMs = Math.min(buffer.firstAtMs, atMs);
  if (atMs >= buffer.lastAtMs) {
    buffer.lastAtMs = atMs;
    buffer.newest = event;
  }
  // the oldest first; an event as old as a listed one goes after it (the order it came in)
  let at = buffer.events.length;
  while (at > 0 && eventMs(buffer.events[at - 1], nowMs) > atMs) at -= 1;
  buffer.events.splice(at, 0, listed);
  if (buffer.events.length > group.maxEvents) buffer.events.length = group.maxEvents;
  return `grouped into digest ${digestDeliveryId(ids, buffer.seq)} (group ${shown(group.key)})`;
}

/** Takes one item in at `nowMs`: mutates `state`, returns what to do. An item already taken in (same deliveryId, or the same success event) returns []. */
export function admitItem(state: NoiseState, item: NoiseItem, nowMs: number, ids: NoiseIds): NoiseAction[] {
  if (!firstSight(state, item.kind === 'alert' ? alertSeenId(ids, item.deliveryId) : successSeenId(item.event.id), nowMs)) return [];
  return item.kind === 'alert' ? admitAlert(state, item, nowMs, ids) : admitSuccess(state, item, nowMs, ids);
}

function admitAlert(state: NoiseState, item: NoiseAlertItem, nowMs: number, ids: NoiseIds): NoiseAction[] {
  const { settings } = item;
  const decided = (outcome: NoiseOutcome, note: string): NoiseAction[] => [{ kind: 'decided', item, outcome, note }];
  const failing = FAILING.has(item.condition);

  const tracksIncidents = settings.recovery || settings.repeatIntervalSeconds !== null;
  // both settings were turned off: no successful run will be told any more, nor should it recover anything
  if (!tracksIncidents) state.incident = null;
  if (failing && tracksIncidents) {
    state.incident ??= {
      openedBy: item.deliveryId, since: item.event.occurredAt ?? iso(nowMs), failures: 0, alerted: false, lastNotifiedAtMs: null,
      key: item.dedupKey ?? item.event.workflowId,
    };
    state.incident.failures += 1;
  }

  // 1 silence: decided before the pipeline; counted here, told by the next alert that goes out
  if (item.silencedBy !== null) {
    holdBack(state, 'silenced', nowMs);
    return decided('silenced', item.silenceNote || `silenced by ${item.silencedBy}`);
  }

  // 2 dedup: one alert per key in a fixed window from the key's first alert (registered below, once it is let through)
  const dedupKey = settings.dedup ? item.dedupKey : null;
  if (dedupKey !== null) {
    const window = state.dedup[dedupKey];
    if (window && nowMs < window.untilMs) {
      holdBack(state, 'deduplicated', nowMs);
      return decided('deduplicated', `same dedup key "${shown(dedupKey)}" as an alert at ${iso(window.firstAtMs)}; window until ${iso(window.untilMs)}`);
    }
  }
  // … and repeat: a still-failing workflow is notified again only after repeatIntervalSeconds
  const notifiedAtMs = state.incident?.lastNotifiedAtMs ?? null;
  if (failing && settings.repeatIntervalSeconds !== null && notifiedAtMs !== null) {
    const nextMs = notifiedAtMs + settings.repeatIntervalSeconds * 1000;
    if (nowMs < nextMs) {
      holdBack(state, 'repeatSuppressed', nowMs);
      return decided('repeat_suppressed', `still failing: notified at ${iso(notifiedAtMs)}, next notice after ${iso(nextMs)}`);
    }
  }

  // 3 throttle: at most maxPerWindow alerts in a fixed window from its first counted alert
  if (settings.throttle) {
    const { maxPerWindow, windowSeconds } = settings.throttle;
    if (!state.throttle || nowMs >= state.throttle.untilMs) state.throttle = { startMs: nowMs, untilMs: nowMs + windowSeconds * 1000, count: 0 };
    if (state.throttle.count >= maxPerWindow) {
      holdBack(state, 'throttled', nowMs);
      return decided(
        'throttled',
        `throttled: ${state.throttle.count} alerts already in this window (at most ${maxPerWindow} per ${windowSeconds} s, until ${iso(state.throttle.untilMs)})`,
      );
    }
    state.throttle.count += 1;
  }
  // a key whose first alert was held back (repeat, throttle) has told nothing yet: only an alert let through opens its window
  if (dedupKey !== null) state.dedup[dedupKey] = { firstAtMs: nowMs, untilMs: nowMs + settings.dedup!.windowSeconds * 1000 };

  // 4 group: into the group's next digest
  if (settings.grouping) return decided('grouped', addToGroup(state, item, settings.grouping, nowMs, ids));

  // 5 deliver, telling what was held back
  markNotified(state, item.condition, nowMs);
  return [{ kind: 'send', item, noise: takeHeldBack(state) }];
}

function admitSuccess(state: NoiseState, item: Extract<NoiseItem, { kind: 'success' }>, nowMs: number, ids: NoiseIds): NoiseAction[] {
  const incident = state.incident;
  if (!incident) return [];
  const actions: NoiseAction[] = [];
  // the incident's failures still waiting in a group go out before the recovery that ends them
  for (const group of groupsInFlushOrder(state)) {
    if (group.buffer && FAILING.has(group.condition)) actions.push(flushGroup(state, group, nowMs, ids));
  }
  state.incident = null;
  if (incident.alerted && item.settings.recovery) {
    const recoveredAt = item.event.occurredAt ?? iso(nowMs);
    actions.push({
      kind: 'recovery',
      deliveryId: recoveryDeliveryId(incident.openedBy),
      recovery: {
        failingSince: incident.since,
        recoveredAt,
        failingForMs: Math.max(0, eventMs(item.event, nowMs) - eventMs({ occurredAt: incident.since }, nowMs)),
        failures: incident.failures,
        incidentKey: incident.key,
      },
      event: item.event,
      noise: takeHeldBack(state),
    });
  }
  return actions;
}

/** Groups by their flush time, then key: one order on every replay. */
const groupsInFlushOrder = (state: NoiseState) =>
  Object.values(state.groups).sort((a, b) => a.flushAtMs - b.flushAtMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

/** What has come due by `nowMs` (digests whose wait or interval passed; groups that close): mutates `state`. */
export function dueActions(state: NoiseState, nowMs: number, ids: NoiseIds): NoiseAction[] {
  forgetOldIds(state, nowMs);
  for (const [key, window] of Object.entries(state.dedup)) if (window.untilMs <= nowMs) delete state.dedup[key];
  if (state.throttle && state.throttle.untilMs <= nowMs) state.throttle = null;
  const actions: NoiseAction[] = [];
  for (const group of groupsInFlushOrder(state)) {
    if (group.flushAtMs > nowMs) continue;
    if (group.buffer) actions.push(flushGroup(state, group, nowMs, ids));
    else delete state.groups[group.key]; // nothing came since its last digest: it closes
  }
  return actions;
}

/** When dueActions next has something to do (epoch ms), or undefined when nothing is waiting for time. */
export function nextWakeMs(state: NoiseState): number | undefined {
  const times = [
    ...Object.values(state.groups).map((g) => g.flushAtMs),
    ...Object.values(state.dedup).map((w) => w.untilMs),
    ...(state.throttle ? [state.throttle.untilMs] : []),
  ];
  return times.length ? Math.min(...times) : undefined;
}

/** Whether the pipeline holds nothing any more (no group, no window, no open incident, no count to tell): the workflow may end. */
export function isIdle(state: NoiseState, nowMs: number): boolean {
  return (
    Object.keys(state.groups).length === 0 &&
    Object.values(state.dedup).every((w) => w.untilMs <= nowMs) &&
    (!state.throttle || state.throttle.untilMs <= nowMs) &&
    state.incident === null &&
    state.heldBack === null
  );
}
