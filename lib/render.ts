import { literalAuthority } from './egress';
import { effectiveTemplate, type PresetName } from './presets';
import type { AlertConditionName, AlertConfig, ExecutionEvent } from './schemas';
import { newRenderBudget, renderJsonTemplate, renderString, TemplateError, type JsonValue } from './templates';

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
}

export function buildTemplateContext(
  event: ExecutionEvent,
  config: Pick<AlertConfig, 'id' | 'name'>,
  condition: AlertConditionName,
  deliveryId: string,
  now = Date.now(),
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
  };
}

const CONDITION_TEXT: Record<AlertConditionName, string> = {
  failure: 'failed',
  success: 'succeeded',
  manual_intervention: 'is waiting for manual intervention',
  canceled: 'was canceled',
  delay: 'is running longer than expected',
  test: 'test alert',
};

/** The payload sent when a config has no template (documented in docs/reference.md). */
export function defaultPayload(ctx: TemplateContext): JsonValue {
  const who = ctx.workflow.name ?? ctx.workflow.id;
  const text = ctx.condition === 'test'
    ? `Test alert for "${ctx.config.name}" (${who})`
    : `${who} run ${ctx.run.id} ${CONDITION_TEXT[ctx.condition]}${ctx.error?.message ? `: ${ctx.error.message}` : ''}`;
  return JSON.parse(
    JSON.stringify({
      type: `alert.${ctx.condition}`,
      text,
      condition: ctx.condition,
      workflow: ctx.workflow,
      run: ctx.run,
      error: ctx.error,
      event: { id: ctx.event.id, type: ctx.event.type, occurredAt: ctx.event.occurredAt ?? null },
      data: ctx.data,
      config: ctx.config,
      delivery: ctx.delivery,
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
 * part that failed.
 */
export function renderAlert(config: RenderableConfig, ctx: TemplateContext): RenderedAlert {
  const at = <T>(part: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new TemplateError(`${part}: ${(err as Error).message}`);
    }
  };
  // one budget of render time and output for the whole alert
  const budget = newRenderBudget();
  // checked at save too; a config saved before that rule (or written around the API) must not aim the alert by a template
  const authority = literalAuthority(config.webhook.url);
  if (authority === null || /[{}%]/.test(authority)) throw new TemplateError('webhook.url: the user info, host and port must be fixed text, not a template');
  const url = at('webhook.url', () => renderString(config.webhook.url, ctx, 'url', budget));
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
  const template = effectiveTemplate(config.payload);
  const body = at('payload.template', () => (template === null ? JSON.stringify(defaultPayload(ctx)) : renderJsonTemplate(template, ctx, budget)));
  return { url, headers, body };
}
