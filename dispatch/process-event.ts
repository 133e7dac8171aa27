import { matchConditions } from '../lib/conditions';
import { delayWatchId, immediateDeliveryId } from '../lib/delivery-ids';
import { deliveriesStarted, eventsAccepted } from '../lib/metrics';
import { executionEventSchema, type AlertConditionName, type ExecutionEvent } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { dispatchableConfigsFor } from '../store/configs';
import { holdAlert } from '../store/held';
import type { StartedDelivery } from '../workflows/types';
import { endDelayWatch, startDelivery } from './start-delivery';

type Deps = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal'>;

/** An alert held instead of sent: its config is disabled by the service (docs/endpoint-health.md). */
export interface HeldMatch {
  configId: string;
  condition: AlertConditionName;
}

/**
 * Matches one event against its project's configs and starts what it triggers. The one code path
 * for every way in: POST /api/events and MeshHook's ProcessExecutionEvent workflow. A config the
 * service disabled holds its immediate alerts (held); its delay watches still start and finish as
 * usual, and one that fires while the config is still disabled is held by its delivery.
 */
export async function dispatchEvent(deps: Deps, projectId: string, rawEvent: unknown, receivedAt = new Date()): Promise<{ deliveries: StartedDelivery[]; held: HeldMatch[] }> {
  const parsed = executionEventSchema.parse(rawEvent);
  const event: ExecutionEvent = { ...parsed, occurredAt: parsed.occurredAt ?? receivedAt.toISOString() };
  const configs = await dispatchableConfigsFor(deps.db, projectId, event.workflowId);
  const work: Promise<StartedDelivery | undefined>[] = [];
  const held: HeldMatch[] = [];
  const send = (configId: string, condition: AlertConditionName) =>
    startDelivery(deps, { deliveryId: immediateDeliveryId(configId, event.id), projectId, configId, condition, event, receivedAt: receivedAt.toISOString() });
  for (const config of configs) {
    for (const action of matchConditions(config.conditions, event.type)) {
      if (action.kind === 'send') {
        if (!config.held) {
          work.push(send(config.id, action.condition));
          continue;
        }
        work.push(
          holdAlert(deps.db, deps.keyring, { projectId, configId: config.id, condition: action.condition }, event).then((outcome) => {
            if (outcome !== 'not_disabled') {
              held.push({ configId: config.id, condition: action.condition });
              return undefined;
            }
            // re-enabled since it was matched: sent as for an enabled config
            return send(config.id, action.condition);
          }),
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
  return { deliveries: started, held };
}

/** dispatchEvent's started deliveries only (MeshHook's Temporal way in answers with these). */
export async function processEvent(deps: Deps, projectId: string, rawEvent: unknown, receivedAt = new Date()): Promise<StartedDelivery[]> {
  return (await dispatchEvent(deps, projectId, rawEvent, receivedAt)).deliveries;
}
