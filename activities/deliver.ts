import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { request } from 'undici';
import { egressRefusalOf } from '../lib/egress';
import { attemptDuration, deliveryAttempts, dispatchLatency } from '../lib/metrics';
import { backoffDelayMs, classifyStatus, parseRetryAfter, type RetrySettings } from '../lib/retry';
import { signatureHeaders } from '../lib/signing';
import { disableConfig, signingSecrets } from '../store/configs';
import { logAttempt, recordLostAttempts, type DeliveryRef } from '../store/deliveries';
import type { ActivityDeps } from './deps';
import { createEgressDispatcher } from './egress';

export interface DeliverRequest {
  ref: DeliveryRef;
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  retry: RetrySettings;
  /** when the event reached the service: the first attempt reports the dispatch latency */
  receivedAt?: string;
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

export function deliverActivities(deps: ActivityDeps) {
  // one dispatcher for every delivery of this worker: keep-alive pools per receiver, connections only to checked addresses
  const dispatcher = createEgressDispatcher(deps.egress);
  return {
    /**
     * One attempt: sign the exact bytes with a fresh timestamp, POST them,
     * log the attempt, and tell Temporal whether and when to try again.
     */
    async deliverWebhook(req: DeliverRequest): Promise<DeliverResult> {
      const info = Context.current().info;
      const attempt = info.attempt;
      const secrets = await signingSecrets(deps.db, deps.keyring, req.ref.projectId, req.ref.configId).catch(async (err) => {
        if ((err as { code?: string }).code !== 'not_found') throw err;
        await logAttempt(deps.db, req.ref, { attempt, outcome: 'failed', error: 'the alert config was deleted' });
        throw ApplicationFailure.create({ type: PERMANENT_FAILURE, message: 'the alert config was deleted', nonRetryable: true });
      });
      const signature = signatureHeaders(secrets, req.ref.deliveryId, req.body);
      const headers = {
        ...req.headers,
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        ...signature,
      };
      if (attempt > 1) await recordLostAttempts(deps.db, req.ref, attempt);
      const started = performance.now();
      if (attempt === 1 && req.receivedAt) dispatchLatency.observe((Date.now() - Date.parse(req.receivedAt)) / 1000);
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
      const verdict = httpStatus === null ? 'retryable' : classifyStatus(httpStatus);
      const log = (outcome: 'delivered' | 'retrying' | 'failed', error: string | null) => {
        deliveryAttempts.inc({ outcome });
        return logAttempt(deps.db, req.ref, { attempt, outcome, httpStatus, error, durationMs, responseSnippet: snippet, signatureHeaders: signature });
      };

      if (refusal) {
        // the policy will not change between attempts: retrying cannot help
        await log('failed', refusal);
        throw ApplicationFailure.create({ type: PERMANENT_FAILURE, message: refusal, nonRetryable: true });
      }
      if (verdict === 'delivered') {
        await log('delivered', null);
        return { httpStatus: httpStatus!, durationMs, attempt };
      }
      const error = networkError ?? `HTTP ${httpStatus}`;
      if (verdict === 'gone') {
        await disableConfig(deps.db, req.ref.projectId, req.ref.configId, `receiver answered 410 Gone at ${new Date().toISOString()} (delivery ${req.ref.deliveryId})`);
        await log('failed', `${error}: receiver is gone; the config was disabled`);
        throw ApplicationFailure.create({ type: GONE_FAILURE, message: `${error}: receiver is gone; the config was disabled`, nonRetryable: true });
      }
      if (verdict === 'permanent') {
        await log('failed', error);
        throw ApplicationFailure.create({ type: PERMANENT_FAILURE, message: error, nonRetryable: true });
      }
      // Retryable: the receiver's Retry-After wins over our own backoff (bounded, so a bad header cannot park an alert for days).
      const delayMs = retryAfterMs === undefined ? backoffDelayMs(attempt, req.retry) : Math.min(retryAfterMs, Math.max(req.retry.maxIntervalMs, RETRY_AFTER_CAP_MS));
      const elapsedMs = Date.now() - info.scheduledTimestampMs;
      const last = attempt >= req.retry.maxAttempts || elapsedMs + delayMs >= req.retry.maxDurationMs;
      const message = last ? `${error}; giving up after ${attempt} attempt${attempt > 1 ? 's' : ''}` : `${error}; retrying in ${delayMs} ms`;
      await log(last ? 'failed' : 'retrying', error);
      throw ApplicationFailure.create({ type: RETRYABLE_FAILURE, message, nonRetryable: last, nextRetryDelay: delayMs });
    },
  };
}
