import { timingSafeEqual } from 'node:crypto';
import { SECRET_PREFIX, signPayload } from './signing';

/**
 * The receiver's side of lib/signing.ts (https://www.standardwebhooks.com): check an alert's
 * `webhook-id`, `webhook-timestamp` and `webhook-signature` against the raw body and one or more
 * secrets (several during a rotation), then parse the body.
 */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;
const MIN_SECRET_BYTES = 24;

export type VerificationCheck = 'missing_header' | 'bad_timestamp' | 'timestamp_too_old' | 'timestamp_too_new' | 'bad_signature' | 'bad_secret' | 'bad_body';

export class AlertVerificationError extends Error {
  constructor(
    readonly check: VerificationCheck,
    message: string,
  ) {
    super(message);
    this.name = 'AlertVerificationError';
  }
}

export type AlertHeaders = Record<string, string | string[] | undefined> | Headers;

export interface VerifyOptions {
  toleranceSeconds?: number;
  now?: Date;
}

function header(headers: AlertHeaders, name: string): string {
  let value: string | string[] | null | undefined;
  if (headers instanceof Headers) value = headers.get(name);
  else value = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  const text = Array.isArray(value) ? value.join(' ') : value; // a repeated header, as Node would join it
  if (!text) throw new AlertVerificationError('missing_header', `the ${name} header is missing: pass the request's headers as received (was it sent by MeshHook Alerts?)`);
  return text;
}

/** Throws a bad_secret AlertVerificationError unless `secret` looks like an alert config's secret. */
export function checkSecret(secret: string): void {
  const key = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : undefined;
  if (key === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length < MIN_SECRET_BYTES)
    throw new AlertVerificationError('bad_secret', `a secret is not "whsec_" + base64 of at least ${MIN_SECRET_BYTES} bytes: copy the whole secret of the alert config`);
}

/** Verifies one alert and returns its parsed JSON body; throws AlertVerificationError naming the failed check. */
export function verifyAlert<T = unknown>(rawBody: string | Buffer, headers: AlertHeaders, secrets: string | string[], options: VerifyOptions = {}): T {
  const keys = typeof secrets === 'string' ? [secrets] : secrets;
  if (keys.length === 0) throw new AlertVerificationError('bad_secret', 'no secret given: pass the secret of the alert config');
  keys.forEach(checkSecret);

  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');

  if (!/^\d+$/.test(timestampText)) throw new AlertVerificationError('bad_timestamp', `webhook-timestamp "${timestampText}" is not unix seconds`);
  const timestamp = Number(timestampText);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const age = Math.floor((options.now ?? new Date()).getTime() / 1000) - timestamp;
  if (age > tolerance) throw new AlertVerificationError('timestamp_too_old', `webhook-timestamp is ${age} s old, more than the ${tolerance} s tolerance: a replayed request, or this machine's clock is behind`);
  if (-age > tolerance) throw new AlertVerificationError('timestamp_too_new', `webhook-timestamp is ${-age} s in the future, more than the ${tolerance} s tolerance: this machine's clock is ahead`);

  // the signature covers the exact bytes sent; bytes that are not UTF-8 cannot be the JSON we signed
  const body = typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8');
  if (typeof rawBody !== 'string' && !Buffer.from(body, 'utf8').equals(rawBody)) throw new AlertVerificationError('bad_body', 'the body is not UTF-8: pass the raw request bytes');

  const passed = signatures.split(' ').filter((s) => s.startsWith('v1,')).map((s) => Buffer.from(s));
  const matches = keys.some((secret) => {
    const expected = Buffer.from(signPayload(secret, id, timestamp, body));
    return passed.some((candidate) => candidate.length === expected.length && timingSafeEqual(candidate, expected));
  });
  if (!matches)
    throw new AlertVerificationError('bad_signature', `no v1 signature matches ${keys.length === 1 ? 'the secret' : `any of the ${keys.length} secrets`}: check it is this alert config's secret, and verify the raw body as received (not re-serialized JSON)`);

  try {
    return JSON.parse(body) as T;
  } catch {
    throw new AlertVerificationError('bad_body', 'the signature is valid but the body is not JSON');
  }
}
