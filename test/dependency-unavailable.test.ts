import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../api/app';
import type { ServiceDeps } from '../runtime/deps';
import { alertsDataConverter } from '../lib/codec';
import { createApiServer } from '../runtime/http-server';
import { openPostgres, type Db } from '../store/db';
import { createToken } from '../store/tokens';
import { freePort } from '../runtime/host';
import { useStack, type TestStack } from './support/stack';
import { openStore, useStore, type TestStore } from './support/stores';
import { tcpForward, type TcpForward } from './support/tcp-forward';

/**
 * A dependency that is down answers 503 with Retry-After on every route, never a 500: a client that
 * resends on 503 (as docs/getting-started.md tells MeshHook to) loses nothing. The store is a real PostgreSQL
 * reached through a TCP forwarder that the test closes (connections refused and cut, as while
 * PostgreSQL restarts) and opens again; Temporal is a port where nothing listens.
 */
const uid = () => randomBytes(4).toString('hex');

async function listen(app: ReturnType<typeof createApp>): Promise<{ server: http.Server; url: string }> {
  const server = createApiServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const close = (server: http.Server | undefined) =>
  new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });

describe('a dependency that is down answers 503 with Retry-After, never 500', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let store: TestStore;
  let forward: TcpForward;
  let db: Db;
  let server: http.Server | undefined;
  let url: string;
  let token: string;
  let routes: [string, string][];

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    store = await openStore('postgres');
    const target = new URL(store.url!);
    forward = tcpForward(await freePort(), { host: '127.0.0.1', port: Number(target.port) });
    await forward.listen();
    const viaForward = new URL(store.url!);
    viaForward.port = String(forward.port);
    db = await openPostgres(viaForward.toString());
    token = await createToken(db, `prj_down_${uid()}`, 'test');
    ({ server, url } = await listen(createApp({ ...stack.service.apiDeps!, db }, { rateLimitPerMinute: 0 })));
    const doc = await stack.api('GET', '/openapi.json', undefined, null);
    routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>)
      .filter(([path]) => path.startsWith('/api/'))
      .flatMap(([path, ops]) => Object.keys(ops).map((m): [string, string] => [m.toUpperCase(), path.replace(/\{(\w+)\}/g, (_, name: string) => `${name.toLowerCase()}_x`)]));
  });

  after(async () => {
    await close(server);
    await forward?.listen().catch(() => undefined);
    await db?.close();
    await store?.close();
    await forward?.close();
  });

  const call = (base: string, method: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('answers 503 with Retry-After on every /api route while PostgreSQL is unreachable, and serves again once it is back', async () => {
    assert.equal((await call(url, 'GET', '/api/alerts/config')).status, 200);
    await forward.close();
    const wrong: string[] = [];
    for (const [method, path] of routes) {
      const res = await call(url, method, path, method === 'GET' || method === 'DELETE' ? undefined : { id: `evt_${uid()}`, type: 'run.failed', workflowId: 'wf_down', runId: 'r' });
      const body = await res.text();
      if (res.status !== 503 || !res.headers.get('retry-after') || !/"code":"unavailable"/.test(body)) wrong.push(`${method} ${path}: ${res.status} ${res.headers.get('retry-after')} ${body.slice(0, 160)}`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(routes.length >= 12, `${routes.length} routes`);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 503);

    await forward.listen();
    const back = await call(url, 'POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId: 'wf_down', runId: 'r' });
    assert.equal(back.status, 202, await back.text());
  });

  it('answers 503, not 404, for a delivery it cannot look up while Temporal is unreachable', async () => {
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, connectTimeout: 1_000 });
    const client = new Client({ connection, namespace: 'default', dataConverter: alertsDataConverter(stack.service.keyring) });
    const deps: ServiceDeps = { ...stack.service.apiDeps!, db, temporal: { ...stack.service.apiDeps!.temporal, client } };
    const down = await listen(createApp(deps, { rateLimitPerMinute: 0 }));
    try {
      const res = await call(down.url, 'GET', `/api/alerts/deliveries/dlv-unknown-${uid()}`);
      assert.equal(res.status, 503, await res.text());
      assert.ok(res.headers.get('retry-after'));
    } finally {
      await close(down.server);
      await connection.close().catch(() => undefined);
    }
  });
});

describe('a PostgreSQL connection cut while a transaction or a session holds it fails that work, not the process', function () {
  this.timeout(60_000);
  const store = useStore('postgres');
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  for (const how of ['transaction', 'session'] as const) {
    it(`${how}: the backend terminated between two statements; the next statement rejects, the pool serves on`, async () => {
      const uncaught: unknown[] = [];
      const onUncaught = (err: unknown) => uncaught.push(err);
      // mocha's own handler stays; this one only records what reached the process
      process.on('uncaughtException', onUncaught);
      try {
        const work = (q: { query<T>(sql: string, params?: unknown[]): Promise<T[]> }) =>
          (async () => {
            const [{ pid }] = await q.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
            // from another connection of the pool: PostgreSQL ends this one, as a restart does
            await store.db.query('SELECT pg_terminate_backend($1)', [pid]);
            await sleep(300); // the socket's end reaches the client while it is checked out and idle
            await q.query('SELECT 1');
          })();
        const ran = how === 'transaction' ? store.db.transaction(work) : store.db.session(work);
        await assert.rejects(ran, /terminat|not queryable|Connection/i);
        assert.deepEqual(uncaught, [], 'no error reached the process');
        assert.deepEqual(await store.db.query('SELECT 1 AS one'), [{ one: 1 }]);
        // the pool's clients are all usable afterwards (the broken one was destroyed, not given back)
        for (let k = 0; k < 12; k++) assert.deepEqual(await store.db.transaction((tx) => tx.query('SELECT 2 AS two')), [{ two: 2 }]);
      } finally {
        process.off('uncaughtException', onUncaught);
      }
    });
  }
});
