import type { ActivityOptions } from '@temporalio/common';
import type { AlertConfig } from './schemas';

/**
 * The retry plan of a delivery, built from its config's retry settings: the one place that says when
 * the next attempt comes and which attempt is the last. The activity follows it after each failed
 * attempt, the workflow derives the Temporal options of the retried attempts from it, and the API's
 * schedule preview (shown by the web UI) is computed by it. Pure: no I/O, safe in workflow code.
 */

export type RetrySettings = AlertConfig['retry'];

/** Fraction of each backoff delay that is randomized, so retries from many alerts do not arrive in step. */
export const JITTER = 0.2;
/** The longest Retry-After honoured beyond the config's maxIntervalMs: a bad header cannot park an alert for days. */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/** Our own backoff before the attempt after `attempt` (1-based), before jitter: exponential, capped at maxIntervalMs. */
const nominalDelayMs = (retry: RetrySettings, attempt: number) => Math.min(retry.initialIntervalMs * retry.backoffCoefficient ** (attempt - 1), retry.maxIntervalMs);

/**
 * Delay before the attempt after `attempt`: the receiver's Retry-After when it sent one (bounded),
 * else our backoff less up to JITTER of it at random.
 */
export function retryDelayMs(retry: RetrySettings, attempt: number, retryAfterMs?: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, Math.max(retry.maxIntervalMs, RETRY_AFTER_CAP_MS));
  return Math.max(1, Math.round(nominalDelayMs(retry, attempt) * (1 - JITTER * random())));
}

/** Whether `attempt` is the last: the count is used up, or the next attempt would start past maxDurationMs (counted from the first attempt). */
export const isLastAttempt = (retry: RetrySettings, attempt: number, elapsedMs: number, nextDelayMs: number): boolean =>
  attempt >= retry.maxAttempts || elapsedMs + nextDelayMs >= retry.maxDurationMs;

/** What follows a retryable failure of `attempt`: another attempt after `delayMs`, or the end of the delivery. */
export function afterRetryableFailure(
  retry: RetrySettings,
  failed: { attempt: number; elapsedMs: number; retryAfterMs?: number },
  random = Math.random,
): { last: boolean; delayMs: number } {
  const delayMs = retryDelayMs(retry, failed.attempt, failed.retryAfterMs, random);
  return { last: isLastAttempt(retry, failed.attempt, failed.elapsedMs, delayMs), delayMs };
}

/** How a retried attempt's error reads with what follows it: the failure Temporal records, the delivery timeline. */
export const retryingIn = (error: string, delayMs: number) => `${error}; retrying in ${delayMs} ms`;
/** A last attempt's failure as the delivery and Temporal's failure tell it. */
export const givingUp = (error: string, attempts: number) => `${error}; giving up after ${attempts} attempt${attempts > 1 ? 's' : ''}`;

/** One row of a schedule preview: when an attempt starts if every earlier one fails at once, without jitter. */
export interface ScheduledAttempt {
  attempt: number;
  /** after the attempt before it (0 for the first) */
  delayMs: number;
  /** after the first attempt */
  atMs: number;
}

/**
 * The attempts the settings allow, at their longest delays (jitter only shortens them) and with
 * instant failures: what the API's schedule preview answers and the web UI shows. `stopsBy` says
 * which limit ends it: the attempt count, or maxDurationMs.
 */
export function retrySchedule(retry: RetrySettings): { attempts: ScheduledAttempt[]; stopsBy: 'attempts' | 'duration' } {
  const attempts: ScheduledAttempt[] = [{ attempt: 1, delayMs: 0, atMs: 0 }];
  for (let attempt = 1; ; attempt++) {
    const at = attempts[attempts.length - 1].atMs;
    const delayMs = nominalDelayMs(retry, attempt);
    if (attempt >= retry.maxAttempts) return { attempts, stopsBy: 'attempts' };
    if (isLastAttempt(retry, attempt, at, delayMs)) return { attempts, stopsBy: 'duration' };
    attempts.push({ attempt: attempt + 1, delayMs, atMs: at + delayMs });
  }
}

/**
 * Temporal's options for the retried attempts (the deliverWebhook activity), derived from the plan.
 * The activity decides every delivery outcome itself (it hands Temporal the delay, or fails for
 * good after the plan's last attempt): Temporal's own policy governs only what the activity cannot
 * report, a worker that died or a store that failed mid-attempt. It sets no count of attempts: a run
 * that failed before its POST (the store down) made none, and an alert's attempts are counted by its
 * delivery (store/deliveries.ts claimRetriedAttempt; an operator alert, whose attempts are Temporal's
 * runs, adds the count: workflows/operator-alert.ts). Its limit is the plan's duration, counted from
 * the first attempt.
 */
export function retriedAttemptOptions(retry: RetrySettings, p: { timeoutMs: number; elapsedMs: number }): ActivityOptions {
  return {
    // the receiver's timeout plus time to load the secret and write the log row
    startToCloseTimeout: p.timeoutMs + 5_000,
    scheduleToCloseTimeout: Math.max(1_000, retry.maxDurationMs - p.elapsedMs),
    retry: {
      initialInterval: retry.initialIntervalMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: retry.maxIntervalMs,
    },
  };
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
