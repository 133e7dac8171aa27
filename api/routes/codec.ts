import Router from '@koa/router';
import type { Payload } from '@temporalio/common';
import type Koa from 'koa';
import { z } from 'zod';
import { AlertsPayloadCodec, PayloadRefusedError } from '../../lib/codec';
import { AlertsError } from '../../lib/errors';
import { requireToken, ROUTER_OPTIONS, type AuthState } from '../auth';
import { readJson } from '../body';
import type { ServiceDeps } from '../../runtime/deps';
import { parseInput } from '../errors';
import { codecPayloadsSchema, type codecPayloadSchema } from '../schemas';

/**
 * The codec endpoint of the Temporal Web UI and CLI (Temporal's remote codec protocol): `POST
 * /codec/decode` and `POST /codec/encode` with `{ payloads: [...] }` in proto3 JSON, each decoded or
 * encoded by the payload codec of the workers (lib/codec.ts), for the caller's project only.
 *
 * The token comes as `Authorization: Bearer <token>` (the CLI's `--codec-auth`), or as a path segment,
 * `/codec/<token>/decode`: the Web UI sends no header of ours (its "pass access token" sends its own
 * login's token, and only to https endpoints), so an operator sets the UI's codec endpoint in the
 * browser to `<API URL>/codec/<token>` (docs/security.md: "Reading alerts in the Temporal Web UI").
 */
export const CODEC_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
const PREFLIGHT_MAX_AGE_SECONDS = 600;
/** what the Web UI sends: content-type and X-Namespace always, Authorization with "pass access token" */
const ALLOWED_HEADERS = 'authorization, content-type, x-namespace';

type JsonPayload = z.input<typeof codecPayloadSchema>;

const fromJson = ({ metadata, data }: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([key, value]) => [key, new Uint8Array(Buffer.from(value, 'base64'))])),
  data: new Uint8Array(Buffer.from(data ?? '', 'base64')),
});

// a decoded message may hold its empty default as a plain array
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const toJson = ({ metadata, data }: Payload) => ({
  metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([key, value]) => [key, base64(value)])),
  data: base64(data ?? new Uint8Array()),
});

/**
 * CORS for /codec: the Web UI calls it from the user's browser, from the UI's origin. Allowed origins
 * get their preflight answered and the CORS headers on every answer; any other origin is refused (403)
 * before anything is decoded. Requests without an Origin (the CLI, curl) are not CORS requests.
 */
export function codecCors(allowedOrigins: Iterable<string>): Koa.Middleware {
  const allowed = new Set(allowedOrigins);
  return async (ctx, next) => {
    if (!(ctx.path === '/codec' || ctx.path.startsWith('/codec/'))) return next();
    ctx.vary('Origin');
    const origin = ctx.get('origin');
    if (origin) {
      if (!allowed.has(origin)) {
        throw new AlertsError('forbidden', `origin ${origin.slice(0, 200)} may not call the codec endpoint; add it to ALERTS_CODEC_CORS_ORIGINS`);
      }
      ctx.set('Access-Control-Allow-Origin', origin);
      ctx.set('Access-Control-Allow-Credentials', 'true');
    }
    if (ctx.method !== 'OPTIONS') return next();
    ctx.set('Allow', 'POST, OPTIONS');
    if (origin) {
      ctx.set('Access-Control-Allow-Methods', 'POST, OPTIONS');
      ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
    }
    ctx.status = 204;
  };
}

export function codecRoutes(deps: ServiceDeps): Router<AuthState> {
  const router = new Router<AuthState>(ROUTER_OPTIONS);
  const codec = new AlertsPayloadCodec(deps.keyring);
  const withBearer = requireToken(deps.db);
  const withPathToken = requireToken(deps.db, (ctx) => (ctx as unknown as { params: { token?: string } }).params.token);

  const convert = (direction: 'decode' | 'encode'): Koa.Middleware<AuthState> => async (ctx) => {
    const namespace = ctx.get('x-namespace');
    if (namespace && namespace !== deps.temporal.namespace) {
      throw new AlertsError('invalid_request', `this codec serves the Temporal namespace ${deps.temporal.namespace}, not ${namespace.slice(0, 200)}`);
    }
    const payloads = parseInput(codecPayloadsSchema, await readJson(ctx, CODEC_BODY_LIMIT_BYTES), 'body').payloads.map(fromJson);
    let converted: Payload[];
    try {
      converted = direction === 'decode' ? codec.decodeFor(ctx.state.projectId, payloads) : codec.encodeFor(ctx.state.projectId, payloads);
    } catch (err) {
      if (err instanceof PayloadRefusedError) throw new AlertsError(err.reason === 'not_yours' ? 'forbidden' : 'invalid_request', err.message);
      throw err;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { payloads: converted.map(toJson) };
  };

  router.post('/codec/decode', withBearer, convert('decode'));
  router.post('/codec/encode', withBearer, convert('encode'));
  router.post('/codec/:token/decode', withPathToken, convert('decode'));
  router.post('/codec/:token/encode', withPathToken, convert('encode'));
  return router;
}
