import {
  ApplicationFailure,
  condition,
  continueAsNew,
  defineSignal,
  getExternalWorkflowHandle,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  admitItem,
  dueActions,
  emptyNoiseState,
  isIdle,
  nextWakeMs,
  NOISE_LINGER_MS,
  type NoiseAction,
  type NoiseAlertItem,
  type NoiseDecision,
  type NoiseIds,
  type NoiseItem,
  type NoiseState,
} from '../lib/noise';
import type { DeliveryRef } from '../lib/schemas';
import type { AlertDeliveryInput, AlertNoiseInput } from './types';
import { NOISE_DECISION_SIGNAL, NOISE_ITEM_SIGNAL } from './types';

/** One alert (or a successful run) of the config enters its pipeline: sent by dispatch with signalWithStart. */
export const noiseItem = defineSignal<[NoiseItem]>(NOISE_ITEM_SIGNAL);

/** Continue as new past this many history events (Temporal suggests it itself well before its own limits). */
export const NOISE_HISTORY_LIMIT = 4000;

// the decisions' log rows: one statement in the worker's store
const recording = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
  summary: 'log the pipeline decisions',
});

// AlertDelivery starts, all at once; each may wait START_DEADLINE_MS (10 s) for Temporal, and a
// start that did happen before a retry answers duplicate, so retrying the whole batch is safe
const starting = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
  summary: 'start the alerts that go out',
});

/**
 * A config's noise pipeline (docs/noise-control.md): takes in the alerts dispatch hands it, runs
 * them through lib/noise.ts's reducer at this workflow's clock, and carries out what the reducer
 * decides: log rows for what is held back, AlertDelivery workflows for what goes out (an alert on
 * its own, a digest, a recovery), and the answer to each fired delay watch waiting for it. One per
 * config (lib/delivery-ids.ts noiseWorkflowId); it ends an hour after its last item once it holds
 * nothing, and continues as new, carrying its state, before its history grows large.
 */
export async function AlertNoise(input: AlertNoiseInput): Promise<void> {
  // the chain's first run id: a digest id is never reused by a later run of this chain, nor by a later chain
  const ids: NoiseIds = { idPrefix: input.idPrefix, chain: workflowInfo().firstExecutionRunId };
  const state = input.state ?? emptyNoiseState();
  const pending: NoiseItem[] = [...(input.pending ?? [])];
  setHandler(noiseItem, (item) => {
    pending.push(item);
  });
  const historyLimit = input.continueAsNewAfterEvents ?? NOISE_HISTORY_LIMIT;
  // a run continued as new counts its linger from its own start: at most one hour more
  let lastItemAtMs = Date.now();

  for (;;) {
    // groups and windows that came due first, then the new items, all at one time: this task's
    const nowMs = Date.now();
    const actions = dueActions(state, nowMs, ids);
    const items = pending.splice(0);
    for (const item of items) actions.push(...admitItem(state, item, nowMs, ids));
    if (items.length > 0) lastItemAtMs = nowMs;
    await carryOut(input, actions);
    setCurrentDetails(stateDetails(state, nowMs));

    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > historyLimit) {
      // items that came while the actions were carried out go along, not yet taken in
      await continueAsNew<typeof AlertNoise>({ ...input, state, pending: pending.splice(0) });
    }
    if (pending.length > 0) continue;

    const now = Date.now();
    const wakeMs = nextWakeMs(state);
    const lingerUntilMs = lastItemAtMs + NOISE_LINGER_MS;
    const idle = isIdle(state, now);
    if (idle && now >= lingerUntilMs) return;
    // Not idle with nothing timed (an open incident, counts for the next alert to tell): look again
    // after a linger; it is then still not idle or it may end.
    const untilMs = Math.min(wakeMs ?? Infinity, lingerUntilMs > now ? lingerUntilMs : now + NOISE_LINGER_MS);
    const summary = wakeMs === untilMs ? `next digest or window end at ${new Date(untilMs).toISOString()}` : `wait for alerts until ${new Date(untilMs).toISOString()}${idle ? ', then end' : ''}`;
    await condition(() => pending.length > 0, Math.max(1, untilMs - now), { summary });
  }
}

const refOf = (input: AlertNoiseInput, item: NoiseAlertItem): DeliveryRef => ({
  deliveryId: item.deliveryId,
  projectId: input.projectId,
  configId: input.configId,
  workflowId: item.event.workflowId,
  runId: item.event.runId,
  eventId: item.event.id,
  condition: item.condition,
});

/** The AlertDelivery input of an action that sends, or undefined (a decision, or a watch's own alert: it sends that itself). */
function deliveryOf(input: AlertNoiseInput, action: NoiseAction): AlertDeliveryInput | undefined {
  const { projectId, configId } = input;
  const noise = action.kind !== 'decided' && action.noise ? { noise: action.noise } : {};
  switch (action.kind) {
    case 'decided':
      return undefined;
    case 'send': {
      const { item } = action;
      if (item.watch) return undefined;
      return { deliveryId: item.deliveryId, projectId, configId, condition: item.condition, event: item.event, ...(item.receivedAt ? { receivedAt: item.receivedAt } : {}), ...noise, pipelined: true };
    }
    case 'digest':
      return { deliveryId: action.deliveryId, projectId, configId, condition: action.group.condition, event: action.event, group: action.group, ...noise, pipelined: true };
    case 'recovery':
      return { deliveryId: action.deliveryId, projectId, configId, condition: 'recovered', event: action.event, recovery: action.recovery, ...noise, pipelined: true };
  }
}

/** What a waiting delay watch is told, or undefined for an action that is not about one. */
function decisionFor(action: NoiseAction): { watchId: string; decision: NoiseDecision } | undefined {
  if (action.kind === 'decided' && action.item.watch) return { watchId: action.item.deliveryId, decision: { outcome: action.outcome, note: action.note } };
  if (action.kind === 'send' && action.item.watch) return { watchId: action.item.deliveryId, decision: { outcome: 'send', noise: action.noise } };
  return undefined;
}

/** The reducer's actions, in its order: log rows, then deliveries, then the watches' answers. */
async function carryOut(input: AlertNoiseInput, actions: NoiseAction[]): Promise<void> {
  const rows = actions.flatMap((a) => (a.kind === 'decided' ? [{ ref: refOf(input, a.item), outcome: a.outcome, note: a.note }] : []));
  if (rows.length > 0) await recording.recordNoiseDecisions(rows);
  const deliveries = actions.flatMap((a) => deliveryOf(input, a) ?? []);
  if (deliveries.length > 0) await starting.startPipelineDeliveries(deliveries);
  const decisions = actions.flatMap((a) => decisionFor(a) ?? []);
  await Promise.all(
    decisions.map(async ({ watchId, decision }) => {
      try {
        await getExternalWorkflowHandle(watchId).signal(NOISE_DECISION_SIGNAL, decision);
      } catch (err) {
        // the watch is gone (it waited its hour for an answer and sent the alert itself): nothing to tell
        if (!(err instanceof ApplicationFailure)) throw err;
      }
    }),
  );
}

/** What the pipeline holds, as the Temporal Web UI shows it on this workflow (its current details). */
function stateDetails(state: NoiseState, nowMs: number): string {
  const at = (ms: number) => new Date(ms).toISOString();
  const groups = Object.values(state.groups);
  const lines = [
    `groups open: ${groups.length}${groups.length ? ` (next flush ${at(Math.min(...groups.map((g) => g.flushAtMs)))}; waiting events ${groups.reduce((n, g) => n + (g.buffer?.count ?? 0), 0)})` : ''}`,
    `dedup keys in window: ${Object.values(state.dedup).filter((w) => w.untilMs > nowMs).length}`,
    state.throttle ? `throttle window: ${state.throttle.count} alerts until ${at(state.throttle.untilMs)}` : 'throttle window: none',
    state.incident ? `incident open since ${state.incident.since}: ${state.incident.failures} failures, ${state.incident.alerted ? 'alerted' : 'not alerted yet'}` : 'incident: none',
    state.heldBack
      ? `held back since ${at(state.heldBack.sinceMs)}: ${state.heldBack.silenced} silenced, ${state.heldBack.deduplicated} deduplicated, ${state.heldBack.throttled} throttled, ${state.heldBack.repeatSuppressed} repeats`
      : 'held back: nothing',
  ];
  return lines.join('\n');
}
