import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { alertConfigInputSchema, silenceInputSchema } from '../lib/schemas';
import { deleteConfig, disableConfig, dispatchableConfigsFor, saveConfig } from '../store/configs';
import { openPostgres, writeTracker, type Db } from '../store/db';
import { readCache } from '../store/read-cache';
import { createSilence, deleteSilence } from '../store/silences';
import { addToken, findToken } from '../store/tokens';
import { STORE_KINDS, useStore } from './support/stores';

const keyring = parseKeyring(newKeySpec('k1'));
const newProject = () => `prj_${randomBytes(6).toString('hex')}`;
const configInput = (fields: Record<string, unknown> = {}) =>
  alertConfigInputSchema.parse({
    workflowId: 'wf_orders',
    name: 'Orders failures',
    conditions: [{ type: 'failure' }],
    webhook: { url: 'https://hooks.example.com/alerts' },
    ...fields,
  });

/** the Db with its statements counted (the same object's localWrites, so the same cache) */
function counted(db: Db): { db: Db; statements: () => number } {
  let n = 0;
  const spy: Db = Object.create(db);
  Object.assign(spy, {
    query: (sql: string, params?: unknown[]) => {
      n++;
      return db.query(sql, params);
    },
  });
  return { db: spy, statements: () => n };
}

describe('store: the write tracker behind the embedded store’s read caches', () => {
  const cases: [string, string, string[] | 'all'][] = [
    ['an INSERT', `INSERT INTO alert_configs (id) VALUES ($1)`, ['alert_configs']],
    ['an UPDATE with an alias', `UPDATE alert_configs c SET enabled = false WHERE c.id = $1`, ['alert_configs']],
    ['a DELETE', `DELETE FROM alert_silences WHERE id = $1`, ['alert_silences']],
    ['a write inside a CTE', `WITH previous AS (SELECT id FROM alert_configs FOR UPDATE) UPDATE alert_configs c SET name = $1 FROM previous`, ['alert_configs']],
    ['a schema-qualified, quoted target', `DELETE FROM public."api_tokens" WHERE id = $1`, ['api_tokens']],
    ['an upsert', `INSERT INTO alert_deliveries AS d (delivery_id) VALUES ($1) ON CONFLICT (delivery_id) DO UPDATE SET status = 'x'`, ['alert_deliveries']],
    ['a read', `SELECT id, created_at FROM alert_configs WHERE project_id = $1 FOR UPDATE`, []],
    ['DDL', `CREATE TABLE IF NOT EXISTS schema_migrations (name text)`, 'all'],
    ['a TRUNCATE', `TRUNCATE alert_configs, api_tokens`, 'all'],
  ];
  for (const [what, sql, tables] of cases) {
    it(`counts ${what} as a write to ${tables === 'all' ? 'every table' : tables.length ? tables.join(', ') : 'no table'}`, () => {
      const writes = writeTracker();
      const probe = ['alert_configs', 'alert_silences', 'api_tokens', 'alert_deliveries', 'schema_migrations'];
      const before = Object.fromEntries(probe.map((t) => [t, writes.versionOf([t])]));
      writes.saw(sql);
      const changed = probe.filter((t) => writes.versionOf([t]) !== before[t]);
      assert.deepEqual(changed, tables === 'all' ? probe : tables);
    });
  }

  it('a read cache keeps a failed read for nobody, and gives a read that saw a write to nobody after it', async () => {
    const writes = writeTracker();
    const db = { localWrites: writes } as unknown as Db;
    const cache = readCache<number>(['t']);
    let reads = 0;
    await assert.rejects(cache(db, 'k', async () => Promise.reject(new Error(`read ${++reads}`))), /read 1/);
    assert.equal(await cache(db, 'k', async () => ++reads), 2, 'the failed read was not kept');
    assert.equal(await cache(db, 'k', async () => ++reads), 2, 'kept');
    let finish!: (n: number) => void;
    writes.saw('UPDATE t SET x = 1');
    const inFlight = cache(db, 'k', () => new Promise<number>((resolve) => (finish = resolve)));
    assert.equal(cache(db, 'k', async () => ++reads), inFlight, 'reads of one key at once share one');
    writes.saw('UPDATE t SET x = 2'); // while that read runs
    finish(10);
    assert.equal(await inFlight, 10);
    assert.equal(await cache(db, 'k', async () => 20), 20, 'what the read saw may predate the write: read again');
    assert.equal(await cache(db, 'k', async () => 30), 20);
  });
});

for (const kind of STORE_KINDS) {
  describe(`store on ${kind === 'pglite' ? 'PGlite (embedded)' : 'PostgreSQL'}: cached lookups on the event path`, () => {
    const store = useStore(kind);

    it(kind === 'pglite' ? 'a config lookup is read once, and again after every kind of write to configs or silences' : 'a config lookup is read every time (other processes write to PostgreSQL)', async () => {
      const { db, statements } = counted(store.db);
      const project = newProject();
      const lookup = async () => (await dispatchableConfigsFor(db, project, 'wf_orders')).map((c) => `${c.name}:${c.held ? 'held' : 'on'}:${c.silenceable ? 's' : '-'}`);
      assert.deepEqual(await lookup(), []);
      const first = statements();
      assert.deepEqual(await lookup(), []);
      assert.equal(statements() - first, kind === 'pglite' ? 0 : 1, 'the repeat lookup');

      const saved = await saveConfig(store.db, keyring, project, configInput());
      assert.deepEqual(await lookup(), ['Orders failures:on:-'], 'after a create');
      await saveConfig(store.db, keyring, project, configInput({ id: saved.config.id, name: 'Renamed' }));
      assert.deepEqual(await lookup(), ['Renamed:on:-'], 'after an update');
      await disableConfig(store.db, project, saved.config.id, 'the receiver answered 410 Gone');
      assert.deepEqual(await lookup(), ['Renamed:held:-'], 'after the service disabled it');
      const silence = await createSilence(store.db, project, silenceInputSchema.parse({ configId: saved.config.id, from: new Date().toISOString(), until: new Date(Date.now() + 3_600_000).toISOString() }));
      assert.deepEqual(await lookup(), ['Renamed:held:s'], 'after a silence');
      await deleteSilence(store.db, project, silence.id);
      assert.deepEqual(await lookup(), ['Renamed:held:-'], 'after the silence was deleted');
      await deleteConfig(store.db, keyring, project, saved.config.id);
      assert.deepEqual(await lookup(), [], 'after a delete');
      const before = statements();
      await lookup();
      assert.equal(statements() - before, kind === 'pglite' ? 0 : 1);
    });

    it('a token is found once it is added, even after it was looked up unknown', async () => {
      const token = `mha_${randomBytes(16).toString('hex')}`;
      const project = newProject();
      assert.equal(await findToken(store.db, token), undefined);
      await addToken(store.db, token, project);
      assert.equal((await findToken(store.db, token))?.projectId, project);
      assert.equal((await findToken(store.db, token))?.projectId, project);
    });

    if (kind === 'postgres') {
      it('a config written by another process is seen at once', async () => {
        const other = await openPostgres(store.url!, { max: 1 });
        try {
          const project = newProject();
          assert.deepEqual(await dispatchableConfigsFor(store.db, project, 'wf_orders'), []);
          await saveConfig(other, keyring, project, configInput());
          assert.equal((await dispatchableConfigsFor(store.db, project, 'wf_orders')).length, 1);
        } finally {
          await other.close();
        }
      });
    }
  });
}
