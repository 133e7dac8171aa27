import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { loadEnv } from '../lib/env';
import { startService, type RunningService } from '../runtime/boot';
import { createToken } from '../store/tokens';
import { makeScratchDir } from './support/scratch';
import { useStack } from './support/stack';

/**
 * The API over HTTPS as startService runs it when ALERTS_TLS_CERT_PATH and ALERTS_TLS_KEY_PATH are set:
 * a second service (its own PGlite, API and worker on its own task queue) joined to the shared
 * stack's Temporal dev server, with a self-signed certificate made by openssl for 127.0.0.1. The same
 * service has a low ALERTS_RATE_LIMIT_PER_MINUTE, which checks that the variable reaches the API.
 */
describe('HTTPS on the API (ALERTS_TLS_CERT_PATH, ALERTS_TLS_KEY_PATH)', function () {
  const RATE_LIMIT = 30;
  let dir: string;
  let certPem: string;
  let service: RunningService;
  let agent: Agent;

  before(async function () {
    this.timeout(180_000);
    const stack = await useStack();
    dir = makeScratchDir('meshhook-alerts-https-');
    const certPath = path.join(dir, 'cert.pem');
    const keyPath = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=meshhook-alerts-test',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: 'pipe' });
    certPem = fs.readFileSync(certPath, 'utf8');
    service = await startService({
      roles: { api: true, worker: true },
      env: {
        ...process.env,
        DATA_DIR: path.join(dir, 'data'),
        PORT: '0',
        HOST: '127.0.0.1',
        TEMPORAL_ADDRESS: stack.service.temporalAddress,
        TEMPORAL_TASK_QUEUE: 'meshhook-alerts-https-test',
        DATABASE_URL: '',
        ALERTS_API_TOKENS: '',
        ALERTS_ENCRYPTION_KEYS: '',
        LOG_LEVEL: 'error',
        ALERTS_TLS_CERT_PATH: certPath,
        ALERTS_TLS_KEY_PATH: keyPath,
        ALERTS_RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
      },
    });
    agent = new Agent({ connect: { ca: certPem } });
  });

  after(async function () {
    this.timeout(60_000);
    await agent?.close();
    await service?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = (urlPath: string, token?: string) =>
    undiciFetch(`${service.apiUrl}${urlPath}`, { dispatcher: agent, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('serves the API over HTTPS with the configured certificate', async () => {
    assert.match(service.apiUrl!, /^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await get('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const configs = await get('/api/alerts/config', service.apiToken);
    assert.equal(configs.status, 200);
    assert.deepEqual(await configs.json(), { configs: [] });

    // the certificate the server presents is the one in ALERTS_TLS_CERT_PATH
    const { port } = new URL(service.apiUrl!);
    const presented = await new Promise<tls.PeerCertificate>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: Number(port), ca: certPem, servername: 'localhost' }, () => {
        resolve(socket.getPeerCertificate());
        socket.end();
      });
      socket.once('error', reject);
    });
    assert.equal(presented.fingerprint256, new X509Certificate(certPem).fingerprint256);
  });

  it('does not answer plain HTTP on its port, and a client that does not trust the certificate refuses it', async () => {
    await assert.rejects(fetch(service.apiUrl!.replace('https:', 'http:') + '/healthz'), 'plain HTTP gets no HTTP answer');
    await assert.rejects(fetch(`${service.apiUrl}/healthz`), (err: Error & { cause?: { code?: string } }) => {
      assert.match(String(err.cause?.code ?? err.cause), /SELF_SIGNED|CERT|UNABLE_TO_VERIFY/);
      return true;
    });
  });

  it(`limits each token to ALERTS_RATE_LIMIT_PER_MINUTE (${RATE_LIMIT}) requests in a burst: 429 with Retry-After`, async function () {
    this.timeout(30_000);
    const token = await createToken(service.db, 'default', 'https test');
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof get>> | undefined;
    for (let i = 0; i < RATE_LIMIT + 5 && last?.status !== 429; i++) {
      last = await get('/api/alerts/config', token);
      statuses.push(last.status);
      await last.arrayBuffer();
    }
    assert.ok(statuses.length >= RATE_LIMIT + 1, `${statuses.length - 1} requests were allowed before the 429`);
    assert.deepEqual(statuses.slice(0, RATE_LIMIT), Array(RATE_LIMIT).fill(200));
    assert.equal(last!.status, 429);
    assert.ok(Number(last!.headers.get('retry-after')) >= 1, 'Retry-After is a number of seconds');
  });

  it('refuses a certificate without a key, and a key without a certificate, at start', () => {
    assert.throws(() => loadEnv({ ALERTS_TLS_CERT_PATH: '/x/cert.pem' }), /ALERTS_TLS_CERT_PATH and ALERTS_TLS_KEY_PATH go together/);
    assert.throws(() => loadEnv({ ALERTS_TLS_KEY_PATH: '/x/key.pem' }), /ALERTS_TLS_CERT_PATH and ALERTS_TLS_KEY_PATH go together/);
  });
});
