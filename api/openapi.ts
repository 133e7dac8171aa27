import { z } from 'zod';
import { errorSchema, retrySchema, saveConfigBodySchema, silenceInputSchema, silenceSchema } from '../lib/schemas';
import { BODY_LIMIT_BYTES } from './body';
import { CODEC_BODY_LIMIT_BYTES } from './routes/codec';
import { silenceIdPathSchema, silenceListSchema, silencesQuerySchema } from './routes/silences';
import {
  attemptLogPageSchema,
  auditPageSchema,
  auditQuerySchema,
  eraseProjectRequestSchema,
  erasedProjectSchema,
  configStatsSchema,
  codecPayloadsSchema,
  codecTokenPathSchema,
  configIdPathSchema,
  configListSchema,
  deliveriesQuerySchema,
  deliveryDetailSchema,
  deliveryIdPathSchema,
  deliveryListSchema,
  enableConfigRequestSchema,
  enableConfigResultSchema,
  eventsAcceptedSchema,
  eventsRequestSchema,
  healthSchema,
  heldPageSchema,
  heldQuerySchema,
  logsQuerySchema,
  operatorAlertPageSchema,
  operatorAlertsQuerySchema,
  overviewSchema,
  projectSettingsSchema,
  projectSettingsUpdateSchema,
  previewRequestSchema,
  presetListSchema,
  previewResultSchema,
  readinessSchema,
  redeliverySchema,
  rotatedSecretSchema,
  retryScheduleSchema,
  rotateSecretRequestSchema,
  savedConfigSchema,
  statsQuerySchema,
  testAlertRequestSchema,
  testAlertResultSchema,
  workflowIdPathSchema,
} from './schemas';

type Io = 'input' | 'output';

/**
 * OpenAPI 3.1 description of every route, generated from the same zod schemas that validate the
 * requests (zod's JSON Schema output is OpenAPI 3.1's dialect) and from the zod schemas of the
 * answers. A schema with `.meta({ id })` becomes a named component; its name is its id.
 */
export function buildOpenApi(): object {
  const components = new ComponentSchemas();
  const json = (schema: z.ZodType, io: Io) => ({ content: { 'application/json': { schema: components.schemaOf(schema, io) } } });
  const body = (schema: z.ZodType, required = true) => ({ requestBody: { required, ...json(schema, 'input') } });
  const answer = (description: string, schema: z.ZodType) => ({ description, ...json(schema, 'output') });
  const error = (description: string) => answer(description, errorSchema);

  const authErrors = {
    '401': error('missing or unknown API token'),
    '429': error('too many requests with this API token (ALERTS_RATE_LIMIT_PER_MINUTE); the Retry-After header says in how many seconds to try again'),
  };
  const bodyErrors = {
    '400': error('invalid input; error.details.issues names each field'),
    '413': error(`body larger than ${BODY_LIMIT_BYTES} bytes`),
    '415': error('body is not application/json'),
  };
  const queryErrors = { '400': error('invalid query; error.details.issues names each parameter') };
  const open = { security: [] };

  /** Temporal's remote codec protocol, for the Web UI and the CLI (api/routes/codec.ts) */
  const codecOperation = (direction: 'decode' | 'encode', tokenInPath: boolean) => ({
    post: {
      operationId: `codec${direction === 'decode' ? 'Decode' : 'Encode'}${tokenInPath ? 'WithPathToken' : ''}`,
      summary:
        direction === 'decode'
          ? "Decrypt payloads of the token's project (every encrypted payload must be tagged with it)"
          : "Encrypt payloads for the token's project",
      ...(tokenInPath ? open : {}),
      parameters: [
        ...(tokenInPath ? parametersOf(codecTokenPathSchema, 'path') : []),
        { name: 'X-Namespace', in: 'header', required: false, description: 'the Temporal namespace; only the service’s own is served', schema: { type: 'string' } },
      ],
      ...body(codecPayloadsSchema),
      responses: {
        '200': answer(`the payloads, ${direction}d, in the same order`, codecPayloadsSchema),
        '400': error('invalid input, another namespace, or a payload that does not decrypt'),
        '401': error('missing or unknown API token'),
        '403': error("a payload of another project or of none, or a browser origin that is not allowed (ALERTS_CODEC_CORS_ORIGINS)"),
        '413': error(`body larger than ${CODEC_BODY_LIMIT_BYTES} bytes`),
        '415': error('body is not application/json'),
      },
    },
  });

  const paths = {
    '/api/alerts/config': {
      post: {
        operationId: 'saveAlertConfig',
        summary: 'Create (no id) or update (with id) an alert config',
        ...body(saveConfigBodySchema),
        responses: {
          '201': answer('created; `secret` is present only when the service generated it, and only this once', savedConfigSchema),
          '200': answer('updated', savedConfigSchema),
          ...bodyErrors,
          ...authErrors,
          '404': error('no config with that id in this project'),
          '409': error('held_alerts_pending: enabling a config that has held alerts needs `held` ("send" or "discard")'),
        },
      },
      get: {
        operationId: 'listAlertConfigs',
        summary: "All of the project's alert configs",
        responses: { '200': answer('configs', configListSchema), ...authErrors },
      },
    },
    '/api/alerts/config/{workflowId}': {
      get: {
        operationId: 'listWorkflowAlertConfigs',
        summary: 'Alert configs of one MeshHook workflow (never with secrets)',
        parameters: parametersOf(workflowIdPathSchema, 'path'),
        responses: { '200': answer('configs', configListSchema), '400': error('invalid workflowId'), ...authErrors },
      },
    },
    '/api/alerts/config/by-id/{configId}': {
      delete: {
        operationId: 'deleteAlertConfig',
        summary: 'Delete an alert config',
        parameters: parametersOf(configIdPathSchema, 'path'),
        responses: { '204': { description: 'deleted' }, ...authErrors, '404': error('no config with that id in this project') },
      },
    },
    '/api/alerts/config/by-id/{configId}/rotate-secret': {
      post: {
        operationId: 'rotateSecret',
        summary: 'Issue a new signing secret; the current one keeps signing until previousSecretExpiresAt (default grace: 24 h)',
        parameters: parametersOf(configIdPathSchema, 'path'),
        ...body(rotateSecretRequestSchema, false),
        responses: {
          '200': answer('the new secret, shown this once', rotatedSecretSchema),
          ...bodyErrors,
          ...authErrors,
          '404': error('no config with that id in this project'),
        },
      },
    },
    '/api/alerts/config/by-id/{configId}/held': {
      get: {
        operationId: 'listHeldAlerts',
        summary: 'Alerts held while the service has the config disabled (a 410, or failing too long), oldest first',
        parameters: [...parametersOf(configIdPathSchema, 'path'), ...parametersOf(heldQuerySchema, 'query')],
        responses: { '200': answer('one page of held alerts, and how many there are', heldPageSchema), ...queryErrors, ...authErrors, '404': error('no config with that id in this project') },
      },
    },
    '/api/alerts/config/by-id/{configId}/enable': {
      post: {
        operationId: 'enableAlertConfig',
        summary: 'Turn a config back on (its health starts afresh) and send (oldest first, each signed afresh) or discard its held alerts',
        parameters: parametersOf(configIdPathSchema, 'path'),
        ...body(enableConfigRequestSchema, false),
        responses: {
          '200': answer('enabled; what became of the held alerts', enableConfigResultSchema),
          ...bodyErrors,
          ...authErrors,
          '404': error('no config with that id in this project'),
          '409': error('held_alerts_pending: the config has held alerts and `held` is missing; error.details has heldCount and the choices'),
          '503': error('Temporal did not take a delivery; the alerts not yet started stay held: send the same request again'),
        },
      },
    },
    '/api/events': {
      post: {
        operationId: 'sendEvents',
        summary: 'Report MeshHook run events; each matching config starts a delivery',
        ...body(eventsRequestSchema),
        responses: { '202': answer('accepted; the deliveries run on', eventsAcceptedSchema), ...bodyErrors, ...authErrors },
      },
    },
    '/api/alerts/test': {
      post: {
        operationId: 'sendTestAlert',
        summary: "Send a test alert through the real delivery path; answers with its first attempt's outcome",
        ...body(testAlertRequestSchema),
        responses: {
          '200': answer("the first attempt's outcome", testAlertResultSchema),
          ...bodyErrors,
          ...authErrors,
          '404': error('no config with that id in this project'),
          '503': error('no attempt was made in time (is a worker running?)'),
        },
      },
    },
    '/api/alerts/preview': {
      post: {
        operationId: 'previewAlert',
        summary: "Render a config's URL, headers and body against a sample event (or one given) with the service's own renderer; nothing is sent or stored",
        ...body(previewRequestSchema),
        responses: {
          '200': answer('the rendered alert', previewResultSchema),
          '400': error('invalid config or event, or a template that fails when rendered; error.details.issues names each field'),
          '413': error(`body larger than ${BODY_LIMIT_BYTES} bytes`),
          '415': error('body is not application/json'),
          ...authErrors,
        },
      },
    },
    '/api/alerts/presets': {
      get: {
        operationId: 'listPayloadPresets',
        summary: 'The built-in payload presets (payload.preset) with their templates, to start a customisation from',
        responses: { '200': answer('every preset', presetListSchema), ...authErrors },
      },
    },
    '/api/alerts/retry-schedule': {
      post: {
        operationId: 'previewRetrySchedule',
        summary: 'The attempts retry settings allow (the plan deliveries follow), with the defaults filled in; the web UI shows it beside the fields',
        ...body(retrySchema),
        responses: {
          '200': answer('the settings as a save would keep them, and their schedule', retryScheduleSchema),
          ...bodyErrors,
          '400': error('invalid retry settings; error.details.issues names each field'),
          ...authErrors,
        },
      },
    },
    '/api/alerts/logs': {
      get: {
        operationId: 'listAttemptLogs',
        summary: 'Attempt log rows, newest first, one page at a time',
        parameters: parametersOf(logsQuerySchema, 'query'),
        responses: { '200': answer('one page of rows', attemptLogPageSchema), ...queryErrors, ...authErrors },
      },
    },
    '/api/alerts/deliveries': {
      get: {
        operationId: 'listDeliveries',
        summary: 'Deliveries, newest first',
        parameters: parametersOf(deliveriesQuerySchema, 'query'),
        responses: { '200': answer('deliveries', deliveryListSchema), ...queryErrors, ...authErrors },
      },
    },
    '/api/alerts/deliveries/{deliveryId}': {
      get: {
        operationId: 'getDelivery',
        summary: 'One delivery: status, attempts, and its timeline read from Temporal history',
        parameters: parametersOf(deliveryIdPathSchema, 'path'),
        responses: { '200': answer('the delivery', deliveryDetailSchema), ...authErrors, '404': error('no delivery with that id in this project') },
      },
    },
    '/api/alerts/deliveries/{deliveryId}/redeliver': {
      post: {
        operationId: 'redeliver',
        summary: 'Send the same alert again as a new delivery',
        parameters: parametersOf(deliveryIdPathSchema, 'path'),
        responses: {
          '202': answer('the new delivery started', redeliverySchema),
          ...authErrors,
          '404': error('no delivery with that id in this project, or its config is gone'),
        },
      },
    },
    '/api/alerts/audit': {
      get: {
        operationId: 'listAuditEntries',
        summary: "Who changed the project's alert configs, when, and what changed (never secrets, URLs or header values), newest first",
        parameters: parametersOf(auditQuerySchema, 'query'),
        responses: { '200': answer('one page of entries', auditPageSchema), ...queryErrors, ...authErrors },
      },
    },
    '/api/alerts/overview': {
      get: {
        operationId: 'getProjectOverview',
        summary: "The project at a glance: every MeshHook workflow with alert configs, each config's state, health (held alerts counted) and last delivery",
        responses: { '200': answer('the overview', overviewSchema), ...authErrors },
      },
    },
    '/api/alerts/config/by-id/{configId}/stats': {
      get: {
        operationId: 'getConfigStats',
        summary: "A config's deliveries per hour over the last hours (default 24, at most 168): delivered, failed, retried attempts, success rate, p50/p95 attempt latency",
        parameters: [...parametersOf(configIdPathSchema, 'path'), ...parametersOf(statsQuerySchema, 'query')],
        responses: { '200': answer('hourly buckets, oldest first, and the totals', configStatsSchema), ...queryErrors, ...authErrors, '404': error('no config with that id in this project') },
      },
    },
    '/api/project/settings': {
      get: {
        operationId: 'getProjectSettings',
        summary: "The project's operating settings, effective values: its operator webhook (URL only), endpoint health and failure-rate thresholds (its overrides over the deployment's)",
        responses: { '200': answer('the settings', projectSettingsSchema), ...authErrors },
      },
      put: {
        operationId: 'putProjectSettings',
        summary:
          "Set the project's operator webhook (null removes it; a secret is generated when none is given and none is kept, and answered once as operatorSecret) and override health and failure-rate thresholds field by field (null: the deployment's); audited as project.settings_updated",
        ...body(projectSettingsUpdateSchema),
        responses: { '200': answer('the settings as saved, effective values', projectSettingsSchema), ...bodyErrors, '400': error('invalid body, or the operator webhook URL is refused by the egress policy; error.details.issues names the field'), ...authErrors },
      },
    },
    '/api/operator/alerts': {
      get: {
        operationId: 'listOperatorAlerts',
        summary: "The project's operator alerts (delivery.exhausted, config.failing, …) to each operator webhook, newest first, with how their delivery went",
        parameters: parametersOf(operatorAlertsQuerySchema, 'query'),
        responses: { '200': answer('one page of operator alerts', operatorAlertPageSchema), ...queryErrors, ...authErrors },
      },
    },
    '/api/project/erase': {
      post: {
        operationId: 'eraseProject',
        summary:
          "Erase the token's project: its configs, attempt logs, deliveries, held alerts, settings, operator alerts and Temporal workflows; the audit entry project.erased (with the counts) is kept",
        ...body(eraseProjectRequestSchema),
        responses: {
          '200': answer('erased; the counts of what was deleted', erasedProjectSchema),
          ...bodyErrors,
          '400': error('invalid body, or `confirm` is not this token\'s project id; error.details.issues names the field'),
          ...authErrors,
          '503': error('Temporal or the store is unavailable; send the same request again (what was erased stays erased; the rest goes then)'),
        },
      },
    },
    '/api/silences': {
      post: {
        operationId: 'createSilence',
        summary:
          'Silence the alerts of one config (configId) or of every config of a MeshHook workflow (workflowId): one-off (from, until) or recurring (a cron for each window\'s start, durationSeconds, timeZone); audited as silence.created (docs/silences.md)',
        ...body(silenceInputSchema),
        responses: {
          '201': answer('created; activeNow and nextWindow as of now', silenceSchema),
          ...bodyErrors,
          '400': error('invalid silence: neither or both of configId and workflowId, from or until missing, until not after from or in the past, both from/until and recurrence, a cron that does not parse, an unknown time zone; error.details.issues names the field'),
          ...authErrors,
          '404': error('no config with that id in this project'),
        },
      },
      get: {
        operationId: 'listSilences',
        summary: "The project's silences, each with whether it is in force now and its current or next window",
        parameters: parametersOf(silencesQuerySchema, 'query'),
        responses: { '200': answer('silences', silenceListSchema), ...queryErrors, ...authErrors, '404': error('no config with that id in this project') },
      },
    },
    '/api/silences/{silenceId}': {
      delete: {
        operationId: 'deleteSilence',
        summary: 'Delete a silence (its alerts are sent again from now on); audited as silence.deleted',
        parameters: parametersOf(silenceIdPathSchema, 'path'),
        responses: { '204': { description: 'deleted' }, ...authErrors, '404': error('no silence with that id in this project') },
      },
    },
    '/codec/decode': codecOperation('decode', false),
    '/codec/encode': codecOperation('encode', false),
    '/codec/{token}/decode': codecOperation('decode', true),
    '/codec/{token}/encode': codecOperation('encode', true),
    '/healthz': { get: { operationId: 'healthz', summary: 'Liveness', ...open, responses: { '200': answer('alive', healthSchema) } } },
    '/readyz': {
      get: {
        operationId: 'readyz',
        summary: 'Readiness: Temporal and the store answer',
        ...open,
        responses: { '200': answer('ready', readinessSchema), '503': answer('not ready; checks says what fails', readinessSchema) },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        ...open,
        responses: {
          '200': { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: components.schemaOf(z.string(), 'output') } } },
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        ...open,
        responses: { '200': answer('OpenAPI 3.1', z.looseObject({ openapi: z.string() })) },
      },
    },
  };

  return {
    openapi: '3.1.0',
    info: { title: 'MeshHook Alerts API', version: '0.1.0', description: 'Signed, retried webhook alerts for MeshHook runs.' },
    components: {
      schemas: components.all(),
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/**
 * zod writes each schema as its own document whose `$ref`s point into its own `$defs`. In an OpenAPI
 * document `#/$defs/...` would point at the document root, where nothing is, so every definition
 * moves to components.schemas (named by its `.meta({ id })`) and the refs follow it there.
 */
class ComponentSchemas {
  private readonly schemas: Record<string, object> = {};

  /** The schema to write where it is used: a `$ref` for a named one, else the schema itself. */
  schemaOf(schema: z.ZodType, io: Io): object {
    const { $defs = {}, ...root } = toJsonSchema(schema, io);
    for (const [id, def] of Object.entries($defs)) {
      const moved = moveRefs(def);
      if (id in this.schemas && JSON.stringify(this.schemas[id]) !== JSON.stringify(moved)) throw new Error(`OpenAPI: two different schemas are both named ${id}`);
      this.schemas[id] = moved;
    }
    return moveRefs(root);
  }

  all(): Record<string, object> {
    return this.schemas;
  }
}

/**
 * One parameter per field of an object schema, each with the field's description and bounds. A
 * query value arrives as a string; `z.coerce` fields are described as the value they must read as.
 */
function parametersOf(schema: z.ZodObject, where: 'path' | 'query'): object[] {
  const { $defs = {}, ...root } = toJsonSchema(schema, 'input');
  const object = (typeof root.$ref === 'string' ? $defs[root.$ref.replace('#/$defs/', '')] : root) as {
    properties: Record<string, { description?: string }>;
    required?: string[];
  };
  return Object.entries(object.properties).map(([name, { description, ...fieldSchema }]) => {
    if (JSON.stringify(fieldSchema).includes('"$ref"')) throw new Error(`OpenAPI: parameter ${name} refers to a named schema; describe it inline`);
    return { name, in: where, required: where === 'path' || (object.required ?? []).includes(name), ...(description ? { description } : {}), schema: fieldSchema };
  });
}

function toJsonSchema(schema: z.ZodType, io: Io): { $defs?: Record<string, object>; $ref?: string; [key: string]: unknown } {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' });
  return rest as { $defs?: Record<string, object> };
}

const moveRefs = (schema: object): object => JSON.parse(JSON.stringify(schema).replaceAll('"#/$defs/', '"#/components/schemas/'));
