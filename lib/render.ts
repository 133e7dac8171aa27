import { literalAuthority } from './egress';
import { presetRequest, urlWithPath, type PresetName } from './presets';
import type { DigestGroup, NoiseSummary, RecoveryInfo } from './noise';
import type { AlertConditionName, AlertConfig, ExecutionEvent } from './schemas';
import { newRenderBudget, renderJsonTemplate, renderString, RenderStarvedError, TemplateError, type JsonValue } from './templates';

/** The one context every template sees (DESIGN.md, "Templates see one context"). */
export interface TemplateContext {
  workflow: { id: string; name: string | null; version: string | number | null };
  run: { id: string; startedAt: string | null; finishedAt: string | null; durationMs: number | null };
  error: ExecutionEvent['error'] | null;
  event: ExecutionEvent;
  data: Record<string, unknown>;
  condition: AlertConditionName;
  config: { id: string; name: string };
  delivery: { id: string };
  /** a digest's group (docs/noise-control.md); null for an alert of one event */
  group: DigestGroup | null;
  /** a recovery notification's incident (condition `recovered`); null otherwise */
  recovery: RecoveryInfo | null;
  /** what the noise pipeline held back since the last alert that went out; null when nothing */
  noise: NoiseSummary | null;
}

/** What an alert of the noise pipeline adds to the context (workflows/types.ts AlertDeliveryInput's group, recovery, noise). */
export interface NoiseContext {
  group?: DigestGroup;
  recovery?: RecoveryInfo;
  noise?: NoiseSummary;
}

export function buildTemplateContext(
  event: ExecutionEvent,
  config: Pick<AlertConfig, 'id' | 'name'>,
  condition: AlertConditionName,
  deliveryId: string,
  now = Date.now(),
  extras: NoiseContext = {},
): TemplateContext {
  const startedAt = event.run?.startedAt ?? (event.type === 'run.started' ? event.occurredAt ?? null : null);
  const finishedAt = event.run?.finishedAt ?? null;
  // A delay alert describes a run still going: its duration so far.
  const end = finishedAt ? Date.parse(finishedAt) : condition === 'delay' ? now : undefined;
  return {
    workflow: { id: event.workflowId, name: event.workflow?.name ?? null, version: event.workflow?.version ?? null },
    run: { id: event.runId, startedAt, finishedAt, durationMs: startedAt && end !== undefined ? Math.max(0, end - Date.parse(startedAt)) : null },
    error: event.error ?? null,
    event,
    data: event.data ?? {},
    condition,
    config: { id: config.id, name: config.name },
    delivery: { id: deliveryId },
    group: extras.group ?? null,
    recovery: extras.recovery ?? null,
    noise: extras.noise ?? null,
  };
}

const CONDITION_TEXT: Record<AlertConditionName, string> = {
  failure: 'failed',
  success: 'succeeded',
  manual_intervention: 'is waiting for manual intervention',
  canceled: 'was canceled',
  delay: 'is running longer than expected',
  test: 'test alert',
  recovered: 'recovered',
};

/** A digest's runs after their count: "1 failed run", "12 failed runs". */
function groupText(condition: AlertConditionName, count: number): string {
  const runs = count === 1 ? 'run' : 'runs';
  switch (condition) {
    case 'failure': return `failed ${runs}`;
    case 'success': return `succeeded ${runs}`;
    case 'manual_intervention': return `${runs} waiting for manual intervention`;
    case 'canceled': return `canceled ${runs}`;
    case 'delay': return `${runs} running longer than expected`;
    default: return `${condition} ${runs}`;
  }
}

/** "5m 3s", "2h 0m", "41s": a duration as the default payload words it. */
export function durationText(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** " (also held back since …: 3 throttled, 1 silenced)", or '' when nothing was. */
function heldBackText(noise: NoiseSummary | null): string {
  if (!noise) return '';
  const parts = ([['throttled', noise.throttled], ['silenced', noise.silenced], ['deduplicated', noise.deduplicated], ['repeats not sent', noise.repeatSuppressed]] as const)
    .filter(([, n]) => n > 0)
    .map(([what, n]) => `${n} ${what}`);
  return parts.length ? ` (held back since ${noise.since}: ${parts.join(', ')})` : '';
}

/** The payload sent when a config has no template (documented in docs/reference.md). */
export function defaultPayload(ctx: TemplateContext): JsonValue {
  const who = ctx.workflow.name ?? ctx.workflow.id;
  const text = (ctx.condition === 'test'
    ? `Test alert for "${ctx.config.name}" (${who})`
    : ctx.group
      ? `${who}: ${ctx.group.count} ${groupText(ctx.group.condition, ctx.group.count)} between ${ctx.group.firstAt} and ${ctx.group.lastAt}`
      : ctx.recovery
        ? `${who} recovered after failing for ${durationText(ctx.recovery.failingForMs)} (${ctx.recovery.failures} ${ctx.recovery.failures === 1 ? 'failure' : 'failures'})`
        : `${who} run ${ctx.run.id} ${CONDITION_TEXT[ctx.condition]}${ctx.error?.message ? `: ${ctx.error.message}` : ''}`) + heldBackText(ctx.noise);
  return JSON.parse(
    JSON.stringify({
      type: ctx.group ? `alert.${ctx.condition}.digest` : `alert.${ctx.condition}`,
      text,
      condition: ctx.condition,
      workflow: ctx.workflow,
      run: ctx.run,
      error: ctx.error,
      event: { id: ctx.event.id, type: ctx.event.type, occurredAt: ctx.event.occurredAt ?? null },
      data: ctx.data,
      config: ctx.config,
      delivery: ctx.delivery,
      // only when there is one: an alert of one event keeps the shape it always had
      ...(ctx.group ? { group: ctx.group } : {}),
      ...(ctx.recovery ? { recovery: ctx.recovery } : {}),
      ...(ctx.noise ? { noise: ctx.noise } : {}),
    }),
  );
}

export interface RenderedAlert {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** What renderAlert reads of a config: its webhook, and its payload's preset and template. */
export interface RenderableConfig {
  webhook: AlertConfig['webhook'];
  payload: { preset?: PresetName | null; template: unknown };
}

/**
 * Renders URL, headers and body of one alert. The body is the payload's template merged over its
 * preset's (lib/presets.ts), or the default payload with neither. Throws TemplateError naming the
 * part that failed, or RenderStarvedError (naming it too) when a time limit passed on a busy machine.
 */
export function renderAlert(config: RenderableConfig, ctx: TemplateContext): RenderedAlert {
  const at = <T>(part: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof RenderStarvedError) throw new RenderStarvedError(`${part}: ${err.message}`);
      throw new TemplateError(`${part}: ${(err as Error).message}`);
    }
  };
  // one budget of render time and output for the whole alert
  const budget = newRenderBudget();
  // checked at save too; a config saved before that rule (or written around the API) must not aim the alert by a template
  const authority = literalAuthority(config.webhook.url);
  if (authority === null || /[{}%]/.test(authority)) throw new TemplateError('webhook.url: the user info, host and port must be fixed text, not a template');
  // a preset's recovery may go to another endpoint under the same URL (Opsgenie's close)
  const request = presetRequest(config.payload, ctx.condition);
  const url = at('webhook.url', () => renderString(urlWithPath(config.webhook.url, request.path), ctx, 'url', budget));
  at('webhook.url', () => {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error(`rendered URL has scheme ${parsed.protocol}`);
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(config.webhook.headers)) {
    const rendered = at(`webhook.headers.${name}`, () => renderString(value, ctx, 'text', budget));
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(rendered)) throw new TemplateError(`webhook.headers.${name}: rendered value contains control characters`);
    headers[name] = rendered;
  }
  const template = request.template;
  const body = at('payload.template', () => (template === null ? JSON.stringify(defaultPayload(ctx)) : renderJsonTemplate(template, ctx, budget)));
  return { url, headers, body };
}
