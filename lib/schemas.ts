import { z } from 'zod';
import { literalAuthority } from './egress';
import { PRESET_NAMES, PRESETS, presetIssues } from './presets';
import { checkTemplateString, templateStrings, TemplateError, type JsonValue } from './templates';

/**
 * The zod schemas of the contract (../shared/DESIGN.md). Each schema is the
 * TypeScript type, the validation and the OpenAPI description of its object.
 */

export const EVENT_TYPES = ['run.started', 'run.succeeded', 'run.failed', 'run.paused', 'run.resumed', 'run.canceled'] as const;
export const CONDITION_TYPES = ['failure', 'success', 'manual_intervention', 'canceled', 'delay'] as const;

/** The rule of every id the caller names (event, workflow, run, config): one pattern, messages naming the field. */
export const idSchema = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(200, `${what} must be at most 200 characters`)
    .regex(/^[A-Za-z0-9_.:@\/-]+$/, `${what} may contain only letters, digits and _ . : @ / -`);

/**
 * Any JSON value. Registered (not `.meta()`, which would name a copy) so that the recursion inside
 * z.json() points at this very schema and the OpenAPI document names it `JsonValue`.
 */
export const jsonValueSchema = z.json().register(z.globalRegistry, { id: 'JsonValue', description: 'Any JSON value' });

// ---------------------------------------------------------------- events

export const executionEventSchema = z
  .strictObject({
    id: idSchema('id'),
    type: z.enum(EVENT_TYPES),
    occurredAt: z.iso.datetime({ offset: true }).optional(),
    workflowId: idSchema('workflowId'),
    runId: idSchema('runId'),
    workflow: z
      .strictObject({
        name: z.string().max(500).optional(),
        version: z.union([z.number(), z.string().max(100)]).optional(),
      })
      .optional(),
    run: z
      .strictObject({
        startedAt: z.iso.datetime({ offset: true }).optional(),
        finishedAt: z.iso.datetime({ offset: true }).optional(),
      })
      .optional(),
    error: z
      .strictObject({
        message: z.string().max(10_000).optional(),
        step: z.string().max(500).optional(),
        code: z.string().max(200).optional(),
      })
      .optional(),
    data: z.record(z.string(), jsonValueSchema).optional(),
  })
  .meta({ id: 'ExecutionEvent', description: 'A MeshHook run event' });
export type ExecutionEvent = z.infer<typeof executionEventSchema>;

// ---------------------------------------------------------------- configs

export const conditionSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('failure') }),
    z.strictObject({ type: z.literal('success') }),
    z.strictObject({ type: z.literal('manual_intervention') }),
    z.strictObject({ type: z.literal('canceled') }),
    z.strictObject({
      type: z.literal('delay'),
      thresholdSeconds: z
        .number()
        .int('thresholdSeconds must be a whole number')
        .min(1, 'thresholdSeconds must be at least 1')
        .max(30 * 24 * 3600, 'thresholdSeconds must be at most 30 days'),
    }),
  ])
  .meta({ id: 'AlertCondition' });
export type AlertCondition = z.infer<typeof conditionSchema>;
export type ConditionType = AlertCondition['type'];
/** A condition as an alert carries it: the config's conditions, plus `test` for test alerts. */
export const conditionNameSchema = z
  .enum([...CONDITION_TYPES, 'test', 'recovered'])
  .meta({ id: 'ConditionName', description: 'The condition an alert is for; `test` for a test alert; `recovered` for a recovery notification (docs/noise-control.md)' });
export type AlertConditionName = z.infer<typeof conditionNameSchema>;


// ---------------------------------------------------------------- noise control (issue 14, docs/noise-control.md)

/** Event fields a group can be keyed by. The alert's condition is always part of the key. */
export const GROUP_FIELDS = ['workflow.id', 'error.step', 'error.code', 'error.message', 'workflow.version'] as const;
export type GroupField = (typeof GROUP_FIELDS)[number];

const wholeSeconds = (name: string, min: number, max: number) =>
  z.number().int(`${name} must be a whole number of seconds`).min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`);

export const groupingSchema = z
  .strictObject({
    by: z
      .array(z.enum(GROUP_FIELDS, { error: () => `grouping.by may name only ${GROUP_FIELDS.join(', ')}` }))
      .min(1, 'grouping.by must name at least one field')
      .max(GROUP_FIELDS.length)
      .default(['workflow.id'])
      .refine((by) => new Set(by).size === by.length, 'grouping.by names a field twice'),
    waitSeconds: wholeSeconds('grouping.waitSeconds', 0, 3600).default(30).meta({ description: 'how long the first event of a group waits for more before the first digest' }),
    intervalSeconds: wholeSeconds('grouping.intervalSeconds', 1, 86_400).default(300).meta({ description: 'later events go into the next digest, at most this often' }),
    maxEvents: z.number().int().min(1, 'grouping.maxEvents must be at least 1').max(1000, 'grouping.maxEvents must be at most 1000').default(100)
      .meta({ description: 'events a digest lists; it counts the rest' }),
  })
  .meta({ description: "Alertmanager's group_wait and group_interval: one digest for many events" });
export type GroupingSettings = z.infer<typeof groupingSchema>;

export const throttleSchema = z
  .strictObject({
    maxPerWindow: z.number().int().min(1, 'throttle.maxPerWindow must be at least 1').max(10_000, 'throttle.maxPerWindow must be at most 10000'),
    windowSeconds: wholeSeconds('throttle.windowSeconds', 1, 86_400),
  })
  .meta({ description: 'at most maxPerWindow alerts per window; what it holds back is counted into the next alert that goes out' });
export type ThrottleSettings = z.infer<typeof throttleSchema>;

export const dedupSchema = z
  .strictObject({
    key: z
      .string()
      .min(1, 'dedup.key must not be empty')
      .max(500, 'dedup.key must be at most 500 characters')
      .superRefine((key, ctx) => {
        try {
          checkTemplateString(key);
        } catch (err) {
          templateIssue(ctx, [], err);
        }
      })
      .meta({ description: 'a template over the alert context, e.g. "{{ error.step }}": alerts with the same key within the window are one' }),
    windowSeconds: wholeSeconds('dedup.windowSeconds', 1, 7 * 86_400),
  })
  .meta({ description: 'one alert per key within the window' });
export type DedupSettings = z.infer<typeof dedupSchema>;

/** A config's noise settings, every one off by default (docs/noise-control.md). */
export const noiseSettingsFields = {
  grouping: groupingSchema.nullable().default(null),
  recovery: z.boolean().default(false).meta({ description: 'after a failure or delay alert, the next successful run sends one `recovered` alert' }),
  throttle: throttleSchema.nullable().default(null),
  dedup: dedupSchema.nullable().default(null),
  repeatIntervalSeconds: wholeSeconds('repeatIntervalSeconds', 1, 30 * 86_400).nullable().default(null)
    .meta({ description: 'a still-failing workflow is notified again at most this often' }),
};
export const noiseSettingsSchema = z.object(noiseSettingsFields);
export type NoiseSettings = z.infer<typeof noiseSettingsSchema>;
export const NOISE_OFF: NoiseSettings = { grouping: null, recovery: false, throttle: null, dedup: null, repeatIntervalSeconds: null };
/** The noise settings of a config (or a config input): its five fields, as the pipeline reads them. */
export const noiseSettingsOf = (c: NoiseSettings): NoiseSettings => ({
  grouping: c.grouping, recovery: c.recovery, throttle: c.throttle, dedup: c.dedup, repeatIntervalSeconds: c.repeatIntervalSeconds,
});
/** Whether a config's alerts go through its noise pipeline (the AlertNoise workflow) at all. */
export const noiseOn = (n: NoiseSettings | null | undefined): n is NoiseSettings =>
  !!n && (n.grouping !== null || n.recovery || n.throttle !== null || n.dedup !== null || n.repeatIntervalSeconds !== null);

/** What the pipeline did with an alert it did not send on its own (a log row with attempt 0). */
export const NOISE_OUTCOMES = ['silenced', 'deduplicated', 'throttled', 'grouped', 'repeat_suppressed'] as const;
export type NoiseOutcome = (typeof NOISE_OUTCOMES)[number];

// RFC 9110 token characters
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
// Headers the service sets itself, or that would break the request framing.
export const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade',
  'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'expect',
  'webhook-id', 'webhook-timestamp', 'webhook-signature',
]);
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u0008\u000a-\u001f\u007f]/;

const templateIssue = (ctx: z.RefinementCtx, path: (string | number)[], err: unknown) =>
  ctx.addIssue({ code: 'custom', path, message: `invalid template: ${err instanceof TemplateError ? err.message : String(err)}` });

export const webhookSchema = z
  .strictObject({
    url: z
      .string()
      .min(1, 'url must not be empty')
      .max(2048, 'url must be at most 2048 characters')
      .superRefine((url, ctx) => {
        if (!/^https?:\/\//i.test(url)) {
          ctx.addIssue({ code: 'custom', message: 'url must start with https:// or http://' });
          return;
        }
        try {
          checkTemplateString(url, 'url');
        } catch (err) {
          return templateIssue(ctx, [], err);
        }
        // The host must be fixed text: a template there could aim the alert anywhere. Judged on the
        // authority the URL parser of a delivery will find (`http:///{{ x }}` has its host in the template).
        const authority = literalAuthority(url);
        if (authority === null || /[{}%]/.test(authority)) {
          ctx.addIssue({
            code: 'custom',
            message: 'url host must not contain template expressions: the user info, host and port are fixed text, without braces or percent-encoding (templates may start in the path, query or fragment)',
          });
          return;
        }
        try {
          new URL(url.replace(/\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g, 'x'));
        } catch {
          ctx.addIssue({ code: 'custom', message: 'url is not a valid URL' });
        }
      })
      // checked with the payload's preset: pagerduty and opsgenie bring their API's URL (lib/presets.ts)
      .optional()
      .meta({ description: 'required, unless payload.preset has a URL of its own (pagerduty, opsgenie): then that URL when omitted' }),
    headers: z
      .record(z.string(), z.string().max(4096, 'header values must be at most 4096 characters'))
      .default({})
      .superRefine((headers, ctx) => {
        const names = Object.keys(headers);
        if (names.length > 32) ctx.addIssue({ code: 'custom', message: 'at most 32 headers' });
        const seen = new Set<string>();
        for (const [name, value] of Object.entries(headers)) {
          if (!HEADER_NAME.test(name)) {
            ctx.addIssue({ code: 'custom', path: [name], message: `header name "${name.slice(0, 40)}" is not an HTTP token (letters, digits and !#$%&'*+.^_\`|~-)` });
            continue;
          }
          const lower = name.toLowerCase();
          if (RESERVED_HEADERS.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: `header "${name}" is set by the service and cannot be configured` });
          if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: `header "${name}" appears twice` });
          seen.add(lower);
          if (CONTROL_CHARS.test(value)) ctx.addIssue({ code: 'custom', path: [name], message: 'header values must not contain control characters (CR, LF, ...)' });
          else {
            try {
              checkTemplateString(value);
            } catch (err) {
              templateIssue(ctx, [name], err);
            }
          }
        }
      }),
    timeoutMs: z.number().int().min(100, 'timeoutMs must be at least 100').max(30_000, 'timeoutMs must be at most 30000').default(10_000),
  })
  .meta({ id: 'Webhook' });

/**
 * A webhook URL the service sends to as it is, never rendered (an operator webhook: the project's,
 * and the deployment's ALERTS_OPERATOR_WEBHOOK_URL): a config's URL rules, with a template refused
 * at save rather than sent as braces.
 */
export const plainWebhookUrlSchema = z
  .string()
  .min(1, 'the URL must not be empty')
  .max(2048, 'the URL must be at most 2048 characters')
  .superRefine((url, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (!/^https?:\/\//i.test(url)) return issue('the URL must start with https:// or http://');
    if (/\{[{%]/.test(url)) return issue('the URL must not contain a template ({{ … }} or {% … %}): it is sent as it is, not rendered');
    const authority = literalAuthority(url);
    if (authority === null || /[{}%]/.test(authority)) return issue('the URL\'s user info, host and port must be fixed text, without braces or percent-encoding');
    try {
      new URL(url);
    } catch {
      issue('the URL is not a valid URL');
    }
  });

/** A built-in payload preset (lib/presets.ts, docs/presets.md). */
export const presetNameSchema = z
  .enum(PRESET_NAMES, { error: () => `payload.preset must be one of ${PRESET_NAMES.join(', ')}` })
  .meta({ id: 'PayloadPreset', description: PRESET_NAMES.map((name) => `\`${name}\`: ${PRESETS[name].label}`).join('; ') });

export const payloadSchema = z
  .strictObject({
    preset: presetNameSchema.optional().meta({ description: "a built-in payload for a receiver; `template`, when given, is merged over the preset's (objects key by key, anything else replaced)" }),
    template: jsonValueSchema
      .nullable()
      .default(null)
      .superRefine((template, ctx) => {
        if (template === null) return;
        if (JSON.stringify(template).length > 64 * 1024) {
          ctx.addIssue({ code: 'custom', message: 'template must be at most 64 KiB of JSON' });
          return;
        }
        for (const [source, path] of templateStrings(template as JsonValue)) {
          try {
            checkTemplateString(source);
          } catch (err) {
            templateIssue(ctx, path, err);
          }
        }
      }),
  })
  .meta({
    id: 'Payload',
    description: "template: a JSON value whose strings are Liquid templates, merged over the preset's when `preset` is set (docs/presets.md); with neither, the default payload is sent",
  });

export const RETRY_DEFAULTS = {
  maxAttempts: 8,
  initialIntervalMs: 1_000,
  backoffCoefficient: 2,
  maxIntervalMs: 3_600_000,
  maxDurationMs: 86_400_000,
} as const;

const retryFields = {
  maxAttempts: z.number().int().min(1, 'maxAttempts must be at least 1').max(100, 'maxAttempts must be at most 100').default(RETRY_DEFAULTS.maxAttempts),
  initialIntervalMs: z.number().int().min(100, 'initialIntervalMs must be at least 100').max(86_400_000).default(RETRY_DEFAULTS.initialIntervalMs),
  backoffCoefficient: z.number().min(1, 'backoffCoefficient must be at least 1').max(10, 'backoffCoefficient must be at most 10').default(RETRY_DEFAULTS.backoffCoefficient),
  maxIntervalMs: z.number().int().min(100).max(7 * 86_400_000).default(RETRY_DEFAULTS.maxIntervalMs),
  maxDurationMs: z.number().int().min(1_000, 'maxDurationMs must be at least 1000').max(30 * 86_400_000, 'maxDurationMs must be at most 30 days').default(RETRY_DEFAULTS.maxDurationMs),
};
export const retrySchema = z
  .strictObject(retryFields)
  .refine((r) => r.maxIntervalMs >= r.initialIntervalMs, { path: ['maxIntervalMs'], message: 'maxIntervalMs must be at least initialIntervalMs' })
  .meta({ id: 'RetryPolicy' });

/** The same settings as a config keeps and shows them, every field filled in (named apart: OpenAPI's answer form of RetryPolicy). */
export const retrySettingsSchema = z.object(retryFields).meta({ id: 'RetrySettings' });

// base64 of at least 24 bytes (32 characters)
const SECRET = /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/;
export const secretSchema = z
  .string()
  .regex(SECRET, 'secret must be "whsec_" followed by base64 of at least 24 random bytes')
  .max(200, 'secret is too long');

export const alertConfigInputSchema = z
  .strictObject({
    id: idSchema('id').optional(),
    workflowId: idSchema('workflowId'),
    name: z.string().trim().min(1, 'name must not be empty').max(200, 'name must be at most 200 characters'),
    enabled: z.boolean().default(true),
    conditions: z
      .array(conditionSchema)
      .min(1, 'at least one condition is needed')
      .max(5)
      .superRefine((conditions, ctx) => {
        const seen = new Set<string>();
        for (const c of conditions) {
          if (seen.has(c.type)) ctx.addIssue({ code: 'custom', message: `condition "${c.type}" appears twice` });
          seen.add(c.type);
        }
      }),
    webhook: webhookSchema,
    payload: payloadSchema.default({ template: null }),
    retry: retrySchema.default(() => ({ ...RETRY_DEFAULTS })),
    ...noiseSettingsFields,
    secret: secretSchema.optional(),
    // answers carry health; a config read back can be saved as it is (the service keeps its own)
    health: z.unknown().optional().meta({ description: 'read-only (shown in answers): ignored when saved' }),
  })
  .superRefine((config, ctx) => {
    // a preset with an API URL of its own stands in for webhook.url (lib/presets.ts)
    if (config.webhook.url === undefined && !(config.payload.preset && PRESETS[config.payload.preset].url)) {
      ctx.addIssue({ code: 'custom', path: ['webhook', 'url'], message: 'url is required (only the pagerduty and opsgenie presets have a URL of their own)' });
    }
  })
  .transform(({ webhook, ...config }) => ({ ...config, webhook: { ...webhook, url: webhook.url ?? (config.payload.preset && PRESETS[config.payload.preset].url) ?? '' } }))
  .meta({ id: 'AlertConfigInput' });
export type AlertConfigInput = z.infer<typeof alertConfigInputSchema>;

/** What to do with the alerts held while the service had a config disabled, on re-enabling it (docs/endpoint-health.md). */
export const heldActionSchema = z
  .enum(['send', 'discard'])
  .meta({ id: 'HeldAction', description: '`send`: one new delivery per held alert, oldest first, each signed afresh; `discard`: delete them' });
export type HeldAction = z.infer<typeof heldActionSchema>;

/** POST /api/alerts/config body: `{ config, secret?, held? }` (a secret inside config is accepted too). */
export const saveConfigBodySchema = z
  .strictObject({
    config: alertConfigInputSchema,
    secret: secretSchema.optional(),
    held: heldActionSchema.optional().meta({ description: 'required when config.enabled is true and the config has held alerts (409 held_alerts_pending otherwise)' }),
  })
  .refine((b) => !(b.secret && b.config.secret && b.secret !== b.config.secret), {
    path: ['secret'],
    message: 'secret is given twice with different values',
  })
  // the credentials a preset's receiver needs, checked when saved (a preview renders without them)
  .superRefine((b, ctx) => {
    for (const issue of presetIssues(b.config)) ctx.addIssue({ code: 'custom', message: issue.message, path: ['config', ...issue.path] });
  })
  .meta({ id: 'SaveAlertConfig' });

// (isoTime below is not defined yet where the config's schemas are)
const isoTimeOrNull = () => z.iso.datetime().nullable();

/** A config's endpoint health (docs/endpoint-health.md). */
export const configHealthSchema = z
  .object({
    consecutiveFailures: z.number().int().min(0).meta({ description: 'deliveries that ended failed since the last delivered one' }),
    failingSince: isoTimeOrNull().meta({ description: 'when the current streak of failures began; null when the last delivery was delivered' }),
    lastSuccessAt: isoTimeOrNull(),
    lastFailureAt: isoTimeOrNull(),
    warnedAt: isoTimeOrNull().meta({ description: 'when config.failing was raised for the current streak' }),
    heldCount: z.number().int().min(0).meta({ description: 'alerts held while the service has the config disabled' }),
  })
  .meta({ id: 'ConfigHealth' });
export type ConfigHealth = z.infer<typeof configHealthSchema>;

export const alertConfigSchema = z
  .object({
    id: z.string(),
    workflowId: z.string(),
    name: z.string(),
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    conditions: z.array(conditionSchema),
    webhook: z.object({ url: z.string(), headers: z.record(z.string(), z.string()), timeoutMs: z.number() }),
    payload: z.object({ preset: presetNameSchema.optional().meta({ description: 'present when the config uses a preset' }), template: jsonValueSchema.nullable() }),
    retry: retrySettingsSchema,
    ...noiseSettingsSchema.shape,
    createdAt: z.string(),
    updatedAt: z.string(),
    health: configHealthSchema,
  })
  .meta({ id: 'AlertConfig', description: 'An alert config as the API shows it: never the secret' });
export type AlertConfig = z.infer<typeof alertConfigSchema>;

export const errorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })
  .meta({ id: 'Error' });

// ---------------------------------------------------------------- deliveries, attempts, audit: the store's records as the API shows them

/** An ISO 8601 time in UTC, as every answer writes times. */
export const isoTime = z.iso.datetime();

export const deliveryStatusSchema = z.enum(['scheduled', 'in_progress', 'delivered', 'failed', 'suppressed', ...NOISE_OUTCOMES]).meta({
  id: 'DeliveryStatus',
  description: '`scheduled`: a delay watch waiting; `suppressed`: a delay watch whose run finished in time; `silenced`, `deduplicated`, `throttled`, `grouped`, `repeat_suppressed`: a delay alert the noise pipeline did not send on its own (docs/noise-control.md)',
});
export type DeliveryStatus = z.infer<typeof deliveryStatusSchema>;

export const attemptOutcomeSchema = z.enum(['delivered', 'retrying', 'failed', ...NOISE_OUTCOMES]).meta({
  id: 'AttemptOutcome',
  description: '`retrying`: this attempt failed and another will follow; `failed`: this attempt failed and the delivery stops; `silenced`, `deduplicated`, `throttled`, `grouped`, `repeat_suppressed`: the noise pipeline did not send this alert on its own (attempt 0: nothing was sent; `error` says why, docs/noise-control.md)',
});
export type AttemptOutcome = z.infer<typeof attemptOutcomeSchema>;

export const deliverySchema = z
  .object({
    deliveryId: z.string(),
    projectId: z.string(),
    configId: z.string(),
    workflowId: z.string(),
    runId: z.string(),
    eventId: z.string(),
    condition: conditionNameSchema,
    status: deliveryStatusSchema,
    attempts: z.number().int().min(0).meta({ description: 'attempts made so far' }),
    httpStatus: z.number().int().nullable().meta({ description: 'the last HTTP status the receiver answered' }),
    error: z.string().nullable(),
    redeliveryOf: z.string().nullable().meta({ description: 'the delivery this one repeats' }),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: 'Delivery' });
export type DeliveryRecord = z.infer<typeof deliverySchema>;
/** Who a delivery is for; carried by every log row of it. */
export type DeliveryRef = Pick<DeliveryRecord, 'deliveryId' | 'projectId' | 'configId' | 'workflowId' | 'runId' | 'eventId' | 'condition'>;

export const attemptLogSchema = deliverySchema
  .pick({ deliveryId: true, configId: true, workflowId: true, runId: true, eventId: true, condition: true })
  .extend({
    attempt: z.number().int().min(0).meta({ description: '1 for the first attempt; 0 for a noise pipeline decision (nothing was sent)' }),
    outcome: attemptOutcomeSchema,
    httpStatus: z.number().int().nullable().meta({ description: "the receiver's HTTP status; null when it did not answer" }),
    error: z.string().nullable(),
    durationMs: z.number().int().nullable(),
    responseSnippet: z.string().nullable().meta({ description: "the start of the receiver's answer" }),
    createdAt: isoTime,
  })
  .meta({ id: 'AttemptLog', description: 'One attempt to deliver an alert' });
export type AttemptLog = z.infer<typeof attemptLogSchema>;

export const startedDeliverySchema = z
  .object({
    deliveryId: z.string(),
    configId: z.string(),
    condition: conditionNameSchema,
    duplicate: z.boolean().meta({ description: 'this event had already started this delivery: nothing new was sent' }),
    noise: z.enum(['silenced', 'pipeline']).optional().meta({
      description: "`silenced`: a silence was in force at the event's time, nothing is sent; `pipeline`: the config's noise pipeline decides (grouped, throttled, …: the log row of deliveryId says; docs/noise-control.md). With either, `duplicate` is false even for an event sent before (the pipeline takes it in once), and deliveryId has a delivery (GET /api/alerts/deliveries) only once the alert is sent on its own; until then its attempt-0 log row tells",
    }),
  })
  .meta({ id: 'StartedDelivery' });
export type StartedDelivery = z.infer<typeof startedDeliverySchema>;

export const AUDIT_ACTIONS = [
  'config.created', 'config.updated', 'config.deleted', 'config.secret_rotated', 'config.disabled',
  'config.reenabled', 'config.held_sent', 'config.held_discarded',
  'project.settings_updated', 'project.erased', 'silence.created', 'silence.deleted',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One changed field: `from` is absent on a create, `to` on a delete. */
const auditChangeSchema = z.object({ field: z.string(), from: jsonValueSchema.optional(), to: jsonValueSchema.optional() });
export type AuditChange = z.infer<typeof auditChangeSchema>;

export const auditEntrySchema = z
  .object({
    id: z.string(),
    action: z.enum(AUDIT_ACTIONS),
    configId: z.string().nullable().meta({ description: 'null for an entry about the whole project (`project.*`)' }),
    workflowId: z.string().nullable(),
    tokenId: z.string().nullable().meta({ description: 'the API token (its id, `tok_…`) that made the change; null when the service made it (a receiver answered 410)' }),
    changes: z
      .array(auditChangeSchema)
      .meta({ description: 'the fields that changed; the webhook URL shows only its scheme and host, header values and secrets only as "***"' }),
    createdAt: isoTime,
  })
  .meta({ id: 'AuditEntry', description: 'One change of an alert config' });
export type AuditEntry = z.infer<typeof auditEntrySchema>;

// ---------------------------------------------------------------- project settings (issue 13, docs/operator-alerts.md)

/** Endpoint health thresholds: ALERTS_ENDPOINT_* for the deployment, overridable per project field by field. */
export const healthSettingsFields = {
  warnAfterFailures: z.number().int().min(1, 'health.warnAfterFailures must be at least 1').max(10_000, 'health.warnAfterFailures must be at most 10000'),
  disableAfterSeconds: z
    .number()
    .int()
    .min(0, 'health.disableAfterSeconds must be at least 0 (0: never disable)')
    .max(90 * 86_400, 'health.disableAfterSeconds must be at most 90 days'),
};
/** The failure-rate alert's settings: ALERTS_FAILURE_RATE_* for the deployment, overridable per project field by field. */
export const failureRateSettingsFields = {
  threshold: z.number().min(0, 'failureRate.threshold must be at least 0').max(1, 'failureRate.threshold must be at most 1'),
  windowSeconds: z.number().int().min(10, 'failureRate.windowSeconds must be at least 10').max(86_400, 'failureRate.windowSeconds must be at most 86400'),
  minAttempts: z.number().int().min(1, 'failureRate.minAttempts must be at least 1').max(1_000_000, 'failureRate.minAttempts must be at most 1000000'),
};
export const healthSettingsSchema = z.object(healthSettingsFields).meta({ id: 'HealthSettings' });
export type HealthSettings = z.infer<typeof healthSettingsSchema>;
export const failureRateSettingsSchema = z.object(failureRateSettingsFields).meta({ id: 'FailureRateSettings' });
export type FailureRateSettings = z.infer<typeof failureRateSettingsSchema>;

// ---------------------------------------------------------------- silences (issue 14, docs/noise-control.md)

export const silenceRecurrenceSchema = z
  .strictObject({
    cron: z.string().min(1, 'recurrence.cron must not be empty').max(200, 'recurrence.cron is too long')
      .meta({ description: 'five fields (minute hour day-of-month month day-of-week) for when each window starts, e.g. "0 2 * * 6" (Saturdays 02:00)' }),
    durationSeconds: z.number().int().min(60, 'recurrence.durationSeconds must be at least 60').max(31 * 86_400, 'recurrence.durationSeconds must be at most 31 days'),
    timeZone: z.string().min(1).max(100).meta({ description: 'an IANA time zone, e.g. "Europe/Berlin"; the cron is read in its local time' }),
  })
  .meta({ id: 'SilenceRecurrence' });
export type SilenceRecurrence = z.infer<typeof silenceRecurrenceSchema>;

/** POST /api/silences body: for one config (configId) or every config of a MeshHook workflow (workflowId); one-off (from, until) or recurring. */
export const silenceInputSchema = z
  .strictObject({
    configId: idSchema('configId').optional(),
    workflowId: idSchema('workflowId').optional(),
    from: z.iso.datetime({ offset: true, error: 'from must be an ISO time with an offset (Z or +01:00), e.g. 2026-12-02T22:00:00+01:00' }).optional(),
    until: z.iso.datetime({ offset: true, error: 'until must be an ISO time with an offset (Z or +01:00), e.g. 2026-12-03T01:00:00+01:00' }).optional(),
    recurrence: silenceRecurrenceSchema.optional(),
    comment: z.string().max(500, 'comment must be at most 500 characters').default(''),
  })
  .meta({ id: 'SilenceInput' });
export type SilenceInput = z.infer<typeof silenceInputSchema>;

export const silenceSchema = z
  .object({
    id: z.string(),
    configId: z.string().nullable(),
    workflowId: z.string().nullable(),
    from: isoTime.nullable(),
    until: isoTime.nullable(),
    recurrence: silenceRecurrenceSchema.nullable(),
    comment: z.string(),
    createdAt: isoTime,
    activeNow: z.boolean(),
    nextWindow: z.object({ from: isoTime, until: isoTime.nullable().meta({ description: 'null: open-ended, the windows join on past the next 1000 (docs/silences.md)' }) }).nullable().meta({ description: 'the window in force now, else the next one; null when none is left' }),
  })
  .meta({ id: 'Silence' });
export type Silence = z.infer<typeof silenceSchema>;
