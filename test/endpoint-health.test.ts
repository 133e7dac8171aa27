import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { configListSchema, enableConfigResultSchema, eventsAcceptedSchema, heldPageSchema } from '../api/schemas';
import { newKeySpec, parseKeyring } from '../lib/crypto';
import { alertConfigInputSchema, errorSchema, type ExecutionEvent } from '../lib/schemas';
import { verifyAlert } from '../lib/verify';
import { deliveryActivities } from '../activities/delivery';
import { enableConfig } from '../dispatch/held-alerts';
import type { ServiceDeps } from '../runtime/deps';
import { createEgressDispatcher } from '../runtime/egress';
import type { Db, Queryable } from '../store/db';
import { startFirstAttempt } from '../store/deliveries';
import { configStats } from '../store/stats';
import { disableConfig, getConfig as getStoredConfig, saveConfig } from '../store/configs';
import { countFailure, countSuccess, lockForReenable, reenableConfig } from '../store/health';
import { countHeld, holdAlert } from '../store/held';
import { projectHealthSettings } from '../store/project-settings';
import { eventually } from './support/eventually';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { STORE_KINDS, useStore } from './support/stores';

/**
 * Endpoint health, end to end on the shared embedded stack (real Temporal dev server, PGlite, worker,
 * API) with real HTTP receivers on 127.0.0.1: a failing receiver earns its config config.failing,
 * then a disable; alerts are held while it is disabled, and re-enabling sends them (in order, signed
 * afresh) or discards them. The project's thresholds and operator webhook come from
 * PUT /api/project/settings; the operator alerts are verified with the operator secret.
 * docs/endpoint-health.md.
 */

const uid = () => randomBytes(5).toString('hex');
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** one attempt per delivery: each event is one failed (or delivered) delivery */
const ONE_ATTEMPT = { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };
/** a first attempt and one retry */
const TWO_ATTEMPTS = { maxAttempts: 2, initialIntervalMs: 100, backoffCoefficient: 1, maxIntervalMs: 100, maxDurationMs: 60_000 };

interface OperatorAlert {
  id: string;
  type: string;
  projectId: string | null;
  occurredAt: string;
  data: Record<string, any>;
}

describe('endpoint health: warn, disable, hold, re-enable (end to end)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let token: string;
  let receiver: Receiver;
  const project = `health_${uid()}`;
  const operatorSecret = newSecret();
  const operatorPath = `/operator-${uid()}`;
  const alertPath = `/alerts-${uid()}`;
  /** what the alert receiver answers right now */
  let alertStatus = 500;

  const api = (method: string, path: string, body?: unknown) => stack.api(method, path, body, token);

  /** polls `probe` until it returns something truthy, within a deadline */

  /** The operator alerts received so far, each verified with the operator secret (a bad signature throws). */
  function operatorAlerts(type?: string, configId?: string): OperatorAlert[] {
    return receiver
      .at(operatorPath)
      .map((r) => verifyAlert<OperatorAlert>(r.body, r.headers as Record<string, string>, operatorSecret))
      .filter((a) => (type === undefined || a.type === type) && (configId === undefined || a.data.configId === configId));
  }

  const waitForOperator = (type: string, configId: string, count = 1) =>
    eventually(`${count} ${type} operator alert(s) for ${configId}`, async () => {
      const found = operatorAlerts(type, configId);
      return found.length >= count ? found : undefined;
    });

  async function putSettings(health: { warnAfterFailures: number; disableAfterSeconds: number }): Promise<void> {
    const res = await api('PUT', '/api/project/settings', { operatorWebhook: { url: `${receiver.url}${operatorPath}`, secret: operatorSecret }, health });
    assert.equal(res.status, 200, `PUT /api/project/settings: ${JSON.stringify(res.body)}`);
    assert.deepEqual(res.body.health, health);
  }

  async function createConfig(workflowId: string, path = alertPath, retry = ONE_ATTEMPT): Promise<{ id: string; secret: string }> {
    const res = await api('POST', '/api/alerts/config', {
      config: {
        workflowId,
        name: `health ${workflowId}`,
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
        payload: { template: { eventId: '{{ event.id }}', condition: '{{ condition }}' } },
        retry,
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.config.id, secret: res.body.secret };
  }

  const failedEvent = (workflowId: string, id = `evt_${uid()}`) => ({ id, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'boom' } });

  async function postEvents(...events: unknown[]): Promise<{ deliveries: { deliveryId: string; configId: string; duplicate: boolean }[]; held: { configId: string; condition: string }[] }> {
    const res = await api('POST', '/api/events', events.length === 1 ? events[0] : { events });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    eventsAcceptedSchema.parse(res.body); // the answer is the one the OpenAPI document describes
    return res.body;
  }

  async function waitForStatus(deliveryId: string, status: string): Promise<any> {
    return eventually(`delivery ${deliveryId} to be ${status}`, async () => {
      const res = await api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      return res.status === 200 && res.body.status === status ? res.body : undefined;
    });
  }

  /** posts one event that starts one delivery, and waits for it to end `status` */
  async function deliverOne(workflowId: string, status: 'failed' | 'delivered', event = failedEvent(workflowId)): Promise<string> {
    const answer = await postEvents(event);
    assert.equal(answer.deliveries.length, 1, JSON.stringify(answer));
    assert.deepEqual(answer.held, []);
    await waitForStatus(answer.deliveries[0].deliveryId, status);
    return answer.deliveries[0].deliveryId;
  }

  async function getConfig(workflowId: string, configId: string): Promise<any> {
    const res = await api('GET', `/api/alerts/config/${workflowId}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    configListSchema.parse(res.body);
    const config = res.body.configs.find((c: { id: string }) => c.id === configId);
    assert.ok(config, `config ${configId} is listed`);
    return config;
  }

  async function auditActions(configId: string): Promise<{ action: string; tokenId: string | null; changes: any[] }[]> {
    const res = await api('GET', `/api/alerts/audit?configId=${configId}&limit=100`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return [...res.body.entries].reverse();
  }

  const alertsReceived = (): Received[] => receiver.at(alertPath);
  const eventIdOf = (r: Received) => (JSON.parse(r.body) as { eventId: string }).eventId;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    token = await stack.tokenFor(project);
    receiver = await Receiver.start();
    receiver.on(alertPath, () => ({ status: alertStatus }));
    // the warning after 2 failures; no disable yet (it is lowered below, once the streak has run for a while)
    await putSettings({ warnAfterFailures: 2, disableAfterSeconds: 3600 });
  });

  after(async () => {
    await receiver?.close();
  });

  const workflowId = `wf_health_${uid()}`;
  let config: { id: string; secret: string };
  /** the held events, oldest first */
  const heldEvents: ReturnType<typeof failedEvent>[] = [];

  it('counts failed deliveries, raises delivery.exhausted for each and config.failing once at warnAfterFailures', async function () {
    config = await createConfig(workflowId);
    const first = await deliverOne(workflowId, 'failed');
    const afterOne = (await getConfig(workflowId, config.id)).health;
    assert.equal(afterOne.consecutiveFailures, 1);
    assert.ok(afterOne.failingSince && afterOne.lastFailureAt, JSON.stringify(afterOne));
    assert.equal(afterOne.warnedAt, null);
    const [exhausted] = await waitForOperator('delivery.exhausted', config.id);
    assert.equal(exhausted.id, `delivery.exhausted:${first}`);
    assert.equal(exhausted.projectId, project);
    assert.equal(exhausted.data.deliveryId, first);
    assert.equal(exhausted.data.workflowId, workflowId);
    assert.equal(exhausted.data.condition, 'failure');
    assert.equal(exhausted.data.attempts, 1);
    assert.match(exhausted.data.error, /HTTP 500/);

    await deliverOne(workflowId, 'failed');
    const [failing] = await waitForOperator('config.failing', config.id);
    const health = (await getConfig(workflowId, config.id)).health;
    assert.equal(health.consecutiveFailures, 2);
    assert.equal(health.failingSince, afterOne.failingSince, 'the streak began with the first failure');
    assert.ok(health.warnedAt, 'warnedAt is set');
    assert.equal(failing.id, `config.failing:${config.id}:${Date.parse(health.failingSince)}`);
    assert.equal(failing.data.consecutiveFailures, 2);
    assert.equal(failing.data.failingSince, health.failingSince);
    assert.equal(failing.data.configName, `health ${workflowId}`);
    await waitForOperator('delivery.exhausted', config.id, 2);
    assert.equal((await getConfig(workflowId, config.id)).enabled, true, 'warned, not disabled');
  });

  it('disables the config, with its reason and an audit entry, when a failure comes past disableAfterSeconds', async function () {
    await putSettings({ warnAfterFailures: 2, disableAfterSeconds: 2 });
    const { failingSince } = (await getConfig(workflowId, config.id)).health;
    // the next failure is past the period: wait for the clock, not for luck
    await eventually('the streak to be 2 s old', async () => Date.now() >= Date.parse(failingSince) + 2_500);
    await deliverOne(workflowId, 'failed');
    const [disabled] = await waitForOperator('config.disabled', config.id);
    const shown = await getConfig(workflowId, config.id);
    assert.equal(shown.enabled, false);
    assert.match(shown.disabledReason, new RegExp(`^failing since ${failingSince.slice(0, 19)}Z: 3 deliveries failed in a row`));
    assert.equal(disabled.data.reason, shown.disabledReason);
    assert.equal(disabled.data.cause, 'failing');
    assert.equal(disabled.id, `config.disabled:${config.id}:${Date.parse(disabled.data.disabledAt)}`);
    const audit = (await auditActions(config.id)).filter((e) => e.action === 'config.disabled');
    assert.equal(audit.length, 1);
    assert.equal(audit[0].tokenId, null, 'the service disabled it');
    assert.deepEqual(audit[0].changes.find((c) => c.field === 'enabled'), { field: 'enabled', from: true, to: false });
    // the third failure warned no more: one warning per streak
    await waitForOperator('delivery.exhausted', config.id, 3);
    assert.equal(operatorAlerts('config.failing', config.id).length, 1);
  });

  it('holds the alerts of the disabled config: counted, listed oldest first, an event sent twice held once, nothing sent', async function () {
    alertStatus = 200; // the receiver is fixed; the config stays disabled until re-enabled
    const sentBefore = alertsReceived().length;
    for (let i = 0; i < 3; i++) {
      const event = failedEvent(workflowId);
      const answer = await postEvents(event);
      assert.deepEqual(answer.deliveries, []);
      assert.deepEqual(answer.held, [{ configId: config.id, condition: 'failure' }]);
      heldEvents.push(event);
    }
    await postEvents(heldEvents[0]); // the same event again
    const page = await api('GET', `/api/alerts/config/by-id/${config.id}/held?limit=2`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    heldPageSchema.parse(page.body);
    assert.equal(page.body.count, 3);
    assert.deepEqual(page.body.held.map((h: { eventId: string }) => h.eventId), heldEvents.slice(0, 2).map((e) => e.id));
    assert.equal(page.body.held[0].workflowId, workflowId);
    assert.equal(page.body.held[0].runId, heldEvents[0].runId);
    assert.equal(page.body.held[0].condition, 'failure');
    const next = await api('GET', `/api/alerts/config/by-id/${config.id}/held?limit=2&before=${page.body.nextCursor}`);
    assert.deepEqual(next.body.held.map((h: { eventId: string }) => h.eventId), [heldEvents[2].id]);
    assert.equal(next.body.nextCursor, null);
    assert.equal((await getConfig(workflowId, config.id)).health.heldCount, 3);
    const deliveries = await api('GET', `/api/alerts/deliveries?configId=${config.id}`);
    assert.equal(deliveries.body.deliveries.length, 3, 'no delivery started for a held alert');
    assert.equal(alertsReceived().length, sentBefore, 'nothing POSTed to the receiver');
  });

  it('refuses to re-enable without a choice about the held alerts (409 held_alerts_pending)', async function () {
    const enable = await api('POST', `/api/alerts/config/by-id/${config.id}/enable`, {});
    assert.equal(enable.status, 409, JSON.stringify(enable.body));
    errorSchema.parse(enable.body);
    assert.equal(enable.body.error.code, 'held_alerts_pending');
    assert.match(enable.body.error.message, /3 held alerts.*"send".*"discard"/);
    assert.deepEqual(enable.body.error.details, { heldCount: 3, choices: ['send', 'discard'] });

    const { health: _health, createdAt: _c, updatedAt: _u, disabledReason: _d, ...shown } = await getConfig(workflowId, config.id);
    const save = await api('POST', '/api/alerts/config', { config: { ...shown, enabled: true } });
    assert.equal(save.status, 409, JSON.stringify(save.body));
    assert.equal(save.body.error.code, 'held_alerts_pending');
    const still = await getConfig(workflowId, config.id);
    assert.equal(still.enabled, false);
    assert.equal(still.health.heldCount, 3);
  });

  it('re-enables with send: each held alert arrives in order, freshly signed, with its own webhook-id; config.reenabled is raised', async function () {
    const sentBefore = alertsReceived().length;
    const requestedAt = Math.floor(Date.now() / 1000);
    const res = await api('POST', `/api/alerts/config/by-id/${config.id}/enable`, { held: 'send' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    enableConfigResultSchema.parse(res.body);
    assert.equal(res.body.held.action, 'send');
    assert.equal(res.body.held.count, 3);
    assert.equal(res.body.held.deliveries.length, 3);
    assert.equal(res.body.config.enabled, true);
    assert.equal(res.body.config.disabledReason, null);
    assert.equal(res.body.config.health.consecutiveFailures, 0, 're-enabling resets the streak');
    assert.equal(res.body.config.health.failingSince, null);
    assert.equal(res.body.config.health.heldCount, 0);

    await receiver.waitFor(alertPath, sentBefore + 3);
    const sent = alertsReceived().slice(sentBefore);
    assert.deepEqual(sent.map(eventIdOf), heldEvents.map((e) => e.id), 'oldest first');
    const ids = sent.map((r) => r.headers['webhook-id']);
    assert.deepEqual(ids, res.body.held.deliveries.map((d: { deliveryId: string }) => d.deliveryId));
    assert.equal(new Set(ids).size, 3, 'each its own webhook-id');
    for (const r of sent) {
      verifyAlert(r.body, r.headers as Record<string, string>, config.secret);
      assert.ok(Number(r.headers['webhook-timestamp']) >= requestedAt, 'signed when sent, not when held');
    }
    for (const d of res.body.held.deliveries) await waitForStatus(d.deliveryId, 'delivered');

    const [reenabled] = await waitForOperator('config.reenabled', config.id);
    assert.deepEqual(reenabled.data.held, { action: 'send', count: 3 });
    assert.match(reenabled.data.previousReason, /^failing since/);
    const actions = (await auditActions(config.id)).map((e) => e.action);
    assert.deepEqual(actions.slice(-2), ['config.reenabled', 'config.held_sent']);
    const held = await api('GET', `/api/alerts/config/by-id/${config.id}/held`);
    assert.deepEqual([held.body.count, held.body.held], [0, []]);
    assert.ok((await getConfig(workflowId, config.id)).health.lastSuccessAt, 'the sent alerts were delivered');

    // the same request again: nothing left to send
    const again = await api('POST', `/api/alerts/config/by-id/${config.id}/enable`, { held: 'send' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.held, { action: 'send', count: 0, deliveries: [] });
    assert.equal(alertsReceived().length, sentBefore + 3);
  });

  it('disables at once on a 410 (config.disabled), and re-enabling with discard sends nothing and empties the list', async function () {
    alertStatus = 410;
    await deliverOne(workflowId, 'failed');
    const disabled = await eventually('config.disabled for the 410', async () => operatorAlerts('config.disabled', config.id).find((a) => a.data.cause === 'gone'));
    const shown = await getConfig(workflowId, config.id);
    assert.equal(shown.enabled, false);
    assert.match(shown.disabledReason, /410 Gone/);
    assert.equal(disabled.data.reason, shown.disabledReason);
    alertStatus = 200;
    const sentBefore = alertsReceived().length;
    const event = failedEvent(workflowId);
    assert.deepEqual((await postEvents(event)).held, [{ configId: config.id, condition: 'failure' }]);

    const res = await api('POST', `/api/alerts/config/by-id/${config.id}/enable`, { held: 'discard' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.held, { action: 'discard', count: 1, deliveries: [] });
    const held = await api('GET', `/api/alerts/config/by-id/${config.id}/held`);
    assert.deepEqual([held.body.count, held.body.held], [0, []]);
    assert.equal((await auditActions(config.id)).at(-1)!.action, 'config.held_discarded');
    const reenabled = await waitForOperator('config.reenabled', config.id, 2);
    assert.deepEqual(reenabled[1].data.held, { action: 'discard', count: 1 });
    // the next event is delivered as usual; the discarded one never was
    await deliverOne(workflowId, 'delivered');
    assert.deepEqual(alertsReceived().slice(sentBefore).map(eventIdOf).includes(event.id), false);
  });

  it('sends a held alert whose event was already sent once as a duplicate: nothing twice', async function () {
    alertStatus = 410;
    await deliverOne(workflowId, 'failed');
    await eventually('the config to be disabled', async () => (await getConfig(workflowId, config.id)).enabled === false);
    alertStatus = 200;
    // an event sent before, again while disabled: held, and its delivery id is the one it had then
    assert.deepEqual((await postEvents(heldEvents[1])).held, [{ configId: config.id, condition: 'failure' }]);
    const sentBefore = alertsReceived().length;
    // through POST /api/alerts/config this time, with the choice in the body
    const { health: _health, createdAt: _c, updatedAt: _u, disabledReason: _d, ...shown } = await getConfig(workflowId, config.id);
    const save = await api('POST', '/api/alerts/config', { config: { ...shown, enabled: true }, held: 'send' });
    assert.equal(save.status, 200, JSON.stringify(save.body));
    assert.equal(save.body.config.enabled, true);
    assert.equal(save.body.config.health.heldCount, 0);
    await deliverOne(workflowId, 'delivered');
    const after = alertsReceived().slice(sentBefore).map(eventIdOf);
    assert.equal(after.includes(heldEvents[1].id), false, 'the alert it had sent is not sent again');
    assert.equal(after.length, 1);
  });

  it('holds a delay alert whose watch fires while the config is disabled, and sends it on re-enabling; a run that finished in time holds nothing', async function () {
    const wf = `wf_health_delay_${uid()}`;
    const path = `/delay-${uid()}`;
    let status = 410;
    receiver.on(path, () => ({ status }));
    const res = await api('POST', '/api/alerts/config', {
      config: {
        workflowId: wf,
        name: 'delay while disabled',
        conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 1 }],
        webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
        payload: { template: { eventId: '{{ event.id }}', condition: '{{ condition }}' } },
        retry: ONE_ATTEMPT,
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const configId: string = res.body.config.id;
    await deliverOne(wf, 'failed'); // 410: disabled at once
    assert.equal((await getConfig(wf, configId)).enabled, false);
    status = 200;

    const now = new Date().toISOString();
    const late = { id: `evt_${uid()}`, type: 'run.started', workflowId: wf, runId: `run_${uid()}`, occurredAt: now };
    const inTime = { id: `evt_${uid()}`, type: 'run.started', workflowId: wf, runId: `run_${uid()}`, occurredAt: now };
    const started = await postEvents(late, inTime);
    assert.equal(started.deliveries.length, 2, 'the watches start while the config is disabled');
    await postEvents({ id: `evt_${uid()}`, type: 'run.succeeded', workflowId: wf, runId: inTime.runId, occurredAt: now });
    const [lateWatch, inTimeWatch] = started.deliveries.map((d) => d.deliveryId);
    const fired = await waitForStatus(lateWatch, 'failed');
    assert.match(fired.error, /^held: the alert config is disabled by the service \(receiver answered 410 Gone/);
    await waitForStatus(inTimeWatch, 'suppressed');
    const held = await api('GET', `/api/alerts/config/by-id/${configId}/held`);
    assert.equal(held.body.count, 1);
    assert.deepEqual(
      held.body.held.map((h: { condition: string; deliveryId: string; runId: string }) => [h.condition, h.deliveryId, h.runId]),
      [['delay', lateWatch, late.runId]],
    );
    assert.equal((await getConfig(wf, configId)).health.consecutiveFailures, 1, 'a held alert is not a failure of the endpoint');
    assert.equal(receiver.at(path).length, 1, 'only the 410 was POSTed');

    const enable = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, { held: 'send' });
    assert.equal(enable.status, 200, JSON.stringify(enable.body));
    assert.deepEqual(enable.body.held.deliveries.map((d: { deliveryId: string; condition: string }) => [d.deliveryId, d.condition]), [[`${lateWatch}-held`, 'delay']]);
    const [, sent] = await receiver.waitFor(path, 2);
    assert.deepEqual(JSON.parse(sent.body), { eventId: late.id, condition: 'delay' });
    assert.equal(sent.headers['webhook-id'], `${lateWatch}-held`);
    verifyAlert(sent.body, sent.headers as Record<string, string>, res.body.secret);
  });

  it('holds a retried alert whose config the service disabled since its first attempt, without sending it again', async function () {
    const wf = `wf_health_retry_${uid()}`;
    const path = `/retry-${uid()}`;
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    const retried = failedEvent(wf);
    // the retried alert's first attempt is answered (500) only once the other delivery's 410 has disabled the config
    receiver.on(path, (_n, r) => (eventIdOf(r) === retried.id ? { status: 500, after: firstHeld } : { status: 410 }));
    const res = await api('POST', '/api/alerts/config', {
      config: {
        workflowId: wf,
        name: 'retried while disabled',
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 30_000 },
        payload: { template: { eventId: '{{ event.id }}', condition: '{{ condition }}' } },
        retry: { maxAttempts: 5, initialIntervalMs: 100, backoffCoefficient: 1, maxIntervalMs: 100, maxDurationMs: 60_000 },
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const configId: string = res.body.config.id;
    const [retriedDelivery] = (await postEvents(retried)).deliveries;
    await receiver.waitFor(path, 1);
    await deliverOne(wf, 'failed'); // the 410
    assert.equal((await getConfig(wf, configId)).enabled, false);
    releaseFirst();

    const ended = await waitForStatus(retriedDelivery.deliveryId, 'failed');
    assert.match(ended.error, /^held: the alert config is disabled by the service \(receiver answered 410 Gone/);
    assert.deepEqual(ended.attempts.map((a: { attempt: number; outcome: string; httpStatus: number | null }) => [a.attempt, a.outcome, a.httpStatus]), [[1, 'retrying', 500], [2, 'failed', null]]);
    assert.equal(receiver.at(path).filter((r) => eventIdOf(r) === retried.id).length, 1, 'not POSTed again once disabled');
    const held = await api('GET', `/api/alerts/config/by-id/${configId}/held`);
    assert.deepEqual(held.body.held.map((h: { eventId: string; deliveryId: string }) => [h.eventId, h.deliveryId]), [[retried.id, retriedDelivery.deliveryId]]);
    assert.equal((await getConfig(wf, configId)).health.consecutiveFailures, 1, 'only the 410 counted');
    // once its workflow has completed, whatever it raised has been recorded
    await stack.service.apiDeps!.temporal.client.workflow.getHandle(retriedDelivery.deliveryId).result();
    const listed = await api('GET', '/api/operator/alerts?limit=100');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    const exhausted = listed.body.alerts.filter((a: { type: string; event: OperatorAlert }) => a.type === 'delivery.exhausted' && a.event.data.configId === configId);
    assert.ok(exhausted.length >= 1, 'the 410 delivery is exhausted');
    assert.equal(exhausted.some((a: { event: OperatorAlert }) => a.event.data.deliveryId === retriedDelivery.deliveryId), false, 'a held alert is not exhausted');
  });

  it('answers bad input with a 400 naming the field, and another project\'s or an unknown config with a 404', async function () {
    const bad = await api('POST', `/api/alerts/config/by-id/${config.id}/enable`, { held: 'later' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.deepEqual(bad.body.error.details.issues.map((i: { path: string }) => i.path), ['held']);
    const badSave = await api('POST', '/api/alerts/config', { config: { workflowId, name: 'x', conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}/x` } }, held: 'keep' });
    assert.equal(badSave.status, 400);
    assert.deepEqual(badSave.body.error.details.issues.map((i: { path: string }) => i.path), ['held']);
    const badQuery = await api('GET', `/api/alerts/config/by-id/${config.id}/held?limit=0`);
    assert.equal(badQuery.status, 400);
    assert.match(badQuery.body.error.message, /limit/);
    for (const [method, path] of [['GET', `/api/alerts/config/by-id/${config.id}/held`], ['POST', `/api/alerts/config/by-id/${config.id}/enable`], ['GET', '/api/alerts/config/by-id/cfg_nope/held']]) {
      // the default project's token does not see this project's config
      const res = await stack.api(method, path, method === 'POST' ? { held: 'discard' } : undefined, path.includes('cfg_nope') ? token : stack.token);
      assert.equal(res.status, 404, `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
  });

  it('counts two failures that end at the same moment once each, and warns once', async function () {
    const wf = `wf_health_pair_${uid()}`;
    const path = `/pair-${uid()}`;
    receiver.on(path, () => ({ status: 503 }));
    const pair = await createConfig(wf, path);
    await putSettings({ warnAfterFailures: 2, disableAfterSeconds: 3600 });
    const answer = await postEvents(failedEvent(wf), failedEvent(wf));
    assert.equal(answer.deliveries.length, 2);
    await Promise.all(answer.deliveries.map((d) => waitForStatus(d.deliveryId, 'failed')));
    await waitForOperator('delivery.exhausted', pair.id, 2);
    await waitForOperator('config.failing', pair.id);
    const health = (await getConfig(wf, pair.id)).health;
    assert.equal(health.consecutiveFailures, 2);
    assert.ok(health.warnedAt);
    const listed = await api('GET', '/api/operator/alerts?limit=100');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    const failing = listed.body.alerts.filter((a: { type: string; event: OperatorAlert }) => a.type === 'config.failing' && a.event.data.configId === pair.id);
    assert.equal(failing.length, 1, 'config.failing raised once');
    assert.equal(operatorAlerts('config.failing', pair.id).length, 1);
  });

  // ---- a step that runs again, and a re-enable that comes in between (faults injected, no timing luck) ----

  /** The service's own deps (the API's: same store, keyring, Temporal client and operations as the worker). */
  const serviceDeps = () => stack.service.apiDeps!;

  /** The same store, with `fault` run before each statement (inside transactions too); it may throw to cut a step off. */
  function faultyDb(db: Db, fault: (sql: string) => Promise<void> | void): Db {
    const wrap = (q: Queryable): Queryable => ({
      query: async <T,>(sql: string, params?: unknown[]) => {
        await fault(sql);
        return q.query<T>(sql, params);
      },
      exec: (sql: string) => q.exec(sql),
    });
    return { ...db, ...wrap(db), kind: db.kind, transaction: (fn) => db.transaction((tx) => fn(wrap(tx))), session: (fn) => db.session(fn), close: () => db.close() };
  }

  /** Fails the first statement matching `pattern` (a worker cut off right there); later ones run. */
  const failOnce = (pattern: RegExp) => {
    let failed = false;
    return (sql: string) => {
      if (!failed && pattern.test(sql)) {
        failed = true;
        throw new Error(`cut off by the test before: ${sql.slice(0, 40)}`);
      }
    };
  };

  /** Temporal as seen by `deps`, except that starting an AlertDelivery fails as when Temporal is unreachable. */
  function withoutAlertStarts(deps: ServiceDeps): ServiceDeps {
    const client = deps.temporal.client;
    const workflow = new Proxy(client.workflow, {
      get(target, key) {
        if (key === 'start') {
          return (type: string, options: unknown) =>
            type === 'AlertDelivery' ? Promise.reject(new Error('14 UNAVAILABLE: connection refused (test)')) : (target.start as (t: string, o: unknown) => Promise<unknown>)(type, options);
        }
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const broken = new Proxy(client, {
      get(target, key) {
        if (key === 'workflow') return workflow;
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { ...deps, temporal: { ...deps.temporal, client: broken } };
  }

  /** Temporal unreachable for everything (operator alerts too). */
  function withoutTemporal(deps: ServiceDeps): ServiceDeps {
    const broken = { withDeadline: () => Promise.reject(new Error('14 UNAVAILABLE: connection refused (test)')) } as unknown as ServiceDeps['temporal']['client'];
    return { ...deps, temporal: { ...deps.temporal, client: broken } };
  }

  const activitiesOf = (deps: ServiceDeps) => deliveryActivities(deps, createEgressDispatcher(deps.egress));

  async function healthOf(configId: string): Promise<{ enabled: boolean; disabledReason: string | null; health: { consecutiveFailures: number; failingSince: string | null; warnedAt: string | null; heldCount: number } }> {
    return getStoredConfig(serviceDeps().db, serviceDeps().keyring, project, configId);
  }

  const executionEvent = (wf: string): ExecutionEvent => ({ ...failedEvent(wf), type: 'run.failed', occurredAt: new Date().toISOString() });

  /** One delivery's input, as its workflow has it. */
  const inputFor = (configId: string, wf: string, event = executionEvent(wf)) => ({
    deliveryId: `dlv-test-${uid()}`, projectId: project, configId, condition: 'failure' as const, event,
  });

  /** The service disables the config as after a streak of failures (a day long), with its alerts held. */
  async function disableForFailing(configId: string, failures = 10): Promise<void> {
    await serviceDeps().db.query(
      `UPDATE alert_configs SET enabled = false, disabled_reason = 'failing since 2026-12-01T00:00:00Z: ${failures} deliveries failed in a row and none was delivered for 2 s',
         disabled_at = now(), consecutive_failures = $2, failing_since = now() - interval '1 day', warned_at = now() - interval '1 day', last_failure_at = now()
       WHERE id = $1`,
      [configId, failures],
    );
  }

  const listedOperatorAlerts = async (type: string, deliveryId: string) => {
    const listed = await api('GET', '/api/operator/alerts?limit=100');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    return listed.body.alerts.filter((a: { type: string; event: OperatorAlert }) => a.type === type && a.event.data.deliveryId === deliveryId);
  };

  it('counts a delivery once when finishDelivery runs again (a retried local activity), and raises delivery.exhausted on the run that could', async function () {
    await putSettings({ warnAfterFailures: 5, disableAfterSeconds: 3600 });
    const wf = `wf_health_again_${uid()}`;
    const { id: configId } = await createConfig(wf, `/again-${uid()}`);
    const input = inputFor(configId, wf);
    // the delivery in progress, as its first attempt left it
    await startFirstAttempt(serviceDeps().db, serviceDeps().keyring, { ...input, workflowId: wf, runId: input.event.runId, eventId: input.event.id }, input.event, null);
    const end = { status: 'failed' as const, httpStatus: 500, error: 'HTTP 500; giving up after 3 attempts' };
    // the first run counts, but cannot raise anything (Temporal unreachable), and is cut off: the activity runs again
    await activitiesOf(withoutTemporal(serviceDeps())).finishDelivery(input, end);
    await activitiesOf(serviceDeps()).finishDelivery(input, end);
    assert.equal((await healthOf(configId)).health.consecutiveFailures, 1, 'one delivery, one failure');
    const [exhausted] = await waitForOperator('delivery.exhausted', configId);
    assert.equal(exhausted.id, `delivery.exhausted:${input.deliveryId}`);
    // a third run (the workflow task replayed) sends nothing new
    await activitiesOf(serviceDeps()).finishDelivery(input, end);
    assert.equal((await healthOf(configId)).health.consecutiveFailures, 1);
    assert.equal((await listedOperatorAlerts('delivery.exhausted', input.deliveryId)).length, 1);
  });

  it('counts a failure whose error text begins with "held:" (held is the failure type, not a prefix)', async function () {
    const wf = `wf_health_prefix_${uid()}`;
    const { id: configId } = await createConfig(wf, `/prefix-${uid()}`);
    const input = inputFor(configId, wf);
    await startFirstAttempt(serviceDeps().db, serviceDeps().keyring, { ...input, workflowId: wf, runId: input.event.runId, eventId: input.event.id }, input.event, null);
    await activitiesOf(serviceDeps()).finishDelivery(input, { status: 'failed', httpStatus: 422, error: 'held: the receiver answered 422' });
    assert.equal((await healthOf(configId)).health.consecutiveFailures, 1);
  });

  it('counts a first attempt cut off after its log row once, raises delivery.exhausted, and does not POST again', async function () {
    await putSettings({ warnAfterFailures: 5, disableAfterSeconds: 3600 });
    const wf = `wf_health_cut_${uid()}`;
    const path = `/cut-${uid()}`;
    receiver.on(path, () => ({ status: 500 }));
    const { id: configId } = await createConfig(wf, path);
    const input = inputFor(configId, wf);
    // the attempt is POSTed and logged; the worker is cut off where the failure is counted
    const cut = activitiesOf({ ...serviceDeps(), db: faultyDb(serviceDeps().db, failOnce(/consecutive_failures \+ 1/)) });
    await assert.rejects(cut.sendFirstAttempt(input, Date.now()), /cut off by the test/);
    assert.equal(receiver.at(path).length, 1);
    // the local activity runs again
    const again = await activitiesOf(serviceDeps()).sendFirstAttempt(input, Date.now());
    assert.deepEqual([again.kind, 'status' in again ? again.status : null], ['finished', 'failed']);
    assert.equal(receiver.at(path).length, 1, 'not POSTed again');
    const delivery = await api('GET', `/api/alerts/deliveries/${input.deliveryId}`);
    assert.equal(delivery.body.status, 'failed');
    assert.equal(delivery.body.attempts.length, 1);
    assert.equal((await healthOf(configId)).health.consecutiveFailures, 1, 'counted once');
    const [exhausted] = await waitForOperator('delivery.exhausted', configId);
    assert.equal(exhausted.data.deliveryId, input.deliveryId);
  });

  it('sends a first attempt whose config was re-enabled between its read and its hold (neither lost nor held)', async function () {
    const wf = `wf_health_race_${uid()}`;
    const path = `/race-${uid()}`;
    receiver.on(path, () => ({ status: 200 }));
    const { id: configId } = await createConfig(wf, path);
    await disableForFailing(configId);
    const input = inputFor(configId, wf);
    // the config is re-enabled right after the step read it as disabled
    let reads = 0;
    const db = faultyDb(serviceDeps().db, async () => undefined);
    const racing: Db = {
      ...db,
      query: async <T,>(sql: string, params?: unknown[]) => {
        const rows = await db.query<T>(sql, params);
        if (/FROM alert_configs WHERE project_id = \$1 AND id = \$2$/.test(sql.trim()) && ++reads === 1) {
          const res = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, {});
          assert.equal(res.status, 200, JSON.stringify(res.body));
        }
        return rows;
      },
    };
    const result = await activitiesOf({ ...serviceDeps(), db: racing }).sendFirstAttempt(input, Date.now());
    assert.equal(reads >= 1, true);
    assert.deepEqual([result.kind, 'status' in result ? result.status : null], ['finished', 'delivered']);
    assert.equal(receiver.at(path).length, 1);
    assert.equal((await healthOf(configId)).health.heldCount, 0);
  });

  it('does not send a held alert twice when its hold was cut off and a re-enable with send came before the retry', async function () {
    const wf = `wf_health_twice_${uid()}`;
    const path = `/twice-${uid()}`;
    receiver.on(path, () => ({ status: 200 }));
    const { id: configId } = await createConfig(wf, path);
    await disableForFailing(configId);
    const input = inputFor(configId, wf);
    // the step holds the alert and is cut off before its attempt row is written
    const cut = activitiesOf({ ...serviceDeps(), db: faultyDb(serviceDeps().db, failOnce(/INSERT INTO alert_logs/)) });
    await assert.rejects(cut.sendFirstAttempt(input, Date.now()), /cut off by the test/);
    // re-enabled with send before the step runs again
    const enable = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, { held: 'send' });
    assert.equal(enable.status, 200, JSON.stringify(enable.body));
    await activitiesOf(serviceDeps()).sendFirstAttempt(input, Date.now());
    const received = receiver.at(path).filter((r) => eventIdOf(r) === input.event.id);
    assert.equal(received.length, 1, `sent once (webhook-ids: ${received.map((r) => r.headers['webhook-id']).join(', ')})`);
  });

  it('does not send a retried alert twice when its hold was cut off and a re-enable with send came before the retry', async function () {
    const wf = `wf_health_retried_twice_${uid()}`;
    const path = `/retried-twice-${uid()}`;
    receiver.on(path, () => ({ status: 200 }));
    const { id: configId } = await createConfig(wf, path);
    const input = inputFor(configId, wf);
    const ref = { ...input, workflowId: wf, runId: input.event.runId, eventId: input.event.id };
    // the first attempt was made (the delivery in progress); the service disabled the config since
    await startFirstAttempt(serviceDeps().db, serviceDeps().keyring, ref, input.event, null);
    await disableForFailing(configId);
    const request = {
      ref, url: `${receiver.url}${path}`, headers: {}, body: JSON.stringify({ eventId: input.event.id, condition: 'failure' }), timeoutMs: 5_000,
      retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 1, maxIntervalMs: 100, maxDurationMs: 60_000 }, attemptOffset: 1, firstAttemptAtMs: Date.now(),
    };
    // the retried attempt holds the alert and is cut off before its attempt row is written (the statement
    // that begins with the insert: the attempt's count, a statement of its own, inserts rows too)
    const statements: string[] = [];
    const cutAtRow = failOnce(/^\s*INSERT INTO alert_logs/);
    const cut = activitiesOf({
      ...serviceDeps(),
      db: faultyDb(serviceDeps().db, (sql) => {
        statements.push(sql);
        return cutAtRow(sql);
      }),
    });
    await assert.rejects(new MockActivityEnvironment().run(cut.deliverWebhook, request), /cut off by the test/);
    assert.ok(statements.some((sql) => /INSERT INTO alert_held/.test(sql)), 'cut off after it held the alert, in the same transaction');
    const enable = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, { held: 'send' });
    assert.equal(enable.status, 200, JSON.stringify(enable.body));
    // Temporal retries the activity
    await new MockActivityEnvironment({ attempt: 2 }).run(activitiesOf(serviceDeps()).deliverWebhook, request).catch((err: Error) => err);
    const received = receiver.at(path).filter((r) => eventIdOf(r) === input.event.id);
    assert.equal(received.length, 1, `sent once (webhook-ids: ${received.map((r) => r.headers['webhook-id']).join(', ')})`);
  });

  /** The first attempt, made for real (its receiver answers a retryable status): what its workflow then passes to deliverWebhook. */
  async function retriedRequest(configId: string, wf: string) {
    const input = inputFor(configId, wf);
    const first = await activitiesOf(serviceDeps()).sendFirstAttempt(input, Date.now());
    assert.ok(first.kind === 'retry', JSON.stringify(first));
    return { input, request: { ...first.request, attemptOffset: first.attempt, firstAttemptAtMs: first.firstAttemptAtMs } };
  }

  /** A run of deliverWebhook as Temporal's `attempt`-th try of the activity; its failure answered, not thrown. */
  const runDeliverWebhook = (attempt: number, request: Awaited<ReturnType<typeof retriedRequest>>['request']) =>
    new MockActivityEnvironment({ attempt }).run(activitiesOf(serviceDeps()).deliverWebhook, request).catch((err: ApplicationFailure) => err);

  const listedForConfig = async (type: string, configId: string): Promise<{ alertId: string; event: OperatorAlert }[]> => {
    const listed = await api('GET', '/api/operator/alerts?limit=100');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    return listed.body.alerts.filter((a: { type: string; event: OperatorAlert }) => a.type === type && a.event.data.configId === configId);
  };

  it('ends a retried attempt cut off after its delivered log row from that row, without POSTing it again', async function () {
    const wf = `wf_health_logged_${uid()}`;
    const path = `/logged-${uid()}`;
    receiver.on(path, (n) => ({ status: n === 1 ? 503 : 200 }));
    const { id: configId } = await createConfig(wf, path, TWO_ATTEMPTS);
    const { input, request } = await retriedRequest(configId, wf);
    // the second attempt is delivered and logged; the worker dies before Temporal hears that the activity completed
    assert.deepEqual(await runDeliverWebhook(1, request), { httpStatus: 200, attempt: 2 });
    // Temporal runs the activity again
    const again = await runDeliverWebhook(2, request);
    assert.deepEqual(again, { httpStatus: 200, attempt: 2 });
    assert.equal(receiver.at(path).length, 2, 'the delivered attempt is not POSTed again');
    // and the workflow ends the delivery delivered
    await activitiesOf(serviceDeps()).finishDelivery(input, { status: 'delivered', httpStatus: 200, error: null });
    const delivery = await api('GET', `/api/alerts/deliveries/${input.deliveryId}`);
    assert.equal(delivery.body.status, 'delivered');
    assert.deepEqual(delivery.body.attempts.map((a: { attempt: number; outcome: string; httpStatus: number | null }) => [a.attempt, a.outcome, a.httpStatus]), [[1, 'retrying', 503], [2, 'delivered', 200]]);
  });

  it('fails a retried attempt cut off after its failed log row with the failure that attempt threw, without POSTing it again (its retries ran out; a 410)', async function () {
    for (const last of [503, 410]) {
      const wf = `wf_health_logged_failed_${uid()}`;
      const path = `/logged-failed-${uid()}`;
      receiver.on(path, (n) => ({ status: n === 1 ? 503 : last }));
      const { id: configId } = await createConfig(wf, path, TWO_ATTEMPTS);
      const { input, request } = await retriedRequest(configId, wf);
      // the last attempt fails and is logged; the worker dies before Temporal hears that the activity failed
      const failed = await runDeliverWebhook(1, request);
      assert.ok(failed instanceof ApplicationFailure, `${last}: ${JSON.stringify(failed)}`);
      assert.match(failed.message, last === 503 ? /^HTTP 503; giving up after 2 attempts$/ : /^HTTP 410: receiver is gone; the config was disabled$/);
      const again = await runDeliverWebhook(2, request);
      assert.ok(again instanceof ApplicationFailure, `${last}: ${JSON.stringify(again)}`);
      assert.deepEqual([again.type, again.message, again.nonRetryable], [failed.type, failed.message, true], `${last}: the same failure`);
      assert.equal(receiver.at(path).length, 2, `${last}: the failed attempt is not POSTed again`);
      await activitiesOf(serviceDeps()).finishDelivery(input, { status: 'failed', httpStatus: null, error: again.message });
      const delivery = await api('GET', `/api/alerts/deliveries/${input.deliveryId}`);
      assert.deepEqual([delivery.body.status, delivery.body.error], ['failed', failed.message]);
      assert.deepEqual(delivery.body.attempts.map((a: { attempt: number; outcome: string; httpStatus: number | null }) => [a.attempt, a.outcome, a.httpStatus]), [[1, 'retrying', 503], [2, 'failed', last]]);
      assert.equal((await healthOf(configId)).health.heldCount, 0, `${last}: failed, not held`);
    }
  });

  it('holds a first attempt whose config is re-enabled and disabled again between each read and its hold, however often (neither refused nor sent)', async function () {
    const wf = `wf_health_flap_${uid()}`;
    const path = `/flap-${uid()}`;
    receiver.on(path, () => ({ status: 200 }));
    const { id: configId } = await createConfig(wf, path);
    await disableForFailing(configId);
    const input = inputFor(configId, wf);
    // more races than the step once allowed itself passes for (3)
    const RACES = 5;
    let reads = 0;
    const db = faultyDb(serviceDeps().db, async () => undefined);
    const flapping: Db = {
      ...db,
      query: async <T,>(sql: string, params?: unknown[]) => {
        const configRead = /^SELECT \*,[\s\S]* FROM alert_configs WHERE project_id = \$1 AND id = \$2$/.test(sql.trim());
        if (configRead) reads++;
        // disabled by the service again after the re-enable that beat the last hold
        if (configRead && reads > 1 && reads <= RACES + 1) await disableForFailing(configId);
        const rows = await db.query<T>(sql, params);
        // re-enabled right after the step read it as disabled
        if (configRead && reads <= RACES) await serviceDeps().db.transaction((tx) => reenableConfig(tx, project, configId));
        return rows;
      },
    };
    const result = await activitiesOf({ ...serviceDeps(), db: flapping }).sendFirstAttempt(input, Date.now());
    assert.equal(reads, RACES + 1);
    assert.equal(result.kind, 'finished');
    assert.match('error' in result ? String(result.error) : '', /^held: the alert config is disabled by the service/);
    assert.equal((await healthOf(configId)).health.heldCount, 1);
    assert.equal(receiver.at(path).length, 0);
    assert.deepEqual(await listedOperatorAlerts('delivery.exhausted', input.deliveryId), [], 'held, not exhausted');
  });

  it('raises config.disabled when a delivery is held by a config whose 410 disable was cut off before its operator alert: once, however many are held', async function () {
    const wf = `wf_health_gone_cut_${uid()}`;
    const path = `/gone-cut-${uid()}`;
    receiver.on(path, (n) => ({ status: n === 1 ? 503 : 200 }));
    const { id: configId } = await createConfig(wf, path, TWO_ATTEMPTS);
    // a delivery whose first attempt came before the disable; its retry comes after it
    const { request } = await retriedRequest(configId, wf);
    // the 410's disable commits, and the worker dies before it raises config.disabled
    const disabled = await disableConfig(serviceDeps().db, project, configId, `receiver answered 410 Gone at ${new Date().toISOString()} (delivery dlv-gone-${uid()})`);
    assert.ok(disabled);
    assert.deepEqual(await listedForConfig('config.disabled', configId), []);
    const expectedId = `config.disabled:${configId}:${Date.parse(disabled.disabledAt)}`;

    const first = await activitiesOf(serviceDeps()).sendFirstAttempt(inputFor(configId, wf), Date.now());
    assert.match('error' in first ? String(first.error) : '', /^held:/);
    const raised = await listedForConfig('config.disabled', configId);
    assert.deepEqual(raised.map((a) => a.event.id), [expectedId]);
    assert.deepEqual([raised[0].event.data.cause, raised[0].event.data.reason], ['gone', (await healthOf(configId)).disabledReason]);
    // the retried delivery is held too: nothing more is raised
    const retried = await runDeliverWebhook(1, request);
    assert.ok(retried instanceof ApplicationFailure && retried.type === 'AlertHeld', JSON.stringify(retried));
    assert.deepEqual((await listedForConfig('config.disabled', configId)).map((a) => a.alertId), raised.map((a) => a.alertId));

    const [alert] = await waitForOperator('config.disabled', configId);
    assert.equal(alert.id, expectedId);
    for (const { alertId } of raised) await stack.service.apiDeps!.temporal.client.workflow.getHandle(alertId).result();
    assert.equal(operatorAlerts('config.disabled', configId).length, 1, 'received once');
    assert.equal(receiver.at(path).length, 1, 'only the first attempt was POSTed');
  });

  it('raises config.disabled when a retried attempt is held by a config disabled for failing whose operator alert was cut off', async function () {
    const wf = `wf_health_failing_cut_${uid()}`;
    const path = `/failing-cut-${uid()}`;
    receiver.on(path, () => ({ status: 503 }));
    const { id: configId } = await createConfig(wf, path, TWO_ATTEMPTS);
    const { request } = await retriedRequest(configId, wf);
    // disabled for failing (the disable committed, config.disabled never raised)
    await disableForFailing(configId);
    const retried = await runDeliverWebhook(1, request);
    assert.ok(retried instanceof ApplicationFailure && retried.type === 'AlertHeld', JSON.stringify(retried));
    const raised = await listedForConfig('config.disabled', configId);
    assert.equal(raised.length, 1, JSON.stringify(raised));
    const shown = await healthOf(configId);
    assert.deepEqual([raised[0].event.data.cause, raised[0].event.data.reason], ['failing', shown.disabledReason]);
    assert.equal(raised[0].event.id.startsWith(`config.disabled:${configId}:`), true);
    assert.equal(receiver.at(path).length, 1, 'only the first attempt was POSTed');
  });

  it('re-enabling through POST /api/alerts/config starts the health afresh: a held alert that fails again does not disable the config at once', async function () {
    await putSettings({ warnAfterFailures: 2, disableAfterSeconds: 2 });
    const wf = `wf_health_save_${uid()}`;
    const path = `/save-${uid()}`;
    receiver.on(path, () => ({ status: 500 }));
    const { id: configId } = await createConfig(wf, path);
    await disableForFailing(configId);
    const event = executionEvent(wf);
    assert.equal(await holdAlert(serviceDeps().db, serviceDeps().keyring, { projectId: project, configId, condition: 'failure' }, event), 'held');
    const { health: _h, createdAt: _c, updatedAt: _u, disabledReason: _d, ...shown } = await getConfig(wf, configId);
    const save = await api('POST', '/api/alerts/config', { config: { ...shown, enabled: true }, held: 'send' });
    assert.equal(save.status, 200, JSON.stringify(save.body));
    assert.equal(save.body.config.disabledReason, null);
    // the held alert's delivery failed and was counted (delivery.exhausted is raised after the count)
    await eventually('the held alert to be exhausted', async () => operatorAlerts('delivery.exhausted', configId).find((a) => a.data.runId === event.runId));
    const after = await healthOf(configId);
    assert.deepEqual([after.enabled, after.disabledReason, after.health.consecutiveFailures], [true, null, 1]);
  });

  it('raises config.reenabled when sending the held alerts is cut off (503), and a repeated request sends what is left', async function () {
    const wf = `wf_health_503_${uid()}`;
    const path = `/cut503-${uid()}`;
    receiver.on(path, () => ({ status: 200 }));
    const { id: configId } = await createConfig(wf, path);
    await disableForFailing(configId);
    const event = executionEvent(wf);
    assert.equal(await holdAlert(serviceDeps().db, serviceDeps().keyring, { projectId: project, configId, condition: 'failure' }, event), 'held');
    await assert.rejects(enableConfig(withoutAlertStarts(serviceDeps()), project, configId, 'send'), (err: Error & { code?: string }) => err.code === 'unavailable');
    const after = await healthOf(configId);
    assert.deepEqual([after.enabled, after.disabledReason, after.health.consecutiveFailures, after.health.heldCount], [true, null, 0, 1]);
    const [reenabled] = await waitForOperator('config.reenabled', configId);
    assert.deepEqual(reenabled.data.held, { action: 'send', count: 1 });
    // the same request again: the config is enabled already, the held alert is sent
    const again = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, { held: 'send' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.held.count, 1);
    const [sent] = await receiver.waitFor(path, 1);
    assert.equal(eventIdOf(sent), event.id);
  });

  it('reads a chunked enable body (no Content-Length): {"held":"discard"} is a choice, not a 409', async function () {
    const wf = `wf_health_chunked_${uid()}`;
    const { id: configId } = await createConfig(wf, `/chunked-${uid()}`);
    await disableForFailing(configId);
    const event = executionEvent(wf);
    assert.equal(await holdAlert(serviceDeps().db, serviceDeps().keyring, { projectId: project, configId, condition: 'failure' }, event), 'held');
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"held":'));
        controller.enqueue(new TextEncoder().encode('"discard"}'));
        controller.close();
      },
    });
    const res = await fetch(`${stack.apiUrl}/api/alerts/config/by-id/${configId}/enable`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body, duplex: 'half',
    } as RequestInit);
    const answer = (await res.json()) as { held: unknown };
    assert.equal(res.status, 200, JSON.stringify(answer));
    assert.deepEqual(answer.held, { action: 'discard', count: 1, deliveries: [] });
  });

  it("leaves a held alert's row out of the config's failed deliveries in the insight stats", async function () {
    const wf = `wf_health_stats_${uid()}`;
    const { id: configId } = await createConfig(wf, `/stats-${uid()}`);
    await disableForFailing(configId);
    const input = inputFor(configId, wf);
    const result = await activitiesOf(serviceDeps()).sendFirstAttempt(input, Date.now());
    assert.deepEqual([result.kind, 'status' in result ? result.status : null], ['finished', 'failed']);
    assert.equal((await healthOf(configId)).health.heldCount, 1, 'held');
    const stats = await configStats(serviceDeps().db, project, configId, 24);
    assert.deepEqual([stats.totals.failed, stats.totals.attempts], [0, 0]);
  });
});

/**
 * The store's side of the same rules, on both stores the service runs on; on PostgreSQL the
 * concurrent calls really run at once, each on its own pooled connection.
 */
for (const kind of STORE_KINDS) {
  describe(`endpoint health in the store (${kind === 'pglite' ? 'PGlite' : 'PostgreSQL'})`, () => {
    const store = useStore(kind);
    const keyring = parseKeyring(newKeySpec('k1'));
    const health = { warnAfterFailures: 3, disableAfterSeconds: 60 };

    async function newConfig(projectId: string): Promise<string> {
      const input = alertConfigInputSchema.parse({ workflowId: 'wf', name: 'n', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/x' } });
      return (await saveConfig(store.db, keyring, projectId, input)).config.id;
    }

    it('counts twenty failures that end at once twenty times, warns once and disables once (one audit entry)', async () => {
      const projectId = `prj_${uid()}`;
      const configId = await newConfig(projectId);
      // a streak that began two minutes ago: the failure that reaches warnAfterFailures also disables
      await store.db.query(`UPDATE alert_configs SET failing_since = now() - interval '2 minutes' WHERE id = $1`, [configId]);
      // each in its own transaction, as a delivery's end counts it (dispatch/endpoint-health.ts)
      const results = await Promise.all(Array.from({ length: 20 }, () => store.db.transaction((tx) => countFailure(tx, health, projectId, configId))));
      assert.deepEqual(results.map((r) => r!.consecutiveFailures).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
      const warned = results.filter((r) => r!.warned);
      const disabled = results.filter((r) => r!.disabled);
      assert.equal(warned.length, 1);
      assert.equal(warned[0]!.consecutiveFailures, 3);
      assert.equal(disabled.length, 1);
      assert.equal(disabled[0]!.consecutiveFailures, 3);
      assert.match(disabled[0]!.disabled!.reason, /: 3 deliveries failed in a row and none was delivered for 60 s$/);
      const config = await getStoredConfig(store.db, keyring, projectId, configId);
      assert.equal(config.enabled, false);
      assert.equal(config.health.consecutiveFailures, 20);
      const audit = await store.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM alert_audit_log WHERE config_id = $1 AND action = 'config.disabled'`, [configId]);
      assert.equal(audit[0].n, 1);
    });

    it('uses the project\'s own thresholds over the deployment\'s, field by field; 0 never disables', async () => {
      const projectId = `prj_${uid()}`;
      const configId = await newConfig(projectId);
      await store.db.query(`INSERT INTO project_settings (project_id, health) VALUES ($1, '{"disableAfterSeconds": 0}'::jsonb)`, [projectId]);
      await store.db.query(`UPDATE alert_configs SET failing_since = now() - interval '30 days' WHERE id = $1`, [configId]);
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await store.db.transaction(async (tx) => countFailure(tx, await projectHealthSettings(tx, projectId, health), projectId, configId)));
      assert.deepEqual(results.map((r) => [r!.warned, r!.disabled !== null, r!.warnAfterFailures, r!.disableAfterSeconds]), [
        [false, false, 3, 0], [false, false, 3, 0], [true, false, 3, 0], [false, false, 3, 0],
      ]);
      await countSuccess(store.db, projectId, configId);
      const after = (await getStoredConfig(store.db, keyring, projectId, configId)).health;
      assert.equal(after.consecutiveFailures, 0);
      assert.equal(after.failingSince, null);
      assert.equal(after.warnedAt, null);
      assert.ok(after.lastSuccessAt && after.lastFailureAt);
    });

    it("writes a healthy config's row at most once a minute for its delivered alerts, and at once when it ends a streak", async () => {
      const projectId = `prj_${uid()}`;
      const configId = await newConfig(projectId);
      const version = async () => (await store.db.query<{ v: string }>('SELECT xmin::text AS v FROM alert_configs WHERE id = $1', [configId]))[0].v;
      await countSuccess(store.db, projectId, configId);
      const first = await version();
      assert.ok((await getStoredConfig(store.db, keyring, projectId, configId)).health.lastSuccessAt, 'the first success is recorded');
      await countSuccess(store.db, projectId, configId);
      assert.equal(await version(), first, 'a second success within the minute does not rewrite the row');
      await store.db.query(`UPDATE alert_configs SET last_success_at = now() - interval '2 minutes' WHERE id = $1`, [configId]);
      const aged = await version();
      await countSuccess(store.db, projectId, configId);
      assert.notEqual(await version(), aged, 'a success after the minute refreshes last_success_at');
      await store.db.transaction(async (tx) => countFailure(tx, await projectHealthSettings(tx, projectId, health), projectId, configId));
      await countSuccess(store.db, projectId, configId);
      assert.equal((await getStoredConfig(store.db, keyring, projectId, configId)).health.consecutiveFailures, 0, 'a success right after a failure ends the streak');
    });

    it('holds an alert only while the service has the config disabled, once per event and condition', async () => {
      const projectId = `prj_${uid()}`;
      const configId = await newConfig(projectId);
      const event = { id: `evt_${uid()}`, type: 'run.failed' as const, workflowId: 'wf', runId: 'run_1', occurredAt: new Date().toISOString() };
      const ref = { projectId, configId, condition: 'failure' as const };
      assert.equal(await holdAlert(store.db, keyring, ref, event), 'not_disabled', 'an enabled config holds nothing');
      await store.db.query(`UPDATE alert_configs SET enabled = false WHERE id = $1`, [configId]);
      assert.equal(await holdAlert(store.db, keyring, ref, event), 'not_disabled', 'a config the user turned off holds nothing');
      await store.db.query(`UPDATE alert_configs SET disabled_reason = 'receiver answered 410 Gone' WHERE id = $1`, [configId]);
      const held = await Promise.all([holdAlert(store.db, keyring, ref, event), holdAlert(store.db, keyring, ref, event)]);
      assert.deepEqual(held.sort(), ['already_held', 'held']);
      assert.equal(await countHeld(store.db, projectId, configId), 1);
      await store.db.transaction(async (tx) => {
        assert.equal((await lockForReenable(tx, projectId, configId))!.disabledReason, 'receiver answered 410 Gone');
        await reenableConfig(tx, projectId, configId);
      });
      assert.equal(await holdAlert(store.db, keyring, ref, { ...event, id: `evt_${uid()}` }), 'not_disabled', 're-enabled: sent, not held');
    });
  });
}
