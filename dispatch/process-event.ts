import { matchConditions, type AlertAction } from '../lib/conditions';
import { delayWatchId, immediateDeliveryId } from '../lib/delivery-ids';
import { deliveriesStarted, eventsAccepted } from '../lib/metrics';
import { executionEventSchema, noiseOn, type AlertConditionName, type ExecutionEvent } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { dispatchableConfigsFor } from '../store/configs';
import { holdAlert } from '../store/held';
import { recordNoiseDecisions } from '../store/noise';
import type { StartedDelivery } from '../workflows/types';
import { loadSilences, noiseAlertItem } from './noise-routing';
import { endDelayWatch, sendToNoisePipeline, startDelayWatch, startDelivery, tellNoisePipelineOfSuccess } from './start-delivery';

type Deps = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal'>;
type SendAction = Extract<AlertAction, { kind: 'send' }>;

/** The configs an event of a MeshHook workflow is matched against (a batch shares one lookup per workflow). */
export type ConfigLookup = (workflowId: string) => ReturnType<typeof dispatchableConfigsFor>;

/**
 * One lookup per workflow id for a batch of events: an outage's batch is one workflow's runs, and
 * each lookup is a store statement on the alert path (one PGlite connection in the embedded default).
 */
export function sharedConfigLookup(deps: Pick<Deps, 'db'>, projectId: string): ConfigLookup {
  const lookups = new Map<string, ReturnType<typeof dispatchableConfigsFor>>();
  return (workflowId) => {
    let found = lookups.get(workflowId);
    if (!found) lookups.set(workflowId, (found = dispatchableConfigsFor(deps.db, projectId, workflowId)));
    return found;
  };
}

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
 *
 * An immediate alert silenced at the event's time is only logged (its config without noise
 * settings); an alert of a config with noise settings goes to the config's noise pipeline, silenced
 * or not (docs/noise-control.md). A successful run is told to the pipelines that close incidents.
 */
export async function dispatchEvent(
  deps: Deps,
  projectId: string,
  rawEvent: unknown,
  receivedAt = new Date(),
  configsOf: ConfigLookup = (workflowId) => dispatchableConfigsFor(deps.db, projectId, workflowId),
): Promise<{ deliveries: StartedDelivery[]; held: HeldMatch[] }> {
  const parsed = executionEventSchema.parse(rawEvent);
  const event: ExecutionEvent = { ...parsed, occurredAt: parsed.occurredAt ?? receivedAt.toISOString() };
  const eventAtMs = Date.parse(event.occurredAt!);
  const configs = await configsOf(event.workflowId);
  const work: Promise<StartedDelivery | undefined>[] = [];
  const held: HeldMatch[] = [];
  // read once per event, and only when an alert was matched for a config that has silences
  let silences: ReturnType<typeof loadSilences> | undefined;
  const silenceOf = async (config: (typeof configs)[number]) =>
    config.silenceable ? (await (silences ??= loadSilences(deps.db, projectId, event.workflowId)))(config.id, eventAtMs) : undefined;

  /** An immediate alert of an enabled config: silenced, to its noise pipeline, or started. */
  const send = async (config: (typeof configs)[number], condition: SendAction['condition']): Promise<StartedDelivery> => {
    const deliveryId = immediateDeliveryId(config.id, event.id);
    const silence = await silenceOf(config);
    if (noiseOn(config.noise)) {
      const item = await noiseAlertItem(
        config,
        { deliveryId, condition, event, receivedAt: receivedAt.toISOString(), silencedBy: silence?.id ?? null, silenceNote: silence?.note ?? null, watch: false },
        receivedAt.getTime(),
      );
      await sendToNoisePipeline(deps, { projectId, configId: config.id }, item);
      return { deliveryId, configId: config.id, condition, duplicate: false, noise: 'pipeline' };
    }
    if (silence) {
      const ref = { deliveryId, projectId, configId: config.id, workflowId: event.workflowId, runId: event.runId, eventId: event.id, condition };
      await recordNoiseDecisions(deps.db, [{ ref, outcome: 'silenced', note: silence.note }]);
      return { deliveryId, configId: config.id, condition, duplicate: false, noise: 'silenced' };
    }
    return startDelivery(deps, { deliveryId, projectId, configId: config.id, condition, event, receivedAt: receivedAt.toISOString() });
  };

  for (const config of configs) {
    for (const action of matchConditions(config.conditions, event.type)) {
      if (action.kind === 'send') {
        if (!config.held) {
          work.push(send(config, action.condition));
          continue;
        }
        work.push(
          holdAlert(deps.db, deps.keyring, { projectId, configId: config.id, condition: action.condition }, event).then((outcome) => {
            if (outcome !== 'not_disabled') {
              held.push({ configId: config.id, condition: action.condition });
              return undefined;
            }
            // re-enabled since it was matched: sent as for an enabled config
            return send(config, action.condition);
          }),
        );
      } else if (action.kind === 'watch') {
        // a row with a deadline, watched by the config's DelayWatcher (docs/delay-watches.md)
        work.push(
          startDelayWatch(deps, {
            deliveryId: delayWatchId(config.id, event.runId),
            projectId,
            configId: config.id,
            event,
            thresholdSeconds: action.thresholdSeconds,
            receivedAtMs: receivedAt.getTime(),
          }),
        );
      } else {
        work.push(endDelayWatch(deps, projectId, config.id, event, receivedAt.getTime()).then(() => undefined));
      }
    }
    // a successful run closes the config's open incident (recovery, repeat); no pipeline running: none is open
    if (event.type === 'run.succeeded' && (config.noise.recovery || config.noise.repeatIntervalSeconds !== null)) {
      work.push(tellNoisePipelineOfSuccess(deps, config.id, { kind: 'success', event, settings: config.noise }).then(() => undefined));
    }
  }
  const started = (await Promise.all(work)).filter((d): d is StartedDelivery => d !== undefined);
  eventsAccepted.inc({ type: event.type });
  // an alert silenced or handed to its pipeline started no delivery (yet)
  for (const d of started) if (!d.noise) deliveriesStarted.inc({ condition: d.condition, duplicate: String(d.duplicate) });
  return { deliveries: started, held };
}

/** dispatchEvent's started deliveries only (MeshHook's Temporal way in answers with these). */
export async function processEvent(deps: Deps, projectId: string, rawEvent: unknown, receivedAt = new Date()): Promise<StartedDelivery[]> {
  return (await dispatchEvent(deps, projectId, rawEvent, receivedAt)).deliveries;
}
