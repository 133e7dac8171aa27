import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { signingSecrets } from '../store/configs';
import { NOISE_OFF } from '../lib/schemas';
import { useStack, type TestStack } from './support/stack';

/**
 * The alert config API (POST/GET/DELETE /api/alerts/config...) through real HTTP against the shared
 * embedded stack: status codes, the JSON a client reads, the configs read back through the API, and
 * the raw alert_configs rows. The default token belongs to project "default".
 */

const DEFAULT_PROJECT = 'default';
const MiB = 1024 * 1024;

/** One HTTP answer as a client saw it, kept so the last test can search all of them for secrets. */
interface Answer {
  what: string;
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

const answers: Answer[] = [];
/** every secret this file knows, with the one answer allowed to show it (the create answer that generated it) */
const secrets: { secret: string; shownIn?: Answer }[] = [];

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
const uniqueWorkflowId = (label: string) => `wf_cfgapi_${label}_${randomBytes(4).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** a full config body in the shape of DESIGN.md, with test-sized values */
function configFor(workflowId: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workflowId,
    name: 'Orders failures to on-call',
    enabled: true,
    conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 300 }],
    webhook: { url: 'https://hooks.example.com/alerts/{{ workflow.id }}', headers: { 'X-Team': 'ops' }, timeoutMs: 5000 },
    payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}' } },
    retry: { maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1000, maxDurationMs: 60_000 },
    ...NOISE_OFF,
    ...fields,
  };
}

/** the parts of a config answer that the service sets itself */
function withoutServiceFields(config: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, createdAt: _createdAt, updatedAt: _updatedAt, disabledReason: _disabledReason, health: _health, ...rest } = config;
  return rest;
}

describe('alert config API', function () {
  let stack: TestStack;

  interface RequestOptions {
    /** a value is sent as JSON; a string or a stream is sent as is */
    body?: unknown;
    contentType?: string | null;
    /** an Authorization header value; default: the default project's token; null: none */
    authorization?: string | null;
    token?: string;
  }

  /** Real HTTP against the stack's API; every answer is recorded. */
  async function request(method: string, path: string, options: RequestOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = {};
    const authorization = options.authorization !== undefined ? options.authorization : `Bearer ${options.token ?? stack.token}`;
    if (authorization !== null) headers.authorization = authorization;
    let body: RequestInit['body'];
    if (options.body !== undefined) {
      const raw = typeof options.body === 'string' || options.body instanceof ReadableStream;
      body = raw ? (options.body as string | ReadableStream) : JSON.stringify(options.body);
      const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
      if (contentType !== null) headers['content-type'] = contentType;
    }
    const init: RequestInit & { duplex?: 'half' } = { method, headers, body };
    if (body instanceof ReadableStream) init.duplex = 'half';
    const res = await fetch(`${stack.apiUrl}${path}`, init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    const answer: Answer = { what: `${method} ${path}`, status: res.status, headers: res.headers, text, body: parsed };
    answers.push(answer);
    return answer;
  }

  const saveConfig = (body: unknown, options: RequestOptions = {}) => request('POST', '/api/alerts/config', { ...options, body });
  const listWorkflow = (workflowId: string, options: RequestOptions = {}) => request('GET', `/api/alerts/config/${encodeURIComponent(workflowId)}`, options);
  const listAll = (options: RequestOptions = {}) => request('GET', '/api/alerts/config', options);

  function assertStatus(answer: Answer, status: number): void {
    assert.equal(answer.status, status, `${answer.what} answered ${answer.status}, expected ${status}: ${answer.text.slice(0, 500)}`);
  }

  function assertError(answer: Answer, status: number, code: string): void {
    assertStatus(answer, status);
    assert.match(answer.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(answer.body?.error?.code, code, answer.text);
    assert.equal(typeof answer.body.error.message, 'string');
    assert.ok(answer.body.error.message.length > 0, 'the error has a message');
  }

  /** creates a config in the default project (or the token's) and returns the answer's config and generated secret */
  async function createConfig(config: Record<string, unknown>, options: RequestOptions & { secret?: string } = {}) {
    const { secret, ...rest } = options;
    const answer = await saveConfig(secret ? { config, secret } : { config }, rest);
    assertStatus(answer, 201);
    if (secret) secrets.push({ secret });
    if (answer.body.secret) secrets.push({ secret: answer.body.secret, shownIn: answer });
    return { config: answer.body.config as Record<string, any>, generatedSecret: answer.body.secret as string | undefined, answer };
  }

  async function configsOf(workflowId: string): Promise<Record<string, any>[]> {
    const answer = await listWorkflow(workflowId);
    assertStatus(answer, 200);
    return answer.body.configs;
  }

  async function allConfigIds(): Promise<string[]> {
    const answer = await listAll();
    assertStatus(answer, 200);
    return answer.body.configs.map((c: { id: string }) => c.id);
  }

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
  });

  describe('creating a config', () => {
    it('creates a config (201) and shows the generated whsec_ secret (base64 of 32 bytes) once, outside the config', async () => {
      const workflowId = uniqueWorkflowId('create');
      const input = configFor(workflowId);
      const before = Date.now();
      const { config, generatedSecret, answer } = await createConfig(input);

      assert.match(config.id, /^cfg_[A-Za-z0-9_-]+$/);
      assert.deepEqual(withoutServiceFields(config), input);
      assert.equal(config.disabledReason, null);
      assert.equal(config.createdAt, config.updatedAt);
      assert.ok(Math.abs(Date.parse(config.createdAt) - before) < 60_000, `createdAt ${config.createdAt} is now`);
      assert.equal(new Date(config.createdAt).toISOString(), config.createdAt);

      assert.ok(generatedSecret, 'the create answer carries the generated secret');
      assert.match(generatedSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      const bytes = Buffer.from(generatedSecret.slice('whsec_'.length), 'base64');
      assert.equal(bytes.length, 32);
      assert.equal(`whsec_${bytes.toString('base64')}`, generatedSecret);
      assert.deepEqual(Object.keys(answer.body).sort(), ['config', 'secret']);
      assert.ok(!JSON.stringify(config).includes(generatedSecret), 'the config object itself never carries the secret');

      // read back: the same config, without the secret; the service signs with the secret it showed
      const listed = await configsOf(workflowId);
      assert.deepEqual(listed, [config]);
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, config.id), [generatedSecret]);
    });

    it('generates a different secret for every config', async () => {
      const workflowId = uniqueWorkflowId('two-secrets');
      const first = await createConfig(configFor(workflowId));
      const second = await createConfig(configFor(workflowId, { name: 'second' }));
      assert.ok(first.generatedSecret && second.generatedSecret);
      assert.notEqual(first.generatedSecret, second.generatedSecret);
      assert.notEqual(first.config.id, second.config.id);
    });

    it('fills the defaults of a minimal config: enabled, no headers, 10 s timeout, the default retry policy, the default payload', async () => {
      const workflowId = uniqueWorkflowId('defaults');
      const { config } = await createConfig({
        workflowId,
        name: 'minimal',
        conditions: [{ type: 'success' }],
        webhook: { url: 'https://hooks.example.com/minimal' },
      });
      assert.deepEqual(withoutServiceFields(config), {
        workflowId,
        name: 'minimal',
        enabled: true,
        conditions: [{ type: 'success' }],
        webhook: { url: 'https://hooks.example.com/minimal', headers: {}, timeoutMs: 10_000 },
        payload: { template: null },
        retry: { maxAttempts: 8, initialIntervalMs: 1000, backoffCoefficient: 2, maxIntervalMs: 3_600_000, maxDurationMs: 86_400_000 },
        // noise control (docs/noise-control.md): all off
        grouping: null, recovery: false, throttle: null, dedup: null, repeatIntervalSeconds: null,
      });
      assert.deepEqual(await configsOf(workflowId), [config]);
    });

    it('accepts a secret given at the top level, signs with it, and does not echo it back', async () => {
      const workflowId = uniqueWorkflowId('top-secret');
      const secret = newSecret();
      const { config, answer } = await createConfig(configFor(workflowId), { secret });
      assert.deepEqual(Object.keys(answer.body), ['config'], 'no secret in the answer when the user chose it');
      assert.ok(!answer.text.includes(secret) && !answer.text.includes(secret.slice(6)));
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, config.id), [secret]);
      assert.deepEqual(await configsOf(workflowId), [config]);
    });

    it('accepts a secret given inside config, signs with it, and does not echo it back', async () => {
      const workflowId = uniqueWorkflowId('inner-secret');
      const secret = newSecret();
      secrets.push({ secret });
      const answer = await saveConfig({ config: configFor(workflowId, { secret }) });
      assertStatus(answer, 201);
      assert.deepEqual(Object.keys(answer.body), ['config']);
      assert.equal('secret' in answer.body.config, false);
      assert.ok(!answer.text.includes(secret) && !answer.text.includes(secret.slice(6)));
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, answer.body.config.id), [secret]);
      assert.deepEqual(await configsOf(workflowId), [answer.body.config]);
    });

    it('accepts the same secret given both at the top level and inside config', async () => {
      const workflowId = uniqueWorkflowId('both-secret');
      const secret = newSecret();
      secrets.push({ secret });
      const answer = await saveConfig({ config: configFor(workflowId, { secret }), secret });
      assertStatus(answer, 201);
      assert.deepEqual(Object.keys(answer.body), ['config']);
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, answer.body.config.id), [secret]);
    });
  });

  describe('updating a config', () => {
    it('updates a config by id (200): changes its fields, keeps its id, createdAt and secret', async () => {
      const workflowId = uniqueWorkflowId('update');
      const { config: created, generatedSecret } = await createConfig(configFor(workflowId));
      await sleep(20);
      const changed = configFor(workflowId, {
        id: created.id,
        name: 'Orders: failures and pauses',
        enabled: false,
        conditions: [{ type: 'manual_intervention' }, { type: 'delay', thresholdSeconds: 60 }],
        webhook: { url: 'https://hooks.example.com/v2/{{ run.id }}', headers: { 'X-Team': 'platform', 'X-Env': 'prod' }, timeoutMs: 2000 },
        payload: { template: { summary: '{{ condition }}', durationMs: '{{ run.durationMs }}' } },
        retry: { maxAttempts: 5, initialIntervalMs: 500, backoffCoefficient: 3, maxIntervalMs: 5000, maxDurationMs: 120_000 },
      });
      const answer = await saveConfig({ config: changed });
      assertStatus(answer, 200);
      assert.deepEqual(Object.keys(answer.body), ['config'], 'an update never shows a secret');
      const updated = answer.body.config;
      assert.equal(updated.id, created.id);
      assert.deepEqual(withoutServiceFields(updated), withoutServiceFields(changed));
      assert.equal(updated.createdAt, created.createdAt);
      assert.ok(Date.parse(updated.updatedAt) > Date.parse(created.updatedAt), `updatedAt moved: ${created.updatedAt} -> ${updated.updatedAt}`);

      assert.deepEqual(await configsOf(workflowId), [updated], 'the update replaced the config; it did not add one');
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, created.id), [generatedSecret]);
    });

    it('replaces the secret when an update gives one, without echoing it', async () => {
      const workflowId = uniqueWorkflowId('update-secret');
      const { config: created } = await createConfig(configFor(workflowId));
      const secret = newSecret();
      secrets.push({ secret });
      const answer = await saveConfig({ config: configFor(workflowId, { id: created.id }), secret });
      assertStatus(answer, 200);
      assert.deepEqual(Object.keys(answer.body), ['config']);
      assert.ok(!answer.text.includes(secret));
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, created.id), [secret]);
    });

    it('moves a config to another workflow when an update changes workflowId', async () => {
      const from = uniqueWorkflowId('move-from');
      const to = uniqueWorkflowId('move-to');
      const { config: created } = await createConfig(configFor(from));
      const answer = await saveConfig({ config: configFor(to, { id: created.id }) });
      assertStatus(answer, 200);
      assert.equal(answer.body.config.workflowId, to);
      assert.deepEqual(await configsOf(from), []);
      assert.deepEqual((await configsOf(to)).map((c) => c.id), [created.id]);
    });

    it('answers 404 to an update with an unknown id and creates nothing', async () => {
      const workflowId = uniqueWorkflowId('update-unknown');
      const unknownId = `cfg_unknown_${randomBytes(6).toString('hex')}`;
      const idsBefore = await allConfigIds();
      const answer = await saveConfig({ config: configFor(workflowId, { id: unknownId }) });
      assertError(answer, 404, 'not_found');
      assert.match(answer.body.error.message, new RegExp(unknownId));
      assert.deepEqual(await configsOf(workflowId), []);
      assert.deepEqual(await allConfigIds(), idsBefore);
      assert.deepEqual(await stack.service.db.query('SELECT id FROM alert_configs WHERE id = $1', [unknownId]), []);
    });

    it('leaves a config unchanged when its update is invalid', async () => {
      const workflowId = uniqueWorkflowId('update-invalid');
      const { config: created, generatedSecret } = await createConfig(configFor(workflowId));
      const answer = await saveConfig({ config: configFor(workflowId, { id: created.id, name: 'renamed', webhook: { url: 'ftp://hooks.example.com/x' } }), secret: newSecret() });
      assertError(answer, 400, 'invalid_request');
      assert.deepEqual(answer.body.error.details.issues.map((i: { path: string }) => i.path), ['config.webhook.url']);
      assert.deepEqual(await configsOf(workflowId), [created]);
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, created.id), [generatedSecret]);
    });
  });

  describe('listing configs', () => {
    it("lists the configs of one workflow only, oldest first, never with a secret", async () => {
      const workflowA = uniqueWorkflowId('list-a');
      const workflowB = uniqueWorkflowId('list-b');
      const first = await createConfig(configFor(workflowA, { name: 'first' }));
      const other = await createConfig(configFor(workflowB, { name: 'other workflow' }));
      const second = await createConfig(configFor(workflowA, { name: 'second', conditions: [{ type: 'canceled' }] }));

      const listA = await listWorkflow(workflowA);
      assertStatus(listA, 200);
      assert.deepEqual(Object.keys(listA.body), ['configs']);
      assert.deepEqual(listA.body.configs, [first.config, second.config]);
      for (const config of listA.body.configs) assert.equal('secret' in config, false);
      for (const created of [first, second, other]) assert.ok(!listA.text.includes(created.generatedSecret!), 'no secret in the list');

      assert.deepEqual(await configsOf(workflowB), [other.config]);
    });

    it('answers an empty list for a workflow without configs', async () => {
      const answer = await listWorkflow(uniqueWorkflowId('none'));
      assertStatus(answer, 200);
      assert.deepEqual(answer.body, { configs: [] });
    });

    it("lists all of the project's configs, across workflows, and none of another project's", async () => {
      const workflowA = uniqueWorkflowId('all-a');
      const workflowB = uniqueWorkflowId('all-b');
      const a = await createConfig(configFor(workflowA));
      const b = await createConfig(configFor(workflowB));
      const foreign = await createConfig(configFor(workflowA), { token: await stack.tokenFor('other-project') });

      const answer = await listAll();
      assertStatus(answer, 200);
      assert.deepEqual(Object.keys(answer.body), ['configs']);
      const byId = new Map<string, unknown>(answer.body.configs.map((c: { id: string }) => [c.id, c]));
      assert.deepEqual(byId.get(a.config.id), a.config);
      assert.deepEqual(byId.get(b.config.id), b.config);
      assert.equal(byId.has(foreign.config.id), false, "another project's config is not listed");
      for (const config of answer.body.configs) assert.equal('secret' in config, false);
      for (const created of [a, b, foreign]) assert.ok(!answer.text.includes(created.generatedSecret!));

      // and the other project sees its own config only
      const theirs = await listWorkflow(workflowA, { token: await stack.tokenFor('other-project') });
      assertStatus(theirs, 200);
      assert.deepEqual(theirs.body.configs, [foreign.config]);
    });

    it('finds the configs of a workflowId with a slash when the slash is URL-encoded in the path', async () => {
      const workflowId = `team/${uniqueWorkflowId('slash')}`;
      const { config } = await createConfig(configFor(workflowId));
      const answer = await request('GET', `/api/alerts/config/${encodeURIComponent(workflowId)}`);
      assertStatus(answer, 200);
      assert.deepEqual(answer.body.configs, [config]);
    });

    it('answers 400 naming workflowId when the workflowId in the path is longer than 200 characters', async () => {
      const answer = await request('GET', `/api/alerts/config/${'w'.repeat(201)}`);
      assertError(answer, 400, 'invalid_request');
      assert.deepEqual(answer.body.error.details.issues.map((i: { path: string }) => i.path), ['workflowId']);
    });
  });

  describe('deleting a config', () => {
    it('deletes a config (204); it is gone from the lists and the database, and a second delete answers 404', async () => {
      const workflowId = uniqueWorkflowId('delete');
      const { config: doomed } = await createConfig(configFor(workflowId, { name: 'doomed' }));
      const { config: kept } = await createConfig(configFor(workflowId, { name: 'kept' }));

      const answer = await request('DELETE', `/api/alerts/config/by-id/${doomed.id}`);
      assertStatus(answer, 204);
      assert.equal(answer.text, '');

      assert.deepEqual(await configsOf(workflowId), [kept]);
      assert.equal((await allConfigIds()).includes(doomed.id), false);
      assert.deepEqual(await stack.service.db.query('SELECT id FROM alert_configs WHERE id = $1', [doomed.id]), []);

      const again = await request('DELETE', `/api/alerts/config/by-id/${doomed.id}`);
      assertError(again, 404, 'not_found');
      assert.deepEqual(await configsOf(workflowId), [kept]);
    });

    it('answers 404 to deleting an id that never existed, and deletes nothing', async () => {
      const idsBefore = await allConfigIds();
      const answer = await request('DELETE', `/api/alerts/config/by-id/cfg_never_${randomBytes(6).toString('hex')}`);
      assertError(answer, 404, 'not_found');
      assert.deepEqual(await allConfigIds(), idsBefore);
    });
  });

  describe('authentication', () => {
    const refusals: { name: string; authorization: () => string | null }[] = [
      { name: 'no Authorization header', authorization: () => null },
      { name: 'a Basic Authorization header', authorization: () => `Basic ${Buffer.from('user:pass').toString('base64')}` },
      { name: 'the word Bearer without a token', authorization: () => 'Bearer' },
      { name: 'a bearer token with a space in it', authorization: () => `Bearer ${stack.token} extra` },
      { name: 'the token without the Bearer scheme', authorization: () => stack.token },
      { name: 'an unknown token', authorization: () => `Bearer mh_${randomBytes(24).toString('base64url')}` },
      { name: 'a known token with one character changed', authorization: () => `Bearer ${stack.token.slice(0, -1)}${stack.token.endsWith('A') ? 'B' : 'A'}` },
    ];

    for (const refusal of refusals) {
      it(`answers 401 (unauthorized) to ${refusal.name}`, async () => {
        const answer = await listAll({ authorization: refusal.authorization() });
        assertError(answer, 401, 'unauthorized');
        assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/);
        assert.equal(answer.body.configs, undefined);
      });
    }

    it('answers 401 to a create without a valid token and stores nothing', async () => {
      const workflowId = uniqueWorkflowId('unauth-create');
      for (const authorization of [null, 'Bearer not-a-token']) {
        const answer = await saveConfig({ config: configFor(workflowId) }, { authorization });
        assertError(answer, 401, 'unauthorized');
      }
      assert.deepEqual(await configsOf(workflowId), []);
    });

    it('answers 401 to a delete or a list by workflow with an unknown token and leaves the config in place', async () => {
      const workflowId = uniqueWorkflowId('unauth-delete');
      const { config } = await createConfig(configFor(workflowId));
      assertError(await request('DELETE', `/api/alerts/config/by-id/${config.id}`, { authorization: 'Bearer not-a-token' }), 401, 'unauthorized');
      assertError(await listWorkflow(workflowId, { authorization: 'Bearer not-a-token' }), 401, 'unauthorized');
      assert.deepEqual(await configsOf(workflowId), [config]);
    });
  });

  describe("another project's token", () => {
    let otherToken: string;
    let workflowId: string;
    let original: Record<string, any>;
    const secret = newSecret();

    before(async () => {
      otherToken = await stack.tokenFor('other-project');
      workflowId = uniqueWorkflowId('foreign');
      original = (await createConfig(configFor(workflowId), { secret })).config;
    });

    async function assertOriginalUnchanged(): Promise<void> {
      assert.deepEqual(await configsOf(workflowId), [original]);
      assert.deepEqual(await signingSecrets(stack.service.db, stack.service.keyring, DEFAULT_PROJECT, original.id), [secret]);
    }

    it("sees an empty list for the other project's workflowId", async () => {
      const answer = await listWorkflow(workflowId, { token: otherToken });
      assertStatus(answer, 200);
      assert.deepEqual(answer.body, { configs: [] });
    });

    it("does not see the other project's config in its list of all configs", async () => {
      const answer = await listAll({ token: otherToken });
      assertStatus(answer, 200);
      assert.equal(answer.body.configs.some((c: { id: string }) => c.id === original.id), false);
    });

    it("gets 404 deleting the other project's config, which stays", async () => {
      const answer = await request('DELETE', `/api/alerts/config/by-id/${original.id}`, { token: otherToken });
      assertError(answer, 404, 'not_found');
      await assertOriginalUnchanged();
    });

    it("gets 404 updating the other project's config by id; nothing changes and nothing is created", async () => {
      const answer = await saveConfig(
        { config: configFor(workflowId, { id: original.id, name: 'hijacked', webhook: { url: 'https://attacker.example.com/steal' } }), secret: newSecret() },
        { token: otherToken },
      );
      assertError(answer, 404, 'not_found');
      await assertOriginalUnchanged();
      const theirs = await listWorkflow(workflowId, { token: otherToken });
      assert.deepEqual(theirs.body, { configs: [] });
    });

    it("gets 404 rotating the other project's secret, which keeps signing alone", async () => {
      const answer = await request('POST', `/api/alerts/config/by-id/${original.id}/rotate-secret`, { token: otherToken });
      assertError(answer, 404, 'not_found');
      assert.equal(answer.body.secret, undefined);
      await assertOriginalUnchanged();
    });

    it("gets 404 sending a test alert through the other project's config", async () => {
      const answer = await request('POST', '/api/alerts/test', { token: otherToken, body: { configId: original.id } });
      assertError(answer, 404, 'not_found');
      await assertOriginalUnchanged();
    });
  });

  describe('invalid input', () => {
    interface InvalidCase {
      name: string;
      /** a body built for this case's own workflowId; a string is sent as is */
      body: (workflowId: string) => unknown;
      contentType?: string | null;
      status?: number;
      code?: string;
      /** the paths error.details.issues must name, exactly */
      paths?: string[];
      /** for errors about the body as a whole: what the message must say */
      message?: RegExp;
    }

    const valid = (workflowId: string, fields: Record<string, unknown> = {}) => ({ config: configFor(workflowId, fields) });
    const webhook = (fields: Record<string, unknown>) => ({ url: 'https://hooks.example.com/alerts', ...fields });
    const retry = (fields: Record<string, unknown>) => ({ maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1000, maxDurationMs: 60_000, ...fields });
    const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });

    const cases: InvalidCase[] = [
      { name: 'a webhook url that is not a URL', body: (w) => valid(w, { webhook: webhook({ url: 'https://' }) }), paths: ['config.webhook.url'] },
      { name: 'an ftp:// webhook url', body: (w) => valid(w, { webhook: webhook({ url: 'ftp://hooks.example.com/alerts' }) }), paths: ['config.webhook.url'] },
      { name: 'a javascript: webhook url', body: (w) => valid(w, { webhook: webhook({ url: 'javascript:alert(1)' }) }), paths: ['config.webhook.url'] },
      { name: 'a webhook url with a template in the host', body: (w) => valid(w, { webhook: webhook({ url: 'https://{{ data.host }}/alerts' }) }), paths: ['config.webhook.url'] },
      { name: 'a webhook url with a template in part of the host', body: (w) => valid(w, { webhook: webhook({ url: 'https://hooks-{{ data.env }}.example.com/alerts' }) }), paths: ['config.webhook.url'] },
      { name: 'a webhook url with a broken template', body: (w) => valid(w, { webhook: webhook({ url: 'https://hooks.example.com/{{ workflow.id' }) }), paths: ['config.webhook.url'] },
      { name: 'an empty webhook url', body: (w) => valid(w, { webhook: webhook({ url: '' }) }), paths: ['config.webhook.url'] },
      { name: 'a missing webhook', body: (w) => ({ config: { workflowId: w, name: 'x', conditions: [{ type: 'failure' }] } }), paths: ['config.webhook'] },
      { name: 'a delay thresholdSeconds of 0', body: (w) => valid(w, { conditions: [{ type: 'delay', thresholdSeconds: 0 }] }), paths: ['config.conditions[0].thresholdSeconds'] },
      { name: 'a fractional delay thresholdSeconds', body: (w) => valid(w, { conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 1.5 }] }), paths: ['config.conditions[1].thresholdSeconds'] },
      { name: 'a delay condition without thresholdSeconds', body: (w) => valid(w, { conditions: [{ type: 'delay' }] }), paths: ['config.conditions[0].thresholdSeconds'] },
      { name: 'an unknown condition type', body: (w) => valid(w, { conditions: [{ type: 'slow' }] }), paths: ['config.conditions[0].type'] },
      { name: 'empty conditions', body: (w) => valid(w, { conditions: [] }), paths: ['config.conditions'] },
      { name: 'a duplicate condition', body: (w) => valid(w, { conditions: [{ type: 'failure' }, { type: 'failure' }] }), paths: ['config.conditions'] },
      { name: 'retry.maxAttempts of 0', body: (w) => valid(w, { retry: retry({ maxAttempts: 0 }) }), paths: ['config.retry.maxAttempts'] },
      { name: 'retry.maxAttempts of 101', body: (w) => valid(w, { retry: retry({ maxAttempts: 101 }) }), paths: ['config.retry.maxAttempts'] },
      { name: 'retry.initialIntervalMs below 100', body: (w) => valid(w, { retry: retry({ initialIntervalMs: 50 }) }), paths: ['config.retry.initialIntervalMs'] },
      { name: 'retry.maxIntervalMs below initialIntervalMs', body: (w) => valid(w, { retry: retry({ initialIntervalMs: 5000, maxIntervalMs: 1000 }) }), paths: ['config.retry.maxIntervalMs'] },
      { name: 'webhook.timeoutMs below 100', body: (w) => valid(w, { webhook: webhook({ timeoutMs: 99 }) }), paths: ['config.webhook.timeoutMs'] },
      { name: 'webhook.timeoutMs above 30000', body: (w) => valid(w, { webhook: webhook({ timeoutMs: 30_001 }) }), paths: ['config.webhook.timeoutMs'] },
      { name: 'webhook.timeoutMs given as a string', body: (w) => valid(w, { webhook: webhook({ timeoutMs: '5000' }) }), paths: ['config.webhook.timeoutMs'] },
      { name: 'a header value with CR/LF', body: (w) => valid(w, { webhook: webhook({ headers: { 'X-Bad': 'ops\r\nX-Injected: 1' } }) }), paths: ['config.webhook.headers.X-Bad'] },
      { name: 'a header value with a bare LF', body: (w) => valid(w, { webhook: webhook({ headers: { 'X-Bad': 'ops\nmore' } }) }), paths: ['config.webhook.headers.X-Bad'] },
      { name: 'the reserved header webhook-signature', body: (w) => valid(w, { webhook: webhook({ headers: { 'webhook-signature': 'v1,forged' } }) }), paths: ['config.webhook.headers.webhook-signature'] },
      { name: 'the reserved header Host, in any case', body: (w) => valid(w, { webhook: webhook({ headers: { HoSt: 'internal.example.com' } }) }), paths: ['config.webhook.headers.HoSt'] },
      { name: 'a header name with a space', body: (w) => valid(w, { webhook: webhook({ headers: { 'X Bad': 'v' } }) }), paths: ['config.webhook.headers.X Bad'] },
      { name: 'a header value with a broken template', body: (w) => valid(w, { webhook: webhook({ headers: { 'X-Run': '{{ run.id' } }) }), paths: ['config.webhook.headers.X-Run'] },
      { name: 'a payload template string that does not parse', body: (w) => valid(w, { payload: { template: { text: '{{ workflow.name' } } }), paths: ['config.payload.template.text'] },
      { name: 'a nested payload template string that does not parse', body: (w) => valid(w, { payload: { template: { blocks: [{ text: 'ok' }, { text: '{% if %}' }] } } }), paths: ['config.payload.template.blocks[1].text'] },
      { name: 'an unknown field in config', body: (w) => valid(w, { colour: 'red' }), paths: ['config.colour'] },
      { name: 'an unknown field in config.webhook', body: (w) => valid(w, { webhook: webhook({ method: 'PUT' }) }), paths: ['config.webhook.method'] },
      { name: 'an unknown top-level field', body: (w) => ({ ...valid(w), extra: true }), paths: ['extra'] },
      { name: 'a secret without the whsec_ prefix', body: (w) => ({ ...valid(w), secret: randomBytes(32).toString('base64') }), paths: ['secret'] },
      { name: 'a secret of too few bytes', body: (w) => ({ ...valid(w), secret: `whsec_${randomBytes(16).toString('base64')}` }), paths: ['secret'] },
      { name: 'a malformed secret inside config', body: (w) => valid(w, { secret: 'whsec_not base64!' }), paths: ['config.secret'] },
      { name: 'two different secrets at the top level and in config', body: (w) => ({ ...valid(w, { secret: newSecret() }), secret: newSecret() }), paths: ['secret'] },
      { name: 'a missing workflowId', body: (w) => { const { workflowId: _w, ...config } = configFor(w); return { config }; }, paths: ['config.workflowId'] },
      { name: 'a workflowId with spaces', body: (w) => valid(w, { workflowId: `${w} orders` }), paths: ['config.workflowId'] },
      { name: 'an empty name', body: (w) => valid(w, { name: '   ' }), paths: ['config.name'] },
      { name: 'enabled given as a string', body: (w) => valid(w, { enabled: 'yes' }), paths: ['config.enabled'] },
      { name: 'a body without config', body: (w) => configFor(w), paths: ['config', 'workflowId', 'name', 'enabled', 'conditions', 'webhook', 'payload', 'retry', ...Object.keys(NOISE_OFF)] },
      { name: 'a JSON array as the body', body: (w) => JSON.stringify([valid(w)]), paths: [''] },
      { name: 'an invalid JSON body', body: (w) => `{"config": {"workflowId": "${w}",`, message: /not valid JSON/ },
      { name: 'an empty body', body: () => '', message: /empty/ },
      { name: 'JSON nested deeper than 32 levels', body: (w) => ({ ...valid(w, { payload: { template: nested(40) } }) }), message: /nested deeper/ },
      { name: 'a text/plain body', body: (w) => JSON.stringify(valid(w)), contentType: 'text/plain', status: 415, code: 'unsupported_media_type' },
      { name: 'a form-encoded body', body: (w) => `config=${w}`, contentType: 'application/x-www-form-urlencoded', status: 415, code: 'unsupported_media_type' },
      { name: 'a body without a content-type', body: (w) => JSON.stringify(valid(w)), contentType: null, status: 415, code: 'unsupported_media_type' },
      {
        name: 'a body over 1 MiB',
        body: (w) => JSON.stringify(valid(w, { payload: { template: { text: 'x'.repeat(MiB + 10) } } })),
        status: 413,
        code: 'payload_too_large',
      },
      {
        name: 'a body over 1 MiB sent chunked, without content-length',
        body: (w) => {
          const text = new TextEncoder().encode(JSON.stringify(valid(w, { payload: { template: { text: 'x'.repeat(MiB + 10) } } })));
          return new ReadableStream<Uint8Array>({
            start(controller) {
              for (let i = 0; i < text.length; i += 64 * 1024) controller.enqueue(text.subarray(i, i + 64 * 1024));
              controller.close();
            },
          });
        },
        status: 413,
        code: 'payload_too_large',
      },
    ];

    for (const c of cases) {
      const status = c.status ?? 400;
      const code = c.code ?? 'invalid_request';
      it(`answers ${status} (${code}) to ${c.name}${c.paths ? ` naming ${c.paths.map((p) => p || '(the body)').join(', ')}` : ''}, and stores nothing`, async () => {
        const workflowId = uniqueWorkflowId('invalid');
        const idsBefore = await allConfigIds();
        assert.deepEqual(await configsOf(workflowId), []);

        const body = c.body(workflowId);
        const answer = await request('POST', '/api/alerts/config', { body, contentType: c.contentType });
        assertError(answer, status, code);
        if (c.paths) {
          const issues: { path: string; message: string }[] = answer.body.error.details?.issues;
          assert.ok(Array.isArray(issues), `error.details.issues is a list: ${answer.text}`);
          assert.deepEqual([...new Set(issues.map((i) => i.path))].sort(), [...c.paths].sort(), answer.text);
          for (const issue of issues) assert.ok(issue.message.length > 0, 'each issue says what is wrong');
          // the summary names the first field, so a client that shows only the message still knows where to look
          if (c.paths[0]) assert.ok(answer.body.error.message.includes(issues[0].path), answer.body.error.message);
        }
        if (c.message) assert.match(answer.body.error.message, c.message);

        assert.deepEqual(await configsOf(workflowId), [], 'nothing is stored from a rejected request');
        assert.deepEqual(await allConfigIds(), idsBefore);
      });
    }

    it('names every invalid field of one request at once', async () => {
      const workflowId = uniqueWorkflowId('many');
      const answer = await saveConfig(valid(workflowId, {
        conditions: [{ type: 'delay', thresholdSeconds: 0 }],
        webhook: webhook({ url: 'ftp://x', timeoutMs: 5 }),
        retry: retry({ maxAttempts: 0 }),
      }));
      assertError(answer, 400, 'invalid_request');
      assert.deepEqual(
        answer.body.error.details.issues.map((i: { path: string }) => i.path).sort(),
        ['config.conditions[0].thresholdSeconds', 'config.retry.maxAttempts', 'config.webhook.timeoutMs', 'config.webhook.url'],
      );
      assert.match(answer.body.error.message, /and 3 more/);
      assert.deepEqual(await configsOf(workflowId), []);
    });
  });

  describe('data at rest', () => {
    it('keeps the webhook URL, header values and secret out of the raw alert_configs rows, with key_id set, on create and on update', async () => {
      const marker = randomBytes(8).toString('hex');
      const workflowId = uniqueWorkflowId('at-rest');
      const secret = newSecret();
      const url = `https://hooks.example.com/private-path-${marker}/{{ workflow.id }}`;
      const headerValue = `api-key-${marker}`;
      const { config } = await createConfig(configFor(workflowId, { webhook: { url, headers: { 'X-Api-Key': headerValue }, timeoutMs: 5000 } }), { secret });

      const assertRowsHide = async (hidden: string[]) => {
        const rows = await stack.service.db.query<Record<string, unknown>>('SELECT * FROM alert_configs');
        const raw = JSON.stringify(rows);
        for (const value of hidden) assert.ok(!raw.includes(value), `the raw rows do not contain ${value}`);
        for (const { secret: known } of secrets) assert.ok(!raw.includes(known.slice('whsec_'.length)), 'no secret of this file is in the raw rows');
        const row = rows.find((r) => r.id === config.id);
        assert.ok(row, 'the config has a row');
        assert.equal(row.workflow_id, workflowId);
        assert.equal(typeof row.key_id, 'string');
        assert.ok((row.key_id as string).length > 0, 'key_id is set');
        assert.equal(typeof row.sealed, 'string');
        assert.ok((row.sealed as string).length > 0, 'the sealed parts are stored');
      };
      await assertRowsHide([url, `private-path-${marker}`, headerValue, marker, secret, secret.slice('whsec_'.length)]);

      // an update re-seals: the new URL, header and secret are just as hidden
      const marker2 = randomBytes(8).toString('hex');
      const secret2 = newSecret();
      secrets.push({ secret: secret2 });
      const answer = await saveConfig({
        config: configFor(workflowId, { id: config.id, webhook: { url: `https://hooks.example.com/next-${marker2}`, headers: { Authorization: `Bearer tok-${marker2}` } } }),
        secret: secret2,
      });
      assertStatus(answer, 200);
      await assertRowsHide([marker, marker2, secret2, secret2.slice('whsec_'.length)]);
      // and the API still reads the plaintext back for its owner
      assert.deepEqual((await configsOf(workflowId))[0].webhook, { url: `https://hooks.example.com/next-${marker2}`, headers: { Authorization: `Bearer tok-${marker2}` }, timeoutMs: 10_000 });
    });
  });

  describe('service endpoints', () => {
    it('answers GET /healthz with 200 without a token', async () => {
      const answer = await request('GET', '/healthz', { authorization: null });
      assertStatus(answer, 200);
      assert.deepEqual(answer.body, { status: 'ok' });
    });

    it('answers GET /readyz with 200 when the store and Temporal are ok', async () => {
      const answer = await request('GET', '/readyz', { authorization: null });
      assertStatus(answer, 200);
      assert.equal(answer.body.status, 'ready');
      assert.equal(answer.body.checks.store, 'ok');
      assert.equal(answer.body.checks.temporal, 'ok');
    });

    it('describes the config API in GET /openapi.json as OpenAPI 3.1, with the config schemas and routes', async () => {
      const answer = await request('GET', '/openapi.json', { authorization: null });
      assertStatus(answer, 200);
      const doc = answer.body;
      assert.match(doc.openapi, /^3\.1\.\d+$/);
      assert.equal(typeof doc.info.title, 'string');

      const schemas = doc.components.schemas;
      for (const name of ['SaveAlertConfig', 'AlertConfig', 'Error']) assert.ok(schemas[name], `components.schemas.${name}`);
      assert.ok(schemas.SaveAlertConfig.required.includes('config'), 'SaveAlertConfig requires config');
      assert.ok(schemas.SaveAlertConfig.properties.secret, 'SaveAlertConfig takes an optional secret');
      const alertConfig = schemas.AlertConfig.properties;
      for (const field of ['id', 'workflowId', 'name', 'enabled', 'conditions', 'webhook', 'payload', 'retry', 'createdAt', 'updatedAt']) {
        assert.ok(alertConfig[field], `AlertConfig.${field}`);
      }
      assert.equal(alertConfig.secret, undefined, 'the AlertConfig answer has no secret');

      const routes: [string, string][] = [
        ['/api/alerts/config', 'post'],
        ['/api/alerts/config', 'get'],
        ['/api/alerts/config/{workflowId}', 'get'],
        ['/api/alerts/config/by-id/{configId}', 'delete'],
        ['/api/alerts/config/by-id/{configId}/rotate-secret', 'post'],
      ];
      for (const [path, method] of routes) assert.ok(doc.paths[path]?.[method], `paths["${path}"].${method}`);
      assert.ok(doc.paths['/api/alerts/config'].post.responses['201'] && doc.paths['/api/alerts/config'].post.responses['200']);
      assert.ok(doc.paths['/api/alerts/config'].post.responses['400'], 'a create documents its 400');

      // every $ref is a pointer into this document that lands on something (a tool reading the document follows them)
      const refs = new Set<string>();
      const collect = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(collect);
        else if (node && typeof node === 'object') {
          for (const [key, value] of Object.entries(node)) key === '$ref' ? refs.add(value as string) : collect(value);
        }
      };
      collect(doc);
      assert.ok(refs.size > 0);
      for (const ref of refs) {
        assert.match(ref, /^#\//, `${ref} points into this document`);
        const target = ref
          .slice(2)
          .split('/')
          .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
          .reduce<any>((node, segment) => node?.[segment], doc);
        assert.ok(target && typeof target === 'object', `${ref} resolves`);
      }
      assert.ok(refs.has('#/components/schemas/AlertConfig') && refs.has('#/components/schemas/SaveAlertConfig'));
    });
  });

  describe('every answer of this file', () => {
    it('never shows a secret, except the generated one in the create answer that made it', () => {
      assert.ok(secrets.length >= 10, `this file knows ${secrets.length} secrets`);
      assert.ok(answers.length >= 100, `this file recorded ${answers.length} answers`);
      for (const { secret, shownIn } of secrets) {
        const base64 = secret.slice('whsec_'.length);
        for (const answer of answers) {
          if (answer === shownIn) continue;
          const headers = JSON.stringify([...answer.headers]);
          assert.ok(!answer.text.includes(base64) && !headers.includes(base64), `${answer.what} (${answer.status}) shows a secret: ${answer.text.slice(0, 300)}`);
        }
        if (shownIn) assert.equal(shownIn.body.secret, secret, 'the generated secret is shown in its own field of the create answer');
      }
    });
  });
});
