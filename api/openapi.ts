import { z } from 'zod';
import { alertConfigSchema, errorSchema, executionEventSchema, saveConfigBodySchema } from '../lib/schemas';

/**
 * OpenAPI 3.1 description of the API, generated from the same zod schemas
 * that validate requests (zod's JSON Schema output is OpenAPI 3.1's dialect).
 */
export function buildOpenApi(): object {
  const schemas = Object.fromEntries(
    (
      [
        ['SaveAlertConfig', saveConfigBodySchema, 'input'],
        ['AlertConfig', alertConfigSchema, 'output'],
        ['ExecutionEvent', executionEventSchema, 'input'],
        ['Error', errorSchema, 'output'],
      ] as const
    ).map(([name, schema, io]) => [name, z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' })]),
  );
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
      '/healthz': { get: { summary: 'Liveness', security: [], responses: { '200': { description: 'alive' } } } },
      '/readyz': {
        get: { summary: 'Readiness: Temporal and the store answer', security: [], responses: { '200': { description: 'ready' }, '503': { description: 'not ready' } } },
      },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
    },
  };
}
