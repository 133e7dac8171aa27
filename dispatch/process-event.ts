import { matchConditions } from '../lib/conditions';
import { delayWatchId, immediateDeliveryId } from '../lib/delivery-ids';
import { deliveriesStarted, eventsAccepted } from '../lib/metrics';
import { executionEventSchema, type ExecutionEvent } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { enabledConfigsFor } from '../store/configs';
import type { StartedDelivery } from '../workflows/types';
import { endDelayWatch, startDelivery } from './start-delivery';

/**
 * Matches one event against its project's enabled configs and starts what it triggers. The one code
 * path for every way in: POST /api/events and MeshHook's ProcessExecutionEvent workflow.
 */
export async function processEvent(deps: Pick<ServiceDeps, 'db' | 'temporal'>, projectId: string, rawEvent: unknown, receivedAt = new Date()): Promise<StartedDelivery[]> {
  const parsed = executionEventSchema.parse(rawEvent);
  const event: ExecutionEvent = { ...parsed, occurredAt: parsed.occurredAt ?? receivedAt.toISOString() };
  const configs = await enabledConfigsFor(deps.db, projectId, event.workflowId);
  const work: Promise<StartedDelivery | undefined>[] = [];
  for (const config of configs) {
    for (const action of matchConditions(config.conditions, event.type)) {
      if (action.kind === 'send') {
        work.push(
          startDelivery(deps, { deliveryId: immediateDeliveryId(config.id, event.id), projectId, configId: config.id, condition: action.condition, event, receivedAt: receivedAt.toISOString() }),
        );
      } else if (action.kind === 'watch') {
        work.push(
          startDelivery(deps, {
            deliveryId: delayWatchId(config.id, event.runId),
            projectId,
            configId: config.id,
            condition: 'delay',
            event,
            delaySeconds: action.thresholdSeconds,
          }),
        );
      } else {
        work.push(endDelayWatch(deps, projectId, config.id, event).then(() => undefined));
      }
    }
  }
  const started = (await Promise.all(work)).filter((d): d is StartedDelivery => d !== undefined);
  eventsAccepted.inc({ type: event.type });
  for (const d of started) deliveriesStarted.inc({ condition: d.condition, duplicate: String(d.duplicate) });
  return started;
}
