import { eventsAcceptedSchema, MAX_EVENTS_PER_REQUEST } from '../api/schemas';
import { JITTER, parseRetryAfter } from '../lib/retry';
import { errorSchema, executionEventSchema, type ExecutionEvent } from '../lib/schemas';
import type { z } from 'zod';

/**
 * Publishing execution events over HTTP: POST /api/events, resent while the service is briefly
 * unreachable or busy. Resending is safe because the service is idempotent by event id: each
 * delivery's workflow id is built from the config id and the event id, so an event that already
 * got through (its answer lost to a dropped connection or a timeout) starts nothing new the second
 * time; the answer then marks its deliveries `duplicate: true`.
 */

/** POST /api/events's answer, summed over the requests of a split batch. */
export type EventsAccepted = z.infer<typeof eventsAcceptedSchema>;

export interface AlertsClientOptions {
  /** the service's base URL, e.g. `https://alerts.example.com` (a path prefix is kept) */
  url: string;
  /** an API token; its project is the one the events are matched in */
  token: string;
  fetch?: typeof fetch;
  /** tries per request, the first one included */
  maxAttempts?: number;
  initialDelayMs?: number;
  /** the longest wait between tries, a Retry-After included */
  maxDelayMs?: number;
  /** per try: connecting, sending and reading the answer */
  timeoutMs?: number;
}

export interface AlertsClient {
  /**
   * Sends one event, or a list (as `{ events }` batches of at most MAX_EVENTS_PER_REQUEST). Every
   * event is validated first: an invalid one throws the ZodError and nothing is sent.
   */
  publish(events: ExecutionEvent | ExecutionEvent[]): Promise<EventsAccepted>;
}

/** The API refused the request (a 4xx other than 429, or a 5xx that is not retried): sending it again would not help. */
export class AlertsApiError extends Error {
  override name = 'AlertsApiError';
  constructor(
    readonly status: number,
    /** the API's `error.code` (`invalid_request`, `unauthorized`, …), or `invalid_response` when the answer was not the API's */
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** Every try failed with a retryable reason (503, 429, 502, 504, a network error or a timeout). */
export class AlertsUnavailableError extends Error {
  override name = 'AlertsUnavailableError';
  constructor(
    readonly attempts: number,
    readonly lastReason: string,
    /** the last answer's status; undefined when the last try got none */
    readonly lastStatus?: number,
  ) {
    super(`POST /api/events failed after ${attempts} attempt${attempts === 1 ? '' : 's'}; last: ${lastReason}`);
  }
}

const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

type Try = { ok: true; answer: EventsAccepted } | { ok: false; reason: string; status?: number; retryAfterMs?: number };

export function createAlertsClient(options: AlertsClientOptions): AlertsClient {
  const { token, maxAttempts = 6, initialDelayMs = 200, maxDelayMs = 10_000, timeoutMs = 10_000 } = options;
  const doFetch = options.fetch ?? fetch;
  const endpoint = `${options.url.replace(/\/+$/, '')}/api/events`;

  /** Before the try after `attempt` (1-based): the server's Retry-After when it gave one, else exponential backoff less up to JITTER of it. */
  const delayMs = (attempt: number, retryAfterMs?: number) =>
    retryAfterMs !== undefined
      ? Math.min(retryAfterMs, maxDelayMs)
      : Math.round(Math.min(initialDelayMs * 2 ** (attempt - 1), maxDelayMs) * (1 - JITTER * Math.random()));

  async function tryOnce(body: string): Promise<Try> {
    let res: Response;
    let text: string;
    try {
      res = await doFetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      return { ok: false, reason: describeFailure(err, timeoutMs) };
    }
    if (res.ok) {
      const answer = eventsAcceptedSchema.safeParse(parseJson(text));
      if (!answer.success) throw new AlertsApiError(res.status, 'invalid_response', `the answer is not POST /api/events's: ${text.slice(0, 200)}`);
      return { ok: true, answer: answer.data };
    }
    const error = errorSchema.safeParse(parseJson(text));
    const code = error.success ? error.data.error.code : `http_${res.status}`;
    const message = error.success ? error.data.error.message : text.slice(0, 200) || res.statusText;
    if (!RETRYABLE_STATUSES.has(res.status)) throw new AlertsApiError(res.status, code, message, error.success ? error.data.error.details : undefined);
    return { ok: false, reason: `${res.status} ${code}: ${message}`, status: res.status, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) };
  }

  async function send(body: string): Promise<EventsAccepted> {
    for (let attempt = 1; ; attempt++) {
      const result = await tryOnce(body);
      if (result.ok) return result.answer;
      if (attempt >= maxAttempts) throw new AlertsUnavailableError(attempt, result.reason, result.status);
      await new Promise((resolve) => setTimeout(resolve, delayMs(attempt, result.retryAfterMs)));
    }
  }

  return {
    async publish(input) {
      const now = new Date().toISOString();
      // occurredAt is filled once, here, so every resend carries the time of the first send
      const events = (Array.isArray(input) ? input : [input]).map((event) => {
        const parsed = executionEventSchema.parse(event);
        return { ...parsed, occurredAt: parsed.occurredAt ?? now };
      });
      if (!Array.isArray(input)) return send(JSON.stringify(events[0]));
      const total: EventsAccepted = { accepted: 0, deliveries: [] };
      // one batch after another: a failure throws with the earlier batches accepted, and publishing
      // the whole list again is safe (the accepted events come back as duplicates)
      for (let i = 0; i < events.length; i += MAX_EVENTS_PER_REQUEST) {
        const answer = await send(JSON.stringify({ events: events.slice(i, i + MAX_EVENTS_PER_REQUEST) }));
        total.accepted += answer.accepted;
        total.deliveries.push(...answer.deliveries);
      }
      return total;
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause ? ` (${[cause.code, cause.message].filter(Boolean).join(': ')})` : '';
  return `network error: ${err instanceof Error ? err.message : String(err)}${detail}`;
}
