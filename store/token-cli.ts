// `npm run token -- <projectId> [label]`: creates an API token for a project and prints it once.
// With no DATABASE_URL it writes to the embedded store under DATA_DIR (stop `npm start` first: PGlite is single-process).
import { loadEnv } from '../lib/env';
import { loadKeyring } from '../runtime/boot';
import { openDatabase } from './db';
import { migrate } from './migrate';
import { createToken } from './tokens';

(async () => {
  const [projectId, label = 'npm run token'] = process.argv.slice(2);
  if (!projectId || !/^[A-Za-z0-9_.-]{1,100}$/.test(projectId)) {
    console.error('usage: npm run token -- <projectId> [label]   (project ids: letters, digits, _ . -)');
    process.exit(2);
  }
  const env = loadEnv();
  const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
  await migrate(db, () => undefined, { keyring: loadKeyring(env) });
  console.log(await createToken(db, projectId, label));
  await db.close();
})().catch((err) => {
  console.error(`[token] ${err.message}`);
  process.exit(1);
});
