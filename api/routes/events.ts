import type Router from '@koa/router';
import { dispatchEvent, sharedConfigLookup } from '../../dispatch/process-event';
import { executionEventSchema } from '../../lib/schemas';
import type { ServiceDeps } from '../../runtime/deps';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { eventBatchSchema } from '../schemas';

// A body with an `events` key is a batch, anything else one event. Picking the schema first (not a
// z.union) lets a rejection name the wrong field: a union only reports "Invalid input".
const isBatch = (body: unknown) => typeof body === 'object' && body !== null && !Array.isArray(body) && 'events' in body;

/** POST /api/events: MeshHook's events, matched and dispatched by the code its Temporal way in runs too. */
export function eventRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/events', async (ctx) => {
    const receivedAt = new Date();
    const body = await readJson(ctx);
    const events = isBatch(body) ? parseInput(eventBatchSchema, body, 'body').events : [parseInput(executionEventSchema, body, 'event')];
    // the batch's events of one workflow are matched against one lookup of its configs
    const configsOf = sharedConfigLookup(deps, ctx.state.projectId);
    const results = await Promise.all(events.map((event) => dispatchEvent(deps, ctx.state.projectId, event, receivedAt, configsOf)));
    ctx.status = 202;
    // held: alerts of configs the service disabled, kept until they are re-enabled (docs/endpoint-health.md)
    ctx.body = { accepted: events.length, deliveries: results.flatMap((r) => r.deliveries), held: results.flatMap((r) => r.held) };
  });
}
