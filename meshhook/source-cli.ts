// `npm run meshhook-source`: the MeshHook change source alone (no worker, no API), one process
// beside the workers. Needs MESHHOOK_DATABASE_URL and MESHHOOK_PROJECTS, DATABASE_URL (the alert
// configs) and TEMPORAL_ADDRESS; `npm start` runs the source itself when MESHHOOK_DATABASE_URL is set.
import { logger } from '../lib/log';
import { runService } from '../runtime/boot';

if (!process.env.MESHHOOK_DATABASE_URL) {
  logger('meshhook').error({}, 'MESHHOOK_DATABASE_URL is required: the MeshHook database to read run changes from (apply meshhook/outbox.up.sql there first)');
  process.exit(1);
}
void runService({ roles: { worker: false, api: false } });
