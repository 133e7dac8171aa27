import { randomBytes } from 'node:crypto';
import { hashToken, newApiToken } from '../lib/crypto';
import type { Queryable } from './db';

export async function countTokens(db: Queryable): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens');
  return row.n;
}

/** Stores a token (its hash only); an already-known token keeps its project. */
export async function addToken(db: Queryable, token: string, projectId: string, label = ''): Promise<void> {
  await db.query(
    `INSERT INTO api_tokens (id, token_hash, project_id, label) VALUES ($1, $2, $3, $4)
     ON CONFLICT (token_hash) DO NOTHING`,
    [`tok_${randomBytes(9).toString('base64url')}`, hashToken(token), projectId, label],
  );
}

export async function createToken(db: Queryable, projectId: string, label = ''): Promise<string> {
  const token = newApiToken();
  await addToken(db, token, projectId, label);
  return token;
}

/** The stored token a bearer token is (its id and project), or undefined. */
export async function findToken(db: Queryable, token: string): Promise<{ id: string; projectId: string } | undefined> {
  const rows = await db.query<{ id: string; project_id: string }>('SELECT id, project_id FROM api_tokens WHERE token_hash = $1', [hashToken(token)]);
  return rows[0] && { id: rows[0].id, projectId: rows[0].project_id };
}

/** The project a bearer token belongs to, or undefined. */
export async function projectForToken(db: Queryable, token: string): Promise<string | undefined> {
  const rows = await db.query<{ project_id: string }>('SELECT project_id FROM api_tokens WHERE token_hash = $1', [hashToken(token)]);
  return rows[0]?.project_id;
}

/** How long a found token is served from memory before the store is asked again. */
export const TOKEN_CACHE_TTL_MS = 30_000;
const TOKEN_CACHE_MAX = 1_000;

/**
 * findToken with the tokens found kept in memory for TOKEN_CACHE_TTL_MS, keyed by the token's hash
 * (never the token): every API request looks its token up, and that was one store statement per event.
 * Tokens are only ever added (no route or CLI removes one), so a cached token cannot be stale unless a
 * row is deleted by hand, which then holds for at most the TTL in each API process. Unknown tokens are
 * not cached: a token created through another process works on its first request.
 */
export function cachedTokenLookup(db: Queryable, ttlMs = TOKEN_CACHE_TTL_MS): (token: string) => Promise<{ id: string; projectId: string } | undefined> {
  const found = new Map<string, { token: { id: string; projectId: string }; until: number }>();
  return async (token) => {
    const key = hashToken(token);
    const hit = found.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.token;
    const rows = await db.query<{ id: string; project_id: string }>('SELECT id, project_id FROM api_tokens WHERE token_hash = $1', [key]);
    if (!rows[0]) {
      found.delete(key);
      return undefined;
    }
    const result = { id: rows[0].id, projectId: rows[0].project_id };
    found.delete(key);
    // the oldest entry goes first (a Map iterates in insertion order)
    if (found.size >= TOKEN_CACHE_MAX) found.delete(found.keys().next().value as string);
    found.set(key, { token: result, until: now + ttlMs });
    return result;
  };
}
