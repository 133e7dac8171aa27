import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { z } from 'zod';
import { AlertsError, dependencyUnavailable, type ErrorCode } from '../lib/errors';
import { errorFields, logger } from '../lib/log';

const log = logger('api');
/** a caller's X-Request-Id is kept when it is short and plain; else the service makes one */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The one place where error codes become HTTP statuses. */
const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  held_alerts_pending: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** zod issues as `{ path, message }`, the path written the way a client names a field: `config.webhook.url`. */
export function describeIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.flatMap((issue) =>
    // zod reports unknown fields on their parent object; name each field itself
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: fieldPath([...issue.path, key]), message: `unknown field "${key}"` }))
      : [{ path: fieldPath(issue.path), message: issue.message }],
  );
}

const fieldPath = (path: PropertyKey[]) => path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');

export function validationError(error: z.ZodError, what: string): AlertsError {
  const issues = describeIssues(error);
  const first = issues[0];
  const summary = first ? `${first.path || what}: ${first.message}` : `invalid ${what}`;
  return new AlertsError('invalid_request', issues.length > 1 ? `${summary} (and ${issues.length - 1} more)` : summary, { issues });
}

/** The one way a route validates its input: the parsed value, or a 400 naming each wrong field. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error, what);
  return parsed.data;
}

/**
 * The error boundary: an error becomes `{ error: { code, message } }` with its status. Every answer
 * carries X-Request-Id; a 5xx is logged with it, the method and the route (never the body, the
 * query string or a header value), so an operator finds the line a user quotes.
 */
export async function errorMiddleware(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  const given = ctx.get('x-request-id');
  const requestId = REQUEST_ID.test(given) ? given : randomUUID();
  ctx.set('X-Request-Id', requestId);
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) {
      throw new AlertsError('not_found', `no route for ${ctx.method} ${ctx.path}`);
    }
    // the routers' allowedMethods answer a known path with another method (405, or 501 for a method they do not know) without a body
    if ((ctx.status === 405 || ctx.status === 501) && ctx.body == null) {
      const allowed = ctx.response.get('Allow');
      throw new AlertsError('method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}${allowed ? `; allowed: ${allowed}` : ''}`);
    }
  } catch (err) {
    const known = err instanceof AlertsError ? err : fromKoaError(err);
    ctx.status = STATUS[known.code];
    ctx.body = { error: { code: known.code, message: known.message, ...(known.details === undefined ? {} : { details: known.details }) } };
    if (ctx.status >= 500) {
      // the matched route pattern, else the path; the codec endpoint's path may hold an API token
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? ctx.path.replace(/^\/codec\/[^/]+\/(?=(de|en)code$)/, '/codec/***/');
      const fields = { requestId, method: ctx.method, route, status: ctx.status, code: known.code, ...(known.code === 'internal' ? errorFields(err) : {}) };
      const down = known.code === 'unavailable' ? dependencyUnavailable(err) : undefined;
      if (known.code === 'internal') log.error(fields, `${ctx.method} ${route} failed: ${(err as Error).message ?? String(err)}`);
      // the store or Temporal is down or restarting: nothing was stored, and the same request may be sent again
      else log.warn({ ...fields, ...(down ? { dependency: down } : {}) }, `${ctx.method} ${route} answered ${ctx.status}${down ? `: a dependency is unavailable: ${down}` : ` (${known.code})`}`);
    }
    // a caller may try the same request again later; event ids make that safe
    if (known.code === 'unavailable' && !ctx.response.get('Retry-After')) ctx.set('Retry-After', '1');
  }
}

function fromKoaError(err: unknown): AlertsError {
  const status = (err as { status?: number }).status;
  if (status === 413) return new AlertsError('payload_too_large', (err as Error).message);
  if (status === 415) return new AlertsError('unsupported_media_type', (err as Error).message);
  if (status && status >= 400 && status < 500) return new AlertsError('invalid_request', (err as Error).message);
  const down = dependencyUnavailable(err);
  if (down) {
    return new AlertsError('unavailable', 'the service cannot reach its store or Temporal right now; send the same request again shortly (event ids make resending safe)');
  }
  return new AlertsError('internal', 'internal error; see the service log');
}
