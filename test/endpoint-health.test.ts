import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { verifyAlert } from '../lib/verify';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * Endpoint health, end to end on the shared embedded stack (real Temporal dev server, PGlite, worker,
 * API) with real HTTP receivers on 127.0.0.1: a failing receiver earns its config config.failing,
 * then a disable; alerts are held while it is disabled, and re-enabling sends them (in order, signed
 * afresh) or discards them. The project's thresholds and operator webhook come from
 * PUT /api/project/settings; the operator alerts are verified with the operator secret.
 * docs/endpoint-health.md.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** one attempt per delivery: each event is one failed (or delivered) delivery */
const ONE_ATTEMPT = { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 };

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
  async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const value = await probe();
      if (value) return value;
      last = value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
      await sleep(100);
    }
  }

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

  async function createConfig(workflowId: string, path = alertPath): Promise<{ id: string; secret: string }> {
    const res = await api('POST', '/api/alerts/config', {
      config: {
        workflowId,
        name: `health ${workflowId}`,
        conditions: [{ type: 'failure' }],
        webhook: { url: `${receiver.url}${path}`, headers: {}, timeoutMs: 5_000 },
        payload: { template: { eventId: '{{ event.id }}', condition: '{{ condition }}' } },
        retry: ONE_ATTEMPT,
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.config.id, secret: res.body.secret };
  }

  const failedEvent = (workflowId: string, id = `evt_${uid()}`) => ({ id, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'boom' } });

  async function postEvents(...events: unknown[]): Promise<{ deliveries: { deliveryId: string; configId: string; duplicate: boolean }[]; held: { configId: string; condition: string }[] }> {
    const res = await api('POST', '/api/events', events.length === 1 ? events[0] : { events });
    assert.equal(res.status, 202, JSON.stringify(res.body));
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
});
