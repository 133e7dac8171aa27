import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { alertsDataConverter } from '../lib/codec';
import { startMeshHookSource, type MeshHookSource } from '../meshhook/source';
import type { ServiceDeps } from '../runtime/deps';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { openStore, type TestStore } from './support/stores';

/**
 * The MeshHook change source against a real PostgreSQL database shaped like MeshHook's
 * (test/fixtures/meshhook-schema.sql) with meshhook/outbox.up.sql applied, dispatching into the
 * shared embedded stack: status changes made by plain SQL, as MeshHook makes them, come out as
 * alerts at a real receiver.
 */
const uid = () => randomBytes(4).toString('hex');
const ROOT = path.resolve(__dirname, '..');
const sql = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

describe('the MeshHook change source (MeshHook tables on PostgreSQL)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let receiver: Receiver;
  let meshhook: TestStore;
  let deps: ServiceDeps;
  const project = randomUUID();
  const sources: MeshHookSource[] = [];

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    deps = stack.service.apiDeps!;
    receiver = await Receiver.start();
    meshhook = await openStore('postgres', { migrated: false });
    await meshhook.db.exec(sql('test/fixtures/meshhook-schema.sql'));
    // idempotent: applied twice
    await meshhook.db.exec(sql('meshhook/outbox.up.sql'));
    await meshhook.db.exec(sql('meshhook/outbox.up.sql'));
  });

  // one source at a time: each reads the whole outbox from its own cursor
  afterEach(async () => {
    for (const s of sources.splice(0)) await s.stop();
  });

  after(async () => {
    await receiver?.close();
    await meshhook?.close();
  });

  async function source(name = `src_${uid()}`, projects = new Map([[project, 'default']])): Promise<MeshHookSource> {
    const s = await startMeshHookSource(deps, { url: meshhook.url!, projects, name, pollMs: 300, log: () => undefined });
    sources.push(s);
    return s;
  }

  /** A workflow definition in MeshHook, and an alert config for its slug that posts what the templates see. */
  async function workflow(conditions: object[]): Promise<{ definitionId: string; slug: string; path: string }> {
    const slug = `orders-${uid()}`;
    const [{ id }] = await meshhook.db.query<{ id: string }>(
      `INSERT INTO workflow_definitions (project_id, slug, version, definition) VALUES ($1, $2, 3, '{"name": "Orders sync"}') RETURNING id::text`,
      [project, slug],
    );
    const hookPath = `/meshhook-${slug}`;
    receiver.on(hookPath, () => ({ status: 200 }));
    const res = await stack.api('POST', '/api/alerts/config', {
      config: {
        workflowId: slug,
        name: 'from MeshHook',
        conditions,
        webhook: { url: `${receiver.url}${hookPath}` },
        payload: { template: { condition: '{{ condition }}', run: '{{ run.id }}', workflow: '{{ workflow.id }}', name: '{{ workflow.name }}', version: '{{ workflow.version }}', error: '{{ error.message }}', step: '{{ error.step }}', type: '{{ event.type }}' } },
        retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 },
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { definitionId: id, slug, path: hookPath };
  }

  const startRun = async (definitionId: string): Promise<string> =>
    (await meshhook.db.query<{ id: string }>(`INSERT INTO workflow_runs (project_id, workflow_id, status, started_at) VALUES ($1, $2, 'running', now()) RETURNING id::text`, [project, definitionId]))[0].id;
  const setStatus = (runId: string, status: string) =>
    meshhook.db.query(`UPDATE workflow_runs SET status = $2, finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'canceled') THEN now() END WHERE id = $1`, [runId, status]);
  const bodies = (received: Received[]) => received.map((r) => JSON.parse(r.body) as Record<string, string | number>);

  it('turns every status change of a run into the right event and alert, the failure with its error from the event log', async () => {
    await source();
    const { definitionId, slug, path: hook } = await workflow([{ type: 'failure' }, { type: 'success' }, { type: 'manual_intervention' }, { type: 'canceled' }]);

    const failing = await startRun(definitionId);
    await setStatus(failing, 'paused');
    await setStatus(failing, 'running');
    await meshhook.db.query(`INSERT INTO workflow_events (run_id, type, payload) VALUES ($1, 'step.failed', '{"error": {"message": "HTTP 500 from CRM", "step": "createContact"}}')`, [failing]);
    await setStatus(failing, 'failed');
    const succeeding = await startRun(definitionId);
    await setStatus(succeeding, 'succeeded');
    const canceled = await startRun(definitionId);
    await setStatus(canceled, 'canceled');

    const got = bodies(await receiver.waitFor(hook, 4));
    const of = (run: string) => got.filter((b) => b.run === run).map((b) => b.condition).sort();
    assert.deepEqual(of(failing), ['failure', 'manual_intervention']);
    assert.deepEqual(of(succeeding), ['success']);
    assert.deepEqual(of(canceled), ['canceled']);
    const failure = got.find((b) => b.condition === 'failure')!;
    assert.deepEqual(
      { workflow: failure.workflow, name: failure.name, version: failure.version, error: failure.error, step: failure.step, type: failure.type },
      { workflow: slug, name: 'Orders sync', version: 3, error: 'HTTP 500 from CRM', step: 'createContact', type: 'run.failed' },
    );
    // nothing more: run.started and run.resumed match no condition here, and no change alerts twice
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(receiver.at(hook).length, 4);
  });

  it('starts a delay watch on run.started and ends it quietly when the run finishes in time', async () => {
    await source();
    const { definitionId, path: hook } = await workflow([{ type: 'delay', thresholdSeconds: 2 }]);
    const quick = await startRun(definitionId);
    await setStatus(quick, 'succeeded');
    const slow = await startRun(definitionId);
    const [late] = bodies(await receiver.waitFor(hook, 1, 15_000));
    assert.deepEqual({ condition: late.condition, run: late.run }, { condition: 'delay', run: slow });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(receiver.at(hook).length, 1, 'the run that finished in time sent nothing');
  });

  it('alerts on a change made while the source was down once it comes back, and not again after a restart', async () => {
    const name = `src_${uid()}`;
    const first = await source(name);
    const { definitionId, path: hook } = await workflow([{ type: 'failure' }]);
    const before = await startRun(definitionId);
    await setStatus(before, 'failed');
    await receiver.waitFor(hook, 1);
    await first.stop();

    const whileDown = await startRun(definitionId);
    await setStatus(whileDown, 'failed');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(receiver.at(hook).length, 1, 'nothing is read while the source is down');

    const again = await source(name);
    await again.caughtUp();
    const runs = bodies(await receiver.waitFor(hook, 2)).map((b) => b.run);
    assert.deepEqual(runs.sort(), [before, whileDown].sort());
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(receiver.at(hook).length, 2, 'the change read before the restart does not alert again');
  });

  it("records runs written by a role with no rights on the outbox, and is read by a login holding only meshhook/source-role.sql's rights", async () => {
    const app = `meshhook_app_${uid()}`;
    const login = `alerts_source_${uid()}`;
    await meshhook.db.exec(sql('meshhook/source-role.sql'));
    await meshhook.db.exec(sql('meshhook/source-role.sql'));
    await meshhook.db.exec(`CREATE ROLE ${app} NOLOGIN; GRANT SELECT, INSERT, UPDATE ON workflow_runs TO ${app}; CREATE ROLE ${login} LOGIN IN ROLE meshhook_alerts_source`);
    const { definitionId, path: hook } = await workflow([{ type: 'failure' }]);
    // MeshHook's own role: runs only; the trigger writes the outbox as the role that applied outbox.up.sql
    const [{ id: runId }] = await meshhook.db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL ROLE ${app}`);
      const rows = await tx.query<{ id: string }>(`INSERT INTO workflow_runs (project_id, workflow_id, status, started_at) VALUES ($1, $2, 'running', now()) RETURNING id::text`, [project, definitionId]);
      await tx.query(`UPDATE workflow_runs SET status = 'failed', finished_at = now() WHERE id = $1`, [rows[0].id]);
      return rows;
    });
    const url = new URL(meshhook.url!);
    url.username = login;
    url.password = '';
    const s = await startMeshHookSource(deps, { url: url.toString(), projects: new Map([[project, 'default']]), name: `src_${uid()}`, pollMs: 300, log: () => undefined });
    sources.push(s);
    const [alert] = bodies(await receiver.waitFor(hook, 1));
    assert.equal(alert.run, runId);
  });

  it('finds a change whose NOTIFY never arrived by polling', async () => {
    await source();
    const { definitionId, path: hook } = await workflow([{ type: 'failure' }]);
    const runId = randomUUID();
    // written as the trigger writes it, without the notification (as if it was lost)
    await meshhook.db.query(`ALTER TABLE workflow_runs DISABLE TRIGGER meshhook_alerts_run_change`);
    try {
      await meshhook.db.query(`INSERT INTO workflow_runs (id, project_id, workflow_id, status, started_at, finished_at) VALUES ($1, $2, $3, 'failed', now(), now())`, [runId, project, definitionId]);
    } finally {
      await meshhook.db.query(`ALTER TABLE workflow_runs ENABLE TRIGGER meshhook_alerts_run_change`);
    }
    await meshhook.db.query(
      `INSERT INTO meshhook_alerts.run_changes (run_id, project_id, workflow_id, new_status, started_at, finished_at) VALUES ($1, $2, $3, 'failed', now(), now())`,
      [runId, project, definitionId],
    );
    const [alert] = bodies(await receiver.waitFor(hook, 1, 5_000));
    assert.equal(alert.run, runId);
  });

  it('reads again at once for a change announced while it was still dispatching the one before (no wait for the poll)', async () => {
    // the first change's workflow start is held until released, so the second change is committed, and its
    // NOTIFY arrives, while the source is inside that read; the poll is a minute, longer than the test waits
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { definitionId, slug, path: hook } = await workflow([{ type: 'failure' }]);
    let starts = 0;
    const holdFirst: WorkflowClientInterceptor = {
      async start(input, next) {
        // only this test's deliveries: the source also reads the earlier tests' changes (started before, so duplicates)
        const isOurs = (input.options.args[0] as { event: { workflowId: string } }).event.workflowId === slug;
        if (isOurs && ++starts === 1) await held;
        return next(input);
      },
    };
    const { connection, namespace } = stack.service.temporal;
    const client = new Client({ connection, namespace, dataConverter: alertsDataConverter(stack.service.keyring), interceptors: { workflow: [holdFirst] } });
    const s = await startMeshHookSource({ ...deps, temporal: { ...deps.temporal, client } }, { url: meshhook.url!, projects: new Map([[project, 'default']]), name: `src_${uid()}`, pollMs: 60_000, log: () => undefined });
    sources.push(s);
    await s.caughtUp();
    const first = await startRun(definitionId);
    await setStatus(first, 'failed');
    while (starts === 0) await new Promise((r) => setTimeout(r, 20));
    const second = await startRun(definitionId);
    await setStatus(second, 'failed');
    await new Promise((r) => setTimeout(r, 300)); // the NOTIFY of the second is in
    release();
    const runs = bodies(await receiver.waitFor(hook, 2, 10_000)).map((b) => b.run);
    assert.deepEqual(runs.sort(), [first, second].sort());
  });

  it('refuses to start while a MeshHook project is not mapped to an alerts project', async () => {
    const stranger = randomUUID();
    await meshhook.db.query(`INSERT INTO workflow_definitions (project_id, slug) VALUES ($1, $2)`, [stranger, `other-${uid()}`]);
    try {
      await assert.rejects(source(`src_${uid()}`, new Map([[project, 'default']])), new RegExp(`MeshHook projects not in MESHHOOK_PROJECTS: ${stranger}`));
    } finally {
      await meshhook.db.query('DELETE FROM workflow_definitions WHERE project_id = $1', [stranger]);
    }
  });

  it('is removed again by outbox.down.sql, leaving MeshHook\'s tables as they were', async () => {
    const scratch = await openStore('postgres', { migrated: false });
    try {
      await scratch.db.exec(sql('test/fixtures/meshhook-schema.sql'));
      await scratch.db.exec(sql('meshhook/outbox.up.sql'));
      await scratch.db.exec(sql('meshhook/outbox.down.sql'));
      await scratch.db.exec(sql('meshhook/outbox.down.sql'));
      const left = await scratch.db.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'meshhook_alerts')::int + (SELECT count(*) FROM pg_trigger WHERE tgname = 'meshhook_alerts_run_change')::int AS n`,
      );
      assert.equal(left[0].n, 0);
      // MeshHook goes on writing runs as before
      const [{ id }] = await scratch.db.query<{ id: string }>(`INSERT INTO workflow_definitions (project_id, slug) VALUES (gen_random_uuid(), 'x') RETURNING id::text`);
      await scratch.db.query(`INSERT INTO workflow_runs (project_id, workflow_id, status) VALUES (gen_random_uuid(), $1, 'running')`, [id]);
    } finally {
      await scratch.close();
    }
  });
});
