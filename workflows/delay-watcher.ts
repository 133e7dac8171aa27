import { condition, continueAsNew, defineSignal, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { DelayWatcherInput, WatchDeadlineSignal, WatcherPass } from './types';
import { WATCH_DEADLINE_SIGNAL } from './types';

/** A run.started whose deadline is earlier than the watcher's wake (or the watcher asleep on nothing): signalWithStart by dispatch. */
export const watchDeadline = defineSignal<[WatchDeadlineSignal]>(WATCH_DEADLINE_SIGNAL);

/** Continue as new after this many passes (or when Temporal suggests it). */
export const DELAY_WATCHER_PASSES = 500;

/** With no open watch, the watcher ends after this long without a new one. */
export const WATCHER_IDLE_MS = 60 * 60 * 1000;

// Regular activities, not local ones: a pass may start many AlertDelivery workflows (each start may
// wait START_DEADLINE_MS, 10 s, for Temporal), and a local activity would hold the workflow task
// open meanwhile. A pass is safe to repeat: the claim is idempotent, a start that happened answers
// duplicate, and unstarted claims are started again.
const watching = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
  summary: 'fire the due delay watches',
});

/**
 * A config's delay watches (docs/delay-watches.md): the watches are rows (store/watches.ts), this
 * workflow sleeps on a Temporal timer until the earliest open deadline, then one pass
 * (fireDueWatches, at this workflow's clock) claims the watches past their deadline, decides each by
 * time (finished at or before the deadline: suppressed; else late), starts an AlertDelivery for each
 * late one, and writes the next earliest deadline as the watcher's wake_at under the watcher row's
 * lock. A run.started whose deadline is earlier than that wake signals it. One per config
 * (lib/delivery-ids.ts delayWatcherId); it ends an hour after its last open watch closed.
 */
export async function DelayWatcher(input: DelayWatcherInput): Promise<void> {
  // the earliest deadline signalled since the last pass began (Infinity: none)
  let signalledMs = Infinity;
  setHandler(watchDeadline, ({ deadlineMs }) => {
    signalledMs = Math.min(signalledMs, deadlineMs);
  });
  let fired = input.fired ?? 0;
  let suppressed = input.suppressed ?? 0;
  const passes = input.continueAsNewAfterPasses ?? DELAY_WATCHER_PASSES;

  for (let pass = 1; ; pass++) {
    // a signal received before this pass began is of a row committed before it: the pass sees it
    signalledMs = Infinity;
    const done: WatcherPass = await watching.fireDueWatches({ projectId: input.projectId, configId: input.configId }, Date.now());
    fired += done.fired;
    suppressed += done.suppressed;
    setCurrentDetails(
      [
        `**Delay watches of config ${input.configId}**`,
        `- open watches: ${done.open}`,
        `- next deadline: ${done.wakeAtMs === null ? 'none' : new Date(done.wakeAtMs).toISOString()}`,
        `- fired (late runs alerted) so far: ${fired}`,
        `- suppressed at their deadline so far: ${suppressed}`,
      ].join('\n'),
    );
    // before going round again for more (a backlog may take thousands of passes): the history stays bounded
    const info = workflowInfo();
    if (info.continueAsNewSuggested || pass >= passes) {
      await continueAsNew<typeof DelayWatcher>({ ...input, fired, suppressed });
    }
    if (done.more) continue;

    const wakeAtMs = Math.min(done.wakeAtMs ?? Infinity, signalledMs);
    if (wakeAtMs === Infinity) {
      // none open: wake_at is NULL already (the pass wrote it under the lock), so a new watch signals
      const woken = await condition(() => signalledMs !== Infinity, WATCHER_IDLE_MS, { summary: 'no open delay watch: wait an hour, then end' });
      // ended with nothing signalled: a run.started after this reads wake_at NULL and starts a new watcher
      // (a signal that comes while this task completes fails the completion; the retried task sees it)
      if (!woken && signalledMs === Infinity) return;
      continue;
    }
    const waitMs = Math.max(0, wakeAtMs - Date.now());
    if (waitMs > 0) {
      await condition(() => signalledMs < wakeAtMs, waitMs, { summary: `sleep until the earliest deadline ${new Date(wakeAtMs).toISOString()}` });
    }
  }
}
