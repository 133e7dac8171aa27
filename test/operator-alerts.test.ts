import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { raiseOperatorAlert } from '../dispatch/operator-alert';
import { newKeySpec, newWebhookSecret } from '../lib/crypto';
import type { OperatorEvent } from '../lib/operator-events';
import { verifyAlert } from '../lib/verify';
import { startService, type RunningService } from '../runtime/boot';
import type { ServiceDeps } from '../runtime/deps';
import { heldError } from '../store/held';
import { getOperatorAlert, listOperatorAlerts, recordOperatorAlert, reopenUnstartedOperatorAlert, updateOperatorAlert } from '../store/operator-alerts';
import { attemptsOverWindows } from '../runtime/failure-rate-monitor';
import { failureRateSettingsByProject, getProjectSettings, projectHealthSettings, projectOperatorWebhook, saveProjectSettings } from '../store/project-settings';
import { createToken } from '../store/tokens';
import { freePort } from '../runtime/host';
import { Receiver, type Received, type Script } from './support/receiver';
import { useStack } from './support/stack';
import { sharedPostgres, STORE_KINDS, useStore } from './support/stores';
import { defaultOperations } from '../runtime/deps';
import { parseKeyring } from '../lib/crypto';
import { loadEnv } from '../lib/env';
import { tcpForward, type TcpForward } from './support/tcp-forward';

/**
 * Operator alerts end to end: a service of its own (API, worker and the operator monitors, as boot
 * starts them) with a deployment operator webhook (ALERTS_OPERATOR_WEBHOOK_URL), on the shared
 * Temporal dev server reached through a TCP forwarder the test can cut, and on a PostgreSQL database
 * reached through another. Operator webhooks are real HTTP receivers on 127.0.0.1; every alert
 * received is verified with verifyAlert and the secret of its webhook.
 */
const uid = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** how long to keep listening before saying "nothing more arrived" */
const QUIET_MS = 2_000;
const DEGRADED_AFTER_SECONDS = 2;

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('operator alerts (signed, durable, once, never recursive)', function () {
  this.timeout(120_000);
  let receiver: Receiver;
  let service: RunningService;
  let deps: ServiceDeps;
  let temporalForward: TcpForward;
  let storeForward: TcpForward;
  let dataDir: string;
  const deploymentSecret = newWebhookSecret();
  const DEPLOYMENT_PATH = `/deployment-${uid()}`;

  before(async function () {
    this.timeout(240_000);
    const stack = await useStack();
    receiver = await Receiver.start();
    const databaseUrl = new URL(await (await sharedPostgres()).createDatabase());
    storeForward = tcpForward(await freePort(), { host: '127.0.0.1', port: Number(databaseUrl.port) });
    await storeForward.listen();
    databaseUrl.port = String(storeForward.port);
    const temporalPort = Number(stack.service.temporalAddress.split(':').pop());
    temporalForward = tcpForward(await freePort(), { host: '127.0.0.1', port: temporalPort });
    await temporalForward.listen();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-operator-'));
    service = await startService({
      roles: { api: true, worker: true },
      monitors: { failureRateCheckMs: 500, degradedProbeMs: 500 },
      env: {
        ...process.env,
        DATA_DIR: dataDir,
        PORT: '0',
        HOST: '127.0.0.1',
        TEMPORAL_ADDRESS: `127.0.0.1:${temporalForward.port}`,
        TEMPORAL_NAMESPACE: stack.service.env.TEMPORAL_NAMESPACE,
        TEMPORAL_TASK_QUEUE: `operator-alerts-test-${uid()}`,
        TEMPORAL_UI_PUBLIC_URL: '',
        DATABASE_URL: databaseUrl.toString(),
        MESHHOOK_DATABASE_URL: '',
        ALERTS_API_TOKENS: '',
        ALERTS_ENCRYPTION_KEYS: newKeySpec('k1'),
        LOG_LEVEL: 'error',
        ALERTS_EGRESS_ALLOW: '127.0.0.1',
        ALERTS_ALLOW_PRIVATE_NETWORKS: '',
        ALERTS_RATE_LIMIT_PER_MINUTE: '0',
        ALERTS_TLS_CERT_PATH: '',
        ALERTS_TLS_KEY_PATH: '',
        ALERTS_METRICS_PORT: '',
        ALERTS_OPERATOR_WEBHOOK_URL: `${receiver.url}${DEPLOYMENT_PATH}`,
        ALERTS_OPERATOR_WEBHOOK_SECRET: deploymentSecret,
        ALERTS_DEGRADED_AFTER_SECONDS: String(DEGRADED_AFTER_SECONDS),
        NODE_ENV: 'test',
      },
    });
    deps = service.apiDeps!;
  });

  after(async function () {
    this.timeout(60_000);
    await temporalForward?.listen().catch(() => undefined);
    await storeForward?.listen().catch(() => undefined);
    await service?.stop();
    await receiver?.close();
    await temporalForward?.close();
    await storeForward?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  // ------------------------------------------------------------ helpers

  async function api(token: string, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${service.apiUrl}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** a project with its own token and, when given a script, its own operator webhook (its secret generated by the service) */
  async function project(script?: Script): Promise<{ projectId: string; token: string; path: string; secret: string }> {
    const projectId = `prj_op_${uid()}`;
    const token = await createToken(service.db, projectId, 'test');
    const hookPath = `/project-${projectId}`;
    if (!script) return { projectId, token, path: hookPath, secret: '' };
    const url = receiver.on(hookPath, script);
    const put = await api(token, 'PUT', '/api/project/settings', { operatorWebhook: { url } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.match(put.body.operatorSecret, /^whsec_/);
    return { projectId, token, path: hookPath, secret: put.body.operatorSecret };
  }

  /** the requests a path received for one operator event */
  const received = (hookPath: string, eventId: string): Received[] => receiver.at(hookPath).filter((r) => (JSON.parse(r.body) as OperatorEvent).id === eventId);
  const receivedOfType = (hookPath: string, type: string): Received[] => receiver.at(hookPath).filter((r) => (JSON.parse(r.body) as OperatorEvent).type === type);
  const waitForEvent = (hookPath: string, eventId: string, count = 1, timeoutMs = 30_000) =>
    waitUntil(`${count} request(s) for ${eventId} at ${hookPath}`, () => received(hookPath, eventId).length >= count && received(hookPath, eventId), timeoutMs);

  /** verifies a received operator alert with its webhook's secret, as a receiver would; returns the event */
  function verified(request: Received, secret: string): OperatorEvent {
    return verifyAlert<OperatorEvent>(request.body, request.headers, secret);
  }

  const waitForStatus = (alertId: string, status: 'delivered' | 'failed', timeoutMs = 60_000) =>
    waitUntil(`operator alert ${alertId} ${status}`, async () => {
      const row = await getOperatorAlert(service.db, alertId);
      return row?.status === status && row;
    }, timeoutMs);

  /** alerts_operator_alerts_total{type,outcome} as GET /metrics shows it */
  async function operatorAlertsCounted(type: string, outcome: string): Promise<number> {
    const text = await (await fetch(`${service.apiUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('alerts_operator_alerts_total{') && l.includes(`type="${type}"`) && l.includes(`outcome="${outcome}"`));
    assert.ok(line, `alerts_operator_alerts_total{type="${type}",outcome="${outcome}"} is in /metrics`);
    return Number(line.split(' ').pop());
  }

  const exhaustedEvent = (projectId: string, deliveryId = `dlv_${uid()}`): OperatorEvent => ({
    id: `delivery.exhausted:${deliveryId}`,
    type: 'delivery.exhausted',
    projectId,
    occurredAt: new Date().toISOString(),
    data: { deliveryId, configId: 'cfg_x', attempts: 1, error: 'HTTP 500' },
  });

  /** a config of `projectId` whose receiver always answers 500, one attempt per delivery */
  async function failingConfig(token: string, workflowId: string): Promise<string> {
    const url = receiver.on(`/failing-${workflowId}`, () => ({ status: 500 }));
    const saved = await api(token, 'POST', '/api/alerts/config', {
      config: {
        workflowId,
        name: 'always failing',
        enabled: true,
        conditions: [{ type: 'failure' }],
        webhook: { url },
        retry: { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 100, maxDurationMs: 10_000 },
      },
    });
    assert.equal(saved.status, 201, JSON.stringify(saved.body));
    return saved.body.config.id;
  }

  async function failRun(token: string, workflowId: string): Promise<string> {
    const sent = await api(token, 'POST', '/api/events', { id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'boom' } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    return sent.body.deliveries[0].deliveryId;
  }

  // ------------------------------------------------------------ settings

  it('GET/PUT /api/project/settings: effective values, the operator secret answered once, overrides validated, audited', async () => {
    const { projectId, token } = await project();
    const initial = await api(token, 'GET', '/api/project/settings');
    assert.equal(initial.status, 200);
    assert.deepEqual(initial.body, { operatorWebhook: null, health: deps.operations.health, failureRate: deps.operations.failureRate });

    const url = `${receiver.url}/settings-${uid()}`;
    const put = await api(token, 'PUT', '/api/project/settings', { operatorWebhook: { url }, health: { warnAfterFailures: 2 }, failureRate: { threshold: 0.25 } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.match(put.body.operatorSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(put.body.operatorWebhook, { url });
    assert.deepEqual(put.body.health, { ...deps.operations.health, warnAfterFailures: 2 });
    assert.deepEqual(put.body.failureRate, { ...deps.operations.failureRate, threshold: 0.25 });

    // read back without the secret; a second PUT keeps the secret and merges field by field
    const read = await api(token, 'GET', '/api/project/settings');
    assert.equal(read.body.operatorSecret, undefined);
    assert.deepEqual(read.body.operatorWebhook, { url });
    const again = await api(token, 'PUT', '/api/project/settings', { health: { disableAfterSeconds: 60 } });
    assert.equal(again.body.operatorSecret, undefined);
    assert.deepEqual(again.body.health, { warnAfterFailures: 2, disableAfterSeconds: 60 });
    assert.deepEqual(await projectHealthSettings(service.db, projectId, deps.operations.health), { warnAfterFailures: 2, disableAfterSeconds: 60 });

    // bad input: 400 naming the field; nothing stored
    for (const [body, field] of [
      [{ failureRate: { threshold: 1.5 } }, 'failureRate.threshold'],
      [{ health: { warnAfterFailures: 0 } }, 'health.warnAfterFailures'],
      [{ failureRate: { windowSeconds: 5 } }, 'failureRate.windowSeconds'],
      [{ operatorWebhook: { url, secret: 'not-a-secret' } }, 'operatorWebhook.secret'],
      [{ operatorWebhook: { url: 'http://10.1.2.3/hook' } }, 'operatorWebhook.url'],
      [{ extra: true }, 'extra'],
    ] as const) {
      const bad = await api(token, 'PUT', '/api/project/settings', body);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.ok(JSON.stringify(bad.body.error).includes(field), `${JSON.stringify(bad.body.error)} names ${field}`);
    }
    // an operator webhook is sent as it is: a template, another scheme or a URL that does not parse is refused at save, not when an alert is sent
    for (const [bad, why] of [
      [`${receiver.url}/ops/{{ event.id }}`, /^operatorWebhook\.url: the URL must not contain a template/],
      [`${receiver.url}/ops/{% if x %}a{% endif %}`, /^operatorWebhook\.url: the URL must not contain a template/],
      ['ftp://127.0.0.1/hook', /^operatorWebhook\.url: the URL must start with https:\/\/ or http:\/\//],
      ['file:///etc/passwd', /^operatorWebhook\.url: the URL must start with https:\/\/ or http:\/\//],
      ['127.0.0.1/hook', /^operatorWebhook\.url: the URL must start with https:\/\/ or http:\/\//],
      ['http://127.0.0.1:99999/hook', /^operatorWebhook\.url: the URL is not a valid URL/],
    ] as const) {
      const refused = await api(token, 'PUT', '/api/project/settings', { operatorWebhook: { url: bad } });
      assert.equal(refused.status, 400, `${bad}: ${JSON.stringify(refused.body)}`);
      assert.match(refused.body.error.message, why, bad);
      assert.deepEqual(refused.body.error.details.issues.map((i: { path: string }) => i.path), ['operatorWebhook.url']);
    }
    assert.deepEqual((await api(token, 'GET', '/api/project/settings')).body, { operatorWebhook: { url }, health: { warnAfterFailures: 2, disableAfterSeconds: 60 }, failureRate: { ...deps.operations.failureRate, threshold: 0.25 } });

    // null goes back to the deployment's settings and removes the webhook
    const reset = await api(token, 'PUT', '/api/project/settings', { operatorWebhook: null, health: null, failureRate: null });
    assert.deepEqual(reset.body, { operatorWebhook: null, health: deps.operations.health, failureRate: deps.operations.failureRate });

    const audit = await service.db.query<{ action: string; config_id: string | null; changes: { field: string }[] }>(
      `SELECT action, config_id, changes FROM alert_audit_log WHERE project_id = $1 ORDER BY id`,
      [projectId],
    );
    assert.deepEqual(audit.map((a) => a.action), ['project.settings_updated', 'project.settings_updated', 'project.settings_updated']);
    assert.ok(audit.every((a) => a.config_id === null));
    assert.deepEqual(audit[0].changes.map((c) => c.field).sort(), ['failureRate.threshold', 'health.warnAfterFailures', 'operatorWebhook.secret', 'operatorWebhook.url']);
    assert.ok(!JSON.stringify(audit).includes(put.body.operatorSecret), 'the audit log never holds the secret');
  });

  // ------------------------------------------------------------ delivery.exhausted

  it('delivery.exhausted: a delivery that failed for good reaches the deployment webhook and the project webhook, each signed with its own secret', async () => {
    const p = await project(() => ({ status: 200 }));
    const workflowId = `wf_exhausted_${uid()}`;
    const configId = await failingConfig(p.token, workflowId);
    // raised by the delivery's own end (activities/delivery.ts, dispatch/endpoint-health.ts)
    const deliveryId = await failRun(p.token, workflowId);
    const event = { id: `delivery.exhausted:${deliveryId}` };

    const [toDeployment] = await waitForEvent(DEPLOYMENT_PATH, event.id);
    const [toProject] = await waitForEvent(p.path, event.id);
    const a = verified(toDeployment, deploymentSecret);
    const b = verified(toProject, p.secret);
    assert.deepEqual(a, b);
    assert.equal(b.type, 'delivery.exhausted');
    assert.equal(b.projectId, p.projectId);
    assert.equal(b.data.deliveryId, deliveryId);
    assert.equal(b.data.configId, configId);
    assert.equal(b.data.workflowId, workflowId);
    assert.match(String(b.data.error), /HTTP 500/);
    assert.throws(() => verified(toProject, deploymentSecret), /no v1 signature matches/);
    assert.equal(toDeployment.headers['webhook-id'], `op:deployment:delivery_exhausted:${deliveryId}`);
    assert.equal(toProject.headers['webhook-id'], `op:project:delivery_exhausted:${deliveryId}`);
    assert.ok(!toProject.body.includes(receiver.url), 'no webhook URL in the body');

    await waitForStatus(`op:deployment:${event.id}`, 'delivered');
    await waitForStatus(`op:project:${event.id}`, 'delivered');
    await sleep(QUIET_MS);
    assert.equal(received(DEPLOYMENT_PATH, event.id).length, 1);
    assert.equal(received(p.path, event.id).length, 1);

    const listed = await api(p.token, 'GET', '/api/operator/alerts');
    assert.equal(listed.status, 200);
    const rows = listed.body.alerts.filter((r: { event: OperatorEvent }) => r.event.id === event.id);
    assert.deepEqual(rows.map((r: { target: string }) => r.target).sort(), ['deployment', 'project']);
    for (const row of rows) {
      assert.equal(row.status, 'delivered');
      assert.equal(row.attempts, 1);
      // the deployment's webhook is the operator's: its answers are not shown to a project
      assert.equal(row.httpStatus, row.target === 'project' ? 200 : null);
      assert.equal(row.type, 'delivery.exhausted');
      assert.equal(row.projectId, p.projectId);
    }
  });

  it("GET /api/operator/alerts shows a project its alerts to the deployment's webhook without that webhook's answer or error", async () => {
    const p = await project();
    const event = exhaustedEvent(p.projectId);
    const operatorHost = `ops-${uid()}.operator.internal`;
    const toDeployment = { alertId: `op:deployment:${event.id}`, target: 'deployment' as const, event };
    const toProject = { alertId: `op:project:${event.id}`, target: 'project' as const, event };
    for (const alert of [toDeployment, toProject]) await recordOperatorAlert(service.db, alert);
    // as the activity records them: the deployment's error names the operator's host
    await updateOperatorAlert(service.db, toDeployment.alertId, { status: 'failed', attempts: 3, httpStatus: 502, error: `HTTP 502 from https://${operatorHost}/; giving up after 3 attempts` });
    await updateOperatorAlert(service.db, toProject.alertId, { status: 'failed', attempts: 2, httpStatus: 404, error: 'HTTP 404' });

    const listed = await api(p.token, 'GET', '/api/operator/alerts');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    const seen = (target: string) => {
      const row = listed.body.alerts.find((a: { alertId: string }) => a.alertId === `op:${target}:${event.id}`);
      return row && { target: row.target, status: row.status, attempts: row.attempts, httpStatus: row.httpStatus, error: row.error, event: row.event };
    };
    assert.deepEqual(seen('deployment'), { target: 'deployment', status: 'failed', attempts: 3, httpStatus: null, error: null, event });
    assert.deepEqual(seen('project'), { target: 'project', status: 'failed', attempts: 2, httpStatus: 404, error: 'HTTP 404', event });
    assert.ok(!JSON.stringify(listed.body).includes(operatorHost), "the operator's host is not in the answer");
    // the store keeps the operator's record whole
    assert.equal((await getOperatorAlert(service.db, toDeployment.alertId))?.error, `HTTP 502 from https://${operatorHost}/; giving up after 3 attempts`);
  });

  // ------------------------------------------------------------ retries and once

  it('retries an operator webhook that answers 503 and delivers once, the same signed body on each attempt', async () => {
    const p = await project((n) => (n === 1 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 200 }));
    const event = exhaustedEvent(p.projectId);
    await raiseOperatorAlert(deps, event);
    const [first, second] = await waitForEvent(p.path, event.id, 2);
    assert.equal(first.body, second.body);
    assert.equal(first.headers['webhook-id'], second.headers['webhook-id']);
    assert.deepEqual(verified(second, p.secret), event);
    const row = await waitForStatus(`op:project:${event.id}`, 'delivered');
    assert.equal(row.attempts, 2);
    assert.equal(row.httpStatus, 200);
    await sleep(QUIET_MS);
    assert.equal(received(p.path, event.id).length, 2);
  });

  it('sends the same event raised twice (even at once) once to each webhook', async () => {
    const p = await project(() => ({ status: 200 }));
    const event = exhaustedEvent(p.projectId);
    await Promise.all([raiseOperatorAlert(deps, event), raiseOperatorAlert(deps, event)]);
    await raiseOperatorAlert(deps, { ...event, occurredAt: new Date().toISOString() });
    await waitForEvent(p.path, event.id);
    await waitForEvent(DEPLOYMENT_PATH, event.id);
    await sleep(QUIET_MS);
    assert.equal(received(p.path, event.id).length, 1);
    assert.equal(received(DEPLOYMENT_PATH, event.id).length, 1);
  });

  it('never recurses: an operator webhook that always fails ends failed after its retries, and nothing is raised about it', async () => {
    const p = await project(() => ({ status: 500, headers: { 'retry-after': '1' } }));
    const event = exhaustedEvent(p.projectId);
    const deploymentBefore = receiver.at(DEPLOYMENT_PATH).length;
    const failedBefore = await operatorAlertsCounted('delivery.exhausted', 'failed');
    await raiseOperatorAlert(deps, event);
    const row = await waitForStatus(`op:project:${event.id}`, 'failed', 90_000);
    assert.equal(row.attempts, 10);
    assert.equal(row.httpStatus, 500);
    assert.match(row.error ?? '', /HTTP 500; giving up after 10 attempts/);
    assert.equal(received(p.path, event.id).length, 10);
    await sleep(QUIET_MS);
    // the only operator alerts of the project are the event's own two, and the deployment got only the event itself
    const listed = await api(p.token, 'GET', '/api/operator/alerts');
    assert.deepEqual(listed.body.alerts.map((r: { alertId: string }) => r.alertId).sort(), [`op:deployment:${event.id}`, `op:project:${event.id}`]);
    // one page at a time
    const first = await api(p.token, 'GET', '/api/operator/alerts?limit=1');
    assert.equal(first.body.alerts.length, 1);
    assert.ok(first.body.nextCursor);
    const second = await api(p.token, 'GET', `/api/operator/alerts?limit=1&before=${first.body.nextCursor}`);
    assert.equal(second.body.alerts.length, 1);
    assert.equal(second.body.nextCursor, null);
    assert.notEqual(second.body.alerts[0].alertId, first.body.alerts[0].alertId);
    assert.equal((await api(p.token, 'GET', '/api/operator/alerts?limit=0')).status, 400);
    const aboutProject = receiver.at(DEPLOYMENT_PATH).slice(deploymentBefore).map((r) => JSON.parse(r.body) as OperatorEvent).filter((e) => e.projectId === p.projectId);
    assert.deepEqual(aboutProject.map((e) => e.id), [event.id]);
    assert.equal(receiver.at(p.path).length, 10);
    // counted in /metrics, and logged (component operator) rather than raised
    assert.ok((await operatorAlertsCounted('delivery.exhausted', 'failed')) >= failedBefore + 1);
    assert.ok((await operatorAlertsCounted('delivery.exhausted', 'delivered')) >= 1);
  });

  // ------------------------------------------------------------ delivery.failure_rate

  it('delivery.failure_rate: a project above its threshold over its window is alerted once per window', async () => {
    const p = await project(() => ({ status: 200 }));
    const settings = await api(p.token, 'PUT', '/api/project/settings', { failureRate: { windowSeconds: 30, threshold: 0.5, minAttempts: 3 } });
    assert.equal(settings.status, 200);
    const workflowId = `wf_rate_${uid()}`;
    await failingConfig(p.token, workflowId);
    for (let i = 0; i < 3; i++) await failRun(p.token, workflowId);
    const [toProject] = await waitUntil('delivery.failure_rate at the project webhook', () => receivedOfType(p.path, 'delivery.failure_rate').length > 0 && receivedOfType(p.path, 'delivery.failure_rate'));
    const event = verified(toProject, p.secret);
    assert.match(event.id, new RegExp(`^delivery\\.failure_rate:${p.projectId}:\\d+$`));
    assert.equal(Number(event.id.split(':')[2]), Math.floor(Date.parse(event.occurredAt) / 30_000));
    assert.equal(event.projectId, p.projectId);
    assert.equal(event.data.windowSeconds, 30);
    assert.equal(event.data.threshold, 0.5);
    assert.ok((event.data.total as number) >= 3, JSON.stringify(event.data));
    assert.equal(event.data.failed, event.data.total);
    assert.equal(event.data.rate, 1);
    const [toDeployment] = await waitForEvent(DEPLOYMENT_PATH, event.id);
    assert.equal(verified(toDeployment, deploymentSecret).id, event.id);
    // checked every 500 ms: the window's alert is still one
    await sleep(QUIET_MS);
    const ids = receivedOfType(p.path, 'delivery.failure_rate').map((r) => (JSON.parse(r.body) as OperatorEvent).id);
    assert.equal(new Set(ids).size, ids.length, `one alert per window: ${ids.join(', ')}`);
  });

  // ------------------------------------------------------------ service.degraded

  it('service.degraded: the store unreachable for longer than ALERTS_DEGRADED_AFTER_SECONDS is sent during the outage', async () => {
    const before = receivedOfType(DEPLOYMENT_PATH, 'service.degraded').length;
    await storeForward.close();
    let event: OperatorEvent;
    try {
      const [request] = await waitUntil('service.degraded for the store', () => {
        const got = receivedOfType(DEPLOYMENT_PATH, 'service.degraded').slice(before).filter((r) => (JSON.parse(r.body) as OperatorEvent).data.dependency === 'store');
        return got.length > 0 && got;
      });
      event = verified(request, deploymentSecret);
      assert.equal(event.projectId, null);
      assert.equal(event.data.recoveredAt, null, 'sent during the outage');
      assert.ok((event.data.downSeconds as number) >= DEGRADED_AFTER_SECONDS, JSON.stringify(event.data));
      assert.equal(event.id, `service.degraded:store:${Date.parse(event.data.downSince as string)}`);
    } finally {
      await storeForward.listen();
    }
    // the store back: the alert's outcome, which the store could not take during the outage, is recorded
    const row = await waitForStatus(`op:deployment:${event.id}`, 'delivered');
    assert.equal(row.projectId, null);
    assert.equal(row.attempts, 1);
    await sleep(QUIET_MS);
    assert.equal(received(DEPLOYMENT_PATH, event.id).length, 1);
  });

  it('service.degraded: Temporal unreachable is sent when it recovers, with recoveredAt and downSeconds', async () => {
    const before = receivedOfType(DEPLOYMENT_PATH, 'service.degraded').length;
    await temporalForward.close();
    await sleep((DEGRADED_AFTER_SECONDS + 2) * 1000);
    await temporalForward.listen();
    const [request] = await waitUntil('service.degraded for Temporal', () => {
      const got = receivedOfType(DEPLOYMENT_PATH, 'service.degraded').slice(before).filter((r) => (JSON.parse(r.body) as OperatorEvent).data.dependency === 'temporal');
      return got.length > 0 && got;
    }, 60_000);
    const event = verified(request, deploymentSecret);
    assert.equal(event.type, 'service.degraded');
    assert.equal(event.projectId, null);
    assert.ok(event.data.recoveredAt, 'sent at recovery');
    assert.ok((event.data.downSeconds as number) >= DEGRADED_AFTER_SECONDS, JSON.stringify(event.data));
    assert.ok(Date.parse(event.data.recoveredAt as string) > Date.parse(event.data.downSince as string));
    await waitForStatus(`op:deployment:${event.id}`, 'delivered');
    await sleep(QUIET_MS);
    assert.equal(received(DEPLOYMENT_PATH, event.id).length, 1);
  });
});

for (const kind of STORE_KINDS) {
  describe(`operator alert and project settings store (${kind})`, () => {
    const store = useStore(kind);
    const keyring = parseKeyring(newKeySpec('k1'));
    const ops = defaultOperations();
    const event = (projectId: string): OperatorEvent => ({ id: `delivery.exhausted:dlv_${uid()}`, type: 'delivery.exhausted', projectId, occurredAt: new Date().toISOString(), data: { deliveryId: 'd' } });

    it('records an alert once, moves it on, never moves a final status back, and pages newest first', async () => {
      const projectId = `prj_${uid()}`;
      const e = event(projectId);
      const input = { alertId: `op:project:${e.id}`, target: 'project' as const, event: e };
      assert.equal(await recordOperatorAlert(store.db, input), true);
      assert.equal(await recordOperatorAlert(store.db, input), false);
      assert.equal(await updateOperatorAlert(store.db, input.alertId, { status: 'in_progress', attempts: 1, httpStatus: 503, error: 'HTTP 503' }), true);
      assert.equal(await updateOperatorAlert(store.db, input.alertId, { status: 'delivered', attempts: 2, httpStatus: 200, error: null }), true);
      assert.equal(await updateOperatorAlert(store.db, input.alertId, { status: 'failed', error: 'late' }), false);
      const row = await getOperatorAlert(store.db, input.alertId);
      assert.deepEqual({ ...row, createdAt: undefined, updatedAt: undefined }, {
        alertId: input.alertId, type: 'delivery.exhausted', projectId, target: 'project', status: 'delivered', attempts: 2, httpStatus: 200, error: null, event: e, createdAt: undefined, updatedAt: undefined,
      });

      // a start that failed (failed, no attempt) is in progress again once a later raise starts it
      const unstarted = { alertId: `op:deployment:${e.id}`, target: 'deployment' as const, event: e };
      await recordOperatorAlert(store.db, unstarted);
      await updateOperatorAlert(store.db, unstarted.alertId, { status: 'failed', error: 'could not start its delivery' });
      await reopenUnstartedOperatorAlert(store.db, unstarted.alertId);
      assert.equal((await getOperatorAlert(store.db, unstarted.alertId))?.status, 'in_progress');

      const page1 = await listOperatorAlerts(store.db, projectId, { limit: 1 });
      assert.deepEqual(page1.alerts.map((a) => a.alertId), [unstarted.alertId]);
      const page2 = await listOperatorAlerts(store.db, projectId, { limit: 1, before: page1.nextCursor! });
      assert.deepEqual(page2.alerts.map((a) => a.alertId), [input.alertId]);
      assert.equal(page2.nextCursor, null);
      assert.deepEqual((await listOperatorAlerts(store.db, `prj_other_${uid()}`, { limit: 10 })).alerts, []);
    });

    it('keeps the operator webhook sealed, bound to its project, and merges threshold overrides field by field', async () => {
      const projectId = `prj_${uid()}`;
      const saved = await saveProjectSettings(store.db, keyring, projectId, { operatorWebhook: { url: 'https://ops.example.com/hook?key=abc' }, failureRate: { windowSeconds: 60 } }, ops);
      assert.match(saved.operatorSecret!, /^whsec_/);
      const [row] = await store.db.query<{ operator_sealed: string }>('SELECT operator_sealed FROM project_settings WHERE project_id = $1', [projectId]);
      assert.ok(!row.operator_sealed.includes('ops.example.com') && !row.operator_sealed.includes(saved.operatorSecret!), 'sealed');
      assert.deepEqual(await projectOperatorWebhook(store.db, keyring, projectId), { url: 'https://ops.example.com/hook?key=abc', secret: saved.operatorSecret });
      // copied onto another project's row, it does not open
      const other = `prj_${uid()}`;
      await store.db.query(`INSERT INTO project_settings (project_id, key_id, operator_sealed) SELECT $2, key_id, operator_sealed FROM project_settings WHERE project_id = $1`, [projectId, other]);
      await assert.rejects(projectOperatorWebhook(store.db, keyring, other));

      await saveProjectSettings(store.db, keyring, projectId, { failureRate: { threshold: 0.9 } }, ops);
      assert.deepEqual((await failureRateSettingsByProject(store.db, ops.failureRate)).get(projectId), { ...ops.failureRate, windowSeconds: 60, threshold: 0.9 });
      assert.equal((await failureRateSettingsByProject(store.db, ops.failureRate)).has(other), false, 'a project without overrides has the defaults');
      assert.deepEqual(await projectHealthSettings(store.db, projectId, ops.health), ops.health);
      const shown = await getProjectSettings(store.db, keyring, projectId, ops);
      assert.deepEqual(shown.operatorWebhook, { url: 'https://ops.example.com/hook?key=abc' });
      assert.deepEqual(shown.failureRate, { ...ops.failureRate, windowSeconds: 60, threshold: 0.9 });
      // a new URL without a secret keeps the secret
      const moved = await saveProjectSettings(store.db, keyring, projectId, { operatorWebhook: { url: 'https://ops.example.com/other' } }, ops);
      assert.equal(moved.operatorSecret, undefined);
      assert.equal((await projectOperatorWebhook(store.db, keyring, projectId))?.secret, saved.operatorSecret);
      const audit = await store.db.query<{ changes: { field: string; from?: string; to?: string }[] }>(`SELECT changes FROM alert_audit_log WHERE project_id = $1 ORDER BY id`, [projectId]);
      assert.equal(audit.length, 3);
      assert.deepEqual(audit[2].changes, [{ field: 'operatorWebhook.url', from: 'https://ops.example.com/***', to: 'https://ops.example.com/***' }]);
    });

    it("counts each project's attempts over its own window (its settings as project_settings gives them), held alerts' rows left out", async () => {
      const nowMs = Date.now();
      const [own, plain] = [`prj_${uid()}`, `prj_${uid()}`];
      await saveProjectSettings(store.db, keyring, own, { failureRate: { windowSeconds: 60 } }, ops);
      const row = async (projectId: string, secondsAgo: number, outcome: 'delivered' | 'retrying' | 'failed', error: string | null = null) => {
        const id = uid();
        await store.db.query(
          `INSERT INTO alert_logs (project_id, delivery_id, config_id, workflow_id, run_id, event_id, condition, attempt, outcome, error, created_at)
           VALUES ($1, $2, 'cfg_rate', 'wf_rate', 'run_rate', $3, 'failure', 1, $4, $5, $6::timestamptz)`,
          [projectId, `dlv_${id}`, `evt_${id}`, outcome, error, new Date(nowMs - secondsAgo * 1000).toISOString()],
        );
      };
      const held = heldError('receiver answered 410 Gone'); // as a held delivery logs its row
      // its own 60 s window: two attempts in it (one failed), one failed attempt before it
      await row(own, 10, 'failed', 'HTTP 500');
      await row(own, 20, 'delivered');
      await row(own, 120, 'failed', 'HTTP 500');
      // the deployment's 300 s window: three attempts in it (two failed), one before it
      await row(plain, 10, 'retrying', 'HTTP 503');
      await row(plain, 200, 'failed', 'HTTP 503');
      await row(plain, 250, 'delivered');
      await row(plain, 400, 'failed', 'HTTP 503');
      // held alerts: nothing was sent, so no attempt, failed or not
      for (const projectId of [own, plain]) for (let i = 0; i < 5; i++) await row(projectId, 5, 'failed', held);

      const settings = await failureRateSettingsByProject(store.db, ops.failureRate);
      const counted = new Map((await attemptsOverWindows({ db: store.db }, ops.failureRate, settings, nowMs)).map((a) => [a.projectId, { failed: a.failed, total: a.total }]));
      assert.deepEqual(counted.get(own), { failed: 1, total: 2 });
      assert.deepEqual(counted.get(plain), { failed: 2, total: 3 });
    });
  });
}

describe('the deployment operator webhook in the environment (loadEnv)', () => {
  const secret = newWebhookSecret();

  it('takes an http(s) URL with a whsec_ secret', () => {
    const env = loadEnv({ ALERTS_OPERATOR_WEBHOOK_URL: 'https://ops.example.com/hook', ALERTS_OPERATOR_WEBHOOK_SECRET: secret });
    assert.equal(env.ALERTS_OPERATOR_WEBHOOK_URL, 'https://ops.example.com/hook');
    assert.equal(env.ALERTS_OPERATOR_WEBHOOK_SECRET, secret);
    assert.equal(loadEnv({ ALERTS_OPERATOR_WEBHOOK_URL: '', ALERTS_OPERATOR_WEBHOOK_SECRET: '' }).ALERTS_OPERATOR_WEBHOOK_URL, undefined, 'empty: none');
  });

  it("refuses at boot a secret that is not whsec_ and base64 (the API's rule) and a URL that is not a plain http(s) URL, naming the variable and not the value", () => {
    for (const [vars, why] of [
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'https://ops.example.com/hook', ALERTS_OPERATOR_WEBHOOK_SECRET: 'opsvalue-not-a-secret' }, /ALERTS_OPERATOR_WEBHOOK_SECRET: secret must be "whsec_" followed by base64/],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'https://ops.example.com/hook', ALERTS_OPERATOR_WEBHOOK_SECRET: 'whsec_opsvalue' }, /ALERTS_OPERATOR_WEBHOOK_SECRET: secret must be "whsec_" followed by base64/],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'ftp://ops.example.com/opsvalue', ALERTS_OPERATOR_WEBHOOK_SECRET: secret }, /ALERTS_OPERATOR_WEBHOOK_URL: the URL must start with https:\/\/ or http:\/\//],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'ops.example.com/opsvalue', ALERTS_OPERATOR_WEBHOOK_SECRET: secret }, /ALERTS_OPERATOR_WEBHOOK_URL: the URL must start with https:\/\/ or http:\/\//],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'https://ops.example.com/opsvalue/{{ event.id }}', ALERTS_OPERATOR_WEBHOOK_SECRET: secret }, /ALERTS_OPERATOR_WEBHOOK_URL: the URL must not contain a template/],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'https://opsvalue:99999/', ALERTS_OPERATOR_WEBHOOK_SECRET: secret }, /ALERTS_OPERATOR_WEBHOOK_URL: the URL is not a valid URL/],
      [{ ALERTS_OPERATOR_WEBHOOK_URL: 'https://ops.example.com/opsvalue' }, /ALERTS_OPERATOR_WEBHOOK_URL needs ALERTS_OPERATOR_WEBHOOK_SECRET/],
    ] as const) {
      assert.throws(() => loadEnv(vars), (err: Error) => {
        assert.match(err.message, why);
        assert.ok(!err.message.includes('opsvalue'), `the value is not in the message: ${err.message}`);
        return true;
      });
    }
  });
});
