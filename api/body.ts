import type Koa from 'koa';
import { AlertsError } from '../lib/errors';

export const BODY_LIMIT_BYTES = 1024 * 1024;
export const JSON_MAX_DEPTH = 32;

/** Reads a JSON request body: size-limited, content-type checked, depth-limited. */
export async function readJson(ctx: Koa.Context): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new AlertsError('unsupported_media_type', 'request body must be JSON (content-type: application/json)');
  }
  const declared = Number(ctx.get('content-length'));
  if (declared > BODY_LIMIT_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT_BYTES) throw tooLarge();
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
  return value;
}

function tooLarge() {
  return new AlertsError('payload_too_large', `request body is larger than ${BODY_LIMIT_BYTES} bytes`);
}

function depthOf(value: unknown, depth = 0): number {
  if (depth > JSON_MAX_DEPTH) return depth;
  if (value === null || typeof value !== 'object') return depth;
  let max = depth + 1;
  for (const child of Object.values(value)) max = Math.max(max, depthOf(child, depth + 1));
  return max;
}
