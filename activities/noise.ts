import { startDelivery } from '../dispatch/start-delivery';
import { logger } from '../lib/log';
import { deliveriesStarted } from '../lib/metrics';
import type { ServiceDeps } from '../runtime/deps';
import * as noiseStore from '../store/noise';
import type { AlertDeliveryInput, StartedDelivery } from '../workflows/types';

const log = logger('noise');

/** The activities of the AlertNoise workflow (workflows/alert-noise.ts): its decisions' log rows and the alerts it sends. */
export function noiseActivities(deps: Pick<ServiceDeps, 'db' | 'temporal'>) {
  return {
    /** Log rows (attempt 0) for alerts the pipeline did not send on its own; a row written before is kept. */
    async recordNoiseDecisions(rows: noiseStore.NoiseDecisionRow[]): Promise<void> {
      await noiseStore.recordNoiseDecisions(deps.db, rows);
      if (rows.length === 0) return;
      // one line per batch: what the pipeline held back, and where to look (the rows say why, one each)
      const counts: Record<string, number> = {};
      for (const row of rows) counts[row.outcome] = (counts[row.outcome] ?? 0) + 1;
      const { projectId, configId } = rows[0].ref;
      const what = Object.entries(counts).map(([outcome, n]) => `${n} ${outcome}`).join(', ');
      log.info({ projectId, configId, counts, deliveryIds: rows.slice(0, 10).map((r) => r.ref.deliveryId) }, `noise pipeline of ${configId}: ${what}`);
    },

    /**
     * Starts the alerts the pipeline lets out (alerts on their own, digests, recoveries), each an
     * AlertDelivery under its deterministic id: one started by an earlier run of this activity answers
     * duplicate and is not sent again.
     */
    async startPipelineDeliveries(inputs: AlertDeliveryInput[]): Promise<StartedDelivery[]> {
      // recoveries last: a recovery waits for the alerts it names (`after`), which must have started by then
      const started = await Promise.all(inputs.filter((input) => !input.recovery).map((input) => startDelivery(deps, input)));
      started.push(...(await Promise.all(inputs.filter((input) => input.recovery).map((input) => startDelivery(deps, input)))));
      for (const d of started) {
        const input = inputs.find((i) => i.deliveryId === d.deliveryId)!;
        const kind = input.group ? `digest of ${input.group.count}` : input.recovery ? 'recovery' : 'alert';
        if (!d.duplicate) log.info({ projectId: input.projectId, configId: d.configId, deliveryId: d.deliveryId, condition: d.condition }, `noise pipeline of ${d.configId}: ${kind} ${d.deliveryId} goes out`);
      }
      // counted here, not by dispatch: an alert handed to its pipeline started nothing there
      for (const d of started) deliveriesStarted.inc({ condition: d.condition, duplicate: String(d.duplicate) });
      return started;
    },
  };
}
