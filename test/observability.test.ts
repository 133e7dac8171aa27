import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Koa from 'koa';
import YAML from 'yaml';
import { errorMiddleware } from '../api/errors';
import { newKeySpec } from '../lib/crypto';
import { maskUrl } from '../lib/audit';
import { configureLogging, logger, redirectLogs } from '../lib/log';
import { dispatchLatency, endToEndLatency, noteDeliveryFinished, noteFirstAttemptSent } from '../lib/metrics';
import { freePort } from '../runtime/host';
import { PROJECT_ROOT, startServiceProcess, stopAllServiceProcesses } from './support/processes';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import { sharedPostgres } from './support/stores';

/**
 * Observability (docs/observability.md): after real deliveries on the shared stack (delivered,
 * retried, failed for good, a delay alert, a 410) GET /metrics has every series the PRD asks for,
 * the Grafana dashboard and the Prometheus rules name only series that scrape has, and each webhook
 * attempt is one JSON log line with its ids, outcome and duration and no secret, query string or
 * header value.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const FAST_RETRY = { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 200, maxDurationMs: 60_000 };

/** sample lines of a Prometheus text exposition: name, labels, value */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** the sum of the samples of `name` whose labels include `labels` */
const total = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
const has = (samples: Sample[], name: string, labels: Record<string, string> = {}) => samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** The metric names a PromQL expression reads: identifiers that are not functions, keywords, labels, durations or strings. */
export function metricNamesOf(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))/g)) {
    if (m[1] === '(') continue; // a function or an aggregation
    if (['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan'].includes(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** a histogram's or a summary's series name back to the metric's own */
const baseName = (name: string) => name.replace(/_(bucket|sum|count)$/, '');

describe('observability: metrics, dashboard, rules and structured logs', function () {
  let stack: TestStack;
  let receiver: Receiver;

  before(async function () {
    this.timeout(180_000);
    stack = await useStack();
    receiver = await Receiver.start();
  });
  after(() => receiver?.close());

  async function scrape(): Promise<{ text: string; samples: Sample[] }> {
    const res = await fetch(`${stack.apiUrl}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    return { text, samples: parseExposition(text) };
  }

  async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  async function createConfig(config: Record<string, unknown>, secret?: string): Promise<string> {
    const res = await stack.api('POST', '/api/alerts/config', { config: { name: 'observability', retry: FAST_RETRY, ...config }, ...(secret ? { secret } : {}) });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.config.id;
  }

  async function postEvent(event: Record<string, unknown>): Promise<string[]> {
    const res = await stack.api('POST', '/api/events', event);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return (res.body.deliveries as { deliveryId: string }[]).map((d) => d.deliveryId);
  }

  async function waitForStatus(deliveryId: string, status: string): Promise<void> {
    await eventually(`delivery ${deliveryId} ${status}`, async () => {
      const res = await stack.api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      return res.status === 200 && res.body.status === status;
    });
  }

  const failedEvent = (workflowId: string) => ({ id: `evt_${uid()}`, type: 'run.failed', workflowId, runId: `run_${uid()}`, error: { message: 'HTTP 500 from CRM' } });

  it('serves every series after real deliveries (delivered, retried, failed, a delay alert, a 410), with the Temporal SDK metrics in the same scrape', async function () {
    this.timeout(120_000);
    const before = (await scrape()).samples;

    // delivered at once, and a delay alert (1 s threshold, the run never finishes)
    const okWorkflow = `wf_obs_ok_${uid()}`;
    const okPath = `/obs-ok-${uid()}`;
    receiver.on(okPath, () => ({ status: 200 }));
    await createConfig({ workflowId: okWorkflow, conditions: [{ type: 'failure' }, { type: 'delay', thresholdSeconds: 1 }], webhook: { url: `${receiver.url}${okPath}` } });
    const [delivered] = await postEvent(failedEvent(okWorkflow));
    const [delayed] = await postEvent({ id: `evt_${uid()}`, type: 'run.started', workflowId: okWorkflow, runId: `run_${uid()}` });

    // retried: the first attempt answers 503, the second is held by the test until the scrape saw it retrying
    const retryWorkflow = `wf_obs_retry_${uid()}`;
    const retryPath = `/obs-retry-${uid()}`;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    receiver.on(retryPath, (n) => (n === 1 ? { status: 503 } : { status: 200, after: gate }));
    await createConfig({ workflowId: retryWorkflow, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${retryPath}` } });
    const [retried] = await postEvent(failedEvent(retryWorkflow));
    await receiver.waitFor(retryPath, 2);
    const whileRetrying = await eventually('alerts_deliveries_retrying{condition="failure"} >= 1', async () => {
      const { samples } = await scrape();
      return total(samples, 'alerts_deliveries_retrying', { condition: 'failure' }) >= 1 && samples;
    });
    assert.ok(has(whileRetrying, 'alerts_deliveries_retrying', { condition: 'delay' }), 'every condition has its retrying series, at zero too');
    release();

    // failed for good: 503 on every attempt
    const failWorkflow = `wf_obs_fail_${uid()}`;
    const failPath = `/obs-fail-${uid()}`;
    receiver.on(failPath, () => ({ status: 503 }));
    await createConfig({ workflowId: failWorkflow, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${failPath}` } });
    const [failed] = await postEvent(failedEvent(failWorkflow));

    // a 410 disables its config (by the service); a config created disabled is off by its owner
    const goneWorkflow = `wf_obs_gone_${uid()}`;
    const gonePath = `/obs-gone-${uid()}`;
    receiver.on(gonePath, () => ({ status: 410 }));
    await createConfig({ workflowId: goneWorkflow, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${gonePath}` } });
    const [gone] = await postEvent(failedEvent(goneWorkflow));
    await createConfig({ workflowId: `wf_obs_off_${uid()}`, enabled: false, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}/never` } });

    for (const [id, status] of [[delivered, 'delivered'], [delayed, 'delivered'], [retried, 'delivered'], [failed, 'failed'], [gone, 'failed']] as const) await waitForStatus(id, status);

    // the counters move when the activity that finished the delivery returns: wait for them, not for a time
    const grew = (samples: Sample[], name: string, labels: Record<string, string> = {}) => total(samples, name, labels) - total(before, name, labels);
    const after = await eventually('the finished deliveries in /metrics', async () => {
      const { samples } = await scrape();
      const done =
        grew(samples, 'alerts_deliveries_finished_total', { condition: 'failure', status: 'delivered' }) >= 2 &&
        grew(samples, 'alerts_deliveries_finished_total', { condition: 'failure', status: 'failed' }) >= 2 &&
        grew(samples, 'alerts_deliveries_finished_total', { condition: 'delay', status: 'delivered' }) >= 1;
      return done && samples;
    });

    // outcomes by condition and outcome
    assert.ok(grew(after, 'alerts_delivery_attempts_total', { condition: 'failure', outcome: 'delivered' }) >= 2);
    assert.ok(grew(after, 'alerts_delivery_attempts_total', { condition: 'failure', outcome: 'retrying' }) >= 3, 'the 503s that were retried');
    assert.ok(grew(after, 'alerts_delivery_attempts_total', { condition: 'failure', outcome: 'failed' }) >= 2, 'the last 503 and the 410');
    assert.ok(grew(after, 'alerts_delivery_attempts_total', { condition: 'delay', outcome: 'delivered' }) >= 1);
    assert.ok(grew(after, 'alerts_events_accepted_total', { type: 'run.failed' }) >= 4);
    assert.ok(grew(after, 'alerts_deliveries_started_total', { condition: 'delay', duplicate: 'false' }) >= 1);
    // latency: dispatch (trigger → first POST) and end to end (event → delivered), by condition
    assert.ok(grew(after, 'alerts_dispatch_latency_seconds_count') >= 4);
    assert.ok(grew(after, 'alerts_end_to_end_latency_seconds_count', { condition: 'failure' }) >= 2);
    assert.ok(grew(after, 'alerts_end_to_end_latency_seconds_count', { condition: 'delay' }) >= 1);
    assert.ok(has(after, 'alerts_end_to_end_latency_seconds_bucket', { condition: 'delay', le: '+Inf' }));
    assert.ok(grew(after, 'alerts_delivery_attempt_duration_seconds_count') >= 7);
    // the store's gauges, read at scrape time
    assert.ok(total(after, 'alerts_configs_disabled', { disabled_by: 'service' }) >= 1, 'the config that got a 410');
    assert.ok(total(after, 'alerts_configs_disabled', { disabled_by: 'user' }) >= 1, 'the config created disabled');
    assert.ok(has(after, 'alerts_held_alerts'), 'held alerts, at zero too');
    assert.ok(has(after, 'alerts_deliveries_retrying', { condition: 'failure' }));
    // operator alerts: every type and outcome exists before the first one
    for (const type of ['delivery.exhausted', 'config.failing', 'config.disabled', 'config.reenabled', 'delivery.failure_rate', 'service.degraded']) {
      for (const outcome of ['raised', 'delivered', 'failed', 'skipped']) assert.ok(has(after, 'alerts_operator_alerts_total', { type, outcome }), `alerts_operator_alerts_total{type="${type}",outcome="${outcome}"}`);
    }
    // the Temporal SDK's worker metrics, in the same scrape
    for (const workerType of ['WorkflowWorker', 'ActivityWorker', 'LocalActivityWorker']) {
      assert.ok(has(after, 'temporal_worker_task_slots_available', { worker_type: workerType }), `temporal_worker_task_slots_available{worker_type="${workerType}"}`);
      assert.ok(has(after, 'temporal_worker_task_slots_used', { worker_type: workerType }));
    }
    for (const name of ['temporal_workflow_task_execution_latency_bucket', 'temporal_activity_execution_latency_bucket', 'temporal_local_activity_execution_latency_bucket', 'temporal_num_pollers', 'temporal_request']) {
      assert.ok(has(after, name), name);
    }

    // ------------------------------------------------------------ the dashboard and the rules
    const exists = new Set(after.map((s) => baseName(s.name)));
    const dashboard = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'deploy/grafana/meshhook-alerts.json'), 'utf8'));
    const panels = (dashboard.panels as { title: string; type: string; targets?: { expr: string }[] }[]).filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 12, 'a dashboard with its panels');
    const dashboardNames = new Set<string>();
    for (const panel of panels) {
      assert.ok(panel.targets?.length, `panel "${panel.title}" has a query`);
      for (const { expr } of panel.targets!) {
        const names = metricNamesOf(expr);
        assert.ok(names.length > 0, `panel "${panel.title}": ${expr} names a metric`);
        for (const name of names) {
          assert.ok(exists.has(baseName(name)), `panel "${panel.title}" queries ${name}, which /metrics does not serve`);
          dashboardNames.add(baseName(name));
        }
      }
    }
    for (const wanted of ['alerts_dispatch_latency_seconds', 'alerts_end_to_end_latency_seconds', 'alerts_deliveries_finished_total', 'alerts_delivery_attempts_total', 'alerts_deliveries_retrying', 'alerts_held_alerts', 'alerts_configs_disabled', 'alerts_operator_alerts_total', 'temporal_worker_task_slots_available', 'temporal_workflow_task_execution_latency']) {
      assert.ok(dashboardNames.has(wanted), `the dashboard shows ${wanted}`);
    }

    const rules = YAML.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'deploy/prometheus/alerts-rules.yml'), 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string; for?: string }[] }[] };
    const all = rules.groups.flatMap((g) => g.rules);
    for (const rule of all) {
      assert.ok(rule.alert && rule.expr, `a rule with a name and an expression: ${JSON.stringify(rule)}`);
      for (const name of metricNamesOf(rule.expr)) assert.ok(exists.has(baseName(name)), `rule ${rule.alert} reads ${name}, which /metrics does not serve`);
    }
    const ruleReading = (metric: string) => all.filter((r) => metricNamesOf(r.expr).some((n) => baseName(n) === metric)).map((r) => r.expr);
    assert.ok(ruleReading('alerts_dispatch_latency_seconds').some((e) => /histogram_quantile\(0\.99,[\s\S]*\)\s*>\s*0\.5\b/.test(e)), 'dispatch p99 over 500 ms');
    assert.ok(ruleReading('alerts_delivery_attempts_total').length >= 1, 'a failure rate');
    assert.ok(ruleReading('alerts_deliveries_finished_total').some((e) => e.includes('status="failed"')), 'exhausted deliveries');
    assert.ok(ruleReading('alerts_held_alerts').some((e) => />\s*0/.test(e)), 'held alerts > 0');
    assert.ok(ruleReading('alerts_configs_disabled').some((e) => e.includes('disabled_by="service"')), 'a config the service disabled');
  });

  it("times a delay alert from its deadline, another from its event's time (end to end) and arrival (dispatch), and a redelivery not at all", async () => {
    const sumOf = async (metric: typeof dispatchLatency | typeof endToEndLatency, labels: Record<string, string> = {}) =>
      (await metric.get()).values.filter((v) => v.metricName?.endsWith('_sum') && Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l)).reduce((sum, v) => sum + v.value, 0);
    const occurredAt = '2026-12-01T10:00:00.000Z';
    const at = Date.parse(occurredAt);
    const delay = { condition: 'delay', event: { occurredAt }, receivedAt: '2026-12-01T10:00:01.000Z', delaySeconds: 60 };
    const failure = { condition: 'failure', event: { occurredAt }, receivedAt: '2026-12-01T10:00:02.000Z' };

    const [d0, e0, f0] = [await sumOf(dispatchLatency), await sumOf(endToEndLatency, { condition: 'delay' }), await sumOf(endToEndLatency, { condition: 'failure' })];
    noteFirstAttemptSent(delay, at + 60_000 + 40); // 40 ms after its deadline
    noteDeliveryFinished(delay, 'delivered', at + 60_000 + 250);
    noteFirstAttemptSent(failure, at + 2_000 + 10); // 10 ms after its arrival
    noteDeliveryFinished(failure, 'delivered', at + 3_000); // 3 s after it happened
    noteFirstAttemptSent({ ...failure, redeliveryOf: 'dlv-x' }, at + 99_000);
    noteDeliveryFinished({ ...failure, redeliveryOf: 'dlv-x' }, 'delivered', at + 99_000);
    noteDeliveryFinished(failure, 'failed', at + 99_000);
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} is not ${b}`);
    close((await sumOf(dispatchLatency)) - d0, 0.04 + 0.01);
    close((await sumOf(endToEndLatency, { condition: 'delay' })) - e0, 0.25);
    close((await sumOf(endToEndLatency, { condition: 'failure' })) - f0, 3);
  });

  it('finds the metric names of PromQL expressions (and only those)', () => {
    assert.deepEqual(metricNamesOf('histogram_quantile(0.99, sum by (le, condition) (rate(alerts_x_bucket{a="b",c=~"d|e"}[$__rate_interval]))) > 0.5'), ['alerts_x_bucket']);
    assert.deepEqual(metricNamesOf('sum(rate(a_total{outcome=~"retrying|failed"}[5m])) / sum(rate(a_total[5m])) > 0.5 and sum(increase(a_total[5m])) >= 20'), ['a_total']);
    assert.deepEqual(metricNamesOf('max by (disabled_by) (alerts_configs_disabled)'), ['alerts_configs_disabled']);
    assert.deepEqual(metricNamesOf('min by (instance) (up{job="x"}) == 0 unless on (instance) other_metric'), ['up', 'other_metric']);
  });

  it("logs each webhook attempt as a JSON line with its ids, outcome and duration, and never the secret, a header value or the URL's path, query string or user info", async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const previous = configureLogging({ level: 'info', format: 'json' });
    redirectLogs((line) => lines.push(line));
    try {
      const workflowId = `wf_obs_log_${uid()}`;
      // as a Slack, Discord or Teams webhook's, the path is the credential
      const pathSecret = `psec${uid()}`;
      const hook = `/services/obs-log-${uid()}/${pathSecret}`;
      const queryToken = `qtok${uid()}`;
      const [user, password] = [`usr${uid()}`, `pwd${uid()}`];
      const headerValue = `hdr${uid()}`;
      const secret = `whsec_${randomBytes(32).toString('base64')}`;
      receiver.on(hook, (n) => ({ status: n === 1 ? 503 : 200 }));
      const url = `${receiver.url.replace('://', `://${user}:${password}@`)}${hook}?token=${queryToken}`;
      const configId = await createConfig({ workflowId, conditions: [{ type: 'failure' }], webhook: { url, headers: { 'X-Api-Key': headerValue } } }, secret);
      const event = failedEvent(workflowId);
      const [deliveryId] = await postEvent(event);
      await waitForStatus(deliveryId, 'delivered');
      const attemptLines = await eventually('the two attempt lines', async () => {
        const mine = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.deliveryId === deliveryId && typeof l.attempt === 'number');
        return mine.length >= 2 && mine;
      });

      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a JSON line: ${line}`);
      const byAttempt = new Map(attemptLines.map((l) => [l.attempt, l]));
      for (const [attempt, outcome, httpStatus] of [[1, 'retrying', 503], [2, 'delivered', 200]] as const) {
        const line = byAttempt.get(attempt)!;
        assert.ok(line, `a line for attempt ${attempt}`);
        assert.equal(line.deliveryId, deliveryId);
        assert.equal(line.configId, configId);
        assert.equal(line.projectId, 'default');
        assert.equal(line.runId, event.runId);
        assert.equal(line.outcome, outcome);
        assert.equal(line.httpStatus, httpStatus);
        assert.equal(line.condition, 'failure');
        assert.equal(typeof line.durationMs, 'number');
        assert.equal(line.component, 'delivery');
        assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
        assert.equal(line.url, `${receiver.url}/***`, "the URL's scheme and host only");
      }
      const everything = lines.join('\n');
      for (const [what, hidden] of [
        ['the path', hook],
        ['the secret in the path', pathSecret],
        ['the query-string token', queryToken],
        ['the user name', user],
        ['the password', password],
        ['the header value', headerValue],
        ['the secret', secret],
        ['the secret\'s key', secret.slice('whsec_'.length)],
      ]) {
        assert.ok(!everything.includes(hidden), `${what} is in the log`);
      }
    } finally {
      redirectLogs(undefined);
      configureLogging(previous);
    }
  });

  it('splits: a worker alone serves its metrics on ALERTS_METRICS_PORT and logs JSON lines of its attempts to its pipe; the API serves its own part', async function () {
    this.timeout(240_000);
    const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-observability-'));
    try {
      const databaseUrl = await (await sharedPostgres()).createDatabase();
      const token = `mha_${randomBytes(24).toString('base64url')}`;
      const [apiPort, metricsPort] = [await freePort(), await freePort()];
      const env = {
        TEMPORAL_ADDRESS: stack.service.temporalAddress,
        TEMPORAL_NAMESPACE: 'default',
        // its own task queue: the stack's worker never takes these deliveries
        TEMPORAL_TASK_QUEUE: `alerts-observability-${uid()}`,
        DATABASE_URL: databaseUrl,
        ALERTS_ENCRYPTION_KEYS: newKeySpec(),
        ALERTS_API_TOKENS: `${token}:default`,
        ALERTS_EGRESS_ALLOW: '127.0.0.1',
        ALERTS_ALLOW_PRIVATE_NETWORKS: '',
        DATA_DIR: path.join(tempDir, 'data'),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'auto',
      };
      const worker = startServiceProcess('worker', 'worker.ts', { ...env, ALERTS_METRICS_PORT: String(metricsPort) });
      const api = startServiceProcess('api', 'api/server.ts', { ...env, PORT: String(apiPort), ALERTS_METRICS_PORT: '' });
      await worker.waitForOutput(/worker running[\s\S]*ready; press Ctrl-C/, 180_000);
      await api.waitForOutput(/ready; press Ctrl-C/, 180_000);

      const call = async (method: string, urlPath: string, body?: unknown) => {
        const res = await fetch(`http://127.0.0.1:${apiPort}${urlPath}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as any };
      };
      const workflowId = `wf_obs_split_${uid()}`;
      const hook = `/obs-split-${uid()}`;
      const queryToken = `qtok${uid()}`;
      const headerValue = `hdr${uid()}`;
      const secret = `whsec_${randomBytes(32).toString('base64')}`;
      // two 503s: the second is a retried attempt (an activity) that fails, which the SDK would also log
      receiver.on(hook, (n) => ({ status: n <= 2 ? 503 : 200 }));
      const created = await call('POST', '/api/alerts/config', { config: { workflowId, name: 'split', retry: FAST_RETRY, conditions: [{ type: 'failure' }], webhook: { url: `${receiver.url}${hook}?token=${queryToken}`, headers: { 'X-Api-Key': headerValue } } }, secret });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const event = failedEvent(workflowId);
      const accepted = await call('POST', '/api/events', event);
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      const deliveryId = accepted.body.deliveries[0].deliveryId as string;
      await receiver.waitFor(hook, 3, 60_000);

      // the worker's attempt lines, as JSON on its pipe
      await worker.waitForOutput(new RegExp(`"deliveryId":"${deliveryId}"[^\n]*"outcome":"delivered"`), 30_000);
      const lines = worker.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const attempts = lines.filter((l) => l.deliveryId === deliveryId && typeof l.attempt === 'number');
      assert.deepEqual(
        attempts.map((a) => ({ configId: a.configId, projectId: a.projectId, runId: a.runId, attempt: a.attempt, outcome: a.outcome, component: a.component, level: a.level, timed: typeof a.durationMs })),
        [1, 2, 3].map((n) => ({ configId: created.body.config.id, projectId: 'default', runId: event.runId, attempt: n, outcome: n < 3 ? 'retrying' : 'delivered', component: 'delivery', level: n < 3 ? 'warn' : 'info', timed: 'number' })),
      );
      assert.ok(!lines.some((l) => l.component === 'temporal' && l.msg === 'Activity failed'), "a failed attempt is one line, not another from the SDK");
      const output = worker.output() + api.output();
      for (const hidden of [hook, queryToken, headerValue, secret, secret.slice('whsec_'.length), token]) assert.ok(!output.includes(hidden), `${hidden} is in the processes' output`);

      // the worker's metrics on its own port: its attempts and the SDK's worker metrics
      const workerMetrics = await eventually('the worker counted the delivery', async () => {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        assert.equal(res.status, 200);
        const samples = parseExposition(await res.text());
        return total(samples, 'alerts_deliveries_finished_total', { condition: 'failure', status: 'delivered' }) === 1 && samples;
      });
      assert.equal(total(workerMetrics, 'alerts_delivery_attempts_total', { condition: 'failure', outcome: 'delivered' }), 1);
      assert.equal(total(workerMetrics, 'alerts_delivery_attempts_total', { condition: 'failure', outcome: 'retrying' }), 2);
      assert.ok(has(workerMetrics, 'temporal_activity_execution_latency_bucket'), 'the retried attempts ran as activities of this worker');
      assert.equal(total(workerMetrics, 'alerts_end_to_end_latency_seconds_count', { condition: 'failure' }), 1);
      assert.ok(has(workerMetrics, 'temporal_worker_task_slots_available', { worker_type: 'WorkflowWorker' }));
      assert.ok(has(workerMetrics, 'alerts_held_alerts'), 'the store gauges, read from the shared store');
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
      // the API's part: the event it accepted, its requests; no attempts (it has no worker)
      const apiMetrics = parseExposition(await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text());
      assert.equal(total(apiMetrics, 'alerts_events_accepted_total', { type: 'run.failed' }), 1);
      assert.equal(total(apiMetrics, 'alerts_delivery_attempts_total'), 0);
      assert.ok(has(apiMetrics, 'temporal_request'), "the API's Temporal client metrics");
    } finally {
      await stopAllServiceProcesses();
      fs.rmSync(tempDir, { recursive: true, force: true });
    }
  });

  it('logs an API 5xx with its request id, method and route, never the body, the query string or a header value', async () => {
    const app = new Koa();
    app.use(errorMiddleware);
    app.use(async (ctx) => {
      // an error whose message quotes a URL with a token, as a dependency's error might
      if (ctx.path === '/boom') throw new Error('the store said no to https://dbuser:dbpass@db.example.com/pathsecret?password=urlsecret');
      ctx.body = { ok: true };
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const lines: string[] = [];
    const previous = configureLogging({ level: 'info', format: 'json' });
    redirectLogs((line) => lines.push(line));
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const bodyMarker = `body${uid()}`;
      const headerMarker = `hdr${uid()}`;
      const queryMarker = `q${uid()}`;
      const res = await fetch(`${base}/boom?token=${queryMarker}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': headerMarker }, body: JSON.stringify({ marker: bodyMarker }) });
      assert.equal(res.status, 500);
      const requestId = res.headers.get('x-request-id');
      assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
      const given = await fetch(`${base}/fine`, { headers: { 'x-request-id': 'req-42.abc' } });
      assert.equal(given.headers.get('x-request-id'), 'req-42.abc', "a caller's plain request id is kept");
      const odd = await fetch(`${base}/fine`, { headers: { 'x-request-id': 'has spaces and "quotes"' } });
      assert.notEqual(odd.headers.get('x-request-id'), 'has spaces and "quotes"');

      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const logged = entries.find((e) => e.requestId === requestId);
      assert.ok(logged, `a line with the request id: ${lines.join('\n')}`);
      assert.deepEqual({ level: logged.level, component: logged.component, method: logged.method, route: logged.route, status: logged.status, code: logged.code }, { level: 'error', component: 'api', method: 'POST', route: '/boom', status: 500, code: 'internal' });
      assert.match(String(logged.error), /the store said no to https:\/\/db\.example\.com\/\*\*\*$/);
      const everything = lines.join('\n');
      for (const hidden of [bodyMarker, headerMarker, queryMarker, 'urlsecret', 'pathsecret', 'dbuser', 'dbpass']) assert.ok(!everything.includes(hidden), `${hidden} is in the log`);
      assert.equal(entries.filter((e) => e.component === 'api').length, 1, 'only the 5xx is logged');
    } finally {
      redirectLogs(undefined);
      configureLogging(previous);
      server.close();
    }
  });

  it('shows every URL anywhere in a line (message, fields, nested objects, arrays, errors) as its scheme and host only, as the audit log does', () => {
    const lines: string[] = [];
    const previous = configureLogging({ level: 'info', format: 'json' });
    redirectLogs((line) => lines.push(line));
    try {
      const discord = 'https://discord.com/api/webhooks/123/discordsecret';
      const teams = 'https://example.webhook.office.com/webhookb2/teamssecret@tenant/IncomingWebhook/x/y';
      const err = new Error(`POST ${discord}?wait=querysecret failed`);
      logger('probe').warn(
        {
          url: 'https://u:userinfosecret@hooks.slack.com/services/T0/B0/slacksecret#fragmentsecret',
          target: teams,
          nested: { webhook: { url: `${discord}`, note: `see ${teams}` }, list: [`postgres://pguser:pgsecret@db.internal:5432/alerts`] },
          err,
          origin: 'http://127.0.0.1:3000/',
        },
        `could not reach ${discord} (nor https://hooks.slack.com/services/T0/B0/slacksecret)`,
      );
      assert.equal(lines.length, 1);
      const line = JSON.parse(lines[0]);
      assert.equal(line.url, 'https://hooks.slack.com/***');
      assert.equal(line.target, 'https://example.webhook.office.com/***');
      assert.deepEqual(line.nested, { webhook: { url: 'https://discord.com/***', note: 'see https://example.webhook.office.com/***' }, list: ['postgres://db.internal:5432/***'] });
      assert.equal(line.msg, 'could not reach https://discord.com/*** (nor https://hooks.slack.com/***)');
      assert.match(JSON.stringify(line.err), /POST https:\/\/discord\.com\/\*\*\* failed/);
      assert.equal(line.origin, 'http://127.0.0.1:3000', 'nothing to cut: no /***');
      for (const hidden of ['slacksecret', 'discordsecret', 'teamssecret', 'querysecret', 'userinfosecret', 'fragmentsecret', 'pguser', 'pgsecret', 'webhooks/123']) {
        assert.ok(!lines[0].includes(hidden), `${hidden} is in the log: ${lines[0]}`);
      }
      // one rule for both: the audit log's
      assert.equal(maskUrl('https://u:p@hooks.slack.com/services/T0/B0/x?y#z'), 'https://hooks.slack.com/***');
      assert.equal(maskUrl('https://hooks.example.com\\path\\secret'), 'https://hooks.example.com/***');
    } finally {
      redirectLogs(undefined);
      configureLogging(previous);
    }
  });

  it('writes JSON lines when its output is not a terminal, readable lines with LOG_FORMAT=pretty', function () {
    this.timeout(60_000);
    const script = "const { logger } = require('./lib/log.ts'); logger('probe').info({ deliveryId: 'd_1', url: 'https://hooks.slack.com/services/T0/B0/hidden?token=hidden' }, 'attempt done');";
    const run = (env: Record<string, string>) => spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 50_000 });
    const auto = run({ LOG_FORMAT: 'auto', LOG_LEVEL: 'info' });
    assert.equal(auto.status, 0, auto.stderr);
    const line = JSON.parse(auto.stdout.trim());
    assert.equal(line.component, 'probe');
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'attempt done');
    assert.equal(line.deliveryId, 'd_1');
    assert.equal(line.url, 'https://hooks.slack.com/***');
    const pretty = run({ LOG_FORMAT: 'pretty', LOG_LEVEL: 'info' });
    assert.equal(pretty.status, 0, pretty.stderr);
    assert.throws(() => JSON.parse(pretty.stdout.trim()));
    assert.match(pretty.stdout, /INFO.*\[probe\] attempt done/);
    assert.doesNotMatch(auto.stdout + pretty.stdout, /hidden/);
  });
});
