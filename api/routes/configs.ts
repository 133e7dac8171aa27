import Router from '@koa/router';
import { savedTargetRefusal } from '../../activities/egress';
import { invalid } from '../../lib/errors';
import { saveConfigBodySchema } from '../../lib/schemas';
import { listAudit } from '../../store/audit';
import { deleteConfig, listConfigs, publicConfig, saveConfig } from '../../store/configs';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { validationError } from '../errors';
import type { ApiDeps } from '../deps';
import { auditQuerySchema, workflowIdPathSchema } from '../schemas';

/** Registers the config routes on the /api router, whose middleware has checked the token. */
export function configRoutes(router: Router<AuthState>, deps: ApiDeps): void {

  router.post('/api/alerts/config', async (ctx) => {
    const parsed = saveConfigBodySchema.safeParse(await readJson(ctx));
    if (!parsed.success) throw validationError(parsed.error, 'config');
    const { config: input, secret } = parsed.data;
    const refusal = await savedTargetRefusal(deps.egress, input.webhook.url);
    if (refusal) {
      const message = `refused by the egress policy: ${refusal}`;
      throw invalid(`config.webhook.url: ${message}`, { issues: [{ path: 'config.webhook.url', message }] });
    }
    const result = await saveConfig(deps.db, deps.keyring, ctx.state.projectId, input, secret ?? input.secret, { tokenId: ctx.state.tokenId });
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
    const params = workflowIdPathSchema.safeParse({ workflowId: ctx.params.workflowId });
    if (!params.success) throw validationError(params.error, 'workflowId');
    const { workflowId } = params.data;
    ctx.body = { configs: (await listConfigs(deps.db, deps.keyring, ctx.state.projectId, workflowId)).map(publicConfig) };
  });

  router.delete('/api/alerts/config/by-id/:configId', async (ctx) => {
    await deleteConfig(deps.db, deps.keyring, ctx.state.projectId, ctx.params.configId, { tokenId: ctx.state.tokenId });
    ctx.status = 204;
  });

  router.get('/api/alerts/audit', async (ctx) => {
    const parsed = auditQuerySchema.safeParse(ctx.query);
    if (!parsed.success) throw validationError(parsed.error, 'query');
    ctx.body = await listAudit(deps.db, ctx.state.projectId, { ...parsed.data, before: parsed.data.cursor });
  });
}
