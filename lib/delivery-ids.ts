import { createHash, randomBytes } from 'node:crypto';

/**
 * Delivery ids are the AlertDelivery workflow ids and the `webhook-id` header:
 * readable in the Temporal Web UI, deterministic for an event (so a repeated
 * event maps to the same workflow), and free of "." (Standard Webhooks).
 */
function part(value: string): string {
  const safe = value.replace(/[^A-Za-z0-9_-]/g, '_');
  // keep distinct inputs distinct after replacing characters
  return safe === value ? value : `${safe}-${createHash('sha256').update(value).digest('hex').slice(0, 8)}`;
}

export const immediateDeliveryId = (configId: string, eventId: string) => `dlv-${part(configId)}-${part(eventId)}`;
export const delayWatchId = (configId: string, runId: string) => `dlv-${part(configId)}-${part(runId)}-delay`;
export const testDeliveryId = (configId: string) => `dlv-${part(configId)}-test-${randomBytes(6).toString('hex')}`;
export const redeliveryId = (deliveryId: string) => `${deliveryId}-re-${randomBytes(4).toString('hex')}`;
/**
 * Workflow id of ProcessExecutionEvent for one event: publishing the same event twice starts it once.
 * The "." cannot come out of part(), so no two (project, event) pairs share an id: with a "-" there,
 * project "a-b" event "c" and project "a" event "b-c" did, and one project's event was dropped as the other's duplicate.
 */
export const eventWorkflowId = (projectId: string, eventId: string) => `event-${part(projectId)}.${part(eventId)}`;
/** The config's DelayWatcher workflow (its delay watches held as rows: docs/delay-watches.md). */
export const delayWatcherId = (configId: string) => `watch-${part(configId)}`;
/** The config's AlertNoise workflow (its noise pipeline: docs/noise-control.md). */
export const noiseWorkflowId = (configId: string) => `noise-${part(configId)}`;
/**
 * What every delivery id of a config starts with. The AlertNoise workflow builds its digests' and
 * recoveries' ids from it (lib/noise.ts digestDeliveryId, recoveryDeliveryId): workflow code cannot
 * import this module (node:crypto).
 */
export const configDeliveryIdPrefix = (configId: string) => `dlv-${part(configId)}`;
