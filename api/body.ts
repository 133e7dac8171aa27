import type Koa from 'koa';
import { AlertsError } from '../lib/errors';

export const BODY_LIMIT_BYTES = 1024 * 1024;
export const JSON_MAX_DEPTH = 32;

/** Whether the request has a body: a Content-Length above 0, or a chunked one (Transfer-Encoding, no length). */
export const hasBody = (ctx: Koa.Context): boolean => ctx.request.length > 0 || ctx.get('transfer-encoding') !== '';

/** Reads a JSON request body: size-limited, content-type checked, depth-limited. */
export async function readJson(ctx: Koa.Context, limitBytes = BODY_LIMIT_BYTES): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new AlertsError('unsupported_media_type', 'request body must be JSON (content-type: application/json)');
  }
  const declared = Number(ctx.get('content-length'));
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw tooLarge(limitBytes);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new AlertsError('invalid_request', 'request body is empty; JSON is expected');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AlertsError('invalid_request', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (depthOf(value) > JSON_MAX_DEPTH) throw new AlertsError('invalid_request', `request body is nested deeper than ${JSON_MAX_DEPTH} levels`);
  const nul = nulPath(value);
  if (nul !== undefined) throw new AlertsError('invalid_request', `${nul || 'request body'}: text must not contain the NUL character (\\u0000)`, { issues: [{ path: nul, message: 'contains the NUL character (\\u0000)' }] });
  return value;
}

// PostgreSQL text and jsonb cannot hold U+0000: refused here, it is a 400 naming the field instead of a failed INSERT.
function nulPath(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const childPath = Array.isArray(value) ? `${path}[${key}]` : path ? `${path}.${key}` : key;
    if (key.includes('\u0000')) return childPath;
    const found = nulPath(child, childPath);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A NUL (%00) in the path or the query string would reach the store the same way: 400 before any route runs. */
export async function refuseNulInUrl(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  if (ctx.url.includes('%00')) throw new AlertsError('invalid_request', 'the request path or query string contains the NUL character (%00)');
  await next();
}

function tooLarge(limitBytes: number) {
  return new AlertsError('payload_too_large', `request body is larger than ${limitBytes} bytes`);
}

function depthOf(value: unknown, depth = 0): number {
  if (depth > JSON_MAX_DEPTH) return depth;
  if (value === null || typeof value !== 'object') return depth;
  let max = depth + 1;
  for (const child of Object.values(value)) max = Math.max(max, depthOf(child, depth + 1));
  return max;
}
