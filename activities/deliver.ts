import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { request, type Dispatcher } from 'undici';
import { egressRefusalOf } from '../lib/egress';
import { attemptDuration, deliveryAttempts, dispatchLatency } from '../lib/metrics';
import { backoffDelayMs, classifyStatus, parseRetryAfter, type RetrySettings } from '../lib/retry';
import { signatureHeaders } from '../lib/signing';
import { disableConfig, signingSecrets } from '../store/configs';
import { logAttempt, recordLostAttempts, type DeliveryRef } from '../store/deliveries';
import type { ActivityDeps } from './deps';

export interface DeliverRequest extends AttemptRequest {
  /** when the event reached the service: the first attempt reports the dispatch latency */
  receivedAt?: string;
  /** attempts made before this activity started (the first attempt, made in the workflow task) */
  attemptOffset?: number;
  /** when the first attempt started (epoch ms): the retry policy's maxDurationMs counts from it */
  firstAttemptAtMs?: number;
}

export interface DeliverResult {
  httpStatus: number;
  durationMs: number;
  attempt: number;
}

/** Failure types the workflow and the retry policy tell apart. */
export const RETRYABLE_FAILURE = 'RetryableDeliveryFailure';
export const PERMANENT_FAILURE = 'PermanentDeliveryFailure';
export const GONE_FAILURE = 'WebhookGone';

const SNIPPET_BYTES = 1024;
/** the longest Retry-After honoured beyond the config's maxIntervalMs */
export const RETRY_AFTER_CAP_MS = 3_600_000;
const MAX_BODY_READ_BYTES = 64 * 1024;
const USER_AGENT = 'MeshHook-Alerts/0.1 (+standard-webhooks)';

async function readSnippet(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < SNIPPET_BYTES) chunks.push(chunk);
    size += chunk.length;
    // read small bodies whole so the connection can be reused; cut large ones off
    if (size > MAX_BODY_READ_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, SNIPPET_BYTES).toString('utf8');
}

function describeNetworkError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') return `timed out after ${timeoutMs} ms`;
  const code = e.code ?? e.cause?.code;
  return `network error: ${code ? `${code} ` : ''}${e.cause?.message ?? e.message ?? String(err)}`.trim();
}

/** What one POST came to, and what happens next. */
export interface AttemptVerdict {
  outcome: 'delivered' | 'retrying' | 'failed';
  httpStatus: number | null;
  /** the attempt's own error (HTTP 503, timed out ...), null when delivered */
  error: string | null;
  /** the error with what happens next, for the failure Temporal records */
  message: string;
  /** the failure type to raise when not delivered */
  failureType: typeof RETRYABLE_FAILURE | typeof PERMANENT_FAILURE | typeof GONE_FAILURE | null;
  /** retrying: wait this long before the next attempt */
  delayMs: number;
  durationMs: number;
  responseSnippet: string | null;
  /** the webhook-* headers sent; null when nothing was sent (refused by the egress policy) */
  signatureHeaders: Record<string, string> | null;
}

/** The request a retried attempt needs; rendered once, so every attempt sends the same bytes. */
export interface AttemptRequest {
  ref: DeliveryRef;
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  retry: RetrySettings;
}

/**
 * One attempt: sign the exact bytes with a fresh timestamp, POST them and
 * judge the answer against the retry settings (`elapsedMs`: time since the
 * first attempt). A 410 disables the config. Writes no log row: the caller does.
 */
export async function attemptDelivery(
  deps: ActivityDeps,
  dispatcher: Dispatcher,
  req: AttemptRequest,
  secrets: string[],
  attempt: number,
  elapsedMs: number,
): Promise<AttemptVerdict> {
  const signature = signatureHeaders(secrets, req.ref.deliveryId, req.body);
  const headers = {
    ...req.headers,
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    ...signature,
  };
  const started = performance.now();
  let httpStatus: number | null = null;
  let snippet: string | null = null;
  let retryAfterMs: number | undefined;
  let networkError: string | undefined;
  let refusal: string | undefined;
  try {
    const res = await request(req.url, {
      dispatcher,
      method: 'POST',
      headers,
      body: req.body,
      signal: AbortSignal.timeout(req.timeoutMs),
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    });
    httpStatus = res.statusCode;
    const retryAfter = res.headers['retry-after'];
    retryAfterMs = parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    snippet = await readSnippet(res.body).catch(() => null);
  } catch (err) {
    const refused = egressRefusalOf(err);
    if (refused) refusal = `refused by the egress policy: ${refused.reason}`;
    else networkError = describeNetworkError(err, req.timeoutMs);
  }
  const durationMs = Math.round(performance.now() - started);
  attemptDuration.observe(durationMs / 1000);
  const base = { httpStatus, durationMs, responseSnippet: snippet, signatureHeaders: refusal ? null : signature, delayMs: 0 };
  const verdict = (v: Pick<AttemptVerdict, 'outcome' | 'error' | 'message' | 'failureType'> & { delayMs?: number }): AttemptVerdict => {
    deliveryAttempts.inc({ outcome: v.outcome });
    return { ...base, ...v };
  };

  if (refusal) {
    // the policy will not change between attempts: retrying cannot help
    return verdict({ outcome: 'failed', error: refusal, message: refusal, failureType: PERMANENT_FAILURE });
  }
  const status = httpStatus === null ? 'retryable' : classifyStatus(httpStatus);
  if (status === 'delivered') return verdict({ outcome: 'delivered', error: null, message: `HTTP ${httpStatus}`, failureType: null });
  const error = networkError ?? `HTTP ${httpStatus}`;
  if (status === 'gone') {
    await disableConfig(deps.db, req.ref.projectId, req.ref.configId, `receiver answered 410 Gone at ${new Date().toISOString()} (delivery ${req.ref.deliveryId})`);
    const message = `${error}: receiver is gone; the config was disabled`;
    return verdict({ outcome: 'failed', error: message, message, failureType: GONE_FAILURE });
  }
  if (status === 'permanent') return verdict({ outcome: 'failed', error, message: error, failureType: PERMANENT_FAILURE });
  // Retryable: the receiver's Retry-After wins over our own backoff (bounded, so a bad header cannot park an alert for days).
  const delayMs = retryAfterMs === undefined ? backoffDelayMs(attempt, req.retry) : Math.min(retryAfterMs, Math.max(req.retry.maxIntervalMs, RETRY_AFTER_CAP_MS));
  const last = attempt >= req.retry.maxAttempts || elapsedMs + delayMs >= req.retry.maxDurationMs;
  const message = last ? `${error}; giving up after ${attempt} attempt${attempt > 1 ? 's' : ''}` : `${error}; retrying in ${delayMs} ms`;
  return verdict({ outcome: last ? 'failed' : 'retrying', error, message, failureType: last ? PERMANENT_FAILURE : RETRYABLE_FAILURE, delayMs });
}

export function deliverActivities(deps: ActivityDeps, dispatcher: Dispatcher) {
  return {
    /**
     * A retried attempt (the first one runs in the workflow task: first-attempt.ts):
     * load the secrets, POST, log the attempt, and tell Temporal whether and when to try again.
     */
    async deliverWebhook(req: DeliverRequest): Promise<DeliverResult> {
      const info = Context.current().info;
      // the attempt as the receiver and the log count them, first attempts included
      const attempt = info.attempt + (req.attemptOffset ?? 0);
      const secrets = await signingSecrets(deps.db, deps.keyring, req.ref.projectId, req.ref.configId).catch(async (err) => {
        if ((err as { code?: string }).code !== 'not_found') throw err;
        await logAttempt(deps.db, req.ref, { attempt, outcome: 'failed', error: 'the alert config was deleted' });
        throw ApplicationFailure.create({ type: PERMANENT_FAILURE, message: 'the alert config was deleted', nonRetryable: true });
      });
      if (attempt > 1) await recordLostAttempts(deps.db, req.ref, attempt);
      if (attempt === 1 && req.receivedAt) dispatchLatency.observe((Date.now() - Date.parse(req.receivedAt)) / 1000);
      const elapsedMs = Date.now() - (req.firstAttemptAtMs ?? info.scheduledTimestampMs);
      const v = await attemptDelivery(deps, dispatcher, req, secrets, attempt, elapsedMs);
      await logAttempt(deps.db, req.ref, {
        attempt, outcome: v.outcome, httpStatus: v.httpStatus, error: v.error, durationMs: v.durationMs, responseSnippet: v.responseSnippet, signatureHeaders: v.signatureHeaders,
      });
      if (v.outcome === 'delivered') return { httpStatus: v.httpStatus!, durationMs: v.durationMs, attempt };
      throw ApplicationFailure.create({
        type: v.failureType!,
        message: v.message,
        nonRetryable: v.outcome === 'failed',
        ...(v.outcome === 'retrying' ? { nextRetryDelay: v.delayMs } : {}),
      });
    },
  };
}
