import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compileErrors, validate as validateOpenApi } from '@readme/openapi-parser';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { apiRouters } from '../api/app';
import type { ServiceDeps } from '../runtime/deps';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * GET /openapi.json as a client reads it from the running service: it names every route the Koa
 * routers serve, it is a valid OpenAPI 3.1 document, the contract's example bodies pass its request
 * schemas, and the answers the API really gives pass its response schemas.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DOC_ID = 'https://meshhook-alerts.test/openapi.json';

/** The alert config body of DESIGN.md (without its placeholder id and secret). */
const designConfig = (workflowId: string, url: string) => ({
  workflowId,
  name: 'Orders failures to on-call',
  enabled: true,
  conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 300 }],
  webhook: { url, headers: { 'X-Team': 'ops' }, timeoutMs: 10000 },
  payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}' } },
  retry: { maxAttempts: 8, initialIntervalMs: 1000, backoffCoefficient: 2, maxIntervalMs: 3600000, maxDurationMs: 86400000 },
});

/** The execution event of DESIGN.md, for a workflow and run of the caller's. */
const designEvent = (workflowId: string, runId: string) => ({
  id: `evt_${uid()}`,
  type: 'run.failed',
  occurredAt: '2026-11-29T10:00:00Z',
  workflowId,
  runId,
  workflow: { name: 'Orders sync', version: 3 },
  run: { startedAt: '2026-11-29T09:59:58Z', finishedAt: '2026-11-29T10:00:00Z' },
  error: { message: 'HTTP 500 from CRM', step: 'createContact' },
  data: {},
});

/** JSON pointer segment */
const segment = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

describe('GET /openapi.json', function () {
  let stack: TestStack;
  let receiver: Receiver;
  let doc: any;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);

  before(async function () {
    this.timeout(5 * 60_000); // first start of the shared stack
    stack = await useStack();
    receiver = await Receiver.start();
    const res = await stack.api('GET', '/openapi.json', undefined, null);
    assert.equal(res.status, 200);
    doc = res.body;
    ajv.addSchema(doc, DOC_ID);
  });

  after(async () => {
    await receiver?.close();
  });

  /** Validates `value` against the schema at `pointer` in the document; returns the errors, or '' when it passes. */
  function errorsAt(pointer: string, value: unknown): string {
    const validate = ajv.getSchema(`${DOC_ID}#${pointer}`);
    assert.ok(validate, `the document has a schema at ${pointer}`);
    return validate(value) ? '' : ajv.errorsText(validate.errors, { separator: '; ' });
  }

  const operation = (method: string, path: string) => `/paths/${segment(path)}/${method}`;
  const requestBodyAt = (method: string, path: string) => `${operation(method, path)}/requestBody/content/application~1json/schema`;
  const parameterAt = (method: string, path: string, name: string) => {
    const index = doc.paths[path][method].parameters.findIndex((p: any) => p.name === name);
    assert.ok(index >= 0, `${method.toUpperCase()} ${path} has a parameter ${name}`);
    return `${operation(method, path)}/parameters/${index}/schema`;
  };

  /** Asserts that the document describes this answer of `method path` (path as the document writes it). */
  function assertDescribed(method: string, path: string, answer: { status: number; body: unknown }): void {
    const what = `${method.toUpperCase()} ${path} ${answer.status}`;
    assert.ok(doc.paths[path]?.[method]?.responses?.[answer.status], `the document lists the answer ${what}`);
    const errors = errorsAt(`${operation(method, path)}/responses/${answer.status}/content/application~1json/schema`, answer.body);
    assert.equal(errors, '', `${what} as the API gave it: ${JSON.stringify(answer.body).slice(0, 600)}`);
  }

  it('describes every route the Koa routers serve, and no other', () => {
    // Registering the routes touches no dependency; the handlers never run here.
    const { open, api, codec } = apiRouters({ temporal: {} } as unknown as ServiceDeps);
    const served = new Set<string>();
    for (const router of [open, api, codec]) {
      for (const layer of router.stack) {
        const path = String(layer.path).replace(/:(\w+)/g, '{$1}');
        for (const method of layer.methods.filter((m) => m !== 'HEAD')) served.add(`${method.toLowerCase()} ${path}`);
      }
    }
    assert.ok(served.size >= 15, `the routers serve ${served.size} routes`);
    for (const route of ['post /api/events', 'get /api/alerts/deliveries/{deliveryId}', 'get /metrics']) assert.ok(served.has(route), route);

    const documented = new Set<string>();
    for (const [path, item] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(item)) documented.add(`${method} ${path}`);
    }
    assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'served but not described');
    assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'described but not served');
  });

  it('is a valid OpenAPI 3.1 document whose schemas all have names of their own', async () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    const result = await validateOpenApi(structuredClone(doc));
    assert.ok(result.valid, result.valid ? '' : compileErrors(result));
    assert.deepEqual(result.warnings, []);
    const names = Object.keys(doc.components.schemas);
    assert.deepEqual(names.filter((n) => !/^[A-Z][A-Za-z]+$/.test(n)), [], 'no generated names such as __schema0');
    assert.ok(doc.components.schemas.JsonValue, 'free-form JSON is the JsonValue schema');
    for (const name of ['ExecutionEvent', 'EventBatch', 'AttemptLog', 'StartedDelivery', 'DeliveryDetail', 'TestAlertResult', 'AttemptLogPage']) {
      assert.ok(doc.components.schemas[name], `components.schemas.${name}`);
    }
  });

  it('needs the API token on every /api route and on nothing else', () => {
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const security = op.security ?? doc.security;
        // the codec endpoint takes the token as a header, or (for the Web UI) in its path
        if (path.startsWith('/api/') || path === '/codec/decode' || path === '/codec/encode') {
          assert.deepEqual(security, [{ bearer: [] }], `${method} ${path} needs the token`);
          assert.ok(op.responses['401'], `${method} ${path} documents its 401`);
        } else assert.deepEqual(security, [], `${method} ${path} is open`);
      }
    }
  });

  it('writes the query parameters of the logs route from its zod schema, with descriptions and bounds', () => {
    const parameters: any[] = doc.paths['/api/alerts/logs'].get.parameters;
    assert.deepEqual(parameters.map((p) => p.name).sort(), ['configId', 'cursor', 'deliveryId', 'limit', 'runId', 'workflowId']);
    for (const p of parameters) {
      assert.equal(p.in, 'query');
      assert.equal(p.required, false, `${p.name} is optional`);
      assert.ok(p.description, `${p.name} has a description`);
    }
    const limit = parameters.find((p) => p.name === 'limit').schema;
    assert.deepEqual([limit.type, limit.minimum, limit.maximum, limit.default], ['integer', 1, 500, 50]);
    assert.equal(parameters.find((p) => p.name === 'cursor').schema.pattern, '^\\d{1,19}$');
    assert.equal(parameters.find((p) => p.name === 'deliveryId').schema.maxLength, 300);

    const deliveries: any[] = doc.paths['/api/alerts/deliveries'].get.parameters;
    assert.deepEqual(deliveries.map((p) => [p.name, p.schema.maximum]), [['configId', undefined], ['limit', 200]]);
    assert.deepEqual(doc.paths['/metrics'].get.responses['200'].content, { 'text/plain': { schema: { type: 'string' } } });
  });

  it("accepts the contract's example bodies as the API does, and rejects what the API rejects", async () => {
    const workflowId = `wf_openapi_ex_${uid()}`;
    // DESIGN's URL with the test receiver's address, so that the example deliveries end at once
    const config = designConfig(workflowId, `${receiver.url}/alerts/{{ workflow.id }}`);
    const event = designEvent(workflowId, `run_${uid()}`);
    const bodies: [string, string, unknown, number][] = [
      ['post', '/api/alerts/config', { config }, 201],
      ['post', '/api/events', event, 202],
      ['post', '/api/events', { events: [event, designEvent(workflowId, `run_${uid()}`)] }, 202],
    ];
    for (const [method, path, body, status] of bodies) {
      assert.equal(errorsAt(requestBodyAt(method, path), body), '', `${path}: ${JSON.stringify(body)}`);
      const res = await stack.api(method.toUpperCase(), path, body);
      assert.equal(res.status, status, JSON.stringify(res.body));
    }

    const rejected: [string, string, unknown][] = [
      ['post', '/api/alerts/config', { config: { ...config, colour: 'red' } }],
      ['post', '/api/alerts/config', { config: { ...config, retry: { ...config.retry, maxAttempts: 101 } } }],
      ['post', '/api/events', { ...event, type: 'run.exploded' }],
      ['post', '/api/events', { events: [] }],
      ['post', '/api/alerts/test', { configId: '' }],
    ];
    for (const [method, path, body] of rejected) {
      assert.notEqual(errorsAt(requestBodyAt(method, path), body), '', `the document rejects ${JSON.stringify(body).slice(0, 200)}`);
      const res = await stack.api(method.toUpperCase(), path, body);
      assert.equal(res.status, 400, `the API rejects ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(res.body)}`);
      assertDescribed(method, path, res);
    }
    // a query value arrives as text; its schema describes the number it must read as
    assert.notEqual(errorsAt(parameterAt('get', '/api/alerts/logs', 'limit'), 0), '');
    assert.equal(errorsAt(parameterAt('get', '/api/alerts/logs', 'limit'), 20), '');
    const res = await stack.api('GET', '/api/alerts/logs?limit=0');
    assert.equal(res.status, 400);
  });

  it('describes the answers the API really gives, route by route', async function () {
    this.timeout(90_000);
    const workflowId = `wf_openapi_${uid()}`;
    const hook = receiver.on(`/openapi-${uid()}`, () => ({ status: 200 }));

    const created = await stack.api('POST', '/api/alerts/config', { config: { ...designConfig(workflowId, hook), retry: { maxAttempts: 2, initialIntervalMs: 100 } } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assertDescribed('post', '/api/alerts/config', created);
    const configId: string = created.body.config.id;
    const updated = await stack.api('POST', '/api/alerts/config', { config: { ...created.body.config, name: 'renamed', createdAt: undefined, updatedAt: undefined, disabledReason: undefined } });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assertDescribed('post', '/api/alerts/config', updated);
    assertDescribed('get', '/api/alerts/config', await stack.api('GET', '/api/alerts/config'));
    assertDescribed('get', '/api/alerts/config/{workflowId}', await stack.api('GET', `/api/alerts/config/${workflowId}`));

    const accepted = await stack.api('POST', '/api/events', designEvent(workflowId, `run_${uid()}`));
    assert.equal(accepted.status, 202);
    assertDescribed('post', '/api/events', accepted);
    const { deliveryId } = accepted.body.deliveries[0];
    // right after the 202 the answer may still come from Temporal (StartingDelivery); either way it is described
    let delivery = await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`);
    assertDescribed('get', '/api/alerts/deliveries/{deliveryId}', delivery);
    for (let deadline = Date.now() + 30_000; delivery.body.status !== 'delivered' && Date.now() < deadline; ) {
      await sleep(100);
      delivery = await stack.api('GET', `/api/alerts/deliveries/${deliveryId}`);
    }
    assert.equal(delivery.body.status, 'delivered', JSON.stringify(delivery.body));
    assertDescribed('get', '/api/alerts/deliveries/{deliveryId}', delivery);
    assert.ok(delivery.body.attempts.length >= 1 && delivery.body.timeline.length >= 1, JSON.stringify(delivery.body));

    assertDescribed('get', '/api/alerts/logs', await stack.api('GET', `/api/alerts/logs?workflowId=${workflowId}&limit=1`));
    assertDescribed('get', '/api/alerts/deliveries', await stack.api('GET', `/api/alerts/deliveries?configId=${configId}`));
    const redelivered = await stack.api('POST', `/api/alerts/deliveries/${deliveryId}/redeliver`);
    assert.equal(redelivered.status, 202, JSON.stringify(redelivered.body));
    assertDescribed('post', '/api/alerts/deliveries/{deliveryId}/redeliver', redelivered);
    const tested = await stack.api('POST', '/api/alerts/test', { configId });
    assert.equal(tested.status, 200, JSON.stringify(tested.body));
    assertDescribed('post', '/api/alerts/test', tested);
    const rotated = await stack.api('POST', `/api/alerts/config/by-id/${configId}/rotate-secret`, { graceSeconds: 60 });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assertDescribed('post', '/api/alerts/config/by-id/{configId}/rotate-secret', rotated);

    assertDescribed('get', '/api/alerts/deliveries/{deliveryId}', await stack.api('GET', '/api/alerts/deliveries/dlv-nope'));
    assertDescribed('get', '/api/alerts/logs', await stack.api('GET', '/api/alerts/logs', undefined, null));
    assertDescribed('get', '/healthz', await stack.api('GET', '/healthz', undefined, null));
    assertDescribed('get', '/readyz', await stack.api('GET', '/readyz', undefined, null));
    assertDescribed('get', '/openapi.json', await stack.api('GET', '/openapi.json', undefined, null));
    const metrics = await stack.api('GET', '/metrics', undefined, null);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    const deleted = await stack.api('DELETE', `/api/alerts/config/by-id/${configId}`);
    assert.equal(deleted.status, 204);
    assert.ok(doc.paths['/api/alerts/config/by-id/{configId}'].delete.responses['204']);
  });
});
