import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError, type Client, type ScheduleHandle } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { retentionActivities } from '../activities/retention';
import { eraseProject } from '../api/routes/erasure';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { configureLogging, redirectLogs } from '../lib/log';
import { alertConfigInputSchema } from '../lib/schemas';
import { AlertProjectId } from '../lib/search-attributes';
import { ensureRetentionSchedule, retentionScheduleId } from '../runtime/schedules';
import { saveConfig } from '../store/configs';
import type { Queryable } from '../store/db';
import { eraseProjectRows, NOTHING_ERASED } from '../store/erasure';
import { deleteExpiredBatch } from '../store/retention';
import type { RetentionSweepInput, RetentionSweepResult } from '../workflows/retention';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { STORE_KINDS, useStore } from './support/stores';

const uid = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` answers something truthy, or fails naming `what`. */
async function waitUntil<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

// ------------------------------------------------------------ rows as the store holds them, written directly

const DAY = 'make_interval(days => $2)';

async function insertLogs(db: Queryable, projectId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome)
       VALUES ($1, $2, 'cfg_direct', 'wf_direct', 'run_direct', 'evt_direct', 'failure', 1, 'delivered') RETURNING id::text AS id`,
      [projectId, `dlv-direct-${uid()}`],
    );
    ids.push(row.id);
  }
  return ids;
}

async function insertDelivery(db: Queryable, projectId: string, status: string): Promise<string> {
  const deliveryId = `dlv-direct-${uid()}`;
  await db.query(
    `INSERT INTO alert_deliveries (delivery_id, project_id, config_id, workflow_id, run_id, event_id, condition, status, key_id, event_sealed)
     VALUES ($1, $2, 'cfg_direct', 'wf_direct', 'run_direct', $3, 'failure', $4, 'k1', 'sealed')`,
    [deliveryId, projectId, `evt_${uid()}`, status],
  );
  return deliveryId;
}

/** Held alerts of `configId` (by default one no config row has: a config deleted since). */
async function insertHeld(db: Queryable, projectId: string, count: number, configId = 'cfg_direct'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO alert_held (project_id, config_id, workflow_id, run_id, event_id, condition, key_id, event_sealed)
       VALUES ($1, $3, 'wf_direct', 'run_direct', $2, 'failure', 'k1', 'sealed') RETURNING id::text AS id`,
      [projectId, `evt_${uid()}`, configId],
    );
    ids.push(row.id);
  }
  return ids;
}

async function insertOperatorAlert(db: Queryable, projectId: string, status: string): Promise<string> {
  const alertId = `op:project:delivery.exhausted:${uid()}`;
  await db.query(
    `INSERT INTO operator_alerts (alert_id, event_id, project_id, type, target, status, event) VALUES ($1, $1, $2, 'delivery.exhausted', 'project', $3, '{}'::jsonb)`,
    [alertId, projectId, status],
  );
  return alertId;
}

async function insertAudit(db: Queryable, projectId: string): Promise<string> {
  const [row] = await db.query<{ id: string }>(
    `INSERT INTO alert_audit_log (project_id, token_id, action, config_id, workflow_id, changes) VALUES ($1, NULL, 'config.created', 'cfg_direct', 'wf_direct', '[]'::jsonb) RETURNING id::text AS id`,
    [projectId],
  );
  return row.id;
}

/** Moves rows into the past: the test's clock. */
async function age(db: Queryable, table: string, key: string, keys: string[], days: number, columns = ['created_at']): Promise<void> {
  const set = columns.map((c) => `${c} = now() - ${DAY}`).join(', ');
  const updated = await db.query(`UPDATE ${table} SET ${set} WHERE ${key}::text = ANY($1::text[]) RETURNING 1`, [keys, days]);
  assert.equal(updated.length, keys.length, `aged ${table} rows`);
}

const keysOf = async (db: Queryable, table: string, key: string, projects: string[]) =>
  (await db.query<{ key: string }>(`SELECT ${key}::text AS key FROM ${table} WHERE project_id = ANY($1::text[]) ORDER BY 1`, [projects])).map((r) => r.key);

const countOf = async (db: Queryable, table: string, projectId: string) =>
  (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE project_id = $1`, [projectId]))[0].n;

const without = (all: string[], gone: string[]) => all.filter((k) => !gone.includes(k)).sort();

// ------------------------------------------------------------ the batches themselves, on both stores

for (const kind of STORE_KINDS) {
  describe(`retention batches and project erasure in the store (${kind})`, () => {
    const store = useStore(kind);

    it('deletes the expired rows oldest first, at most a batch per statement, through the time index', async () => {
      const project = `ret_store_${uid()}`;
      const old = await insertLogs(store.db, project, 7);
      const young = await insertLogs(store.db, project, 2);
      await age(store.db, 'alert_logs', 'id', old, 40);
      const cutoff = new Date(Date.now() - 30 * 86_400_000);
      const batches: number[] = [];
      for (let n = 3; n === 3; ) batches.push((n = await deleteExpiredBatch(store.db, 'alert_logs', cutoff, 3)));
      assert.deepEqual(batches, [3, 3, 1]);
      assert.deepEqual(await keysOf(store.db, 'alert_logs', 'id', [project]), [...young].sort());
      // each batch finds its rows through an index on the time column, not a scan of the table
      for (const [table, where] of [
        ['alert_logs', 'created_at < now()'],
        ['alert_deliveries', `updated_at < now() AND status IN ('delivered', 'failed', 'suppressed')`],
        ['alert_held', `created_at < now() AND NOT EXISTS (SELECT 1 FROM alert_configs c WHERE c.id = alert_held.config_id AND c.project_id = alert_held.project_id AND NOT c.enabled AND c.disabled_reason IS NOT NULL)`],
        ['alert_audit_log', 'created_at < now()'],
        ['operator_alerts', `created_at < now() AND status IN ('delivered', 'failed')`],
      ]) {
        await store.db.exec('SET enable_seqscan = off');
        const plan = (await store.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT ctid FROM ${table} WHERE ${where} ORDER BY ${where.split(' ')[0]} LIMIT 10`)).map((r) => r['QUERY PLAN']).join('\n');
        await store.db.exec('SET enable_seqscan = on');
        assert.match(plan, /Index Scan/, `${table}: ${plan}`);
      }
    });

    it('keeps the aged held alerts of a config the service still has disabled or whose release is under way, and expires those of a config deleted or turned off by its user', async () => {
      const project = `ret_held_${uid()}`;
      const keyring = parseKeyring(newKeySpec('k1'));
      const config = async (name: string, enabled: boolean, disabledReason: string | null) => {
        const { config: saved } = await saveConfig(store.db, keyring, project, alertConfigInputSchema.parse({ workflowId: 'wf_direct', name, conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/a' } }));
        await store.db.query('UPDATE alert_configs SET enabled = $2, disabled_reason = $3 WHERE id = $1', [saved.id, enabled, disabledReason]);
        return saved.id;
      };
      const [serviceDisabled, userDisabled, reenabled] = [await config('410', false, 'the receiver answered 410 Gone'), await config('off', false, null), await config('back', true, null)];
      const held = {
        serviceDisabled: await insertHeld(store.db, project, 3, serviceDisabled),
        deleted: await insertHeld(store.db, project, 2, `cfg_gone_${uid()}`),
        userDisabled: await insertHeld(store.db, project, 1, userDisabled),
        reenabled: await insertHeld(store.db, project, 1, reenabled),
      };
      const young = await insertHeld(store.db, project, 1, `cfg_gone_${uid()}`);
      await age(store.db, 'alert_held', 'id', Object.values(held).flat(), 40);
      const cutoff = new Date(Date.now() - 30 * 86_400_000);
      // batches of 2: the kept rows are as old as the expired ones, and each batch looks past them
      const batches: number[] = [];
      for (let n = 2; n === 2; ) batches.push((n = await deleteExpiredBatch(store.db, 'alert_held', cutoff, 2)));
      assert.deepEqual(batches, [2, 1]);
      assert.deepEqual(await keysOf(store.db, 'alert_held', 'id', [project]), [...held.serviceDisabled, ...held.reenabled, ...young].sort());
      // the service-disabled config is re-enabled with "send" and its release is cut off: its rows stay for the repeated request
      await store.db.query('UPDATE alert_configs SET enabled = true, disabled_reason = NULL WHERE id = $1', [serviceDisabled]);
      assert.equal(await deleteExpiredBatch(store.db, 'alert_held', cutoff, 10), 0);
      // its user turns it off instead: nothing will send them any more, and they expire
      await store.db.query('UPDATE alert_configs SET enabled = false WHERE id IN ($1, $2)', [serviceDisabled, reenabled]);
      assert.equal(await deleteExpiredBatch(store.db, 'alert_held', cutoff, 10), 4);
      assert.deepEqual(await keysOf(store.db, 'alert_held', 'id', [project]), young);
    });

    it('heartbeats its counts after every batch, and a retried activity goes on counting from the last heartbeat', async () => {
      const project = `ret_heartbeat_${uid()}`;
      await age(store.db, 'alert_held', 'id', await insertHeld(store.db, project, 5), 40);
      // the activity's previous attempt deleted 8 rows in 3 batches before its worker died
      const env = new MockActivityEnvironment({ heartbeatDetails: { deleted: 8, batches: 3 } });
      const beats: unknown[] = [];
      env.on('heartbeat', (details) => beats.push(details));
      const { deleteExpiredRows } = retentionActivities({ db: store.db });
      const sweep = await env.run(deleteExpiredRows, { table: 'alert_held' as const, before: new Date(Date.now() - 30 * 86_400_000).toISOString(), batchSize: 2 });
      assert.deepEqual(sweep, { deleted: 13, batches: 6 });
      assert.deepEqual(beats, [{ deleted: 10, batches: 4 }, { deleted: 12, batches: 5 }, { deleted: 13, batches: 6 }]);
      assert.equal(await countOf(store.db, 'alert_held', project), 0);
    });

    it('erases one project in one transaction and writes project.erased with the counts', async () => {
      const [mine, theirs] = [`ret_erase_${uid()}`, `ret_keep_${uid()}`];
      for (const p of [mine, theirs]) {
        await insertLogs(store.db, p, 2);
        await insertDelivery(store.db, p, 'delivered');
        await insertHeld(store.db, p, 1);
        await insertOperatorAlert(store.db, p, 'delivered');
        await store.db.query('INSERT INTO project_settings (project_id) VALUES ($1)', [p]);
      }
      const { erased } = await eraseProjectRows(store.db, mine, { actor: { tokenId: null }, before: NOTHING_ERASED });
      assert.deepEqual(erased, { configs: 0, deliveries: 1, logs: 2, held: 1, settings: 1, operatorAlerts: 1, workflows: 0 });
      for (const table of ['alert_logs', 'alert_deliveries', 'alert_held', 'operator_alerts', 'project_settings']) {
        assert.equal(await countOf(store.db, table, mine), 0, `${table} of the erased project`);
        assert.equal(await countOf(store.db, table, theirs), table === 'alert_logs' ? 2 : 1, `${table} of the other project`);
      }
      const [entry] = await store.db.query<{ action: string; config_id: string | null; changes: unknown }>('SELECT action, config_id, changes FROM alert_audit_log WHERE project_id = $1', [mine]);
      assert.equal(entry.action, 'project.erased');
      assert.equal(entry.config_id, null);
      assert.deepEqual(entry.changes, Object.entries(erased).map(([field, n]) => ({ field, from: n, to: 0 })));
    });
  });
}

// ------------------------------------------------------------ the schedule, the workflow and the API, on the running service

describe('retention schedule and project erasure (real Temporal, real deliveries)', function () {
  this.timeout(300_000);
  let stack: TestStack;
  let client: Client;
  let receiver: Receiver;
  const testSchedules: ScheduleHandle[] = [];
  const [projectA, projectB] = [`ret_a_${uid()}`, `ret_b_${uid()}`];
  const tokens: Record<string, string> = {};
  const hook = `/retention-${uid()}`;

  before(async () => {
    stack = await useStack();
    client = stack.service.temporal.client;
    receiver = await Receiver.start();
    receiver.on(hook, () => ({ status: 200 }));
    for (const p of [projectA, projectB]) tokens[p] = await stack.tokenFor(p);
  });

  after(async () => {
    for (const handle of testSchedules) await handle.delete().catch(() => undefined);
    await receiver?.close();
  });

  /** The errors of validating an answer against its schema in GET /openapi.json ('' when it passes). */
  async function describedBy(method: string, path: string, answer: { status: number; body: unknown }): Promise<string> {
    const doc = (await stack.api('GET', '/openapi.json', undefined, null)).body;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema(doc, 'openapi');
    const validate = ajv.getSchema(`openapi#/paths/${path.replaceAll('/', '~1')}/${method}/responses/${answer.status}/content/application~1json/schema`);
    assert.ok(validate, `the document describes ${method} ${path} ${answer.status}`);
    return validate(answer.body) ? '' : ajv.errorsText(validate.errors);
  }

  const projectWorkflows = async (projectId: string) => {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `${AlertProjectId.name} = "${projectId}"` })) ids.push(wf.workflowId);
    return ids;
  };

  /**
   * A config of the project (failure alerts and an hour's delay watch), three failed runs delivered (and their delay
   * watches suppressed: rows, no workflows) and one run still going, watched by the config's DelayWatcher: four
   * workflows, the watcher running.
   */
  async function realDeliveries(projectId: string) {
    const token = tokens[projectId];
    const workflowId = `wf_ret_${uid()}`;
    const created = await stack.api(
      'POST',
      '/api/alerts/config',
      { config: { workflowId, name: 'retention', conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 3600 }], webhook: { url: `${receiver.url}${hook}` }, retry: { maxAttempts: 1 } } },
      token,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const configId: string = created.body.config.id;
    const events = [1, 2, 3].map((i) => ({ id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${i}_${uid()}`, error: { message: 'boom' } }));
    const watched = { id: `evt_${uid()}`, type: 'run.started', workflowId, runId: `run_long_${uid()}` };
    const accepted = await stack.api('POST', '/api/events', { events: [...events, watched] }, token);
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    const delivered = await waitUntil(`three delivered alerts of ${projectId}`, async () => {
      const rows = await stack.service.db.query<{ delivery_id: string }>(
        `SELECT d.delivery_id FROM alert_deliveries d WHERE d.config_id = $1 AND d.status = 'delivered' AND EXISTS (SELECT 1 FROM alert_logs l WHERE l.delivery_id = d.delivery_id) ORDER BY d.delivery_id`,
        [configId],
      );
      return rows.length === 3 && rows.map((r) => r.delivery_id);
    });
    const [watch] = await waitUntil('the delay watch recorded', async () => {
      const rows = await stack.service.db.query<{ delivery_id: string }>(`SELECT delivery_id FROM alert_deliveries WHERE config_id = $1 AND status = 'scheduled'`, [configId]);
      return rows.length === 1 && rows.map((r) => r.delivery_id);
    });
    // each failed run also ends its (never started) delay watch: a row already suppressed (docs/delay-watches.md)
    await waitUntil('the three finished runs recorded their delay watches', async () => {
      const rows = await stack.service.db.query(`SELECT 1 FROM alert_deliveries WHERE config_id = $1 AND status = 'suppressed'`, [configId]);
      return rows.length === 3;
    });
    const logs = (await stack.service.db.query<{ id: string }>('SELECT id::text AS id FROM alert_logs WHERE config_id = $1 ORDER BY id', [configId])).map((r) => r.id);
    return { configId, workflowId, delivered, watch, logs };
  }

  async function runSchedule(input: { batchSize: number }): Promise<RetentionSweepResult> {
    const handle = await ensureRetentionSchedule(stack.service.apiDeps!, { scheduleId: `test-retention-${uid()}`, batchSize: input.batchSize });
    testSchedules.push(handle);
    await handle.trigger();
    const action = await waitUntil('the triggered sweep started', async () => (await handle.describe()).info.recentActions[0]?.action);
    return client.workflow.getHandle(action.workflow.workflowId, action.workflow.firstExecutionRunId).result();
  }

  it('has the hourly retention schedule a worker start created, described for the Web UI', async () => {
    const description = await client.schedule.getHandle(retentionScheduleId('meshhook-alerts-test')).describe();
    assert.deepEqual(description.spec.intervals?.map((i) => i.every), [3_600_000], 'every hour');
    assert.equal(description.action.workflowType, 'RetentionSweep');
    assert.deepEqual(description.action.args, [{ days: 30, auditDays: 365, batchSize: 1000 } satisfies RetentionSweepInput]);
    assert.match(String(description.action.staticSummary), /retention sweep: older than 30 days \(audit: 365 days\)/);
    assert.match(String(description.memo?.description), /deletes attempt logs, finished deliveries, operator alerts and the held alerts nothing will send \(their config deleted or turned off\) older than ALERTS_RETENTION_DAYS/);
    assert.equal(description.state.paused, false);
    // the Web UI's schedule page shows the note as Notes
    assert.equal(description.state.note, 'Deletes attempt logs, finished deliveries, operator alerts and the held alerts nothing will send (their config deleted or turned off) older than 30 days, and audit entries older than 365 days, in batches of 1000 rows');
  });

  it('creates or updates the schedule idempotently, and a pause made in the Web UI survives the next worker start', async () => {
    const scheduleId = `test-retention-idem-${uid()}`;
    const first = await ensureRetentionSchedule(stack.service.apiDeps!, { scheduleId, batchSize: 5, intervalSeconds: 600 });
    testSchedules.push(first);
    await first.pause('paused by an operator');
    await ensureRetentionSchedule(stack.service.apiDeps!, { scheduleId, batchSize: 7, intervalSeconds: 900 });
    const description = await first.describe();
    assert.deepEqual(description.spec.intervals?.map((i) => i.every), [900_000]);
    assert.equal((description.action.args?.[0] as RetentionSweepInput).batchSize, 7);
    assert.deepEqual([description.state.paused, description.state.note], [true, 'paused by an operator']);
  });

  it('deletes exactly the rows past their retention period, in batches, and keeps the young, the unfinished and the audit log until its longer period', async () => {
    const db = stack.service.db;
    const expired: Record<string, string[]> = { alert_logs: [], alert_deliveries: [], alert_held: [], operator_alerts: [], alert_audit_log: [] };
    const agedButKept: string[] = [];
    const realLogs: Record<string, number> = {};
    for (const [projectId, directOldLogs] of [[projectA, 11], [projectB, 6]] as const) {
      const real = await realDeliveries(projectId);
      realLogs[projectId] = real.logs.length;
      // attempt logs: two of the real ones and the direct ones are 31 days old; the rest are young
      const oldLogs = [...real.logs.slice(0, 2), ...(await insertLogs(db, projectId, directOldLogs))];
      await insertLogs(db, projectId, 2);
      await age(db, 'alert_logs', 'id', oldLogs, 31);
      expired.alert_logs.push(...oldLogs);

      // deliveries: finished ones expire by their last update; a scheduled or in_progress one never
      const oldFinished = [...real.delivered.slice(0, 2), await insertDelivery(db, projectId, 'failed'), await insertDelivery(db, projectId, 'suppressed')];
      await age(db, 'alert_deliveries', 'delivery_id', oldFinished, 31, ['created_at', 'updated_at']);
      expired.alert_deliveries.push(...oldFinished);
      const oldUnfinished = [real.watch, await insertDelivery(db, projectId, 'in_progress')];
      await age(db, 'alert_deliveries', 'delivery_id', oldUnfinished, 40, ['created_at', 'updated_at']);
      const createdLongAgoUpdatedNow = await insertDelivery(db, projectId, 'delivered');
      await age(db, 'alert_deliveries', 'delivery_id', [createdLongAgoUpdatedNow], 40, ['created_at']);
      agedButKept.push(...oldUnfinished, createdLongAgoUpdatedNow);

      const oldHeld = await insertHeld(db, projectId, 3);
      await insertHeld(db, projectId, 1);
      await age(db, 'alert_held', 'id', oldHeld, 31);
      expired.alert_held.push(...oldHeld);

      const oldOperator = await insertOperatorAlert(db, projectId, 'delivered');
      const stillSending = await insertOperatorAlert(db, projectId, 'in_progress');
      await insertOperatorAlert(db, projectId, 'failed');
      await age(db, 'operator_alerts', 'alert_id', [oldOperator, stillSending], 31);
      expired.operator_alerts.push(oldOperator);
      agedButKept.push(stillSending);

      // audit entries: 100 days old is within ALERTS_AUDIT_RETENTION_DAYS (365), 400 days is not
      const [keptAudit, oldAudit] = [await insertAudit(db, projectId), await insertAudit(db, projectId)];
      await age(db, 'alert_audit_log', 'id', [keptAudit], 100);
      await age(db, 'alert_audit_log', 'id', [oldAudit], 400);
      expired.alert_audit_log.push(oldAudit);
      agedButKept.push(keptAudit);
      await db.query('INSERT INTO project_settings (project_id) VALUES ($1)', [projectId]);
    }
    const keys: Record<string, string> = { alert_logs: 'id', alert_deliveries: 'delivery_id', alert_held: 'id', operator_alerts: 'alert_id', alert_audit_log: 'id' };
    const before: Record<string, string[]> = {};
    for (const [table, key] of Object.entries(keys)) before[table] = await keysOf(db, table, key, [projectA, projectB]);

    const lines: string[] = [];
    const previous = configureLogging({ level: 'info', format: 'json' });
    redirectLogs((line) => lines.push(line));
    let result: RetentionSweepResult;
    try {
      result = await runSchedule({ batchSize: 5 });
    } finally {
      redirectLogs(undefined);
      configureLogging(previous);
    }
    const logged = lines.map((l) => JSON.parse(l)).filter((l) => l.component === 'retention' && l.before === result.before);
    assert.equal(logged.length, 1, lines.join('\n'));
    assert.equal(logged[0].msg, `retention sweep deleted ${result.deleted} expired rows`);
    assert.deepEqual(logged[0].deleted, Object.fromEntries(Object.entries(result.tables).map(([t, s]) => [t, s.deleted])), 'the log line counts rows per table');

    for (const [table, key] of Object.entries(keys)) {
      assert.deepEqual(await keysOf(db, table, key, [projectA, projectB]), without(before[table], expired[table]), `${table}: exactly the expired rows are gone`);
      assert.equal(result.tables[table as keyof typeof result.tables].deleted, expired[table].length, `${table}: the result counts them`);
    }
    const after = (await Promise.all(Object.entries(keys).map(([table, key]) => keysOf(db, table, key, [projectA, projectB])))).flat();
    for (const k of agedButKept) assert.ok(after.includes(k), `${k}: old, but unfinished or within its longer period: kept`);
    // 21 attempt logs in batches of 5: four full batches and a short one
    assert.equal(expired.alert_logs.length, 21);
    assert.deepEqual(
      Object.fromEntries(Object.entries(result.tables).map(([t, s]) => [t, s.batches])),
      { alert_logs: 5, alert_deliveries: 2, alert_held: 2, operator_alerts: 1, alert_audit_log: 1 },
      JSON.stringify(result.tables),
    );
    assert.equal(result.batchSize, 5);
    assert.equal(result.deleted, Object.values(expired).reduce((n, k) => n + k.length, 0));
    assert.ok(Math.abs(Date.parse(result.before) - (Date.parse(result.at) - 30 * 86_400_000)) < 1000, `cutoff ${result.before}`);
    assert.ok(Math.abs(Date.parse(result.auditBefore) - (Date.parse(result.at) - 365 * 86_400_000)) < 1000, `audit cutoff ${result.auditBefore}`);
    assert.ok(realLogs[projectA] === 3 && realLogs[projectB] === 3);
  });

  it('refuses an erase whose confirm is not the token’s project, naming confirm', async () => {
    for (const body of [{}, { confirm: projectB }, { confirm: projectA, also: 1 }]) {
      const res = await stack.api('POST', '/api/project/erase', body, tokens[projectA]);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      const path = body.confirm === projectA ? 'also' : 'confirm';
      assert.equal(res.body.error.details.issues[0].path, path, JSON.stringify(res.body));
      assert.equal(await describedBy('post', '/api/project/erase', res), '', 'GET /openapi.json describes the 400');
    }
    assert.ok((await countOf(stack.service.db, 'alert_configs', projectA)) > 0, 'nothing was erased');
  });

  it('erases again, and counts, the attempt log row a delivery in flight wrote after the first pass had deleted its rows', async () => {
    const db = stack.service.db;
    const projectC = `ret_c_${uid()}`;
    const token = await stack.tokenFor(projectC);
    // the first attempt fails; the receiver holds its answer to the second until the test releases it
    const path = `/retention-in-flight-${uid()}`;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    receiver.on(path, (n) => (n === 1 ? { status: 503 } : { status: 200, after: released }));
    const workflowId = `wf_ret_in_flight_${uid()}`;
    const created = await stack.api(
      'POST',
      '/api/alerts/config',
      { config: { workflowId, name: 'in flight', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${path}`, timeoutMs: 30_000 }, retry: { maxAttempts: 2, initialIntervalMs: 100, maxIntervalMs: 100 } } },
      token,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sent = await stack.api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}` }, token);
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    await receiver.waitFor(path, 2, 30_000);
    await waitUntil('the delivery listed by visibility', async () => (await projectWorkflows(projectC)).length === 1);
    const logs = () => countOf(db, 'alert_logs', projectC);
    assert.equal(await logs(), 1, 'the first attempt is logged; the second is in flight');

    const settled: number[] = [];
    const erased = await eraseProject(stack.service.apiDeps!, projectC, { tokenId: null }, async (pass) => {
      settled.push(pass);
      if (pass > 1) return;
      // the first pass terminated the delivery and deleted its rows, but its attempt in flight goes on: answered now, it logs itself
      assert.equal(await countOf(db, 'alert_configs', projectC), 0);
      assert.equal(await logs(), 0);
      release();
      await waitUntil('the attempt in flight logged after the first pass', async () => (await logs()) === 1);
    });
    assert.deepEqual(settled, [1], 'the second pass found no new workflow: it was the last');
    assert.deepEqual(erased, { configs: 1, deliveries: 1, logs: 2, held: 0, settings: 0, operatorAlerts: 0, workflows: 1 });
    for (const table of ['alert_configs', 'alert_deliveries', 'alert_logs', 'alert_held', 'project_settings', 'operator_alerts']) {
      assert.equal(await countOf(db, table, projectC), 0, `${table} of the erased project`);
    }
    const entries = await db.query<{ action: string; changes: unknown }>('SELECT action, changes FROM alert_audit_log WHERE project_id = $1', [projectC]);
    const erasures = entries.filter((e) => e.action === 'project.erased');
    assert.equal(erasures.length, 1, 'one audit entry for the erase, written by its last pass');
    assert.deepEqual(erasures[0].changes, Object.entries(erased).map(([field, n]) => ({ field, from: n, to: 0 })));
  });

  it("erases one project's configs, logs, deliveries, held alerts, settings, operator alerts and workflows, keeps the audit entry, and leaves the other project's data", async () => {
    const db = stack.service.db;
    // a real operator alert of project A: its own operator webhook gets delivery.exhausted for a delivery that failed for good
    const opHook = `/retention-operator-${uid()}`;
    receiver.on(opHook, () => ({ status: 200 }));
    const settings = await stack.api('PUT', '/api/project/settings', { operatorWebhook: { url: `${receiver.url}${opHook}` } }, tokens[projectA]);
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    const failingHook = `/retention-failing-${uid()}`;
    receiver.on(failingHook, () => ({ status: 500 }));
    const failingWorkflow = `wf_ret_failing_${uid()}`;
    const failing = await stack.api('POST', '/api/alerts/config', { config: { workflowId: failingWorkflow, name: 'failing', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${failingHook}` }, retry: { maxAttempts: 1 } } }, tokens[projectA]);
    assert.equal(failing.status, 201, JSON.stringify(failing.body));
    const sent = await stack.api('POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId: failingWorkflow, runId: `run_${uid()}` }, tokens[projectA]);
    const operatorAlertId = `op:project:delivery.exhausted:${sent.body.deliveries[0].deliveryId}`;
    await receiver.waitFor(opHook, 1, 30_000);
    await waitUntil('the operator alert recorded as delivered', async () => {
      const rows = await db.query(`SELECT 1 FROM operator_alerts WHERE alert_id = $1 AND status = 'delivered'`, [operatorAlertId]);
      return rows.length === 1;
    });
    await client.workflow.getHandle(operatorAlertId).result();

    const tables = { configs: 'alert_configs', deliveries: 'alert_deliveries', logs: 'alert_logs', held: 'alert_held', settings: 'project_settings', operatorAlerts: 'operator_alerts' };
    const counts = async (projectId: string) => Object.fromEntries(await Promise.all(Object.entries(tables).map(async ([name, table]) => [name, await countOf(db, table, projectId)])));
    const [beforeA, beforeB] = [await counts(projectA), await counts(projectB)];
    for (const name of Object.keys(tables)) assert.ok(beforeA[name] > 0 && beforeB[name] > 0, `both projects have ${name}`);
    // Temporal's visibility lists a workflow a moment after it starts: erase once every one is listed
    let listed: string[] = [];
    const workflowsA = await waitUntil('the five alert workflows of project A listed', async () => {
      const ids = (listed = await projectWorkflows(projectA));
      return ids.length === 5 && ids;
    }).catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(listed)}`); });
    const workflowsB = await waitUntil('the four workflows of project B listed', async () => {
      const ids = await projectWorkflows(projectB);
      return ids.length === 4 && ids;
    });
    const running = await client.workflow.list({ query: `${AlertProjectId.name} = "${projectA}" AND ExecutionStatus = "Running"` });
    let runningA = 0;
    for await (const _ of running) runningA++;
    assert.equal(runningA, 1, "the delay watcher of project A's config is running");

    const res = await stack.api('POST', '/api/project/erase', { confirm: projectA }, tokens[projectA]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(await describedBy('post', '/api/project/erase', res), '', 'GET /openapi.json describes the answer');
    // the five alert workflows (the watcher among them) and the operator alert's
    assert.deepEqual(res.body, { erased: { ...beforeA, workflows: 6 } });

    assert.deepEqual(await counts(projectA), Object.fromEntries(Object.keys(tables).map((n) => [n, 0])), 'nothing of project A is left in the store');
    assert.equal(await countOf(db, 'delay_watchers', projectA), 0, "project A's delay watcher rows");
    assert.ok((await countOf(db, 'delay_watchers', projectB)) > 0, "project B's delay watcher row stays");
    assert.deepEqual(await counts(projectB), beforeB, "project B's data is untouched");
    const configsB = await stack.api('GET', '/api/alerts/config', undefined, tokens[projectB]);
    assert.equal(configsB.body.configs.length, 1);

    const audit = await stack.api('GET', '/api/alerts/audit', undefined, tokens[projectA]);
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    const [entry] = audit.body.entries;
    assert.equal(entry.action, 'project.erased');
    assert.equal(entry.configId, null);
    assert.equal(entry.workflowId, null);
    assert.equal(entry.tokenId, (await db.query<{ id: string }>('SELECT id FROM api_tokens WHERE project_id = $1', [projectA]))[0].id);
    assert.deepEqual(entry.changes, Object.entries(res.body.erased).map(([field, n]) => ({ field, from: n, to: 0 })));

    // Temporal deletes executions asynchronously (the dev server within about half a minute): gone from visibility and from describe
    await waitUntil('project A has no workflow left in Temporal', async () => (await projectWorkflows(projectA)).length === 0, 120_000);
    for (const id of [...workflowsA, operatorAlertId]) {
      await waitUntil(`${id} deleted`, async () => client.workflow.getHandle(id).describe().then(() => false, (err) => err instanceof WorkflowNotFoundError), 120_000);
    }
    assert.deepEqual((await projectWorkflows(projectB)).sort(), workflowsB.sort(), "project B's workflows stay");
  });
});
