import type Koa from 'koa';
import { AlertsError } from '../lib/errors';
import type { Queryable } from '../store/db';
import { findToken } from '../store/tokens';

export interface AuthState {
  projectId: string;
  /** id of the API token (`tok_…`, never the token itself): the rate limit's key and the audit log's "who" */
  tokenId: string;
}

/**
 * Every router of the app matches paths exactly as written (case-sensitive), so the path a router
 * serves is the path its middleware saw: `/API/events` is no route, not an unauthenticated one.
 */
export const ROUTER_OPTIONS = { sensitive: true } as const;

const BEARER = /^Bearer\s+(\S{1,512})$/i;

const bearerToken = (ctx: Koa.Context) => BEARER.exec(ctx.get('authorization'))?.[1];

/**
 * Every /api route needs `Authorization: Bearer <token>`; the token decides the project. `tokenOf`
 * reads it elsewhere (the codec endpoint also takes it in its path, for the Temporal Web UI).
 */
export function requireToken(db: Queryable, tokenOf: (ctx: Koa.Context) => string | undefined = bearerToken): Koa.Middleware<AuthState> {
  return async (ctx, next) => {
    const presented = tokenOf(ctx);
    if (!presented) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new AlertsError('unauthorized', 'missing or malformed Authorization header; send "Authorization: Bearer <token>"');
    }
    const token = await findToken(db, presented);
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new AlertsError('unauthorized', 'unknown API token');
    }
    ctx.state.projectId = token.projectId;
    ctx.state.tokenId = token.id;
    await next();
  };
}
