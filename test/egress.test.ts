import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { request, type Dispatcher } from 'undici';
import { createEgressDispatcher, savedTargetRefusal } from '../runtime/egress';
import { EgressRefusedError, parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema } from '../lib/schemas';
import { saveConfig } from '../store/configs';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The egress policy (SSRF guard) where it meets the network: the checked
 * dispatcher every delivery uses, against real servers on 127.0.0.1 and
 * 127.0.0.2 and the real resolution of `localhost`; then the policy through
 * the embedded stack, which allows the one host 127.0.0.1 (its receivers).
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const FIXTURES = path.join(__dirname, 'fixtures');

/** A real HTTP(S) server on one loopback address that records what reaches it. */
interface Server {
  port: number;
  hits: { path: string; servername?: string }[];
  connections: number;
  close(): Promise<void>;
}

async function listen(host: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, options: { port?: number; tls?: https.ServerOptions } = {}): Promise<Server> {
  const hits: Server['hits'] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    hits.push({ path: req.url ?? '/', servername: (req.socket as { servername?: string }).servername });
    req.resume();
    req.on('end', () => handler(req, res));
  };
  const server = options.tls ? https.createServer(options.tls, onRequest) : http.createServer(onRequest);
  const state = { connections: 0 };
  server.on(options.tls ? 'secureConnection' : 'connection', () => state.connections++);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const ok = (_req: http.IncomingMessage, res: http.ServerResponse) => res.end('ok');

async function post(dispatcher: Dispatcher, url: string): Promise<{ status: number; body: string }> {
  const res = await request(url, { dispatcher, method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, body: await res.body.text() };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => assert.fail('the request should have been refused'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof EgressRefusedError, `an egress refusal, got ${String(err)}`);
  return err.reason;
}

describe('egress dispatcher (real sockets, real lookup of localhost)', () => {
  let allowed: Server; // 127.0.0.1: the one host the strict policy allows
  let refused: Server; // 127.0.0.2, same port: loopback, refused
  const dispatchers: Dispatcher[] = [];
  const dispatcherFor = (...args: Parameters<typeof createEgressDispatcher>) => {
    const d = createEgressDispatcher(...args);
    dispatchers.push(d);
    return d;
  };

  before(async () => {
    allowed = await listen('127.0.0.1', (req, res) => {
      if (req.url === '/hop') {
        res.writeHead(302, { location: `http://127.0.0.2:${refused.port}/landing` });
        return res.end();
      }
      res.end('ok');
    });
    refused = await listen('127.0.0.2', ok, { port: allowed.port });
  });

  after(async () => {
    await Promise.all(dispatchers.map((d) => d.close()));
    await allowed?.close();
    await refused?.close();
  });

  it('connects to an allowed host and refuses another loopback address before any byte is sent', async () => {
    const strict = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.1' }));
    assert.equal((await post(strict, `http://127.0.0.1:${allowed.port}/a`)).status, 200);
    assert.match(await refusal(post(strict, `http://127.0.0.2:${refused.port}/b`)), /^127\.0\.0\.2 is a loopback address/);
    assert.match(await refusal(post(strict, `http://[::ffff:127.0.0.2]:${refused.port}/c`)), /IPv4-mapped IPv6 of 127\.0\.0\.2/);
    assert.match(await refusal(post(strict, `http://0x7f000002:${refused.port}/d`)), /^127\.0\.0\.2 is a loopback/);
    assert.deepEqual(allowed.hits.map((h) => h.path), ['/a']);
    assert.deepEqual(refused.hits, []);
    assert.equal(refused.connections, 0);
  });

  it('checks the addresses a name resolves to at connect time: localhost resolves to loopback and is refused', async () => {
    const before = allowed.hits.length;
    const strict = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.1' }));
    const addresses = (await dns.promises.lookup('localhost', { all: true })).map((a) => a.address);
    assert.ok(addresses.length > 0);
    assert.match(await refusal(post(strict, `http://localhost:${allowed.port}/by-name`)), /^localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/);
    assert.equal(allowed.hits.length, before);
    // a CIDR that covers what it resolves to opens the name
    const open = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.0/8,::1/128' }));
    assert.equal((await post(open, `http://localhost:${allowed.port}/by-name-allowed`)).status, 200);
    assert.equal(allowed.hits.at(-1)?.path, '/by-name-allowed');
  });

  it('judges and looks up the name normalised: localhost. and LOCALHOST. are localhost, foo.localhost. is loopback, two trailing dots are refused', async () => {
    const before = allowed.hits.length;
    const strict = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.1' }));
    for (const host of ['localhost.', 'LOCALHOST.', 'foo.localhost.', 'Foo.LocalHost']) {
      assert.match(await refusal(post(strict, `http://${host}:${allowed.port}/trailing-dot`)), /^([a-z]+\.)?localhost resolves to 127\.0\.0\.1, which is a loopback address/, host);
    }
    assert.match(await refusal(post(strict, `http://localhost..:${allowed.port}/two-dots`)), /more than one dot/);
    assert.equal(allowed.hits.length, before, 'nothing reached the server');
    // listed by name, the same name written with a dot or in capitals is the same host, and is looked up as `localhost`
    const listed = dispatcherFor(parseEgressPolicy({ allow: 'localhost' }));
    assert.equal((await post(listed, `http://LOCALHOST.:${allowed.port}/listed-with-dot`)).status, 200);
    assert.equal(allowed.hits.at(-1)?.path, '/listed-with-dot');
  });

  it('connects to the very address it checked: a resolver that changes its answer afterwards (DNS rebinding) is not asked again', async () => {
    // The resolver is the environment here, not the thing under test: it answers the allowed
    // 127.0.0.1 first and the refused 127.0.0.2 on every later question, like a rebinding attacker.
    const original = dns.lookup;
    const asked: string[] = [];
    (dns as { lookup: unknown }).lookup = (hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
      if (hostname !== 'rebind.test') return (original as (...args: unknown[]) => void)(hostname, options, callback);
      const address = asked.length === 0 ? '127.0.0.1' : '127.0.0.2';
      asked.push(address);
      return options.all ? callback(null, [{ address, family: 4 }]) : callback(null, address, 4);
    };
    try {
      const policy = parseEgressPolicy({ allow: '127.0.0.1/32' });
      const dispatcher = dispatcherFor(policy);
      assert.equal((await post(dispatcher, `http://rebind.test:${allowed.port}/rebind`)).status, 200);
    } finally {
      dns.lookup = original;
    }
    assert.deepEqual(asked, ['127.0.0.1'], 'one lookup per connection: the checked answer is the one connected to');
    assert.equal(allowed.hits.at(-1)?.path, '/rebind');
    assert.deepEqual(refused.hits, []);
  });

  it('keeps connections alive: two deliveries to one receiver share one checked connection', async () => {
    const server = await listen('127.0.0.1', ok);
    try {
      const dispatcher = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.1' }));
      await post(dispatcher, `http://127.0.0.1:${server.port}/one`);
      // undici frees a connection a moment after the body is read; deliveries are never that close together
      await sleep(50);
      await post(dispatcher, `http://127.0.0.1:${server.port}/two`);
      assert.equal(server.hits.length, 2);
      assert.equal(server.connections, 1);
    } finally {
      await server.close();
    }
  });

  it('does not follow a redirect, even to an address it would refuse: the 302 is the answer', async () => {
    const dispatcher = dispatcherFor(parseEgressPolicy({ allow: '127.0.0.1' }));
    const res = await post(dispatcher, `http://127.0.0.1:${allowed.port}/hop`);
    assert.equal(res.status, 302);
    await sleep(200);
    assert.deepEqual(refused.hits.filter((h) => h.path === '/landing'), []);
  });

  describe('TLS', () => {
    const cert = fs.readFileSync(path.join(FIXTURES, 'egress-localhost.crt'));
    const key = fs.readFileSync(path.join(FIXTURES, 'egress-localhost.key'));
    let server: Server;

    before(async () => {
      server = await listen('127.0.0.1', ok, { tls: { cert, key } });
    });
    after(async () => {
      await server?.close();
    });

    it('still verifies the certificate against the URL host (SNI is the name, not the checked address)', async () => {
      const dispatcher = dispatcherFor(parseEgressPolicy({ allow: 'localhost,127.0.0.1' }), { ca: cert });
      assert.equal((await post(dispatcher, `https://localhost:${server.port}/tls`)).status, 200);
      assert.equal(server.hits.at(-1)?.servername, 'localhost');
      // the same server by address: the certificate names localhost only, so verification fails
      await assert.rejects(post(dispatcher, `https://127.0.0.1:${server.port}/tls-by-ip`), (err: NodeJS.ErrnoException) => err.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
      // and without the test CA the self-signed certificate is not trusted at all
      const noCa = dispatcherFor(parseEgressPolicy({ allow: 'localhost' }));
      await assert.rejects(post(noCa, `https://localhost:${server.port}/tls-no-ca`), (err: NodeJS.ErrnoException) => /SELF_SIGNED|UNABLE_TO_VERIFY/.test(err.code ?? ''));
      assert.deepEqual(server.hits.map((h) => h.path), ['/tls']);
    });
  });

  it('save-time check: decides IP literals and names that resolve now, and accepts a name that does not resolve (yet)', async () => {
    const strict = parseEgressPolicy({ allow: '127.0.0.1' });
    assert.match((await savedTargetRefusal(strict, 'http://localhost:9/{{ workflow.id }}'))!, /^localhost resolves to/);
    assert.match((await savedTargetRefusal(strict, 'http://0251.0376.0251.0376/latest/meta-data/'))!, /^169\.254\.169\.254 is a link-local address/);
    assert.equal(await savedTargetRefusal(strict, 'http://127.0.0.1:9/x'), null);
    assert.equal(await savedTargetRefusal(strict, `https://not-yet-${uid()}.invalid/hook`), null);
    assert.match((await savedTargetRefusal(parseEgressPolicy({ production: true }), 'http://hooks.example.com/x'))!, /plain http:\/\//);
  });

  it('save-time check: a localhost name with a trailing dot or capitals is localhost, though it does not resolve here', async () => {
    const strict = parseEgressPolicy({ allow: '127.0.0.1' });
    await assert.rejects(dns.promises.lookup('foo.localhost.'), 'the resolver here does not know foo.localhost. (so resolution cannot be what refuses it)');
    for (const url of ['http://localhost./x', 'http://LOCALHOST./x', 'http://foo.localhost./x', 'http://foo.LOCALHOST/x']) {
      assert.match((await savedTargetRefusal(strict, url))!, /^([a-z]+\.)?localhost resolves to 127\.0\.0\.1, which is a loopback address/, url);
    }
    assert.match((await savedTargetRefusal(strict, 'http://localhost../x'))!, /more than one dot/);
    assert.match((await savedTargetRefusal(strict, 'http:///{{ data.host }}/x'))!, /host is not fixed text/);
  });
});

describe('egress policy on the embedded stack (ALERTS_EGRESS_ALLOW=127.0.0.1)', function () {
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(async () => {
    await receiver?.close();
  });

  const configBody = (workflowId: string, url: string) => ({
    config: { workflowId, name: 'egress', conditions: [{ type: 'failure' }], webhook: { url }, retry: { maxAttempts: 3, initialIntervalMs: 100, maxIntervalMs: 200, backoffCoefficient: 2, maxDurationMs: 30_000 } },
  });

  /** Stores a config without the API's save-time check, as one saved before a name pointed somewhere refused. */
  async function storedConfig(url: string): Promise<string> {
    const input = alertConfigInputSchema.parse(configBody(`wf_egress_stored_${uid()}`, url).config);
    const { config } = await saveConfig(stack.service.db, stack.service.keyring, 'default', input);
    return config.id;
  }

  async function waitForStatus(deliveryId: string, status: string, timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      last = res.body;
      if (res.status === 200 && res.body.status === status) return res.body;
      await sleep(100);
    }
    throw new Error(`delivery ${deliveryId} did not reach ${status} within ${timeoutMs} ms; last answer: ${JSON.stringify(last)}`);
  }

  describe('POST /api/alerts/config refuses a target it can decide, and stores nothing', () => {
    const refusedTargets: [string, string, RegExp][] = [
      ['cloud metadata', 'http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/],
      ['metadata in decimal', 'http://2852039166/latest/meta-data/', /169\.254\.169\.254 is a link-local address/],
      ['metadata in octal', 'http://0251.0376.0251.0376/', /169\.254\.169\.254 is a link-local address/],
      ['metadata in hex', 'http://0xa9fea9fe/', /169\.254\.169\.254 is a link-local address/],
      ['loopback other than the allowed host', 'http://127.0.0.2:8080/hook', /127\.0\.0\.2 is a loopback address/],
      ['loopback in decimal', 'http://2130706434/', /127\.0\.0\.2 is a loopback address/],
      ['loopback in octal', 'http://0177.0.0.2/', /127\.0\.0\.2 is a loopback address/],
      ['loopback in hex', 'http://0x7f.0.0.2/', /127\.0\.0\.2 is a loopback address/],
      ['loopback, short form', 'http://127.2/', /127\.0\.0\.2 is a loopback address/],
      ['IPv6 loopback', 'http://[::1]:8080/hook', /::1 is a loopback address/],
      ['IPv4-mapped IPv6 of the allowed host', 'http://[::ffff:127.0.0.1]/', /::ffff:7f00:1 is IPv4-mapped IPv6 of 127\.0\.0\.1, a loopback address/],
      ['IPv4-mapped IPv6, hex spelling', 'http://[::ffff:7f00:1]/', /IPv4-mapped IPv6 of 127\.0\.0\.1/],
      ['unspecified', 'http://0.0.0.0:8080/', /0\.0\.0\.0 is an unspecified address/],
      ['unspecified IPv6', 'http://[::]/', /:: is an unspecified address/],
      ['private 10/8', 'https://10.1.2.3/hook', /10\.1\.2\.3 is a private address/],
      ['private 172.16/12', 'https://172.20.0.5/hook', /172\.20\.0\.5 is a private address/],
      ['private 192.168/16', 'https://192.168.1.20/hook', /192\.168\.1\.20 is a private address/],
      ['carrier-grade NAT', 'https://100.64.0.1/hook', /carrier-grade NAT/],
      ['unique-local IPv6', 'https://[fd00::1]/hook', /fd00::1 is a unique-local address/],
      ['link-local IPv6', 'https://[fe80::1]/hook', /fe80::1 is a link-local address/],
      ['multicast', 'http://224.0.0.1/', /224\.0\.0\.1 is a multicast address/],
      ['broadcast', 'http://255.255.255.255/', /broadcast/],
      ['NAT64 of a private address', 'https://[64:ff9b::10.0.0.1]/', /NAT64 .*10\.0\.0\.1, a private address/],
      ['6to4 of a private address', 'https://[2002:c0a8:0101::1]/', /6to4 .*192\.168\.1\.1, a private address/],
      ['a name that resolves to loopback', 'http://localhost:8080/hook/{{ workflow.id }}', /localhost resolves to .*, which is a loopback address/],
      ['localhost with a trailing dot', 'http://localhost.:8080/hook', /localhost resolves to 127\.0\.0\.1, which is a loopback address/],
      ['localhost in capitals with a trailing dot', 'http://LOCALHOST./hook', /localhost resolves to 127\.0\.0\.1, which is a loopback address/],
      ['a name under localhost', 'http://foo.localhost./hook', /foo\.localhost resolves to 127\.0\.0\.1, which is a loopback address/],
      ['a name with two trailing dots', 'https://hooks.example.com../hook', /ends in more than one dot/],
    ];

    for (const [what, url, reason] of refusedTargets) {
      it(`${what}: ${url}`, async () => {
        const workflowId = `wf_egress_${uid()}`;
        const res = await stack.api('POST', '/api/alerts/config', configBody(workflowId, url));
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'invalid_request');
        assert.match(res.body.error.message, /^config\.webhook\.url: refused by the egress policy: /);
        assert.match(res.body.error.message, reason);
        assert.deepEqual(res.body.error.details.issues.map((i: { path: string }) => i.path), ['config.webhook.url']);
        const listed = await stack.api('GET', `/api/alerts/config/${workflowId}`);
        assert.deepEqual(listed.body.configs, [], 'nothing stored');
      });
    }

    // the host of these is in a template where a delivery's URL parser reads it (issue: extra slashes bypassed the rule)
    const templatedHosts = [
      'http:///{{ data.host }}/x',
      'http:///{% if true %}169.254.169.254{% endif %}/x',
      'http://\\{{ data.host }}/x',
      'http://\t/{{ data.host }}/x',
      'http://{{ data.user }}@169.254.169.254/',
      'http://{% if true %}169.254.169.254/{% endif %}@hooks.example.com/',
      'http://hooks.example.com:{{ data.port }}/x',
      'http://1.2.3.4:{% if true %}@169.254.169.254{% endif %}/x',
      'http://%31%36%39.254.169.254/x',
    ];
    for (const url of templatedHosts) {
      it(`a host that is not fixed text: ${JSON.stringify(url)} is refused, and the preview says so`, async () => {
        const workflowId = `wf_egress_tpl_${uid()}`;
        const res = await stack.api('POST', '/api/alerts/config', configBody(workflowId, url));
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.match(res.body.error.message, /^config\.webhook\.url: url host must not contain template expressions/);
        assert.deepEqual(res.body.error.details.issues.map((i: { path: string }) => i.path), ['config.webhook.url']);
        assert.deepEqual((await stack.api('GET', `/api/alerts/config/${workflowId}`)).body.configs, [], 'nothing stored');
        const preview = await stack.api('POST', '/api/alerts/preview', { config: configBody(workflowId, url).config, event: { id: 'evt_p', type: 'run.failed', workflowId, runId: 'run_1', data: { host: '169.254.169.254', user: 'u', port: 80 } } });
        assert.equal(preview.status, 400, JSON.stringify(preview.body));
        assert.deepEqual(preview.body.error.details.issues.map((i: { path: string }) => i.path), ['config.webhook.url']);
      });
    }

    it('the preview warns about a trailing-dot localhost as a save refuses it', async () => {
      const workflowId = `wf_egress_preview_${uid()}`;
      const preview = await stack.api('POST', '/api/alerts/preview', configBody(workflowId, 'http://LOCALHOST.:8080/hook'));
      assert.equal(preview.status, 200, JSON.stringify(preview.body));
      assert.match(preview.body.egressRefusal, /^refused by the egress policy: localhost resolves to 127\.0\.0\.1, which is a loopback address/);
      const saved = await stack.api('POST', '/api/alerts/config', configBody(workflowId, 'http://LOCALHOST.:8080/hook'));
      assert.equal(saved.body.error.details.issues[0].message, preview.body.egressRefusal);
    });

    it('an update to a refused target is refused too, and the config keeps its URL', async () => {
      const workflowId = `wf_egress_update_${uid()}`;
      const created = await stack.api('POST', '/api/alerts/config', configBody(workflowId, 'https://hooks.example.com/ok'));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const body = configBody(workflowId, 'http://169.254.169.254/latest/meta-data/');
      const res = await stack.api('POST', '/api/alerts/config', { config: { ...body.config, id: created.body.config.id } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      const listed = await stack.api('GET', `/api/alerts/config/${workflowId}`);
      assert.deepEqual(listed.body.configs.map((c: { webhook: { url: string } }) => c.webhook.url), ['https://hooks.example.com/ok']);
    });

    it('accepts the allowed host, and a name that does not resolve yet (checked again at every delivery)', async () => {
      for (const url of [`${receiver.url}/allowed`, 'http://2130706433:9/same-host-in-decimal', `https://receiver-not-there-yet-${uid()}.invalid/hook`]) {
        const res = await stack.api('POST', '/api/alerts/config', configBody(`wf_egress_ok_${uid()}`, url));
        assert.equal(res.status, 201, `${url}: ${JSON.stringify(res.body)}`);
      }
    });
  });

  describe('every delivery checks the target again', () => {
    let refusedServer: Server;

    before(async () => {
      refusedServer = await listen('127.0.0.2', ok);
    });
    after(async () => {
      await refusedServer?.close();
    });

    it('a stored config aimed at 127.0.0.2 fails permanently at delivery with the reason, in one log row, and nothing reaches it', async () => {
      const configId = await storedConfig(`http://127.0.0.2:${refusedServer.port}/hook`);
      const res = await stack.api('POST', '/api/alerts/test', { configId });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, 'failed');
      assert.equal(res.body.httpStatus, null);
      assert.match(res.body.error, /^refused by the egress policy: 127\.0\.0\.2 is a loopback address \(127\.0\.0\.0\/8\)$/);
      const delivery = await waitForStatus(res.body.deliveryId, 'failed');
      assert.deepEqual(delivery.attempts.map((a: { outcome: string; attempt: number }) => [a.attempt, a.outcome]), [[1, 'failed']]);
      await sleep(1_500); // a retry would have come by now (initialIntervalMs 100)
      const logs = await stack.api('GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(res.body.deliveryId)}`);
      assert.equal(logs.body.logs.length, 1);
      assert.deepEqual(refusedServer.hits, []);
      assert.equal(refusedServer.connections, 0);
    });

    it('a stored config aimed at a name resolves it at delivery and refuses it: localhost is loopback', async () => {
      const path = `/by-name-${uid()}`;
      const port = new URL(receiver.url).port;
      const configId = await storedConfig(`http://localhost:${port}${path}`);
      const res = await stack.api('POST', '/api/alerts/test', { configId });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, 'failed');
      assert.match(res.body.error, /^refused by the egress policy: localhost resolves to .*, which is a loopback address/);
      await waitForStatus(res.body.deliveryId, 'failed');
      assert.equal(receiver.at(path).length, 0, 'the receiver behind localhost got nothing');
    });

    it('the allowed receiver on 127.0.0.1 is delivered to', async () => {
      const path = `/allowed-${uid()}`;
      const configId = await storedConfig(`${receiver.url}${path}`);
      const res = await stack.api('POST', '/api/alerts/test', { configId });
      assert.equal(res.body.outcome, 'delivered', JSON.stringify(res.body));
      assert.equal(receiver.at(path).length, 1);
    });
  });

  describe('redirects are not followed', () => {
    it('a 302 to http://169.254.169.254/ is a permanent failure after one attempt', async () => {
      const path = `/redirect-metadata-${uid()}`;
      receiver.on(path, () => ({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' } }));
      const created = await stack.api('POST', '/api/alerts/config', configBody(`wf_egress_redirect_${uid()}`, `${receiver.url}${path}`));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const res = await stack.api('POST', '/api/alerts/test', { configId: created.body.config.id });
      assert.deepEqual({ outcome: res.body.outcome, httpStatus: res.body.httpStatus, attempt: res.body.attempt }, { outcome: 'failed', httpStatus: 302, attempt: 1 }, JSON.stringify(res.body));
      const delivery = await waitForStatus(res.body.deliveryId, 'failed');
      assert.equal(delivery.attempts.length, 1);
      assert.equal(receiver.at(path).length, 1);
    });

    it('a 307 is not followed even to an allowed address: the redirect target receives nothing', async () => {
      const path = `/redirect-${uid()}`;
      const landing = `/landing-${uid()}`;
      receiver.on(path, () => ({ status: 307, headers: { location: `${receiver.url}${landing}` } }));
      const created = await stack.api('POST', '/api/alerts/config', configBody(`wf_egress_redirect_${uid()}`, `${receiver.url}${path}`));
      const res = await stack.api('POST', '/api/alerts/test', { configId: created.body.config.id });
      assert.equal(res.body.httpStatus, 307, JSON.stringify(res.body));
      assert.equal(res.body.outcome, 'failed');
      await waitForStatus(res.body.deliveryId, 'failed');
      await sleep(500);
      assert.equal(receiver.at(landing).length, 0);
    });
  });
});
