import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newKeySpec } from '../lib/crypto';
import { startDevServer, type DevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { freePort } from '../runtime/host';
import type { TestPostgres } from './support/postgres';
import { startServiceProcess, stopAllServiceProcesses, type ServiceProcess } from './support/processes';
import { Receiver, type Received } from './support/receiver';
import { sharedPostgres } from './support/stores';

/**
 * Durability across a crashed worker, in the production topology: the API and
 * the worker are separate `node --import tsx` processes sharing a real
 * PostgreSQL database and a Temporal dev server of their own. A worker is
 * killed with SIGKILL (no shutdown, no chance to finish what it was doing) and
 * a new one started; the alerts it was working on must still arrive.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const READY = /ready; press Ctrl-C/;

function verifies(req: Received, secret: string): boolean {
  const signed = `${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`;
  const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(signed).digest('base64');
  return String(req.headers['webhook-signature']).split(' ').includes(`v1,${expected}`);
}

describe('alerts survive a worker killed with SIGKILL (API and worker as processes, PostgreSQL)', function () {
  this.timeout(120_000);

  const token = `restart_${randomBytes(16).toString('hex')}`;
  const processes: ServiceProcess[] = [];
  let tempDir: string | undefined;
  let postgres: TestPostgres | undefined;
  let databaseUrl: string | undefined;
  let devServer: DevServer | undefined;
  let receiver: Receiver | undefined;
  let env: Record<string, string>;
  let apiUrl: string;
  let worker: ServiceProcess;

  async function startWorker(): Promise<ServiceProcess> {
    const proc = startServiceProcess(`worker ${processes.length}`, 'worker.ts', env);
    processes.push(proc);
    await proc.waitForOutput(READY, 120_000);
    return proc;
  }

  async function api(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${apiUrl}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async function getDelivery(deliveryId: string): Promise<{ status: number; body: any }> {
    return api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
  }

  const FINAL = ['delivered', 'failed', 'suppressed'];
  const closed = (timeline: { event: string }[] = []) => timeline.some((e) => e.event === 'delivery finished');

  async function waitForStatus(deliveryId: string, statuses: string[], timeoutMs: number): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const res = await getDelivery(deliveryId);
      last = res.body;
      // a final row is written inside the delivery's last workflow task, a moment before Temporal records it:
      // wait for the history to show the workflow finished too, so the timeline is whole
      if (res.status === 200 && statuses.includes(res.body.status) && (!FINAL.includes(res.body.status) || closed(res.body.timeline))) return res.body;
      await sleep(200);
    }
    throw new Error(`delivery ${deliveryId} did not reach ${statuses.join('/')} within ${timeoutMs} ms; last answer: ${JSON.stringify(last)}`);
  }

  async function createConfig(config: Record<string, unknown>): Promise<{ id: string; secret: string }> {
    const res = await api('POST', '/api/alerts/config', { config: { name: 'restart test', ...config } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.config.id, secret: res.body.secret };
  }

  async function killWorker(): Promise<void> {
    await worker.kill('SIGKILL');
    assert.equal(worker.child.signalCode, 'SIGKILL');
  }

  before(async function () {
    this.timeout(10 * 60_000); // PostgreSQL initdb, maybe a Temporal CLI download, two workflow bundles
    receiver = await Receiver.start();
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-restart-'));
    postgres = await sharedPostgres();
    databaseUrl = await postgres.createDatabase();
    const cliPath = await resolveTemporalCli({ log: (line) => process.stderr.write(`[temporal-cli] ${line}\n`) });
    devServer = await startDevServer({ cliPath, dataDir: tempDir, namespace: 'default', port: await freePort(), uiPort: await freePort() });
    env = {
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: devServer.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: `alerts-restart-${uid()}`,
      ALERTS_ENCRYPTION_KEYS: newKeySpec(),
      ALERTS_API_TOKENS: `${token}:default`,
      ALERTS_EGRESS_ALLOW: '127.0.0.1', // the receiver
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      DATA_DIR: path.join(tempDir, 'data'),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    };
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    const apiProcess = startServiceProcess('api', 'api/server.ts', { ...env, PORT: String(port) });
    processes.push(apiProcess);
    await apiProcess.waitForOutput(READY, 120_000);
    worker = await startWorker();
  });

  after(async function () {
    this.timeout(60_000);
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
      }
    };
    await step('stop service processes', stopAllServiceProcesses);
    for (const proc of processes) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) problems.push(`${proc.name} (pid ${proc.child.pid}) is still running`);
    }
    await step('stop the Temporal dev server', () => devServer?.stop());
    await step('drop the test database', () => databaseUrl && postgres?.dropDatabase(databaseUrl));
    await step('close the receiver', () => receiver?.close());
    await step('remove the temp folder', () => tempDir && fs.rmSync(tempDir, { recursive: true, force: true }));
    if (problems.length) throw new Error(`cleanup failed:\n${problems.join('\n')}`);
  });

  it('delivers a retrying alert after the worker is killed right after a failed attempt and a new worker starts', async () => {
    const FAILURES = 2;
    const hookPath = `/retrying-${uid()}`;
    receiver!.on(hookPath, (n) => ({ status: n <= FAILURES ? 503 : 200 }));
    const workflowId = `wf_restart_${uid()}`;
    const config = await createConfig({
      workflowId,
      conditions: [{ type: 'failure' }],
      webhook: { url: `${receiver!.url}${hookPath}`, timeoutMs: 2_000 },
      retry: { maxAttempts: 10, initialIntervalMs: 1_000, backoffCoefficient: 2, maxIntervalMs: 4_000, maxDurationMs: 300_000 },
    });
    const runId = `run_${uid()}`;
    const sent = await api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId, error: { message: 'boom' } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const [{ deliveryId }] = sent.body.deliveries;

    await receiver!.waitFor(hookPath, 1, 30_000); // the first attempt got its 503
    await killWorker();
    const killedAt = Date.now();
    assert.equal(receiver!.at(hookPath).length, 1, 'the old worker sent nothing more');
    worker = await startWorker();

    const delivery = await waitForStatus(deliveryId, ['delivered', 'failed'], 90_000);
    assert.equal(delivery.status, 'delivered', JSON.stringify(delivery));
    const hooks = receiver!.at(hookPath);
    assert.equal(hooks.length, FAILURES + 1, 'two 503s, then one 200, and nothing after it');
    assert.ok(hooks.slice(1).every((h) => h.at >= killedAt), 'the later attempts came from the new worker');
    for (const hook of hooks) {
      assert.equal(hook.headers['webhook-id'], deliveryId, 'the same webhook-id on every attempt');
      assert.equal(hook.body, hooks[0].body, 'the same bytes on every attempt');
      assert.ok(verifies(hook, config.secret), 'signed with the config secret');
    }
    assert.equal(JSON.parse(hooks[FAILURES].body).run.id, runId);

    const last = delivery.attempts[delivery.attempts.length - 1];
    assert.deepEqual([last.outcome, last.httpStatus], ['delivered', 200]);
    const numbers: number[] = delivery.attempts.map((a: { attempt: number }) => a.attempt);
    assert.deepEqual(numbers, numbers.map((_, i) => i + 1), 'one log row for every attempt, numbered 1..n');
    for (const attempt of delivery.attempts.slice(0, -1)) {
      // an attempt cut off by the kill has a row saying so; every other one logged its 503
      const lost = attempt.httpStatus === null && /worker stopped during this attempt/.test(attempt.error);
      assert.ok(lost || attempt.httpStatus === 503, JSON.stringify(attempt));
      assert.equal(attempt.outcome, 'retrying');
    }
    assert.equal(delivery.attempts.length, hooks.length, `one log row per request the receiver saw: ${JSON.stringify(delivery.attempts)}`);
  });

  it('sends a delay alert after the worker is killed while the watch waits on its timer and a new worker starts', async () => {
    const hookPath = `/delay-${uid()}`;
    const workflowId = `wf_restart_delay_${uid()}`;
    const config = await createConfig({ workflowId, conditions: [{ type: 'delay', thresholdSeconds: 3 }], webhook: { url: `${receiver!.url}${hookPath}` } });
    const runId = `run_${uid()}`;
    const sentAt = Date.now();
    const sent = await api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.started', workflowId, runId });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const [{ deliveryId, condition }] = sent.body.deliveries;
    assert.equal(condition, 'delay');

    // kill within 1 s of run.started: once the watch's durable timer is running, or at 800 ms regardless
    while (Date.now() - sentAt < 800) {
      const res = await getDelivery(deliveryId);
      if (res.status === 200 && res.body.status === 'scheduled' && res.body.timeline.some((e: { event: string }) => e.event === 'delay timer started')) break;
      await sleep(50);
    }
    const killAt = Date.now();
    await killWorker();
    assert.ok(killAt - sentAt < 1_000, `killed ${killAt - sentAt} ms after run.started`);
    assert.equal(receiver!.at(hookPath).length, 0);
    worker = await startWorker();

    const [hook] = await receiver!.waitFor(hookPath, 1, 90_000);
    assert.ok(hook.at - sentAt >= 3_000, `the alert came ${hook.at - sentAt} ms after run.started, not before the 3 s threshold`);
    assert.equal(hook.headers['webhook-id'], deliveryId);
    assert.ok(verifies(hook, config.secret));
    const payload = JSON.parse(hook.body);
    assert.equal(payload.condition, 'delay');
    assert.equal(payload.run.id, runId);

    const delivery = await waitForStatus(deliveryId, ['delivered', 'failed', 'suppressed'], 30_000);
    assert.equal(delivery.status, 'delivered');
    assert.deepEqual(
      delivery.attempts.map((a: { attempt: number; outcome: string; httpStatus: number }) => [a.attempt, a.outcome, a.httpStatus]),
      [[1, 'delivered', 200]],
    );
    const events = delivery.timeline.map((e: { event: string }) => e.event);
    assert.ok(events.includes('delay timer fired: run still not finished') && events.includes('webhook delivered'), events.join(', '));
    await sleep(500);
    assert.equal(receiver!.at(hookPath).length, 1, 'sent once');
  });

  it('sends the same bytes again when the worker is killed during a delay alert\'s first attempt', async () => {
    const hookPath = `/delay-cut-${uid()}`;
    const workflowId = `wf_restart_cut_${uid()}`;
    // the first POST is held and never answered (the worker dies during it); the next one lands
    receiver!.on(hookPath, (n) => (n === 1 ? 'hang' : { status: 200 }));
    const config = await createConfig({ workflowId, conditions: [{ type: 'delay', thresholdSeconds: 1 }], webhook: { url: `${receiver!.url}${hookPath}` } });
    const runId = `run_${uid()}`;
    const sent = await api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.started', workflowId, runId });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const [{ deliveryId }] = sent.body.deliveries;
    const [first] = await receiver!.waitFor(hookPath, 1, 30_000);
    await killWorker();
    worker = await startWorker();
    const [, second] = await receiver!.waitFor(hookPath, 2, 90_000);
    assert.equal(second.headers['webhook-id'], deliveryId);
    assert.ok(verifies(second, config.secret));
    // rendered once: a delay alert's run.durationMs is not measured again by the task that ran after the kill
    assert.equal(second.body, first.body);
    assert.equal(typeof JSON.parse(second.body).run.durationMs, 'number');
    const delivery = await waitForStatus(deliveryId, ['delivered', 'failed', 'suppressed'], 30_000);
    assert.equal(delivery.status, 'delivered');
  });
});
