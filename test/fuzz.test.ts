import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * Property-based run of bad requests against every API endpoint (issue 4, "Done when" 2): fast-check
 * generates requests that are each wrong in one way (bad JSON, wrong types, unknown fields, huge
 * strings, deep nesting, control characters in headers, bad ids, cursors and limits, bad content
 * types, missing or garbage auth, odd path parameters, wrong methods), sends them in batches of
 * BATCH at once, and checks that each answers a 4xx JSON `{ error: { code, message } }` whose
 * message names the problem, never a 5xx. Afterwards the project's rows are unchanged and a valid
 * request still works. The shared stack's rate limit is set out of reach (test/support/stack.ts).
 *
 * FUZZ_SEED picks another seed; FUZZ_RUNS another number of batches.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_129);
const BATCH = 8;
const RUNS = Number(process.env.FUZZ_RUNS ?? 260); // 260 x 8 = 2,080 requests
const MiB = 1024 * 1024;

/** What a bad request must get: one of `statuses`, and an error message that names the problem. */
interface Expect {
  statuses: number[];
  /** a pattern the message matches, or text it starts with (a field path, a parameter name) */
  message: RegExp | { startsWith: string };
}

interface BadRequest {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** sent over a plain socket as it is (control characters in headers, which fetch refuses to send) */
  raw?: string;
  expect: Expect;
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

const uid = () => randomBytes(4).toString('hex');

// ---------------------------------------------------------------- generators

const KNOWN_FIELDS = new Set([
  'id', 'workflowId', 'name', 'enabled', 'conditions', 'webhook', 'payload', 'retry', 'secret', 'config', 'events', 'type', 'occurredAt', 'runId',
  'workflow', 'run', 'error', 'data', 'configId', 'graceSeconds', 'url', 'headers', 'timeoutMs', 'template', 'limit', 'cursor', 'deliveryId',
]);
const unknownKey = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }).filter((k) => !KNOWN_FIELDS.has(k) && !k.includes('\u0000')),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'Secret', 'ID', 'config ', ' id', 'webhook.url'),
);
/** JSON text that does not parse (and is not blank: a blank body is its own case) */
const badJsonText = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 200 }),
    fc.constantFrom('{', '{"config":', '[1,2', '{"a":1,}', "{'a':1}", 'undefined', 'NaN', '{"a":01}', '\u0000', '{"a":"\\x"}', '""""', '{"a" 1}', 'tru', '--'),
    fc.json().map((j) => `${j}}`),
  )
  .filter((t) => {
    if (t.trim() === '') return false;
    try {
      JSON.parse(t);
      return false;
    } catch {
      return true;
    }
  });
const blank = fc.constantFrom(' ', '\n', '\t \r\n');
const nonString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 1, maxKeys: 2 }));
const nonBoolean = fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null), fc.constantFrom('true', 'false', 0, 1));
const nonInteger = fc.oneof(fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noInteger: true, min: -1e6, max: 1e6 }).filter((d) => !Number.isInteger(d)));
const controlChar = fc.constantFrom(...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).filter((c) => c !== '\t' && c !== '\u0000'), '\u007f');
/** sets an own property even for "__proto__" (a plain assignment would set the prototype instead) */
const setOwn = <T extends object>(target: T, key: string, value: unknown): T => Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
const nested = (depth: number): unknown => (depth === 0 ? 'x' : { a: nested(depth - 1) });

function validConfig(workflowId: string): Record<string, any> {
  return {
    workflowId,
    name: 'fuzz',
    enabled: true,
    conditions: [{ type: 'failure' }],
    webhook: { url: 'https://hooks.example.com/fuzz/{{ workflow.id }}', headers: { 'X-Team': 'ops' }, timeoutMs: 5000 },
    payload: { template: { text: '{{ workflow.name }}' } },
    retry: { maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1000, maxDurationMs: 60_000 },
  };
}
const validEvent = (workflowId: string) => ({ id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: 'run_fuzz' });

/** One field of a config set to something wrong, and the path the answer must name. */
const configDefect: fc.Arbitrary<{ apply: (c: Record<string, any>) => void; path: string }> = fc.oneof(
  nonString.map((v) => ({ apply: (c: any) => void (c.name = v), path: 'config.name' })),
  fc.integer({ min: 201, max: 20_000 }).map((n) => ({ apply: (c: any) => void (c.name = 'n'.repeat(n)), path: 'config.name' })),
  fc.constantFrom('', '   ').map((v) => ({ apply: (c: any) => void (c.name = v), path: 'config.name' })),
  nonBoolean.map((v) => ({ apply: (c: any) => void (c.enabled = v), path: 'config.enabled' })),
  fc.oneof(nonString, fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/^[A-Za-z0-9_.:@/-]+$/.test(s) && !s.includes('\u0000')), fc.constant('w'.repeat(201)))
    .map((v) => ({ apply: (c: any) => void (c.workflowId = v), path: 'config.workflowId' })),
  fc.oneof(
    fc.constant([]),
    fc.constant([{ type: 'failure' }, { type: 'failure' }]),
    fc.constant({ type: 'failure' }),
    fc.string({ minLength: 1, maxLength: 10 }).filter((t) => !['failure', 'success', 'manual_intervention', 'canceled', 'delay'].includes(t)).map((type) => [{ type }]),
    fc.oneof(fc.integer({ max: 0 }), fc.double({ min: 1.01, max: 100, noNaN: true }).filter((d) => !Number.isInteger(d)), fc.constant('60'), fc.integer({ min: 30 * 86400 + 1 })).map((t) => [{ type: 'delay', thresholdSeconds: t }]),
  ).map((v) => ({ apply: (c: any) => void (c.conditions = v), path: 'config.conditions' })),
  // invalid URLs and schemes
  fc
    .oneof(
      fc.constantFrom('ftp://hooks.example.com/x', 'javascript:alert(1)', 'file:///etc/passwd', 'data:text/plain,hi', 'gopher://h/', 'https://', 'http://', '//hooks.example.com/x', '/relative', 'hooks.example.com', '', 'https://{{ data.host }}/x', 'https://a{{x}}.example.com/', 'https://hooks.example.com/{{ workflow.id', 'https://hooks.example.com/{% include "x" %}', 'ws://hooks.example.com/', 'https://exa mple.com/'),
      fc.integer({ min: 2049, max: 10_000 }).map((n) => `https://hooks.example.com/${'a'.repeat(n)}`),
      fc.webUrl().map((u) => u.replace(/^https?:/, 'ftp:')),
    )
    .map((url) => ({ apply: (c: any) => void (c.webhook.url = url), path: 'config.webhook.url' })),
  // header names and values: CR, LF and other control characters, reserved names, too many, too long
  fc.tuple(controlChar, fc.string({ maxLength: 10 }).filter((s) => !s.includes('\u0000'))).map(([ctl, rest]) => ({
    apply: (c: any) => void (c.webhook.headers = { 'X-Bad': `ops${ctl}${rest}` }),
    path: 'config.webhook.headers.X-Bad',
  })),
  fc.constantFrom('ops\r\nX-Injected: 1', 'a\nb', 'a\rb', '\r\n\r\nGET / HTTP/1.1').map((v) => ({ apply: (c: any) => void (c.webhook.headers = { 'X-Bad': v }), path: 'config.webhook.headers.X-Bad' })),
  fc.constantFrom('X Bad', 'X-Bad\r\n', 'X:Bad', 'X\nBad', '', 'X-Ü', '(x)', 'a@b').map((name) => ({ apply: (c: any) => void (c.webhook.headers = { [name]: 'v' }), path: `config.webhook.headers.${name}` })),
  fc.constantFrom('Host', 'content-type', 'Webhook-Signature', 'webhook-id', 'Transfer-Encoding', 'CONTENT-LENGTH').map((name) => ({ apply: (c: any) => void (c.webhook.headers = { [name]: 'v' }), path: `config.webhook.headers.${name}` })),
  fc.constant({ apply: (c: any) => void (c.webhook.headers = { 'X-Long': 'v'.repeat(4097) }), path: 'config.webhook.headers.X-Long' }),
  fc.constant({ apply: (c: any) => void (c.webhook.headers = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`X-H${i}`, 'v']))), path: 'config.webhook.headers' }),
  fc.oneof(nonInteger, fc.integer({ max: 99 }), fc.integer({ min: 30_001 })).map((v) => ({ apply: (c: any) => void (c.webhook.timeoutMs = v), path: 'config.webhook.timeoutMs' })),
  // template abuse refused at save time
  fc
    .constantFrom('{{ workflow.name | shout }}', '{% include "/etc/passwd" %}', '{% render "x" %}', '{% layout "x" %}', '{{ workflow.name', '{% if x %}', '{% for %}', 'x'.repeat(16_385))
    .map((t) => ({ apply: (c: any) => void (c.payload.template = { text: t }), path: 'config.payload.template.text' })),
  fc.constant({ apply: (c: any) => void (c.payload.template = { big: 'x'.repeat(70_000) }), path: 'config.payload.template' }),
  fc.tuple(fc.constantFrom('maxAttempts', 'initialIntervalMs', 'backoffCoefficient', 'maxDurationMs'), fc.oneof(fc.constant(0), fc.constant(-1), fc.constant('3'), fc.constant(null), fc.constantFrom(1e12, 1e300))).map(([field, v]) => ({
    apply: (c: any) => void (c.retry[field] = v),
    path: `config.retry.${field}`,
  })),
  fc.oneof(nonString, fc.constantFrom('whsec_short', 'secret', `whsec_${'!'.repeat(40)}`)).map((v) => ({ apply: (c: any) => void (c.secret = v), path: 'config.secret' })),
  fc.tuple(fc.constantFrom('', 'webhook', 'retry', 'payload'), unknownKey).map(([where, key]) => ({
    apply: (c: any) => void setOwn(where ? c[where] : c, key, 'x'),
    path: where ? `config.${where}.${key}` : `config.${key}`,
  })),
);

const eventDefect: fc.Arbitrary<{ apply: (e: Record<string, any>) => void; path: string }> = fc.oneof(
  fc.oneof(nonString, fc.constantFrom('run.exploded', 'RUN.FAILED', 'failed', '')).map((t) => ({ apply: (e: any) => void (e.type = t), path: 'type' })),
  fc.constantFrom('id', 'type', 'workflowId', 'runId').map((f) => ({ apply: (e: any) => void delete e[f], path: f })),
  fc.tuple(fc.constantFrom('id', 'workflowId', 'runId'), fc.oneof(nonString, fc.constantFrom('', 'a b', 'a\nb', '<script>', 'x'.repeat(201), 'ä', 'a?b', 'a#b'))).map(([f, v]) => ({ apply: (e: any) => void (e[f] = v), path: f })),
  fc.oneof(nonString, fc.constantFrom('yesterday', '2026-13-01T00:00:00Z', '2026-11-29', '')).map((v) => ({ apply: (e: any) => void (e.occurredAt = v), path: 'occurredAt' })),
  fc.oneof(fc.integer(), fc.string(), fc.constant([1])).map((v) => ({ apply: (e: any) => void (e.data = v), path: 'data' })),
  fc.integer({ min: 10_001, max: 200_000 }).map((n) => ({ apply: (e: any) => void (e.error = { message: 'm'.repeat(n) }), path: 'error.message' })),
  fc.oneof(fc.boolean(), fc.constant(null), fc.constant({ a: 1 })).map((v) => ({ apply: (e: any) => void (e.workflow = { version: v }), path: 'workflow.version' })),
  unknownKey.map((key) => ({ apply: (e: any) => void setOwn(e, key, 1), path: key })),
  fc.tuple(fc.constantFrom('workflow', 'run', 'error'), unknownKey).map(([where, key]) => ({ apply: (e: any) => void (e[where] = setOwn({}, key, 'x')), path: `${where}.${key}` })),
);

// ---------------------------------------------------------------- the run

describe('fuzz: bad requests across every endpoint (fast-check)', function () {
  let stack: TestStack;
  let receiver: Receiver;
  let token: string;
  let projectId: string;
  let configId: string;
  let deliveryId: string;
  let workflowId: string;
  let authenticatedRoutes: [string, string][];

  const counts = async () => {
    const [row] = await stack.service.db.query<Record<string, number>>(
      `SELECT (SELECT count(*)::int FROM alert_configs WHERE project_id = $1) AS configs,
              (SELECT count(*)::int FROM alert_deliveries WHERE project_id = $1) AS deliveries,
              (SELECT count(*)::int FROM alert_logs WHERE project_id = $1) AS logs,
              (SELECT count(*)::int FROM api_tokens WHERE project_id = $1) AS tokens,
              (SELECT count(*)::int FROM alert_audit_log WHERE project_id = $1) AS audit,
              (SELECT count(*)::int FROM alert_configs) AS all_configs,
              (SELECT count(*)::int FROM api_tokens) AS all_tokens,
              (SELECT sealed || updated_at::text FROM alert_configs WHERE id = $2) AS config_state`,
      [projectId, configId],
    );
    return row;
  };

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
    projectId = `prj_fuzz_${uid()}`;
    token = await stack.tokenFor(projectId);
    workflowId = `wf_fuzz_${uid()}`;
    const url = receiver.on(`/${workflowId}`, () => ({ status: 200 }));
    const created = await stack.api('POST', '/api/alerts/config', { config: { ...validConfig(workflowId), webhook: { url } } }, token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    configId = created.body.config.id;
    const sent = await stack.api('POST', '/api/events', validEvent(workflowId), token);
    assert.equal(sent.status, 202);
    deliveryId = sent.body.deliveries[0].deliveryId;
    await receiver.waitFor(`/${workflowId}`, 1);
    // the delivery's last row is written after the POST: wait until it is "delivered"
    for (let i = 0; i < 100 && (await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`, undefined, token)).body.status !== 'delivered'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const doc = await stack.api('GET', '/openapi.json', undefined, null);
    authenticatedRoutes = Object.entries(doc.body.paths as Record<string, Record<string, { security?: unknown[] }>>).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !(Array.isArray(op.security) && op.security.length === 0))
        .map(([method, _op]) => [method.toUpperCase(), path] as [string, string]),
    );
    assert.ok(authenticatedRoutes.length >= 12, `${authenticatedRoutes.length} routes need a token`);
  });

  after(() => receiver?.close());

  function requestArbitrary(): fc.Arbitrary<BadRequest> {
    const auth = { authorization: `Bearer ${token}` };
    const json = { ...auth, 'content-type': 'application/json' };
    const fill = (path: string, param: string) => path.replace(/\{[^}]+\}/g, encodeURIComponent(param));
    const names = (path: string): Expect => ({ statuses: [400], message: { startsWith: path } });
    const bodyRoutes: [string, string][] = [
      ['POST', '/api/alerts/config'],
      ['POST', '/api/events'],
      ['POST', '/api/alerts/test'],
      ['POST', `/api/alerts/config/by-id/${configId}/rotate-secret`],
    ];
    const routeArb = fc.constantFrom(...authenticatedRoutes);
    const bodyRouteArb = fc.constantFrom(...bodyRoutes);
    const post = (kind: string, path: string, body: unknown, expect: Expect): BadRequest => ({
      kind,
      method: 'POST',
      path,
      headers: json,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      expect,
    });

    const arbitraries: fc.Arbitrary<BadRequest>[] = [
      // --- auth: missing, malformed, unknown, too long
      fc
        .tuple(
          routeArb,
          fc.oneof(
            fc.constant(undefined),
            fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer', 'Token abc', `Bearer ${token} extra`, `${token}`, 'Bearer\tx y'),
            fc.string({ minLength: 1, maxLength: 80 }).filter((s) => /^[\x20-\x7e]*$/.test(s)).map((s) => `Bearer ${s.replace(/\s/g, '_') || 'x'}`),
            fc.integer({ min: 513, max: 4000 }).map((n) => `Bearer ${'t'.repeat(n)}`),
            fc.string({ minLength: 16, maxLength: 64 }).filter((s) => /^[\x21-\x7e]+$/.test(s)).map((s) => `Bearer mha_${s}`),
          ),
          fc.string({ minLength: 1, maxLength: 40 }),
        )
        .map(([[method, path], authorization, param]) => ({
          kind: 'auth',
          method,
          path: fill(path, param),
          headers: authorization === undefined ? ({} as Record<string, string>) : { authorization },
          expect: { statuses: [401], message: /Authorization|API token/ },
        })),
      // --- bodies that are not JSON, blank, not JSON by content-type, too deep, too large, or carry a NUL
      fc.tuple(bodyRouteArb, badJsonText).map(([[, path], text]) => post('bad JSON', path, text, { statuses: [400], message: /not valid JSON/ })),
      fc.tuple(bodyRouteArb, blank).map(([[, path], text]) => post('blank body', path, text, { statuses: [400], message: /body is empty/ })),
      fc
        .tuple(bodyRouteArb, fc.constantFrom(null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json', 'application/jsonx', 'json'))
        .map(([[, path], contentType]) => ({
          kind: 'content type',
          method: 'POST',
          path,
          headers: contentType === null ? auth : { ...auth, 'content-type': contentType },
          body: JSON.stringify({ config: validConfig('wf_x') }),
          expect: { statuses: [415], message: /content-type: application\/json/ },
        })),
      fc.tuple(bodyRouteArb, fc.integer({ min: 33, max: 3000 })).map(([[, path], depth]) => post('deep nesting', path, { a: nested(depth) }, { statuses: [400], message: /nested deeper than 32 levels/ })),
      fc.tuple(bodyRouteArb, fc.integer({ min: MiB + 1, max: MiB + 64 * 1024 })).map(([[, path], size]) =>
        post('too large', path, JSON.stringify({ pad: 'x'.repeat(size) }), { statuses: [413], message: /larger than 1048576 bytes/ }),
      ),
      fc.tuple(bodyRouteArb, fc.string({ maxLength: 10 })).map(([[, path], s]) => post('NUL', path, { configId: `a\u0000${s}`, graceSeconds: 1 }, { statuses: [400], message: /NUL character/ })),
      // --- POST /api/alerts/config: one wrong field (wrong type, huge string, bad URL or scheme, bad header, bad template, unknown field)
      configDefect.map((d) => {
        const config = validConfig(`wf_fuzz_${uid()}`);
        d.apply(config);
        return post('config field', '/api/alerts/config', { config }, names(d.path));
      }),
      // the same, as an update of the project's real config: it must stay as it is
      configDefect.map((d) => {
        const config = { ...validConfig(workflowId), id: configId };
        d.apply(config);
        return post('config update field', '/api/alerts/config', { config }, names(d.path));
      }),
      fc.oneof(nonString, fc.constant([]), fc.constant('config')).map((v) => post('config body shape', '/api/alerts/config', JSON.stringify(Array.isArray(v) || typeof v !== 'object' || v === null ? v : { config: v }), { statuses: [400], message: /^config/ })),
      unknownKey.map((key) => post('config top-level field', '/api/alerts/config', setOwn({ config: validConfig('wf_x') }, key, 1), { statuses: [400], message: { startsWith: `${key}: unknown field` } })),
      fc.string({ minLength: 1, maxLength: 40 }).filter((s) => /^[A-Za-z0-9_.:@/-]+$/.test(s)).map((id) => post('config unknown id', '/api/alerts/config', { config: { ...validConfig('wf_x'), id: `cfg_nope_${id}` } }, { statuses: [404], message: /not found/ })),
      // --- POST /api/events: one wrong field, or a bad batch
      eventDefect.map((d) => {
        const event = validEvent(workflowId);
        d.apply(event);
        return post('event field', '/api/events', event, names(d.path));
      }),
      eventDefect.map((d) => {
        const events = [validEvent(workflowId), validEvent(workflowId)];
        d.apply(events[1]);
        return post('event in batch', '/api/events', { events }, names(`events[1].${d.path}`));
      }),
      fc.oneof(fc.constant([]), fc.constant('x'), fc.constant(null), fc.integer({ min: 101, max: 150 })).map((v) =>
        post('event batch', '/api/events', { events: typeof v === 'number' ? Array.from({ length: v }, () => validEvent(workflowId)) : v }, names('events')),
      ),
      // --- POST /api/alerts/test and rotate-secret
      fc.oneof(nonString, fc.constant(''), fc.constant('c'.repeat(201))).map((v) => post('test configId', '/api/alerts/test', { configId: v }, names('configId'))),
      unknownKey.map((key) => post('test field', '/api/alerts/test', setOwn({ configId: 'cfg_x' }, key, 1), { statuses: [400], message: { startsWith: `${key}: unknown field` } })),
      fc.string({ minLength: 1, maxLength: 200 }).filter((s) => !s.includes('\u0000')).map((id) => post('test unknown config', '/api/alerts/test', { configId: `zz${id}` }, { statuses: [404], message: /not found/ })),
      fc.oneof(nonInteger, fc.integer({ max: -1 }), fc.integer({ min: 30 * 86_400 + 1 })).map((v) =>
        post('rotate graceSeconds', `/api/alerts/config/by-id/${configId}/rotate-secret`, { graceSeconds: v }, names('graceSeconds')),
      ),
      unknownKey.map((key) => post('rotate field', `/api/alerts/config/by-id/${configId}/rotate-secret`, setOwn({}, key, 1), { statuses: [400], message: { startsWith: `${key}: unknown field` } })),
      // --- query strings: limits, cursors, unknown and repeated parameters
      fc
        .tuple(
          fc.constantFrom(['/api/alerts/logs', 500], ['/api/alerts/deliveries', 200], ['/api/alerts/audit', 500]),
          fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -1000, max: 0 }).map(String), fc.integer({ min: 501, max: 1e9 }).map(String), fc.constantFrom('1.5', 'ten', '1e', '-', '2,3')),
        )
        .filter(([[, max], v]) => {
          const n = Number(v);
          return !(Number.isInteger(n) && n >= 1 && n <= (max as number)) && !v.includes('\u0000');
        })
        .map(([[path], v]) => ({ kind: 'query limit', method: 'GET', path: `${path}?limit=${encodeURIComponent(v)}`, headers: auth, expect: names('limit') })),
      fc
        .tuple(
          fc.constantFrom('/api/alerts/logs', '/api/alerts/audit'),
          fc.oneof(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/^\d+$/.test(s) && !s.includes('\u0000')), fc.constantFrom('99999999999999999999', '9223372036854775808', '-1', '1.0', '0x10', ' 5')),
        )
        .map(([path, v]) => ({ kind: 'query cursor', method: 'GET', path: `${path}?cursor=${encodeURIComponent(v)}`, headers: auth, expect: names('cursor') })),
      fc
        .tuple(fc.constantFrom('/api/alerts/logs', '/api/alerts/deliveries', '/api/alerts/audit'), unknownKey.filter((k) => k.trim() !== '' && !k.includes('%')))
        .map(([path, key]) => ({ kind: 'query unknown', method: 'GET', path: `${path}?${encodeURIComponent(key)}=1`, headers: auth, expect: names(key) })),
      fc
        .tuple(fc.constantFrom(['/api/alerts/logs', 'configId'], ['/api/alerts/logs', 'runId'], ['/api/alerts/deliveries', 'configId'], ['/api/alerts/audit', 'configId'], ['/api/alerts/logs', 'limit']), fc.boolean())
        .map(([[path, param], repeat]) => ({
          kind: 'query repeated or long',
          method: 'GET',
          path: repeat ? `${path}?${param}=1&${param}=2` : `${path}?${param}=${'p'.repeat(param === 'limit' ? 3 : 400)}`,
          headers: auth,
          expect: names(param),
        })),
      // --- path parameters with odd characters: an unknown id is a 404, a workflowId that cannot exist a 400
      fc
        .tuple(
          fc.constantFrom(['DELETE', '/api/alerts/config/by-id/{id}'], ['GET', '/api/alerts/deliveries/{id}'], ['POST', '/api/alerts/deliveries/{id}/redeliver']),
          fc.oneof(fc.string({ minLength: 1, maxLength: 300 }).map(encodeURIComponent), fc.constantFrom('%', '%zz', '%E0%A4%A', '..%2F..%2Fetc%2Fpasswd', '%2e%2e', ';', '~', '%FF%FE', 'a%2Fb', "'%20OR%201=1--")),
        )
        .filter(([, id]) => !id.includes('%00'))
        .map(([[method, path], id]) => ({ kind: 'path id', method, path: path.replace('{id}', id), headers: auth, expect: { statuses: [404, 405], message: /not found|no route for|is not allowed on/ } })), // "%2e%2e" is "..": the client resolves it to another path
      fc
        .oneof(
          fc.string({ minLength: 1, maxLength: 50 }).filter((s) => !/^[A-Za-z0-9_.:@/-]+$/.test(s) && !s.includes('\u0000') && s.trim() !== ''),
          fc.integer({ min: 201, max: 3000 }).map((n) => 'w'.repeat(n)),
        )
        .map((w) => ({ kind: 'path workflowId', method: 'GET', path: `/api/alerts/config/${encodeURIComponent(w)}`, headers: auth, expect: names('workflowId') })),
      fc
        .tuple(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'), fc.constantFrom('/api/alerts/config/by-id/%00', '/api/alerts/logs?runId=%00', '/api/alerts/deliveries/x%00y', '/api/alerts/config/a%00'))
        .map(([method, path]) => ({ kind: 'path NUL', method, path, headers: auth, expect: { statuses: [400], message: /NUL character/ } })),
      // --- wrong methods and unknown routes
      fc
        .tuple(
          fc.constantFrom(
            ['PUT', '/api/alerts/config'], ['PATCH', '/api/alerts/config'], ['DELETE', '/api/alerts/config'], ['PUT', '/api/events'], ['GET', '/api/events'],
            ['DELETE', '/api/alerts/logs'], ['POST', '/api/alerts/logs'], ['PUT', '/api/alerts/deliveries/x'], ['GET', '/api/alerts/test'],
            ['GET', '/api/alerts/config/by-id/x/rotate-secret'], ['PATCH', '/api/alerts/audit'], ['PROPFIND', '/api/alerts/config'],
          ),
        )
        .map(([[method, path]]) => ({ kind: 'method', method, path, headers: auth, expect: { statuses: [405], message: /is not allowed on/ } })),
      fc
        .string({ minLength: 1, maxLength: 40 })
        .map((s) => `/api/${encodeURIComponent(s)}/zz`)
        .filter((p) => !p.includes('%00'))
        .map((path) => ({ kind: 'unknown route', method: 'GET', path, headers: auth, expect: { statuses: [404], message: /no route for GET/ } })),
      // --- control characters in request headers, sent raw (fetch will not send them)
      fc
        .tuple(
          routeArb,
          fc.oneof(
            controlChar.map((c) => ({ name: 'Authorization', value: `Bearer ${token.slice(0, 10)}${c}${token.slice(10)}` })),
            fc.constantFrom('\r', '\n', '\u0000', '\u0001', '\u007f').map((c) => ({ name: 'Content-Type', value: `application/json${c}x` })),
            fc.constantFrom('X Bad', 'X:Bad', 'X\u0001Bad', '(x)', 'X\rBad', 'Ä').map((name) => ({ name, value: 'v' })),
            fc.constant({ name: 'Authorization', value: `Bearer\r\n${token}` }),
            fc.constant({ name: 'Authorization', value: `Bearer ${token}\r\n\u0001` }),
            fc.constant({ name: 'Content-Length', value: 'abc' }),
            fc.constant({ name: 'X-Big', value: 'b'.repeat(20_000) }),
          ),
        )
        .map(([[method, path], header]) => ({
          kind: 'raw header',
          method,
          path: fill(path, 'x'),
          headers: {},
          raw: `${method} ${fill(path, 'x')} HTTP/1.1\r\nHost: 127.0.0.1\r\n${header.name}: ${header.value}\r\nConnection: close\r\n\r\n`,
          expect: { statuses: [400, 401, 431], message: /malformed HTTP request|request headers are larger|Authorization|API token/ },
        })),
    ];
    return fc.oneof(...arbitraries);
  }

  async function send(req: BadRequest): Promise<Answer> {
    if (req.raw !== undefined) return sendRaw(req.raw);
    const res = await fetch(`${stack.apiUrl}${req.path}`, { method: req.method, headers: req.headers, body: req.body });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
  }

  function sendRaw(text: string): Promise<Answer> {
    const { port } = new URL(stack.apiUrl);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.end(Buffer.from(text, 'latin1')));
      const chunks: Buffer[] = [];
      socket.on('data', (d) => chunks.push(d));
      socket.on('error', reject);
      socket.on('close', () => {
        const answer = Buffer.concat(chunks).toString('utf8');
        const [head, ...rest] = answer.split('\r\n\r\n');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        resolve({ status, contentType: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1] ?? '', text: rest.join('\r\n\r\n') });
      });
    });
  }

  /** Why the answer is not what a bad request must get, or undefined when it is. */
  function verdict(req: BadRequest, answer: Answer): string | undefined {
    const what = `${req.kind}: ${req.method} ${req.path.slice(0, 120)} answered ${answer.status} ${answer.text.slice(0, 300)}`;
    if (answer.status < 400 || answer.status > 499) return `${what}: not a 4xx`;
    if (!req.expect.statuses.includes(answer.status)) return `${what}: expected ${req.expect.statuses.join(' or ')}`;
    if (!/^application\/json/.test(answer.contentType)) return `${what}: content-type ${answer.contentType}, not JSON`;
    let body: { error?: { code?: unknown; message?: unknown; details?: { issues?: { path: string }[] } } };
    try {
      body = JSON.parse(answer.text);
    } catch {
      return `${what}: the body is not JSON`;
    }
    const { code, message } = body.error ?? {};
    if (typeof code !== 'string' || !code) return `${what}: no error.code`;
    if (typeof message !== 'string' || !message) return `${what}: no error.message`;
    const expected = req.expect.message;
    if (expected instanceof RegExp ? !expected.test(message) : !message.startsWith(expected.startsWith)) {
      return `${what}: the message does not name the problem (expected ${expected instanceof RegExp ? expected : `"${expected.startsWith}…"`})`;
    }
    const issue = body.error?.details?.issues?.[0];
    if (issue?.path && !message.includes(issue.path)) return `${what}: the message does not name the field ${issue.path}`;
    return undefined;
  }

  it(`answers ${RUNS * BATCH} generated bad requests with a 4xx JSON error naming the problem, stores nothing, and keeps serving`, async function () {
    this.timeout(180_000);
    const before = await counts();
    const byKind = new Map<string, number>();
    const byStatus = new Map<number, number>();
    let sent = 0;
    const started = Date.now();
    console.log(`    fuzz seed ${SEED} (FUZZ_SEED=${SEED} npx mocha test/fuzz.test.ts reproduces this run)`);

    const run = fc.assert(
      fc.asyncProperty(fc.array(requestArbitrary(), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const answers = await Promise.all(batch.map(send));
        sent += batch.length;
        const problems = batch.map((req, i) => verdict(req, answers[i])).filter(Boolean);
        batch.forEach((req, i) => {
          byKind.set(req.kind, (byKind.get(req.kind) ?? 0) + 1);
          byStatus.set(answers[i].status, (byStatus.get(answers[i].status) ?? 0) + 1);
        });
        assert.deepEqual(problems, []);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // fast-check's report prints the whole counterexample, megabytes of it with the large bodies
    await run.catch((err: Error) => {
      throw new Error(`${err.message.slice(0, 1500)}\n…\n${String((err as { cause?: Error }).cause?.message ?? '').slice(0, 3000)}`);
    });
    const seconds = (Date.now() - started) / 1000;
    console.log(`    ${sent} requests in ${seconds.toFixed(1)} s; statuses ${[...byStatus].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
    console.log(`    by kind: ${[...byKind].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.ok(sent >= 2000, `${sent} requests sent`);
    assert.ok(byKind.size >= 25, `${byKind.size} kinds of bad request were generated`);

    // nothing was stored or changed: the project's rows, every config and token, the real config itself
    assert.deepEqual(await counts(), before);

    // and the service keeps serving
    const list = await stack.api('GET', '/api/alerts/config', undefined, token);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.configs.map((c: { id: string }) => c.id), [configId]);
    const event = await stack.api('POST', '/api/events', validEvent(workflowId), token);
    assert.equal(event.status, 202, JSON.stringify(event.body));
    assert.equal(event.body.deliveries.length, 1);
    await receiver.waitFor(`/${workflowId}`, 2);
    assert.equal((await stack.api('GET', '/readyz', undefined, null)).status, 200);
  });

  it('answers request headers over 16 KiB in total with the JSON 431, however many headers make them up', async () => {
    const request = (lines: string[]) => `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.join('')}Connection: close\r\n\r\n`;
    const small = (n: number) => Array.from({ length: n }, (_, i) => `X-H${String(i).padStart(4, '0')}: v\r\n`);
    const over: [string, string][] = [
      ['one 17 KB header', request([`X-Big: ${'b'.repeat(17_000)}\r\n`])],
      ['1,500 small headers (17 KB)', request(small(1_500))],
      ['2,000 small headers (23 KB)', request(small(2_000))],
      ['3,000 small headers (more than the 2,000 lines Node keeps by default)', request(small(3_000))],
      ['5,000 one-letter headers with empty values', request(Array.from({ length: 5_000 }, () => 'a: \r\n'))],
      ['a 9 KB path and 8 KB of headers', request(small(700)).replace('/healthz', `/healthz?${'q'.repeat(9_000)}`)],
    ];
    for (const [what, raw] of over) {
      assert.ok(raw.length > 16_384, `${what}: ${raw.length} bytes`);
      const answer = await sendRaw(raw);
      assert.equal(answer.status, 431, `${what} (${raw.length} bytes): ${answer.status} ${answer.text.slice(0, 200)}`);
      assert.match(answer.contentType, /^application\/json/, what);
      assert.deepEqual(JSON.parse(answer.text), { error: { code: 'invalid_request', message: 'request headers are larger than 16384 bytes' } }, what);
    }
    // within the limit, however they are made up
    const within: [string, string][] = [
      ['1,300 small headers (15 KB)', request(small(1_300))],
      ['one 16,000-byte header', request([`X-Big: ${'b'.repeat(16_000)}\r\n`])],
    ];
    for (const [what, raw] of within) {
      assert.ok(raw.length <= 16_384, `${what}: ${raw.length} bytes`);
      const answer = await sendRaw(raw);
      assert.equal(answer.status, 200, `${what} (${raw.length} bytes): ${answer.status} ${answer.text.slice(0, 200)}`);
    }
  });

  it('sees every endpoint of the API description (so a new endpoint joins the auth cases on its own)', () => {
    const paths = new Set(authenticatedRoutes.map(([, path]) => path));
    for (const path of ['/api/alerts/config', '/api/alerts/config/{workflowId}', '/api/alerts/config/by-id/{configId}', '/api/alerts/config/by-id/{configId}/rotate-secret', '/api/alerts/test', '/api/events', '/api/alerts/logs', '/api/alerts/deliveries', '/api/alerts/deliveries/{deliveryId}', '/api/alerts/deliveries/{deliveryId}/redeliver', '/api/alerts/audit']) {
      assert.ok(paths.has(path), path);
    }
  });
});
