/**
 * The package's entry for MeshHook: two ways to send execution events, both validated by the same
 * zod schema and matched by the same code.
 *
 * Over HTTP (POST /api/events, resent on 503, 429, 502, 504, network errors and timeouts):
 *
 *   import { createAlertsClient } from 'meshhook-alerts';
 *   const alerts = createAlertsClient({ url: 'https://alerts.example.com', token: process.env.ALERTS_TOKEN! });
 *   const { accepted, deliveries } = await alerts.publish(event); // or an array: split into batches
 *
 * Through MeshHook's own Temporal client:
 *
 *   import { alertsDataConverter, parseKeyring, publishExecutionEvent } from 'meshhook-alerts';
 *   const client = new Client({ connection, namespace,
 *     dataConverter: alertsDataConverter(parseKeyring(process.env.ALERTS_ENCRYPTION_KEYS!)) });
 *   await publishExecutionEvent(client, event, { projectId: 'default' });
 *
 * The Temporal client must use the service's data converter, with the same keyring
 * (ALERTS_ENCRYPTION_KEYS): the event then reaches Temporal encrypted, and the
 * answer, encrypted by the worker, can be read.
 *
 * Workflow type `ProcessExecutionEvent`, task queue TEMPORAL_TASK_QUEUE
 * (default `meshhook-alerts`), input `{ projectId, event }`. docs/client.md has the details.
 */
export { DEFAULT_TASK_QUEUE, PROCESS_EVENT_WORKFLOW, publishExecutionEvent, type PublishOptions } from './client/temporal';
export { AlertsApiError, AlertsUnavailableError, createAlertsClient, type AlertsClient, type AlertsClientOptions, type EventsAccepted } from './client/http';

export { executionEventSchema, alertConfigInputSchema } from './lib/schemas';
export { alertsDataConverter } from './lib/codec';
export { parseKeyring } from './lib/crypto';
// for receivers: check an alert's Standard Webhooks signature (docs/receiving.md)
export { verifyAlert, checkSecret, AlertVerificationError, DEFAULT_TOLERANCE_SECONDS } from './lib/verify';
export type { VerificationCheck, VerifyOptions, AlertHeaders } from './lib/verify';
export type { ExecutionEvent, AlertConfigInput, AlertConfig } from './lib/schemas';
export type { AlertDeliveryInput, AlertDeliveryResult, ProcessExecutionEventInput, StartedDelivery } from './workflows/types';
