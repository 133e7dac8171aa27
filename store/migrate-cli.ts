// `npm run migrate`: applies the migrations to DATABASE_URL (or the embedded store under DATA_DIR).
import { loadEnv } from '../lib/env';
import { loadKeyring } from '../runtime/boot';
import { openDatabase } from './db';
import { migrate } from './migrate';

(async () => {
  const env = loadEnv();
  const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
  // migration 005 seals payload templates stored in clear: it needs the keyring
  const applied = await migrate(db, (line) => console.log(`[migrate] ${line}`), { keyring: loadKeyring(env) });
  console.log(`[migrate] ${applied.length === 0 ? 'already up to date' : `${applied.length} applied`}`);
  await db.close();
})().catch((err) => {
  console.error(`[migrate] ${err.message}`);
  process.exit(1);
});
