import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ProcessExecutionEventInput, StartedDelivery } from './types';

const { processExecutionEvent } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

/**
 * MeshHook's way in through its own Temporal client (see publishExecutionEvent):
 * runs the same matching code as POST /api/events.
 */
export async function ProcessExecutionEvent(input: ProcessExecutionEventInput): Promise<StartedDelivery[]> {
  return processExecutionEvent(input);
}
