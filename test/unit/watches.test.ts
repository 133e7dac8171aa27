import assert from 'node:assert/strict';
import { needsWake, WAKE_OVERDUE_MS } from '../../store/watches';

/** When a run.started must signal its config's DelayWatcher (store/watches.ts needsWake): pure. */
describe('needsWake (delay watches as rows)', () => {
  const now = Date.parse('2026-12-01T10:00:00Z');

  it('wakes a watcher asleep on nothing', () => {
    assert.equal(needsWake(null, now + 60_000, now), true);
  });

  it('wakes a watcher committed to a later wake than this deadline', () => {
    assert.equal(needsWake(now + 61_000, now + 60_000, now), true);
  });

  it('needs no signal when the watcher wakes at or before this deadline (the steady state: deadlines in start order)', () => {
    assert.equal(needsWake(now + 59_000, now + 60_000, now), false);
    assert.equal(needsWake(now + 60_000, now + 60_000, now), false);
    // a wake a little overdue: the watcher is running its pass or its worker is slow; it will read the row
    assert.equal(needsWake(now - WAKE_OVERDUE_MS, now + 60_000, now), false);
  });

  it('signals a watcher whose wake is long overdue (it may be gone): signalWithStart starts it again', () => {
    assert.equal(needsWake(now - WAKE_OVERDUE_MS - 1, now + 60_000, now), true);
  });
});
