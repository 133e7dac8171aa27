import type Router from '@koa/router';
import { invalid } from '../../lib/errors';
import type { ServiceDeps } from '../../runtime/deps';
import { savedTargetRefusal } from '../../runtime/egress';
import { listOperatorAlerts } from '../../store/operator-alerts';
import { getProjectSettings, saveProjectSettings } from '../../store/project-settings';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { operatorAlertsQuerySchema, projectSettingsUpdateSchema } from '../schemas';

/** The project's operating settings (its operator webhook, health and failure-rate thresholds) and its operator alerts. */
export function operatorRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.get('/api/project/settings', async (ctx) => {
    ctx.body = await getProjectSettings(deps.db, deps.keyring, ctx.state.projectId, deps.operations);
  });

  router.put('/api/project/settings', async (ctx) => {
    const update = parseInput(projectSettingsUpdateSchema, await readJson(ctx), 'settings');
    if (update.operatorWebhook) {
      const refusal = await savedTargetRefusal(deps.egress, update.operatorWebhook.url);
      if (refusal) {
        const message = `refused by the egress policy: ${refusal}`;
        throw invalid(`operatorWebhook.url: ${message}`, { issues: [{ path: 'operatorWebhook.url', message }] });
      }
    }
    // operatorSecret is in the answer only when the service generated it: shown once
    ctx.body = await saveProjectSettings(deps.db, deps.keyring, ctx.state.projectId, update, deps.operations, { tokenId: ctx.state.tokenId });
  });

  router.get('/api/operator/alerts', async (ctx) => {
    const page = parseInput(operatorAlertsQuerySchema, ctx.query, 'query');
    ctx.body = await listOperatorAlerts(deps.db, ctx.state.projectId, page);
  });
}
