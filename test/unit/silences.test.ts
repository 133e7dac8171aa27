import assert from 'node:assert/strict';
import { silenceInputSchema, type SilenceRecurrence } from '../../lib/schemas';
import {
  activeSilence,
  silenceInForce,
  CronError,
  describeSilence,
  nextWindow,
  parseCron,
  silenceInputIssues,
  silenceNote,
  silenceWindowAt,
  timeZoneProblem,
  type SilenceRule,
  type SilenceWindow,
} from '../../lib/silences';

/** Silences without I/O: cron parsing, windows in a time zone across DST changes, the dom/dow rule, scope. */

const at = (iso: string) => Date.parse(iso);
const recurring = (cron: string, durationSeconds: number, timeZone: string, scope: Partial<SilenceRule> = { configId: 'cfg_a' }): SilenceRule => ({
  id: `sil_${cron.replace(/\W/g, '')}`,
  configId: null,
  workflowId: null,
  from: null,
  until: null,
  recurrence: { cron, durationSeconds, timeZone } satisfies SilenceRecurrence,
  createdAt: '2020-01-01T00:00:00.000Z',
  ...scope,
});
const oneOff = (from: string, until: string, scope: Partial<SilenceRule> = { configId: 'cfg_a' }): SilenceRule => ({
  id: 'sil_oneoff', configId: null, workflowId: null, from, until, recurrence: null, createdAt: '2020-01-01T00:00:00.000Z', ...scope,
});
const iso = (w: SilenceWindow | undefined) => w && { from: new Date(w.fromMs).toISOString(), until: w.untilMs === null ? null : new Date(w.untilMs).toISOString() };
const cronError = (cron: string) => {
  try {
    parseCron(cron);
  } catch (err) {
    assert.ok(err instanceof CronError);
    return err.message;
  }
  assert.fail(`"${cron}" parsed`);
};

describe('silences: cron', () => {
  it('parses values, lists, ranges, steps and names', () => {
    const s = parseCron('0,30 9-17/4 1,15 JAN-mar mon-FRI');
    assert.deepEqual(s.minutes, [0, 30]);
    assert.deepEqual(s.hours, [9, 13, 17]);
    assert.deepEqual(s.daysOfMonth.flatMap((on, d) => (on ? [d] : [])), [1, 15]);
    assert.deepEqual(s.months.flatMap((on, m) => (on ? [m] : [])), [1, 2, 3]);
    assert.deepEqual(s.daysOfWeek.flatMap((on, d) => (on ? [d] : [])), [1, 2, 3, 4, 5]);
    assert.deepEqual(parseCron('*/15 * * * *').minutes, [0, 15, 30, 45]);
    assert.deepEqual(parseCron('5/20 * * * *').minutes, [5, 25, 45]);
    // 7 is Sunday too
    assert.deepEqual(parseCron('0 0 * * 5-7').daysOfWeek.flatMap((on, d) => (on ? [d] : [])), [0, 5, 6]);
    assert.deepEqual(parseCron('@daily'), parseCron('0 0 * * *'));
  });

  it('names the field and what is wrong with it', () => {
    assert.equal(cronError('61 * * * *'), 'the minute field "61": 61 is out of range (0–59)');
    assert.equal(cronError('0 24 * * *'), 'the hour field "24": 24 is out of range (0–23)');
    assert.match(cronError('0 0 0 * *'), /^the day-of-month field "0": 0 is out of range/);
    assert.match(cronError('0 0 * 13 *'), /^the month field "13": 13 is out of range \(1–12 or JAN–DEC\)/);
    assert.match(cronError('0 0 * * FUN'), /^the day-of-week field "FUN": "FUN" is not a number or a name/);
    assert.match(cronError('5-2 * * * *'), /^the minute field "5-2": the range "5-2" goes backwards/);
    assert.match(cronError('*/0 * * * *'), /^the minute field "\*\/0": the step "\/0" must be a whole number of at least 1/);
    assert.match(cronError('0 2 * *'), /^needs 5 fields \(minute hour day-of-month month day-of-week\), got 4/);
    assert.match(cronError('0 2 * * * *'), /got 6/);
    assert.match(cronError('0 0 30 2 *'), /^never matches: the day-of-month "30" does not occur in the month "2"/);
    assert.match(cronError('@sometimes'), /^unknown macro "@sometimes"/);
  });

  it('follows Vixie cron for day of month and day of week: both restricted, either matches; one a *, the other decides', () => {
    // 1st of the month OR a Monday, 09:00 UTC
    const either = recurring('0 9 1 * 1', 60, 'UTC');
    assert.ok(silenceWindowAt(either, at('2026-12-01T09:00:30Z')), 'Tuesday the 1st');
    assert.ok(silenceWindowAt(either, at('2026-12-07T09:00:30Z')), 'Monday the 7th');
    assert.equal(silenceWindowAt(either, at('2026-12-08T09:00:30Z')), undefined, 'Tuesday the 8th');
    // */2 in day of month is a star: only Mondays, and only the odd-numbered ones
    const starred = recurring('0 9 */2 * 1', 60, 'UTC');
    assert.ok(silenceWindowAt(starred, at('2026-12-07T09:00:30Z')), 'Monday the 7th (odd)');
    assert.equal(silenceWindowAt(starred, at('2026-12-14T09:00:30Z')), undefined, 'Monday the 14th (even)');
    assert.equal(silenceWindowAt(starred, at('2026-12-01T09:00:30Z')), undefined, 'Tuesday the 1st');
  });
});

describe('silences: windows in a time zone', () => {
  it('refuses an unknown time zone', () => {
    assert.equal(timeZoneProblem('Europe/Berlin'), undefined);
    assert.equal(timeZoneProblem('UTC'), undefined);
    assert.match(timeZoneProblem('Mars/Olympus_Mons')!, /^unknown time zone "Mars\/Olympus_Mons"/);
  });

  it('starts a daily 02:30 Europe/Berlin window at 02:30 local time on either side of the spring change, and at 03:30 CEST on the night 02:00–03:00 is skipped', () => {
    const nightly = recurring('30 2 * * *', 3600, 'Europe/Berlin');
    // CET (+1) before, CEST (+2) after; 2026-03-29 02:00 CET became 03:00 CEST
    assert.deepEqual(iso(nextWindow(nightly, at('2026-03-27T12:00:00Z'))), { from: '2026-03-28T01:30:00.000Z', until: '2026-03-28T02:30:00.000Z' });
    assert.deepEqual(iso(nextWindow(nightly, at('2026-03-28T12:00:00Z'))), { from: '2026-03-29T01:30:00.000Z', until: '2026-03-29T02:30:00.000Z' });
    assert.deepEqual(iso(nextWindow(nightly, at('2026-03-29T12:00:00Z'))), { from: '2026-03-30T00:30:00.000Z', until: '2026-03-30T01:30:00.000Z' });
    assert.ok(silenceWindowAt(nightly, at('2026-03-29T02:15:00Z')), '04:15 CEST, inside the window that began 03:30 CEST');
    assert.equal(silenceWindowAt(nightly, at('2026-03-29T00:45:00Z')), undefined, '01:45 CET: before it');
  });

  it('starts one window, at the first 02:30, on the night Europe/Berlin repeats 02:00–03:00', () => {
    const nightly = recurring('30 2 * * *', 1800, 'Europe/Berlin');
    // 2026-10-25 03:00 CEST became 02:00 CET: 02:30 is 00:30Z (CEST) and 01:30Z (CET)
    assert.deepEqual(iso(nextWindow(nightly, at('2026-10-24T12:00:00Z'))), { from: '2026-10-25T00:30:00.000Z', until: '2026-10-25T01:00:00.000Z' });
    assert.equal(silenceWindowAt(nightly, at('2026-10-25T01:45:00Z')), undefined, 'the second 02:30 starts none');
    assert.deepEqual(iso(nextWindow(nightly, at('2026-10-25T01:00:00Z'))), { from: '2026-10-26T01:30:00.000Z', until: '2026-10-26T02:00:00.000Z' });
  });

  it('goes on through the repeated hour of the autumn change when the cron starts windows every hour or more often (Vixie cron: a * in the minute or hour field)', () => {
    // Europe/Berlin 2026-10-25: 02:00–03:00 local is 00:00–01:00Z (CEST) and again 01:00–02:00Z (CET)
    assert.ok(silenceInForce(recurring('0 * * * *', 3600, 'Europe/Berlin'), at('2026-10-25T01:30:00Z')), '02:30 CET, in the window of the second 02:00');
    assert.ok(silenceInForce(recurring('@hourly', 3600, 'Europe/Berlin'), at('2026-10-25T01:30:00Z')), '@hourly');
    assert.deepEqual(iso(nextWindow(recurring('0 * 25 10 *', 3600, 'Europe/Berlin'), at('2026-10-24T12:00:00Z'))), { from: '2026-10-24T22:00:00.000Z', until: '2026-10-25T23:00:00.000Z' }, 'the 25 hours of the day, one window');
    assert.ok(silenceInForce(recurring('0 */2 * * *', 7200, 'Europe/Berlin'), at('2026-10-25T02:30:00Z')), 'a step in the hour field: 02:00 CET starts one too');
    assert.ok(silenceInForce(recurring('*/30 2 * * *', 1800, 'Europe/Berlin'), at('2026-10-25T01:15:00Z')), 'a step in the minute field: 02:00 CET starts one too');
    // America/New_York 2026-11-01: 01:00–02:00 local is 05:00–06:00Z (EDT) and again 06:00–07:00Z (EST)
    assert.ok(silenceInForce(recurring('0 * * * *', 3600, 'America/New_York'), at('2026-11-01T06:30:00Z')), '01:30 EST');
    assert.deepEqual(iso(nextWindow(recurring('0 * 1 11 *', 3600, 'America/New_York'), at('2026-10-31T12:00:00Z'))), { from: '2026-11-01T04:00:00.000Z', until: '2026-11-02T05:00:00.000Z' });
    // a fixed hour and minute still starts once (the test above): `30 2 * * *` at the first 02:30 only
    assert.equal(silenceInForce(recurring('30 2 * * *', 1800, 'Europe/Berlin'), at('2026-10-25T01:45:00Z')), false);
  });

  it('keeps a weekday 09:00 America/New_York window at 09:00 local across the March and November changes', () => {
    const standup = recurring('0 9 * * MON-FRI', 3600, 'America/New_York');
    // EST (-5) until 2026-03-08, EDT (-4) after; back to EST on 2026-11-01
    assert.deepEqual(iso(nextWindow(standup, at('2026-03-06T12:00:00Z'))), { from: '2026-03-06T14:00:00.000Z', until: '2026-03-06T15:00:00.000Z' });
    assert.deepEqual(iso(nextWindow(standup, at('2026-03-06T16:00:00Z'))), { from: '2026-03-09T13:00:00.000Z', until: '2026-03-09T14:00:00.000Z' });
    assert.deepEqual(iso(nextWindow(standup, at('2026-10-30T13:30:00Z'))), { from: '2026-10-30T13:00:00.000Z', until: '2026-10-30T14:00:00.000Z' });
    assert.deepEqual(iso(nextWindow(standup, at('2026-10-31T00:00:00Z'))), { from: '2026-11-02T14:00:00.000Z', until: '2026-11-02T15:00:00.000Z' });
    // a window lasts its duration in real time: two hours from 01:00 EST on the night of the March change end at 04:00 EDT
    const night = recurring('0 1 8 3 *', 7200, 'America/New_York');
    assert.deepEqual(iso(nextWindow(night, at('2026-03-01T00:00:00Z'))), { from: '2026-03-08T06:00:00.000Z', until: '2026-03-08T08:00:00.000Z' });
  });

  it('answers the window in force with its start, and joins windows that overlap or touch', () => {
    const hourly = recurring('0 * * * *', 3600, 'UTC');
    const w = silenceWindowAt(hourly, at('2026-12-02T10:30:00Z'))!;
    assert.ok(w.fromMs <= at('2026-12-02T10:30:00Z') && w.untilMs === null, 'back-to-back windows are one, open-ended');
    const twice = recurring('0 9,10 * * *', 5400, 'UTC');
    assert.deepEqual(iso(silenceWindowAt(twice, at('2026-12-02T09:15:00Z'))), { from: '2026-12-02T09:00:00.000Z', until: '2026-12-02T11:30:00.000Z' });
  });

  it('joins windows back only to the one in force when the silence was created, and answers a window that never ends as open-ended', () => {
    // weekly windows of 7 days touch: one window from the Sunday before the silence was created, until further notice
    const weekly = recurring('0 0 * * SUN', 7 * 86_400, 'UTC', { configId: 'cfg_a', createdAt: '2026-12-01T10:00:00.000Z' });
    assert.deepEqual(iso(nextWindow(weekly, at('2026-12-02T10:00:00Z'))), { from: '2026-11-29T00:00:00.000Z', until: null });
    assert.equal(silenceNote(weekly, at('2026-12-02T10:00:00Z')), `silenced by ${weekly.id} (maintenance window until further notice)`);
    assert.deepEqual(describeSilence({ ...weekly, comment: '' } as Parameters<typeof describeSilence>[0], at('2026-12-02T10:00:00Z')).nextWindow, { from: '2026-11-29T00:00:00.000Z', until: null });
    // every minute for 2 minutes: from the window still in force at 10:00 (09:59), not the one that ended then
    const everyMinute = recurring('* * * * *', 120, 'UTC', { configId: 'cfg_a', createdAt: '2026-12-02T10:00:00.000Z' });
    assert.deepEqual(iso(silenceWindowAt(everyMinute, at('2026-12-02T10:30:30Z'))), { from: '2026-12-02T09:59:00.000Z', until: null });
    // created during a window: that window keeps its start, as it is in force
    const daily = recurring('0 10 * * *', 3600, 'UTC', { configId: 'cfg_a', createdAt: '2026-12-02T10:30:00.000Z' });
    assert.deepEqual(iso(nextWindow(daily, at('2026-12-02T10:40:00Z'))), { from: '2026-12-02T10:00:00.000Z', until: '2026-12-02T11:00:00.000Z' });
  });

  it('finds the next window a long way ahead (February 29) and none for an ended one-off silence', () => {
    assert.deepEqual(iso(nextWindow(recurring('0 0 29 2 *', 3600, 'UTC'), at('2026-12-02T00:00:00Z'))), { from: '2028-02-29T00:00:00.000Z', until: '2028-02-29T01:00:00.000Z' });
    const once = oneOff('2026-12-02T10:00:00Z', '2026-12-02T12:00:00Z');
    assert.deepEqual(iso(nextWindow(once, at('2026-12-01T00:00:00Z'))), { from: '2026-12-02T10:00:00.000Z', until: '2026-12-02T12:00:00.000Z' });
    assert.ok(silenceWindowAt(once, at('2026-12-02T10:00:00Z')), 'from is inside');
    assert.equal(silenceWindowAt(once, at('2026-12-02T12:00:00Z')), undefined, 'until is not');
    assert.equal(nextWindow(once, at('2026-12-02T12:00:00Z')), undefined);
  });
});

describe('silences: scope', () => {
  const scope = { configId: 'cfg_a', workflowId: 'wf_orders' };
  const now = at('2026-12-02T10:30:00Z');
  const onA = oneOff('2026-12-02T10:00:00Z', '2026-12-02T11:00:00Z', { id: 'sil_a', configId: 'cfg_a' });
  const onB = oneOff('2026-12-02T10:00:00Z', '2026-12-02T11:00:00Z', { id: 'sil_b', configId: 'cfg_b' });
  const onWorkflow = { ...recurring('0 10 * * *', 3600, 'UTC', { workflowId: 'wf_orders' }), id: 'sil_wf' };
  const onOtherWorkflow = { ...recurring('0 10 * * *', 3600, 'UTC', { workflowId: 'wf_billing' }), id: 'sil_other' };

  it("silences a config by its own silence, before its workflow's", () => {
    assert.equal(activeSilence([onWorkflow, onA], scope, now)?.id, 'sil_a');
  });

  it("silences every config of a workflow by the workflow's silence", () => {
    assert.equal(activeSilence([onB, onWorkflow], scope, now)?.id, 'sil_wf');
    assert.equal(activeSilence([onB, onWorkflow], { configId: 'cfg_c', workflowId: 'wf_orders' }, now)?.id, 'sil_wf');
  });

  it("ignores another config's silence, another workflow's, and one not in force", () => {
    assert.equal(activeSilence([onB, onOtherWorkflow], scope, now), undefined);
    assert.equal(activeSilence([onA, onWorkflow], scope, at('2026-12-02T11:30:00Z')), undefined);
  });

  it('notes which silence silenced an alert and until when', () => {
    assert.equal(silenceNote({ ...onA, comment: 'CRM upgrade' }, now), 'silenced by sil_a (maintenance window until 2026-12-02T11:00:00.000Z: CRM upgrade)');
    const described = describeSilence({ ...onWorkflow, comment: '', createdAt: '2026-12-01T00:00:00.000Z' }, now);
    assert.equal(described.activeNow, true);
    assert.deepEqual(described.nextWindow, { from: '2026-12-02T10:00:00.000Z', until: '2026-12-02T11:00:00.000Z' });
  });
});

describe('silences: input', () => {
  const now = at('2026-12-02T10:00:00Z');
  const issues = (body: object) => silenceInputIssues(silenceInputSchema.parse(body), now).map((i) => `${i.path}: ${i.message}`);
  const window = { from: '2026-12-02T11:00:00Z', until: '2026-12-02T12:00:00Z' };

  it('needs one of configId and workflowId', () => {
    assert.deepEqual(issues(window), ['configId: give configId (one alert config) or workflowId (every config of a MeshHook workflow)']);
    assert.deepEqual(issues({ ...window, configId: 'cfg_a', workflowId: 'wf' }), ['workflowId: give configId or workflowId, not both']);
    assert.deepEqual(issues({ ...window, configId: 'cfg_a' }), []);
  });

  it('needs from before until, or a recurrence, not both', () => {
    assert.deepEqual(issues({ configId: 'c' }), ['from: from is required for a one-off silence (or give recurrence for a recurring one)']);
    assert.deepEqual(issues({ configId: 'c', from: window.from }), ['until: until is required with from']);
    assert.deepEqual(issues({ configId: 'c', from: window.until, until: window.from }), ['until: until must be after from']);
    assert.deepEqual(issues({ configId: 'c', from: '2026-12-01T00:00:00Z', until: '2026-12-01T01:00:00Z' }), ['until: until is in the past: the silence would never be in force']);
    assert.deepEqual(issues({ configId: 'c', ...window, recurrence: { cron: '0 2 * * *', durationSeconds: 60, timeZone: 'UTC' } }), [
      'recurrence: a silence is one-off (from, until) or recurring (recurrence), not both',
    ]);
  });

  it('says that from and until need an offset', () => {
    const parsed = silenceInputSchema.safeParse({ configId: 'c', from: '2026-12-02T22:00:00', until: '2026-12-03T01:00:00+01:00' });
    assert.ok(!parsed.success);
    assert.deepEqual(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`), ['from: from must be an ISO time with an offset (Z or +01:00), e.g. 2026-12-02T22:00:00+01:00']);
    const untilWrong = silenceInputSchema.safeParse({ configId: 'c', from: '2026-12-02T22:00:00Z', until: 'tomorrow' });
    assert.match(untilWrong.error!.issues[0].message, /^until must be an ISO time with an offset \(Z or \+01:00\)/);
  });

  it('names a bad cron and an unknown time zone', () => {
    assert.deepEqual(issues({ configId: 'c', recurrence: { cron: '0 25 * * *', durationSeconds: 60, timeZone: 'Europe/Atlantis' } }), [
      'recurrence.cron: the hour field "25": 25 is out of range (0–23)',
      'recurrence.timeZone: unknown time zone "Europe/Atlantis" (an IANA name such as "Europe/Berlin" or "America/New_York", or "UTC")',
    ]);
  });
});
