/**
 * The package's entry for MeshHook: send execution events through MeshHook's
 * own Temporal client instead of POST /api/events. Both ways run the same code.
 *
 *   import { alertsDataConverter, parseKeyring, publishExecutionEvent } from 'meshhook-alerts';
 *   const client = new Client({ connection, namespace,
 *     dataConverter: alertsDataConverter(parseKeyring(process.env.ALERTS_ENCRYPTION_KEYS!)) });
 *   await publishExecutionEvent(client, event, { projectId: 'default' });
 *
 * The client must use the service's data converter, with the same keyring
 * (ALERTS_ENCRYPTION_KEYS): the event then reaches Temporal encrypted, and the
 * answer, encrypted by the worker, can be read.
 *
 * Workflow type `ProcessExecutionEvent`, task queue TEMPORAL_TASK_QUEUE
 * (default `meshhook-alerts`), input `{ projectId, event }`.
 */
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { eventWorkflowId } from './lib/delivery-ids';
import { executionEventSchema, type ExecutionEvent } from './lib/schemas';
import type { ProcessExecutionEventInput, StartedDelivery } from './workflows/types';

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

export { executionEventSchema, alertConfigInputSchema } from './lib/schemas';
export { alertsDataConverter } from './lib/codec';
export { parseKeyring } from './lib/crypto';
export type { ExecutionEvent, AlertConfigInput, AlertConfig } from './lib/schemas';
export type { AlertDeliveryInput, AlertDeliveryResult, ProcessExecutionEventInput, StartedDelivery } from './workflows/types';
