import type Koa from 'koa';
import { AlertsError } from '../lib/errors';
import type { AuthState } from './auth';

// Full buckets carry no information (a new bucket starts full); past this many keys they are dropped.
const PRUNE_ABOVE = 10_000;

export interface TakeResult {
  allowed: boolean;
  /** whole requests left in the bucket after this one */
  remaining: number;
  /** when refused: seconds until the next request is allowed */
  retryAfterSeconds: number;
}

/**
 * Token buckets in this process's memory, one per key: a bucket holds `perMinute` requests and
 * refills at perMinute / 60 a second, so a client may burst up to a minute's worth and then goes at
 * the steady rate. Each API replica keeps its own buckets.
 */
export function tokenBuckets(perMinute: number, now: () => number = Date.now) {
  const msPerRequest = 60_000 / perMinute;
  const buckets = new Map<string, { tokens: number; at: number }>();

  const refill = (bucket: { tokens: number; at: number }, t: number) => {
    bucket.tokens = Math.min(perMinute, bucket.tokens + (t - bucket.at) / msPerRequest);
    bucket.at = t;
  };

  return {
    take(key: string): TakeResult {
      const t = now();
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= PRUNE_ABOVE) {
          for (const [k, b] of buckets) {
            refill(b, t);
            if (b.tokens >= perMinute) buckets.delete(k);
          }
        }
        bucket = { tokens: perMinute, at: t };
        buckets.set(key, bucket);
      }
      refill(bucket, t);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterSeconds: 0 };
      }
      return { allowed: false, remaining: 0, retryAfterSeconds: Math.max(1, Math.ceil(((1 - bucket.tokens) * msPerRequest) / 1000)) };
    },
  };
}

/**
 * Per-token rate limit of the /api routes (runs after requireToken): 429 `rate_limited` with
 * Retry-After once a token's bucket is empty. `perMinute` 0 turns it off.
 */
export function rateLimitPerToken(perMinute: number): Koa.Middleware<AuthState> {
  if (perMinute <= 0) return (_ctx, next) => next();
  const buckets = tokenBuckets(perMinute);
  return async (ctx, next) => {
    const result = buckets.take(ctx.state.tokenId);
    ctx.set('RateLimit-Limit', String(perMinute));
    ctx.set('RateLimit-Remaining', String(result.remaining));
    if (!result.allowed) {
      ctx.set('Retry-After', String(result.retryAfterSeconds));
      throw new AlertsError(
        'rate_limited',
        `too many requests with this API token: at most ${perMinute} a minute; try again in ${result.retryAfterSeconds} s`,
        { limitPerMinute: perMinute, retryAfterSeconds: result.retryAfterSeconds },
      );
    }
    await next();
  };
}
