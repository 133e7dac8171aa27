// `npm start`: the whole service in one process. With no TEMPORAL_ADDRESS it
// also runs the Temporal dev server; with no DATABASE_URL, the embedded PGlite store.
import { runService } from './runtime/boot';

void runService({ roles: { worker: true, api: true } });
