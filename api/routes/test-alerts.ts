import type Router from '@koa/router';
import { startDelivery } from '../../dispatch/start-delivery';
import { testDeliveryId } from '../../lib/delivery-ids';
import { AlertsError } from '../../lib/errors';
import type { ServiceDeps } from '../../runtime/deps';
import { getConfig } from '../../store/configs';
import { attemptsOf, signatureHeadersOf } from '../../store/deliveries';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { testAlertRequestSchema } from '../schemas';

const FIRST_ATTEMPT_POLL_MS = 25;

/** POST /api/alerts/test: a test alert through the real delivery path, answered with its first attempt. */
export function testAlertRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/alerts/test', async (ctx) => {
    const { configId } = parseInput(testAlertRequestSchema, await readJson(ctx), 'body');
    const config = await getConfig(deps.db, deps.keyring, ctx.state.projectId, configId);
    const now = new Date().toISOString();
    const deliveryId = testDeliveryId(config.id);
    await startDelivery(deps, {
      deliveryId,
      projectId: ctx.state.projectId,
      configId: config.id,
      condition: 'test',
      event: {
        id: `test-${deliveryId.slice(-12)}`,
        type: 'run.failed',
        occurredAt: now,
        workflowId: config.workflowId,
        runId: 'run_test',
        workflow: { name: config.name },
        run: { startedAt: now, finishedAt: now },
        error: { message: 'This is a test alert from MeshHook Alerts', step: 'test' },
        data: { test: true },
      },
    });
    // Answer with the first attempt's outcome: its log row, or the delivery's end if it failed before any attempt.
    const deadline = Date.now() + config.webhook.timeoutMs + 10_000;
    while (Date.now() < deadline) {
      const [first] = await attemptsOf(deps.db, ctx.state.projectId, deliveryId);
      if (first) {
        const signatureHeaders = await signatureHeadersOf(deps.db, ctx.state.projectId, deliveryId, first.attempt);
        ctx.body = {
          deliveryId, outcome: first.outcome, httpStatus: first.httpStatus, durationMs: first.durationMs, attempt: first.attempt, error: first.error, responseSnippet: first.responseSnippet,
          sentAt: first.createdAt, signatureHeaders,
        };
        return;
      }
      await new Promise((r) => setTimeout(r, FIRST_ATTEMPT_POLL_MS));
    }
    throw new AlertsError('unavailable', `the test delivery ${deliveryId} made no attempt in time; is a worker running?`, { deliveryId });
  });
}
