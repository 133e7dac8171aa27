import type Router from '@koa/router';
import { afterConfigSaved } from '../../dispatch/held-alerts';
import { invalid } from '../../lib/errors';
import { saveConfigBodySchema } from '../../lib/schemas';
import type { ServiceDeps } from '../../runtime/deps';
import { savedTargetRefusal } from '../../runtime/egress';
import { listAudit } from '../../store/audit';
import { endDelayWatcher, endNoisePipeline } from '../../dispatch/start-delivery';
import { deleteConfig, findConfig, listConfigs, publicConfig, rotateSecret, saveConfig } from '../../store/configs';
import type { AuthState } from '../auth';
import { hasBody, readJson } from '../body';
import { parseInput } from '../errors';
import { heldRoutes } from './held';
import { auditQuerySchema, rotateSecretRequestSchema, workflowIdPathSchema } from '../schemas';

/** The alert configs: save, list, delete, rotate the secret, and their audit log. */
export function configRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/alerts/config', async (ctx) => {
    const { config: input, secret, held } = parseInput(saveConfigBodySchema, await readJson(ctx), 'config');
    const refusal = await savedTargetRefusal(deps.egress, input.webhook.url);
    if (refusal) {
      const message = `refused by the egress policy: ${refusal}`;
      throw invalid(`config.webhook.url: ${message}`, { issues: [{ path: 'config.webhook.url', message }] });
    }
    const { projectId } = ctx.state;
    const actor = { tokenId: ctx.state.tokenId };
    // turning on a config with held alerts needs a decision about them (409 otherwise); a config the
    // service disabled is re-enabled in the save's own transaction (docs/endpoint-health.md)
    let result = await saveConfig(deps.db, deps.keyring, projectId, input, secret ?? input.secret, actor, { heldDecided: held !== undefined });
    if (!result.created && (result.reenabled || held)) {
      await afterConfigSaved(deps, projectId, result.config, result.reenabled, held, actor);
      result = { ...result, config: (await findConfig(deps.db, deps.keyring, projectId, result.config.id)) ?? result.config };
    }
    ctx.status = result.created ? 201 : 200;
    ctx.body = {
      config: publicConfig(result.config),
      // shown once: the service keeps only the encrypted copy
      ...(result.generatedSecret ? { secret: result.generatedSecret } : {}),
    };
  });

  router.get('/api/alerts/config', async (ctx) => {
    ctx.body = { configs: (await listConfigs(deps.db, deps.keyring, ctx.state.projectId)).map(publicConfig) };
  });

  router.get('/api/alerts/config/:workflowId', async (ctx) => {
    const { workflowId } = parseInput(workflowIdPathSchema, { workflowId: ctx.params.workflowId }, 'workflowId');
    ctx.body = { configs: (await listConfigs(deps.db, deps.keyring, ctx.state.projectId, workflowId)).map(publicConfig) };
  });

  router.delete('/api/alerts/config/by-id/:configId', async (ctx) => {
    await deleteConfig(deps.db, deps.keyring, ctx.state.projectId, ctx.params.configId, { tokenId: ctx.state.tokenId });
    await endNoisePipeline(deps, ctx.params.configId);
    await endDelayWatcher(deps, ctx.params.configId);
    ctx.status = 204;
  });

  router.post('/api/alerts/config/by-id/:configId/rotate-secret', async (ctx) => {
    const body = hasBody(ctx) ? parseInput(rotateSecretRequestSchema.optional(), await readJson(ctx), 'body') : undefined;
    const graceMs = body?.graceSeconds === undefined ? undefined : body.graceSeconds * 1000;
    const { secret, previousExpiresAt } = await rotateSecret(deps.db, deps.keyring, ctx.state.projectId, ctx.params.configId, graceMs, { tokenId: ctx.state.tokenId });
    ctx.body = { configId: ctx.params.configId, secret, previousSecretExpiresAt: previousExpiresAt };
  });

  heldRoutes(router, deps);

  router.get('/api/alerts/audit', async (ctx) => {
    const q = parseInput(auditQuerySchema, ctx.query, 'query');
    ctx.body = await listAudit(deps.db, ctx.state.projectId, { ...q, before: q.cursor });
  });
}
