import { startDelivery } from '../dispatch/start-delivery';
import { deliveriesStarted } from '../lib/metrics';
import type { ServiceDeps } from '../runtime/deps';
import * as noiseStore from '../store/noise';
import type { AlertDeliveryInput, StartedDelivery } from '../workflows/types';

/** The activities of the AlertNoise workflow (workflows/alert-noise.ts): its decisions' log rows and the alerts it sends. */
export function noiseActivities(deps: Pick<ServiceDeps, 'db' | 'temporal'>) {
  return {
    /** Log rows (attempt 0) for alerts the pipeline did not send on its own; a row written before is kept. */
    async recordNoiseDecisions(rows: noiseStore.NoiseDecisionRow[]): Promise<void> {
      await noiseStore.recordNoiseDecisions(deps.db, rows);
    },

    /**
     * Starts the alerts the pipeline lets out (alerts on their own, digests, recoveries), each an
     * AlertDelivery under its deterministic id: one started by an earlier run of this activity answers
     * duplicate and is not sent again.
     */
    async startPipelineDeliveries(inputs: AlertDeliveryInput[]): Promise<StartedDelivery[]> {
      const started = await Promise.all(inputs.map((input) => startDelivery(deps, input)));
      // counted here, not by dispatch: an alert handed to its pipeline started nothing there
      for (const d of started) deliveriesStarted.inc({ condition: d.condition, duplicate: String(d.duplicate) });
      return started;
    },
  };
}
