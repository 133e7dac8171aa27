import type Koa from 'koa';
import { AlertsError } from '../lib/errors';
import type { Queryable } from '../store/db';
import { findToken } from '../store/tokens';

export interface AuthState {
  projectId: string;
  /** id of the API token (`tok_…`, never the token itself): the rate limit's key and the audit log's "who" */
  tokenId: string;
}

const BEARER = /^Bearer\s+(\S{1,512})$/i;

/** Every /api route needs `Authorization: Bearer <token>`; the token decides the project. */
export function requireToken(db: Queryable): Koa.Middleware<AuthState> {
  return async (ctx, next) => {
    const match = BEARER.exec(ctx.get('authorization'));
    if (!match) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new AlertsError('unauthorized', 'missing or malformed Authorization header; send "Authorization: Bearer <token>"');
    }
    const token = await findToken(db, match[1]);
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new AlertsError('unauthorized', 'unknown API token');
    }
    ctx.state.projectId = token.projectId;
    ctx.state.tokenId = token.id;
    await next();
  };
}
