import { randomBytes } from 'node:crypto';
import { hashToken, newApiToken } from '../lib/crypto';
import type { Queryable } from './db';
import { readCache } from './read-cache';

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

/** on the embedded store, one lookup per token until a token is written (store/read-cache.ts) */
const tokenCache = readCache<{ id: string; projectId: string } | undefined>(['api_tokens']);

/** The stored token a bearer token is (its id and project), or undefined. */
export function findToken(db: Queryable, token: string): Promise<{ id: string; projectId: string } | undefined> {
  const hash = hashToken(token);
  return tokenCache(db, hash, async () => {
    const rows = await db.query<{ id: string; project_id: string }>('SELECT id, project_id FROM api_tokens WHERE token_hash = $1', [hash]);
    return rows[0] && { id: rows[0].id, projectId: rows[0].project_id };
  });
}

/** The project a bearer token belongs to, or undefined. */
export async function projectForToken(db: Queryable, token: string): Promise<string | undefined> {
  const rows = await db.query<{ project_id: string }>('SELECT project_id FROM api_tokens WHERE token_hash = $1', [hashToken(token)]);
  return rows[0]?.project_id;
}
