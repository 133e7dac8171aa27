import { Liquid, type Template } from 'liquidjs';

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

export function renderString(source: string, context: object, kind: 'text' | 'url' = 'text'): string {
  const engine = kind === 'url' ? urlEngine : textEngine;
  const parsed = parseCached(engine, source, source);
  try {
    return String(engine.renderSync(parsed, context));
  } catch (err) {
    throw new TemplateError(describeLiquidError(err));
  }
}

function renderValue(template: JsonValue, context: object): JsonValue {
  if (typeof template === 'string') {
    const expression = exactExpression(template);
    if (expression === undefined) return renderString(template, context);
    parseCached(textEngine, template, template);
    try {
      return toJson(textEngine.evalValueSync(expression, context));
    } catch (err) {
      throw new TemplateError(describeLiquidError(err));
    }
  }
  if (Array.isArray(template)) return template.map((item) => renderValue(item, context));
  if (template && typeof template === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [key, value] of Object.entries(template)) out[key] = renderValue(value, context);
    return out;
  }
  return template;
}

/** Renders a JSON template into the exact body bytes to send. Always valid JSON. */
export function renderJsonTemplate(template: JsonValue, context: object): string {
  const body = JSON.stringify(renderValue(template, context));
  if (Buffer.byteLength(body) > TEMPLATE_LIMITS.maxOutputBytes) {
    throw new TemplateError(`rendered payload is larger than ${TEMPLATE_LIMITS.maxOutputBytes} bytes`);
  }
  return body;
}
