import { logger } from '../lib/log';
import { noteDeliveryFinished } from '../lib/metrics';
import type { ServiceDeps } from '../runtime/deps';
import { startDelivery } from '../dispatch/start-delivery';
import { claimDueWatches, markWatchesStarted, settleWake } from '../store/watches';
import type { AlertDeliveryInput, WatcherPass } from '../workflows/types';

/** Late watches started per pass (the pass goes round again at once for more): a pass stays well inside its 30 s. */
export const WATCHES_PER_PASS = 100;

const log = logger('watch');

/** The activities of the DelayWatcher workflow (workflows/delay-watcher.ts). */
export function watchActivities(deps: ServiceDeps) {
  return {
    /**
     * One pass of a config's watcher at `nowMs` (the watcher's workflow clock): claim the watches past
     * their deadline, start an AlertDelivery for each late one (its id the delivery id, so a start
     * repeated after a lost pass answers duplicate), mark them started, then settle the next wake
     * under the watcher row's lock (store/watches.ts). Safe to run again.
     */
    async fireDueWatches({ projectId, configId }: { projectId: string; configId: string }, nowMs: number): Promise<WatcherPass> {
      const { late, suppressed } = await claimDueWatches(deps.db, deps.keyring, configId, nowMs, WATCHES_PER_PASS);
      for (let i = 0; i < suppressed; i++) noteDeliveryFinished({ condition: 'delay', event: {} }, 'suppressed');
      await Promise.all(
        late.map((w) => {
          const startedAtMs = Date.parse(w.event.occurredAt ?? w.createdAt);
          const input: AlertDeliveryInput = {
            deliveryId: w.ref.deliveryId,
            projectId: w.ref.projectId,
            configId: w.ref.configId,
            condition: 'delay',
            event: w.event,
            delaySeconds: Math.max(1, Math.round((w.deadlineMs - startedAtMs) / 1000)),
            watchFiredAtMs: w.firedAtMs,
          };
          return startDelivery(deps, input);
        }),
      );
      await markWatchesStarted(deps.db, late.map((w) => w.ref.deliveryId));
      if (late.length > 0) log.info({ projectId, configId, fired: late.length }, `${late.length} delay watch(es) of config ${configId} fired: run still not finished`);
      const wake = await settleWake(deps.db, configId, projectId);
      return { fired: late.length, suppressed, wakeAtMs: wake.wakeAtMs, open: wake.open, more: wake.unstarted > 0 };
    },
  };
}
