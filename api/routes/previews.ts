import type Router from '@koa/router';
import { conditionOfEvent } from '../../lib/conditions';
import { invalid } from '../../lib/errors';
import { buildTemplateContext } from '../../lib/render';
import { JITTER, retrySchedule } from '../../lib/retry';
import { retrySchema } from '../../lib/schemas';
import { TemplateError } from '../../lib/templates';
import type { ServiceDeps } from '../../runtime/deps';
import { savedTargetRefusal } from '../../runtime/egress';
import { renderAlertSandboxed } from '../../runtime/template-sandbox';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { previewRequestSchema, SAMPLE_EVENT } from '../schemas';

/** What a config would do, computed by the code deliveries run; nothing is sent or stored. The web UI's live previews. */
export function previewRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  // Renders a config as a delivery would (in a template renderer process), against a sample event.
  router.post('/api/alerts/preview', async (ctx) => {
    const { config, event: given, condition: asked } = parseInput(previewRequestSchema, await readJson(ctx), 'body');
    const event = given ?? { ...SAMPLE_EVENT, workflowId: config.workflowId };
    const condition = asked ?? conditionOfEvent(event.type) ?? 'test';
    const configId = config.id ?? 'cfg_preview';
    const deliveryId = `dlv-${configId}-${event.id}`;
    try {
      const rendered = await renderAlertSandboxed(config, buildTemplateContext(event, { id: configId, name: config.name }, condition, deliveryId));
      // the UI warns while the URL is typed, before a save would refuse it
      const refusal = await savedTargetRefusal(deps.egress, config.webhook.url);
      ctx.body = { ...rendered, condition, deliveryId, event, egressRefusal: refusal && `refused by the egress policy: ${refusal}` };
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      // "payload.template: …" or "webhook.headers.X: …": name the field as a save would
      const [, part = 'payload.template', message = err.message] = /^([\w.-]+): ([\s\S]*)$/.exec(err.message) ?? [];
      throw invalid(`config.${part}: ${message}`, { issues: [{ path: `config.${part}`, message: `template failed to render: ${message}` }] });
    }
  });

  // The attempts a config's retry settings allow (lib/retry.ts, the plan deliveries follow), with the defaults filled in.
  router.post('/api/alerts/retry-schedule', async (ctx) => {
    const retry = parseInput(retrySchema, await readJson(ctx), 'retry');
    ctx.body = { retry, ...retrySchedule(retry), jitter: JITTER };
  });
}
