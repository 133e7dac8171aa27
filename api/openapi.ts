import { z } from 'zod';
import { alertConfigSchema, errorSchema, executionEventSchema, saveConfigBodySchema } from '../lib/schemas';

/**
 * OpenAPI 3.1 description of the API, generated from the same zod schemas
 * that validate requests (zod's JSON Schema output is OpenAPI 3.1's dialect).
 */
export function buildOpenApi(): object {
  const schemas = componentSchemas([
    [saveConfigBodySchema, 'input'],
    [alertConfigSchema, 'output'],
    [executionEventSchema, 'input'],
    [errorSchema, 'output'],
  ]);
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const json = (schema: object) => ({ content: { 'application/json': { schema } } });
  const errors = {
    '400': { description: 'invalid input; error.details.issues names each field', ...json(ref('Error')) },
    '401': { description: 'missing or unknown API token', ...json(ref('Error')) },
  };
  const configList = json({ type: 'object', properties: { configs: { type: 'array', items: ref('AlertConfig') } }, required: ['configs'] });
  return {
    openapi: '3.1.0',
    info: { title: 'MeshHook Alerts API', version: '0.1.0', description: 'Signed, retried webhook alerts for MeshHook runs.' },
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    security: [{ bearer: [] }],
    paths: {
      '/api/alerts/config': {
        post: {
          summary: 'Create (no id) or update (with id) an alert config',
          requestBody: { required: true, ...json(ref('SaveAlertConfig')) },
          responses: {
            '201': {
              description: 'created; `secret` is present only when the service generated it, and only this once',
              ...json({ type: 'object', properties: { config: ref('AlertConfig'), secret: { type: 'string' } }, required: ['config'] }),
            },
            '200': { description: 'updated', ...json({ type: 'object', properties: { config: ref('AlertConfig') }, required: ['config'] }) },
            ...errors,
            '404': { description: 'no config with that id in this project', ...json(ref('Error')) },
          },
        },
        get: { summary: "All of the project's alert configs", responses: { '200': { description: 'configs', ...configList }, ...errors } },
      },
      '/api/alerts/config/{workflowId}': {
        get: {
          summary: 'Alert configs of one MeshHook workflow (never with secrets)',
          parameters: [{ name: 'workflowId', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'configs', ...configList }, ...errors },
        },
      },
      '/api/alerts/config/by-id/{configId}': {
        delete: {
          summary: 'Delete an alert config',
          parameters: [{ name: 'configId', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '204': { description: 'deleted' }, ...errors, '404': { description: 'not found', ...json(ref('Error')) } },
        },
      },
      '/api/alerts/config/by-id/{configId}/rotate-secret': {
        post: {
          summary: 'Issue a new signing secret; the current one keeps signing until previousSecretExpiresAt (default grace: 24 h)',
          parameters: [{ name: 'configId', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: {
            required: false,
            ...json({ type: 'object', properties: { graceSeconds: { type: 'integer', minimum: 0, maximum: 30 * 86_400 } }, additionalProperties: false }),
          },
          responses: {
            '200': {
              description: 'the new secret, shown this once',
              ...json({
                type: 'object',
                properties: { configId: { type: 'string' }, secret: { type: 'string' }, previousSecretExpiresAt: { type: 'string', format: 'date-time' } },
                required: ['configId', 'secret', 'previousSecretExpiresAt'],
              }),
            },
            ...errors,
            '404': { description: 'no config with that id in this project', ...json(ref('Error')) },
          },
        },
      },
      '/healthz': { get: { summary: 'Liveness', security: [], responses: { '200': { description: 'alive' } } } },
      '/readyz': {
        get: { summary: 'Readiness: Temporal and the store answer', security: [], responses: { '200': { description: 'ready' }, '503': { description: 'not ready' } } },
      },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
    },
  };
}

/**
 * zod writes each schema as its own document whose `$ref`s point into its own `$defs`. In an OpenAPI
 * document `#/$defs/...` would point at the document root, where nothing is, so every definition
 * moves to components.schemas (named by its `.meta({ id })`) and the refs follow it there.
 */
function componentSchemas(entries: [z.ZodType, 'input' | 'output'][]): Record<string, object> {
  const schemas: Record<string, object> = {};
  for (const [schema, io] of entries) {
    const { $schema: _dialect, $defs = {}, ...root } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' });
    if (Object.keys(root).length !== 1 || !root.$ref) throw new Error('OpenAPI: a component schema needs .meta({ id })');
    for (const [id, def] of Object.entries($defs)) {
      const moved = JSON.parse(JSON.stringify(def).replaceAll('"#/$defs/', '"#/components/schemas/'));
      if (id in schemas && JSON.stringify(schemas[id]) !== JSON.stringify(moved)) throw new Error(`OpenAPI: two different schemas are both named ${id}`);
      schemas[id] = moved;
    }
  }
  return schemas;
}
