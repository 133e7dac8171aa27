import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { alertsDataConverter } from '../lib/codec';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema } from '../lib/schemas';
import { startMeshHookSource } from '../meshhook/source';
import { defaultOperations, type ServiceDeps } from '../runtime/deps';
import { saveConfig } from '../store/configs';
import { createAlertsWorker } from '../worker';
import { freePort } from '../runtime/host';
import { startServiceProcess, stopAllServiceProcesses } from './support/processes';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { openStore, type TestStore } from './support/stores';
import { tcpForward } from './support/tcp-forward';

/**
 * Bursts of 2,000 MeshHook run changes (1,000 runs, each started then failed) through the change
 * source, with the source SIGKILLed in the middle and started again, and with its database connection
 * dropped in the middle: every change is dispatched (1,000 failure alerts arrive, each once, and the
 * 1,000 delay watches the run.started changes opened are all closed by their run.failed), none twice.
 */
const uid = () => randomBytes(4).toString('hex');
const ROOT = path.resolve(__dirname, '..');
const sql = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
const RUNS = 1_000;
const RETRY = { maxAttempts: 10, initialIntervalMs: 200, backoffCoefficient: 2, maxIntervalMs: 1_000, maxDurationMs: 120_000 };

async function meshhookDatabase(): Promise<TestStore> {
  const db = await openStore('postgres', { migrated: false });
  await db.db.exec(sql('test/fixtures/meshhook-schema.sql'));
  await db.db.exec(sql('meshhook/outbox.up.sql'));
  return db;
}

/** 1,000 runs started, then failed: 2,000 changes, in two statements as a busy MeshHook would commit them. */
async function burst(meshhook: TestStore, project: string, definitionId: string): Promise<void> {
  await meshhook.db.query(`INSERT INTO workflow_runs (project_id, workflow_id, status, started_at) SELECT $1, $2, 'running', now() FROM generate_series(1, $3::int)`, [project, definitionId, RUNS]);
  await meshhook.db.query(`UPDATE workflow_runs SET status = 'failed', finished_at = now() WHERE workflow_id = $1`, [definitionId]);
}

const waitUntil = async (what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 240_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};

describe('the MeshHook change source under faults: 2,000 changes, none lost, none alerted twice', function () {
  this.timeout(400_000);
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });

  after(async () => {
    await stopAllServiceProcesses();
    await receiver?.close();
  });

  /** Every failure alert arrived exactly once (`alerts` runs), and the delay watches ended as `suppressed` says. */
  async function assertAllOnce(hook: string, deliveries: () => Promise<{ status: string; n: number }[]>, expected: { alerts: number; suppressed: number }) {
    const runs = () => receiver.at(hook).map((r) => JSON.parse(r.body).run as string);
    await waitUntil(`${expected.alerts} failure alerts`, () => new Set(runs()).size >= expected.alerts);
    await waitUntil(`${expected.suppressed} delay watches suppressed`, async () => (await deliveries()).some((d) => d.status === 'suppressed' && d.n >= expected.suppressed));
    // long enough for a duplicate to show up, if there were one
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(new Set(runs()).size, expected.alerts, 'every failed run alerted');
    assert.equal(runs().length, expected.alerts, 'no run alerted twice');
    assert.deepEqual((await deliveries()).sort((a, b) => a.status.localeCompare(b.status)), [
      { status: 'delivered', n: expected.alerts },
      { status: 'suppressed', n: expected.suppressed },
    ]);
  }

  const payload = { template: { run: '{{ run.id }}', condition: '{{ condition }}' } };

  it('loses none and alerts none twice when its database connection is dropped in the middle', async () => {
    const meshhook = await meshhookDatabase();
    const forward = tcpForward(await freePort(), { host: '127.0.0.1', port: Number(new URL(meshhook.url!).port) });
    await forward.listen();
    const project = randomUUID();
    const slug = `burst-drop-${uid()}`;
    const hook = `/burst-drop-${slug}`;
    receiver.on(hook, () => ({ status: 200 }));
    const saved = await stack.api('POST', '/api/alerts/config', {
      config: { workflowId: slug, name: 'burst', conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 3600 }], webhook: { url: `${receiver.url}${hook}` }, payload, retry: RETRY },
    });
    assert.equal(saved.status, 201, JSON.stringify(saved.body));
    const [{ id: definitionId }] = await meshhook.db.query<{ id: string }>(`INSERT INTO workflow_definitions (project_id, slug) VALUES ($1, $2) RETURNING id::text`, [project, slug]);
    const url = new URL(meshhook.url!);
    url.port = String(forward.port);
    const source = await startMeshHookSource(stack.service.apiDeps!, { url: url.toString(), projects: new Map([[project, 'default']]), name: 'burst', pollMs: 500, batchSize: 200, log: () => undefined });
    try {
      await burst(meshhook, project, definitionId);
      await waitUntil('the first alerts', () => receiver.at(hook).length >= 200);
      await forward.close(); // every connection through it is cut
      await new Promise((r) => setTimeout(r, 1_500));
      assert.match(source.lastError() ?? '', /connection|terminated|ECONNREFUSED|ECONNRESET/i, 'the source saw the connection go');
      await forward.listen();
      await assertAllOnce(
        hook,
        () => stack.service.db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM alert_deliveries WHERE config_id = $1 GROUP BY status`, [saved.body.config.id]),
        { alerts: RUNS, suppressed: RUNS },
      );
    } finally {
      await source.stop();
      await forward.close();
      await meshhook.close();
    }
  });

  it('loses none and alerts none twice when its process is SIGKILLed in the middle and started again', async () => {
    const meshhook = await meshhookDatabase();
    // the source runs as its own process (meshhook/source-cli.ts) on a PostgreSQL store, beside a worker in this process
    const alerts = await openStore('postgres');
    const keySpec = newKeySpec();
    const keyring = parseKeyring(keySpec);
    const taskQueue = `meshhook-burst-${uid()}`;
    const { connection, namespace } = stack.service.temporal;
    const client = new Client({ connection, namespace, dataConverter: alertsDataConverter(keyring) });
    const deps: ServiceDeps = { db: alerts.db, keyring, egress: parseEgressPolicy({ allow: '127.0.0.1' }), temporal: { client, namespace, taskQueue, eagerStart: false }, operations: defaultOperations() };
    const worker: Worker = await createAlertsWorker(connection, deps);
    const running = worker.run();
    const project = randomUUID();
    const slug = `burst-kill-${uid()}`;
    const hook = `/burst-kill-${slug}`;
    receiver.on(hook, () => ({ status: 200 }));
    const { config } = await saveConfig(alerts.db, keyring, 'default', alertConfigInputSchema.parse({
      workflowId: slug, name: 'burst', conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 3600 }], webhook: { url: `${receiver.url}${hook}` }, payload, retry: RETRY,
    }));
    const [{ id: definitionId }] = await meshhook.db.query<{ id: string }>(`INSERT INTO workflow_definitions (project_id, slug) VALUES ($1, $2) RETURNING id::text`, [project, slug]);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-source-'));
    const env = {
      DATA_DIR: dataDir, DATABASE_URL: alerts.url!, ALERTS_ENCRYPTION_KEYS: keySpec, TEMPORAL_ADDRESS: stack.service.temporalAddress, TEMPORAL_NAMESPACE: namespace,
      TEMPORAL_TASK_QUEUE: taskQueue, ALERTS_EAGER_WORKFLOW_START: 'false', MESHHOOK_DATABASE_URL: meshhook.url!, MESHHOOK_PROJECTS: `${project}:default`,
      ALERTS_API_TOKENS: '', LOG_LEVEL: 'error', ALERTS_STARTUP_WAIT_SECONDS: '30',
    };
    const started = () => startServiceProcess('meshhook-source', 'meshhook/source-cli.ts', env);
    const deliveries = () => alerts.db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM alert_deliveries WHERE config_id = $1 GROUP BY status`, [config.id]);
    try {
      let source = started();
      await source.waitForOutput(/reading run changes/);
      await burst(meshhook, project, definitionId);
      await waitUntil('the first alerts', () => receiver.at(hook).length >= 200);
      await source.kill('SIGKILL');
      const atKill = receiver.at(hook).length;
      // a change made while the source is down: alerted once it is back
      const [{ id: lateRun }] = await meshhook.db.query<{ id: string }>(`INSERT INTO workflow_runs (project_id, workflow_id, status) VALUES ($1, $2, 'failed') RETURNING id::text`, [project, definitionId]);
      assert.ok(atKill < RUNS, `the kill came in the middle (${atKill} of ${RUNS} alerts had arrived)`);
      source = started();
      await source.waitForOutput(/reading run changes/);
      await waitUntil('the change made while the source was down', () => receiver.at(hook).some((r) => JSON.parse(r.body).run === lateRun));
      // the late run failed without a run.started: its run.failed also opens and closes a watch at once
      await assertAllOnce(hook, deliveries, { alerts: RUNS + 1, suppressed: RUNS + 1 });
    } finally {
      await stopAllServiceProcesses();
      worker.shutdown();
      await running.catch(() => undefined);
      await alerts.close();
      await meshhook.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
