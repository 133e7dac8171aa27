import assert from 'node:assert/strict';
import { attributeDuplicates, IN_FLIGHT_MS, type FaultSpan } from '../bench/chaos';

/**
 * The chaos run's judgement of a webhook POSTed again after a 2xx (bench/chaos.ts): each extra POST is
 * explained by the fault under way between the earlier 2xx and the POST again, or it is a second send.
 * Pure logic: the receiver's histories and the fault timeline are given.
 */
describe('chaos: what explains a duplicate', () => {
  const ok = (atMs: number) => ({ atMs, answer: '2xx' });
  const failed = (atMs: number) => ({ atMs, answer: '503' });

  it('counts nothing for alerts answered 2xx once, whatever failed before', () => {
    const d = attributeDuplicates([['a', [failed(0), failed(100), ok(200)]], ['b', [ok(0)]], ['c', []]], []);
    assert.deepEqual(d, { deliveries: 0, extraPosts: 0, byCause: {}, unexplained: [], msFrom2xxToFault: null });
  });

  it('names the worker kill between the 2xx and the POST again, and how long after the 2xx it came', () => {
    const faults: FaultSpan[] = [
      { kind: 'worker-kill', fromMs: 500, toMs: 500 },
      { kind: 'worker-kill', fromMs: 5_040, toMs: 5_040 },
      { kind: 'worker-kill', fromMs: 9_000, toMs: 9_000 },
    ];
    const d = attributeDuplicates([['a', [ok(5_000), failed(6_000), ok(7_000)]]], faults);
    assert.equal(d.deliveries, 1);
    assert.equal(d.extraPosts, 1);
    assert.deepEqual(d.byCause, { 'worker-kill': 1 });
    assert.deepEqual(d.unexplained, []);
    assert.deepEqual(d.msFrom2xxToFault, { min: 40, p50: 40, max: 40 });
  });

  it('counts a kill shortly before the 2xx (the POST was on its way) and an outage under way at it', () => {
    const faults: FaultSpan[] = [
      { kind: 'worker-kill', fromMs: 1_000 - IN_FLIGHT_MS + 1, toMs: 1_000 - IN_FLIGHT_MS + 1 },
      { kind: 'postgres-restart', fromMs: 18_000, toMs: 21_500 },
    ];
    const d = attributeDuplicates([['a', [ok(1_000), ok(4_000)]], ['b', [ok(20_000), ok(23_000)]]], faults);
    assert.deepEqual(d.byCause, { 'worker-kill': 1, 'postgres-restart': 1 });
    assert.deepEqual(d.msFrom2xxToFault, { min: -2_000, p50: -2_000, max: -IN_FLIGHT_MS + 1 });
    assert.deepEqual(d.unexplained, []);
  });

  it('of the faults under way, names the one that began nearest the 2xx', () => {
    const faults: FaultSpan[] = [
      { kind: 'api-kill', fromMs: 0, toMs: 11_000 },
      { kind: 'worker-kill', fromMs: 5_020, toMs: 5_020 },
    ];
    const d = attributeDuplicates([['a', [ok(5_000), ok(8_000)]]], faults);
    assert.deepEqual(d.byCause, { 'worker-kill': 1 });
    assert.deepEqual(d.msFrom2xxToFault, { min: 20, p50: 20, max: 20 });
  });

  it('calls an extra POST with no fault between a second send, each extra POST judged on its own', () => {
    const faults: FaultSpan[] = [
      // over before the first 2xx was on its way, and begun after the POST again
      { kind: 'worker-kill', fromMs: 1_000 - IN_FLIGHT_MS - 1, toMs: 1_000 - IN_FLIGHT_MS - 1 },
      { kind: 'temporal-kill', fromMs: 3_001, toMs: 4_000 },
      { kind: 'worker-kill', fromMs: 5_000, toMs: 5_000 },
    ];
    const d = attributeDuplicates([['a', [ok(1_000), ok(3_000), ok(6_000)]]], faults);
    assert.equal(d.deliveries, 1);
    assert.equal(d.extraPosts, 2);
    // 1 000 → 3 000: nothing under way; 3 000 → 6 000: the dev server kill began first
    assert.deepEqual(d.unexplained, ['a']);
    assert.deepEqual(d.byCause, { 'temporal-kill': 1 });
  });
});
