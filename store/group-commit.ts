/**
 * Group commit for a store that runs one statement at a time (the embedded PGlite): the calls made
 * while the process was busy run as one multi-row statement, one commit, instead of one each. On
 * PGlite most of a one-row statement's cost is per statement (its parse, plan and commit): a 5-row
 * INSERT costs about a third per row of five 1-row ones (docs/benchmarks.md).
 *
 * A call waits at most one turn of the event loop (setImmediate) when nothing runs; while a batch
 * runs, new calls queue for the next one, so batches grow with the load and stay single when it is
 * light. Each call's promise settles only after the statement holding it has answered (committed):
 * the caller's 202 means what it meant. Two calls with the same key never share a statement (a
 * multi-row upsert may not touch one row twice): the later waits for the next batch, in order. A
 * batch that fails committed nothing (one statement); its calls are run again one by one, so a bad
 * item fails only its own call.
 */
export interface GroupCommit<I, O> {
  (item: I): Promise<O>;
}

export interface GroupCommitOptions<I, O> {
  /** items with the same key run in separate statements, in the order they came */
  key: (item: I) => string;
  /** one statement for all of `items`; answers one output per item, in their order */
  run: (items: I[]) => Promise<O[]>;
  /** the most items in one statement (its parameters: PostgreSQL allows 65,535) */
  max: number;
}

interface Waiter<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

export function groupCommit<I, O>({ key, run, max }: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  let queue: Waiter<I, O>[] = [];
  let busy = false;

  const settle = async (batch: Waiter<I, O>[]): Promise<void> => {
    let out: O[];
    try {
      out = await run(batch.map((w) => w.item));
    } catch (err) {
      if (batch.length === 1) return batch[0].reject(err);
      for (const w of batch) await settle([w]);
      return;
    }
    if (out.length !== batch.length) {
      const err = new Error(`group commit: ${out.length} answers for ${batch.length} items`);
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => w.resolve(out[i]));
  };

  const flush = async (): Promise<void> => {
    const batch: Waiter<I, O>[] = [];
    const rest: Waiter<I, O>[] = [];
    const keys = new Set<string>();
    for (const w of queue) {
      const k = key(w.item);
      // a later call of a key already taken waits, and so does every later one of that key (order kept)
      if (batch.length < max && !keys.has(k)) batch.push(w);
      else rest.push(w);
      keys.add(k);
    }
    queue = rest;
    await settle(batch);
    if (queue.length > 0) setImmediate(flush);
    else busy = false;
  };

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (busy) return;
      busy = true;
      setImmediate(flush);
    });
}
