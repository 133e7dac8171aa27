import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { ActivityDeps } from './deps';
import { deliverActivities } from './deliver';
import { processEvent } from './events';
import { createEgressDispatcher } from './egress';
import { prepareActivities } from './prepare';
import type { ProcessExecutionEventInput, StartedDelivery } from '../workflows/types';

/** Every activity the worker registers, bound to its dependencies. */
export function createActivities(deps: ActivityDeps) {
  // one dispatcher for every delivery of this worker: keep-alive pools per receiver, connections only to checked addresses
  const dispatcher = createEgressDispatcher(deps.egress);
  return {
    ...prepareActivities(deps, dispatcher),
    ...deliverActivities(deps, dispatcher),
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
export type { ActivityDeps } from './deps';
