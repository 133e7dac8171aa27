import type Router from '@koa/router';
import { enableConfig } from '../../dispatch/held-alerts';
import type { ServiceDeps } from '../../runtime/deps';
import { getConfig, publicConfig } from '../../store/configs';
import { countHeld, listHeld } from '../../store/held';
import type { AuthState } from '../auth';
import { hasBody, readJson } from '../body';
import { parseInput } from '../errors';
import { enableConfigRequestSchema, heldQuerySchema } from '../schemas';

/** A config's held alerts (kept while the service has it disabled), and re-enabling it (docs/endpoint-health.md). */
export function heldRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.get('/api/alerts/config/by-id/:configId/held', async (ctx) => {
    const q = parseInput(heldQuerySchema, ctx.query, 'query');
    const { projectId } = ctx.state;
    const { configId } = ctx.params;
    await getConfig(deps.db, deps.keyring, projectId, configId);
    const page = await listHeld(deps.db, projectId, configId, { limit: q.limit, before: q.before ?? q.cursor });
    ctx.body = { held: page.held, count: await countHeld(deps.db, projectId, configId), nextCursor: page.nextCursor };
  });

  router.post('/api/alerts/config/by-id/:configId/enable', async (ctx) => {
    const body = hasBody(ctx) ? parseInput(enableConfigRequestSchema, await readJson(ctx), 'body') : {};
    const { projectId } = ctx.state;
    const held = await enableConfig(deps, projectId, ctx.params.configId, body.held, { tokenId: ctx.state.tokenId });
    ctx.body = { config: publicConfig(await getConfig(deps.db, deps.keyring, projectId, ctx.params.configId)), held };
  });
}
