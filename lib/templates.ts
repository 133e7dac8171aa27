import { Liquid, type Context, type Template } from 'liquidjs';
import { AlertsError } from './errors';

/** What liquid's built-in capture tag holds (its fields are not in liquidjs's types). */
interface CaptureLike {
  liquid: Liquid;
  templates: Template[];
  variable: string;
}

/**
 * Alert templates: LiquidJS over a JSON template. Liquid runs no code, and we
 * refuse the tags that would read files. Every string in a payload template is
 * a template; a string that is exactly one `{{ expr }}` keeps the JSON type of
 * its value, so `"{{ run.durationMs }}"` renders as a number.
 */
export const TEMPLATE_LIMITS = {
  /** longest template string accepted at save time */
  maxTemplateChars: 16_384,
  /** ms of render time for one string */
  renderMs: 50,
  /** ms of render time for all the strings of one alert: URL, headers and payload together */
  alertRenderMs: 250,
  /** largest rendered payload, in bytes of JSON */
  maxOutputBytes: 256 * 1024,
  /** memory budget liquid may allocate during one render */
  memory: 4 * 1024 * 1024,
} as const;

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/**
 * A render that passed a time limit while it had used less CPU than that limit: the machine was busy
 * (the renderer waited for a core), not the template slow. Not a template error but `unavailable`:
 * rendering again may succeed, and a delivery renders again (its step is retried) instead of failing
 * for good. Thrown inside a renderer (lib/render.ts) and, across the process boundary, by
 * runtime/template-sandbox.ts (which also bounds how often one alert is rendered again).
 */
export class RenderStarvedError extends AlertsError {
  constructor(message: string) {
    super('unavailable', message);
    this.name = 'RenderStarvedError';
  }
}

/** CPU ms this process used since `from` (all its threads: at least the render's own) */
const cpuMsSince = (from: NodeJS.CpuUsage): number => {
  const { user, system } = process.cpuUsage(from);
  return (user + system) / 1000;
};

/**
 * A time limit of `limitMs` passed after `cpuMs` of CPU: the template's fault (TemplateError) when
 * it used at least half the limit's worth of CPU. The limits are wall-clock (LiquidJS's renderLimit
 * and the alert's deadline); a process that waits for a core (a loaded machine, a renderer just
 * started) passes them with a template that needs a fraction of them. Half, not all: a template
 * that spins on an idle machine uses about its whole limit, and must fail on every try, never be
 * rendered again and again.
 */
export const STARVED_BELOW = 0.5;

function timeLimitError(message: string, limitMs: number, cpuMs: number): Error {
  if (cpuMs >= limitMs * STARVED_BELOW) return new TemplateError(message);
  return new RenderStarvedError(`${message} after ${cpuMs.toFixed(1)} ms of CPU (its limit ${limitMs} ms): the machine was busy, not the template slow`);
}

/** LiquidJS's message when its renderLimit passed */
const LIQUID_RENDER_LIMIT = /^template render limit exceeded\b/;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

function makeEngine(outputEscape?: (value: unknown) => string): Liquid {
  const engine = new Liquid({
    strictFilters: true,
    ownPropertyOnly: true,
    parseLimit: TEMPLATE_LIMITS.maxTemplateChars * 2,
    renderLimit: TEMPLATE_LIMITS.renderMs,
    memoryLimit: TEMPLATE_LIMITS.memory,
    outputEscape,
  });
  // capture builds a string liquid's memory budget does not see: charge it, so that a capture doubled
  // in a loop stops here with a clear message (the renderer process's heap bounds every other way)
  const BuiltinCapture = engine.tags.capture as unknown as new (...args: never[]) => CaptureLike;
  engine.registerTag('capture', class extends BuiltinCapture {
    *render(ctx: Context): Generator<unknown, void, string> {
      const html = yield this.liquid.renderer.renderTemplates(this.templates, ctx);
      ctx.memoryLimit.use(html.length);
      ctx.bottom()[this.variable] = html;
    }
  } as unknown as Parameters<Liquid['registerTag']>[1]);
  for (const tag of ['include', 'render', 'layout']) {
    engine.registerTag(tag, {
      parse() {
        throw new Error(`the "${tag}" tag is not allowed in alert templates`);
      },
      render() {
        return '';
      },
    });
  }
  return engine;
}

const textEngine = makeEngine();
const urlEngine = makeEngine((value) => encodeURIComponent(value == null ? '' : String(value)));

const EXACT_EXPRESSION = /^\s*\{\{-?\s*([\s\S]+?)\s*-?\}\}\s*$/;
const parsedCache = new Map<string, Template[]>();
const PARSED_CACHE_MAX = 2_000;

function parseCached(engine: Liquid, key: string, source: string): Template[] {
  const cacheKey = `${engine === urlEngine ? 'u' : 't'}:${key}`;
  let parsed = parsedCache.get(cacheKey);
  if (!parsed) {
    if (source.length > TEMPLATE_LIMITS.maxTemplateChars) {
      throw new TemplateError(`template is longer than ${TEMPLATE_LIMITS.maxTemplateChars} characters`);
    }
    try {
      parsed = engine.parse(source);
    } catch (err) {
      throw new TemplateError(describeLiquidError(err));
    }
    if (parsedCache.size >= PARSED_CACHE_MAX) parsedCache.delete(parsedCache.keys().next().value!);
    parsedCache.set(cacheKey, parsed);
  }
  return parsed;
}

function describeLiquidError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // liquid appends the whole source after a comma and line info; keep the first line readable
  return message.split('\n')[0].slice(0, 300);
}

function exactExpression(source: string): string | undefined {
  const match = EXACT_EXPRESSION.exec(source);
  if (!match) return undefined;
  const inner = match[1];
  return inner.includes('{{') || inner.includes('}}') || inner.includes('{%') ? undefined : inner;
}

/** Checks a template string at save time; throws TemplateError naming the problem. */
export function checkTemplateString(source: string, kind: 'text' | 'url' = 'text'): void {
  parseCached(kind === 'url' ? urlEngine : textEngine, source, source);
}

/** Every string of a JSON template, with its JSON path, for save-time checks. */
export function* templateStrings(template: JsonValue, path: (string | number)[] = []): Generator<[string, (string | number)[]]> {
  if (typeof template === 'string') yield [template, path];
  else if (Array.isArray(template)) for (let i = 0; i < template.length; i++) yield* templateStrings(template[i], [...path, i]);
  else if (template && typeof template === 'object') for (const [k, v] of Object.entries(template)) yield* templateStrings(v, [...path, k]);
}

function toJson(value: unknown): JsonValue {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJson(v);
    return out;
  }
  return String(value);
}

/**
 * What one alert may spend on rendering, across all of its template strings. The per-string limits
 * alone would let a config of many strings (64 KiB of payload template, 32 headers) multiply them:
 * hundreds of 50 ms loops, or hundreds of strings of megabytes each, before the final size check.
 */
export interface RenderBudget {
  deadline: number;
  bytesLeft: number;
  /** this process's CPU when the alert's render began */
  cpuAtStart: NodeJS.CpuUsage;
}

export const newRenderBudget = (): RenderBudget => ({
  deadline: Date.now() + TEMPLATE_LIMITS.alertRenderMs,
  bytesLeft: TEMPLATE_LIMITS.maxOutputBytes,
  cpuAtStart: process.cpuUsage(),
});

const alertTimeLimitError = (budget: RenderBudget) =>
  timeLimitError(`rendering the alert took longer than ${TEMPLATE_LIMITS.alertRenderMs} ms`, TEMPLATE_LIMITS.alertRenderMs, cpuMsSince(budget.cpuAtStart));

function renderLimitOf(budget: RenderBudget): number {
  const left = budget.deadline - Date.now();
  if (left <= 0) throw alertTimeLimitError(budget);
  return Math.min(TEMPLATE_LIMITS.renderMs, left);
}

function spend(budget: RenderBudget, bytes: number): void {
  budget.bytesLeft -= bytes;
  if (budget.bytesLeft < 0) throw new TemplateError(`rendered payload is larger than ${TEMPLATE_LIMITS.maxOutputBytes} bytes (all templates of the alert together)`);
}

export function renderString(source: string, context: object, kind: 'text' | 'url' = 'text', budget: RenderBudget = newRenderBudget()): string {
  const engine = kind === 'url' ? urlEngine : textEngine;
  const parsed = parseCached(engine, source, source);
  let out: string;
  const renderLimit = renderLimitOf(budget);
  const cpuAtStart = process.cpuUsage();
  try {
    out = String(engine.renderSync(parsed, context, { renderLimit }));
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    const message = describeLiquidError(err);
    if (!LIQUID_RENDER_LIMIT.test(message)) throw new TemplateError(message);
    // this string's limit, or (when the alert's deadline cut it shorter) the alert's
    throw renderLimit < TEMPLATE_LIMITS.renderMs ? alertTimeLimitError(budget) : timeLimitError(message, renderLimit, cpuMsSince(cpuAtStart));
  }
  spend(budget, Buffer.byteLength(out));
  return out;
}

function renderValue(template: JsonValue, context: object, budget: RenderBudget): JsonValue {
  if (typeof template === 'string') {
    const expression = exactExpression(template);
    if (expression === undefined) return renderString(template, context, 'text', budget);
    parseCached(textEngine, template, template);
    renderLimitOf(budget);
    let value: JsonValue;
    try {
      value = toJson(textEngine.evalValueSync(expression, context));
    } catch (err) {
      throw new TemplateError(describeLiquidError(err));
    }
    spend(budget, typeof value === 'string' ? Buffer.byteLength(value) : JSON.stringify(value).length);
    return value;
  }
  if (Array.isArray(template)) return template.map((item) => renderValue(item, context, budget));
  if (template && typeof template === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [key, value] of Object.entries(template)) out[key] = renderValue(value, context, budget);
    return out;
  }
  return template;
}

/** Renders a JSON template into the exact body bytes to send. Always valid JSON. */
export function renderJsonTemplate(template: JsonValue, context: object, budget: RenderBudget = newRenderBudget()): string {
  const body = JSON.stringify(renderValue(template, context, budget));
  if (Buffer.byteLength(body) > TEMPLATE_LIMITS.maxOutputBytes) {
    throw new TemplateError(`rendered payload is larger than ${TEMPLATE_LIMITS.maxOutputBytes} bytes`);
  }
  return body;
}
