import assert from 'node:assert/strict';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import type { DeliveryRef, ExecutionEvent } from '../lib/schemas';
import { claimDueWatches, finishWatch, markWatchesStarted, openWatch, settleWake } from '../store/watches';
import { STORE_KINDS, useStore } from './support/stores';

/**
 * Delay watches as rows, in the store (store/watches.ts): the run.started transaction, the finishing
 * statement, the watcher's claim and its wake under the watcher row's lock, on both stores; and the
 * lock order proved with held transactions on PostgreSQL (PGlite runs one transaction at a time).
 */
const keyring = parseKeyring(newKeySpec('k1'));
const T0 = Date.parse('2026-12-01T10:00:00Z');
let n = 0;

function watchOf(configId: string, startMs: number) {
  const runId = `run_${++n}`;
  const ref: DeliveryRef = { deliveryId: `dlv-${configId}-${runId}-delay`, projectId: 'p1', configId, workflowId: 'wf', runId, eventId: `evt_${runId}`, condition: 'delay' };
  const event: ExecutionEvent = { id: ref.eventId, type: 'run.started', workflowId: 'wf', runId, occurredAt: new Date(startMs).toISOString() };
  const finish = (atMs: number): ExecutionEvent => ({ id: `evt_done_${runId}`, type: 'run.succeeded', workflowId: 'wf', runId, occurredAt: new Date(atMs).toISOString() });
  return { ref, event, finish };
}

/** A promise and its resolver: a gate a hook waits on, or a mark a hook sets. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

for (const kind of STORE_KINDS) {
  describe(`delay watches as rows in the store (${kind})`, () => {
    const store = useStore(kind);
    const status = async (deliveryId: string) => (await store.db.query<{ status: string }>('SELECT status FROM alert_deliveries WHERE delivery_id = $1', [deliveryId]))[0]?.status;

    it('a run.started opens a watch and wakes a watcher asleep on nothing; the next, later deadline needs no wake', async () => {
      const a = watchOf('c1', T0);
      const first = await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0);
      assert.deepEqual(first, { duplicate: false, wake: true, deadlineMs: T0 + 60_000 });
      assert.equal((await settleWake(store.db, 'c1', 'p1')).wakeAtMs, T0 + 60_000);
      const b = watchOf('c1', T0 + 10);
      assert.equal((await openWatch(store.db, keyring, b.ref, b.event, T0 + 60_010, T0 + 10)).wake, false);
      assert.equal(await status(a.ref.deliveryId), 'scheduled');
    });

    it(`a new watch of a config with a watcher row is ${kind === 'pglite' ? 'one statement on PGlite (one transaction at a time there)' : 'one transaction on PostgreSQL (the lock order)'}; a duplicate still decides as before`, async () => {
      const a = watchOf('c1b', T0);
      await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0);
      await settleWake(store.db, 'c1b', 'p1');
      const calls = { query: 0, transaction: 0 };
      const spy: typeof store.db = Object.create(store.db);
      Object.assign(spy, {
        query: (sql: string, params?: unknown[]) => (calls.query++, store.db.query(sql, params)),
        transaction: (fn: Parameters<typeof store.db.transaction>[0]) => (calls.transaction++, store.db.transaction(fn)),
      });
      const b = watchOf('c1b', T0 + 10);
      assert.deepEqual(await openWatch(spy, keyring, b.ref, b.event, T0 + 60_010, T0 + 10), { duplicate: false, wake: false, deadlineMs: T0 + 60_010 });
      assert.deepEqual(calls, kind === 'pglite' ? { query: 1, transaction: 0 } : { query: 0, transaction: 1 });
      assert.equal(await status(b.ref.deliveryId), 'scheduled');
      // an earlier deadline than the committed wake still wakes it on the short path
      const c = watchOf('c1b', T0 + 20);
      assert.equal((await openWatch(spy, keyring, c.ref, c.event, T0 + 30_000, T0 + 20)).wake, true);
      // the same run.started again: a duplicate, decided by the transaction
      assert.deepEqual(await openWatch(spy, keyring, b.ref, b.event, T0 + 60_010, T0 + 30), { duplicate: true, wake: false, deadlineMs: T0 + 60_010 });
    });

    it(`watches opened and finished side by side ${kind === 'pglite' ? 'share one statement each on PGlite (group commit)' : 'each decide on their own on PostgreSQL'}, with each call's own answer; two finishes of one run do not share one`, async () => {
      const first = watchOf('c1c', T0);
      await openWatch(store.db, keyring, first.ref, first.event, T0 + 60_000, T0);
      await settleWake(store.db, 'c1c', 'p1');
      const calls: string[] = [];
      const spy: typeof store.db = Object.create(store.db);
      Object.assign(spy, { query: (sql: string, params?: unknown[]) => (calls.push(sql), store.db.query(sql, params)) });
      const runs = Array.from({ length: 12 }, (_, i) => watchOf('c1c', T0 + 100 + i));
      // the fourth run's deadline is before the committed wake: that one, and only it, wakes the watcher
      const opened = await Promise.all(runs.map((r, i) => openWatch(spy, keyring, r.ref, r.event, i === 3 ? T0 + 30_000 : T0 + 60_100 + i, T0 + 100 + i)));
      assert.deepEqual(opened.map((o) => o.wake), runs.map((_, i) => i === 3));
      assert.ok(opened.every((o) => !o.duplicate));
      if (kind === 'pglite') assert.equal(calls.length, 1, `one statement for 12 run.started, not ${calls.length}`);
      calls.length = 0;
      // run 0 in time, run 1 after its deadline, run 2 twice side by side, and a finish with no run.started yet
      const early = watchOf('c1c', T0);
      const finishing = [
        finishWatch(spy, keyring, runs[0].ref, runs[0].finish(T0 + 1_000), T0 + 1_000),
        finishWatch(spy, keyring, runs[1].ref, runs[1].finish(T0 + 70_000), T0 + 70_000),
        finishWatch(spy, keyring, runs[2].ref, runs[2].finish(T0 + 2_000), T0 + 2_000),
        finishWatch(spy, keyring, runs[2].ref, runs[2].finish(T0 + 2_000), T0 + 2_000),
        finishWatch(spy, keyring, early.ref, early.finish(T0 + 500), T0 + 500),
      ];
      const finished = await Promise.all(finishing);
      // of the two finishes of run 2: on PGlite the first suppressed it, the repeat waits for a statement
      // of its own and reports nothing new. On PostgreSQL the two run at once and either may come
      // first; the second, blocked on the row, also reports it suppressed (its statement's snapshot
      // read the status before the first committed): the `suppressed` metric counts such a repeat twice
      const repeat = kind === 'pglite' ? [true, false] : [finished[2].suppressed, finished[3].suppressed];
      assert.ok(repeat.includes(true));
      assert.deepEqual(finished, [
        { status: 'suppressed', watchDeadlineMs: T0 + 60_100, created: false, suppressed: true },
        { status: 'scheduled', watchDeadlineMs: T0 + 60_101, created: false, suppressed: false },
        { status: 'suppressed', watchDeadlineMs: T0 + 60_102, created: false, suppressed: repeat[0] },
        { status: 'suppressed', watchDeadlineMs: T0 + 60_102, created: false, suppressed: repeat[1] },
        { status: 'suppressed', watchDeadlineMs: null, created: true, suppressed: false },
      ]);
      if (kind === 'pglite') assert.equal(calls.length, 2, `two statements for five finishing events (one a repeat), not ${calls.length}`);
      assert.equal(await status(runs[1].ref.deliveryId), 'scheduled');
      assert.equal(await status(runs[4].ref.deliveryId), 'scheduled');
    });

    it('a watch whose row the store refuses fails its own call only: the others of its statement are committed', async () => {
      const first = watchOf('c1d', T0);
      await openWatch(store.db, keyring, first.ref, first.event, T0 + 60_000, T0);
      await settleWake(store.db, 'c1d', 'p1');
      const good = [watchOf('c1d', T0 + 1), watchOf('c1d', T0 + 2)];
      const bad = watchOf('c1d', T0 + 3);
      // text with a NUL: PostgreSQL (and PGlite) refuse it, whatever the API let through
      bad.ref.runId = 'run\u0000nul';
      const results = await Promise.allSettled([good[0], bad, good[1]].map((r) => openWatch(store.db, keyring, r.ref, r.event, T0 + 60_010, T0 + 10)));
      assert.deepEqual(results.map((x) => x.status), ['fulfilled', 'rejected', 'fulfilled']);
      for (const r of good) assert.equal(await status(r.ref.deliveryId), 'scheduled');
      assert.equal(await status(bad.ref.deliveryId), undefined);
      const finishes = await Promise.allSettled([good[0], bad, good[1]].map((r) => finishWatch(store.db, keyring, r.ref, r.finish(T0 + 20), T0 + 20)));
      assert.deepEqual(finishes.map((x) => x.status), ['fulfilled', 'rejected', 'fulfilled']);
      for (const r of good) assert.equal(await status(r.ref.deliveryId), 'suppressed');
    });

    it('a repeated run.started is a duplicate that still wakes the watcher when it was never told (a crash between commit and signal)', async () => {
      const a = watchOf('c2', T0);
      await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0);
      // the signal never went: wake_at is still NULL, so the event sent again wakes it
      assert.deepEqual(await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0 + 5), { duplicate: true, wake: true, deadlineMs: T0 + 60_000 });
      await settleWake(store.db, 'c2', 'p1');
      assert.deepEqual(await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0 + 6), { duplicate: true, wake: false, deadlineMs: T0 + 60_000 });
    });

    it('a finish at or before the deadline suppresses the watch; after it, the watch stays open and the claim finds it late (decided by time)', async () => {
      const inTime = watchOf('c3', T0);
      const late = watchOf('c3', T0);
      await openWatch(store.db, keyring, inTime.ref, inTime.event, T0 + 60_000, T0);
      await openWatch(store.db, keyring, late.ref, late.event, T0 + 60_000, T0);
      const f1 = await finishWatch(store.db, keyring, inTime.ref, inTime.finish(T0 + 60_000), T0 + 60_000);
      assert.deepEqual(f1, { status: 'suppressed', watchDeadlineMs: T0 + 60_000, created: false, suppressed: true });
      // the finishing event sent again changes nothing
      assert.equal((await finishWatch(store.db, keyring, inTime.ref, inTime.finish(T0 + 60_000), T0 + 60_000)).suppressed, false);
      const f2 = await finishWatch(store.db, keyring, late.ref, late.finish(T0 + 60_001), T0 + 60_001);
      assert.equal(f2.status, 'scheduled');
      // the watcher is late (its worker was held): it claims at a later clock than the finish; the finish was after the deadline
      const claimed = await claimDueWatches(store.db, keyring, 'c3', T0 + 90_000, 100);
      assert.deepEqual(claimed.late.map((w) => w.ref.deliveryId), [late.ref.deliveryId]);
      assert.equal(claimed.late[0].event.id, late.event.id);
      assert.equal(await status(inTime.ref.deliveryId), 'suppressed');
      // not started yet (a pass cut off): the next claim answers it again; once started, not
      assert.equal((await claimDueWatches(store.db, keyring, 'c3', T0 + 91_000, 100)).late.length, 1);
      await markWatchesStarted(store.db, [late.ref.deliveryId]);
      assert.equal((await claimDueWatches(store.db, keyring, 'c3', T0 + 92_000, 100)).late.length, 0);
      // a finish recorded after the watch fired changes nothing (the alert is going out)
      assert.equal((await finishWatch(store.db, keyring, late.ref, late.finish(T0 + 1), T0 + 1)).status, 'scheduled');
    });

    it('the claim takes only deadlines passed at its clock, and the wake moves on to the next open one', async () => {
      const a = watchOf('c4', T0);
      const b = watchOf('c4', T0 + 1000);
      await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0);
      await openWatch(store.db, keyring, b.ref, b.event, T0 + 61_000, T0 + 1000);
      assert.equal((await claimDueWatches(store.db, keyring, 'c4', T0 + 59_999, 100)).late.length, 0);
      const claimed = await claimDueWatches(store.db, keyring, 'c4', T0 + 60_000, 100);
      assert.deepEqual(claimed.late.map((w) => w.ref.deliveryId), [a.ref.deliveryId]);
      await markWatchesStarted(store.db, [a.ref.deliveryId]);
      assert.deepEqual(await settleWake(store.db, 'c4', 'p1'), { wakeAtMs: T0 + 61_000, open: 1, unstarted: 0 });
      await finishWatch(store.db, keyring, b.ref, b.finish(T0 + 2000), T0 + 2000);
      assert.deepEqual(await settleWake(store.db, 'c4', 'p1'), { wakeAtMs: null, open: 0, unstarted: 0 });
    });

    it('a finishing event before its run.started leaves a suppressed row: the late run.started is a duplicate that wakes nothing', async () => {
      const a = watchOf('c5', T0);
      assert.deepEqual(await finishWatch(store.db, keyring, a.ref, a.finish(T0 + 500), T0 + 500), { status: 'suppressed', watchDeadlineMs: null, created: true, suppressed: false });
      assert.deepEqual(await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0 + 600), { duplicate: true, wake: false, deadlineMs: T0 + 60_000 });
      assert.equal(await status(a.ref.deliveryId), 'suppressed');
      // nothing to watch: no watcher row either (the next run.started of the config creates it)
      assert.deepEqual(await store.db.query(`SELECT config_id FROM delay_watchers WHERE config_id = 'c5'`), []);
      assert.equal((await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0 + 700)).wake, false);
      assert.deepEqual(await store.db.query(`SELECT config_id FROM delay_watchers WHERE config_id = 'c5'`), []);
      const b = watchOf('c5', T0 + 800);
      assert.deepEqual(await openWatch(store.db, keyring, b.ref, b.event, T0 + 60_800, T0 + 800), { duplicate: false, wake: true, deadlineMs: T0 + 60_800 });
      assert.equal((await store.db.query(`SELECT config_id FROM delay_watchers WHERE config_id = 'c5'`)).length, 1);
    });

    it('a finishing event after the deadline stored before its run.started (a batch handled side by side): the run.started opens the watch late, and the claim finds it', async () => {
      const a = watchOf('c5b', T0);
      await finishWatch(store.db, keyring, a.ref, a.finish(T0 + 90_000), T0 + 90_000);
      assert.equal(await status(a.ref.deliveryId), 'suppressed');
      assert.deepEqual(await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0 + 90_100), { duplicate: false, wake: true, deadlineMs: T0 + 60_000 });
      assert.equal(await status(a.ref.deliveryId), 'scheduled');
      const { late } = await claimDueWatches(store.db, keyring, 'c5b', T0 + 90_200, 10);
      assert.deepEqual(late.map((w) => w.ref.deliveryId), [a.ref.deliveryId]);
      // the alert is rendered from the run.started, not the finishing event the row was created with
      assert.equal(late[0].event.type, 'run.started');
    });

    it('an earlier version\'s watch (its row has no deadline) is left to its workflow: the finish reports it scheduled without a deadline', async () => {
      const a = watchOf('c6', T0);
      await store.db.query(
        `INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, key_id, event_sealed)
         VALUES ($1, 'p1', 'c6', 'wf', $2, $3, 'delay', 'scheduled', 'k1', 'x')`,
        [a.ref.deliveryId, a.ref.runId, a.ref.eventId],
      );
      assert.deepEqual(await finishWatch(store.db, keyring, a.ref, a.finish(T0 + 1), T0 + 1), { status: 'scheduled', watchDeadlineMs: null, created: false, suppressed: false });
      assert.equal((await claimDueWatches(store.db, keyring, 'c6', T0 + 10 * 60_000, 100)).late.length, 0);
    });

    if (kind === 'postgres') {
      describe('the lock order: a run.started whose insert lands while the watcher computes its wake is never missed (held transactions)', () => {
        it('watcher holds the lock, the row is inserted uncommitted, the watcher reads the minimum without it: the run.started reads the new wake and wakes it', async () => {
          // the watcher is committed to wake at 60 s for a run that has since finished in time: at 60 s it
          // finds nothing open, unless it sees the new row; a run.started reading the old wake (60 s,
          // before its deadline) would not signal it, and the new watch would never fire
          const done = watchOf('c7', T0);
          await openWatch(store.db, keyring, done.ref, done.event, T0 + 60_000, T0);
          assert.equal((await settleWake(store.db, 'c7', 'p1')).wakeAtMs, T0 + 60_000);
          await finishWatch(store.db, keyring, done.ref, done.finish(T0 + 1000), T0 + 1000);
          const a = watchOf('c7', T0 + 1000);
          const holdWatcher = gate();
          const locked = gate();
          const inserted = gate();
          const watcher = settleWake(store.db, 'c7', 'p1', { afterLock: async () => { locked.open(); await holdWatcher.opened; } });
          await locked.opened;
          const opening = openWatch(store.db, keyring, a.ref, a.event, T0 + 61_000, T0 + 1000, { afterInsert: async () => inserted.open() });
          await inserted.opened;
          // the row is inserted, not committed; the run.started transaction goes on to the watcher row's lock and waits there
          holdWatcher.open();
          const wake = await watcher;
          assert.equal(wake.wakeAtMs, null, 'the watcher did not see the uncommitted row');
          const opened = await opening;
          assert.equal(opened.wake, true, 'the run.started read the wake the watcher committed, and must wake it');
          // and once woken, the watcher sees it
          assert.equal((await settleWake(store.db, 'c7', 'p1')).wakeAtMs, T0 + 61_000);
        });

        it('the row is inserted, the watcher locks, reads and commits before the run.started reaches the lock: the run.started reads that wake and wakes it', async () => {
          const a = watchOf('c8', T0);
          const holdOpen = gate();
          const inserted = gate();
          const opening = openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0, { afterInsert: async () => { inserted.open(); await holdOpen.opened; } });
          await inserted.opened;
          const wake = await settleWake(store.db, 'c8', 'p1');
          assert.equal(wake.wakeAtMs, null, 'the watcher did not see the uncommitted row');
          holdOpen.open();
          assert.equal((await opening).wake, true);
        });

        it('with an earlier wake committed, a later deadline inserted during the watcher\'s pass needs no signal: the watcher wakes earlier and then sees it', async () => {
          const a = watchOf('c9', T0);
          const b = watchOf('c9', T0 + 1000);
          await openWatch(store.db, keyring, a.ref, a.event, T0 + 60_000, T0);
          const holdWatcher = gate();
          const locked = gate();
          const inserted = gate();
          const watcher = settleWake(store.db, 'c9', 'p1', { afterLock: async () => { locked.open(); await holdWatcher.opened; } });
          await locked.opened;
          const opening = openWatch(store.db, keyring, b.ref, b.event, T0 + 61_000, T0 + 1000, { afterInsert: async () => inserted.open() });
          await inserted.opened;
          holdWatcher.open();
          assert.equal((await watcher).wakeAtMs, T0 + 60_000);
          assert.equal((await opening).wake, false, 'the watcher wakes at 60 s, before this deadline');
          // at 60 s: the first is claimed, and the wake moves to the row inserted during the pass
          await claimDueWatches(store.db, keyring, 'c9', T0 + 60_000, 100);
          assert.equal((await settleWake(store.db, 'c9', 'p1')).wakeAtMs, T0 + 61_000);
        });
      });
    }
  });
}
