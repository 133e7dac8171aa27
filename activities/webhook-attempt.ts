import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { request, type Dispatcher } from 'undici';
import { egressRefusalOf } from '../lib/egress';
import { dependencyUnavailable } from '../lib/errors';
import { maskUrl } from '../lib/audit';
import { logger } from '../lib/log';
import { noteAttempt } from '../lib/metrics';
import { afterRetryableFailure, classifyStatus, givingUp, parseRetryAfter, retryingIn, type RetrySettings } from '../lib/retry';
import type { DeliveryRef } from '../lib/schemas';
import { signatureHeaders } from '../lib/signing';
import type { ServiceDeps } from '../runtime/deps';
import { disableGoneConfig } from '../dispatch/endpoint-health';
import { logAttempt } from '../store/deliveries';

/**
 * One webhook attempt, whichever step makes it (the first inside the workflow task, the others in
 * the deliverWebhook activity), counted by its step (with the attempts cut off before it) before it
 * comes here: sign the exact bytes with a fresh timestamp, POST them, judge the answer by the retry
 * plan (lib/retry.ts) and write its log row (waiting for a store that is down: keepAnswer).
 */

/** The request every attempt of a delivery sends: rendered once, so every attempt sends the same bytes. */
export interface AttemptRequest {
  ref: DeliveryRef;
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  retry: RetrySettings;
}

/** What one POST came to, and what happens next. */
export interface AttemptVerdict {
  outcome: 'delivered' | 'retrying' | 'failed';
  httpStatus: number | null;
  /** the attempt's own error (HTTP 503, timed out ...), null when delivered */
  error: string | null;
  /** the error with what happens next ("…; retrying in 2000 ms"), for the delivery and Temporal's failure */
  message: string;
  /** retrying: wait this long before the next attempt */
  delayMs: number;
}

const attemptLog = logger('delivery');
const SNIPPET_BYTES = 1024;
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

/** What one signed POST came to on the wire: an answer, a network error, or a refusal by the egress policy. */
export interface PostResult {
  httpStatus: number | null;
  /** the first bytes of the answer's body */
  snippet: string | null;
  retryAfterMs?: number;
  networkError?: string;
  refusal?: string;
  durationMs: number;
}

/**
 * POSTs `body` with the Standard Webhooks `signature` headers through the egress dispatcher (a
 * connection only to checked addresses) and reads the answer. Shared by alert attempts and operator
 * alerts (activities/operator.ts); judging the answer is the caller's.
 */
export async function postSigned(
  dispatcher: Dispatcher,
  target: { url: string; headers: Record<string, string>; body: string; timeoutMs: number },
  signature: Record<string, string>,
): Promise<PostResult> {
  const started = performance.now();
  const result: Omit<PostResult, 'durationMs'> = { httpStatus: null, snippet: null };
  try {
    const res = await request(target.url, {
      dispatcher,
      method: 'POST',
      headers: { ...target.headers, 'content-type': 'application/json', 'user-agent': USER_AGENT, ...signature },
      body: target.body,
      signal: AbortSignal.timeout(target.timeoutMs),
      headersTimeout: target.timeoutMs,
      bodyTimeout: target.timeoutMs,
    });
    result.httpStatus = res.statusCode;
    const retryAfter = res.headers['retry-after'];
    result.retryAfterMs = parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    result.snippet = await readSnippet(res.body).catch(() => null);
  } catch (err) {
    const refused = egressRefusalOf(err);
    if (refused) result.refusal = `refused by the egress policy: ${refused.reason}`;
    else result.networkError = describeNetworkError(err, target.timeoutMs);
  }
  return { ...result, durationMs: Math.round(performance.now() - started) };
}

/**
 * One attempt of the delivery: `attempt` its number, `elapsedMs` the time since its first attempt
 * started, `stepStartedAtMs` when the step making it began (its start-to-close counts from then:
 * keepAnswer). A 410 disables the config. `movesDelivery`: the log write also moves the delivery row on
 * (in_progress while it will be retried, else its outcome), as the first attempt's step needs.
 */
export async function makeAttempt(
  // all of these for a 410: disabling the config raises config.disabled
  deps: Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>,
  dispatcher: Dispatcher,
  req: AttemptRequest,
  secrets: string[],
  { attempt, elapsedMs, stepStartedAtMs, movesDelivery = false }: { attempt: number; elapsedMs: number; stepStartedAtMs: number; movesDelivery?: boolean },
): Promise<AttemptVerdict> {
  const signature = signatureHeaders(secrets, req.ref.deliveryId, req.body);
  const { httpStatus, snippet, retryAfterMs, networkError, refusal, durationMs } = await postSigned(dispatcher, req, signature);

  const fail = (error: string, message = error): AttemptVerdict => ({ outcome: 'failed', httpStatus, error, message, delayMs: 0 });
  const judge = async (): Promise<AttemptVerdict> => {
    // the policy will not change between attempts: retrying cannot help
    if (refusal) return fail(refusal);
    const status = httpStatus === null ? 'retryable' : classifyStatus(httpStatus);
    if (status === 'delivered') return { outcome: 'delivered', httpStatus, error: null, message: `HTTP ${httpStatus}`, delayMs: 0 };
    const error = networkError ?? `HTTP ${httpStatus}`;
    if (status === 'gone') {
      await disableGoneConfig(deps, req.ref, `receiver answered 410 Gone at ${new Date().toISOString()} (delivery ${req.ref.deliveryId})`);
      return fail(`${error}: receiver is gone; the config was disabled`);
    }
    if (status === 'permanent') return fail(error);
    const next = afterRetryableFailure(req.retry, { attempt, elapsedMs, retryAfterMs });
    if (next.last) return fail(error, givingUp(error, attempt));
    return { outcome: 'retrying', httpStatus, error, message: retryingIn(error, next.delayMs), delayMs: next.delayMs };
  };

  const verdict = await judge();
  noteAttempt(req.ref.condition, verdict.outcome, durationMs);
  // one line per attempt; the URL's scheme and host only (its path may be its secret), never a header value, the body or a secret
  const { deliveryId, configId, projectId, runId, condition } = req.ref;
  attemptLog[verdict.outcome === 'delivered' ? 'info' : 'warn'](
    { deliveryId, configId, projectId, runId, condition, attempt, outcome: verdict.outcome, durationMs, httpStatus, error: verdict.error, url: maskUrl(req.url) },
    `webhook attempt ${attempt} ${verdict.outcome}: ${verdict.message}`,
  );
  await keepAnswer(req.ref, attempt, stepStartedAtMs, () =>
    logAttempt(
      deps.db,
      req.ref,
      { attempt, outcome: verdict.outcome, httpStatus, error: verdict.error, durationMs, responseSnippet: snippet, signatureHeaders: refusal ? null : signature },
      movesDelivery ? { status: verdict.outcome === 'retrying' ? 'in_progress' : verdict.outcome, error: verdict.outcome === 'failed' ? verdict.message : null } : undefined,
    ),
  );
  return verdict;
}

/** What the step keeps of its start-to-close timeout after the log write's last try: room to end before Temporal runs it again. */
const KEEP_ANSWER_MARGIN_MS = 2_000;
const KEEP_ANSWER_BACKOFF_MS = [100, 200, 400, 800, 1_000];

/**
 * Until when the step making this attempt may go on writing: its start-to-close timeout, counted from
 * when the step began (`startedAtMs`; Temporal's clock began a little earlier, when it handed the task
 * over: the margin covers that), less KEEP_ANSWER_MARGIN_MS. Not from when it was scheduled: a step
 * queued behind a busy worker would have no time left to wait at all. Past it, Temporal may run the
 * step again while this run still writes. Outside an activity (a test calling makeAttempt directly)
 * there is no step to keep time for: now.
 */
function keepAnswerDeadlineMs(startedAtMs: number): number {
  try {
    return startedAtMs + Context.current().info.startToCloseTimeoutMs - KEEP_ANSWER_MARGIN_MS;
  } catch {
    return Date.now();
  }
}

/**
 * Writes the log row of an attempt the receiver has answered. The row is what tells a later run of
 * the step that the receiver has the alert: lost, that run POSTs it again. So a store that is down
 * (PostgreSQL restarting: a refused or cut connection) is waited for while the activity has time
 * left (keepAnswerDeadlineMs, read only once a write failed); any other error, or a store still down
 * by then, fails the step as before (its next run counts the attempt lost and sends again). The
 * write is idempotent: a try whose answer was cut off after its commit is harmless.
 */
async function keepAnswer(ref: DeliveryRef, attempt: number, stepStartedAtMs: number, write: () => Promise<void>): Promise<void> {
  let until: number | undefined;
  for (let tries = 0; ; tries++) {
    try {
      await write();
      if (tries > 0) attemptLog.info({ deliveryId: ref.deliveryId, attempt, tries: tries + 1 }, `webhook attempt ${attempt}: its log row written once the store was back`);
      return;
    } catch (err) {
      const down = dependencyUnavailable(err);
      const wait = KEEP_ANSWER_BACKOFF_MS[Math.min(tries, KEEP_ANSWER_BACKOFF_MS.length - 1)]!;
      until ??= keepAnswerDeadlineMs(stepStartedAtMs);
      if (!down || Date.now() + wait > until) throw err;
      if (tries === 0) attemptLog.warn({ deliveryId: ref.deliveryId, attempt, error: down }, `webhook attempt ${attempt}: the store is unavailable (${down}); keeping the receiver's answer until it is back`);
      await sleep(wait);
    }
  }
}
