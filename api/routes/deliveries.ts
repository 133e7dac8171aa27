import type Router from '@koa/router';
import { startDelivery } from '../../dispatch/start-delivery';
import { redeliveryId } from '../../lib/delivery-ids';
import { notFound } from '../../lib/errors';
import type { ServiceDeps } from '../../runtime/deps';
import { getConfig } from '../../store/configs';
import { attemptsOf, deliveryEvent, findDelivery, listDeliveries } from '../../store/deliveries';
import { watchStory } from '../../store/watches';
import type { AuthState } from '../auth';
import { parseInput } from '../errors';
import { deliveriesQuerySchema } from '../schemas';
import { deliveryStartInput, describeStartingDelivery, readTimeline } from '../timeline';

const temporalUrl = ({ temporal }: ServiceDeps, deliveryId: string) =>
  temporal.uiUrl ? `${temporal.uiUrl}/namespaces/${encodeURIComponent(temporal.namespace)}/workflows/${encodeURIComponent(deliveryId)}` : null;

/** The deliveries: a list, one with its attempts and Temporal timeline, and a redelivery. */
export function deliveryRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.get('/api/alerts/deliveries', async (ctx) => {
    const q = parseInput(deliveriesQuerySchema, ctx.query, 'query');
    ctx.body = { deliveries: await listDeliveries(deps.db, ctx.state.projectId, q) };
  });

  router.get('/api/alerts/deliveries/:deliveryId', async (ctx) => {
    const delivery = await findDelivery(deps.db, ctx.state.projectId, ctx.params.deliveryId);
    if (!delivery) {
      // started a moment ago: the workflow has not written its row yet
      const starting = await describeStartingDelivery(deps.temporal.client, ctx.state.projectId, ctx.params.deliveryId);
      if (!starting) throw notFound(`delivery ${ctx.params.deliveryId}`);
      const { timeline } = await readTimeline(deps.temporal.client, starting.deliveryId, async () => []);
      ctx.body = { ...starting, attempts: [], timeline, temporalUrl: temporalUrl(deps, starting.deliveryId) };
      return;
    }
    // a delay watch held as a row tells its watch from the row (docs/delay-watches.md)
    const loadWatch = delivery.condition === 'delay' ? () => watchStory(deps.db, ctx.state.projectId, delivery.deliveryId) : undefined;
    const { attempts, timeline } = await readTimeline(deps.temporal.client, delivery.deliveryId, () => attemptsOf(deps.db, ctx.state.projectId, delivery.deliveryId), delivery.error, loadWatch);
    const { projectId: _projectId, ...visible } = delivery;
    ctx.body = { ...visible, attempts, timeline, temporalUrl: temporalUrl(deps, delivery.deliveryId) };
  });

  router.post('/api/alerts/deliveries/:deliveryId/redeliver', async (ctx) => {
    const { delivery, event } = await deliveryEvent(deps.db, deps.keyring, ctx.state.projectId, ctx.params.deliveryId);
    await getConfig(deps.db, deps.keyring, ctx.state.projectId, delivery.configId);
    // a digest or a recovery repeats its group or incident too (kept in its workflow's history, not in the store)
    const original = await deliveryStartInput(deps.temporal.client, delivery.deliveryId);
    const started = await startDelivery(deps, {
      ...(original?.group ? { group: original.group } : {}),
      ...(original?.recovery ? { recovery: original.recovery } : {}),
      deliveryId: redeliveryId(delivery.redeliveryOf ?? delivery.deliveryId),
      projectId: ctx.state.projectId,
      configId: delivery.configId,
      condition: delivery.condition,
      event,
      redeliveryOf: delivery.redeliveryOf ?? delivery.deliveryId,
    });
    ctx.status = 202;
    ctx.body = { deliveryId: started.deliveryId, configId: started.configId, condition: started.condition, redeliveryOf: delivery.redeliveryOf ?? delivery.deliveryId };
  });
}
