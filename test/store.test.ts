import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashToken, newKeySpec, newWebhookSecret, parseKeyring, seal, type Keyring } from '../lib/crypto';
import { AlertsError } from '../lib/errors';
import { alertConfigInputSchema, type AlertConfigInput } from '../lib/schemas';
import { deleteConfig, getConfig, listConfigs, publicConfig, rotateSecret, saveConfig } from '../store/configs';
import { initPgliteDir, openPglite, openPostgres, PGLITE_SHARED_BUFFERS, type Db } from '../store/db';
import { migrate, MIGRATIONS_DIR } from '../store/migrate';
import { addToken, countTokens, createToken, projectForToken } from '../store/tokens';
import { makeScratchDir } from './support/scratch';
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

/** asserts that no column of the config's raw row, and no audit entry of it, holds any of `hidden` */
async function assertStoredNowhere(db: Db, configId: string, hidden: Record<string, string>): Promise<void> {
  const row = await rawConfigRow(db, configId);
  const audit = await db.query('SELECT * FROM alert_audit_log WHERE config_id = $1', [configId]);
  for (const [what, plain] of Object.entries(hidden)) {
    for (const [column, value] of Object.entries(row)) {
      assert.ok(!JSON.stringify(value ?? null).includes(plain), `alert_configs.${column} holds the ${what}`);
    }
    assert.ok(!JSON.stringify(audit).includes(plain), `alert_audit_log holds the ${what}`);
  }
}

/** The migration that seals payload templates, and a folder with the migrations before it: the schema it upgrades. */
const SEAL_TEMPLATES_MIGRATION = '005_seal_payload_templates.sql';
function migrationsBefore(file: string): string {
  const dir = makeScratchDir('meshhook-alerts-old-migrations-');
  for (const f of MIGRATIONS.filter((m) => m < file)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(dir, f));
  return dir;
}

/** A config row as the code before migration 005 wrote it: the template in clear in payload_template. */
async function insertClearTemplateRow(
  db: Db,
  keyring: Keyring,
  row: { id: string; projectId: string; url: string; headers: Record<string, string>; secret: string; template: unknown },
): Promise<void> {
  const sealed = seal(keyring, JSON.stringify({ url: row.url, headers: row.headers, secrets: [{ secret: row.secret, expiresAt: null }] }), `${row.projectId}/${row.id}`);
  await db.query(
    `INSERT INTO alert_configs (id, project_id, workflow_id, name, enabled, conditions, payload_template, retry, timeout_ms, key_id, sealed)
     VALUES ($1, $2, 'wf_orders', 'before 005', true, '[{"type":"failure"}]'::jsonb, $3::jsonb, $4::jsonb, 5000, $5, $6)`,
    [row.id, row.projectId, JSON.stringify(row.template), JSON.stringify(configInput().retry), sealed.keyId, sealed.ciphertext],
  );
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

      describe(`${SEAL_TEMPLATES_MIGRATION}: payload templates saved in clear before it`, () => {
        const k1 = newKeySpec('k1');
        const k2 = newKeySpec('k2');
        let oldMigrations: string;
        before(() => {
          oldMigrations = migrationsBefore(SEAL_TEMPLATES_MIGRATION);
        });
        after(() => fs.rmSync(oldMigrations, { recursive: true, force: true }));

        /** a store at the schema before the migration, with rows the code of then wrote */
        async function withOldStore(fn: (db: Db) => Promise<void>): Promise<void> {
          await withStore(
            kind,
            async ({ db }) => {
              assert.deepEqual(await migrate(db, undefined, { dir: oldMigrations }), MIGRATIONS.filter((m) => m < SEAL_TEMPLATES_MIGRATION));
              await fn(db);
            },
            { migrated: false },
          );
        }

        it('reads them back after the migration, sealed under the newest key, with the clear column gone and the audit log masked', async () => {
          await withOldStore(async (db) => {
            const project = newProject();
            const credential = `xoxb-${randomBytes(8).toString('hex')}`;
            const headerValue = `Bearer hv-${randomBytes(8).toString('hex')}`;
            const secret = newWebhookSecret();
            const template = { text: '{{ workflow.name }} failed', token: credential, blocks: [{ auth: `Bearer ${credential}` }] };
            const withTemplate = { id: 'cfg_old_with_template', projectId: project, url: 'https://hooks.example.com/old', headers: { Authorization: headerValue }, secret, template };
            const withDefault = { id: 'cfg_old_default_payload', projectId: project, url: 'https://hooks.example.com/default', headers: {}, secret, template: null };
            await insertClearTemplateRow(db, parseKeyring(k1), withTemplate);
            await insertClearTemplateRow(db, parseKeyring(k1), withDefault);
            // the audit entry the code of then wrote for the create, template in clear
            await db.query(
              `INSERT INTO alert_audit_log (project_id, token_id, action, config_id, workflow_id, changes) VALUES ($1, NULL, 'config.updated', $2, 'wf_orders', $3::jsonb)`,
              [project, withTemplate.id, JSON.stringify([{ field: 'name', from: 'a', to: 'b' }, { field: 'payload.template', from: null, to: template }, { field: 'payload.template', from: template, to: null }])],
            );
            assert.ok(JSON.stringify(await rawConfigRow(db, withTemplate.id)).includes(credential), 'the old schema holds the template in clear');

            const lines: string[] = [];
            const rotated = parseKeyring(`${k2},${k1}`);
            assert.deepEqual(await migrate(db, (line) => lines.push(line), { keyring: rotated }), MIGRATIONS.filter((m) => m >= SEAL_TEMPLATES_MIGRATION));
            assert.ok(lines.includes(`${SEAL_TEMPLATES_MIGRATION}: sealed the payload templates of 1 alert config`), lines.join('\n'));

            const columns = await db.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = 'alert_configs'`);
            assert.ok(!columns.some((c) => c.column_name === 'payload_template'), 'the clear column is dropped');
            await assertStoredNowhere(db, withTemplate.id, { 'template credential': credential, 'header value': headerValue });
            assert.equal((await rawConfigRow(db, withTemplate.id)).key_id, 'k2', 'a sealed row is re-sealed with the first key');
            assert.equal((await rawConfigRow(db, withDefault.id)).key_id, 'k1', 'a row without a template is left as it was');

            const read = await getConfig(db, parseKeyring(k2), project, withTemplate.id);
            assert.deepEqual(read.payload, { template });
            assert.deepEqual(read.webhook, { url: withTemplate.url, headers: withTemplate.headers, timeoutMs: 5000 });
            assert.deepEqual(read.secrets, [secret]);
            assert.deepEqual((await getConfig(db, rotated, project, withDefault.id)).payload, { template: null });

            const [entry] = await db.query<{ changes: unknown }>('SELECT changes FROM alert_audit_log WHERE config_id = $1', [withTemplate.id]);
            assert.deepEqual(entry.changes, [
              { field: 'name', from: 'a', to: 'b' },
              { field: 'payload.template', from: null, to: '***' },
              { field: 'payload.template', from: '***', to: null },
            ]);

            // and the store goes on as usual: an update, a rotation, a delete
            await saveConfig(db, rotated, project, configInput({ id: withTemplate.id, payload: { template: { text: 'new' } } }));
            await rotateSecret(db, rotated, project, withTemplate.id);
            assert.deepEqual((await getConfig(db, rotated, project, withTemplate.id)).payload, { template: { text: 'new' } });
            await deleteConfig(db, rotated, project, withTemplate.id);
            await assertStoredNowhere(db, withDefault.id, { 'template credential': credential });
          });
        });

        it('without the keyring it refuses to run while a template is in clear, says why, and changes nothing', async () => {
          await withOldStore(async (db) => {
            const project = newProject();
            const template = { token: `xoxb-${randomBytes(8).toString('hex')}` };
            await insertClearTemplateRow(db, parseKeyring(k1), { id: 'cfg_old_no_keyring', projectId: project, url: 'https://hooks.example.com/a', headers: {}, secret: newWebhookSecret(), template });
            const rowBefore = await rawConfigRow(db, 'cfg_old_no_keyring');
            await assert.rejects(migrate(db), new RegExp(`migration ${SEAL_TEMPLATES_MIGRATION} failed: 1 alert config has a payload template in clear; sealing it needs the encryption keyring`));
            assert.deepEqual(await rawConfigRow(db, 'cfg_old_no_keyring'), rowBefore);
            const recorded = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
            assert.deepEqual(recorded.map((r) => r.version), MIGRATIONS.filter((m) => m < SEAL_TEMPLATES_MIGRATION));

            // a key that does not open the row is refused the same way, naming the config
            await assert.rejects(migrate(db, undefined, { keyring: parseKeyring(k2) }), /cfg_old_no_keyring.*encryption key "k1" is not in the keyring/);
            assert.deepEqual(await rawConfigRow(db, 'cfg_old_no_keyring'), rowBefore);

            await migrate(db, undefined, { keyring: parseKeyring(k1) });
            assert.deepEqual((await getConfig(db, parseKeyring(k1), project, 'cfg_old_no_keyring')).payload, { template });
          });
        });

        it('needs no keyring when no template is in clear (only default payloads)', async () => {
          await withOldStore(async (db) => {
            const project = newProject();
            await insertClearTemplateRow(db, parseKeyring(k1), { id: 'cfg_old_only_default', projectId: project, url: 'https://hooks.example.com/a', headers: {}, secret: newWebhookSecret(), template: null });
            assert.deepEqual(await migrate(db), MIGRATIONS.filter((m) => m >= SEAL_TEMPLATES_MIGRATION));
            assert.deepEqual((await getConfig(db, parseKeyring(k1), project, 'cfg_old_only_default')).payload, { template: null });
          });
        });
      });
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
        assert.deepEqual(Object.keys(visible).sort(), ['conditions', 'createdAt', 'dedup', 'disabledReason', 'enabled', 'grouping', 'health', 'id', 'name', 'payload', 'recovery', 'repeatIntervalSeconds', 'retry', 'throttle', 'updatedAt', 'webhook', 'workflowId']);
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

      it('keeps the payload template and header values only in the sealed column: a credential in either is in no column of the row, nor in the audit log', async () => {
        const project = newProject();
        const keyring = parseKeyring(k1);
        const headerToken = `sk_live_${randomBytes(8).toString('hex')}`;
        const templateToken = `xoxb-${randomBytes(8).toString('hex')}`;
        const template = { text: '{{ workflow.name }} failed', token: templateToken, nested: [{ auth: `Bearer ${templateToken}` }] };
        const webhook = { url: 'https://hooks.example.com/a', headers: { 'X-Api-Key': headerToken }, timeoutMs: 5000 };
        const { config } = await saveConfig(store.db, keyring, project, configInput({ webhook, payload: { template } }));
        await assertStoredNowhere(store.db, config.id, { 'header value': headerToken, 'payload template credential': templateToken });
        assert.deepEqual((await getConfig(store.db, keyring, project, config.id)).payload, { template });

        // an update and a secret rotation re-seal both, and nothing of the old or new ones is in clear
        const headerToken2 = `sk_live_${randomBytes(8).toString('hex')}`;
        const templateToken2 = `xoxb-${randomBytes(8).toString('hex')}`;
        const template2 = { text: `token ${templateToken2}` };
        await saveConfig(store.db, keyring, project, configInput({ id: config.id, webhook: { ...webhook, headers: { 'X-Api-Key': headerToken2 } }, payload: { template: template2 } }));
        await rotateSecret(store.db, keyring, project, config.id);
        await assertStoredNowhere(store.db, config.id, {
          'old header value': headerToken, 'old template credential': templateToken, 'new header value': headerToken2, 'new template credential': templateToken2,
        });
        const read = await getConfig(store.db, keyring, project, config.id);
        assert.deepEqual(read.payload, { template: template2 });
        assert.deepEqual(read.webhook.headers, { 'X-Api-Key': headerToken2 });
      });

      it('a payload template keeps the key order it was written in', async () => {
        const project = newProject();
        const template = { zeta: 'z', a: 'a', middle: { yy: 1, b: 2 } };
        const { config } = await saveConfig(store.db, parseKeyring(k1), project, configInput({ payload: { template } }));
        const read = await getConfig(store.db, parseKeyring(k1), project, config.id);
        assert.equal(JSON.stringify(read.payload.template), JSON.stringify(template));
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

      it('after a key rotation, a secret rotation re-seals the row, template included, with the new key', async () => {
        const project = newProject();
        const template = { text: `credential ${randomBytes(8).toString('hex')}` };
        const { config } = await saveConfig(store.db, parseKeyring(k1), project, configInput({ payload: { template } }));
        const rotated = parseKeyring(`${k2},${k1}`);
        await rotateSecret(store.db, rotated, project, config.id);
        assert.equal((await rawConfigRow(store.db, config.id)).key_id, 'k2');
        const read = await getConfig(store.db, parseKeyring(k2), project, config.id);
        assert.deepEqual(read.payload, { template });
        assert.deepEqual(read.webhook, config.webhook);
        assert.equal(read.secrets.length, 2, 'the new secret and the old one in its grace period');
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

      it('the sealed parts of a config with a credential in its template, copied onto a config of another project, do not open there', async () => {
        const keyring = parseKeyring(k1);
        const victimProject = newProject();
        const attackerProject = newProject();
        const credential = `xoxb-${randomBytes(8).toString('hex')}`;
        const victim = await saveConfig(store.db, keyring, victimProject, configInput({ payload: { template: { token: credential } } }));
        const attacker = await saveConfig(store.db, keyring, attackerProject, configInput({ name: 'attacker' }));
        await store.db.query(
          'UPDATE alert_configs SET sealed = (SELECT sealed FROM alert_configs WHERE id = $1), key_id = (SELECT key_id FROM alert_configs WHERE id = $1) WHERE id = $2',
          [victim.config.id, attacker.config.id],
        );
        await assert.rejects(getConfig(store.db, keyring, attackerProject, attacker.config.id), /unable to authenticate data|auth/i);
        await assert.rejects(listConfigs(store.db, keyring, attackerProject), /unable to authenticate data|auth/i);
        // moved whole, the row does not open either
        await store.db.query('UPDATE alert_configs SET project_id = $1 WHERE id = $2', [attackerProject, victim.config.id]);
        await assert.rejects(getConfig(store.db, keyring, attackerProject, victim.config.id), /unable to authenticate data|auth/i);
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

describe("PGlite's data directory", function () {
  this.timeout(120_000);
  const made: string[] = [];
  const scratch = () => {
    const dir = makeScratchDir('meshhook-alerts-pglite-dir-');
    made.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is created in a child process on first open, then opened in place: data written before a close is there after, with initdb\'s settings and the service\'s shared buffers', async () => {
    const parent = scratch();
    const dir = path.join(parent, 'pglite');
    await initPgliteDir(dir);
    assert.ok(fs.existsSync(path.join(dir, 'PG_VERSION')), 'initdb wrote the data directory');
    assert.deepEqual(fs.readdirSync(parent), ['pglite'], 'no initdb folder is left beside it');
    const first = await openPglite(dir);
    await first.exec('CREATE TABLE kept (v text)');
    await first.query('INSERT INTO kept VALUES ($1)', ['written before the close']);
    await first.close();
    const again = await openPglite(dir);
    try {
      assert.deepEqual(await again.query('SELECT v FROM kept'), [{ v: 'written before the close' }]);
      assert.deepEqual(await again.query('SHOW shared_buffers'), [{ shared_buffers: PGLITE_SHARED_BUFFERS }]);
      // postgresql.conf as initdb wrote it (time zone, text search), not replaced by the service's setting
      assert.deepEqual(await again.query('SHOW timezone'), [{ TimeZone: 'UTC' }]);
      assert.deepEqual(await again.query('SHOW default_text_search_config'), [{ default_text_search_config: 'pg_catalog.english' }]);
    } finally {
      await again.close();
    }
  });

  it('created by two opens at once is made once, and both use it', async () => {
    const parent = scratch();
    const dir = path.join(parent, 'pglite');
    await Promise.all([initPgliteDir(dir), initPgliteDir(dir)]);
    assert.deepEqual(fs.readdirSync(parent), ['pglite']);
    const db = await openPglite(dir);
    try {
      assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('that holds files but no PG_VERSION (not a database) is refused, and left as it was', async () => {
    const dir = path.join(scratch(), 'pglite');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    await assert.rejects(openPglite(dir), (err: Error) => {
      assert.equal(err.message, `could not create the PGlite data directory ${dir}: it holds files (notes.txt) but no PG_VERSION; move it away, or point DATA_DIR elsewhere`);
      return true;
    });
    assert.deepEqual(fs.readdirSync(dir), ['notes.txt']);
  });

  it('that cannot be created fails with an error naming it and the reason', async () => {
    const file = path.join(scratch(), 'a-file');
    fs.writeFileSync(file, 'not a directory');
    const dir = path.join(file, 'pglite');
    await assert.rejects(openPglite(dir), (err: Error) => {
      assert.match(err.message, new RegExp(`^could not create the PGlite data directory ${dir}: ENOTDIR`));
      return true;
    });
  });
});
