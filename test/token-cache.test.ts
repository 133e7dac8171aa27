import assert from 'node:assert/strict';
import { openStore, type TestStore } from './support/stores';
import { cachedTokenLookup, createToken } from '../store/tokens';
import type { Queryable } from '../store/db';
import { hashToken } from '../lib/crypto';

describe('API token lookup cache (store/tokens.ts cachedTokenLookup)', () => {
  let store: TestStore;
  let statements: number;
  let counted: Queryable;

  before(async () => {
    store = await openStore('pglite');
    counted = {
      query: (sql, params) => {
        statements++;
        return store.db.query(sql, params);
      },
      exec: (sql) => store.db.exec(sql),
    };
  });
  after(() => store.close());
  beforeEach(() => {
    statements = 0;
  });

  it('answers a known token from memory after the first request', async () => {
    const token = await createToken(store.db, 'proj-a');
    const find = cachedTokenLookup(counted);
    const first = await find(token);
    const second = await find(token);
    assert.equal(first?.projectId, 'proj-a');
    assert.deepEqual(second, first);
    assert.equal(statements, 1);
  });

  it('does not remember an unknown token: one created later (by any process) works at once', async () => {
    const find = cachedTokenLookup(counted);
    const token = 'mha_not_yet_created_0123456789';
    assert.equal(await find(token), undefined);
    await store.db.query(`INSERT INTO api_tokens (id, token_hash, project_id, label) SELECT 'tok_later', token_hash, 'proj-b', '' FROM (SELECT $1::text AS token_hash) t`, [hashToken(token)]);
    assert.equal((await find(token))?.projectId, 'proj-b');
  });

  it('asks the store again once the TTL has passed (a row removed by hand stops working)', async () => {
    const token = await createToken(store.db, 'proj-c');
    const find = cachedTokenLookup(counted, 1);
    assert.equal((await find(token))?.projectId, 'proj-c');
    await store.db.query(`DELETE FROM api_tokens WHERE project_id = 'proj-c'`);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await find(token), undefined);
  });
});
