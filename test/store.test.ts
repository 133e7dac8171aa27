import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { hashToken, newKeySpec, newWebhookSecret, parseKeyring } from '../lib/crypto';
import { AlertsError } from '../lib/errors';
import { alertConfigInputSchema, type AlertConfigInput } from '../lib/schemas';
import { deleteConfig, getConfig, listConfigs, publicConfig, saveConfig } from '../store/configs';
import { openPostgres, type Db } from '../store/db';
import { migrate, MIGRATIONS_DIR } from '../store/migrate';
import { addToken, countTokens, createToken, projectForToken } from '../store/tokens';
import { STORE_KINDS, useStore, withStore } from './support/stores';

const MIGRATIONS = fs.readdirSync(MIGRATIONS_DIR).filter((f) => /^\d+.*\.sql$/.test(f)).sort();

const newProject = () => `prj_${randomBytes(6).toString('hex')}`;

/** a config body as the API hands it to the store: parsed by the contract's schema */
function configInput(fields: Record<string, unknown> = {}): AlertConfigInput {
  return alertConfigInputSchema.parse({
    workflowId: 'wf_orders',
    name: 'Orders failures to on-call',
    conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 300 }],
    webhook: { url: 'https://hooks.example.com/alerts/{{ workflow.id }}', headers: { 'X-Team': 'ops' }, timeoutMs: 5000 },
    payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}', ms: '{{ run.durationMs }}' } },
    retry: { maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1000, maxDurationMs: 60_000 },
    ...fields,
  });
}

/** asserts that `promise` rejects with the AlertsError code `not_found` */
async function rejectsNotFound(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AlertsError, `expected an AlertsError, got ${String(err)}`);
    assert.equal(err.code, 'not_found');
    return true;
  });
}

async function rawConfigRow(db: Db, id: string): Promise<Record<string, unknown>> {
  const rows = await db.query('SELECT * FROM alert_configs WHERE id = $1', [id]);
  assert.equal(rows.length, 1, `one alert_configs row for ${id}`);
  return rows[0];
}

for (const kind of STORE_KINDS) {
  describe(`store on ${kind === 'pglite' ? 'PGlite (embedded)' : 'PostgreSQL'}`, () => {
    // one migrated store for the tests of this kind; each test works in its own project
    const store = useStore(kind);

    describe('migrations', () => {
      it('applies every migration on a fresh database, in order, and records each', async () => {
        await withStore(
          kind,
          async ({ db }) => {
            const lines: string[] = [];
            const applied = await migrate(db, (line) => lines.push(line));
            assert.deepEqual(applied, MIGRATIONS);
            assert.deepEqual(lines, MIGRATIONS.map((f) => `applied migration ${f}`));
            const recorded = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
            assert.deepEqual(recorded.map((r) => r.version), MIGRATIONS);
            const tables = await db.query<{ table_name: string }>(
              `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
            );
            for (const table of ['alert_configs', 'alert_logs', 'api_tokens', 'schema_migrations']) {
              assert.ok(tables.some((t) => t.table_name === table), `table ${table} exists`);
            }
          },
          { migrated: false },
        );
      });

      it('applies nothing when run again on a migrated database', async () => {
        const before = await store.db.query('SELECT version, applied_at FROM schema_migrations ORDER BY version');
        assert.deepEqual(before.map((r) => r.version), MIGRATIONS);
        assert.deepEqual(await migrate(store.db), []);
        assert.deepEqual(await store.db.query('SELECT version, applied_at FROM schema_migrations ORDER BY version'), before);
      });

      it(
        kind === 'postgres'
          ? 'two migrate() at once on two separate connection pools both succeed, and each migration is applied once'
          : 'two migrate() at once on the same database both succeed, and each migration is applied once',
        async () => {
          await withStore(
            kind,
            async ({ db, url }) => {
              const extra: Db[] = [];
              try {
                let first = db;
                let second = db;
                if (kind === 'postgres') {
                  first = await openPostgres(url!, { max: 1 });
                  second = await openPostgres(url!, { max: 1 });
                  extra.push(first, second);
                  // both connections open before the race starts
                  await Promise.all([first.query('SELECT 1'), second.query('SELECT 1')]);
                }
                const results = await Promise.all([migrate(first), migrate(second)]);
                // the lock makes them take turns: one applies everything, the other finds nothing to do
                assert.deepEqual([...results].sort((a, b) => b.length - a.length), [MIGRATIONS, []]);
                const recorded = await db.query<{ version: string; n: number }>(
                  'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
                );
                assert.deepEqual(recorded, MIGRATIONS.map((version) => ({ version, n: 1 })));
                // and the schema is usable
                assert.equal(await countTokens(db), 0);
              } finally {
                for (const pool of extra) await pool.close();
              }
            },
            { migrated: false },
          );
        },
      );
    });

    describe('alert configs', () => {
      const keyring = parseKeyring(newKeySpec('k1'));

      it('creates a config with a generated secret and reads it back', async () => {
        const project = newProject();
        const input = configInput();
        const saved = await saveConfig(store.db, keyring, project, input);
        assert.equal(saved.created, true);
        assert.match(saved.config.id, /^cfg_[A-Za-z0-9_-]{16}$/);
        assert.match(saved.generatedSecret ?? '', /^whsec_[A-Za-z0-9+/]{43}=$/);
        assert.deepEqual(saved.config.secrets, [saved.generatedSecret]);
        assert.equal(saved.config.projectId, project);
        assert.deepEqual(
          { workflowId: saved.config.workflowId, name: saved.config.name, enabled: saved.config.enabled, conditions: saved.config.conditions, webhook: saved.config.webhook, payload: saved.config.payload, retry: saved.config.retry },
          { workflowId: input.workflowId, name: input.name, enabled: true, conditions: input.conditions, webhook: input.webhook, payload: input.payload, retry: input.retry },
        );
        assert.equal(saved.config.disabledReason, null);
        assert.equal(new Date(saved.config.createdAt).toISOString(), saved.config.createdAt);
        assert.equal(saved.config.updatedAt, saved.config.createdAt);
        assert.deepEqual(await getConfig(store.db, keyring, project, saved.config.id), saved.config);
      });

      it('keeps a secret given on create, and does not report it as generated', async () => {
        const project = newProject();
        const secret = newWebhookSecret();
        const saved = await saveConfig(store.db, keyring, project, configInput(), secret);
        assert.equal(saved.generatedSecret, undefined);
        assert.deepEqual((await getConfig(store.db, keyring, project, saved.config.id)).secrets, [secret]);
      });

      it('keeps a payload template of null (the default payload) as null', async () => {
        const project = newProject();
        const saved = await saveConfig(store.db, keyring, project, configInput({ payload: { template: null } }));
        assert.deepEqual((await getConfig(store.db, keyring, project, saved.config.id)).payload, { template: null });
      });

      it('updates a config in place: same id, new fields, the secret kept unless a new one is given', async () => {
        const project = newProject();
        const secret = newWebhookSecret();
        const first = await saveConfig(store.db, keyring, project, configInput(), secret);
        const id = first.config.id;
        const changed = configInput({
          id,
          name: 'Orders: everything',
          enabled: false,
          conditions: [{ type: 'success' }],
          webhook: { url: 'https://other.example.com/hook', headers: { 'X-Other': 'yes' }, timeoutMs: 2000 },
          payload: { template: { plain: true } },
          retry: { maxAttempts: 10, initialIntervalMs: 500, backoffCoefficient: 1.5, maxIntervalMs: 5000, maxDurationMs: 120_000 },
        });
        const updated = await saveConfig(store.db, keyring, project, changed);
        assert.equal(updated.created, false);
        assert.equal(updated.generatedSecret, undefined);
        assert.equal(updated.config.id, id);
        assert.equal(updated.config.name, 'Orders: everything');
        assert.equal(updated.config.enabled, false);
        assert.deepEqual(updated.config.conditions, [{ type: 'success' }]);
        assert.deepEqual(updated.config.webhook, { url: 'https://other.example.com/hook', headers: { 'X-Other': 'yes' }, timeoutMs: 2000 });
        assert.deepEqual(updated.config.payload, { template: { plain: true } });
        assert.deepEqual(updated.config.retry, changed.retry);
        assert.deepEqual(updated.config.secrets, [secret]);
        assert.equal(updated.config.createdAt, first.config.createdAt);
        assert.ok(Date.parse(updated.config.updatedAt) >= Date.parse(first.config.updatedAt));
        assert.deepEqual(await getConfig(store.db, keyring, project, id), updated.config);
        assert.equal((await listConfigs(store.db, keyring, project)).length, 1, 'an update adds no row');

        const newSecret = newWebhookSecret();
        const rotated = await saveConfig(store.db, keyring, project, changed, newSecret);
        assert.equal(rotated.config.secrets[0], newSecret, 'the new secret signs first');
        assert.deepEqual((await getConfig(store.db, keyring, project, id)).secrets[0], newSecret);
      });

      it('re-enabling a config clears the reason the service disabled it for', async () => {
        const project = newProject();
        const { config } = await saveConfig(store.db, keyring, project, configInput());
        await store.db.query(`UPDATE alert_configs SET enabled = false, disabled_reason = 'receiver answered 410 Gone' WHERE id = $1`, [config.id]);
        assert.equal((await getConfig(store.db, keyring, project, config.id)).disabledReason, 'receiver answered 410 Gone');
        const stillOff = await saveConfig(store.db, keyring, project, configInput({ id: config.id, enabled: false, name: 'renamed' }));
        assert.equal(stillOff.config.disabledReason, 'receiver answered 410 Gone');
        const back = await saveConfig(store.db, keyring, project, configInput({ id: config.id, enabled: true }));
        assert.equal(back.config.enabled, true);
        assert.equal(back.config.disabledReason, null);
      });

      it('lists the configs of a project, per workflow in creation order, never those of another project', async () => {
        const project = newProject();
        const other = newProject();
        const a1 = await saveConfig(store.db, keyring, project, configInput({ workflowId: 'wf_a', name: 'a1' }));
        const b1 = await saveConfig(store.db, keyring, project, configInput({ workflowId: 'wf_b', name: 'b1' }));
        const a2 = await saveConfig(store.db, keyring, project, configInput({ workflowId: 'wf_a', name: 'a2' }));
        await saveConfig(store.db, keyring, other, configInput({ workflowId: 'wf_a', name: 'someone else' }));

        const forA = await listConfigs(store.db, keyring, project, 'wf_a');
        assert.deepEqual(forA.map((c) => c.name), ['a1', 'a2']);
        assert.deepEqual(forA[0], a1.config);
        assert.deepEqual(forA[1], a2.config);
        assert.deepEqual((await listConfigs(store.db, keyring, project)).map((c) => c.name), ['a1', 'a2', 'b1']);
        assert.deepEqual(await listConfigs(store.db, keyring, project, 'wf_none'), []);
        assert.deepEqual((await listConfigs(store.db, keyring, other)).map((c) => c.name), ['someone else']);
        assert.deepEqual(await listConfigs(store.db, keyring, newProject()), []);
        assert.equal(b1.config.workflowId, 'wf_b');
      });

      it('deletes a config; a second delete is not_found', async () => {
        const project = newProject();
        const { config } = await saveConfig(store.db, keyring, project, configInput());
        await deleteConfig(store.db, keyring, project, config.id);
        await rejectsNotFound(getConfig(store.db, keyring, project, config.id));
        assert.deepEqual(await listConfigs(store.db, keyring, project), []);
        await rejectsNotFound(deleteConfig(store.db, keyring, project, config.id));
      });

      it('another project sees not_found for get and delete, and the config stays', async () => {
        const owner = newProject();
        const stranger = newProject();
        const { config } = await saveConfig(store.db, keyring, owner, configInput());
        await rejectsNotFound(getConfig(store.db, keyring, stranger, config.id));
        await rejectsNotFound(deleteConfig(store.db, keyring, stranger, config.id));
        assert.deepEqual(await getConfig(store.db, keyring, owner, config.id), config);
      });

      it("updating another project's config throws not_found and changes nothing", async () => {
        const owner = newProject();
        const stranger = newProject();
        const secret = newWebhookSecret();
        const { config } = await saveConfig(store.db, keyring, owner, configInput(), secret);
        const rowBefore = await rawConfigRow(store.db, config.id);

        const hijack = configInput({ id: config.id, name: 'hijacked', webhook: { url: 'https://attacker.example.com/' } });
        await rejectsNotFound(saveConfig(store.db, keyring, stranger, hijack, newWebhookSecret()));

        assert.deepEqual(await rawConfigRow(store.db, config.id), rowBefore);
        assert.deepEqual(await getConfig(store.db, keyring, owner, config.id), config);
        assert.deepEqual(await listConfigs(store.db, keyring, stranger), []);
      });

      it('an update naming an id that does not exist throws not_found and creates nothing', async () => {
        const project = newProject();
        await rejectsNotFound(saveConfig(store.db, keyring, project, configInput({ id: 'cfg_does_not_exist' })));
        assert.deepEqual(await listConfigs(store.db, keyring, project), []);
        assert.deepEqual(await store.db.query('SELECT id FROM alert_configs WHERE id = $1', ['cfg_does_not_exist']), []);
      });

      it('the public face of a config has neither secret nor project', async () => {
        const project = newProject();
        const { config } = await saveConfig(store.db, keyring, project, configInput());
        const visible = publicConfig(config);
        assert.ok(!('secrets' in visible) && !('projectId' in visible));
        assert.ok(!JSON.stringify(visible).includes(config.secrets[0]));
        assert.deepEqual(Object.keys(visible).sort(), ['conditions', 'createdAt', 'disabledReason', 'enabled', 'id', 'name', 'payload', 'retry', 'updatedAt', 'webhook', 'workflowId']);
      });
    });

    describe('encryption at rest', () => {
      const k1 = newKeySpec('k1');
      const k2 = newKeySpec('k2');

      it('keeps the URL, header values and secret only in the sealed column, with its key id beside it', async () => {
        const project = newProject();
        const keyring = parseKeyring(k1);
        const urlMarker = `url-${randomBytes(8).toString('hex')}`;
        const headerValue = `Bearer header-${randomBytes(8).toString('hex')}`;
        const secret = newWebhookSecret();
        const url = `https://${urlMarker}.example.com/alerts/${urlMarker}?token=${urlMarker}`;
        const { config } = await saveConfig(store.db, keyring, project, configInput({ webhook: { url, headers: { Authorization: headerValue } } }), secret);

        const rows = await store.db.query('SELECT * FROM alert_configs WHERE project_id = $1', [project]);
        assert.equal(rows.length, 1);
        const everything = JSON.stringify(rows);
        for (const [what, plain] of [
          ['URL', url],
          ['URL part', urlMarker],
          ['header value', headerValue],
          ['header value part', headerValue.slice('Bearer '.length)],
          ['secret', secret],
          ['secret body', secret.slice('whsec_'.length)],
        ]) {
          assert.ok(!everything.includes(plain), `the ${what} must not appear in a raw row`);
        }
        assert.ok(!everything.includes('Authorization'), 'header names are sealed too');
        const row = rows[0];
        assert.equal(row.key_id, 'k1');
        assert.equal(typeof row.sealed, 'string');
        // iv (12) + at least the JSON + tag (16)
        assert.ok(Buffer.from(row.sealed as string, 'base64').length > 12 + 16 + url.length);
        // and it all comes back when read with the key
        const read = await getConfig(store.db, keyring, project, config.id);
        assert.deepEqual(read.webhook, { url, headers: { Authorization: headerValue }, timeoutMs: 10_000 });
        assert.deepEqual(read.secrets, [secret]);
      });

      it('after a key rotation (new key first) old rows still read, and a save re-seals them with the new key', async () => {
        const project = newProject();
        const old = parseKeyring(k1);
        const rotated = parseKeyring(`${k2},${k1}`);
        const secret = newWebhookSecret();
        const { config } = await saveConfig(store.db, old, project, configInput(), secret);
        const sealedBefore = (await rawConfigRow(store.db, config.id)).sealed;

        assert.deepEqual(await getConfig(store.db, rotated, project, config.id), config);
        assert.deepEqual(await listConfigs(store.db, rotated, project), [config]);
        assert.equal((await rawConfigRow(store.db, config.id)).key_id, 'k1', 'reading does not rewrite the row');

        const resaved = await saveConfig(store.db, rotated, project, configInput({ id: config.id }));
        const row = await rawConfigRow(store.db, config.id);
        assert.equal(row.key_id, 'k2');
        assert.notEqual(row.sealed, sealedBefore);
        assert.deepEqual(resaved.config.secrets, [secret], 'the secret survives re-sealing');
        // the old key is no longer needed for this row
        assert.deepEqual(await getConfig(store.db, parseKeyring(k2), project, config.id), resaved.config);
      });

      it('a keyring without the key of a row fails with an error naming the missing key, and changes nothing', async () => {
        const project = newProject();
        const { config } = await saveConfig(store.db, parseKeyring(k1), project, configInput());
        const rowBefore = await rawConfigRow(store.db, config.id);
        const withoutK1 = parseKeyring(k2);
        const clear = /encryption key "k1" is not in the keyring \(ALERTS_ENCRYPTION_KEYS\)/;
        await assert.rejects(getConfig(store.db, withoutK1, project, config.id), clear);
        await assert.rejects(listConfigs(store.db, withoutK1, project), clear);
        await assert.rejects(saveConfig(store.db, withoutK1, project, configInput({ id: config.id, name: 'renamed' })), clear);
        assert.deepEqual(await rawConfigRow(store.db, config.id), rowBefore);
      });

      it('a key with the right id but other bytes does not open a row', async () => {
        const project = newProject();
        const { config } = await saveConfig(store.db, parseKeyring(k1), project, configInput());
        await assert.rejects(getConfig(store.db, parseKeyring(newKeySpec('k1')), project, config.id), /unable to authenticate data|auth/i);
      });

      it('sealed data copied onto another config does not open (it is bound to its config id)', async () => {
        const project = newProject();
        const keyring = parseKeyring(k1);
        const victim = await saveConfig(store.db, keyring, project, configInput({ name: 'victim' }));
        const attacker = await saveConfig(store.db, keyring, project, configInput({ name: 'attacker', webhook: { url: 'https://attacker.example.com/' } }));
        await store.db.query(
          'UPDATE alert_configs SET sealed = (SELECT sealed FROM alert_configs WHERE id = $1), key_id = (SELECT key_id FROM alert_configs WHERE id = $1) WHERE id = $2',
          [victim.config.id, attacker.config.id],
        );
        await assert.rejects(getConfig(store.db, keyring, project, attacker.config.id), /unable to authenticate data|auth/i);
        assert.deepEqual(await getConfig(store.db, keyring, project, victim.config.id), victim.config);
      });

      it('a row moved to another project does not open there (sealed data is bound to its project too)', async () => {
        const project = newProject();
        const other = newProject();
        const keyring = parseKeyring(k1);
        const { config } = await saveConfig(store.db, keyring, project, configInput());
        await store.db.query('UPDATE alert_configs SET project_id = $1 WHERE id = $2', [other, config.id]);
        await assert.rejects(getConfig(store.db, keyring, other, config.id), /unable to authenticate data|auth/i);
      });
    });

    describe('API tokens', () => {

      it('addToken stores a token for a project, and projectForToken finds it', async () => {
        const project = newProject();
        const token = `mha_test_${randomBytes(16).toString('hex')}`;
        const before = await countTokens(store.db);
        await addToken(store.db, token, project, 'seeded');
        assert.equal(await projectForToken(store.db, token), project);
        assert.equal(await countTokens(store.db), before + 1);
        assert.equal(await projectForToken(store.db, `${token}x`), undefined);
        assert.equal(await projectForToken(store.db, ''), undefined);
      });

      it('stores the token hashed: the raw token is in no row', async () => {
        const project = newProject();
        const token = `mha_test_${randomBytes(16).toString('hex')}`;
        await addToken(store.db, token, project, 'label');
        const created = await createToken(store.db, project);
        assert.match(created, /^mha_[A-Za-z0-9_-]{43}$/);
        assert.equal(await projectForToken(store.db, created), project);

        const rows = await store.db.query<{ token_hash: string }>('SELECT * FROM api_tokens');
        const everything = JSON.stringify(rows);
        for (const raw of [token, created]) {
          assert.ok(!everything.includes(raw), 'a raw token must not be stored');
          assert.ok(rows.some((r) => r.token_hash === hashToken(raw)), 'its SHA-256 is');
        }
      });

      it('adding a known token again keeps its first project', async () => {
        const first = newProject();
        const token = `mha_test_${randomBytes(16).toString('hex')}`;
        await addToken(store.db, token, first);
        const count = await countTokens(store.db);
        await addToken(store.db, token, newProject());
        assert.equal(await projectForToken(store.db, token), first);
        assert.equal(await countTokens(store.db), count);
      });
    });
  });
}
