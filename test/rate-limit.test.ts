import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../api/app';
import { tokenBuckets } from '../api/rate-limit';
import { createApiServer } from '../runtime/http-server';
import { createToken } from '../store/tokens';
import { useStack, type TestStack } from './support/stack';

/**
 * Per-token rate limiting of the API: the token bucket on a fake clock, then over real HTTP on a
 * second app built on the shared stack's store and Temporal client with a low limit (the shared
 * stack's own limit is set out of the suite's reach). The limit set by ALERTS_RATE_LIMIT_PER_MINUTE
 * through startService is checked in test/https.test.ts.
 */
describe('rate limit per API token', function () {
  describe('token buckets', () => {
    it('lets a burst of a minute’s worth through, then refuses with the seconds until the next request', () => {
      let now = 1_000_000;
      const buckets = tokenBuckets(60, () => now);
      for (let i = 59; i >= 0; i--) assert.deepEqual(buckets.take('a'), { allowed: true, remaining: i, retryAfterSeconds: 0 });
      assert.deepEqual(buckets.take('a'), { allowed: false, remaining: 0, retryAfterSeconds: 1 });
      now += 500;
      assert.equal(buckets.take('a').allowed, false, 'half a request refilled is not a request');
      now += 500;
      assert.equal(buckets.take('a').allowed, true, '60 a minute refills one a second');
      assert.equal(buckets.take('a').allowed, false);
    });

    it('keeps one bucket per key', () => {
      const now = 0;
      const buckets = tokenBuckets(2, () => now);
      assert.equal(buckets.take('a').allowed, true);
      assert.equal(buckets.take('a').allowed, true);
      assert.equal(buckets.take('a').allowed, false);
      assert.equal(buckets.take('b').allowed, true, 'another key has its own bucket');
    });

    it('says how long to wait at a slow rate, and refills no more than the bucket holds', () => {
      let now = 0;
      const buckets = tokenBuckets(3, () => now);
      for (let i = 0; i < 3; i++) buckets.take('a');
      assert.deepEqual(buckets.take('a'), { allowed: false, remaining: 0, retryAfterSeconds: 20 });
      now += 3_600_000;
      for (let i = 0; i < 3; i++) assert.equal(buckets.take('a').allowed, true);
      assert.equal(buckets.take('a').allowed, false, 'an hour idle still allows only a burst of 3');
    });
  });

  describe('over HTTP', () => {
    const LIMIT = 120;
    let stack: TestStack;
    let server: http.Server;
    let url: string;

    before(async function () {
      this.timeout(180_000);
      stack = await useStack();
      assert.ok(stack.service.apiDeps, 'the stack runs the API');
      server = createApiServer(createApp(stack.service.apiDeps, { rateLimitPerMinute: LIMIT }).callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    after(async () => {
      await new Promise<void>((resolve) => {
        server?.close(() => resolve());
        server?.closeAllConnections();
      });
    });

    const call = async (token: string, method = 'GET', path = '/api/alerts/config', body?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
    };

    it(`answers 429 with Retry-After once a token has sent ${LIMIT} requests, stores nothing from a refused request, and serves again after Retry-After`, async function () {
      this.timeout(30_000);
      const project = `prj_rate_${randomBytes(4).toString('hex')}`;
      const token = await createToken(stack.service.db, project, 'rate-limit test');
      const other = await createToken(stack.service.db, project, 'rate-limit test, second token');

      // the bucket refills at 2 a second while the burst goes out, so a few more than LIMIT get through
      const started = Date.now();
      let allowed = 0;
      let refused = await call(token);
      while (refused.status === 200 && allowed < 10 * LIMIT) {
        allowed++;
        assert.equal(refused.headers.get('ratelimit-limit'), String(LIMIT));
        if (allowed === 1) assert.equal(refused.headers.get('ratelimit-remaining'), String(LIMIT - 1));
        refused = await call(token);
      }
      const refilled = Math.ceil(((Date.now() - started) * LIMIT) / 60_000);
      assert.ok(allowed >= LIMIT && allowed <= LIMIT + refilled, `${allowed} requests allowed: the burst of ${LIMIT} and ${refilled} refilled`);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('ratelimit-remaining'), '0');
      assert.equal(refused.body.error.code, 'rate_limited');
      assert.match(refused.body.error.message, new RegExp(`at most ${LIMIT} a minute; try again in 1 s`));
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.deepEqual(refused.body.error.details, { limitPerMinute: LIMIT, retryAfterSeconds: 1 });

      // a write refused by the limit stores nothing
      const workflowId = `wf_rate_${randomBytes(4).toString('hex')}`;
      const create = await call(token, 'POST', '/api/alerts/config', {
        config: { workflowId, name: 'limited', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/x' } },
      });
      assert.equal(create.status, 429);
      const [{ n }] = await stack.service.db.query<{ n: number }>('SELECT count(*)::int AS n FROM alert_configs WHERE project_id = $1', [project]);
      assert.equal(n, 0, 'nothing stored');

      // the limit is per token: the project's other token, and the shared stack, still answer
      assert.equal((await call(other)).status, 200);
      assert.equal((await stack.api('GET', '/api/alerts/config')).status, 200);

      await new Promise((resolve) => setTimeout(resolve, 1_100));
      assert.equal((await call(token)).status, 200, 'after Retry-After the token is served again');
    });

    it('counts nothing for a request without a valid token (401 comes first)', async () => {
      const res = await fetch(`${url}/api/alerts/config`, { headers: { authorization: 'Bearer not-a-token-of-anyone' } });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('ratelimit-limit'), null);
    });
  });
});
