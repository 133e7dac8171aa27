import {
  ApplicationFailure,
  condition,
  continueAsNew,
  defineSignal,
  getExternalWorkflowHandle,
  proxyActivities,
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
import type { NoiseDecisionRow } from '../store/noise';
import type { AlertDeliveryInput, AlertNoiseInput } from './types';
import { NOISE_DECISION_SIGNAL, NOISE_ITEM_SIGNAL } from './types';

/** One alert (or a successful run) of the config enters its pipeline: sent by dispatch with signalWithStart. */
export const noiseItem = defineSignal<[NoiseItem]>(NOISE_ITEM_SIGNAL);

/** Continue as new past this many history events (Temporal suggests it itself well before its own limits). */
export const NOISE_HISTORY_LIMIT = 4000;

// Regular activities, not local ones: a local activity keeps its workflow task open while it runs
// (log rows under a burst: 0.4-1.2 s), so signals pile up behind it (past 100 the server throws the
// task away) and a timer the task sets starts that much late (docs/benchmarks.md, Burst).
// AlertNoise histories recorded before this change (markers of local activities) do not replay on
// it; nothing of it had shipped.

// the decisions' log rows: one statement in the store; a row written before is kept, so a retry is safe.
// A short timeout: a write held by a killed worker is retried soon (the alerts after it wait for it)
const recording = proxyActivities<Activities>({
  startToCloseTimeout: '5s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
  summary: 'log the pipeline decisions',
});

// AlertDelivery starts, all at once; each may wait START_DEADLINE_MS (10 s) for Temporal, and a
// start that did happen before a retry answers duplicate, so retrying the whole batch is safe
const starting = proxyActivities<Activities>({
  startToCloseTimeout: '15s',
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
 *
 * A workflow task only decides and schedules: the activities and signals that carry the decisions
 * out run while the loop takes in the next items. A task kept open by a local activity let a burst's
 * signals pile up until Temporal threw the task away, and its timers were set late by that activity.
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
  const work = new CarryingOut(input);
  // a run continued as new counts its linger from its own start: at most one hour more
  let lastItemAtMs = Date.now();

  for (;;) {
    work.throwIfFailed();
    // groups and windows that came due first, then the new items, all at one time: this task's
    const nowMs = Date.now();
    const actions = dueActions(state, nowMs, ids);
    const items = pending.splice(0);
    for (const item of items) actions.push(...admitItem(state, item, nowMs, ids));
    if (items.length > 0) lastItemAtMs = nowMs;
    work.start(actions);
    setCurrentDetails(stateDetails(state, nowMs));

    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > historyLimit) {
      // the next run starts from the state, so what it decided must be carried out first; items that
      // come meanwhile go along, not yet taken in
      await work.finished();
      await continueAsNew<typeof AlertNoise>({ ...input, state, pending: pending.splice(0) });
    }
    if (pending.length > 0) continue;

    const now = Date.now();
    const wakeMs = nextWakeMs(state);
    const lingerUntilMs = lastItemAtMs + NOISE_LINGER_MS;
    const idle = isIdle(state, now);
    if (idle && now >= lingerUntilMs) {
      await work.finished();
      if (pending.length === 0) return;
      continue; // an item came while the last actions were carried out
    }
    // Not idle with nothing timed (an open incident, counts for the next alert to tell): look again
    // after a linger; it is then still not idle or it may end.
    const untilMs = Math.min(wakeMs ?? Infinity, lingerUntilMs > now ? lingerUntilMs : now + NOISE_LINGER_MS);
    const summary = wakeMs === untilMs ? `next digest or window end at ${new Date(untilMs).toISOString()}` : `wait for alerts until ${new Date(untilMs).toISOString()}${idle ? ', then end' : ''}`;
    await condition(() => pending.length > 0 || work.failed, Math.max(1, untilMs - now), { summary });
  }
}

/**
 * The activities and signals that carry out the reducer's actions, started without waiting for them,
 * in an order that keeps what a user sees consistent: an alert going out (a start, or a watch told
 * `send`) waits for the log rows of the decisions made before it, not for later ones; a watch is told
 * its decision once its row is written. Rows go out in one activity per run of decisions; the writes
 * and starts of successive workflow tasks may run side by side (a row or a start that happened before
 * is kept, so their order does not matter to the store).
 */
class CarryingOut {
  private running = 0;
  private failure: unknown = undefined;
  /** true once every row handed to an activity so far is written; false if a write failed for good */
  private rowsWritten: Promise<boolean> = Promise.resolve(true);

  constructor(private readonly input: AlertNoiseInput) {}

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** An activity that failed for good (its retries are unlimited: a non-retryable error) fails the workflow, as it would have in the loop. */
  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Until everything started has finished (or something failed: thrown). */
  async finished(): Promise<void> {
    await condition(() => this.running === 0 || this.failed);
    this.throwIfFailed();
  }

  /** Starts carrying out the reducer's actions, in its order: runs of decisions, runs of alerts going out. */
  start(actions: NoiseAction[]): void {
    let rows: NoiseDecisionRow[] = [];
    let toldAfterRows: WatchDecision[] = [];
    let deliveries: AlertDeliveryInput[] = [];
    let toldSend: WatchDecision[] = [];
    const writeRows = () => {
      if (rows.length === 0) return;
      const written = this.track(recording.recordNoiseDecisions(rows));
      const before = this.rowsWritten;
      this.rowsWritten = Promise.all([before, written]).then(([a, b]) => a && b);
      this.afterRows(written, [], toldAfterRows);
      rows = [];
      toldAfterRows = [];
    };
    const sendOut = () => {
      if (deliveries.length === 0 && toldSend.length === 0) return;
      this.afterRows(this.rowsWritten, deliveries, toldSend);
      deliveries = [];
      toldSend = [];
    };
    for (const action of actions) {
      if (action.kind === 'decided') {
        sendOut();
        rows.push({ ref: refOf(this.input, action.item), outcome: action.outcome, note: action.note });
        const told = decisionFor(action);
        if (told) toldAfterRows.push(told);
      } else {
        writeRows();
        const delivery = deliveryOf(this.input, action);
        if (delivery) deliveries.push(delivery);
        const told = decisionFor(action);
        if (told) toldSend.push(told);
      }
    }
    writeRows();
    sendOut();
  }

  /** Once `rows` are written (nothing if a write failed: the workflow fails), starts `deliveries` and tells `watches`. */
  private afterRows(rows: Promise<boolean>, deliveries: AlertDeliveryInput[], watches: WatchDecision[]): void {
    if (deliveries.length === 0 && watches.length === 0) return;
    this.track(
      rows.then(async (ok) => {
        if (!ok) return;
        await Promise.all([deliveries.length > 0 ? starting.startPipelineDeliveries(deliveries) : undefined, ...watches.map(tellWatch)]);
      }),
    );
  }

  /** Counts `work` as running until it settles; true when it succeeded, false (and the failure kept) when it failed. */
  private track(work: Promise<unknown>): Promise<boolean> {
    this.running += 1;
    return work.then(
      () => {
        this.running -= 1;
        return true;
      },
      (err: unknown) => {
        this.running -= 1;
        this.failure ??= err;
        return false;
      },
    );
  }
}

interface WatchDecision {
  watchId: string;
  decision: NoiseDecision;
}

async function tellWatch({ watchId, decision }: WatchDecision): Promise<void> {
  try {
    await getExternalWorkflowHandle(watchId).signal(NOISE_DECISION_SIGNAL, decision);
  } catch (err) {
    // the watch is gone (it waited its hour for an answer and sent the alert itself): nothing to tell
    if (!(err instanceof ApplicationFailure)) throw err;
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
      return { deliveryId: action.deliveryId, projectId, configId, condition: 'recovered', event: action.event, recovery: action.recovery, ...noise, pipelined: true, after: action.after };
  }
}

/** What a waiting delay watch is told, or undefined for an action that is not about one. */
function decisionFor(action: NoiseAction): WatchDecision | undefined {
  if (action.kind === 'decided' && action.item.watch) return { watchId: action.item.deliveryId, decision: { outcome: action.outcome, note: action.note } };
  if (action.kind === 'send' && action.item.watch) return { watchId: action.item.deliveryId, decision: { outcome: 'send', noise: action.noise } };
  return undefined;
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
