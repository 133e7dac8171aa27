import fs from 'node:fs';
import path from 'node:path';
import type { Keyring } from '../lib/crypto';
import { sealClearPayloadTemplates } from './configs';
import type { Db, Queryable } from './db';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');
// Arbitrary constant: every process that migrates this database takes the same lock.
const MIGRATION_LOCK_KEY = 727_004_211;

/**
 * What SQL cannot do (encrypt), run in a migration's transaction just before its SQL. A step is
 * given the keyring migrate() was given, and needs it only when there is something to seal; it
 * answers a line to log, if any.
 */
const STEPS_BEFORE_SQL: Record<string, (tx: Queryable, keyring: Keyring | undefined) => Promise<string | undefined>> = {
  '005_seal_payload_templates.sql': async (tx, keyring) => {
    const n = await sealClearPayloadTemplates(tx, keyring);
    return n > 0 ? `sealed the payload templates of ${n} alert config${n === 1 ? '' : 's'}` : undefined;
  },
};

export interface MigrateOptions {
  /** the folder of the .sql files (default: migrations/) */
  dir?: string;
  /** the keyring of the data at rest, for the migrations that seal what was stored in clear */
  keyring?: Keyring;
}

/**
 * Applies migrations/*.sql in file-name order, each in its own transaction,
 * recording each in schema_migrations. A session advisory lock makes two
 * processes starting at once take turns; the second finds nothing to do.
 */
export async function migrate(db: Db, log: (line: string) => void = () => undefined, options: MigrateOptions = {}): Promise<string[]> {
  const dir = options.dir ?? MIGRATIONS_DIR;
  const files = fs.readdirSync(dir).filter((f) => /^\d+.*\.sql$/.test(f)).sort();
  return db.session(async (conn) => {
    await conn.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await conn.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const done = new Set((await conn.query<{ version: string }>('SELECT version FROM schema_migrations')).map((r) => r.version));
      const applied: string[] = [];
      for (const file of files) {
        if (done.has(file)) continue;
        const sql = fs.readFileSync(path.join(dir, file), 'utf8');
        let stepLine: string | undefined;
        await conn.exec('BEGIN');
        try {
          stepLine = await STEPS_BEFORE_SQL[file]?.(conn, options.keyring);
          await conn.exec(sql);
          await conn.query('INSERT INTO schema_migrations (version) VALUES ($1)', [file]);
          await conn.exec('COMMIT');
        } catch (err) {
          await conn.exec('ROLLBACK');
          throw new Error(`migration ${file} failed: ${(err as Error).message}`);
        }
        if (stepLine) log(`${file}: ${stepLine}`);
        log(`applied migration ${file}`);
        applied.push(file);
      }
      return applied;
    } finally {
      await conn.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}
