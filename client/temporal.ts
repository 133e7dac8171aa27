import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { eventWorkflowId } from '../lib/delivery-ids';
import { executionEventSchema, type ExecutionEvent } from '../lib/schemas';
import type { ProcessExecutionEventInput, StartedDelivery } from '../workflows/types';

/**
 * Publishing execution events through MeshHook's own Temporal client: the documented workflow
 * (type PROCESS_EVENT_WORKFLOW on the service's task queue, input `{ projectId, event }`), which
 * runs the same matching as POST /api/events.
 */

export const DEFAULT_TASK_QUEUE = 'meshhook-alerts';
export const PROCESS_EVENT_WORKFLOW = 'ProcessExecutionEvent';

export interface PublishOptions {
  /** the project whose alert configs the event is matched against */
  projectId: string;
  taskQueue?: string;
}

/**
 * Starts ProcessExecutionEvent for one event and waits for the deliveries it
 * started. The workflow id is `event-<projectId>.<eventId>`, so publishing the
 * same event twice starts nothing new (the second call returns []).
 */
export async function publishExecutionEvent(client: Client, event: ExecutionEvent, options: PublishOptions): Promise<StartedDelivery[]> {
  const parsed = executionEventSchema.parse(event);
  const input: ProcessExecutionEventInput = { projectId: options.projectId, event: { ...parsed, occurredAt: parsed.occurredAt ?? new Date().toISOString() } };
  try {
    return await client.workflow.execute(PROCESS_EVENT_WORKFLOW, {
      workflowId: eventWorkflowId(options.projectId, parsed.id),
      taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
      args: [input],
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return [];
    throw err;
  }
}
