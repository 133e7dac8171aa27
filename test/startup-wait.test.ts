import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newKeySpec } from '../lib/crypto';
import { startDevServer, type DevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { freePort } from '../runtime/host';
import { startServiceProcess, stopAllServiceProcesses } from './support/processes';
import { sharedPostgres } from './support/stores';
import { tcpForward, type TcpForward } from './support/tcp-forward';

/**
 * In a deployment PostgreSQL, Temporal, the API and the workers come up in any order. The API and the
 * worker (`npm run api`, `npm run worker`, as processes) started before both wait for them, saying so,
 * and get ready once they are up; past ALERTS_STARTUP_WAIT_SECONDS they exit with a clear message.
 */
describe('API and worker started before PostgreSQL and Temporal', function () {
  this.timeout(180_000);
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-startup-wait-'));
  const token = `wait_${randomBytes(16).toString('hex')}`;
  let cliPath: string;
  let databaseUrl: string;
  let devServer: DevServer | undefined;
  let forward: TcpForward | undefined;

  /** the database's URL with its port changed to `port` */
  const onPort = (url: string, port: number) => Object.assign(new URL(url), { port: String(port) }).toString();
  const serviceEnv = (over: Record<string, string>) => ({
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: `alerts-wait-${randomBytes(4).toString('hex')}`,
    ALERTS_ENCRYPTION_KEYS: newKeySpec(),
    ALERTS_API_TOKENS: `${token}:default`,
    ALERTS_EGRESS_ALLOW: '',
    ALERTS_ALLOW_PRIVATE_NETWORKS: '',
    DATA_DIR: path.join(tempDir, 'data'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...over,
  });

  before(async function () {
    this.timeout(10 * 60_000);
    cliPath = await resolveTemporalCli({ log: (line) => process.stderr.write(`[temporal-cli] ${line}\n`) });
    databaseUrl = await (await sharedPostgres()).createDatabase();
  });
  afterEach(async () => {
    await stopAllServiceProcesses();
    await forward?.close();
    await devServer?.stop();
    forward = devServer = undefined;
  });
  after(() => fs.rmSync(tempDir, { recursive: true, force: true }));

  it('waits with backoff for PostgreSQL, then Temporal, saying so, and gets ready once they are up', async () => {
    const [pgPort, temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const env = serviceEnv({ DATABASE_URL: onPort(databaseUrl, pgPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, ALERTS_STARTUP_WAIT_SECONDS: '120' });
    const worker = startServiceProcess('worker', 'worker.ts', env);
    const api = startServiceProcess('api', 'api/server.ts', { ...env, PORT: String(apiPort) });

    // nothing listens on either port yet
    for (const proc of [worker, api]) {
      await proc.waitForOutput(new RegExp(`waiting for PostgreSQL at 127\\.0\\.0\\.1:${pgPort} \\(ECONNREFUSED\\); retry 3 in 2 s, giving up in \\d+ s`), 60_000);
    }
    assert.match(worker.output(), /retry 1 in 0\.5 s, giving up in 1[12]\d s[\s\S]*retry 2 in 1 s/);
    assert.equal(worker.exited() || api.exited(), false);

    // PostgreSQL comes up; Temporal is still down
    const pgPortReal = Number(new URL(databaseUrl).port);
    forward = tcpForward(pgPort, { host: '127.0.0.1', port: pgPortReal });
    await forward.listen();
    for (const proc of [worker, api]) {
      await proc.waitForOutput(new RegExp(`waiting for Temporal at 127\\.0\\.0\\.1:${temporalPort} \\(ECONNREFUSED\\); retry 2 in 1 s`), 60_000);
    }

    // Temporal comes up: both get ready
    devServer = await startDevServer({ cliPath, dataDir: path.join(tempDir, 'temporal'), namespace: 'default', port: temporalPort, uiPort });
    await worker.waitForOutput(/worker running[\s\S]*ready; press Ctrl-C/, 120_000);
    await api.waitForOutput(/ready; press Ctrl-C/, 120_000);
    const ready = await fetch(`http://127.0.0.1:${apiPort}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { store: 'ok', temporal: 'ok' });
    assert.doesNotMatch(worker.output() + api.output(), /could not start/);
    assert.doesNotMatch(worker.output() + api.output(), /postgres:\/\/[^@\s]*@/, 'the database URL (user, password) is not printed');
  });

  it('gives up after ALERTS_STARTUP_WAIT_SECONDS with a clear message and a non-zero exit; 0 fails at once', async () => {
    const [pgPort, temporalPort] = [await freePort(), await freePort()];
    const worker = startServiceProcess('worker', 'worker.ts', serviceEnv({ DATABASE_URL: onPort(databaseUrl, pgPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, ALERTS_STARTUP_WAIT_SECONDS: '2' }));
    const api = startServiceProcess('api', 'api/server.ts', serviceEnv({ DATABASE_URL: databaseUrl, TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, ALERTS_STARTUP_WAIT_SECONDS: '0', PORT: '0' }));
    const exitCode = (proc: typeof worker) => new Promise<number | null>((resolve) => (proc.exited() ? resolve(proc.child.exitCode) : proc.child.once('exit', (code) => resolve(code))));

    const started = Date.now();
    assert.equal(await exitCode(worker), 1);
    assert.match(worker.output(), /waiting for PostgreSQL at 127\.0\.0\.1:\d+ \(ECONNREFUSED\); retry 1 in 0\.5 s, giving up in 2 s/);
    assert.match(
      worker.output(),
      new RegExp(`could not start: PostgreSQL at 127\\.0\\.0\\.1:${pgPort} is still not up after waiting 2 s: ECONNREFUSED \\(.*\\); check DATABASE_URL, or wait longer with ALERTS_STARTUP_WAIT_SECONDS`),
    );
    assert.ok(Date.now() - started < 30_000);

    assert.equal(await exitCode(api), 1);
    assert.doesNotMatch(api.output(), /waiting for/);
    assert.match(api.output(), new RegExp(`could not start: Temporal at 127\\.0\\.0\\.1:${temporalPort} is not up \\(ALERTS_STARTUP_WAIT_SECONDS=0: no waiting\\): ECONNREFUSED .*check TEMPORAL_ADDRESS`));
  });
});
