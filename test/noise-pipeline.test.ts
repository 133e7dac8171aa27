import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { parseEgressPolicy } from '../lib/egress';
import { alertConfigInputSchema, noiseSettingsOf } from '../lib/schemas';
import { defaultOperations } from '../runtime/deps';
import { saveConfig } from '../store/configs';
import { configDeliveryIdPrefix, immediateDeliveryId, noiseWorkflowId } from '../lib/delivery-ids';
import { groupKey, recoveryDeliveryId, type NoiseAlertItem, type NoiseItem } from '../lib/noise';
import type { ExecutionEvent, NoiseSettings } from '../lib/schemas';
import type { AlertNoiseInput } from '../workflows/types';
import { NOISE_ITEM_SIGNAL } from '../workflows/types';
import { eventually } from './support/eventually';
import { startTimeSkippingEnv } from './support/time-skipping';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { openStore, type TestStore } from './support/stores';

/**
 * The noise pipeline (docs/noise-control.md), end to end on the shared embedded stack (real Temporal
 * dev server, PGlite, worker, API) with a real HTTP receiver: a config's AlertNoise workflow takes in
 * its alerts and sends what gets through (on its own, as a digest, as a recovery) through
 * AlertDelivery; what it holds back is a log row with attempt 0 and the next alert that goes out
 * tells how many. Part of the tests hand items to the workflow straight from a Temporal client (as
 * dispatch does: signalWithStart on noise-<configId>), so that each step is seen alone.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** one attempt: nothing here is about retries */
const ONE_ATTEMPT = { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };
/** how long to keep listening before saying "nothing (more) arrived" */
const QUIET_MS = 2_000;

interface LogRow {
  deliveryId: string;
  configId: string;
  workflowId: string;
  runId: string;
  eventId: string;
  condition: string;
  attempt: number;
  outcome: string;
  httpStatus: number | null;
  error: string | null;
}

interface Config extends NoiseSettings {
  id: string;
  name: string;
  workflowId: string;
}

describe('noise pipeline: dedup, throttle, repeat, recovery, grouping (end to end)', function () {
  this.timeout(120_000);
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

  // ------------------------------------------------------------ helpers


  /** A config of its own MeshHook workflow and receiver path, failures alerted, with these noise settings. */
  async function createConfig(noise: Partial<NoiseSettings>, extra: Record<string, unknown> = {}): Promise<{ config: Config; path: string }> {
    const path = `/noise-${uid()}`;
    const res = await stack.api('POST', '/api/alerts/config', {
      config: {
        workflowId: `wf_noise_${uid()}`,
        name: 'Noise check',
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}${path}` },
        retry: ONE_ATTEMPT,
        ...noise,
        ...extra,
      },
    });
    assert.equal(res.status, 201, `config create: ${JSON.stringify(res.body)}`);
    return { config: res.body.config, path };
  }

  const settingsOf = (c: Config): NoiseSettings => ({ grouping: c.grouping, recovery: c.recovery, throttle: c.throttle, dedup: c.dedup, repeatIntervalSeconds: c.repeatIntervalSeconds });

  /** A run event of the config's workflow at `at` (default now), with an error for a failure. */
  function runEvent(config: Config, type: 'run.failed' | 'run.succeeded', fields: { at?: string; step?: string; runId?: string } = {}): ExecutionEvent {
    return {
      id: `evt_${uid()}`,
      type,
      occurredAt: fields.at ?? new Date().toISOString(),
      workflowId: config.workflowId,
      runId: fields.runId ?? `run_${uid()}`,
      workflow: { name: 'Orders sync' },
      ...(type === 'run.failed' ? { error: { message: 'HTTP 500 from CRM', step: fields.step ?? 'createContact' } } : {}),
    };
  }

  /** The failure alert of `event` as dispatch hands it to the pipeline (its dedup key as the config's dedup.key would render). */
  function failureItem(config: Config, event: ExecutionEvent, fields: { dedupKey?: string | null; silencedBy?: string | null; watch?: boolean; deliveryId?: string } = {}): NoiseAlertItem {
    const settings = settingsOf(config);
    return {
      kind: 'alert',
      deliveryId: fields.deliveryId ?? immediateDeliveryId(config.id, event.id),
      condition: 'failure',
      event,
      receivedAt: new Date().toISOString(),
      groupKey: settings.grouping ? groupKey(settings.grouping.by, event, 'failure') : '',
      dedupKey: fields.dedupKey !== undefined ? fields.dedupKey : settings.dedup ? `step:${event.error?.step}` : null,
      silencedBy: fields.silencedBy ?? null,
      watch: fields.watch ?? false,
      settings,
    };
  }

  const successItem = (config: Config, event: ExecutionEvent): NoiseItem => ({ kind: 'success', event, settings: settingsOf(config) });

  /** Hands one item to the config's AlertNoise workflow, starting it if none runs: what dispatch does. */
  async function feed(config: Config, item: NoiseItem, input: Partial<AlertNoiseInput> = {}): Promise<string> {
    const handle = await stack.service.temporal.client.workflow.signalWithStart('AlertNoise', {
      workflowId: noiseWorkflowId(config.id),
      taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE,
      args: [{ projectId: 'default', configId: config.id, idPrefix: configDeliveryIdPrefix(config.id), ...input } satisfies AlertNoiseInput],
      signal: NOISE_ITEM_SIGNAL,
      signalArgs: [item],
    });
    return handle.signaledRunId;
  }

  /** Every log row of the config (decisions and attempts), oldest first. */
  async function logsOf(configId: string): Promise<LogRow[]> {
    const res = await stack.api('GET', `/api/alerts/logs?configId=${encodeURIComponent(configId)}&limit=200`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return [...(res.body.logs as LogRow[])].reverse();
  }

  /** Waits for the config's log to hold rows matching each `outcome: count`; returns them all. */
  async function waitForLogs(configId: string, counts: Record<string, number>): Promise<LogRow[]> {
    return eventually(`log rows ${JSON.stringify(counts)} of ${configId}`, async () => {
      const rows = await logsOf(configId);
      return Object.entries(counts).every(([outcome, n]) => rows.filter((r) => r.outcome === outcome).length >= n) ? rows : undefined;
    });
  }

  const bodyOf = (r: Received) => JSON.parse(r.body);

  const metricsText = async () => (await fetch(`${stack.apiUrl}/metrics`)).text();
  /** the value of one sample line of the Prometheus text, or 0 when absent */
  const sample = (text: string, name: string, labels: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}${labels} `))?.split(' ').pop() ?? 0);

  interface Answer {
    accepted: number;
    deliveries: { deliveryId: string; configId: string; condition: string; duplicate: boolean; noise?: string }[];
  }

  async function postEvent(event: ExecutionEvent): Promise<Answer> {
    const res = await stack.api('POST', '/api/events', event);
    assert.equal(res.status, 202, `POST /api/events: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function deliveryStatus(deliveryId: string): Promise<string | undefined> {
    const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
    return res.status === 200 ? res.body.status : undefined;
  }

  /** Waits for `count` requests on `path`, then listens QUIET_MS more and checks that no more came. */
  async function receivedExactly(path: string, count: number): Promise<Received[]> {
    await receiver.waitFor(path, count, 30_000);
    await sleep(QUIET_MS);
    const got = receiver.at(path);
    assert.equal(got.length, count, `${path} received ${got.length} alerts, expected ${count}: ${got.map((r) => bodyOf(r).text).join(' | ')}`);
    return got;
  }

  // ------------------------------------------------------------ dedup

  it('deduplicates alerts of one dedup key within its window, takes a repeated item in once, and the next alert tells how many were held back', async () => {
    const { config, path } = await createConfig({ dedup: { key: '{{ error.step }}', windowSeconds: 60 } });
    const first = runEvent(config, 'run.failed', { step: 'createContact' });
    const dupes = [runEvent(config, 'run.failed', { step: 'createContact' }), runEvent(config, 'run.failed', { step: 'createContact' })];
    await feed(config, failureItem(config, first));
    for (const e of dupes) await feed(config, failureItem(config, e));
    // the same alert again (an event sent twice): taken in once, no row, no alert
    await feed(config, failureItem(config, dupes[0]));

    const [sent] = await receivedExactly(path, 1);
    assert.equal(sent.headers['webhook-id'], immediateDeliveryId(config.id, first.id));
    assert.equal(bodyOf(sent).noise, undefined, 'nothing was held back before the first alert');
    const rows = await waitForLogs(config.id, { deduplicated: 2, delivered: 1 });
    const deduplicated = rows.filter((r) => r.outcome === 'deduplicated');
    assert.deepEqual(deduplicated.map((r) => r.deliveryId).sort(), dupes.map((e) => immediateDeliveryId(config.id, e.id)).sort());
    for (const r of deduplicated) {
      assert.equal(r.attempt, 0);
      assert.equal(r.condition, 'failure');
      assert.equal(r.workflowId, config.workflowId);
      assert.ok(r.error, 'a decision row says why');
    }

    // another key goes out, and tells what was held back since the last alert
    const other = runEvent(config, 'run.failed', { step: 'chargeCard' });
    await feed(config, failureItem(config, other));
    const [, next] = await receivedExactly(path, 2);
    assert.equal(next.headers['webhook-id'], immediateDeliveryId(config.id, other.id));
    const body = bodyOf(next);
    assert.equal(body.noise.deduplicated, 2);
    assert.equal(body.noise.throttled, 0);
    assert.match(body.text, /held back since .*: 2 deduplicated/);
    assert.equal(rows.filter((r) => r.outcome === 'deduplicated').length, 2);
  });

  // ------------------------------------------------------------ throttle

  it('throttles alerts beyond maxPerWindow and carries the held-back count into the next alert that goes out', async () => {
    const { config, path } = await createConfig({ throttle: { maxPerWindow: 2, windowSeconds: 3 } });
    const events = Array.from({ length: 5 }, () => runEvent(config, 'run.failed'));
    for (const e of events) await feed(config, failureItem(config, e));

    const sent = await receivedExactly(path, 2);
    assert.deepEqual(sent.map((r) => r.headers['webhook-id']), events.slice(0, 2).map((e) => immediateDeliveryId(config.id, e.id)));
    const rows = await waitForLogs(config.id, { throttled: 3, delivered: 2 });
    const throttled = rows.filter((r) => r.outcome === 'throttled');
    assert.deepEqual(throttled.map((r) => r.deliveryId).sort(), events.slice(2).map((e) => immediateDeliveryId(config.id, e.id)).sort());
    for (const r of throttled) {
      assert.equal(r.attempt, 0);
      assert.match(r.error ?? '', /throttled/);
    }

    // the window (3 s from its first alert) passes: the next alert goes out and tells of the three
    await sleep(1_500);
    const later = runEvent(config, 'run.failed');
    await feed(config, failureItem(config, later));
    const [, , third] = await receivedExactly(path, 3);
    assert.equal(third.headers['webhook-id'], immediateDeliveryId(config.id, later.id));
    const body = bodyOf(third);
    assert.equal(body.noise.throttled, 3);
    assert.match(body.text, /3 throttled/);
  });

  // ------------------------------------------------------------ repeat

  it('suppresses a repeat of an open incident within repeatIntervalSeconds and alerts again after it', async () => {
    const { config, path } = await createConfig({ repeatIntervalSeconds: 2 });
    const [a, b] = [runEvent(config, 'run.failed'), runEvent(config, 'run.failed')];
    await feed(config, failureItem(config, a));
    await receiver.waitFor(path, 1);
    await feed(config, failureItem(config, b));
    const rows = await waitForLogs(config.id, { repeat_suppressed: 1, delivered: 1 });
    assert.deepEqual(rows.filter((r) => r.outcome === 'repeat_suppressed').map((r) => [r.deliveryId, r.attempt]), [[immediateDeliveryId(config.id, b.id), 0]]);

    await sleep(2_500);
    const c = runEvent(config, 'run.failed');
    await feed(config, failureItem(config, c));
    const sent = await receivedExactly(path, 2);
    assert.equal(sent[1].headers['webhook-id'], immediateDeliveryId(config.id, c.id));
    assert.equal(bodyOf(sent[1]).noise.repeatSuppressed, 1);
    assert.match(bodyOf(sent[1]).text, /1 repeats not sent/);
  });

  // ------------------------------------------------------------ recovery

  it('sends nothing for a success without a prior failure', async () => {
    const { config, path } = await createConfig({ recovery: true });
    await feed(config, successItem(config, runEvent(config, 'run.succeeded')));
    await sleep(QUIET_MS);
    assert.equal(receiver.at(path).length, 0);
    assert.deepEqual(await logsOf(config.id), []);
  });

  it('sends one recovered alert per incident after an alert went out (failures counted, failing time), and none for the next success', async () => {
    const { config, path } = await createConfig({ recovery: true });
    const t0 = Date.parse('2026-12-01T10:00:00Z');
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const opening = runEvent(config, 'run.failed', { at: at(0) });
    await feed(config, failureItem(config, opening));
    await feed(config, failureItem(config, runEvent(config, 'run.failed', { at: at(60_000) })));
    await receiver.waitFor(path, 2);
    // failing for 5m 3s by the events' times
    const success = runEvent(config, 'run.succeeded', { at: at(303_000) });
    await feed(config, successItem(config, success));

    const sent = await receivedExactly(path, 3);
    const recovered = sent[2];
    assert.equal(recovered.headers['webhook-id'], recoveryDeliveryId(immediateDeliveryId(config.id, opening.id)));
    const body = bodyOf(recovered);
    assert.equal(body.type, 'alert.recovered');
    assert.equal(body.condition, 'recovered');
    assert.equal(body.recovery.failures, 2);
    assert.equal(body.recovery.failingForMs, 303_000);
    assert.equal(body.recovery.failingSince, at(0));
    assert.equal(body.recovery.recoveredAt, at(303_000));
    assert.equal(body.recovery.incidentKey, config.workflowId);
    assert.equal(body.run.id, success.runId);
    assert.match(body.text, /recovered after failing for 5m 3s \(2 failures\)/);
    const rows = await waitForLogs(config.id, { delivered: 3 });
    assert.deepEqual(rows.filter((r) => r.condition === 'recovered').map((r) => [r.outcome, r.attempt]), [['delivered', 1]]);

    // the incident is closed: another success sends nothing
    await feed(config, successItem(config, runEvent(config, 'run.succeeded', { at: at(400_000) })));
    await receivedExactly(path, 3);
  });

  it('sends no recovery for an incident whose alerts were all held back (silenced)', async () => {
    const { config, path } = await createConfig({ recovery: true });
    const failure = runEvent(config, 'run.failed');
    await feed(config, failureItem(config, failure, { silencedBy: 'sil_maintenance' }));
    const rows = await waitForLogs(config.id, { silenced: 1 });
    assert.equal(rows[0].deliveryId, immediateDeliveryId(config.id, failure.id));
    assert.equal(rows[0].attempt, 0);
    assert.match(rows[0].error ?? '', /sil_maintenance/);
    await feed(config, successItem(config, runEvent(config, 'run.succeeded')));
    await sleep(QUIET_MS);
    assert.equal(receiver.at(path).length, 0, 'nothing went out: no alert, so no recovery');
  });

  // ------------------------------------------------------------ grouping

  it('groups failures into one digest that lists the events, each grouped log row naming the digest, and the next events into the next digest', async () => {
    const { config, path } = await createConfig({ grouping: { by: ['workflow.id'], waitSeconds: 2, intervalSeconds: 3, maxEvents: 10 } });
    const events = ['2026-12-01T10:00:00.000Z', '2026-12-01T10:00:01.000Z', '2026-12-01T10:00:02.000Z'].map((at) => runEvent(config, 'run.failed', { at }));
    for (const e of events) await feed(config, failureItem(config, e));
    const [digest] = await receiver.waitFor(path, 1, 30_000);
    // within the interval after the digest: into the group's next digest
    const later = runEvent(config, 'run.failed', { at: '2026-12-01T10:00:05.000Z' });
    await feed(config, failureItem(config, later));

    const [, second] = await receivedExactly(path, 2);
    const digestId = digest.headers['webhook-id'] as string;
    assert.ok(digestId.startsWith(`${configDeliveryIdPrefix(config.id)}-digest-`), digestId);
    const body = bodyOf(digest);
    assert.equal(body.type, 'alert.failure.digest');
    assert.equal(body.condition, 'failure');
    assert.equal(body.group.count, 3);
    assert.equal(body.group.more, 0);
    assert.equal(body.group.digest, 1);
    assert.deepEqual(body.group.events.map((e: { id: string }) => e.id), events.map((e) => e.id));
    assert.deepEqual(body.group.events.map((e: { deliveryId: string }) => e.deliveryId), events.map((e) => immediateDeliveryId(config.id, e.id)));
    assert.equal(body.group.firstAt, events[0].occurredAt);
    assert.equal(body.group.lastAt, events[2].occurredAt);
    assert.match(body.text, /3 failed runs between 2026-12-01T10:00:00.000Z and 2026-12-01T10:00:02.000Z/);
    // the digest's event is its newest
    assert.equal(body.run.id, events[2].runId);

    const secondId = second.headers['webhook-id'] as string;
    assert.notEqual(secondId, digestId);
    const secondBody = bodyOf(second);
    assert.equal(secondBody.group.digest, 2);
    assert.deepEqual(secondBody.group.events.map((e: { id: string }) => e.id), [later.id]);
    // the interval counts from the first digest
    assert.ok(second.at - digest.at >= 2_500, `second digest ${second.at - digest.at} ms after the first`);

    const rows = await waitForLogs(config.id, { grouped: 4, delivered: 2 });
    const grouped = rows.filter((r) => r.outcome === 'grouped');
    const noteOf = (e: ExecutionEvent) => grouped.find((r) => r.deliveryId === immediateDeliveryId(config.id, e.id))?.error ?? '';
    for (const e of events) assert.ok(noteOf(e).includes(`digest ${digestId} `), `grouped row names the digest: ${noteOf(e)}`);
    assert.ok(noteOf(later).includes(`digest ${secondId} `), `grouped row names the second digest: ${noteOf(later)}`);
    assert.ok(grouped.every((r) => r.attempt === 0));
    assert.deepEqual(rows.filter((r) => r.outcome === 'delivered').map((r) => r.deliveryId), [digestId, secondId]);
  });

  // ------------------------------------------------------------ the steps together

  it('runs the steps in order: silenced, deduplicated, throttled, the rest grouped into a digest that tells the held-back counts, then one recovery', async () => {
    const { config, path } = await createConfig({
      dedup: { key: '{{ error.step }}', windowSeconds: 60 },
      throttle: { maxPerWindow: 3, windowSeconds: 60 },
      grouping: { by: ['workflow.id'], waitSeconds: 2, intervalSeconds: 60, maxEvents: 2 },
      recovery: true,
    });
    const silenced = runEvent(config, 'run.failed', { step: 's0' });
    const firsts = ['s1', 's2', 's3'].map((step) => runEvent(config, 'run.failed', { step }));
    const dupe = runEvent(config, 'run.failed', { step: 's1' });
    const overThrottle = runEvent(config, 'run.failed', { step: 's4' });
    await feed(config, failureItem(config, silenced, { silencedBy: 'sil_night' }));
    for (const e of [firsts[0], dupe, firsts[1], firsts[2], overThrottle]) await feed(config, failureItem(config, e));

    const [digest] = await receivedExactly(path, 1);
    const body = bodyOf(digest);
    assert.equal(body.type, 'alert.failure.digest');
    // maxEvents 2: two listed, one more
    assert.equal(body.group.count, 3);
    assert.deepEqual(body.group.events.map((e: { id: string }) => e.id), firsts.slice(0, 2).map((e) => e.id));
    assert.equal(body.group.more, 1);
    assert.deepEqual({ silenced: body.noise.silenced, deduplicated: body.noise.deduplicated, throttled: body.noise.throttled }, { silenced: 1, deduplicated: 1, throttled: 1 });

    const rows = await waitForLogs(config.id, { silenced: 1, deduplicated: 1, throttled: 1, grouped: 3, delivered: 1 });
    const outcomeOf = (e: ExecutionEvent) => rows.find((r) => r.deliveryId === immediateDeliveryId(config.id, e.id))?.outcome;
    assert.deepEqual([silenced, dupe, overThrottle, ...firsts].map(outcomeOf), ['silenced', 'deduplicated', 'throttled', 'grouped', 'grouped', 'grouped']);

    await feed(config, successItem(config, runEvent(config, 'run.succeeded')));
    const [, recovered] = await receivedExactly(path, 2);
    const recoveredBody = bodyOf(recovered);
    assert.equal(recoveredBody.type, 'alert.recovered');
    // every failure of the incident counts, held back or not
    assert.equal(recoveredBody.recovery.failures, 6);
    assert.equal(recovered.headers['webhook-id'], recoveryDeliveryId(immediateDeliveryId(config.id, silenced.id)));
    assert.equal(recoveredBody.noise, undefined, 'the digest told the held-back counts already');
  });


  // ------------------------------------------------------------ through POST /api/events (dispatch's routing)

  it('through POST /api/events: answers pipeline, takes a repeated event in once, deduplicates by the rendered dedup key, and a run.succeeded sends one recovery', async () => {
    const { config, path } = await createConfig({ dedup: { key: '{{ workflow.id }}:{{ error.step }}', windowSeconds: 60 }, recovery: true });
    const metricsBefore = await metricsText();
    const first = runEvent(config, 'run.failed', { step: 'a' });
    const answer = await postEvent(first);
    assert.deepEqual(answer.deliveries, [{ deliveryId: immediateDeliveryId(config.id, first.id), configId: config.id, condition: 'failure', duplicate: false, noise: 'pipeline' }]);
    await postEvent(first);
    const dupe = runEvent(config, 'run.failed', { step: 'a' });
    await postEvent(dupe);
    const rows = await waitForLogs(config.id, { deduplicated: 1 });
    const row = rows.find((r) => r.outcome === 'deduplicated')!;
    assert.equal(row.deliveryId, immediateDeliveryId(config.id, dupe.id));
    assert.ok(row.error?.includes(`"${config.workflowId}:a"`), `the rendered key: ${row.error}`);

    const other = runEvent(config, 'run.failed', { step: 'b' });
    await postEvent(other);
    await receiver.waitFor(path, 2, 30_000);
    const success = runEvent(config, 'run.succeeded');
    assert.deepEqual((await postEvent(success)).deliveries, [], 'a success starts nothing of its own: the pipeline decides');
    const sent = await receivedExactly(path, 3);
    assert.deepEqual(sent.map((r) => r.headers['webhook-id']), [first, other].map((e) => immediateDeliveryId(config.id, e.id)).concat(recoveryDeliveryId(immediateDeliveryId(config.id, first.id))));
    assert.equal(bodyOf(sent[1]).noise.deduplicated, 1);
    const recovered = bodyOf(sent[2]);
    assert.equal(recovered.condition, 'recovered');
    // the repeated event counted once
    assert.equal(recovered.recovery.failures, 3);
    assert.equal(recovered.recovery.incidentKey, `${config.workflowId}:a`);
    // the AlertDelivery workflows the pipeline started are counted, as dispatch counts its own
    const metricsAfter = await metricsText();
    const grew = (labels: string) => sample(metricsAfter, 'alerts_deliveries_started_total', labels) - sample(metricsBefore, 'alerts_deliveries_started_total', labels);
    assert.equal(grew('{condition="failure",duplicate="false"}'), 2);
    assert.equal(grew('{condition="recovered",duplicate="false"}'), 1);

    await postEvent(runEvent(config, 'run.succeeded'));
    await receivedExactly(path, 3);
  });

  it('through POST /api/events: a run.succeeded of a config whose pipeline is not running sends nothing and starts no pipeline', async () => {
    const { config, path } = await createConfig({ recovery: true });
    await postEvent(runEvent(config, 'run.succeeded'));
    await sleep(QUIET_MS);
    assert.equal(receiver.at(path).length, 0);
    const describe = stack.service.temporal.client.workflow.getHandle(noiseWorkflowId(config.id)).describe();
    await assert.rejects(describe, (err: Error) => err.name === 'WorkflowNotFoundError');
    assert.deepEqual(await logsOf(config.id), []);
  });

  it('through POST /api/events: groups by error.step, one digest per group', async () => {
    const { config, path } = await createConfig({ grouping: { by: ['error.step'], waitSeconds: 1, intervalSeconds: 60, maxEvents: 10 } });
    const a = [runEvent(config, 'run.failed', { step: 'a' }), runEvent(config, 'run.failed', { step: 'a' })];
    const b = runEvent(config, 'run.failed', { step: 'b' });
    for (const e of [a[0], b, a[1]]) await postEvent(e);
    const digests = (await receivedExactly(path, 2)).map(bodyOf);
    const byStep = new Map(digests.map((d) => [d.group.events[0].error.step, d]));
    assert.deepEqual(byStep.get('a').group.events.map((e: { id: string }) => e.id), a.map((e) => e.id));
    assert.equal(byStep.get('a').group.key, 'failure|a');
    assert.deepEqual(byStep.get('b').group.events.map((e: { id: string }) => e.id), [b.id]);
    assert.equal(byStep.get('b').group.count, 1);
    assert.deepEqual(byStep.get('a').group.by, ['error.step']);
  });

  it('through POST /api/events: fired delay watches ask the pipeline; throttled ones end throttled, the one let through is sent, and a later one tells the count', async function () {
    this.timeout(60_000);
    const { config, path } = await createConfig({ throttle: { maxPerWindow: 1, windowSeconds: 3 } }, { conditions: [{ type: 'delay', thresholdSeconds: 1 }] });
    const started = (): ExecutionEvent => {
      const now = new Date().toISOString();
      return { id: `evt_${uid()}`, type: 'run.started', occurredAt: now, workflowId: config.workflowId, runId: `run_${uid()}`, run: { startedAt: now } };
    };
    const watchIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await postEvent(started());
      assert.equal(answer.deliveries.length, 1);
      assert.equal(answer.deliveries[0].condition, 'delay');
      watchIds.push(answer.deliveries[0].deliveryId);
    }
    const statuses = await eventually('the three watches to end', async () => {
      const all = await Promise.all(watchIds.map(deliveryStatus));
      return all.every((st) => st === 'delivered' || st === 'throttled') ? all : undefined;
    });
    assert.deepEqual([...statuses].sort(), ['delivered', 'throttled', 'throttled']);
    const [sent] = await receivedExactly(path, 1);
    const sentId = sent.headers['webhook-id'];
    assert.equal(sentId, watchIds[statuses.indexOf('delivered')]);
    assert.equal(bodyOf(sent).condition, 'delay');
    const rows = await waitForLogs(config.id, { throttled: 2, delivered: 1 });
    assert.deepEqual(rows.filter((r) => r.outcome === 'throttled').map((r) => [r.attempt, r.condition]), [[0, 'delay'], [0, 'delay']]);

    // after the window, the next late run's alert goes out and tells of the two held back
    await sleep(3_000);
    const late = await postEvent(started());
    const [, next] = await receivedExactly(path, 2);
    assert.equal(next.headers['webhook-id'], late.deliveries[0].deliveryId);
    assert.equal(bodyOf(next).noise.throttled, 2);
    assert.equal(await eventually('the late watch delivered', async () => ((await deliveryStatus(late.deliveries[0].deliveryId)) === 'delivered' ? 'delivered' : undefined)), 'delivered');
  });

  // ------------------------------------------------------------ workflow lifecycle

  it('keeps its state across continue-as-new: dedup keys and the held-back count survive', async () => {
    const { config, path } = await createConfig({ dedup: { key: '{{ error.step }}', windowSeconds: 300 } });
    const input = { continueAsNewAfterEvents: 20 };
    const firstRunId = await feed(config, failureItem(config, runEvent(config, 'run.failed', { step: 'same' })), input);
    await receiver.waitFor(path, 1);
    // each item is a few history events: these pass the threshold several times
    const dupes = Array.from({ length: 10 }, () => runEvent(config, 'run.failed', { step: 'same' }));
    for (const e of dupes) {
      await feed(config, failureItem(config, e), input);
      await waitForLogs(config.id, { deduplicated: dupes.indexOf(e) + 1 });
    }
    const handle = stack.service.temporal.client.workflow.getHandle(noiseWorkflowId(config.id));
    const description = await handle.describe();
    assert.notEqual(description.runId, firstRunId, 'the workflow continued as new');
    assert.equal(description.status.name, 'RUNNING');
    // what the Temporal Web UI shows on the workflow (its current details)
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(metadata.currentDetails ?? '', /dedup keys in window: 1\n/);
    assert.match(metadata.currentDetails ?? '', /held back since .*: 0 silenced, 10 deduplicated, 0 throttled, 0 repeats/);

    const other = runEvent(config, 'run.failed', { step: 'other' });
    await feed(config, failureItem(config, other), input);
    const [, next] = await receivedExactly(path, 2);
    assert.equal(next.headers['webhook-id'], immediateDeliveryId(config.id, other.id));
    assert.equal(bodyOf(next).noise.deduplicated, 10, 'the count held back before and after continue-as-new');
    const rows = await logsOf(config.id);
    assert.equal(rows.filter((r) => r.outcome === 'deduplicated').length, 10);
  });

  it('goes on when a delay watch it answers is gone', async () => {
    const { config, path } = await createConfig({ dedup: { key: '{{ error.step }}', windowSeconds: 60 } });
    const first = runEvent(config, 'run.failed', { step: 'x' });
    await feed(config, failureItem(config, first));
    await receiver.waitFor(path, 1);
    // a watch that no longer runs (it waited its hour and sent the alert itself)
    const watched = runEvent(config, 'run.failed', { step: 'x' });
    await feed(config, failureItem(config, watched, { watch: true, deliveryId: `${immediateDeliveryId(config.id, watched.id)}-delay` }));
    await waitForLogs(config.id, { deduplicated: 1 });
    const after = runEvent(config, 'run.failed', { step: 'y' });
    await feed(config, failureItem(config, after));
    const [, next] = await receivedExactly(path, 2);
    assert.equal(next.headers['webhook-id'], immediateDeliveryId(config.id, after.id));
  });
});

/**
 * The pipeline's life over hours, on Temporal's time-skipping test server (the workflow's timers are
 * the real ones, only the clock jumps): a digest after its wait, an alert sent again within the hour
 * recognised, the workflow's end an hour after its last item, and a new life of the pipeline whose
 * digest ids are new.
 */
describe('noise pipeline over hours (time-skipping test server)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let store: TestStore;
  let receiver: Receiver;
  let worker: Worker;
  let running: Promise<void>;
  const keyring = parseKeyring(newKeySpec('k1'));
  const taskQueue = 'noise-time-skipping';
  let config: { id: string } & NoiseSettings;
  const workflowId = 'wf_hourly';

  before(async () => {
    env = await startTimeSkippingEnv();
    store = await openStore('pglite');
    receiver = await Receiver.start();
    const saved = await saveConfig(
      store.db,
      keyring,
      'default',
      alertConfigInputSchema.parse({
        workflowId,
        name: 'hourly',
        conditions: [{ type: 'failure' }],
        webhook: { url: receiver.on('/digests', () => ({ status: 200 })) },
        grouping: { by: ['workflow.id'], waitSeconds: 30, intervalSeconds: 300, maxEvents: 10 },
      }),
    );
    config = saved.config;
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.ts'),
      activities: createActivities({
        db: store.db,
        keyring,
        egress: parseEgressPolicy({ allow: '127.0.0.1' }),
        // eager start needs the client to share the worker's connection: the digests are started plainly
        temporal: { client: env.client, namespace: 'default', taskQueue, eagerStart: false },
        operations: defaultOperations(),
      }),
    });
    running = worker.run();
  });

  after(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running?.catch(() => undefined);
    await env?.teardown();
    await store?.close();
    await receiver?.close();
  });

  const settings = (): NoiseSettings => noiseSettingsOf(config);
  const failure = (id: string): NoiseAlertItem => {
    const event: ExecutionEvent = { id, type: 'run.failed', occurredAt: '2026-12-01T10:00:00.000Z', workflowId, runId: `run_${id}`, error: { message: 'boom' } };
    return { kind: 'alert', deliveryId: immediateDeliveryId(config.id, id), condition: 'failure', event, groupKey: groupKey(['workflow.id'], event, 'failure'), dedupKey: null, silencedBy: null, watch: false, settings: settings() };
  };
  const feed = (item: NoiseItem) =>
    env.client.workflow.signalWithStart('AlertNoise', {
      workflowId: noiseWorkflowId(config.id),
      taskQueue,
      args: [{ projectId: 'default', configId: config.id, idPrefix: configDeliveryIdPrefix(config.id) } satisfies AlertNoiseInput],
      signal: NOISE_ITEM_SIGNAL,
      signalArgs: [item],
    });

  it('sends a digest after its wait, recognises an alert sent again within the hour, ends an hour after its last item, and a later life sends new digest ids', async () => {
    const first = failure('evt_first');
    const handle = await feed(first);
    await env.sleep('31s');
    const [digest] = await receiver.waitFor('/digests', 1, 30_000);
    assert.deepEqual(JSON.parse(digest.body).group.events.map((e: { id: string }) => e.id), ['evt_first']);

    // 50 minutes on (its group closed long ago): the same alert again is taken in once, no new digest
    await env.sleep('50m');
    const repeatedAtMs = await env.currentTimeMs();
    const again = await feed(first);
    assert.equal(again.signaledRunId, handle.signaledRunId, 'the pipeline still runs');
    await env.sleep('31s');

    // idle, it ends an hour after that last item
    await handle.result();
    const description = await handle.describe();
    const lingeredMs = description.closeTime!.getTime() - repeatedAtMs;
    assert.ok(lingeredMs >= 3_600_000 && lingeredMs < 2 * 3_600_000, `ended ${lingeredMs} ms after its last item`);
    assert.equal(receiver.at('/digests').length, 1, 'the repeated alert sent nothing');

    // a later alert starts a new life of the pipeline: its digest has an id of its own
    const later = await feed(failure('evt_later'));
    assert.notEqual(later.signaledRunId, handle.signaledRunId);
    await env.sleep('31s');
    const [, second] = await receiver.waitFor('/digests', 2, 30_000);
    assert.notEqual(second.headers['webhook-id'], digest.headers['webhook-id']);
    assert.deepEqual(JSON.parse(second.body).group.events.map((e: { id: string }) => e.id), ['evt_later']);
    const rows = await store.db.query<{ delivery_id: string; outcome: string }>("SELECT delivery_id, outcome FROM alert_logs WHERE config_id = $1 AND outcome = 'grouped' ORDER BY delivery_id", [config.id]);
    assert.deepEqual(rows.map((r) => r.delivery_id), [immediateDeliveryId(config.id, 'evt_first'), immediateDeliveryId(config.id, 'evt_later')]);
  });
});
