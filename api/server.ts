// `npm run api`: the HTTP API alone (needs TEMPORAL_ADDRESS and DATABASE_URL), scaled apart from the worker.
import { runService } from '../runtime/boot';

void runService({ roles: { worker: false, api: true } });
