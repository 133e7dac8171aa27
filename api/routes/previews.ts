import type Router from '@koa/router';
import type { z } from 'zod';
import { conditionOfEvent } from '../../lib/conditions';
import { configDeliveryIdPrefix, immediateDeliveryId } from '../../lib/delivery-ids';
import { invalid } from '../../lib/errors';
import { digestDeliveryId, groupKey, recoveryDeliveryId, type DigestGroup } from '../../lib/noise';
import { buildTemplateContext, type NoiseContext } from '../../lib/render';
import { JITTER, retrySchedule } from '../../lib/retry';
import { GROUP_FIELDS, retrySchema, type AlertConditionName, type AlertConfigInput, type ExecutionEvent } from '../../lib/schemas';
import { TemplateError } from '../../lib/templates';
import type { ServiceDeps } from '../../runtime/deps';
import { savedTargetRefusal } from '../../runtime/egress';
import { renderAlertSandboxed } from '../../runtime/template-sandbox';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { previewRequestSchema, SAMPLE_EVENT } from '../schemas';

/** What a config would do, computed by the code deliveries run; nothing is sent or stored. The web UI's live previews. */
export function previewRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  // Renders a config as a delivery would (in a template renderer process), against a sample event.
  router.post('/api/alerts/preview', async (ctx) => {
    const { config, event: given, condition: asked, sample } = parseInput(previewRequestSchema, await readJson(ctx), 'body');
    const configId = config.id ?? 'cfg_preview';
    const { event, condition, deliveryId, extras } = previewAlert(given ?? { ...SAMPLE_EVENT, workflowId: config.workflowId }, asked, config, configId, sample);
    try {
      const rendered = await renderAlertSandboxed(config, buildTemplateContext(event, { id: configId, name: config.name }, condition, deliveryId, Date.now(), extras));
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

  // The attempts a config's retry settings allow (lib/retry.ts, the plan deliveries follow), with the defaults filled in.
  router.post('/api/alerts/retry-schedule', async (ctx) => {
    const retry = parseInput(retrySchema, await readJson(ctx), 'retry');
    ctx.body = { retry, ...retrySchedule(retry), jitter: JITTER };
  });
}

type PreviewRequest = z.infer<typeof previewRequestSchema>;
const MINUTE_MS = 60_000;
/** An ISO time written as the sample event writes its own ("…T10:00:00Z"). */
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
/** How many runs a previewed digest holds (fewer are listed when the config's grouping.maxEvents is lower). */
const PREVIEW_DIGEST_RUNS = 3;

/**
 * The alert a preview renders: one alert of the event; or, for `sample`, what the noise pipeline
 * would send (docs/noise-control.md): a first digest of runs like the event, a minute apart, the
 * event the newest; or the recovery of an incident of 4 failures over 5 minutes, the event turned
 * into the successful run that ends it. Ids are built as the pipeline builds them.
 */
function previewAlert(
  given: ExecutionEvent,
  asked: AlertConditionName | undefined,
  config: AlertConfigInput,
  configId: string,
  sample: PreviewRequest['sample'],
): { event: ExecutionEvent; condition: AlertConditionName; deliveryId: string; extras: NoiseContext } {
  const event = { ...given, occurredAt: given.occurredAt ?? new Date().toISOString() };
  const at = Date.parse(event.occurredAt);
  if (sample === 'recovery') {
    const succeeded: ExecutionEvent =
      event.type === 'run.succeeded' ? event : { ...event, id: `${event.id}_ok`, type: 'run.succeeded', runId: `${event.runId}_ok`, error: undefined };
    const failingForMs = 5 * MINUTE_MS;
    return {
      event: succeeded,
      condition: 'recovered',
      deliveryId: recoveryDeliveryId(immediateDeliveryId(configId, event.id)),
      extras: {
        recovery: { failingSince: isoSeconds(at - failingForMs), recoveredAt: event.occurredAt, failingForMs, failures: 4, incidentKey: event.workflowId },
      },
    };
  }
  if (sample === 'digest') {
    const eventCondition = asked ?? conditionOfEvent(event.type);
    const condition = eventCondition === undefined || eventCondition === 'test' || eventCondition === 'recovered' ? 'failure' : eventCondition;
    const by = config.grouping?.by ?? [GROUP_FIELDS[0]];
    // oldest first; the event itself is the newest
    const runs = Array.from({ length: PREVIEW_DIGEST_RUNS }, (_, i) => {
      const last = i === PREVIEW_DIGEST_RUNS - 1;
      const id = last ? event.id : `${event.id}_${i + 1}`;
      return {
        id,
        type: event.type,
        workflowId: event.workflowId,
        runId: last ? event.runId : `${event.runId}_${i + 1}`,
        occurredAt: last ? event.occurredAt : isoSeconds(at - (PREVIEW_DIGEST_RUNS - 1 - i) * MINUTE_MS),
        error: event.error ?? null,
        deliveryId: immediateDeliveryId(configId, id),
      };
    });
    const listed = runs.slice(0, config.grouping?.maxEvents ?? runs.length);
    const group: DigestGroup = {
      key: groupKey(by, event, condition),
      by,
      condition,
      count: runs.length,
      events: listed,
      more: runs.length - listed.length,
      firstAt: runs[0].occurredAt,
      lastAt: runs[runs.length - 1].occurredAt,
      digest: 1,
    };
    return { event, condition, deliveryId: digestDeliveryId({ idPrefix: configDeliveryIdPrefix(configId), chain: 'preview' }, 1), extras: { group } };
  }
  return { event: given, condition: asked ?? conditionOfEvent(given.type) ?? 'test', deliveryId: `dlv-${configId}-${given.id}`, extras: {} };
}
