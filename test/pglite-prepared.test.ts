import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import type { Db } from '../store/db';
import { preparedQueries, type PreparedQueries } from '../store/pglite-prepared';
import { openStore, withStore } from './support/stores';

/**
 * The embedded store's prepared statements (store/pglite-prepared.ts), on a real PGlite: each
 * statement text prepared once, answers as query() gives them, errors and transactions as before,
 * PGlite's turns kept, and a schema change prepared again.
 */
const preparedCount = async (db: { query<T>(sql: string, params?: unknown[]): Promise<T[]> }, text: string) =>
  (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1`, [text]))[0].n;

/** a fresh, unmigrated PGlite store for one test */
const onBarePglite = (fn: (db: Db) => Promise<void>) => withStore('pglite', ({ db }) => fn(db), { migrated: false });

describe('prepared statements on the embedded PGlite', () => {
  const TABLE = `CREATE TABLE kinds (id text PRIMARY KEY, n integer, ok boolean, doc jsonb, at timestamptz, tags text[], note text)`;
  const INSERT = `INSERT INTO kinds (id, n, ok, doc, at, tags, note) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`;
  const SELECT = `SELECT id, n, ok, doc, at, tags, note FROM kinds WHERE id = $1`;

  it('a statement run again is prepared once, and its parameters and answers are typed as query() gives them', () =>
    onBarePglite(async (db) => {
      await db.exec(TABLE);
      const at = new Date('2026-12-03T18:00:00.123Z');
      await db.query(INSERT, ['a', 7, true, { nested: { list: [1, 'two'] } }, at, ['x', 'y "quoted"', 'z,comma'], null]);
      await db.query(INSERT, ['b', null, false, null, at.toISOString(), [], 'note']);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await db.query(SELECT, ['a']), [
          { id: 'a', n: 7, ok: true, doc: { nested: { list: [1, 'two'] } }, at, tags: ['x', 'y "quoted"', 'z,comma'], note: null },
        ]);
      }
      assert.deepEqual(await db.query(SELECT, ['b']), [{ id: 'b', n: null, ok: false, doc: null, at, tags: [], note: 'note' }]);
      assert.deepEqual(await db.query(SELECT, ['none']), []);
      assert.equal(await preparedCount(db, SELECT), 1, 'five runs of one text, one prepared statement');
      assert.equal(await preparedCount(db, INSERT), 1);
      // a statement that answers no rows
      assert.deepEqual(await db.query(`UPDATE kinds SET n = $2 WHERE id = $1`, ['b', 8]), []);
      assert.equal((await db.query<{ n: number }>(SELECT, ['b']))[0].n, 8);
    }));

  it('an error is PGlite’s DatabaseError with its code and statement, and the next statement runs', () =>
    onBarePglite(async (db) => {
      await db.exec(TABLE);
      await db.query(INSERT, ['a', 1, true, null, null, null, null]);
      const err = await db.query(INSERT, ['a', 2, true, null, null, null, null]).then(
        () => assert.fail('a duplicate key was accepted'),
        (e: unknown) => e as { code?: string; query?: string; message: string },
      );
      assert.equal(err.code, '23505');
      assert.equal(err.query, INSERT);
      assert.match(err.message, /duplicate key/);
      // a statement that fails before it is prepared (no such column) is not kept
      const bad = `SELECT nope FROM kinds`;
      await assert.rejects(db.query(bad), (e: { code?: string }) => e.code === '42703');
      assert.equal(await preparedCount(db, bad), 0);
      // a parameter the statement's type refuses
      await assert.rejects(db.query(SELECT.replace('id = $1', 'n = $1'), ['not a number']), (e: { code?: string }) => e.code === '22P02');
      assert.deepEqual((await db.query<{ n: number }>(SELECT, ['a'])).map((r) => r.n), [1]);
    }));

  it('in a transaction, prepared statements commit and roll back with it; an error inside it rolls it back', () =>
    onBarePglite(async (db) => {
      await db.exec(TABLE);
      await db.transaction(async (tx) => {
        await tx.query(INSERT, ['kept', 1, true, null, null, null, null]);
      });
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(INSERT, ['undone', 1, true, null, null, null, null]);
          throw new Error('the caller gives up');
        }),
        /the caller gives up/,
      );
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(INSERT, ['undone too', 1, true, null, null, null, null]);
          await tx.query(INSERT, ['kept', 1, true, null, null, null, null]); // duplicate key: the transaction is aborted
        }),
        (e: { code?: string }) => e.code === '23505',
      );
      assert.deepEqual((await db.query<{ id: string }>(`SELECT id FROM kinds ORDER BY id`)).map((r) => r.id), ['kept']);
    }));

  it('a statement outside a transaction waits for the transaction that holds PGlite (it reads what that one committed)', () =>
    onBarePglite(async (db) => {
      await db.exec(TABLE);
      await db.query(SELECT, ['warm']); // prepared before the transaction
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inserted!: () => void;
      const insertedInTx = new Promise<void>((resolve) => (inserted = resolve));
      const tx = db.transaction(async (t) => {
        await t.query(INSERT, ['held', 1, true, null, null, null, null]);
        inserted();
        await held;
      });
      await insertedInTx;
      let answered = false;
      const outside = db.query<{ id: string }>(SELECT, ['held']).then((rows) => {
        answered = true;
        return rows;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(answered, false, 'the statement ran while the transaction held PGlite');
      release();
      await tx;
      assert.deepEqual((await outside).map((r) => r.id), ['held']);
    }));

  it('after a schema change through the store, a statement is prepared again and answers the new columns', () =>
    onBarePglite(async (db) => {
      await db.exec(`CREATE TABLE t (id text PRIMARY KEY)`);
      await db.query(`INSERT INTO t VALUES ($1)`, ['a']);
      const star = `SELECT * FROM t WHERE id = $1`;
      assert.deepEqual(await db.query(star, ['a']), [{ id: 'a' }]);
      await db.exec(`ALTER TABLE t ADD COLUMN extra integer DEFAULT 5`);
      // in a transaction a stale plan is not prepared again (its error aborts the transaction): the
      // statement answers the new columns only because the schema change made the store prepare it again
      assert.deepEqual(await db.transaction((tx) => tx.query(star, ['a'])), [{ id: 'a', extra: 5 }]);
      await db.query(`ALTER TABLE t DROP COLUMN extra`); // DDL through query() too
      assert.deepEqual(await db.transaction((tx) => tx.query(star, ['a'])), [{ id: 'a' }]);
      // the names prepared before each change were closed in the backend, not left there
      assert.equal(await preparedCount(db, star), 1);
      assert.equal(await preparedCount(db, `INSERT INTO t VALUES ($1)`), 0);
    }));

  it('the migrated store runs its statements prepared, and a closed store refuses them', async () => {
    const store = await openStore('pglite');
    const latest = `SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1`;
    const [first] = await store.db.query<{ version: string }>(latest);
    assert.deepEqual(await store.db.query(latest), [first]);
    assert.equal(await preparedCount(store.db, latest), 1);
    await store.close();
    await assert.rejects(store.db.query(latest), /PGlite is clos/);
  });

  describe('on a PGlite changed behind its back', () => {
    let pg: PGlite;
    let prepared: PreparedQueries;
    before(async () => {
      pg = await PGlite.create();
      prepared = await preparedQueries(pg);
      await pg.exec(`CREATE TABLE t (id text PRIMARY KEY); INSERT INTO t VALUES ('a')`);
    });
    after(() => pg.close());

    const backendCount = async (text: string) =>
      (await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1`, [text])).rows[0].n;

    it('only single DML statements are prepared; others are left to query()', async () => {
      for (const sql of ['SHOW server_version', 'SET statement_timeout = 0', 'BEGIN', 'CREATE TABLE u (id int)', 'VACUUM t']) {
        assert.equal(prepared.run(sql, []), undefined, sql);
      }
      const answers = ['SELECT 1', ' with x AS (SELECT 1) SELECT * FROM x', 'insert into t values ($1)', 'UPDATE t SET id = id', 'DELETE FROM t WHERE false'].map(
        (sql) => {
          const answer = prepared.run(sql, sql.includes('$1') ? ['b'] : []);
          assert.ok(answer instanceof Promise, sql);
          return answer;
        },
      );
      assert.deepEqual(await Promise.all(answers), [[{ '?column?': 1 }], [{ '?column?': 1 }], [], [], []]);
      await pg.query(`DELETE FROM t WHERE id = 'b'`);
    });

    it('answers the same rows as PGlite’s query(), type for type, nulls inside arrays and unnest of column arrays too', async () => {
      await pg.exec(`CREATE TABLE typed (id int PRIMARY KEY, big bigint, num numeric, f float8, d date, ts timestamp, tz timestamptz,
        u uuid, b bytea, iv interval, ints int[], texts text[], doc jsonb, j json, flag boolean)`);
      const insert = `INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`;
      const row = [1, '9007199254740993', '12345.678901234567890', 0.1, '2026-12-07', '2026-12-07 14:30:00.5', new Date('2026-12-07T14:30:00.123Z'),
        '6f1c7c3e-6a3b-4b0e-9a51-3c2f1d0e9b77', new Uint8Array([0, 1, 254, 255]), '1 day 02:03:04', [1, null, 3], ['a', null, 'c,"d"'], [{ k: null }, 2], { j: 'x' }, false];
      await prepared.run(insert, row);
      await pg.query(insert, [2, ...row.slice(1).map(() => null)]);
      const select = `SELECT * FROM typed ORDER BY id`;
      const expected = (await pg.query(select)).rows;
      assert.equal(expected.length, 2);
      assert.deepEqual(await prepared.run(select, []), expected);
      assert.deepEqual(await prepared.run(select, []), expected, 'answered the same the second time, from the prepared statement');

      const unnest = `SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS v (name, n, at)`;
      const columns = [['x', null, 'z'], [null, 2, 3], [new Date('2026-12-07T00:00:00Z'), null, null]];
      const viaQuery = (await pg.query(unnest, columns)).rows;
      assert.deepEqual(viaQuery, [
        { name: 'x', n: null, at: new Date('2026-12-07T00:00:00Z') },
        { name: null, n: 2, at: null },
        { name: 'z', n: 3, at: null },
      ]);
      assert.deepEqual(await prepared.run(unnest, columns), viaQuery);
      assert.deepEqual(await prepared.run(unnest, [[], [], []]), []);
    });

    it('a plan whose columns changed is prepared again once outside a transaction; in one, the error is the transaction’s', async () => {
      const star = `SELECT * FROM t WHERE id = $1`;
      assert.deepEqual(await prepared.run(star, ['a']), [{ id: 'a' }]);
      await pg.exec(`ALTER TABLE t ADD COLUMN extra integer DEFAULT 1`); // not through the store: nothing forgotten
      assert.deepEqual(await prepared.run(star, ['a']), [{ id: 'a', extra: 1 }]);
      await pg.exec(`ALTER TABLE t DROP COLUMN extra`);
      await assert.rejects(
        pg.transaction(async () => {
          await prepared.runInTransaction(star, ['a']);
        }),
        (e: { code?: string }) => e.code === '0A000',
      );
      assert.deepEqual(await prepared.run(star, ['a']), [{ id: 'a' }]);
      // each stale name was closed in the backend when the text was prepared again
      assert.equal(await backendCount(star), 1);
    });

    it('in a BEGIN sent outside PGlite’s transactions (a session’s), a stale plan’s own error reaches the caller, not the aborted transaction’s', async () => {
      const star = `SELECT * FROM t WHERE id = $1 AND true`;
      assert.deepEqual(await prepared.run(star, ['a']), [{ id: 'a' }]);
      await pg.exec(`ALTER TABLE t ADD COLUMN extra integer DEFAULT 1`);
      await pg.exec('BEGIN');
      try {
        await assert.rejects(async () => prepared.run(star, ['a']), (e: { code?: string }) => e.code === '0A000');
      } finally {
        await pg.exec('ROLLBACK');
      }
      assert.deepEqual(await prepared.run(star, ['a']), [{ id: 'a', extra: 1 }], 'prepared again after the rollback');
      assert.equal(await backendCount(star), 1);
      await pg.exec(`ALTER TABLE t DROP COLUMN extra`);
    });

    it('a forgotten text is closed in the backend with the next prepare', async () => {
      const texts = [0, 1, 2].map((i) => `SELECT id, ${i} AS i FROM t`);
      for (const text of texts) await prepared.run(text, []);
      for (const text of texts) assert.equal(await backendCount(text), 1);
      prepared.forget();
      await prepared.run(texts[0], []);
      assert.deepEqual(await Promise.all(texts.map(backendCount)), [1, 0, 0]);
    });
  });
});
