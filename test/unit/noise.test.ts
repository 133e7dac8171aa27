import assert from 'node:assert/strict';
import {
  admitItem,
  compactKey,
  DEDUP_WINDOWS_MAX,
  digestDeliveryId,
  dueActions,
  emptyNoiseState,
  fnv1a64,
  groupKey,
  GROUPS_MAX,
  INCIDENT_DELIVERIES_MAX,
  isIdle,
  jsonBytes,
  KEY_MAX_BYTES,
  LISTED_MESSAGE_MAX,
  NEWEST_DATA_MAX,
  nextWakeMs,
  NOISE_LINGER_MS,
  overflowGroupKey,
  SEEN_IDS_MAX,
  type NoiseAction,
  type NoiseAlertItem,
  type NoiseIds,
  type NoiseItem,
  type NoiseState,
} from '../../lib/noise';
import { NOISE_OFF, type ExecutionEvent, type NoiseSettings } from '../../lib/schemas';

/** The noise pipeline's reducer without a workflow: each step alone, then together, as docs/noise-control.md tells them. */

const T0 = Date.parse('2026-12-02T10:00:00.000Z');
const sec = (s: number) => T0 + s * 1000;
const at = (s: number) => new Date(sec(s)).toISOString();
const ids: NoiseIds = { idPrefix: 'dlv-cfg_1', chain: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b' };
const digestId = (seq: number) => digestDeliveryId(ids, seq);

const failed = (n: number, occurredAtS = n, extra: Partial<ExecutionEvent> = {}): ExecutionEvent => ({
  id: `evt_${n}`,
  type: 'run.failed',
  workflowId: 'wf_orders',
  runId: `run_${n}`,
  occurredAt: at(occurredAtS),
  error: { message: 'HTTP 500 from CRM', step: 'createContact', code: 'E_HTTP' },
  data: { order: n },
  ...extra,
});

function alert(settings: NoiseSettings, event: ExecutionEvent, opts: Partial<NoiseAlertItem> = {}): NoiseAlertItem {
  const condition = opts.condition ?? 'failure';
  return {
    kind: 'alert',
    deliveryId: `dlv-cfg_1-${event.id}`,
    condition,
    event,
    groupKey: settings.grouping ? groupKey(settings.grouping.by, event, condition) : '',
    dedupKey: settings.dedup ? (event.error?.step ?? '') : null,
    silencedBy: null,
    watch: false,
    settings,
    ...opts,
  };
}
const success = (settings: NoiseSettings, n: number, occurredAtS = n): NoiseItem => ({
  kind: 'success',
  event: { id: `ok_${n}`, type: 'run.succeeded', workflowId: 'wf_orders', runId: `run_ok_${n}`, occurredAt: at(occurredAtS) },
  settings,
});

/** What the workflow would log or send: one line per action, easy to compare. */
function brief(actions: NoiseAction[]) {
  return actions.map((a) => {
    switch (a.kind) {
      case 'decided':
        return `${a.outcome} ${a.item.event.id}`;
      case 'send':
        return `send ${a.item.event.id}`;
      case 'digest':
        return `digest ${a.deliveryId} #${a.group.digest} ${a.group.events.map((e) => e.id).join(',')}${a.group.more ? ` +${a.group.more}` : ''}`;
      case 'recovery':
        return `recovery ${a.deliveryId}`;
    }
  });
}
const only = <K extends NoiseAction['kind']>(actions: NoiseAction[], kind: K) => {
  assert.equal(actions.length, 1, `one action expected: ${brief(actions).join('; ')}`);
  assert.equal(actions[0].kind, kind);
  return actions[0] as Extract<NoiseAction, { kind: K }>;
};

const grouping = (waitSeconds: number, intervalSeconds: number, maxEvents = 100): NoiseSettings['grouping'] => ({
  by: ['workflow.id', 'error.step'],
  waitSeconds,
  intervalSeconds,
  maxEvents,
});

describe('noise pipeline reducer (lib/noise.ts)', () => {
  describe('groupKey', () => {
    it('is the condition and the grouping fields in their order, a missing value empty', () => {
      const event = failed(1, 1, { workflow: { version: 3 } });
      assert.equal(groupKey(['workflow.id', 'error.step'], event, 'failure'), 'failure|wf_orders|createContact');
      assert.equal(groupKey(['error.code', 'workflow.version', 'error.message'], event, 'delay'), 'delay|E_HTTP|3|HTTP 500 from CRM');
      assert.equal(groupKey(['error.step'], { ...event, error: undefined }, 'failure'), 'failure|');
    });

    it('keeps different values apart even when they hold the separator', () => {
      const a = groupKey(['error.step', 'error.code'], failed(1, 1, { error: { step: 'x|y', code: '' } }), 'failure');
      const b = groupKey(['error.step', 'error.code'], failed(1, 1, { error: { step: 'x', code: 'y|' } }), 'failure');
      assert.notEqual(a, b);
    });
  });

  it('ignores an alert or a successful run it has taken in before', () => {
    const settings = { ...NOISE_OFF, recovery: true };
    const state = emptyNoiseState();
    assert.deepEqual(brief(admitItem(state, alert(settings, failed(1)), sec(1), ids)), ['send evt_1']);
    assert.deepEqual(admitItem(state, alert(settings, failed(1)), sec(2), ids), []);
    assert.equal(only(admitItem(state, success(settings, 3), sec(3), ids), 'recovery').recovery.failures, 1);
    assert.deepEqual(admitItem(state, success(settings, 3), sec(4), ids), []);
  });

  it('forgets the ids it saw after an hour, and keeps at most the newest SEEN_IDS_MAX', () => {
    const state = emptyNoiseState();
    admitItem(state, alert(NOISE_OFF, failed(1)), sec(0), ids);
    dueActions(state, sec(0) + NOISE_LINGER_MS - 1, ids);
    assert.deepEqual(admitItem(state, alert(NOISE_OFF, failed(1)), sec(0) + NOISE_LINGER_MS - 1, ids), []);
    dueActions(state, sec(0) + NOISE_LINGER_MS, ids);
    assert.deepEqual(brief(admitItem(state, alert(NOISE_OFF, failed(1)), sec(0) + NOISE_LINGER_MS, ids)), ['send evt_1']);

    const many = emptyNoiseState();
    for (let n = 0; n <= SEEN_IDS_MAX; n++) admitItem(many, alert(NOISE_OFF, failed(n)), sec(1), ids);
    assert.equal(many.seenCount, SEEN_IDS_MAX);
    assert.equal(Object.keys(many.seen).length, SEEN_IDS_MAX);
    assert.equal(brief(admitItem(many, alert(NOISE_OFF, failed(0)), sec(2), ids))[0], 'send evt_0', 'the oldest id was let go');
    assert.deepEqual(admitItem(many, alert(NOISE_OFF, failed(SEEN_IDS_MAX)), sec(2), ids), []);
  });

  describe('silence', () => {
    it('logs a silenced alert and tells the count with the next alert that goes out, then starts again', () => {
      const state = emptyNoiseState();
      const decided = only(admitItem(state, alert(NOISE_OFF, failed(1), { silencedBy: 'sil_night' }), sec(1), ids), 'decided');
      assert.equal(decided.outcome, 'silenced');
      assert.equal(decided.note, 'silenced by sil_night');
      const note = `silenced by sil_night (maintenance window until ${at(3600)}: nightly batch)`;
      assert.equal(only(admitItem(state, alert(NOISE_OFF, failed(2), { silencedBy: 'sil_night', silenceNote: note }), sec(2), ids), 'decided').note, note);
      assert.equal(isIdle(state, sec(3)), false, 'a count is still to be told');

      const sent = only(admitItem(state, alert(NOISE_OFF, failed(3)), sec(3), ids), 'send');
      assert.deepEqual(sent.noise, { silenced: 2, deduplicated: 0, throttled: 0, repeatSuppressed: 0, since: at(1) });
      assert.equal(only(admitItem(state, alert(NOISE_OFF, failed(4)), sec(4), ids), 'send').noise, null);
      assert.equal(isIdle(state, sec(4)), true);
    });
  });

  describe('dedup', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, dedup: { key: '{{ error.step }}', windowSeconds: 60 } };

    it('lets one alert per key through within the window, fixed from the first', () => {
      const state = emptyNoiseState();
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(0)), sec(0), ids)), ['send evt_0']);
      const dup = only(admitItem(state, alert(settings, failed(30)), sec(30), ids), 'decided');
      assert.equal(dup.outcome, 'deduplicated');
      assert.equal(dup.note, `same dedup key "createContact" as an alert at ${at(0)}; window until ${at(60)}`);
      // a duplicate does not stretch the window
      assert.equal(only(admitItem(state, alert(settings, failed(59)), sec(59), ids), 'decided').outcome, 'deduplicated');
      // another key is its own; it tells the two held back
      const other = only(admitItem(state, alert(settings, failed(40, 40, { error: { step: 'chargeCard' } })), sec(40), ids), 'send');
      assert.deepEqual(other.noise, { silenced: 0, deduplicated: 2, throttled: 0, repeatSuppressed: 0, since: at(30) });
      assert.equal(nextWakeMs(state), sec(60));

      assert.equal(only(admitItem(state, alert(settings, failed(60)), sec(60), ids), 'send').noise, null, 'the window is over, the count was told');
      assert.equal(only(admitItem(state, alert(settings, failed(61)), sec(61), ids), 'decided').note, `same dedup key "createContact" as an alert at ${at(60)}; window until ${at(120)}`);
    });

    it('forgets expired keys at dueActions and is idle once every window is over', () => {
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      assert.equal(isIdle(state, sec(59)), false);
      assert.equal(isIdle(state, sec(60)), true);
      assert.deepEqual(dueActions(state, sec(60), ids), []);
      assert.deepEqual(state.dedup, {});
      assert.equal(nextWakeMs(state), undefined);
    });
  });

  describe('throttle', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, throttle: { maxPerWindow: 2, windowSeconds: 60 } };

    it('holds back what is beyond maxPerWindow and tells the count with the first alert of the next window', () => {
      const state = emptyNoiseState();
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(10)), sec(10), ids)), ['send evt_10']);
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(20)), sec(20), ids)), ['send evt_20']);
      const held = only(admitItem(state, alert(settings, failed(30)), sec(30), ids), 'decided');
      assert.equal(held.outcome, 'throttled');
      assert.equal(held.note, `throttled: 2 alerts already in this window (at most 2 per 60 s, until ${at(70)})`);
      admitItem(state, alert(settings, failed(69)), sec(69), ids);
      assert.equal(nextWakeMs(state), sec(70));

      // the window is fixed from its first counted alert (10 s), not sliding
      const next = only(admitItem(state, alert(settings, failed(70)), sec(70), ids), 'send');
      assert.deepEqual(next.noise, { silenced: 0, deduplicated: 0, throttled: 2, repeatSuppressed: 0, since: at(30) });
      assert.equal(only(admitItem(state, alert(settings, failed(71)), sec(71), ids), 'send').noise, null, 'the count was reset');
      assert.equal(only(admitItem(state, alert(settings, failed(72)), sec(72), ids), 'decided').outcome, 'throttled');
    });
  });

  describe('repeat', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, repeatIntervalSeconds: 600 };

    it('notifies a still-failing workflow again only after repeatIntervalSeconds', () => {
      const state = emptyNoiseState();
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(0)), sec(0), ids)), ['send evt_0']);
      const again = only(admitItem(state, alert(settings, failed(60)), sec(60), ids), 'decided');
      assert.equal(again.outcome, 'repeat_suppressed');
      assert.equal(again.note, `still failing: notified at ${at(0)}, next notice after ${at(600)}`);
      admitItem(state, alert(settings, failed(599)), sec(599), ids);

      const notice = only(admitItem(state, alert(settings, failed(600)), sec(600), ids), 'send');
      assert.deepEqual(notice.noise, { silenced: 0, deduplicated: 0, throttled: 0, repeatSuppressed: 2, since: at(60) });
      assert.equal(only(admitItem(state, alert(settings, failed(700)), sec(700), ids), 'decided').note, `still failing: notified at ${at(600)}, next notice after ${at(1200)}`);
      assert.equal(state.incident?.failures, 5, 'every failure counts into the incident, held back or not');
    });

    it('counts only failures and delays as the incident, and a successful run ends it', () => {
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      const paused = { ...failed(10), type: 'run.paused' as const };
      assert.deepEqual(brief(admitItem(state, alert(settings, paused, { condition: 'manual_intervention' }), sec(10), ids)), ['send evt_10']);
      assert.equal(only(admitItem(state, alert(settings, failed(20, 20, { type: 'run.started' }), { condition: 'delay' }), sec(20), ids), 'decided').outcome, 'repeat_suppressed');
      assert.deepEqual(admitItem(state, success(settings, 30), sec(30), ids), [], 'no recovery without the recovery setting');
      assert.equal(state.incident, null);
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(40)), sec(40), ids)), ['send evt_40'], 'a new incident is notified at once');
    });
  });

  describe('grouping', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, grouping: grouping(30, 300) };

    it("counts a new group's wait from when the service received its first alert's event, not from when the pipeline took it in", () => {
      // a burst's signals queue behind busy workflow tasks: the alert received at 0 s is taken in at 12 s
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0), { receivedAt: at(0) }), sec(12), ids);
      assert.equal(nextWakeMs(state), sec(30));
      assert.deepEqual(dueActions(state, sec(29), ids), []);
      assert.equal(only(dueActions(state, sec(30), ids), 'digest').group.count, 1);
      // one that queued longer than the wait goes out at once; a fired delay watch's counts from now
      const late = emptyNoiseState();
      admitItem(late, alert(settings, failed(0), { receivedAt: at(0) }), sec(45), ids);
      assert.equal(nextWakeMs(late), sec(45));
      const watch = emptyNoiseState();
      admitItem(watch, alert(settings, failed(0), { receivedAt: at(0), watch: true, condition: 'delay' }), sec(12), ids);
      assert.equal(nextWakeMs(watch), sec(42));
    });

    it('waits waitSeconds for the first digest, then sends the next events at most every intervalSeconds, and closes when none came', () => {
      const state = emptyNoiseState();
      const first = only(admitItem(state, alert(settings, failed(0)), sec(0), ids), 'decided');
      assert.equal(first.outcome, 'grouped');
      assert.equal(first.note, `grouped into digest ${digestId(1)} (group failure|wf_orders|createContact)`);
      admitItem(state, alert(settings, failed(10)), sec(10), ids);
      assert.equal(nextWakeMs(state), sec(30));
      assert.deepEqual(dueActions(state, sec(29), ids), []);

      const digest1 = only(dueActions(state, sec(30), ids), 'digest');
      assert.equal(digest1.deliveryId, digestId(1));
      assert.deepEqual(digest1.group, {
        key: 'failure|wf_orders|createContact',
        by: ['workflow.id', 'error.step'],
        condition: 'failure',
        count: 2,
        events: [0, 10].map((n) => ({
          id: `evt_${n}`, type: 'run.failed', workflowId: 'wf_orders', runId: `run_${n}`, occurredAt: at(n),
          error: { message: 'HTTP 500 from CRM', step: 'createContact', code: 'E_HTTP' }, deliveryId: `dlv-cfg_1-evt_${n}`,
        })),
        more: 0,
        firstAt: at(0),
        lastAt: at(10),
        digest: 1,
      });
      assert.deepEqual(digest1.event, failed(10), 'the template event is the newest, whole');

      // the next events wait for the interval after the digest
      assert.equal(only(admitItem(state, alert(settings, failed(31)), sec(31), ids), 'decided').note, `grouped into digest ${digestId(2)} (group failure|wf_orders|createContact)`);
      assert.equal(nextWakeMs(state), sec(330));
      assert.deepEqual(dueActions(state, sec(329), ids), []);
      assert.deepEqual(brief(dueActions(state, sec(330), ids)), [`digest ${digestId(2)} #2 evt_31`]);

      // a flush with nothing in it closes the group
      assert.deepEqual(dueActions(state, sec(630), ids), []);
      assert.deepEqual(state.groups, {});
      assert.equal(isIdle(state, sec(630)), true);

      // the next event opens it again, with waitSeconds, numbered from 1
      assert.equal(only(admitItem(state, alert(settings, failed(700)), sec(700), ids), 'decided').note, `grouped into digest ${digestId(3)} (group failure|wf_orders|createContact)`);
      assert.equal(nextWakeMs(state), sec(730));
      assert.deepEqual(brief(dueActions(state, sec(730), ids)), [`digest ${digestId(3)} #1 evt_700`]);
    });

    it('opens a group again for an event after its empty flush passed, even before dueActions ran', () => {
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      dueActions(state, sec(30), ids);
      admitItem(state, alert(settings, failed(400)), sec(400), ids);
      assert.equal(nextWakeMs(state), sec(430));
    });

    it('keeps groups apart by key, each with its own digest id', () => {
      const state = emptyNoiseState();
      assert.equal(only(admitItem(state, alert(settings, failed(0)), sec(0), ids), 'decided').note, `grouped into digest ${digestId(1)} (group failure|wf_orders|createContact)`);
      const other = failed(1, 1, { error: { step: 'chargeCard' } });
      assert.equal(only(admitItem(state, alert(settings, other), sec(1), ids), 'decided').note, `grouped into digest ${digestId(2)} (group failure|wf_orders|chargeCard)`);
      assert.deepEqual(brief(dueActions(state, sec(31), ids)), [`digest ${digestId(1)} #1 evt_0`, `digest ${digestId(2)} #1 evt_1`]);
    });

    it('lists at most maxEvents events, the oldest by event time, and counts the rest', () => {
      const small: NoiseSettings = { ...NOISE_OFF, grouping: grouping(30, 300, 3) };
      const state = emptyNoiseState();
      // taken in out of order: events 5, 1, 4, 2, 3 (their times)
      for (const n of [5, 1, 4, 2, 3]) admitItem(state, alert(small, failed(n)), sec(10 + n), ids);
      const digest = only(dueActions(state, sec(60), ids), 'digest');
      assert.deepEqual(digest.group.events.map((e) => e.id), ['evt_1', 'evt_2', 'evt_3']);
      assert.equal(digest.group.count, 5);
      assert.equal(digest.group.more, 2);
      assert.equal(digest.group.firstAt, at(1));
      assert.equal(digest.group.lastAt, at(5));
      assert.equal(digest.event.id, 'evt_5');
    });

    it('cuts a long error message in the list, and keeps the newest event whole', () => {
      const state = emptyNoiseState();
      const long = failed(1, 1, { error: { message: 'x'.repeat(10_000), step: 'createContact' } });
      admitItem(state, alert(settings, long), sec(1), ids);
      const digest = only(dueActions(state, sec(31), ids), 'digest');
      assert.equal(digest.group.events[0].error?.message, `${'x'.repeat(LISTED_MESSAGE_MAX)}…`);
      assert.equal(digest.group.events[0].error?.step, 'createContact');
      assert.equal(digest.event.error?.message?.length, 10_000);
    });

    it('puts every event in exactly one digest, and a repeated item in none', () => {
      const state = emptyNoiseState();
      const listed: string[] = [];
      const collect = (actions: NoiseAction[]) => {
        for (const a of actions) if (a.kind === 'digest') listed.push(...a.group.events.map((e) => e.id));
      };
      for (let s = 0; s < 1000; s += 7) {
        collect(dueActions(state, sec(s), ids));
        collect(admitItem(state, alert(settings, failed(s)), sec(s), ids));
        collect(admitItem(state, alert(settings, failed(s)), sec(s), ids)); // the same signal again
      }
      collect(dueActions(state, sec(5000), ids));
      const expected = Array.from({ length: Math.ceil(1000 / 7) }, (_, k) => `evt_${k * 7}`);
      assert.deepEqual(listed, expected);
    });

    describe(`the bound on digests: 1 + ceil((S - w) / i), one more when S - w is a whole multiple of i`, () => {
      /** A burst of events every `stepMs` over `spanMs`; digests go out when due, before an event of the same ms (the worst case) or `lateMs` late. */
      function burst(w: number, i: number, spanMs: number, stepMs: number, lateMs = 0) {
        const settings: NoiseSettings = { ...NOISE_OFF, grouping: grouping(w, i, 100_000) };
        const state = emptyNoiseState();
        let digests = 0;
        const listed: string[] = [];
        const flushUntil = (nowMs: number) => {
          for (let wake = nextWakeMs(state); wake !== undefined && wake + lateMs <= nowMs; wake = nextWakeMs(state)) {
            for (const a of dueActions(state, wake + lateMs, ids)) if (a.kind === 'digest') (digests += 1), listed.push(...a.group.events.map((e) => e.id));
          }
        };
        let n = 0;
        for (let t = 0; t <= spanMs; t += stepMs, n++) {
          flushUntil(T0 + t);
          admitItem(state, alert(settings, failed(n, t / 1000)), T0 + t, ids);
        }
        flushUntil(Number.MAX_SAFE_INTEGER);
        assert.equal(new Set(listed).size, n);
        assert.equal(listed.length, n);
        return digests;
      }
      const bound = (w: number, i: number, S: number) => 1 + Math.ceil(Math.max(0, S - w) / i);

      it('holds for bursts shorter than the wait, spanning several intervals, and ending between flushes', () => {
        for (const [w, i, S] of [[5, 30, 3], [5, 30, 4.999], [5, 30, 20], [5, 30, 100], [0, 10, 95.5], [30, 300, 1000], [1, 1, 9.5]]) {
          const digests = burst(w, i, S * 1000, 250);
          assert.ok(digests <= bound(w, i, S), `w ${w} i ${i} S ${S}: ${digests} digests`);
          assert.equal(digests, bound(w, i, S), `w ${w} i ${i} S ${S}: on-time flushes reach the bound`);
        }
      });

      it('allows one more when the last event comes in at the very millisecond a digest went out', () => {
        assert.equal(burst(5, 30, 5000, 1000), bound(5, 30, 5) + 1);
        assert.equal(burst(5, 30, 65_000, 1000), bound(5, 30, 65) + 1);
        assert.equal(burst(0, 10, 0, 1000), 1, 'one event is one digest');
      });

      it('holds when digests go out late (a worker restarted): the interval counts from the digest that went out', () => {
        for (const [w, i, S] of [[5, 30, 100], [0, 10, 95.5], [5, 30, 65]]) {
          const digests = burst(w, i, S * 1000, 250, 7000);
          assert.ok(digests <= bound(w, i, S) + 1, `w ${w} i ${i} S ${S}: ${digests} digests`);
        }
      });
    });
  });

  describe('recovery', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };

    it('sends one recovery per incident, after a failure alert went out', () => {
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      admitItem(state, alert(settings, failed(100)), sec(100), ids);
      admitItem(state, alert(settings, failed(200), { silencedBy: 'sil_deploy' }), sec(200), ids);
      assert.equal(isIdle(state, sec(250)), false, 'an incident is open');
      const recovery = only(admitItem(state, success(settings, 303), sec(304), ids), 'recovery');
      assert.equal(recovery.deliveryId, 'dlv-cfg_1-evt_0-recovered');
      assert.deepEqual(recovery.recovery, { failingSince: at(0), recoveredAt: at(303), failingForMs: 303_000, failures: 3, incidentKey: 'wf_orders' });
      assert.equal(recovery.event.id, 'ok_303');
      assert.deepEqual(recovery.noise, { silenced: 1, deduplicated: 0, throttled: 0, repeatSuppressed: 0, since: at(200) });
      assert.deepEqual(admitItem(state, success(settings, 400), sec(400), ids), [], 'the incident is over');
      assert.equal(isIdle(state, sec(400)), true);
    });

    it('sends none without a prior alert: no incident, or all its failures silenced', () => {
      const state = emptyNoiseState();
      assert.deepEqual(admitItem(state, success(settings, 1), sec(1), ids), []);
      admitItem(state, alert(settings, failed(2), { silencedBy: 'sil_night' }), sec(2), ids);
      admitItem(state, alert(settings, failed(3), { silencedBy: 'sil_night' }), sec(3), ids);
      assert.deepEqual(admitItem(state, success(settings, 4), sec(4), ids), []);
      assert.equal(state.incident, null);
      // the silenced count is still told by the next alert
      assert.equal(only(admitItem(state, alert(settings, failed(5)), sec(5), ids), 'send').noise?.silenced, 2);
    });

    it('sends the pending digest of the failures before the recovery, and keeps other groups waiting', () => {
      const grouped: NoiseSettings = { ...settings, grouping: grouping(30, 300) };
      const state = emptyNoiseState();
      admitItem(state, alert(grouped, failed(0)), sec(0), ids);
      admitItem(state, alert(grouped, failed(5)), sec(5), ids);
      const paused = { ...failed(6), type: 'run.paused' as const };
      admitItem(state, alert(grouped, paused, { condition: 'manual_intervention' }), sec(6), ids);
      const actions = admitItem(state, success(grouped, 10), sec(10), ids);
      assert.deepEqual(brief(actions), [`digest ${digestId(1)} #1 evt_0,evt_5`, 'recovery dlv-cfg_1-evt_0-recovered']);
      assert.deepEqual(brief(dueActions(state, sec(36), ids)), [`digest ${digestId(2)} #1 evt_6`]);
      assert.deepEqual(dueActions(state, sec(310), ids), [], 'the flushed failure group closes at its interval');
      assert.deepEqual(Object.keys(state.groups), ['manual_intervention|wf_orders|createContact']);
    });

    it('a grouped incident whose digest went out recovers once; a delay alert opens an incident too', () => {
      const state = emptyNoiseState();
      const started = { ...failed(0), type: 'run.started' as const, error: undefined };
      admitItem(state, alert(settings, started, { condition: 'delay', deliveryId: 'dlv-cfg_1-run_0-delay', watch: true }), sec(0), ids);
      assert.equal(only(admitItem(state, success(settings, 90), sec(90), ids), 'recovery').deliveryId, 'dlv-cfg_1-run_0-delay-recovered');
    });

    it('ends an open incident when recovery and repeat are turned off: no recovery for it later', () => {
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      admitItem(state, alert(NOISE_OFF, failed(10)), sec(10), ids);
      assert.equal(state.incident, null);
      assert.equal(isIdle(state, sec(10)), true);
      assert.deepEqual(admitItem(state, success(settings, 20), sec(20), ids), []);
    });

    it('names the incident by the dedup key of its first alert', () => {
      const deduped: NoiseSettings = { ...settings, dedup: { key: '{{ error.step }}', windowSeconds: 60 } };
      const state = emptyNoiseState();
      admitItem(state, alert(deduped, failed(0)), sec(0), ids);
      assert.equal(only(admitItem(state, success(deduped, 1), sec(1), ids), 'recovery').recovery.incidentKey, 'createContact');
    });
  });

  describe('the steps together, in the documented order', () => {
    it('silence comes before dedup: a silenced alert opens no dedup window', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, dedup: { key: '{{ error.step }}', windowSeconds: 60 } };
      const state = emptyNoiseState();
      assert.equal(only(admitItem(state, alert(settings, failed(0), { silencedBy: 'sil_1' }), sec(0), ids), 'decided').outcome, 'silenced');
      const sent = only(admitItem(state, alert(settings, failed(1)), sec(1), ids), 'send');
      assert.equal(sent.noise?.silenced, 1);
    });

    it('dedup comes before throttle: a duplicate uses no room in the window, a throttled alert opens no dedup window', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, dedup: { key: '{{ error.step }}', windowSeconds: 600 }, throttle: { maxPerWindow: 2, windowSeconds: 60 } };
      const state = emptyNoiseState();
      const step = (n: number, s: string) => failed(n, n, { error: { step: s } });
      const outcomes = [step(0, 'a'), step(1, 'a'), step(2, 'b'), step(3, 'c'), step(4, 'c')].map((e, n) => admitItem(state, alert(settings, e), sec(n), ids));
      assert.deepEqual(outcomes.map((a) => brief(a)[0]), ['send evt_0', 'deduplicated evt_1', 'send evt_2', 'throttled evt_3', 'throttled evt_4']);
      assert.equal(only(outcomes[2], 'send').noise?.deduplicated, 1);
      // key c was never let through: the next window sends it, telling the two throttled
      const next = only(admitItem(state, alert(settings, step(60, 'c')), sec(60), ids), 'send');
      assert.deepEqual(next.noise, { silenced: 0, deduplicated: 0, throttled: 2, repeatSuppressed: 0, since: at(3) });
    });

    it('throttle comes before grouping: a throttled event is in no digest, and the digest tells the count', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, throttle: { maxPerWindow: 3, windowSeconds: 3600 }, grouping: grouping(30, 300) };
      const state = emptyNoiseState();
      const outcomes = [0, 1, 2, 3, 4].map((n) => brief(admitItem(state, alert(settings, failed(n)), sec(n), ids))[0]);
      assert.deepEqual(outcomes, ['grouped evt_0', 'grouped evt_1', 'grouped evt_2', 'throttled evt_3', 'throttled evt_4']);
      const digest = only(dueActions(state, sec(30), ids), 'digest');
      assert.deepEqual(digest.group.events.map((e) => e.id), ['evt_0', 'evt_1', 'evt_2']);
      assert.deepEqual(digest.noise, { silenced: 0, deduplicated: 0, throttled: 2, repeatSuppressed: 0, since: at(3) });
    });

    it('repeat after a digest: later failures are held back until the interval, then grouped again', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, repeatIntervalSeconds: 3600, recovery: true, grouping: grouping(30, 300) };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      assert.equal(only(admitItem(state, alert(settings, failed(10)), sec(10), ids), 'decided').outcome, 'grouped', 'not yet notified: into the digest');
      dueActions(state, sec(30), ids);
      assert.equal(only(admitItem(state, alert(settings, failed(40)), sec(40), ids), 'decided').outcome, 'repeat_suppressed');
      assert.equal(only(admitItem(state, alert(settings, failed(3630)), sec(3630), ids), 'decided').outcome, 'grouped');
      const [digest, recovery] = admitItem(state, success(settings, 3640), sec(3640), ids);
      assert.equal(digest.kind === 'digest' && digest.noise?.repeatSuppressed, 1);
      assert.equal(recovery.kind === 'recovery' && recovery.recovery.failures, 4);
    });

    it('continues as new: a state through JSON decides exactly as the one kept in memory', () => {
      const settings: NoiseSettings = {
        grouping: grouping(5, 30, 4), recovery: true, throttle: { maxPerWindow: 8, windowSeconds: 60 },
        dedup: { key: '{{ run.id }}', windowSeconds: 120 }, repeatIntervalSeconds: null,
      };
      const script: [number, NoiseItem | null][] = [];
      for (let n = 0; n < 40; n++) {
        const event = failed(n, n, { error: { step: n % 3 ? 'createContact' : 'chargeCard' } });
        script.push([n, alert(settings, event, { dedupKey: `key_${n % 25}`, silencedBy: n % 11 === 10 ? 'sil_x' : null })], [n + 0.5, null]);
      }
      script.push([41, success(settings, 41)], [200, null]);
      const run = (throughJson: boolean) => {
        let state: NoiseState = emptyNoiseState();
        const out: NoiseAction[][] = [];
        for (const [s, item] of script) {
          if (throughJson) state = JSON.parse(JSON.stringify(state)) as NoiseState;
          out.push(item ? admitItem(state, item, sec(s), ids) : dueActions(state, sec(s), ids));
        }
        return { out: JSON.parse(JSON.stringify(out)) as unknown, state };
      };
      const kept = run(false);
      const carried = run(true);
      assert.deepEqual(carried.out, kept.out);
      assert.deepEqual(carried.state, kept.state);
      const kinds: string[] = (kept.out as NoiseAction[][]).flat().map((a) => (a.kind === 'decided' ? a.outcome : a.kind));
      for (const kind of ['grouped', 'deduplicated', 'throttled', 'silenced', 'digest', 'recovery']) assert.ok(kinds.includes(kind), `the script exercises ${kind}`);
    });
  });

  describe('nextWakeMs and isIdle', () => {
    it('an empty pipeline waits for nothing and is idle', () => {
      const state = emptyNoiseState();
      assert.equal(nextWakeMs(state), undefined);
      assert.equal(isIdle(state, T0), true);
      assert.deepEqual(dueActions(state, T0, ids), []);
    });

    it('wakes for the earliest of group flushes and window ends, and is idle when they are over', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, grouping: grouping(30, 300), throttle: { maxPerWindow: 5, windowSeconds: 20 }, dedup: { key: 'k', windowSeconds: 90 } };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0), { dedupKey: 'k' }), sec(0), ids);
      assert.equal(nextWakeMs(state), sec(20));
      dueActions(state, sec(20), ids);
      assert.equal(nextWakeMs(state), sec(30));
      dueActions(state, sec(30), ids);
      assert.equal(nextWakeMs(state), sec(90));
      dueActions(state, sec(90), ids);
      assert.equal(nextWakeMs(state), sec(330));
      assert.equal(isIdle(state, sec(330)), false, 'the group still waits for its interval');
      dueActions(state, sec(330), ids);
      assert.equal(nextWakeMs(state), undefined);
      assert.equal(isIdle(state, sec(330)), true);
    });

    it('is not idle while an incident is open, and is again once it ended', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      assert.equal(nextWakeMs(state), undefined, 'an incident waits for a run, not for time');
      assert.equal(isIdle(state, sec(10_000)), false);
      admitItem(state, success(settings, 10_001), sec(10_001), ids);
      assert.equal(isIdle(state, sec(10_001)), true);
    });
  });

  describe('incidents end where their events say, and leave nothing behind', () => {
    it('a recovery names the deliveries it must come after: the alerts and digests of its incident that went out, the digests flushed with it included', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      const paused = { ...failed(1), type: 'run.paused' as const };
      admitItem(state, alert(settings, paused, { condition: 'manual_intervention' }), sec(1), ids);
      admitItem(state, alert(settings, failed(2)), sec(2), ids);
      const grouped: NoiseSettings = { ...settings, grouping: grouping(30, 300) };
      admitItem(state, alert(grouped, failed(3)), sec(3), ids);
      const actions = admitItem(state, success(grouped, 10), sec(10), ids);
      assert.deepEqual(brief(actions), [`digest ${digestId(1)} #1 evt_3`, 'recovery dlv-cfg_1-evt_0-recovered']);
      const recovery = only(actions.slice(1), 'recovery');
      // the paused run's alert is not the incident's
      assert.deepEqual(recovery.after, ['dlv-cfg_1-evt_0', 'dlv-cfg_1-evt_2', digestId(1)]);
    });

    it('keeps the last INCIDENT_DELIVERIES_MAX of them', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };
      const state = emptyNoiseState();
      const n = INCIDENT_DELIVERIES_MAX + 7;
      for (let k = 0; k < n; k++) admitItem(state, alert(settings, failed(k)), sec(k), ids);
      const recovery = only(admitItem(state, success(settings, n), sec(n), ids), 'recovery');
      assert.deepEqual(recovery.after, Array.from({ length: INCIDENT_DELIVERIES_MAX }, (_, k) => `dlv-cfg_1-evt_${k + 7}`));
    });

    it('a new incident after a recovery is notified at once: its dedup, throttle and failing groups closed with the last one', () => {
      const settings: NoiseSettings = {
        ...NOISE_OFF, recovery: true, dedup: { key: '{{ error.step }}', windowSeconds: 86_400 }, throttle: { maxPerWindow: 1, windowSeconds: 86_400 },
      };
      const state = emptyNoiseState();
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(0)), sec(0), ids)), ['send evt_0']);
      only(admitItem(state, success(settings, 10), sec(10), ids), 'recovery');
      assert.deepEqual(brief(admitItem(state, alert(settings, failed(20)), sec(20), ids)), ['send evt_20'], 'not deduplicated nor throttled by the last incident');

      const grouped: NoiseSettings = { ...settings, throttle: null, grouping: grouping(30, 300) };
      admitItem(state, alert(grouped, failed(30, 30, { error: { step: 'chargeCard' } })), sec(30), ids);
      admitItem(state, alert(grouped, failed(31, 31, { error: { step: 'chargeCard' } })), sec(31), ids);
      assert.deepEqual(brief(admitItem(state, success(grouped, 40), sec(40), ids)), [`digest ${digestId(1)} #1 evt_30`, 'recovery dlv-cfg_1-evt_20-recovered']);
      assert.deepEqual(state.groups, {}, 'the flushed failing group is closed');
      // the next failure opens its group again: it waits waitSeconds, not the interval of the last incident's digest
      assert.equal(only(admitItem(state, alert(grouped, failed(50, 50, { error: { step: 'chargeCard' } })), sec(50), ids), 'decided').outcome, 'grouped');
      assert.deepEqual(brief(dueActions(state, sec(80), ids)), [`digest ${digestId(2)} #1 evt_50`]);
    });

    it('a successful run whose event is older than the latest failure ends nothing: it is taken in and ignored', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      admitItem(state, alert(settings, failed(100)), sec(101), ids);
      // run ok_50 succeeded at 50 s, before the failure at 100 s, but came later
      assert.deepEqual(admitItem(state, success(settings, 50), sec(102), ids), []);
      assert.equal(state.incident?.failures, 2, 'the incident is still open');
      assert.deepEqual(admitItem(state, success(settings, 50), sec(103), ids), [], 'and the same run is not taken in twice');
      const recovery = only(admitItem(state, success(settings, 100), sec(104), ids), 'recovery');
      assert.deepEqual(recovery.recovery, { failingSince: at(0), recoveredAt: at(100), failingForMs: 100_000, failures: 2, incidentKey: 'wf_orders' });
    });
  });

  describe('a pipeline can end', () => {
    it('lets untold held-back counts go NOISE_LINGER_MS after the last of them, when nothing else will tell them', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, throttle: { maxPerWindow: 1, windowSeconds: 60 } };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      for (let n = 1; n <= 5; n++) assert.equal(only(admitItem(state, alert(settings, failed(n)), sec(n), ids), 'decided').outcome, 'throttled');
      // the outage is over: no alert comes to tell the five
      dueActions(state, sec(60), ids);
      assert.equal(isIdle(state, sec(60)), false, 'the counts wait for the next alert a while');
      assert.equal(nextWakeMs(state), sec(5) + NOISE_LINGER_MS);
      assert.equal(isIdle(state, sec(5) + NOISE_LINGER_MS), true);
      dueActions(state, sec(5) + NOISE_LINGER_MS, ids);
      assert.equal(state.heldBack, null);
      assert.equal(nextWakeMs(state), undefined);
      assert.equal(only(admitItem(state, alert(settings, failed(9000)), sec(9000), ids), 'send').noise, null);
    });

    it('silenced failures and then a successful run: the pipeline ends; an open incident keeps it', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, recovery: true };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0), { silencedBy: 'sil_night' }), sec(0), ids);
      assert.equal(isIdle(state, sec(0) + 2 * NOISE_LINGER_MS), false, 'the incident waits for its successful run');
      assert.equal(nextWakeMs(state), undefined);
      assert.deepEqual(admitItem(state, success(settings, 10), sec(10), ids), []);
      assert.equal(isIdle(state, sec(10)), false);
      assert.equal(nextWakeMs(state), sec(0) + NOISE_LINGER_MS);
      assert.equal(isIdle(state, sec(0) + NOISE_LINGER_MS), true);
    });

    it('a group still to send keeps the counts: its digest tells them', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, throttle: { maxPerWindow: 1, windowSeconds: 60 }, grouping: grouping(7200, 86_400) };
      const state = emptyNoiseState();
      admitItem(state, alert(settings, failed(0)), sec(0), ids);
      admitItem(state, alert(settings, failed(1)), sec(1), ids);
      assert.deepEqual(dueActions(state, sec(1) + NOISE_LINGER_MS + 1000, ids), []);
      assert.equal(isIdle(state, sec(1) + NOISE_LINGER_MS + 1000), false);
      assert.equal(only(dueActions(state, sec(7200), ids), 'digest').noise?.throttled, 1);
    });
  });

  it('says "1 alert", not "1 alerts"', () => {
    const settings: NoiseSettings = { ...NOISE_OFF, throttle: { maxPerWindow: 1, windowSeconds: 60 } };
    const state = emptyNoiseState();
    admitItem(state, alert(settings, failed(0)), sec(0), ids);
    assert.equal(only(admitItem(state, alert(settings, failed(1)), sec(1), ids), 'decided').note, `throttled: 1 alert already in this window (at most 1 per 60 s, until ${at(60)})`);
  });

  describe('bounded state and digests (one Temporal payload each)', () => {
    const MiB = 1024 * 1024;

    it('hashes with FNV-1a (64 bits), and keeps a long key as its beginning and that hash', () => {
      assert.equal(fnv1a64(''), 'cbf29ce484222325');
      assert.equal(fnv1a64('a'), 'af63dc4c8601ec8c');
      assert.equal(fnv1a64('foobar'), '85944171f73967e8');
      assert.equal(compactKey('createContact'), 'createContact');
      const long = `${'m'.repeat(300)}:1`;
      const key = compactKey(long);
      assert.equal(key, `${'m'.repeat(KEY_MAX_BYTES - 20)}…#${fnv1a64(long)}`);
      assert.equal(jsonBytes(key) - 2, KEY_MAX_BYTES);
      assert.notEqual(compactKey(`${'m'.repeat(300)}:2`), key, 'the same beginning, another key');
      assert.equal(compactKey(key), key, 'a compacted key stays as it is');
      // escapes and multi-byte characters count as the payload holds them
      for (const odd of ['"\\'.repeat(150), '\u0001'.repeat(100), '😀'.repeat(100), `${'é'.repeat(99)}😀`]) {
        assert.ok(jsonBytes(compactKey(odd)) - 2 <= KEY_MAX_BYTES, `${jsonBytes(compactKey(odd))} bytes`);
        assert.equal(compactKey(compactKey(odd)), compactKey(odd));
      }
      assert.ok(!compactKey('😀'.repeat(100)).includes('\ud83d…'), 'a surrogate pair is not split');
    });

    it('holds at most DEDUP_WINDOWS_MAX dedup windows, of short keys: beyond, the oldest closes early', () => {
      // measured before: a key of ~2 KB messages with a 1-day window passed 2 MiB after 936 alerts
      const settings: NoiseSettings = { ...NOISE_OFF, dedup: { key: '{{ error.message }}', windowSeconds: 86_400 } };
      const state = emptyNoiseState();
      const message = (n: number) => `${n}: ${'timeout talking to the CRM '.repeat(80)}`;
      for (let n = 0; n < DEDUP_WINDOWS_MAX + 500; n++) {
        const event = failed(n, n, { error: { message: message(n) } });
        assert.equal(brief(admitItem(state, alert(settings, event, { dedupKey: message(n) }), sec(n), ids))[0], `send evt_${n}`);
      }
      assert.equal(Object.keys(state.dedup).length, DEDUP_WINDOWS_MAX);
      assert.ok(Object.keys(state.dedup).every((k) => jsonBytes(k) - 2 <= KEY_MAX_BYTES));
      // key 0's window closed early; key 600's is still open
      const again = (n: number, s: number) => brief(admitItem(state, alert(settings, failed(100_000 + n, s, { error: { message: message(n) } }), { dedupKey: message(n) }), sec(s), ids))[0];
      assert.equal(again(0, 2000), `send evt_100000`);
      assert.equal(again(600, 2001), `deduplicated evt_100600`);
      assert.ok(jsonBytes(state) < 0.5 * MiB, `${jsonBytes(state)} bytes`);
    });

    it(`holds at most GROUPS_MAX open groups: the alerts of more go into their condition's overflow group`, () => {
      // measured before: grouping by message with distinct ~450-character messages passed 2 MiB after 605 open groups
      const settings: NoiseSettings = { ...NOISE_OFF, grouping: { by: ['workflow.id', 'error.message'], waitSeconds: 30, intervalSeconds: 300, maxEvents: 100 } };
      const state = emptyNoiseState();
      const notes: string[] = [];
      for (let n = 0; n < GROUPS_MAX + 100; n++) {
        const event = failed(n, n / 100, { error: { message: `${n}: ${'x'.repeat(450)}` } });
        notes.push(only(admitItem(state, alert(settings, event), sec(n / 100), ids), 'decided').note);
      }
      assert.equal(Object.keys(state.groups).length, GROUPS_MAX + 1);
      const overflow = state.groups[overflowGroupKey('failure')];
      assert.equal(overflow.buffer?.count, 100);
      assert.equal(notes[GROUPS_MAX], `grouped into digest ${digestId(GROUPS_MAX + 1)} (group failure|…other groups)`);
      assert.ok(Object.keys(state.groups).every((k) => jsonBytes(k) - 2 <= KEY_MAX_BYTES));
      const digests = dueActions(state, sec(40), ids);
      assert.equal(digests.length, GROUPS_MAX + 1);
      const last = digests.at(-1)!;
      assert.ok(last.kind === 'digest' && last.group.key === 'failure|…other groups' && last.group.count === 100);
      // a group that closes makes room again
      assert.deepEqual(dueActions(state, sec(340), ids), []);
      const note = only(admitItem(state, alert(settings, failed(9999, 400, { error: { message: 'new' } })), sec(400), ids), 'decided').note;
      assert.match(note, /\(group failure\|wf_orders\|new\)$/);
    });

    it(`keeps a digest's newest event whole, without its data when that is over NEWEST_DATA_MAX`, () => {
      const settings: NoiseSettings = { ...NOISE_OFF, grouping: grouping(30, 300) };
      const state = emptyNoiseState();
      const small = { blob: 'd'.repeat(NEWEST_DATA_MAX - 100) };
      admitItem(state, alert(settings, failed(1, 1, { data: small })), sec(1), ids);
      assert.deepEqual(only(dueActions(state, sec(31), ids), 'digest').event.data, small);
      const big = failed(2, 40, { data: { blob: 'd'.repeat(1_000_000) } });
      admitItem(state, alert(settings, big), sec(40), ids);
      const { data: _data, ...withoutData } = big;
      assert.deepEqual(only(dueActions(state, sec(331), ids), 'digest').event, withoutData);
    });

    it('lists 1000 events of 2 KB messages whole in one digest, well under 600 KB', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, grouping: grouping(5, 30, 1000) };
      const state = emptyNoiseState();
      for (let n = 0; n < 1000; n++) admitItem(state, alert(settings, failed(n, n / 100, { error: { message: `${n} ${'z'.repeat(2000)}`, step: 'createContact', code: 'E_HTTP' } })), sec(n / 100), ids);
      const digest = only(dueActions(state, sec(10), ids), 'digest');
      assert.equal(digest.group.events.length, 1000);
      assert.equal(digest.group.more, 0);
      assert.ok(jsonBytes(digest) < 500 * 1024, `${jsonBytes(digest)} bytes`);
    });

    it('keeps a digest of 1000 events at their caps under 1 MiB: it lists the oldest that fit and counts the rest', () => {
      const settings: NoiseSettings = { ...NOISE_OFF, grouping: { by: ['workflow.id'], waitSeconds: 5, intervalSeconds: 30, maxEvents: 1000 } };
      const state = emptyNoiseState();
      const pad = (text: string, length: number) => `${text}${'_'.repeat(length - text.length)}`;
      for (let n = 0; n < 1000; n++) {
        const event = failed(n, n / 100, {
          id: pad(`evt_${n}`, 200), workflowId: pad('wf', 200), runId: pad(`run_${n}`, 200),
          error: { message: '"\u0001😀'.repeat(2500), step: '"'.repeat(500), code: '\u0002'.repeat(200) }, data: { blob: 'd'.repeat(1_000_000) },
        });
        admitItem(state, alert(settings, event), sec(n / 100), ids);
      }
      const digest = only(dueActions(state, sec(10), ids), 'digest');
      assert.ok(jsonBytes(digest) <= MiB, `${jsonBytes(digest)} bytes`);
      assert.equal(digest.group.count, 1000);
      assert.ok(digest.group.events.length > 100 && digest.group.more === 1000 - digest.group.events.length);
      assert.deepEqual(digest.group.events.map((e) => e.id), Array.from({ length: digest.group.events.length }, (_, n) => pad(`evt_${n}`, 200)));
      assert.equal(digest.event.id, pad('evt_999', 200));
      assert.equal(digest.event.data, undefined);
    });

    it('stays under 1.5 MiB of state and 1 MiB a digest with everything at its cap', function () {
      this.timeout(60_000);
      // every id at its 200 characters, messages of 10 000 (some all escapes), steps of 500, data of 15 KB and 20 KB,
      // keyed and grouped by the message: more ids, dedup keys and groups than are kept
      const settings: NoiseSettings = {
        grouping: { by: ['workflow.id', 'error.message'], waitSeconds: 3600, intervalSeconds: 86_400, maxEvents: 1000 },
        dedup: { key: '{{ error.message }}', windowSeconds: 7 * 86_400 }, recovery: true, throttle: null, repeatIntervalSeconds: null,
      };
      const pad = (text: string, length: number) => `${text}${'_'.repeat(length - text.length)}`;
      const workflowId = pad('wf', 200);
      const plain = 'm'.repeat(10_000);
      const escapes = '"\u0001\\é😀'.repeat(2000);
      const smallData = { blob: 'd'.repeat(15_000) };
      const bigData = { blob: 'd'.repeat(20_000) };
      const event = (n: number, s: number): ExecutionEvent => ({
        id: pad(`evt_${n}`, 200), type: 'run.failed', workflowId, runId: pad(`run_${n}`, 200), occurredAt: at(s),
        workflow: { name: 'n'.repeat(500), version: 'v'.repeat(100) },
        run: { startedAt: at(s - 1), finishedAt: at(s) },
        error: { message: `${n}:${(n % 3 ? plain : escapes).slice(0, 10_000 - 8)}`, step: (n % 2 ? 's' : '"').repeat(500), code: (n % 2 ? 'c' : '\u0002').repeat(200) },
        data: n % 2 ? smallData : bigData,
      });
      const item = (n: number, s: number) => {
        const e = event(n, s);
        return alert(settings, e, { deliveryId: `dlv-cfg_1-${e.id}`, dedupKey: e.error!.message! });
      };
      const state = emptyNoiseState();
      // an incident with more digests out than it remembers
      for (let n = 0; n < INCIDENT_DELIVERIES_MAX + 10; n++) admitItem(state, item(n, 0), sec(0), ids);
      assert.equal(dueActions(state, sec(3600), ids).length, INCIDENT_DELIVERIES_MAX + 10);
      let largest = 0;
      for (let n = 1000; n < 1000 + SEEN_IDS_MAX + 2000; n++) {
        admitItem(state, item(n, 3600 + n / 1000), sec(3600 + n / 1000), ids);
        if (n % 1000 === 0) largest = Math.max(largest, jsonBytes(state));
      }
      const bytes = jsonBytes(state);
      largest = Math.max(largest, bytes);
      assert.equal(state.seenCount, SEEN_IDS_MAX);
      assert.equal(Object.keys(state.dedup).length, DEDUP_WINDOWS_MAX);
      assert.equal(Object.keys(state.groups).length, GROUPS_MAX + 1);
      assert.equal(state.incident?.deliveries.length, INCIDENT_DELIVERIES_MAX);
      assert.ok(largest <= 1.5 * MiB, `state: ${largest} bytes`);
      // the state decides the same after a trip through JSON
      assert.deepEqual(JSON.parse(JSON.stringify(state)), state);

      const digests = dueActions(state, sec(3600 + 86_400), ids);
      // the first digests' groups had nothing more: they close
      assert.equal(digests.length, GROUPS_MAX + 1 - (INCIDENT_DELIVERIES_MAX + 10));
      const sizes = digests.map((d) => jsonBytes(d));
      assert.ok(Math.max(...sizes) <= 1 * MiB, `largest digest: ${Math.max(...sizes)} bytes`);
      const overflow = digests.find((d) => d.kind === 'digest' && d.group.key === overflowGroupKey('failure'));
      assert.ok(overflow?.kind === 'digest' && overflow.group.count > 10_000 && overflow.group.events.length > 0);
    });
  });
});
