import Router from '@koa/router';
import { z } from 'zod';
import { savedTargetRefusal } from '../../activities/egress';
import { processEvent, startDelivery } from '../../activities/events';
import { redeliveryId, testDeliveryId } from '../../lib/delivery-ids';
import { AlertsError, invalid, notFound } from '../../lib/errors';
import { buildTemplateContext } from '../../lib/render';
import { executionEventSchema, type AlertConditionName } from '../../lib/schemas';
import { TemplateError } from '../../lib/templates';
import { renderAlertSandboxed } from '../../runtime/template-sandbox';
import { getConfig, rotateSecret } from '../../store/configs';
import { attemptsOf, deliveryEvent, findDelivery, listDeliveries, listLogs, signatureHeadersOf } from '../../store/deliveries';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import type { ApiDeps } from '../deps';
import { validationError } from '../errors';
import { deliveriesQuerySchema, eventBatchSchema, logsQuerySchema, previewRequestSchema, rotateSecretRequestSchema, SAMPLE_EVENT, testAlertRequestSchema } from '../schemas';
import { describeStartingDelivery, readTimeline } from '../timeline';

// A body with an `events` key is a batch, anything else one event. Picking the schema first (not a
// z.union) lets a rejection name the wrong field: a union only reports "Invalid input".
const isBatch = (body: unknown) => typeof body === 'object' && body !== null && !Array.isArray(body) && 'events' in body;

const FIRST_ATTEMPT_POLL_MS = 25;

const temporalUrl = (deps: ApiDeps, deliveryId: string) =>
  deps.temporal.uiUrl ? `${deps.temporal.uiUrl}/namespaces/${encodeURIComponent(deps.temporal.namespace)}/workflows/${encodeURIComponent(deliveryId)}` : null;

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error, what);
  return parsed.data;
}

const PREVIEW_CONDITION: Partial<Record<string, AlertConditionName>> = {
  'run.failed': 'failure',
  'run.succeeded': 'success',
  'run.paused': 'manual_intervention',
  'run.canceled': 'canceled',
  'run.started': 'delay',
};
const previewCondition = (type: string): AlertConditionName => PREVIEW_CONDITION[type] ?? 'test';

/** Registers the event, test, preview, log and delivery routes on the /api router, whose middleware has checked the token. */
export function alertRoutes(router: Router<AuthState>, deps: ApiDeps): void {
  const temporal = { client: deps.temporal.client, taskQueue: deps.temporal.taskQueue };

  router.post('/api/events', async (ctx) => {
    const receivedAt = new Date();
    const body = await readJson(ctx);
    const events = isBatch(body) ? parse(eventBatchSchema, body, 'body').events : [parse(executionEventSchema, body, 'event')];
    const results = await Promise.all(events.map((event) => processEvent({ db: deps.db, ...temporal }, ctx.state.projectId, event, receivedAt)));
    ctx.status = 202;
    ctx.body = { accepted: events.length, deliveries: results.flat() };
  });

  router.post('/api/alerts/test', async (ctx) => {
    const { configId } = parse(testAlertRequestSchema, await readJson(ctx), 'body');
    const config = await getConfig(deps.db, deps.keyring, ctx.state.projectId, configId);
    const now = new Date().toISOString();
    const deliveryId = testDeliveryId(config.id);
    await startDelivery(temporal, {
      deliveryId,
      projectId: ctx.state.projectId,
      configId: config.id,
      condition: 'test',
      event: {
        id: `test-${deliveryId.slice(-12)}`,
        type: 'run.failed',
        occurredAt: now,
        workflowId: config.workflowId,
        runId: 'run_test',
        workflow: { name: config.name },
        run: { startedAt: now, finishedAt: now },
        error: { message: 'This is a test alert from MeshHook Alerts', step: 'test' },
        data: { test: true },
      },
    });
    // Answer with the first attempt's outcome: its log row, or the delivery's end if it failed before any attempt.
    const deadline = Date.now() + config.webhook.timeoutMs + 10_000;
    while (Date.now() < deadline) {
      const [first] = await attemptsOf(deps.db, ctx.state.projectId, deliveryId);
      if (first) {
        const signatureHeaders = await signatureHeadersOf(deps.db, ctx.state.projectId, deliveryId, first.attempt);
        ctx.body = {
          deliveryId, outcome: first.outcome, httpStatus: first.httpStatus, durationMs: first.durationMs, attempt: first.attempt, error: first.error, responseSnippet: first.responseSnippet,
          sentAt: first.createdAt, signatureHeaders,
        };
        return;
      }
      await new Promise((r) => setTimeout(r, FIRST_ATTEMPT_POLL_MS));
    }
    throw new AlertsError('unavailable', `the test delivery ${deliveryId} made no attempt in time; is a worker running?`, { deliveryId });
  });

  // Renders a config as a delivery would (in a template renderer process), against a sample event: the web UI's live preview.
  router.post('/api/alerts/preview', async (ctx) => {
    const { config, event: given, condition: asked } = parse(previewRequestSchema, await readJson(ctx), 'body');
    const event = given ?? { ...SAMPLE_EVENT, workflowId: config.workflowId };
    const condition: AlertConditionName = asked ?? previewCondition(event.type);
    const configId = config.id ?? 'cfg_preview';
    const deliveryId = `dlv-${configId}-${event.id}`;
    try {
      const rendered = await renderAlertSandboxed(config, buildTemplateContext(event, { id: configId, name: config.name }, condition, deliveryId));
      // the UI warns while the URL is typed, before a save would refuse it
      const refusal = await savedTargetRefusal(deps.egress, config.webhook.url);
      ctx.body = { ...rendered, condition, deliveryId, event, egressRefusal: refusal && `refused by the egress policy: ${refusal}` };
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      // "payload.template: …" or "webhook.headers.X: …": name the field as a save would
      const [, part = 'payload.template', message = err.message] = /^([\w.-]+): ([\s\S]*)$/.exec(err.message) ?? [];
      throw invalid(`config.${part}: ${message}`, { issues: [{ path: `config.${part}`, message: `template failed to render: ${message}` }] });
    }
  });

  router.get('/api/alerts/logs', async (ctx) => {
    const q = parse(logsQuerySchema, ctx.query, 'query');
    ctx.body = await listLogs(deps.db, ctx.state.projectId, { ...q, before: q.cursor });
  });

  router.get('/api/alerts/deliveries', async (ctx) => {
    const q = parse(deliveriesQuerySchema, ctx.query, 'query');
    ctx.body = { deliveries: await listDeliveries(deps.db, ctx.state.projectId, q) };
  });

  router.get('/api/alerts/deliveries/:deliveryId', async (ctx) => {
    const delivery = await findDelivery(deps.db, ctx.state.projectId, ctx.params.deliveryId);
    if (!delivery) {
      // started a moment ago: the workflow has not written its row yet
      const starting = await describeStartingDelivery(deps.temporal.client, ctx.state.projectId, ctx.params.deliveryId);
      if (!starting) throw notFound(`delivery ${ctx.params.deliveryId}`);
      ctx.body = { ...starting, attempts: [], timeline: await readTimeline(deps.temporal.client, starting.deliveryId), temporalUrl: temporalUrl(deps, starting.deliveryId) };
      return;
    }
    const [attempts, timeline] = await Promise.all([
      attemptsOf(deps.db, ctx.state.projectId, delivery.deliveryId),
      readTimeline(deps.temporal.client, delivery.deliveryId),
    ]);
    const { projectId: _projectId, ...visible } = delivery;
    ctx.body = {
      ...visible,
      attempts,
      timeline,
      temporalUrl: temporalUrl(deps, delivery.deliveryId),
    };
  });

  router.post('/api/alerts/deliveries/:deliveryId/redeliver', async (ctx) => {
    const { delivery, event } = await deliveryEvent(deps.db, deps.keyring, ctx.state.projectId, ctx.params.deliveryId);
    await getConfig(deps.db, deps.keyring, ctx.state.projectId, delivery.configId);
    const started = await startDelivery(temporal, {
      deliveryId: redeliveryId(delivery.redeliveryOf ?? delivery.deliveryId),
      projectId: ctx.state.projectId,
      configId: delivery.configId,
      condition: delivery.condition,
      event,
      redeliveryOf: delivery.redeliveryOf ?? delivery.deliveryId,
    });
    ctx.status = 202;
    ctx.body = { deliveryId: started.deliveryId, configId: started.configId, condition: started.condition, redeliveryOf: delivery.redeliveryOf ?? delivery.deliveryId };
  });

  router.post('/api/alerts/config/by-id/:configId/rotate-secret', async (ctx) => {
    const body = ctx.request.length ? parse(rotateSecretRequestSchema.optional(), await readJson(ctx), 'body') : undefined;
    const graceMs = body?.graceSeconds === undefined ? undefined : body.graceSeconds * 1000;
    const { secret, previousExpiresAt } = await rotateSecret(deps.db, deps.keyring, ctx.state.projectId, ctx.params.configId, graceMs, { tokenId: ctx.state.tokenId });
    ctx.body = { configId: ctx.params.configId, secret, previousSecretExpiresAt: previousExpiresAt };
  });
}
