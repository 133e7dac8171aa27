import type Router from '@koa/router';
import type { ServiceDeps } from '../../runtime/deps';
import { listLogs } from '../../store/deliveries';
import type { AuthState } from '../auth';
import { parseInput } from '../errors';
import { logsQuerySchema } from '../schemas';

/** GET /api/alerts/logs: the attempt log, newest first, one page at a time. */
export function logRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.get('/api/alerts/logs', async (ctx) => {
    const q = parseInput(logsQuerySchema, ctx.query, 'query');
    ctx.body = await listLogs(deps.db, ctx.state.projectId, { ...q, before: q.cursor });
  });
}
