import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Webhook } from 'standardwebhooks';
import { digestBound } from '../bench/burst';
import { newKeySpec } from '../lib/crypto';
import { noiseWorkflowId } from '../lib/delivery-ids';
import { startDevServer, type DevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { freePort } from '../runtime/host';
import type { TestPostgres } from './support/postgres';
import { startServiceProcess, stopAllServiceProcesses, type ServiceProcess } from './support/processes';
import { Receiver, type Received } from './support/receiver';
import { sharedPostgres } from './support/stores';

/**
 * Issue 14's burst (Done-when 1): a CRM outage fails 500 MeshHook runs of one workflow, and its one
 * grouped config (by workflow.id, wait 5 s, interval 30 s, maxEvents 500) must page a few times, not
 * 500, without losing or repeating an event, while a worker is SIGKILLed in the middle of the burst.
 *
 * Production topology, as test/worker-restart.test.ts: the API and two workers are separate
 * `node --import tsx` processes on a PostgreSQL database and a Temporal dev server of this file's
 * own. The events come as MeshHook sends them during an outage: `{ events: [...] }` batches and
 * single events, many requests in flight, each resent when it is not answered 202.
 *
 * The bound (docs/noise-control.md): the group's first digest goes out `waitSeconds` after its first
 * event was taken in, each later one `intervalSeconds` after the one before, and only when events
 * came in between; so a burst taken in over S seconds sends at most 1 + ceil(max(0, S − 5) / 30)
 * digests (one more only when the last event is taken in at the very millisecond a digest goes out).
 * S is measured from the first event sent to the last `grouped` log row written (each is written
 * after its event was taken in, so that millisecond is passed too): an upper bound of the span, so
 * the bound checked is never tighter than the real one. A flush that runs late (a killed worker's
 * workflow task times out) only makes for fewer digests.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const READY = /ready; press Ctrl-C/;

const RUNS = 500;
const GROUPING = { by: ['workflow.id'], waitSeconds: 5, intervalSeconds: 30, maxEvents: 500 };
/** the burst: 20 ticks 200 ms apart, 25 events each; even ticks one batch request, odd ticks 25 single requests */
const TICKS = 20;
const TICK_MS = 200;
const PER_TICK = RUNS / TICKS;
const EventType = temporal.api.enums.v1.EventType;

interface Digest {
  webhookId: string;
  body: string;
  payload: { type: string; group: { count: number; more: number; digest: number; events: { id: string; runId: string }[]; firstAt: string; lastAt: string } };
  receipts: Received[];
}

describe('noise burst: 500 failing runs of one grouped config (wait 5 s, interval 30 s), a worker SIGKILLed during the burst', function () {
  this.timeout(150_000);

  const token = `burst_${randomBytes(16).toString('hex')}`;
  const processes: ServiceProcess[] = [];
  let tempDir: string | undefined;
  let postgres: TestPostgres | undefined;
  let databaseUrl: string | undefined;
  let devServer: DevServer | undefined;
  let connection: Connection | undefined;
  let client: Client;
  let receiver: Receiver | undefined;
  let env: Record<string, string>;
  let apiUrl: string;
  const workers: ServiceProcess[] = [];

  async function startWorker(): Promise<ServiceProcess> {
    const proc = startServiceProcess(`worker ${workers.length}`, 'worker.ts', env);
    processes.push(proc);
    workers.push(proc);
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
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed };
  }

  /** Every log row of a config, all pages. */
  async function logsOf(configId: string): Promise<any[]> {
    const rows: any[] = [];
    let cursor: string | null = null;
    do {
      const res = await api('GET', `/api/alerts/logs?configId=${encodeURIComponent(configId)}&limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      rows.push(...res.body.logs);
      cursor = res.body.nextCursor;
    } while (cursor);
    return rows;
  }

  /** The pid of the worker that ran the noise workflow's latest workflow task (its identity is `<pid>@<host>`), once it ran one. */
  async function noiseWorkerPid(workflowId: string): Promise<number | undefined> {
    const history = await client.workflow.getHandle(workflowId).fetchHistory().catch(() => undefined);
    const started = (history?.events ?? []).filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
    const identity = started[started.length - 1]?.workflowTaskStartedEventAttributes?.identity ?? '';
    const pid = Number(identity.split('@')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  before(async function () {
    this.timeout(10 * 60_000); // PostgreSQL initdb, maybe a Temporal CLI download, the workers' workflow bundles
    receiver = await Receiver.start();
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-burst-'));
    postgres = await sharedPostgres();
    databaseUrl = await postgres.createDatabase();
    const cliPath = await resolveTemporalCli({ log: (line) => process.stderr.write(`[temporal-cli] ${line}\n`) });
    devServer = await startDevServer({ cliPath, dataDir: tempDir, namespace: 'default', port: await freePort(), uiPort: await freePort() });
    connection = await Connection.connect({ address: devServer.address });
    client = new Client({ connection, namespace: 'default' });
    env = {
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: devServer.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: `alerts-burst-${uid()}`,
      ALERTS_ENCRYPTION_KEYS: newKeySpec(),
      ALERTS_API_TOKENS: `${token}:default`,
      ALERTS_EGRESS_ALLOW: '127.0.0.1', // the receiver
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
      // the burst is 500 events in a few seconds from one token
      ALERTS_RATE_LIMIT_PER_MINUTE: '1000000',
      DATA_DIR: path.join(tempDir, 'data'),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    };
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    const apiProcess = startServiceProcess('api', 'api/server.ts', { ...env, PORT: String(port) });
    processes.push(apiProcess);
    await apiProcess.waitForOutput(READY, 120_000);
    // one after the other: two bundle builds at once on a 2-core machine take longer than both in turn
    await startWorker();
    await startWorker();
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
    await step('close the Temporal connection', () => connection?.close());
    await step('stop the Temporal dev server', () => devServer?.stop());
    await step('drop the test database', () => databaseUrl && postgres?.dropDatabase(databaseUrl));
    await step('close the receiver', () => receiver?.close());
    await step('remove the temp folder', () => tempDir && fs.rmSync(tempDir, { recursive: true, force: true }));
    if (problems.length) throw new Error(`cleanup failed:\n${problems.join('\n')}`);
  });

  it('sends at most 1 + ceil(max(0, S − 5) / 30) digests (S: the seconds the burst took to be taken in), at least one, every one signed, listing the 500 events once each', async () => {
    const hookPath = `/burst-${uid()}`;
    const workflowId = `wf_burst_${uid()}`;
    const created = await api('POST', '/api/alerts/config', {
      config: { name: 'CRM sync', workflowId, conditions: [{ type: 'failure' }], webhook: { url: `${receiver!.url}${hookPath}`, timeoutMs: 10_000 }, grouping: GROUPING },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const configId: string = created.body.config.id;
    const secret: string = created.body.secret;
    assert.deepEqual(created.body.config.grouping, GROUPING);

    const tag = uid();
    const events = Array.from({ length: RUNS }, (_, i) => ({
      id: `evt_burst_${tag}_${i}`,
      type: 'run.failed',
      workflowId,
      runId: `run_burst_${tag}_${i}`,
      workflow: { name: 'CRM sync', version: 3 },
      error: { message: 'HTTP 503 from CRM', step: 'createContact' },
    }));
    const eventIds = new Set(events.map((e) => e.id));

    // ---- the burst: open loop, each request resent (as MeshHook does) until it is answered 202
    const answered = new Map<string, { deliveryId: string; noise?: string }>();
    let acceptedEvents = 0;
    let resends = 0;
    let lastAcceptedAt = 0;
    const post = async (body: unknown, batch: typeof events) => {
      for (let attempt = 1; ; attempt++) {
        const res = await api('POST', '/api/events', body).catch((err: Error) => ({ status: 0, body: err.message }));
        if (res.status === 202) {
          acceptedEvents += batch.length;
          lastAcceptedAt = Date.now();
          assert.equal(res.body.deliveries.length, batch.length, JSON.stringify(res.body));
          for (const d of res.body.deliveries) answered.set(d.deliveryId, d);
          return;
        }
        assert.ok(attempt < 10 && (res.status === 0 || res.status === 503), `POST /api/events answered ${res.status} (attempt ${attempt}): ${JSON.stringify(res.body)}`);
        resends++;
        await sleep(250 * attempt);
      }
    };
    const firstSentAt = Date.now();
    const requests: Promise<void>[] = [];
    const noiseId = noiseWorkflowId(configId);
    // the kill: once a fifth of the burst is in and the noise workflow has run on a worker, that worker
    let killedAt = 0;
    let acceptedAtKill = 0;
    let killed: ServiceProcess | undefined;
    const kill = (async () => {
      while (acceptedEvents < RUNS / 5) await sleep(20);
      let pid: number | undefined;
      for (let i = 0; i < 50 && !(pid && workers.some((w) => w.child.pid === pid)); i++) {
        pid = await noiseWorkerPid(noiseId);
        if (!pid) await sleep(100);
      }
      killed = workers.find((w) => w.child.pid === pid) ?? workers[0];
      acceptedAtKill = acceptedEvents;
      await killed.kill('SIGKILL');
      killedAt = Date.now();
    })();
    // the sender holds the second half until the kill is done, so the kill falls inside the burst
    // however fast the first half is taken in; the schedule then goes on from where it stopped
    let scheduleStart = firstSentAt;
    for (let tick = 0; tick < TICKS; tick++) {
      if (tick === TICKS / 2) {
        await kill;
        scheduleStart = Date.now() - tick * TICK_MS;
      }
      const due = scheduleStart + tick * TICK_MS;
      if (due > Date.now()) await sleep(due - Date.now());
      const slice = events.slice(tick * PER_TICK, (tick + 1) * PER_TICK);
      if (tick % 2 === 0) requests.push(post({ events: slice }, slice));
      else for (const event of slice) requests.push(post(event, [event]));
    }
    await Promise.all(requests);
    await kill;
    const burstSeconds = (lastAcceptedAt - firstSentAt) / 1000;
    process.stderr.write(`      [burst] ${RUNS} events accepted in ${burstSeconds.toFixed(1)} s (${resends} resends); ${killed!.name} SIGKILLed ${((killedAt - firstSentAt) / 1000).toFixed(1)} s in, after ${acceptedAtKill} events\n`);
    assert.equal(killed!.child.signalCode, 'SIGKILL');
    assert.ok(acceptedAtKill < RUNS, `the worker was killed during the burst (${acceptedAtKill} of ${RUNS} events were in)`);
    assert.equal(answered.size, RUNS, 'one delivery id per event');
    for (const d of answered.values()) assert.equal(d.noise, 'pipeline', `the noise pipeline decides: ${JSON.stringify(d)}`);

    // ---- the digests: until they list every event, then one more interval (no trailing digest may follow)
    const digests = () => {
      const byId = new Map<string, Digest>();
      for (const r of receiver!.at(hookPath)) {
        const webhookId = String(r.headers['webhook-id']);
        const known = byId.get(webhookId);
        if (known) known.receipts.push(r);
        else byId.set(webhookId, { webhookId, body: r.body, payload: JSON.parse(r.body), receipts: [r] });
      }
      return [...byId.values()];
    };
    const listed = () => new Set(digests().flatMap((d) => d.payload.group?.events.map((e) => e.id) ?? []));
    const deadline = Date.now() + 90_000;
    while (listed().size < RUNS) {
      if (Date.now() > deadline) throw new Error(`the digests listed ${listed().size} of ${RUNS} events within 90 s: ${digests().map((d) => `${d.webhookId} (${d.payload.group?.count})`).join(', ')}`);
      await sleep(250);
    }
    const lastDigestAt = Math.max(...receiver!.at(hookPath).map((r) => r.at));
    await sleep(Math.max(0, lastDigestAt + (GROUPING.intervalSeconds + 3) * 1000 - Date.now()));

    const received = digests();
    const firstDigestAt = Math.min(...receiver!.at(hookPath).map((r) => r.at));
    process.stderr.write(
      `      [burst] ${received.length} digests (${received.map((d) => d.payload.group.count).join(' + ')} events), the first ${((firstDigestAt - firstSentAt) / 1000).toFixed(1)} s after the first event, ` +
        `the last ${((lastDigestAt - firstSentAt) / 1000).toFixed(1)} s; ${receiver!.at(hookPath).length - received.length} repeated deliveries\n`,
    );

    // every request the receiver got is signed with the config's secret; a delivery made again (at least once) carries the same bytes
    for (const digest of received) {
      for (const r of digest.receipts) {
        assert.doesNotThrow(() => new Webhook(secret).verify(r.body, { 'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']) }), `digest ${digest.webhookId} verifies`);
        assert.equal(r.body, digest.body, `digest ${digest.webhookId} sent again with the same bytes`);
      }
      const { type, group } = digest.payload;
      assert.equal(type, 'alert.failure.digest');
      assert.equal(group.more, 0, 'maxEvents 500: every event of the digest is listed');
      assert.equal(group.count, group.events.length);
      assert.ok(group.firstAt <= group.lastAt, `${group.firstAt} <= ${group.lastAt}`);
    }

    // the events across all digests: exactly the 500, none twice
    const all = received.flatMap((d) => d.payload.group.events.map((e) => e.id));
    assert.equal(all.length, RUNS, `${all.length} events listed across the digests, ${all.length - new Set(all).size} of them twice`);
    assert.deepEqual(new Set(all), eventIds);
    assert.deepEqual(received.map((d) => d.payload.group.digest).sort((a, b) => a - b), received.map((_, i) => i + 1), 'the group\'s digests are numbered 1, 2, …');

    // the grouped decisions: one log row (attempt 0) per event, naming the digest that was delivered with that event in it
    const rows = await logsOf(configId);
    const grouped = rows.filter((r) => r.attempt === 0 && r.outcome === 'grouped');
    assert.equal(grouped.length, RUNS, `grouped rows: ${grouped.length}; outcomes: ${JSON.stringify(rows.reduce((n, r) => ({ ...n, [`${r.attempt}:${r.outcome}`]: (n[`${r.attempt}:${r.outcome}`] ?? 0) + 1 }), {} as Record<string, number>))}`);
    assert.deepEqual(new Set(grouped.map((r) => r.deliveryId)), new Set(answered.keys()), 'each row is the alert the event answer named');
    const digestOf = new Map(received.flatMap((d) => d.payload.group.events.map((e) => [e.id, d.webhookId] as const)));
    for (const row of grouped) {
      const namedId = /grouped into digest (\S+)/.exec(row.error ?? '')?.[1];
      const named = received.find((d) => d.webhookId === namedId);
      assert.ok(named, `row of ${row.eventId} names a delivered digest: ${row.error}`);
      assert.equal(named.webhookId, digestOf.get(row.eventId), `row of ${row.eventId} names the digest that lists it: ${row.error}`);
    }
    for (const digest of received) {
      assert.ok(rows.some((r) => r.deliveryId === digest.webhookId && r.attempt >= 1 && r.outcome === 'delivered'), `digest ${digest.webhookId} logged as delivered`);
    }

    // the bound, with S from the first event sent to the last grouped row written
    const takenInSeconds = (Math.max(...grouped.map((r) => Date.parse(r.createdAt))) - firstSentAt) / 1000;
    const bound = digestBound(takenInSeconds, GROUPING.waitSeconds, GROUPING.intervalSeconds);
    process.stderr.write(`      [burst] taken in over S = ${takenInSeconds.toFixed(1)} s: bound 1 + ceil(max(0, S - 5) / 30) = ${bound}\n`);
    assert.ok(received.length >= 1);
    assert.ok(received.length <= bound, `${received.length} digests for a burst taken in over ${takenInSeconds.toFixed(1)} s: at most ${bound}`);
  });
});
