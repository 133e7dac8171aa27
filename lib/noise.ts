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
  /**
   * a recovery goes out, under deliveryId, condition `recovered`; `event`: the successful run's.
   * `after`: the deliveries of the incident's alerts and digests that went out (the last
   * INCIDENT_DELIVERIES_MAX, oldest first, those of this same step included): the recovery must not reach
   * the receiver before them
   */
  | { kind: 'recovery'; deliveryId: string; recovery: RecoveryInfo; event: ExecutionEvent; noise: NoiseSummary | null; after: string[] };

/** How long an item's id is remembered (a repeated item is recognised), and how long an idle AlertNoise workflow lingers. */
export const NOISE_LINGER_MS = 3_600_000;
/** At most this many ids are remembered, the newest. */
export const SEEN_IDS_MAX = 10_000;

/*
 * Bounds. The state is carried by continue-as-new in one Temporal payload, and a digest is one too (at
 * most 2 MiB each: past it the workflow cannot go on). Sizes are JSON bytes (UTF-8, escapes included),
 * as the payload holds them; test/unit/noise.test.ts measures the state and a digest with everything
 * at its cap (state at most 1.5 MiB, a digest at most 1 MiB).
 */
/** A listed event's error.message is cut to this many bytes (then "…"); its error.step and error.code to LISTED_FIELD_MAX. */
export const LISTED_MESSAGE_MAX = 200;
export const LISTED_FIELD_MAX = 100;
/** A dedup or group key longer than this (bytes) is kept as its beginning, "…#" and a hash of the whole key (compactKey). */
export const KEY_MAX_BYTES = 200;
/** Dedup windows held at most: beyond, the oldest window closes early. */
export const DEDUP_WINDOWS_MAX = 1000;
/** Open groups at most: an alert whose new group would be one more goes into its condition's overflow group (overflowGroupKey). */
export const GROUPS_MAX = 200;
/**
 * What the open groups hold together (their listed events and their newest events), in bytes: past it,
 * the group listing the most lists one event fewer (it still counts it). Of it, the newest events at
 * most NEWESTS_HELD_MAX: past that, a newest event is kept lean (leanEvent).
 */
export const GROUPS_HELD_MAX = 448 * 1024;
export const NEWESTS_HELD_MAX = 96 * 1024;
/** A digest's newest event keeps its `data` only when the data's JSON is at most this (bytes); the rest of the event at most NEWEST_EVENT_MAX. */
export const NEWEST_DATA_MAX = 16 * 1024;
export const NEWEST_EVENT_MAX = 32 * 1024;
/** The incident remembers the deliveries of its last this many alerts and digests that went out (a recovery's `after`). */
export const INCIDENT_DELIVERIES_MAX = 50;

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
    /** the newest event (the digest's template `event`): whole, without `data` when its data is large, or lean when the groups hold much */
    newest: ExecutionEvent;
    /** JSON bytes of `newest` and of `events`: what this buffer counts towards GROUPS_HELD_MAX */
    heldBytes: number;
    newestBytes: number;
    /** an event was left out of `events` (maxEvents, GROUPS_HELD_MAX): a later event no older than the last listed one is not listed either, so the list stays the oldest */
    cut: boolean;
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
  /** the latest event time (occurredAt, ms) of its failures: a successful run before it does not end the incident */
  lastFailureAtMs: number;
  /** the delivery ids of its alerts and digests that went out, the last INCIDENT_DELIVERIES_MAX: its recovery comes after them */
  deliveries: string[];
}

/** The whole state of a config's pipeline, JSON as it is (continue-as-new carries it). */
export interface NoiseState {
  version: 1;
  /** item ids taken in (alert: deliveryId without the config's idPrefix, success: "success:" + event id) → when (nowMs), oldest first */
  seen: Record<string, number>;
  seenCount: number;
  /** dedup key (compactKey) → its fixed window, from the key's first alert; at most DEDUP_WINDOWS_MAX */
  dedup: Record<string, { firstAtMs: number; untilMs: number }>;
  /** the throttle's fixed window, from its first counted alert */
  throttle: { startMs: number; untilMs: number; count: number } | null;
  groups: Record<string, GroupState>;
  incident: IncidentState | null;
  /** what was held back since the last alert that went out; lastAtMs: when the latest of them was */
  heldBack: { silenced: number; deduplicated: number; throttled: number; repeatSuppressed: number; sinceMs: number; lastAtMs: number } | null;
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
/** "1 alert", "2 alerts" */
const counted = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const FAILING = new Set<string>(['failure', 'delay']);
const successSeenId = (eventId: string) => `success:${eventId}`;
/** A remembered id is at most this long (bytes): 10 000 of them are carried by continue-as-new. */
const SEEN_ID_MAX_BYTES = 24;
// every alert id of the config starts with its prefix: remembered without it
const alertSeenId = (ids: NoiseIds, deliveryId: string) => (deliveryId.startsWith(`${ids.idPrefix}-`) ? deliveryId.slice(ids.idPrefix.length) : deliveryId);

/**
 * FNV-1a, 64 bits, over the string's UTF-16 code units (its bytes for ASCII), as 16 hex digits. Plain
 * arithmetic on two 32-bit halves: no Node built-ins here (workflow code imports this module).
 */
export function fnv1a64(text: string): string {
  // offset basis 0xcbf29ce484222325; prime 0x100000001b3 = 2^40 + 0x1b3
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < text.length; i++) {
    lo = (lo ^ text.charCodeAt(i)) >>> 0;
    const loTimes = lo * 0x1b3; // < 2^41: exact in a double
    const carry = Math.floor(loTimes / 0x1_0000_0000);
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = loTimes >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;
/** The bytes the code unit at `i` takes in the string's JSON text (UTF-8, escapes included); a surrogate pair is 2 + 2. */
function jsonUnitBytes(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22 || c === 0x5c) return 2;
  if (c < 0x20) return c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (isHighSurrogate(c)) return isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 6;
  if (isLowSurrogate(c)) return isHighSurrogate(text.charCodeAt(i - 1)) ? 2 : 6; // a lone surrogate is written \uXXXX
  return 3;
}
/** The JSON bytes of a string without its quotes. */
function textBytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) bytes += jsonUnitBytes(text, i);
  return bytes;
}
/** The longest beginning of `text` of at most `maxBytes` JSON bytes, not splitting a surrogate pair. */
function textPrefix(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  while (end < text.length) {
    const pair = isHighSurrogate(text.charCodeAt(end)) && isLowSurrogate(text.charCodeAt(end + 1));
    const units = pair ? 2 : 1;
    const next = pair ? 4 : jsonUnitBytes(text, end);
    if (bytes + next > maxBytes) break;
    bytes += next;
    end += units;
  }
  return text.slice(0, end);
}
/** The JSON bytes of a value as a payload holds it (0 for undefined); past `limit`, any number above it (counting stops). */
export function jsonBytes(value: unknown, limit = Infinity): number {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) return 0;
  if (json.length > limit) return json.length; // at least a byte per code unit
  // the JSON text has its escapes already: count UTF-8 bytes of its code units
  let bytes = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdfff ? 2 : 3;
  }
  return bytes;
}
/** A text cut to at most `maxBytes` JSON bytes, then "…"; whole when it fits. */
function cutText(text: string, maxBytes: number): string {
  return textBytes(text) <= maxBytes ? text : `${textPrefix(text, maxBytes)}…`;
}

/**
 * A key as the state keeps it: whole when at most `maxBytes` JSON bytes, else its beginning, "…#" and
 * the FNV-1a hash of the whole key, `maxBytes` at most in all. Two long keys with the same beginning
 * stay apart by their hash. Compacting a compacted key gives it back unchanged.
 */
export function compactKey(key: string, maxBytes = KEY_MAX_BYTES): string {
  if (textBytes(key) <= maxBytes) return key;
  const suffix = `…#${fnv1a64(key)}`; // 3 + 1 + 16 bytes
  return `${textPrefix(key, maxBytes - 20)}${suffix}`;
}

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
 * A key longer than KEY_MAX_BYTES is compacted (compactKey).
 */
export function groupKey(by: GroupField[], event: ExecutionEvent, condition: string): string {
  const escape = (value: string) => value.replace(/[\\|]/g, (c) => `\\${c}`);
  return compactKey([condition, ...by.map((field) => String(GROUP_VALUE[field](event) ?? ''))].map(escape).join('|'));
}
/** The one group of a condition that takes the alerts whose own group would be past GROUPS_MAX. */
export const overflowGroupKey = (condition: string) => `${condition}|…other groups`;

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
  state.heldBack ??= { silenced: 0, deduplicated: 0, throttled: 0, repeatSuppressed: 0, sinceMs: nowMs, lastAtMs: nowMs };
  state.heldBack[what] += 1;
  state.heldBack.lastAtMs = nowMs;
}

/** The held-back counts for the alert going out now, which tells them: they start again from zero. */
function takeHeldBack(state: NoiseState): NoiseSummary | null {
  const held = state.heldBack;
  state.heldBack = null;
  if (!held) return null;
  const { silenced, deduplicated, throttled, repeatSuppressed, sinceMs } = held;
  return { silenced, deduplicated, throttled, repeatSuppressed, since: iso(sinceMs) };
}

/**
 * When held-back counts may be let go untold (epoch ms), or undefined while something will still tell
 * them: a group's digest, or the recovery an open incident waits for. Each held-back alert has its
 * own log row; without this, a throttle-only pipeline after an outage never ends.
 */
function heldBackLapsesAtMs(state: NoiseState): number | undefined {
  if (!state.heldBack || state.incident || Object.keys(state.groups).length > 0) return undefined;
  return state.heldBack.lastAtMs + NOISE_LINGER_MS;
}

/** A failure or delay alert (sent, or in a digest, under `deliveryId`) went out now: the open incident was notified. */
function markNotified(state: NoiseState, condition: string, deliveryId: string, nowMs: number) {
  if (!state.incident || !FAILING.has(condition)) return;
  state.incident.alerted = true;
  state.incident.lastNotifiedAtMs = nowMs;
  const deliveries = state.incident.deliveries;
  deliveries.push(deliveryId);
  if (deliveries.length > INCIDENT_DELIVERIES_MAX) deliveries.splice(0, deliveries.length - INCIDENT_DELIVERIES_MAX);
}

/** The digest of a group's buffer, now; the group then waits intervalSeconds for the next one. */
function flushGroup(state: NoiseState, group: GroupState, nowMs: number, ids: NoiseIds): NoiseAction {
  const buffer = group.buffer!;
  group.digests += 1;
  group.buffer = null;
  group.flushAtMs = nowMs + group.intervalSeconds * 1000;
  const deliveryId = digestDeliveryId(ids, buffer.seq);
  markNotified(state, group.condition, deliveryId, nowMs);
  return {
    kind: 'digest',
    deliveryId,
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

/** An event time as listed: as the event gave it, unless absurdly long (its fraction of a second is free length). */
const listedTime = (occurredAt: string | undefined, atMs: number) => (occurredAt !== undefined && occurredAt.length <= 64 ? occurredAt : iso(atMs));

function listedError(error: ExecutionEvent['error']): GroupedEvent['error'] {
  if (!error) return null;
  const { message, step, code } = error;
  const cut: NonNullable<GroupedEvent['error']> = { ...error };
  if (message !== undefined) cut.message = cutText(message, LISTED_MESSAGE_MAX);
  if (step !== undefined) cut.step = cutText(step, LISTED_FIELD_MAX);
  if (code !== undefined) cut.code = cutText(code, LISTED_FIELD_MAX);
  return cut;
}

/**
 * An event as a group keeps it for the digest's template `event` when the groups hold much: its ids,
 * times, workflow and error, the texts cut as in a listed event; no data.
 */
function leanEvent(event: ExecutionEvent, atMs: number): ExecutionEvent {
  const lean: ExecutionEvent = { id: event.id, type: event.type, workflowId: event.workflowId, runId: event.runId, occurredAt: listedTime(event.occurredAt, atMs) };
  if (event.workflow) {
    const { name, version } = event.workflow;
    lean.workflow = {
      ...(name !== undefined ? { name: cutText(name, LISTED_FIELD_MAX) } : {}),
      ...(version !== undefined ? { version: typeof version === 'string' ? cutText(version, LISTED_FIELD_MAX) : version } : {}),
    };
  }
  if (event.run) {
    const { startedAt, finishedAt } = event.run;
    lean.run = {
      ...(startedAt !== undefined && startedAt.length <= 64 ? { startedAt } : {}),
      ...(finishedAt !== undefined && finishedAt.length <= 64 ? { finishedAt } : {}),
    };
  }
  const error = listedError(event.error);
  if (error) lean.error = error;
  return lean;
}

/**
 * The newest event as a group keeps it when there is room (`roomBytes`): whole, but without `data` when
 * its data is over NEWEST_DATA_MAX, and the rest at most NEWEST_EVENT_MAX; undefined when that does not fit.
 */
function keptNewest(event: ExecutionEvent, roomBytes: number): { event: ExecutionEvent; bytes: number } | undefined {
  const { data, ...withoutData } = event;
  const kept = data !== undefined && jsonBytes(data, NEWEST_DATA_MAX) <= NEWEST_DATA_MAX ? event : withoutData;
  const limit = Math.min(roomBytes, kept === event ? NEWEST_DATA_MAX + NEWEST_EVENT_MAX : NEWEST_EVENT_MAX);
  const bytes = jsonBytes(kept, limit);
  return bytes <= limit ? { event: kept, bytes } : undefined;
}

/** What the open groups hold together (GROUPS_HELD_MAX), and of it their newest events (NEWESTS_HELD_MAX). */
const groupsHeldBytes = (state: NoiseState) => Object.values(state.groups).reduce((n, g) => n + (g.buffer?.heldBytes ?? 0), 0);
const newestsHeldBytes = (state: NoiseState) => Object.values(state.groups).reduce((n, g) => n + (g.buffer?.newestBytes ?? 0), 0);

/**
 * Past GROUPS_HELD_MAX, the group listing the most (by bytes) lets its newest listed event go: it is
 * still counted (`more`), and its digest keeps listing the oldest.
 */
function shedListedEvents(state: NoiseState) {
  for (;;) {
    if (groupsHeldBytes(state) <= GROUPS_HELD_MAX) return;
    let most: NonNullable<GroupState['buffer']> | null = null;
    for (const group of Object.values(state.groups)) {
      const buffer = group.buffer;
      if (buffer && buffer.events.length > 0 && (!most || buffer.heldBytes - buffer.newestBytes > most.heldBytes - most.newestBytes)) most = buffer;
    }
    if (!most) return; // newest events alone: at most NEWESTS_HELD_MAX and a lean one per group
    most.heldBytes -= jsonBytes(most.events.pop());
    most.cut = true;
  }
}

/** The key of the group an alert goes into: its own, or its condition's overflow group when its own would be one past GROUPS_MAX. */
function groupKeyFor(state: NoiseState, item: NoiseAlertItem, nowMs: number): string {
  const key = compactKey(item.groupKey);
  const open = (g: GroupState | undefined) => g !== undefined && (g.buffer !== null || g.flushAtMs > nowMs);
  if (open(state.groups[key])) return key;
  // groups whose flush passed with nothing to send are closed: they take no room
  for (const group of Object.values(state.groups)) if (!open(group)) delete state.groups[group.key];
  return Object.keys(state.groups).length < GROUPS_MAX ? key : overflowGroupKey(item.condition);
}

/**
 * When a new group's wait began: when the service received its first alert's event (as Alertmanager's
 * group_wait counts from the alert's arrival), not when this workflow got to it (a burst's signals
 * queue behind busy workflow tasks for seconds). An alert that queued longer than the wait goes out in
 * a digest at once; a fired delay watch's alert (its event came long before) and one without a
 * receipt time count from now.
 */
function groupOpenedAtMs(item: NoiseAlertItem, waitSeconds: number, nowMs: number): number {
  const receivedMs = item.watch || !item.receivedAt ? NaN : Date.parse(item.receivedAt);
  return Number.isFinite(receivedMs) ? Math.min(nowMs, Math.max(receivedMs, nowMs - waitSeconds * 1000)) : nowMs;
}

/** Puts the event into its group's next digest (opening the group when needed); the grouped note. */
function addToGroup(state: NoiseState, item: NoiseAlertItem, grouping: NonNullable<NoiseSettings['grouping']>, nowMs: number, ids: NoiseIds): string {
  const key = groupKeyFor(state, item, nowMs);
  let group: GroupState | undefined = state.groups[key];
  // a group whose flush passed with nothing to send is closed, even if dueActions has not run yet
  if (group && !group.buffer && group.flushAtMs <= nowMs) group = undefined;
  if (!group) {
    group = {
      key, by: grouping.by, condition: item.condition, intervalSeconds: grouping.intervalSeconds, maxEvents: grouping.maxEvents,
      flushAtMs: groupOpenedAtMs(item, grouping.waitSeconds, nowMs) + grouping.waitSeconds * 1000, digests: 0, buffer: null,
    };
    state.groups[key] = group;
  }
  group.intervalSeconds = grouping.intervalSeconds;
  group.maxEvents = grouping.maxEvents;
  const event = item.event;
  const atMs = eventMs(event, nowMs);
  if (!group.buffer) {
    group.buffer = { seq: state.nextDigestSeq++, count: 0, events: [], firstAtMs: atMs, lastAtMs: atMs, newest: event, heldBytes: 0, newestBytes: 0, cut: false };
  }
  const buffer = group.buffer;
  buffer.count += 1;
  buffer.firstAtMs = Math.min(buffer.firstAtMs, atMs);
  if (atMs >= buffer.lastAtMs) {
    buffer.lastAtMs = atMs;
    const lean = leanEvent(event, atMs);
    const leanBytes = jsonBytes(lean);
    const room = NEWESTS_HELD_MAX - (newestsHeldBytes(state) - buffer.newestBytes);
    const kept = (room > leanBytes ? keptNewest(event, room) : undefined) ?? { event: lean, bytes: leanBytes };
    buffer.heldBytes += kept.bytes - buffer.newestBytes;
    buffer.newest = kept.event;
    buffer.newestBytes = kept.bytes;
  }
  // the oldest first; an event as old as a listed one goes after it (the order it came in)
  let at = buffer.events.length;
  while (at > 0 && eventMs(buffer.events[at - 1], nowMs) > atMs) at -= 1;
  // once one was left out, only an event older than the last listed one may still be listed
  if (!(buffer.cut && at === buffer.events.length)) {
    const listed: GroupedEvent = {
      id: event.id, type: event.type, workflowId: event.workflowId, runId: event.runId,
      occurredAt: listedTime(event.occurredAt, atMs), error: listedError(event.error), deliveryId: item.deliveryId,
    };
    buffer.events.splice(at, 0, listed);
    buffer.heldBytes += jsonBytes(listed);
    if (buffer.events.length > group.maxEvents) {
      buffer.heldBytes -= jsonBytes(buffer.events.pop());
      buffer.cut = true;
    }
  }
  shedListedEvents(state);
  return `grouped into digest ${digestDeliveryId(ids, buffer.seq)} (group ${shown(group.key)})`;
}

/** Opens the fixed dedup window of `key` now; at DEDUP_WINDOWS_MAX, the oldest window closes early. */
function openDedupWindow(state: NoiseState, key: string, windowSeconds: number, nowMs: number) {
  delete state.dedup[key];
  let count = Object.keys(state.dedup).length;
  while (count >= DEDUP_WINDOWS_MAX) {
    // the oldest by its start (a key like "500" is not kept in insertion order), then by key: one choice on every replay
    let oldest = '';
    let oldestAtMs = Infinity;
    for (const k in state.dedup) {
      const atMs = state.dedup[k].firstAtMs;
      if (atMs < oldestAtMs || (atMs === oldestAtMs && k < oldest)) (oldest = k), (oldestAtMs = atMs);
    }
    delete state.dedup[oldest];
    count -= 1;
  }
  state.dedup[key] = { firstAtMs: nowMs, untilMs: nowMs + windowSeconds * 1000 };
}

/** Takes one item in at `nowMs`: mutates `state`, returns what to do. An item already taken in (same deliveryId, or the same success event) returns []. */
export function admitItem(state: NoiseState, item: NoiseItem, nowMs: number, ids: NoiseIds): NoiseAction[] {
  const seenId = compactKey(item.kind === 'alert' ? alertSeenId(ids, item.deliveryId) : successSeenId(item.event.id), SEEN_ID_MAX_BYTES);
  if (!firstSight(state, seenId, nowMs)) return [];
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
      key: compactKey(item.dedupKey ?? item.event.workflowId), lastFailureAtMs: eventMs(item.event, nowMs), deliveries: [],
    };
    state.incident.failures += 1;
    state.incident.lastFailureAtMs = Math.max(state.incident.lastFailureAtMs, eventMs(item.event, nowMs));
  }

  // 1 silence: decided before the pipeline; counted here, told by the next alert that goes out
  if (item.silencedBy !== null) {
    holdBack(state, 'silenced', nowMs);
    return decided('silenced', item.silenceNote || `silenced by ${item.silencedBy}`);
  }

  // 2 dedup: one alert per key in a fixed window from the key's first alert (registered below, once it is let through)
  const dedupKey = settings.dedup && item.dedupKey !== null ? compactKey(item.dedupKey) : null;
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
        `throttled: ${counted(state.throttle.count, 'alert')} already in this window (at most ${maxPerWindow} per ${windowSeconds} s, until ${iso(state.throttle.untilMs)})`,
      );
    }
    state.throttle.count += 1;
  }
  // a key whose first alert was held back (repeat, throttle) has told nothing yet: only an alert let through opens its window
  if (dedupKey !== null) openDedupWindow(state, dedupKey, settings.dedup!.windowSeconds, nowMs);

  // 4 group: into the group's next digest
  if (settings.grouping) return decided('grouped', addToGroup(state, item, settings.grouping, nowMs, ids));

  // 5 deliver, telling what was held back
  markNotified(state, item.condition, item.deliveryId, nowMs);
  return [{ kind: 'send', item, noise: takeHeldBack(state) }];
}

function admitSuccess(state: NoiseState, item: Extract<NoiseItem, { kind: 'success' }>, nowMs: number, ids: NoiseIds): NoiseAction[] {
  const incident = state.incident;
  if (!incident) return [];
  // decided by the events' times, not by when they came: a run that succeeded before the latest failure ends nothing
  if (eventMs(item.event, nowMs) < incident.lastFailureAtMs) return [];
  const actions: NoiseAction[] = [];
  // the incident's failures still waiting in a group go out before the recovery that ends them; then
  // their groups close, as do the dedup and throttle windows: the next incident's first alert goes out at once
  for (const group of groupsInFlushOrder(state)) {
    if (!FAILING.has(group.condition)) continue;
    if (group.buffer) actions.push(flushGroup(state, group, nowMs, ids));
    delete state.groups[group.key];
  }
  state.dedup = {};
  state.throttle = null;
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
      after: [...incident.deliveries],
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
  const lapsesAtMs = heldBackLapsesAtMs(state);
  if (lapsesAtMs !== undefined && lapsesAtMs <= nowMs) state.heldBack = null;
  return actions;
}

/** When dueActions next has something to do (epoch ms), or undefined when nothing is waiting for time. */
export function nextWakeMs(state: NoiseState): number | undefined {
  const lapsesAtMs = heldBackLapsesAtMs(state);
  const times = [
    ...Object.values(state.groups).map((g) => g.flushAtMs),
    ...Object.values(state.dedup).map((w) => w.untilMs),
    ...(state.throttle ? [state.throttle.untilMs] : []),
    ...(lapsesAtMs !== undefined ? [lapsesAtMs] : []),
  ];
  return times.length ? Math.min(...times) : undefined;
}

/**
 * Whether the pipeline holds nothing any more (no group, no window, no open incident, no count that
 * something will still tell): the workflow may end.
 */
export function isIdle(state: NoiseState, nowMs: number): boolean {
  const lapsesAtMs = heldBackLapsesAtMs(state);
  return (
    Object.keys(state.groups).length === 0 &&
    Object.values(state.dedup).every((w) => w.untilMs <= nowMs) &&
    (!state.throttle || state.throttle.untilMs <= nowMs) &&
    state.incident === null &&
    (state.heldBack === null || (lapsesAtMs !== undefined && lapsesAtMs <= nowMs))
  );
}
