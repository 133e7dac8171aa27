/**
 * Errors a caller can act on. Each carries a stable code; the API maps the
 * code to an HTTP status in one place (api/errors.ts).
 */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  /** a config has held alerts: re-enabling it must say whether to send or discard them */
  | 'held_alerts_pending'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export class AlertsError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'AlertsError';
  }
}

export const notFound = (what: string) => new AlertsError('not_found', `${what} not found`);
export const invalid = (message: string, details?: unknown) => new AlertsError('invalid_request', message, details);

// Connection-level failures of PostgreSQL and of Temporal's gRPC: the dependency is down, restarting or
// overloaded, and the same request may succeed later. Anything else is a fault of ours (500).
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN']);
// SQLSTATE: 08 connection exception, 53 insufficient resources (53300 too many connections),
// 57P01-57P03 admin shutdown, crash shutdown, cannot connect now (starting up or shutting down)
const UNAVAILABLE_SQLSTATE = /^(08...|53...|57P0[1-3])$/;
const PG_CONNECTION_MESSAGE = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)/;
// gRPC status codes: 4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE
const UNAVAILABLE_GRPC = new Set([4, 8, 14]);

/**
 * Why a dependency (the store, Temporal) could not answer, when that is what `err` means; undefined
 * for any other error. Follows the `cause` chain (Temporal wraps gRPC errors in ServiceError).
 */
export function dependencyUnavailable(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown; name?: unknown; errors?: unknown[] } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const code = e.code;
    const message = typeof e.message === 'string' ? e.message.split('\n')[0] : '';
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return `${code}${message ? ` ${message}` : ''}`;
    if (typeof code === 'number' && UNAVAILABLE_GRPC.has(code) && (e.name === 'ServiceError' || 'details' in e || 'metadata' in e)) return message || `gRPC status ${code}`;
    if (PG_CONNECTION_MESSAGE.test(message)) return message;
    if (e.name === 'ServiceError' && /UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED/.test(message)) return message;
    // net's connect to several addresses fails with an AggregateError of ECONNREFUSED
    if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((inner) => dependencyUnavailable(inner))) return dependencyUnavailable(e.errors[0]);
  }
  return undefined;
}
