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
