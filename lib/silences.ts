import type { Silence, SilenceInput, SilenceRecurrence } from './schemas';

/**
 * Silences (maintenance windows, docs/silences.md): when one is in force, the alerts of its config, or
 * of every config of its MeshHook workflow, are logged `silenced` instead of sent. A silence is one-off
 * (from–until) or recurring: a window starts at each local wall-clock minute its five-field cron
 * matches, read in its IANA time zone, and lasts durationSeconds of real time.
 *
 * Daylight saving time, as Vixie cron runs jobs:
 * - a local time that occurs twice (the clocks go back) starts a window at both occurrences when the
 *   cron's minute or hour field begins with `*` (`0 * * * *`, `0 *\/2 * * *`, `*\/15 2 * * *`: the
 *   windows go on through the repeated hour), and once, at the first, when both are fixed (`30 2 * * *`);
 * - a local time that does not occur (the clocks go forward) starts the window that much later by the
 *   offset before the change: 02:30 on the night Europe/Berlin skips 02:00–03:00 starts at 03:30 CEST.
 *   A daily window is never lost to the change.
 *
 * Pure: no I/O. Dispatch asks activeSilence for every event of a workflow that has silences, so the
 * compiled crons and the zone offsets it reads are memoised.
 */

/** A silence as the store keeps it (the API's Silence without what is computed at read time). */
export type StoredSilence = Omit<Silence, 'activeNow' | 'nextWindow'>;
/** What deciding whether a silence is in force needs. */
export type SilenceRule = Pick<StoredSilence, 'id' | 'configId' | 'workflowId' | 'from' | 'until' | 'recurrence' | 'createdAt'> & { comment?: string };

/**
 * A window of a silence, [fromMs, untilMs). Overlapping or touching windows of a recurrence are one,
 * from the first still in force when the silence was created; untilMs null: open-ended, more than
 * MAX_JOINED_WINDOWS join on (a cron every minute with a 2-minute window never ends).
 */
export interface SilenceWindow {
  fromMs: number;
  untilMs: number | null;
}

/** How far ahead nextWindow looks for a recurring silence's next window: four years and a day, for a cron of February 29. */
export const NEXT_WINDOW_HORIZON_DAYS = 4 * 366;
/** Overlapping windows of a recurrence joined into one at most, each way (a cron every minute with a 2-minute window never ends). */
const MAX_JOINED_WINDOWS = 1000;

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

// ---------------------------------------------------------------- cron

/** A cron expression that does not parse; the message names the field and what is wrong with it. */
export class CronError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CronError';
  }
}

export interface CronSchedule {
  /** as written (macros expanded), normalised to single spaces */
  expression: string;
  /** the minutes and hours it matches, ascending */
  minutes: number[];
  hours: number[];
  /** indexed by day of month (1–31), month (1–12), day of week (0–6, Sunday 0) */
  daysOfMonth: boolean[];
  months: boolean[];
  daysOfWeek: boolean[];
  /** Vixie cron: a day field written with `*` (even `*\/2`) leaves the day to the other field; both restricted: either matches */
  dayOfMonthStar: boolean;
  dayOfWeekStar: boolean;
  /** Vixie cron: the minute or the hour field written with `*`; such a cron starts windows in a repeated hour too */
  wildcardTime: boolean;
}

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** names for values, the first one being `min` */
  names?: string[];
  hint: string;
}

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59, hint: '0–59' },
  { name: 'hour', min: 0, max: 23, hint: '0–23' },
  { name: 'day-of-month', min: 1, max: 31, hint: '1–31' },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, hint: '1–12 or JAN–DEC' },
  // 7 is Sunday too, as in Vixie cron
  { name: 'day-of-week', min: 0, max: 7, names: DAY_NAMES, hint: '0–7 (0 and 7 are Sunday) or SUN–SAT' },
];

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/**
 * Parses five cron fields, `minute hour day-of-month month day-of-week`, each `*`, a value, a range
 * `a-b`, a step `*\/n`, `a-b/n` or `a/n`, or a comma-separated list of these; months and days of week
 * may be named (JAN, MON; any case). `@daily`, `@weekly`, … are accepted too. Throws CronError.
 */
export function parseCron(expression: string): CronSchedule {
  const trimmed = expression.trim();
  const expanded = MACROS[trimmed.toLowerCase()] ?? trimmed;
  if (expanded.startsWith('@')) throw new CronError(`unknown macro "${trimmed}" (use @yearly, @monthly, @weekly, @daily or @hourly, or five fields)`);
  const fields = expanded.split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    throw new CronError(`needs 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}: "${trimmed}"`);
  }
  const [minutes, hours, daysOfMonth, months, daysOfWeekRaw] = fields.map((field, i) => parseField(field, FIELDS[i]));
  const daysOfWeek = daysOfWeekRaw.slice(0, 7);
  if (daysOfWeekRaw[7]) daysOfWeek[0] = true;
  const schedule: CronSchedule = {
    expression: fields.join(' '),
    minutes: indexesOf(minutes),
    hours: indexesOf(hours),
    daysOfMonth,
    months,
    daysOfWeek,
    dayOfMonthStar: fields[2].startsWith('*'),
    dayOfWeekStar: fields[4].startsWith('*'),
    wildcardTime: fields[0].startsWith('*') || fields[1].startsWith('*'),
  };
  if (!canEverMatch(schedule)) {
    throw new CronError(`never matches: the day-of-month "${fields[2]}" does not occur in the month "${fields[3]}"`);
  }
  return schedule;
}

function parseField(field: string, spec: FieldSpec): boolean[] {
  const set: boolean[] = new Array(spec.max + 1).fill(false);
  const wrong = (what: string) => new CronError(`the ${spec.name} field "${field}": ${what} (${spec.hint})`);
  for (const item of field.split(',')) {
    const match = /^([^/]+)(?:\/(.+))?$/.exec(item);
    if (!match) throw wrong(`"${item}" is not a value, range or step`);
    const [, range, stepText] = match;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) throw wrong(`the step "/${stepText}" must be a whole number of at least 1`);
      step = Number(stepText);
    }
    let low: number;
    let high: number;
    if (range === '*') {
      [low, high] = [spec.min, spec.name === 'day-of-week' ? 6 : spec.max];
    } else {
      const bounds = range.split('-');
      if (bounds.length > 2) throw wrong(`"${range}" is not a value or a range a-b`);
      low = valueOf(bounds[0], spec, wrong);
      // `a/n` runs from a to the field's end
      high = bounds.length === 2 ? valueOf(bounds[1], spec, wrong) : stepText !== undefined ? spec.max : low;
      if (high < low) throw wrong(`the range "${range}" goes backwards`);
    }
    for (let v = low; v <= high; v += step) set[v] = true;
  }
  return set;
}

function valueOf(text: string, spec: FieldSpec, wrong: (what: string) => CronError): number {
  const named = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return spec.min + named;
  if (!/^\d+$/.test(text)) throw wrong(`"${text}" is not a number${spec.names ? ' or a name' : ''}`);
  const value = Number(text);
  if (value < spec.min || value > spec.max) throw wrong(`${value} is out of range`);
  return value;
}

const indexesOf = (set: boolean[]) => set.flatMap((on, i) => (on ? [i] : []));

const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether some month of the schedule has one of its days of month (Feb 29 counts); a restricted day of week always matches some day. */
function canEverMatch(s: CronSchedule): boolean {
  if (!s.dayOfMonthStar && !s.dayOfWeekStar) return true;
  if (s.dayOfMonthStar) return true;
  return s.months.some((on, month) => on && s.daysOfMonth.some((d, day) => d && day <= DAYS_IN_MONTH[month]));
}

/** Whether the schedule starts windows on this date (month 1–12, dayOfWeek 0–6). */
export function cronMatchesDay(s: CronSchedule, month: number, dayOfMonth: number, dayOfWeek: number): boolean {
  if (!s.months[month]) return false;
  const dom = s.daysOfMonth[dayOfMonth];
  const dow = s.daysOfWeek[dayOfWeek];
  return s.dayOfMonthStar || s.dayOfWeekStar ? dom && dow : dom || dow;
}

const compiled = new Map<string, CronSchedule>();
function scheduleOf(cron: string): CronSchedule {
  let schedule = compiled.get(cron);
  if (!schedule) {
    schedule = parseCron(cron);
    if (compiled.size >= 1000) compiled.clear();
    compiled.set(cron, schedule);
  }
  return schedule;
}

// ---------------------------------------------------------------- time zones

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Why `timeZone` is not one Intl knows (an IANA name such as "Europe/Berlin", or "UTC"); undefined when it is. */
export function timeZoneProblem(timeZone: string): string | undefined {
  try {
    formatterOf(timeZone);
    return undefined;
  } catch {
    return `unknown time zone "${timeZone}" (an IANA name such as "Europe/Berlin" or "America/New_York", or "UTC")`;
  }
}

const offsets = new Map<string, number>();

/** The zone's offset from UTC at an instant, in ms (Europe/Berlin in summer: +7 200 000). */
export function zoneOffsetMs(timeZone: string, atMs: number): number {
  const second = Math.floor(atMs / 1000) * 1000;
  const key = `${timeZone}|${second}`;
  const known = offsets.get(key);
  if (known !== undefined) return known;
  const parts: Record<string, number> = {};
  for (const part of formatterOf(timeZone).formatToParts(second)) if (part.type !== 'literal') parts[part.type] = Number(part.value);
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  const offset = wall - second;
  if (offsets.size >= 20_000) offsets.clear();
  offsets.set(key, offset);
  return offset;
}

/** The offsets around one local day: `before` until the instant `changeMs`, `after` from it (no change: changeMs Infinity). */
interface DayOffsets {
  before: number;
  after: number;
  changeMs: number;
}

/** Assumes at most one change of offset within three days, which holds for every zone's rules in use. */
function offsetsAround(timeZone: string, dayStartNaiveMs: number): DayOffsets {
  let low = dayStartNaiveMs - DAY_MS;
  let high = dayStartNaiveMs + 2 * DAY_MS;
  const before = zoneOffsetMs(timeZone, low);
  const after = zoneOffsetMs(timeZone, high);
  if (before === after) return { before, after, changeMs: Infinity };
  // the first second with the new offset (changes fall on whole seconds)
  while (high - low > 1000) {
    const mid = Math.floor((low + high) / 2000) * 1000;
    if (zoneOffsetMs(timeZone, mid) === before) low = mid;
    else high = mid;
  }
  return { before, after, changeMs: high };
}

/**
 * The instants a local wall-clock time (written as if it were UTC) means: one; both occurrences of a
 * repeated time when `bothOccurrences`, else the first; a time in a gap past the gap by its length.
 */
function instantsOf(naiveMs: number, o: DayOffsets, bothOccurrences: boolean): number[] {
  if (o.changeMs === Infinity) return [naiveMs - o.before];
  const early = naiveMs - o.before;
  const late = naiveMs - o.after;
  const earlyValid = early < o.changeMs;
  const lateValid = late >= o.changeMs;
  if (earlyValid && lateValid) return bothOccurrences ? [early, late] : [Math.min(early, late)];
  if (earlyValid) return [early];
  if (lateValid) return [late];
  return [early];
}

/**
 * The local day (days since 1970-01-01 of the zone's calendar) an instant falls on, give or take one
 * near an offset change: the offset is read at the hour (memoised), and every search scans a day
 * more on either side.
 */
const localDayOf = (timeZone: string, atMs: number) => Math.floor((atMs + zoneOffsetMs(timeZone, Math.floor(atMs / 3_600_000) * 3_600_000)) / DAY_MS);

const NO_STARTS: readonly number[] = [];
const dayStarts = new Map<string, readonly number[]>();

/** The instants at which windows start on one local day, ascending (memoised: dispatch asks about the same days event after event). */
function startsOnDay(schedule: CronSchedule, timeZone: string, day: number): readonly number[] {
  const date = new Date(day * DAY_MS);
  if (!cronMatchesDay(schedule, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCDay())) return NO_STARTS;
  const key = `${schedule.expression}|${timeZone}|${day}`;
  let starts = dayStarts.get(key);
  if (!starts) {
    starts = computeStartsOnDay(schedule, timeZone, day);
    if (dayStarts.size >= 5000) dayStarts.clear();
    dayStarts.set(key, starts);
  }
  return starts;
}

/** A gap's shifted start or a repeated hour's second occurrence may come out of order, so a day with an offset change is sorted. */
function computeStartsOnDay(schedule: CronSchedule, timeZone: string, day: number): number[] {
  const dayStart = day * DAY_MS;
  const o = offsetsAround(timeZone, dayStart);
  const starts: number[] = [];
  for (const hour of schedule.hours) {
    for (const minute of schedule.minutes) starts.push(...instantsOf(dayStart + hour * 3_600_000 + minute * MINUTE_MS, o, schedule.wildcardTime));
  }
  if (o.changeMs !== Infinity) starts.sort((a, b) => a - b);
  return starts;
}

/** The latest window start at or before `atMs`, looking back no further than the local day of `notBeforeMs`. */
function latestStartAtOrBefore(schedule: CronSchedule, timeZone: string, atMs: number, notBeforeMs: number): number | undefined {
  const lastDay = localDayOf(timeZone, atMs) + 1;
  const firstDay = localDayOf(timeZone, notBeforeMs) - 1;
  let best: number | undefined;
  let foundOn = -Infinity;
  for (let day = lastDay; day >= firstDay && day >= foundOn - 1; day--) {
    const starts = startsOnDay(schedule, timeZone, day);
    for (let i = starts.length - 1; i >= 0; i--) {
      if (starts[i] <= atMs) {
        if (best === undefined || starts[i] > best) best = starts[i];
        // one day more than the first one with a start: a start of the day before shifted by a gap may be later
        if (foundOn === -Infinity) foundOn = day;
        break;
      }
    }
  }
  return best;
}

/** The earliest window start at or after `fromMs`, within `horizonDays`. */
function earliestStartAtOrAfter(schedule: CronSchedule, timeZone: string, fromMs: number, horizonDays: number): number | undefined {
  const firstDay = localDayOf(timeZone, fromMs) - 1;
  let best: number | undefined;
  let foundOn = Infinity;
  for (let day = firstDay; day <= firstDay + horizonDays + 1 && day <= foundOn + 1; day++) {
    const start = startsOnDay(schedule, timeZone, day).find((s) => s >= fromMs);
    if (start === undefined) continue;
    if (best === undefined || start < best) best = start;
    if (foundOn === Infinity) foundOn = day;
  }
  return best;
}

// ---------------------------------------------------------------- windows

/** The latest recurring window that began at or before atMs and has not ended, unjoined. */
function recurringWindowStart(recurrence: SilenceRecurrence, atMs: number): number | undefined {
  const durationMs = recurrence.durationSeconds * 1000;
  const start = latestStartAtOrBefore(scheduleOf(recurrence.cron), recurrence.timeZone, atMs, atMs - durationMs);
  return start !== undefined && start + durationMs > atMs ? start : undefined;
}

/**
 * [start, start + duration) widened over the windows that overlap or touch it: before it back to the
 * window in force when the silence was created (the ones that had ended by then were never its), and
 * after it; open-ended (untilMs null) when MAX_JOINED_WINDOWS more join on.
 */
function joinedWindow(recurrence: SilenceRecurrence, createdAtMs: number, startMs: number, joinBackwards: boolean): SilenceWindow {
  const schedule = scheduleOf(recurrence.cron);
  const { timeZone } = recurrence;
  const durationMs = recurrence.durationSeconds * 1000;
  let fromMs = startMs;
  for (let i = 0; joinBackwards && i < MAX_JOINED_WINDOWS; i++) {
    const earlier = latestStartAtOrBefore(schedule, timeZone, fromMs - 1, fromMs - 1 - durationMs);
    if (earlier === undefined || earlier + durationMs < fromMs || earlier + durationMs <= createdAtMs) break;
    fromMs = earlier;
  }
  let lastStart = startMs;
  for (let i = 0; i < MAX_JOINED_WINDOWS; i++) {
    const later = latestStartAtOrBefore(schedule, timeZone, lastStart + durationMs, lastStart);
    if (later === undefined || later <= lastStart) return { fromMs, untilMs: lastStart + durationMs };
    lastStart = later;
  }
  return { fromMs, untilMs: null };
}

/** Whether the silence is in force at atMs (what dispatch asks; cheaper than silenceWindowAt). */
export function silenceInForce(silence: SilenceRule, atMs: number): boolean {
  if (silence.recurrence) return recurringWindowStart(silence.recurrence, atMs) !== undefined;
  return silence.from !== null && silence.until !== null && Date.parse(silence.from) <= atMs && atMs < Date.parse(silence.until);
}

/** The window of the silence that contains atMs, or undefined. */
export function silenceWindowAt(silence: SilenceRule, atMs: number): SilenceWindow | undefined {
  if (silence.recurrence) {
    const start = recurringWindowStart(silence.recurrence, atMs);
    return start === undefined ? undefined : joinedWindow(silence.recurrence, Date.parse(silence.createdAt), start, true);
  }
  if (!silenceInForce(silence, atMs)) return undefined;
  return { fromMs: Date.parse(silence.from!), untilMs: Date.parse(silence.until!) };
}

/** The window in force at fromMs, else the next one (within NEXT_WINDOW_HORIZON_DAYS for a recurrence); undefined when none is left. */
export function nextWindow(silence: SilenceRule, fromMs: number): SilenceWindow | undefined {
  if (!silence.recurrence) {
    if (silence.from === null || silence.until === null) return undefined;
    const window = { fromMs: Date.parse(silence.from), untilMs: Date.parse(silence.until) };
    return window.untilMs > fromMs ? window : undefined;
  }
  const current = silenceWindowAt(silence, fromMs);
  if (current) return current;
  const start = earliestStartAtOrAfter(scheduleOf(silence.recurrence.cron), silence.recurrence.timeZone, fromMs, NEXT_WINDOW_HORIZON_DAYS);
  return start === undefined ? undefined : joinedWindow(silence.recurrence, Date.parse(silence.createdAt), start, false);
}

/** Whether a silence covers a config: its own, or one of its MeshHook workflow's. */
export const silenceCovers = (silence: Pick<SilenceRule, 'configId' | 'workflowId'>, scope: { configId: string; workflowId: string }) =>
  silence.configId !== null ? silence.configId === scope.configId : silence.workflowId === scope.workflowId;

/**
 * The silence in force for a config at atMs (the config's own first, then its workflow's), or
 * undefined. `silences` is what store/silences.ts silencesFor read for the workflow.
 */
export function activeSilence<S extends SilenceRule>(silences: readonly S[], scope: { configId: string; workflowId: string }, atMs: number): S | undefined {
  let workflowWide: S | undefined;
  for (const silence of silences) {
    if (!silenceCovers(silence, scope)) continue;
    if (silence.configId === null && workflowWide) continue;
    if (!silenceInForce(silence, atMs)) continue;
    if (silence.configId !== null) return silence;
    workflowWide = silence;
  }
  return workflowWide;
}

/** The note of a silenced alert's log row: which silence, until when (or until further notice), and its comment. */
export function silenceNote(silence: SilenceRule, atMs: number): string {
  const window = silenceWindowAt(silence, atMs);
  const until = !window ? '' : window.untilMs === null ? ' until further notice' : ` until ${new Date(window.untilMs).toISOString()}`;
  const comment = silence.comment ? `: ${silence.comment}` : '';
  return `silenced by ${silence.id} (maintenance window${until}${comment})`;
}

/** The silence as the API answers it: with whether it is in force now and its current or next window. */
export function describeSilence(silence: StoredSilence, nowMs: number): Silence {
  const window = nextWindow(silence, nowMs);
  return {
    ...silence,
    activeNow: window !== undefined && window.fromMs <= nowMs,
    nextWindow: window ? { from: new Date(window.fromMs).toISOString(), until: window.untilMs === null ? null : new Date(window.untilMs).toISOString() } : null,
  };
}

// ---------------------------------------------------------------- input

/**
 * What is wrong with a silence to create, each with the field it is about (the API answers 400 with
 * these); empty when it is fine. The schema (lib/schemas.ts silenceInputSchema) checked each field's form.
 */
export function silenceInputIssues(input: SilenceInput, nowMs: number): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  if (input.configId === undefined && input.workflowId === undefined) {
    issues.push({ path: 'configId', message: 'give configId (one alert config) or workflowId (every config of a MeshHook workflow)' });
  } else if (input.configId !== undefined && input.workflowId !== undefined) {
    issues.push({ path: 'workflowId', message: 'give configId or workflowId, not both' });
  }
  const oneOff = input.from !== undefined || input.until !== undefined;
  if (input.recurrence && oneOff) {
    issues.push({ path: 'recurrence', message: 'a silence is one-off (from, until) or recurring (recurrence), not both' });
  } else if (input.recurrence) {
    try {
      parseCron(input.recurrence.cron);
    } catch (err) {
      issues.push({ path: 'recurrence.cron', message: (err as Error).message });
    }
    const zone = timeZoneProblem(input.recurrence.timeZone);
    if (zone) issues.push({ path: 'recurrence.timeZone', message: zone });
  } else if (input.from === undefined) {
    issues.push({ path: 'from', message: 'from is required for a one-off silence (or give recurrence for a recurring one)' });
  } else if (input.until === undefined) {
    issues.push({ path: 'until', message: 'until is required with from' });
  } else if (Date.parse(input.until) <= Date.parse(input.from)) {
    issues.push({ path: 'until', message: 'until must be after from' });
  } else if (Date.parse(input.until) <= nowMs) {
    issues.push({ path: 'until', message: 'until is in the past: the silence would never be in force' });
  }
  return issues;
}
