import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { processEvent } from '../dispatch/process-event';
import type { ServiceDeps } from '../runtime/deps';
import { createEgressDispatcher } from '../runtime/egress';
import type { ProcessExecutionEventInput, StartedDelivery } from '../workflows/types';
import { deliveryActivities } from './delivery';
import { noiseActivities } from './noise';
import { operatorActivities } from './operator';
import { retentionActivities } from './retention';
import { watchActivities } from './watches';

/** Every activity the worker registers, bound to the service's dependencies. */
export function createActivities(deps: ServiceDeps) {
  // one dispatcher for every delivery of this worker: keep-alive pools per receiver, connections only to checked addresses
  const dispatcher = createEgressDispatcher(deps.egress);
  return {
    ...deliveryActivities(deps, dispatcher),
    ...operatorActivities(deps, dispatcher),
    ...retentionActivities(deps),
    ...noiseActivities(deps),
    ...watchActivities(deps),
    /** MeshHook's Temporal way in runs the same code as POST /api/events. */
    async processExecutionEvent(input: ProcessExecutionEventInput): Promise<StartedDelivery[]> {
      try {
        return await processEvent(deps, input.projectId, input.event);
      } catch (err) {
        if (err instanceof z.ZodError) throw ApplicationFailure.nonRetryable(`invalid execution event: ${z.prettifyError(err)}`, 'InvalidExecutionEvent');
        throw err;
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
