import type { AlertConfig } from './schemas';

export type RetrySettings = AlertConfig['retry'];

/** Fraction of each backoff delay that is randomized, so retries from many alerts do not arrive in step. */
export const JITTER = 0.2;

/**
 * Delay before the attempt after `attempt` (1-based): exponential from
 * initialIntervalMs by backoffCoefficient, capped at maxIntervalMs, minus up to
 * JITTER of it at random.
 */
export function backoffDelayMs(attempt: number, retry: RetrySettings, random = Math.random): number {
  const base = Math.min(retry.initialIntervalMs * retry.backoffCoefficient ** (attempt - 1), retry.maxIntervalMs);
  return Math.max(1, Math.round(base * (1 - JITTER * random())));
}

/** Parses Retry-After: delta-seconds or an HTTP-date. Returns ms, or undefined if absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export type AttemptClass = 'delivered' | 'retryable' | 'gone' | 'permanent';

/** DESIGN.md's outcome rules for an HTTP status (network errors and timeouts are retryable too). */
export function classifyStatus(status: number): AttemptClass {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retryable';
  if (status === 410) return 'gone';
  return 'permanent';
}
