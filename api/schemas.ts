import { z } from 'zod';
import {
  alertConfigInputSchema,
  alertConfigSchema,
  attemptLogSchema,
  auditEntrySchema,
  conditionNameSchema,
  configHealthSchema,
  deliverySchema,
  deliveryStatusSchema,
  executionEventSchema,
  heldActionSchema,
  idSchema,
  isoTime,
  jsonValueSchema,
  presetNameSchema,
  retrySettingsSchema,
  startedDeliverySchema,
  failureRateSettingsFields,
  failureRateSettingsSchema,
  healthSettingsFields,
  healthSettingsSchema,
  plainWebhookUrlSchema,
  secretSchema,
} from '../lib/schemas';
import { operatorEventSchema, operatorEventTypeSchema } from '../lib/operator-events';

/**
 * The zod schemas of the HTTP API that are not domain objects: what the routes parse out of a
 * request, and the envelopes of their answers (the records inside them are lib/schemas.ts's, whose
 * inferred types the store returns). The routes validate with the request schemas and
 * api/openapi.ts describes both, so the description cannot drift from the validation.
 */

export const MAX_EVENTS_PER_REQUEST = 100;

// ---------------------------------------------------------------- requests

export const eventBatchSchema = z
  .strictObject({
    events: z.array(executionEventSchema).min(1, 'events must not be empty').max(MAX_EVENTS_PER_REQUEST, `at most ${MAX_EVENTS_PER_REQUEST} events per request`),
  })
  .meta({ id: 'EventBatch' });

// How the document says "one event or a batch"; the route picks one of the two by the `events` key.
export const eventsRequestSchema = z
  .union([executionEventSchema, eventBatchSchema])
  .meta({ id: 'EventsRequest', description: `One event, or \`{ events: [...] }\` with 1 to ${MAX_EVENTS_PER_REQUEST} events` });

// a row id: PostgreSQL's bigint, so at most 2^63 - 1 (a larger number would fail in the query, not here)
const cursorSchema = z
  .string()
  .regex(/^\d{1,19}$/, 'cursor must be the nextCursor of a previous page')
  .refine((v) => !/^\d+$/.test(v) || BigInt(v) <= 9_223_372_036_854_775_807n, 'cursor must be the nextCursor of a previous page');

/** `limit` of a paged list: 1–500 rows, 50 unless asked (`what`: the rows, as its description names them). */
const pageLimitSchema = (what: string) =>
  z.coerce.number().int().min(1, 'limit must be at least 1').max(500, 'limit must be at most 500').default(50).meta({ description: `${what} per page` });

export const logsQuerySchema = z
  .strictObject({
    configId: z.string().max(200).optional().meta({ description: 'only the rows of this alert config' }),
    workflowId: z.string().max(200).optional().meta({ description: 'only the rows of this MeshHook workflow' }),
    runId: z.string().max(200).optional().meta({ description: 'only the rows of this MeshHook run' }),
    deliveryId: z.string().max(300).optional().meta({ description: 'only the rows of this delivery' }),
    limit: pageLimitSchema('rows'),
    cursor: cursorSchema.optional().meta({ description: 'the `nextCursor` of the previous page' }),
  })
  .meta({ id: 'LogsQuery' });

export const deliveriesQuerySchema = z
  .strictObject({
    configId: z.string().max(200).optional().meta({ description: 'only the deliveries of this alert config' }),
    limit: z.coerce.number().int().min(1).max(200).default(50).meta({ description: 'deliveries to list' }),
  })
  .meta({ id: 'DeliveriesQuery' });

export const testAlertRequestSchema = z
  .strictObject({ configId: z.string().min(1, 'configId is required').max(200) })
  .meta({ id: 'TestAlertRequest' });

export const rotateSecretRequestSchema = z
  .strictObject({
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .optional()
      .meta({ description: 'how long the current secret keeps signing next to the new one (default: 24 h)' }),
  })
  .meta({ id: 'RotateSecretRequest' });

/** A sample event for previews: the one the web UI shows unless the caller sends its own. */
export const SAMPLE_EVENT = {
  id: 'evt_sample',
  type: 'run.failed',
  occurredAt: '2026-11-29T10:00:00Z',
  workflowId: 'wf_orders',
  runId: 'run_789',
  workflow: { name: 'Orders sync', version: 3 },
  run: { startedAt: '2026-11-29T09:59:58Z', finishedAt: '2026-11-29T10:00:00Z' },
  error: { message: 'HTTP 500 from CRM', step: 'createContact' },
  data: { customerId: 'cus_42' },
} as const;

export const previewRequestSchema = z
  .strictObject({
    config: alertConfigInputSchema.meta({ description: 'the config as it would be saved (its secret is not used)' }),
    event: executionEventSchema.optional().meta({ description: 'the event to render against; default: a sample run.failed event of config.workflowId' }),
    condition: conditionNameSchema.optional().meta({ description: "the condition the alert is for; default: the event's (failure for run.failed)" }),
    sample: z.enum(['digest', 'recovery']).optional().meta({
      description:
        "`digest`: a digest of 3 runs like the event (grouping's by and maxEvents from config, `group` in the template context); `recovery`: a recovery notification after 4 failures over 5 minutes (condition `recovered`, `recovery` in the context, the event a successful run); default: one alert of the event (docs/noise-control.md)",
    }),
  })
  .meta({ id: 'PreviewRequest' });

export const auditQuerySchema = z
  .strictObject({
    configId: z.string().max(200).optional().meta({ description: 'only the entries of this alert config' }),
    limit: pageLimitSchema('entries'),
    cursor: cursorSchema.optional().meta({ description: 'the `nextCursor` of the previous page' }),
  })
  .meta({ id: 'AuditQuery' });

export const heldQuerySchema = z
  .strictObject({
    limit: pageLimitSchema('held alerts'),
    before: cursorSchema.optional().meta({ description: 'the `nextCursor` of the previous page (held alerts come oldest first)' }),
    cursor: cursorSchema.optional().meta({ description: 'the same as `before`' }),
  })
  .meta({ id: 'HeldQuery' });

export const enableConfigRequestSchema = z
  .strictObject({
    held: heldActionSchema.optional().meta({ description: 'required when the config has held alerts (409 held_alerts_pending otherwise)' }),
  })
  .meta({ id: 'EnableConfigRequest' });

// the rule of a config's workflowId: any other id can have no configs
export const workflowIdPathSchema = z.object({ workflowId: idSchema('workflowId').meta({ description: 'the MeshHook workflow id' }) });
// Taken as they come: an unknown id is a 404 from the store.
export const configIdPathSchema = z.object({ configId: z.string().meta({ description: 'the alert config id' }) });
export const deliveryIdPathSchema = z.object({ deliveryId: z.string().meta({ description: 'the delivery id (its Temporal workflow id and `webhook-id` header)' }) });

// ---------------------------------------------------------------- answers


export const attemptLogPageSchema = z
  .object({
    logs: z.array(attemptLogSchema).meta({ description: 'newest first' }),
    nextCursor: z.string().nullable().meta({ description: 'pass as `cursor` for the next page; null on the last page' }),
  })
  .meta({ id: 'AttemptLogPage' });

export const deliveryListSchema = z.object({ deliveries: z.array(deliverySchema).meta({ description: 'newest first' }) }).meta({ id: 'DeliveryList' });

export const timelineEntrySchema = z
  .object({
    time: z.string().meta({ description: 'ISO time of the Temporal history event' }),
    event: z.string().meta({ description: 'what happened, e.g. "webhook POST started"' }),
    detail: z.string().optional(),
    attempt: z.number().int().optional(),
  })
  .meta({ id: 'TimelineEntry' });

const deliveryViews = {
  attempts: z.array(attemptLogSchema).meta({ description: 'its attempt log rows, first attempt first' }),
  timeline: z.array(timelineEntrySchema).meta({ description: "the delivery's story, read from its Temporal workflow history" }),
  temporalUrl: z.string().nullable().meta({ description: 'the delivery workflow in the Temporal Web UI; null when no UI address is known' }),
};

export const deliveryDetailSchema = z
  .union([
    deliverySchema.omit({ projectId: true, attempts: true }).extend(deliveryViews).meta({ id: 'RecordedDelivery' }),
    z
      .object({
        deliveryId: z.string(),
        configId: z.string().nullable(),
        workflowId: z.string().nullable(),
        runId: z.string().nullable(),
        condition: conditionNameSchema.nullable(),
        status: deliveryStatusSchema,
        createdAt: isoTime,
        ...deliveryViews,
      })
      .meta({
        id: 'StartingDelivery',
        description: "A delivery whose workflow has started but not yet stored its record (the moments after POST /api/events), read from Temporal's search attributes",
      }),
  ])
  .meta({ id: 'DeliveryDetail' });

export const eventsAcceptedSchema = z
  .object({
    accepted: z.number().int().min(1).meta({ description: 'events in the request' }),
    deliveries: z.array(startedDeliverySchema).meta({ description: 'one per matching config and condition' }),
    held: z
      .array(z.object({ configId: z.string(), condition: conditionNameSchema }))
      .optional()
      .meta({ description: 'always present: alerts held instead of sent: their config is disabled by the service (sent or discarded when it is re-enabled)' }),
  })
  .meta({ id: 'EventsAccepted' });

export const testAlertResultSchema = attemptLogSchema
  .pick({ deliveryId: true, outcome: true, httpStatus: true, durationMs: true, attempt: true, error: true, responseSnippet: true })
  .extend({
    sentAt: isoTime.meta({ description: 'when the attempt was logged' }),
    signatureHeaders: z
      .record(z.string(), z.string())
      .nullable()
      .meta({ description: 'the Standard Webhooks headers the attempt sent (webhook-id, webhook-timestamp, webhook-signature); null when it sent nothing' }),
  })
  .meta({ id: 'TestAlertResult', description: 'The outcome of the test delivery’s first attempt' });

export const previewResultSchema = z
  .object({
    url: z.string().meta({ description: 'the rendered webhook URL' }),
    headers: z.record(z.string(), z.string()).meta({ description: "the config's headers, rendered (the webhook-* headers are added at each attempt)" }),
    body: z.string().meta({ description: 'the rendered JSON body, exactly as it would be sent' }),
    condition: conditionNameSchema,
    deliveryId: z.string().meta({ description: 'the delivery id the preview used (`webhook-id`)' }),
    event: executionEventSchema,
    egressRefusal: z
      .string()
      .nullable()
      .meta({ description: 'why the egress policy refuses the webhook URL (`refused by the egress policy: …`, as a save would answer), or null; decided as at save: an IP literal, or a name that resolves now' }),
  })
  .meta({ id: 'PreviewResult', description: 'An alert rendered by the same renderer as deliveries use; nothing is sent or stored' });

export const presetListSchema = z
  .object({
    presets: z.array(
      z.object({
        name: presetNameSchema,
        label: z.string(),
        url: z.string().nullable().meta({ description: "the receiver's API URL, used when webhook.url is omitted; null where the URL is the user's" }),
        // (JsonValue is one named schema: described here, not with a copy of it)
        template: jsonValueSchema,
      }),
    ).meta({ description: "each preset with its payload template, over which a config's payload.template is merged (objects key by key, anything else replaced)" }),
  })
  .meta({ id: 'PresetList', description: 'The built-in payload presets (docs/presets.md)' });

export const redeliverySchema = z
  .object({
    deliveryId: z.string().meta({ description: 'the new delivery' }),
    configId: z.string(),
    condition: conditionNameSchema,
    redeliveryOf: z.string().meta({ description: 'the original delivery' }),
  })
  .meta({ id: 'Redelivery' });

export const retryScheduleSchema = z
  .object({
    retry: retrySettingsSchema.meta({ description: 'the settings with the defaults filled in, as a save would keep them' }),
    attempts: z
      .array(
        z.object({
          attempt: z.number().int().min(1),
          delayMs: z.number().meta({ description: 'after the attempt before it (0 for the first), at its longest: jitter takes up to `jitter` of it off' }),
          atMs: z.number().meta({ description: 'after the first attempt, when every attempt fails at once' }),
        }),
      )
      .meta({ description: 'every attempt the settings allow, the first one first' }),
    jitter: z.number().meta({ description: 'the fraction of each backoff delay taken off at random, at most' }),
    stopsBy: z.enum(['attempts', 'duration']).meta({ description: 'the limit that ends the schedule: maxAttempts, or maxDurationMs (the next attempt would start past it)' }),
  })
  .meta({ id: 'RetrySchedule', description: 'The attempts retry settings allow, at their longest delays; a receiver\'s Retry-After replaces a delay' });

export const savedConfigSchema = z
  .object({
    config: alertConfigSchema,
    secret: z.string().optional().meta({ description: 'only on a create without a secret: the generated one, shown this once' }),
  })
  .meta({ id: 'SavedAlertConfig' });

export const configListSchema = z.object({ configs: z.array(alertConfigSchema) }).meta({ id: 'AlertConfigList' });

export const heldAlertSchema = z
  .object({
    id: z.string(),
    eventId: z.string(),
    runId: z.string(),
    workflowId: z.string(),
    condition: conditionNameSchema,
    deliveryId: z.string().nullable().meta({ description: 'the delivery that found the config disabled (a delay watch firing); null when the event was held as it came' }),
    createdAt: isoTime,
  })
  .meta({ id: 'HeldAlert', description: 'An alert held while the service had its config disabled' });

export const heldPageSchema = z
  .object({
    held: z.array(heldAlertSchema).meta({ description: 'oldest first' }),
    count: z.number().int().min(0).meta({ description: 'every held alert of the config' }),
    nextCursor: z.string().nullable(),
  })
  .meta({ id: 'HeldAlertPage' });

export const enableConfigResultSchema = z
  .object({
    config: alertConfigSchema,
    held: z
      .object({
        action: z.enum(['send', 'discard', 'none']).meta({ description: '`none`: there were no held alerts to decide about' }),
        count: z.number().int().min(0),
        deliveries: z.array(startedDeliverySchema).meta({ description: 'send: the deliveries started, oldest alert first' }),
      })
      .meta({ description: 'what became of the held alerts' }),
  })
  .meta({ id: 'EnableConfigResult' });

export const rotatedSecretSchema = z
  .object({ configId: z.string(), secret: z.string().meta({ description: 'the new secret, shown this once' }), previousSecretExpiresAt: isoTime })
  .meta({ id: 'RotatedSecret' });

export const auditPageSchema = z
  .object({
    entries: z.array(auditEntrySchema).meta({ description: 'newest first' }),
    nextCursor: z.string().nullable().meta({ description: 'pass as `cursor` for the next page; null on the last page' }),
  })
  .meta({ id: 'AuditPage' });

export const healthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

// ---------------------------------------------------------------- insight: the project overview and a config's stats (api/routes/overview.ts)

export const MAX_STATS_HOURS = 168;

export const statsQuerySchema = z
  .strictObject({
    hours: z.coerce
      .number()
      .int('hours must be a whole number')
      .min(1, 'hours must be at least 1')
      .max(MAX_STATS_HOURS, `hours must be at most ${MAX_STATS_HOURS}`)
      .default(24)
      .meta({ description: 'the window: this many whole UTC hours, the current one last' }),
  })
  .meta({ id: 'StatsQuery' });

export const overviewSchema = z
  .object({
    workflows: z
      .array(
        z.object({
          workflowId: z.string(),
          configs: z.array(
            z.object({
              id: z.string(),
              name: z.string(),
              enabled: z.boolean(),
              disabledReason: z.string().nullable().meta({ description: 'set when the service disabled the config (a 410, or failing too long)' }),
              health: configHealthSchema,
              lastDelivery: z
                .object({
                  deliveryId: z.string(),
                  status: deliveryStatusSchema,
                  condition: conditionNameSchema,
                  httpStatus: z.number().int().nullable(),
                  createdAt: isoTime,
                  updatedAt: isoTime,
                })
                .nullable()
                .meta({ description: 'the newest delivery of the config; null when it has none' }),
            }),
          ),
        }),
      )
      .meta({ description: 'every MeshHook workflow of the project that has alert configs, by workflow id; its configs oldest first' }),
  })
  .meta({ id: 'ProjectOverview' });

const statsNumbers = {
  delivered: z.number().int().meta({ description: 'deliveries that ended delivered (their delivering attempt was logged in this hour)' }),
  failed: z.number().int().meta({ description: 'deliveries that ended failed for good' }),
  retried: z.number().int().meta({ description: 'attempts that failed and were retried' }),
  attempts: z.number().int().meta({ description: 'every attempt' }),
  successRate: z.number().min(0).max(1).nullable().meta({ description: 'delivered / (delivered + failed); null when no delivery ended' }),
  latencyMs: z
    .object({ p50: z.number().nullable(), p95: z.number().nullable() })
    .meta({ description: "each attempt's POST, request sent to answer or timeout (alert_logs.durationMs), in ms; null without attempts" }),
};

export const configStatsSchema = z
  .object({
    configId: z.string(),
    hours: z.number().int(),
    from: isoTime.meta({ description: 'start of the first hour' }),
    to: isoTime.meta({ description: 'end of the current hour' }),
    buckets: z.array(z.object({ start: isoTime.meta({ description: 'start of the hour (UTC)' }), ...statsNumbers })).meta({ description: 'one per hour, oldest first' }),
    totals: z.object(statsNumbers).meta({ description: 'the whole window' }),
  })
  .meta({ id: 'ConfigStats', description: "A config's attempt log summed up per hour" });

export const readinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.record(z.string(), z.string()).meta({ description: '"ok" or "failing: <reason>" for each dependency (store, temporal)' }),
  })
  .meta({ id: 'Readiness' });

// ---------------------------------------------------------------- the codec endpoint (Temporal's remote codec protocol)

export const MAX_CODEC_PAYLOADS = 1000;
const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');

export const codecPayloadSchema = z
  .strictObject({
    metadata: z.record(z.string().max(256), base64).nullish().meta({ description: 'each value base64' }),
    data: base64.nullish(),
    externalPayloads: z.array(z.unknown()).max(0, 'externally stored payloads are not supported').nullish(),
  })
  .meta({ id: 'CodecPayload', description: 'A Temporal payload in proto3 JSON: metadata values and data are base64' });

export const codecPayloadsSchema = z
  .strictObject({
    payloads: z.array(codecPayloadSchema).max(MAX_CODEC_PAYLOADS, `at most ${MAX_CODEC_PAYLOADS} payloads per request`),
  })
  .meta({ id: 'CodecPayloads' });

export const codecTokenPathSchema = z.strictObject({
  token: z.string().min(1).max(512).meta({ description: 'an API token, for clients that cannot send an Authorization header (the Temporal Web UI)' }),
});

// ---------------------------------------------------------------- project settings and operator alerts (docs/operator-alerts.md)

export const projectSettingsUpdateSchema = z
  .strictObject({
    operatorWebhook: z
      .strictObject({
        url: plainWebhookUrlSchema.meta({ description: "the project's operator webhook: an http(s) URL without templates (it is sent as it is), checked against the egress policy like a config's URL" }),
        secret: secretSchema.optional().meta({ description: 'whsec_… that signs its operator alerts; absent: the current one is kept, or one is generated and answered once' }),
      })
      .nullable()
      .optional()
      .meta({ description: 'null removes the project\'s operator webhook; absent leaves it as it is' }),
    health: z.strictObject(healthSettingsFields).partial().nullable().optional().meta({ description: "fields override the deployment's (ALERTS_ENDPOINT_*); null goes back to the deployment's" }),
    failureRate: z
      .strictObject(failureRateSettingsFields)
      .partial()
      .nullable()
      .optional()
      .meta({ description: "fields override the deployment's (ALERTS_FAILURE_RATE_*); null goes back to the deployment's" }),
  })
  .meta({ id: 'ProjectSettingsUpdate' });
export type ProjectSettingsUpdate = z.infer<typeof projectSettingsUpdateSchema>;

export const projectSettingsSchema = z
  .object({
    operatorWebhook: z.object({ url: z.string() }).nullable().meta({ description: "the project's own operator webhook (its secret is never read back)" }),
    health: healthSettingsSchema.meta({ description: 'effective values: the project\'s overrides over the deployment\'s' }),
    failureRate: failureRateSettingsSchema.meta({ description: 'effective values: the project\'s overrides over the deployment\'s' }),
    operatorSecret: z.string().optional().meta({ description: 'only in the answer of the PUT that generated it: shown once' }),
  })
  .meta({ id: 'ProjectSettings' });
export type ProjectSettings = z.infer<typeof projectSettingsSchema>;

export const operatorAlertsQuerySchema = z
  .strictObject({
    limit: pageLimitSchema('alerts'),
    before: cursorSchema.optional().meta({ description: 'the `nextCursor` of the previous page' }),
  })
  .meta({ id: 'OperatorAlertsQuery' });

export const operatorAlertSchema = z
  .object({
    alertId: z.string().meta({ description: 'op:<target>:<event id>: its Temporal workflow id (webhook-id: the same with "." as "_")' }),
    type: operatorEventTypeSchema,
    projectId: z.string().nullable(),
    target: z.enum(['deployment', 'project']).meta({ description: "deployment: ALERTS_OPERATOR_WEBHOOK_URL; project: the project's own operator webhook" }),
    status: z.enum(['in_progress', 'delivered', 'failed']),
    attempts: z.number().int(),
    httpStatus: z.number().int().nullable().meta({ description: "the last attempt's HTTP status; always null for target deployment (the deployment operator's webhook: its answers are not shown to a project)" }),
    error: z.string().nullable().meta({ description: 'why the last attempt did not deliver; always null for target deployment (its errors can name the operator\'s host)' }),
    event: operatorEventSchema,
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: 'OperatorAlert', description: 'One operator alert to one operator webhook, and how its delivery went' });
export type OperatorAlertRecord = z.infer<typeof operatorAlertSchema>;

export const operatorAlertPageSchema = z
  .object({
    alerts: z.array(operatorAlertSchema).meta({ description: 'newest first' }),
    nextCursor: z.string().nullable().meta({ description: 'pass as `before` for the next page; null on the last page' }),
  })
  .meta({ id: 'OperatorAlertPage' });

// ---------------------------------------------------------------- erasing a project (api/routes/erasure.ts, docs/retention.md)

export const eraseProjectRequestSchema = z
  .strictObject({
    confirm: z.string().min(1, 'confirm is required: the project id of this API token').max(200).meta({ description: "the project id of this API token, to confirm that all of its data goes" }),
  })
  .meta({ id: 'EraseProjectRequest' });

export const erasedProjectSchema = z
  .object({
    erased: z
      .object({
        configs: z.number().int(),
        deliveries: z.number().int(),
        logs: z.number().int().meta({ description: 'attempt log rows' }),
        held: z.number().int().meta({ description: 'held alerts' }),
        settings: z.number().int().meta({ description: 'project settings (0 or 1)' }),
        operatorAlerts: z.number().int(),
        workflows: z.number().int().meta({ description: 'Temporal workflow executions of the project (running ones terminated first), deleted' }),
      })
      .meta({ description: 'how many of each were deleted; the audit entry `project.erased` records the same counts and is kept' }),
  })
  .meta({ id: 'ErasedProject' });
