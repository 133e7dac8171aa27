import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UI_DIST } from '../api/static-ui';
import { useStack, type TestStack } from './support/stack';

/** The API serving the built web UI at / (api/static-ui.ts), and POST /api/alerts/preview. */
describe('web UI files and the preview endpoint', function () {
  let stack: TestStack;
  before(async function () {
    this.timeout(5 * 60_000);
    execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    stack = await useStack();
  });
  const get = (p: string, accept = 'text/html') => fetch(`${stack.apiUrl}${p}`, { headers: { accept } });

  it('serves index.html at / and the assets with their content types', async () => {
    const index = await get('/');
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type')!, /^text\/html/);
    assert.match(index.headers.get('content-security-policy')!, /default-src 'self'/);
    const html = await index.text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), html);
    for (const asset of assets) {
      const res = await get(asset, '*/*');
      assert.equal(res.status, 200, asset);
      assert.match(res.headers.get('content-type')!, asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('cache-control')!, /immutable/);
      assert.equal(Buffer.from(await res.arrayBuffer()).length, fs.statSync(path.join(UI_DIST, asset)).size);
    }
    const head = await fetch(`${stack.apiUrl}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  it('answers a browser navigation to any page with index.html, and leaves the API alone', async () => {
    const page = await get('/w/wf_orders');
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<div id="app">/);
    for (const p of ['/api/nope', '/api', '/codec/x']) {
      const res = await get(p);
      assert.notEqual(res.headers.get('content-type')?.startsWith('text/html'), true, p);
      assert.ok(res.status >= 400, p);
    }
    // a client that does not ask for HTML keeps the JSON 404, and so does a missing file
    const json = await get('/no/such/page', 'application/json');
    assert.equal(json.status, 404);
    assert.equal(((await json.json()) as { error: { code: string } }).error.code, 'not_found');
    assert.equal((await get('/assets/missing.js', '*/*')).status, 404);
    assert.equal((await get('/healthz', 'text/html')).status, 200);
    assert.deepEqual(await (await get('/healthz', 'text/html')).json(), { status: 'ok' });
  });

  it('never serves a file outside ui/dist', async () => {
    for (const p of ['/../package.json', '/..%2fpackage.json', '/assets/..%2f..%2f..%2fpackage.json', '/%2e%2e/%2e%2e/package.json', '/assets/%2e%2e%5c%2e%2e%5cpackage.json', '/..%252fpackage.json']) {
      const res = await get(p, '*/*');
      const text = await res.text();
      assert.ok(!text.includes('"meshhook-alerts"'), `${p} served package.json`);
      assert.ok(res.status === 404 || res.status === 400, `${p}: ${res.status}`);
    }
  });

  it('POST /api/alerts/preview renders URL, headers and body with the delivery renderer', async () => {
    const config = {
      workflowId: 'wf_orders',
      name: 'Preview',
      conditions: [{ type: 'failure' }],
      webhook: { url: 'https://hooks.example.com/a/{{ workflow.id }}?run={{ run.id }}', headers: { 'X-Run': '{{ run.id }}' } },
      payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}', ms: '{{ run.durationMs }}' } },
    };
    const res = await stack.api('POST', '/api/alerts/preview', { config });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.url, 'https://hooks.example.com/a/wf_orders?run=run_789');
    assert.deepEqual(res.body.headers, { 'X-Run': 'run_789' });
    assert.deepEqual(JSON.parse(res.body.body), { text: 'Orders sync failure: HTTP 500 from CRM', ms: 2000 });
    assert.equal(res.body.condition, 'failure');
    assert.equal(res.body.egressRefusal, null);

    // a target the egress policy refuses: said while the URL is typed, as a save would say it (nothing is sent)
    for (const [url, reason] of [
      ['http://10.255.255.1/hook/{{ run.id }}', /^refused by the egress policy: 10\.255\.255\.1 is a private address \(10\.0\.0\.0\/8\)$/],
      ['http://localhost:9/hook', /^refused by the egress policy: localhost resolves to .*, which is a loopback address/],
    ] as const) {
      const refused = await stack.api('POST', '/api/alerts/preview', { config: { ...config, webhook: { url } } });
      assert.equal(refused.status, 200, JSON.stringify(refused.body));
      assert.match(refused.body.egressRefusal, reason);
      const saved = await stack.api('POST', '/api/alerts/config', { config: { ...config, webhook: { url } } });
      assert.equal(saved.status, 400);
      assert.equal(saved.body.error.details.issues[0].message, refused.body.egressRefusal);
    }
    const allowed = await stack.api('POST', '/api/alerts/preview', { config: { ...config, webhook: { url: 'http://127.0.0.1:9/hook' } } });
    assert.equal(allowed.body.egressRefusal, null, 'the test stack allows 127.0.0.1');

    // the default payload, against a given event and condition
    const event = { id: 'evt_p', type: 'run.succeeded', workflowId: 'wf_orders', runId: 'run_1' };
    const dflt = await stack.api('POST', '/api/alerts/preview', { config: { ...config, payload: { template: null } }, event });
    assert.equal(dflt.status, 200);
    assert.equal(JSON.parse(dflt.body.body).type, 'alert.success');

    // an invalid template: 400 naming the field, as a save would
    const bad = await stack.api('POST', '/api/alerts/preview', { config: { ...config, payload: { template: { text: '{{ x | nope }}' } } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details.issues[0].path, 'config.payload.template.text');
    // a template that fails only when rendered
    const late = await stack.api('POST', '/api/alerts/preview', { config: { ...config, webhook: { url: 'https://hooks.example.com/{{ data.x }}', headers: { 'X-A': '{{ "a\\nb" }}' } } } });
    assert.equal(late.status, 400, JSON.stringify(late.body));
    assert.match(late.body.error.details.issues[0].path, /^config\.webhook\.headers/);
    // unknown fields and missing auth
    assert.equal((await stack.api('POST', '/api/alerts/preview', { config, extra: 1 })).status, 400);
    assert.equal((await stack.api('POST', '/api/alerts/preview', { config }, null)).status, 401);
  });
});
