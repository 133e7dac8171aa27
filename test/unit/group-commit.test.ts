import assert from 'node:assert/strict';
import { groupCommit } from '../../store/group-commit';

/**
 * store/group-commit.ts, the logic alone: what shares a statement, in what order, and what a failed
 * statement does to its calls (the store's use of it: test/delay-watcher-store.test.ts).
 */
interface Item {
  key: string;
  value: number;
}

function recorder(fail: (items: Item[]) => boolean = () => false) {
  const batches: string[][] = [];
  const run = async (items: Item[]) => {
    batches.push(items.map((i) => `${i.key}=${i.value}`));
    if (fail(items)) throw new Error(`statement failed: ${items.map((i) => i.key).join(',')}`);
    return items.map((i) => i.value * 10);
  };
  return { batches, run };
}

describe('group commit (store/group-commit.ts)', () => {
  it('calls made in one turn of the event loop share one statement, each answered its own result', async () => {
    const r = recorder();
    const call = groupCommit({ key: (i: Item) => i.key, run: r.run, max: 100 });
    const answers = await Promise.all([1, 2, 3, 4].map((v) => call({ key: `k${v}`, value: v })));
    assert.deepEqual(answers, [10, 20, 30, 40]);
    assert.deepEqual(r.batches, [['k1=1', 'k2=2', 'k3=3', 'k4=4']]);
  });

  it('a call made while a statement runs waits for the next one; a lone call is a statement of one', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const batches: number[][] = [];
    const call = groupCommit({
      key: (v: number) => String(v),
      max: 100,
      run: async (items: number[]) => {
        batches.push(items);
        if (items.includes(1)) await held;
        return items;
      },
    });
    const first = call(1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches, [[1]]);
    const later = [call(2), call(3)];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches, [[1]], 'the next statement waits for the running one');
    release();
    assert.deepEqual(await Promise.all([first, ...later]), [1, 2, 3]);
    assert.deepEqual(batches, [[1], [2, 3]]);
    assert.equal(await call(4), 4);
    assert.deepEqual(batches, [[1], [2, 3], [4]]);
  });

  it('two calls of one key never share a statement and run in the order they came; so do the later ones of that key', async () => {
    const r = recorder();
    const call = groupCommit({ key: (i: Item) => i.key, run: r.run, max: 100 });
    await Promise.all([call({ key: 'a', value: 1 }), call({ key: 'b', value: 2 }), call({ key: 'a', value: 3 }), call({ key: 'c', value: 4 }), call({ key: 'a', value: 5 })]);
    assert.deepEqual(r.batches, [['a=1', 'b=2', 'c=4'], ['a=3'], ['a=5']]);
  });

  it('at most `max` items a statement; the rest, in order, in the next', async () => {
    const r = recorder();
    const call = groupCommit({ key: (i: Item) => i.key, run: r.run, max: 2 });
    await Promise.all([1, 2, 3, 4, 5].map((v) => call({ key: `k${v}`, value: v })));
    assert.deepEqual(r.batches, [['k1=1', 'k2=2'], ['k3=3', 'k4=4'], ['k5=5']]);
  });

  it('a failed statement is run again item by item: only the bad item\'s call fails, with its own error', async () => {
    const r = recorder((items) => items.some((i) => i.value < 0));
    const call = groupCommit({ key: (i: Item) => i.key, run: r.run, max: 100 });
    const results = await Promise.allSettled([call({ key: 'a', value: 1 }), call({ key: 'b', value: -1 }), call({ key: 'c', value: 3 })]);
    assert.deepEqual(results.map((x) => x.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual(results.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message)), [10, 'statement failed: b', 30]);
    assert.deepEqual(r.batches, [['a=1', 'b=-1', 'c=3'], ['a=1'], ['b=-1'], ['c=3']]);
    // and the batcher goes on
    assert.equal(await call({ key: 'd', value: 4 }), 40);
  });

  it('a statement that answers the wrong number of rows fails each of its calls rather than mixing answers up', async () => {
    const call = groupCommit({ key: (v: number) => String(v), max: 100, run: async (items: number[]) => items.slice(1) });
    const results = await Promise.allSettled([call(1), call(2)]);
    assert.deepEqual(results.map((x) => x.status), ['rejected', 'rejected']);
    assert.match(String((results[0] as PromiseRejectedResult).reason), /1 answers for 2 items/);
  });
});
