import type { Db, Queryable } from './db';

/**
 * A cache of one kind of read, for a store this process alone writes to (the embedded PGlite:
 * `Db.localWrites`). An entry is used while no statement of this process has written to `tables`
 * since the read began; on PostgreSQL, which other processes write to, and inside a transaction
 * (a Queryable that is not the Db), every call reads.
 *
 * Reads of one key at once share one statement. A read that fails is not kept. Entries are shared
 * by callers: they must not change them. At `limit` entries the cache starts again empty.
 *
 * Why: on the embedded default every statement runs on the service's one main thread, and the token
 * and config lookups were two of them on each event's path (bench/store-cost.ts).
 */
export function readCache<T>(tables: readonly string[], limit = 5_000) {
  const caches = new WeakMap<object, Map<string, { version: number; value: Promise<T> }>>();
  return (db: Queryable, key: string, read: () => Promise<T>): Promise<T> => {
    const writes = (db as Partial<Db>).localWrites;
    if (!writes) return read();
    let cache = caches.get(db);
    if (!cache) caches.set(db, (cache = new Map()));
    const version = writes.versionOf(tables);
    const found = cache.get(key);
    if (found?.version === version) return found.value;
    if (cache.size >= limit) cache.clear();
    const entry = { version, value: read() };
    cache.set(key, entry);
    entry.value.then(
      // a write while it ran: what it read may be older than that write
      () => writes.versionOf(tables) !== version && cache.get(key) === entry && cache.delete(key),
      () => cache.get(key) === entry && cache.delete(key),
    );
    return entry.value;
  };
}
