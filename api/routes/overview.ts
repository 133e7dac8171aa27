import type Router from '@koa/router';
import type { ServiceDeps } from '../../runtime/deps';
import { getConfig } from '../../store/configs';
import { configStats, projectOverview } from '../../store/stats';
import type { AuthState } from '../auth';
import { parseInput } from '../errors';
import { statsQuerySchema } from '../schemas';

/** Insight for the web UI: the project at a glance, and one config's hourly numbers. */
export function overviewRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.get('/api/alerts/overview', async (ctx) => {
    ctx.body = await projectOverview(deps.db, ctx.state.projectId);
  });

  router.get('/api/alerts/config/by-id/:configId/stats', async (ctx) => {
    const { hours } = parseInput(statsQuerySchema, ctx.query, 'query');
    // a config of another project (or none) is a 404, as everywhere
    await getConfig(deps.db, deps.keyring, ctx.state.projectId, ctx.params.configId);
    ctx.body = await configStats(deps.db, ctx.state.projectId, ctx.params.configId, hours);
  });
}
