import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { describeStartingDelivery } from '../api/timeline';
import { PROCESS_EVENT_WORKFLOW } from '../index';
import { useStack, type TestStack } from './support/stack';

/**
 * The auth boundary and the router are one decision: a path either is an /api route, and then its
 * token was checked, or it is no route at all. Every route of /openapi.json, written the ways a
 * router could be lenient about (case, doubled slashes, percent-encoded letters), answers 401 or 404
 * without a token and with another project's token: never served, never a 500.
 */

const uid = () => randomBytes(4).toString('hex');

/** One raw request: the path goes on the wire exactly as given (fetch would normalise some of it). */
function rawRequest(baseUrl: string, method: string, path: string, token?: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  const body = method === 'GET' || method === 'DELETE' ? undefined : '{}';
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: hostname,
        port,
        method,
        path,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
          accept: 'text/html,application/json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The same route written differently: each one a path a lenient router might still match. Only the
 * route's own text is altered (`{param}` segments stay as they are, and are filled in afterwards).
 */
export function alteredPaths(template: string): string[] {
  const segments = template.split('/').slice(1);
  const isParam = (s: string) => /^\{\w+\}$/.test(s);
  const alter = (pick: (s: string, i: number) => boolean, change: (s: string) => string) =>
    '/' + segments.map((s, i) => (!isParam(s) && pick(s, i) ? change(s) : s)).join('/');
  const encodeFirstLetter = (s: string) => {
    const i = s.search(/[a-z]/i);
    return i < 0 ? s : `${s.slice(0, i)}%${s.charCodeAt(i).toString(16)}${s.slice(i + 1)}`;
  };
  const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  const last = segments.map((s, i) => (isParam(s) ? -1 : i)).reduce((a, b) => Math.max(a, b));
  const variants = [
    alter(() => true, (s) => s.toUpperCase()),
    alter((_, i) => i === 0, capitalise),
    alter((_, i) => i === last, capitalise),
    '/' + template,
    template.replace(/\//g, '//'),
    ...(segments.length > 1 ? ['/' + [segments[0], '', ...segments.slice(1)].join('/')] : []),
    alter((_, i) => i === 0, encodeFirstLetter),
    alter(() => true, encodeFirstLetter),
    ...(segments.length > 1 ? ['/' + segments.join('%2F'), '/' + segments.join('%2f')] : []),
  ];
  return [...new Set(variants)].filter((v) => v !== template);
}

describe('auth boundary', function () {
  let stack: TestStack;
  /** the routes of /openapi.json, paths with their `{param}` templates */
  let routes: [method: string, path: string][];
  const fill = (path: string) => path.replace(/\{(\w+)\}/g, (_, name: string) => `${name.toLowerCase()}_${uid()}`);

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    const doc = await stack.api('GET', '/openapi.json', undefined, null);
    assert.equal(doc.status, 200);
    routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((method): [string, string] => [method.toUpperCase(), path]),
    );
    assert.ok(routes.length >= 15, `${routes.length} routes in /openapi.json`);
  });

  it('answers only 401 or 404 to every route of /openapi.json written with another case, doubled slashes or percent-encoded letters', async function () {
    this.timeout(120_000);
    const otherToken = await stack.tokenFor(`prj_auth_${uid()}`);
    const wrong: string[] = [];
    let checked = 0;
    for (const [method, path] of routes) {
      for (const altered of alteredPaths(path).map(fill)) {
        for (const [who, token] of [['no token', undefined], ["another project's token", otherToken]] as const) {
          const res = await rawRequest(stack.apiUrl, method, altered, token);
          checked++;
          if (res.status !== 401 && res.status !== 404) wrong.push(`${method} ${altered} (${who}): ${res.status} ${res.body.slice(0, 120)}`);
        }
      }
    }
    assert.ok(checked >= 300, `${checked} requests made`);
    assert.deepEqual(wrong, [], `${wrong.length} of ${checked} altered requests were served`);
  });

  it('answers 401 to every /api route of /openapi.json without a token, written as documented', async function () {
    this.timeout(60_000);
    const wrong: string[] = [];
    for (const [method, path] of routes.filter(([, p]) => p.startsWith('/api/'))) {
      const res = await rawRequest(stack.apiUrl, method, fill(path));
      if (res.status !== 401) wrong.push(`${method} ${path}: ${res.status} ${res.body.slice(0, 120)}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('treats a workflow without the AlertProjectId search attribute as no project\'s delivery', async function () {
    this.timeout(30_000);
    // what publishExecutionEvent starts for a bad event: a workflow of ours that carries no project attribute
    const client = stack.service.temporal.client;
    const workflowId = `evt-noproject-${uid()}`;
    const handle = await client.workflow.start(PROCESS_EVENT_WORKFLOW, {
      workflowId,
      taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE,
      args: [{ projectId: 'default', event: { id: 'bad', type: 'run.nope' } }],
    });
    await handle.result().catch(() => undefined);
    for (const projectId of [undefined, '', 'default']) {
      assert.equal(await describeStartingDelivery(client, projectId as unknown as string, workflowId), undefined, `project ${JSON.stringify(projectId)}`);
    }
    const res = await stack.api('GET', `/api/alerts/deliveries/${workflowId}`);
    assert.equal(res.status, 404, JSON.stringify(res.body));
    const anonymous = await rawRequest(stack.apiUrl, 'GET', `/API/alerts/deliveries/${workflowId}`);
    assert.equal(anonymous.status, 404, anonymous.body);
  });
});
