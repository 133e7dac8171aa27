import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { eventsAcceptedSchema } from '../api/schemas';
import { noiseWorkflowId } from '../lib/delivery-ids';
import { defaultOperations } from '../runtime/deps';
import { disableConfig } from '../store/configs';
import { attemptsOverWindows } from '../runtime/failure-rate-monitor';
import { eventually } from './support/eventually';
import { Receiver } from './support/receiver';
import { useStack, type TestStack } from './support/stack';
import type { AlertDeliveryInput } from '../workflows/types';

/**
 * The noise pipeline's two ends (docs/noise-control.md), on the shared embedded stack (real Temporal
 * dev server, PGlite, worker, API) with a real HTTP receiver on 127.0.0.1: dispatch silences an
 * immediate alert at its event's time or hands a noise config's alert to its AlertNoise workflow; a
 * fired delay watch is silenced at its deadline; a successful run costs no workflow when no pipeline
 * runs; the pipeline's decisions (attempt-0 log rows) are no attempts in the stats or the failure rate.
 */

const uid = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const iso = (ms: number) => new Date(ms).toISOString();

describe('noise control: dispatch and delivery ends of the pipeline (end to end)', function () {
  this.timeout(120_000);
  let stack: TestStack;
  let token: string;
  let receiver: Receiver;
  // a project of its own: the failure rate below counts this project's rows only
  const project = `noise_${uid()}`;

  const api = (method: string, path: string, body?: unknown) => stack.api(method, path, body, token);


  async function createConfig(config: Record<string, unknown>): Promise<string> {
    const res = await api('POST', '/api/alerts/config', {
      config: {
        name: `noise ${uid()}`,
        payload: { template: { eventId: '{{ event.id }}', condition: '{{ condition }}', noise: '{{ noise }}' } },
        retry: { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 400, maxDurationMs: 60_000 },
        ...config,
      },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.config.id;
  }

  async function silence(body: Record<string, unknown>): Promise<string> {
    const res = await api('POST', '/api/silences', body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id;
  }

  async function postEvent(event: Record<string, unknown>) {
    const res = await api('POST', '/api/events', event);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return eventsAcceptedSchema.parse(res.body);
  }

  const logsOf = async (deliveryId: string) => {
    const res = await api('GET', `/api/alerts/logs?deliveryId=${encodeURIComponent(deliveryId)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.logs as { attempt: number; outcome: string; error: string | null }[];
  };

  const failed = (workflowId: string, id: string, occurredAt: string) => ({
    id, type: 'run.failed', workflowId, runId: `run_${id}`, occurredAt, error: { message: 'HTTP 500 from CRM', step: 'createContact' },
  });

  before(async () => {
    stack = await useStack();
    token = await stack.tokenFor(project);
    receiver = await Receiver.start();
  });

  after(async () => {
    await receiver?.close();
  });

  let silencedConfig: string;

  it("logs a silenced immediate alert of a plain config as silenced at its event's time, sends it not, and answers noise: 'silenced'", async () => {
    const workflowId = `wf_silenced_${uid()}`;
    const path = `/silenced-${uid()}`;
    silencedConfig = await createConfig({ workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, () => ({ status: 200 })) } });
    const now = Date.now();
    const silenceId = await silence({ configId: silencedConfig, from: iso(now - 60_000), until: iso(now + 3_600_000), comment: 'CRM upgrade' });

    const inId = `evt_in_${uid()}`;
    const beforeId = `evt_before_${uid()}`;
    // in the window by its own time
    const inWindow = await postEvent(failed(workflowId, inId, iso(now)));
    assert.equal(inWindow.deliveries.length, 1, JSON.stringify(inWindow));
    assert.equal(inWindow.deliveries[0].noise, 'silenced');
    // before the window by its own time (sent later, as a late event is): not silenced
    const before = await postEvent(failed(workflowId, beforeId, iso(now - 10 * 60_000)));
    assert.equal(before.deliveries[0].noise, undefined);
    assert.equal(before.deliveries[0].duplicate, false);

    const [received] = await receiver.waitFor(path, 1);
    assert.equal(JSON.parse(received.body).eventId, beforeId);
    const rows = await logsOf(inWindow.deliveries[0].deliveryId);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0].attempt, 0);
    assert.equal(rows[0].outcome, 'silenced');
    assert.match(rows[0].error ?? '', new RegExp(`^silenced by ${silenceId}.*CRM upgrade`));
    // the silenced alert never reaches the receiver: only the other one did, after it was decided
    await sleep(500);
    assert.equal(receiver.at(path).length, 1);

    // the same event again is still one log row
    const again = await postEvent(failed(workflowId, inId, iso(now)));
    assert.equal(again.deliveries[0].noise, 'silenced');
    assert.equal((await logsOf(inWindow.deliveries[0].deliveryId)).length, 1);
  });

  it("hands a noise config's alert to its AlertNoise workflow (noise: 'pipeline'), which lets it through to the receiver", async () => {
    const workflowId = `wf_pipeline_${uid()}`;
    const path = `/pipeline-${uid()}`;
    const configId = await createConfig({
      workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, () => ({ status: 200 })) }, throttle: { maxPerWindow: 10, windowSeconds: 60 },
    });
    const eventId = `evt_p_${uid()}`;
    const answer = await postEvent(failed(workflowId, eventId, iso(Date.now())));
    assert.equal(answer.deliveries.length, 1, JSON.stringify(answer));
    assert.equal(answer.deliveries[0].noise, 'pipeline');
    assert.equal(answer.deliveries[0].configId, configId);

    const [received] = await receiver.waitFor(path, 1);
    assert.equal(JSON.parse(received.body).eventId, eventId);
    // sent under the alert's own delivery id
    assert.equal(received.headers['webhook-id'], answer.deliveries[0].deliveryId);
    const description = await stack.service.temporal.client.workflow.getHandle(noiseWorkflowId(configId)).describe();
    assert.equal(description.type, 'AlertNoise');
  });

  it("ends a deleted config's noise pipeline (what it holds could only fail), and the delete still answers 204", async () => {
    const workflowId = `wf_deleted_${uid()}`;
    const configId = await createConfig({
      workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(`/deleted-${uid()}`, () => ({ status: 200 })) },
      grouping: { by: ['workflow.id'], waitSeconds: 3600, intervalSeconds: 3600, maxEvents: 10 },
    });
    await postEvent(failed(workflowId, `evt_del_${uid()}`, iso(Date.now())));
    const handle = stack.service.temporal.client.workflow.getHandle(noiseWorkflowId(configId));
    await eventually('the pipeline to run', async () => (await handle.describe()).status.name === 'RUNNING');
    assert.equal((await api('DELETE', `/api/alerts/config/by-id/${configId}`)).status, 204);
    assert.equal((await handle.describe()).status.name, 'TERMINATED');
  });

  it('redelivers a digest as the digest it was (its group read from its workflow history), not as its newest event alone', async () => {
    const workflowId = `wf_redeliver_digest_${uid()}`;
    const path = `/redeliver-digest-${uid()}`;
    await createConfig({
      workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, () => ({ status: 200 })) }, payload: { template: null },
      grouping: { by: ['workflow.id'], waitSeconds: 1, intervalSeconds: 60, maxEvents: 10 },
    });
    const now = Date.now();
    await postEvent(failed(workflowId, `evt_rd1_${uid()}`, iso(now)));
    await postEvent(failed(workflowId, `evt_rd2_${uid()}`, iso(now + 1)));
    const [digest] = await receiver.waitFor(path, 1);
    const sent = JSON.parse(digest.body);
    assert.equal(sent.type, 'alert.failure.digest');
    assert.equal(sent.group.count, 2);
    const res = await api('POST', `/api/alerts/deliveries/${encodeURIComponent(digest.headers['webhook-id'] as string)}/redeliver`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const [, again] = await receiver.waitFor(path, 2);
    const resent = JSON.parse(again.body);
    assert.equal(again.headers['webhook-id'], res.body.deliveryId);
    assert.equal(resent.type, 'alert.failure.digest');
    assert.deepEqual(resent.group, sent.group);
  });

  it('sends the alerts held while the service had a grouped config disabled through its pipeline: one digest, not one webhook each', async () => {
    const workflowId = `wf_held_noise_${uid()}`;
    const path = `/held-noise-${uid()}`;
    const configId = await createConfig({
      workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, () => ({ status: 200 })) }, payload: { template: null },
      grouping: { by: ['workflow.id'], waitSeconds: 1, intervalSeconds: 60, maxEvents: 10 },
    });
    assert.ok(await disableConfig(stack.service.db, project, configId, 'the receiver answered 410 Gone'));
    const now = Date.now();
    const ids = [1, 2, 3].map((n) => `evt_held_${n}_${uid()}`);
    for (const [n, id] of ids.entries()) {
      const answer = await postEvent(failed(workflowId, id, iso(now + n)));
      assert.equal(answer.deliveries.length, 0, JSON.stringify(answer));
    }
    const enabled = await api('POST', `/api/alerts/config/by-id/${configId}/enable`, { held: 'send' });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body));
    const [digest] = await receiver.waitFor(path, 1);
    const body = JSON.parse(digest.body);
    assert.equal(body.type, 'alert.failure.digest');
    assert.deepEqual(body.group.events.map((e: { id: string }) => e.id).sort(), [...ids].sort());
    await sleep(1500);
    assert.equal(receiver.at(path).length, 1, 'one digest, nothing else');
  });

  it('sends a recovery only after the alert it resolves has ended: a retried failure alert lands first', async () => {
    const workflowId = `wf_recovery_order_${uid()}`;
    const path = `/recovery-order-${uid()}`;
    // the failure alert's first attempt is answered 503, its retry 2 s later lands; everything after, 200
    await createConfig({
      workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(path, (n) => ({ status: n === 1 ? 503 : 200 })) }, payload: { template: null },
      recovery: true, retry: { maxAttempts: 3, initialIntervalMs: 2000, backoffCoefficient: 2, maxIntervalMs: 4000, maxDurationMs: 60_000 },
    });
    const now = Date.now();
    await postEvent(failed(workflowId, `evt_ro_f_${uid()}`, iso(now)));
    await receiver.waitFor(path, 1);
    await postEvent({ id: `evt_ro_ok_${uid()}`, type: 'run.succeeded', workflowId, runId: `run_ok_${uid()}`, occurredAt: iso(now + 100) });
    const got = await receiver.waitFor(path, 3, 30_000);
    assert.deepEqual(got.map((r) => JSON.parse(r.body).type), ['alert.failure', 'alert.failure', 'alert.recovered']);
  });

  it('tells a successful run to no workflow when no AlertNoise runs for a config with recovery: 202, nothing started', async () => {
    const workflowId = `wf_recovery_${uid()}`;
    const configId = await createConfig({ workflowId, conditions: [{ type: 'failure' }], webhook: { url: receiver.on(`/recovery-${uid()}`, () => ({ status: 200 })) }, recovery: true });
    const answer = await postEvent({ id: `evt_ok_${uid()}`, type: 'run.succeeded', workflowId, runId: `run_${uid()}`, occurredAt: iso(Date.now()) });
    assert.deepEqual(answer.deliveries, []);
    await assert.rejects(stack.service.temporal.client.workflow.getHandle(noiseWorkflowId(configId)).describe(), WorkflowNotFoundError);
  });

  it('ends the delay watch of a plain config silenced at its deadline (not at its event) as silenced, sending nothing', async () => {
    const workflowId = `wf_delay_${uid()}`;
    const path = `/delay-${uid()}`;
    const configId = await createConfig({ workflowId, conditions: [{ type: 'delay', thresholdSeconds: 3 }], webhook: { url: receiver.on(path, () => ({ status: 200 })) } });
    const now = Date.now();
    // starts after the run.started event, and is in force at the watch's deadline
    const silenceId = await silence({ configId, from: iso(now + 1_000), until: iso(now + 3_600_000), comment: 'nightly batch' });
    const answer = await postEvent({ id: `evt_st_${uid()}`, type: 'run.started', workflowId, runId: `run_${uid()}`, occurredAt: iso(now) });
    const deliveryId = answer.deliveries[0].deliveryId;

    const delivery = await eventually('the watch to end', async () => {
      const res = await api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      return res.status === 200 && res.body.status !== 'scheduled' && res.body.status !== 'in_progress' ? res.body : undefined;
    });
    assert.equal(delivery.status, 'silenced', JSON.stringify(delivery));
    assert.match(delivery.error, new RegExp(`^silenced by ${silenceId}.*nightly batch`));
    assert.deepEqual(delivery.attempts.map((a: { attempt: number; outcome: string }) => [a.attempt, a.outcome]), [[0, 'silenced']]);
    assert.ok(delivery.timeline.some((e: { event: string }) => e.event === 'not sent: silenced'), JSON.stringify(delivery.timeline));
    assert.equal(receiver.at(path).length, 0);
    // the overview shows it as the config's last delivery, with its status
    const overview = await api('GET', '/api/alerts/overview');
    assert.equal(overview.status, 200, JSON.stringify(overview.body));
  });

  it('keeps the end an earlier run of a fired watch\'s workflow task gave it (silenced, or a noise outcome), though routed again at a later clock nothing is silenced', async () => {
    // A workflow task that routed its watch silenced and ended the delivery can be lost before Temporal
    // hears of it (its worker dies, the task times out); its retry routes at a later clock, when the
    // silence may be over. The store keeps what the earlier run decided: written here as that run did.
    // A fired watch's AlertDelivery (as its DelayWatcher starts it) finds its row already ended so.
    const workflowId = `wf_lost_task_${uid()}`;
    const path = `/lost-task-${uid()}`;
    // an hour's threshold: the config's watcher leaves these watches alone; the test fires them itself
    const configId = await createConfig({ workflowId, conditions: [{ type: 'delay', thresholdSeconds: 3600 }], webhook: { url: receiver.on(path, () => ({ status: 200 })) } });
    const now = Date.now();
    const ended = { silenced: 'silenced by sil_gone: ended earlier', grouped: 'grouped into digest dlv-x-digest-y-1' } as const;
    const watches: Record<string, string> = {};
    for (const status of Object.keys(ended) as (keyof typeof ended)[]) {
      const event = { id: `evt_lt_${status}_${uid()}`, type: 'run.started' as const, workflowId, runId: `run_${uid()}`, occurredAt: iso(now) };
      const answer = await postEvent(event);
      const deliveryId = (watches[status] = answer.deliveries[0].deliveryId);
      // fired and started, as the watcher's pass leaves it; then ended by the earlier run of the lost task
      await stack.service.db.query(
        'UPDATE alert_deliveries SET status = $2, error = $3, watch_fired_at = now(), watch_started_at = now() WHERE delivery_id = $1 AND status = $4',
        [deliveryId, status, ended[status], 'scheduled'],
      );
      const input: AlertDeliveryInput = { deliveryId, projectId: project, configId, condition: 'delay', event, delaySeconds: 3600, watchFiredAtMs: Date.now() };
      await stack.service.temporal.client.workflow.start('AlertDelivery', { workflowId: deliveryId, taskQueue: stack.service.env.TEMPORAL_TASK_QUEUE, args: [input] });
    }
    for (const [status, deliveryId] of Object.entries(watches)) {
      const result = await stack.service.temporal.client.workflow.getHandle(deliveryId).result();
      assert.equal(result.status, status, JSON.stringify(result));
      assert.equal(result.error, ended[status as keyof typeof ended]);
    }
    assert.equal(receiver.at(path).length, 0, 'nothing was sent');
  });

  it("sends the fired delay watch of a noise config once its pipeline says send, and its timeline tells the wait", async () => {
    const workflowId = `wf_delay_noise_${uid()}`;
    const path = `/delay-noise-${uid()}`;
    await createConfig({
      workflowId, conditions: [{ type: 'delay', thresholdSeconds: 2 }], webhook: { url: receiver.on(path, () => ({ status: 200 })) }, throttle: { maxPerWindow: 10, windowSeconds: 60 },
    });
    const answer = await postEvent({ id: `evt_st_${uid()}`, type: 'run.started', workflowId, runId: `run_${uid()}`, occurredAt: iso(Date.now()) });
    const deliveryId = answer.deliveries[0].deliveryId;
    const [received] = await receiver.waitFor(path, 1);
    assert.equal(received.headers['webhook-id'], deliveryId);
    assert.equal(JSON.parse(received.body).condition, 'delay');
    const delivery = await eventually('the watch delivered', async () => {
      const res = await api('GET', `/api/alerts/deliveries/${encodeURIComponent(deliveryId)}`);
      return res.status === 200 && res.body.status === 'delivered' ? res.body : undefined;
    });
    const told = delivery.timeline.map((e: { event: string }) => e.event);
    const at = (what: string) => told.indexOf(what);
    assert.ok(at('delay timer fired: run still not finished') >= 0, JSON.stringify(told));
    assert.ok(at('delay timer fired: run still not finished') < at("waiting for the noise pipeline's decision"), JSON.stringify(told));
    assert.ok(at("waiting for the noise pipeline's decision") < at('noise pipeline decided'), JSON.stringify(told));
    assert.ok(at('noise pipeline decided') < at('webhook delivered'), JSON.stringify(told));
    assert.ok(!told.includes('waiting before the next attempt'), JSON.stringify(told));
  });

  it('counts no noise decision (attempt 0) as an attempt: not in the config stats, not in the failure rate', async () => {
    const stats = await api('GET', `/api/alerts/config/by-id/${silencedConfig}/stats`);
    assert.equal(stats.status, 200, JSON.stringify(stats.body));
    // one alert delivered; the silenced one (logged twice over, one row) is no attempt
    assert.equal(stats.body.totals.attempts, 1, JSON.stringify(stats.body.totals));
    assert.equal(stats.body.totals.delivered, 1);
    assert.equal(stats.body.totals.failed, 0);
    assert.equal(stats.body.totals.successRate, 1);

    // the project's rows, from every test above: its attempts (attempt ≥ 1) count, its noise decisions (attempt 0) do not
    const count = async (where: string) =>
      (await stack.service.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM alert_logs WHERE project_id = $1 AND ${where}`, [project]))[0].n;
    const decisions = await count('attempt = 0');
    assert.ok(decisions >= 2, `the tests above logged noise decisions (${decisions})`);
    const defaults = { ...defaultOperations().failureRate, windowSeconds: 3600 };
    const attempts = await attemptsOverWindows({ db: stack.service.db }, defaults, new Map(), Date.now());
    const mine = attempts.find((a) => a.projectId === project);
    assert.deepEqual(mine, { projectId: project, failed: await count("attempt >= 1 AND outcome IN ('failed', 'retrying')"), total: await count('attempt >= 1') });
    assert.ok(mine && mine.total >= 3);
  });
});
