import Koa from 'koa';
import Router from '@koa/router';
import { DEFAULT_RATE_LIMIT_PER_MINUTE } from '../lib/env';
import { httpRequests, metricsText, registry } from '../lib/metrics';
import { readStoreGauges } from '../store/gauges';
import type { AuthState } from './auth';
import { requireToken, ROUTER_OPTIONS } from './auth';
import { refuseNulInUrl } from './body';
import { errorMiddleware } from './errors';
import { buildOpenApi } from './openapi';
import { rateLimitPerToken } from './rate-limit';
import { codecCors, codecRoutes } from './routes/codec';
import { configRoutes } from './routes/configs';
import { deliveryRoutes } from './routes/deliveries';
import { erasureRoutes } from './routes/erasure';
import { eventRoutes } from './routes/events';
import { logRoutes } from './routes/logs';
import { operatorRoutes } from './routes/operator';
import { overviewRoutes } from './routes/overview';
import { presetRoutes } from './routes/presets';
import { previewRoutes } from './routes/previews';
import { silenceRoutes } from './routes/silences';
import { testAlertRoutes } from './routes/test-alerts';
import { serveUi } from './static-ui';
import type { ServiceDeps } from '../runtime/deps';

/**
 * Every route the app serves: the open ones (health, metrics, the API description), the /api routes
 * behind an API token, and the codec endpoint of the Temporal Web UI (a token too, in a header or its
 * path). The token check and the rate limit are middleware of the /api router itself, so no path
 * reaches an /api handler without them: the router and the auth boundary are one decision.
 */
export function apiRouters(deps: ServiceDeps, options: { /** per API token; 0: no limit */ rateLimitPerMinute?: number } = {}): { open: Router; api: Router<AuthState>; codec: Router<AuthState> } {
  const openapi = buildOpenApi();
  const open = new Router(ROUTER_OPTIONS);
  open.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  open.get('/readyz', async (ctx) => {
    const checks = await readiness(deps);
    ctx.status = Object.values(checks).every((c) => c === 'ok') ? 200 : 503;
    ctx.body = { status: ctx.status === 200 ? 'ready' : 'not_ready', checks };
  });
  open.get('/metrics', async (ctx) => {
    // ours, then the Temporal SDK's worker and client metrics (temporal_*): one scrape has both
    ctx.type = registry.contentType;
    // the store gauges of this app's own store (a test process may run several services)
    ctx.body = await metricsText(() => readStoreGauges(deps.db));
  });
  open.get('/openapi.json', (ctx) => {
    ctx.body = openapi;
  });
  const api = new Router<AuthState>(ROUTER_OPTIONS);
  const rateLimit = rateLimitPerToken(options.rateLimitPerMinute ?? DEFAULT_RATE_LIMIT_PER_MINUTE);
  api.use(requireToken(deps.db), rateLimit);
  // one module per resource
  for (const routes of [configRoutes, eventRoutes, testAlertRoutes, previewRoutes, presetRoutes, logRoutes, deliveryRoutes, overviewRoutes, erasureRoutes, operatorRoutes, silenceRoutes]) routes(api, deps);
  return { open, api, codec: codecRoutes(deps) };
}

export function createApp(
  deps: ServiceDeps,
  options: { trustProxy?: boolean; /** per API token; 0: no limit */ rateLimitPerMinute?: number; /** Web UI origins that may call /codec */ codecCorsOrigins?: string[] } = {},
): Koa<AuthState> {
  const app = new Koa<AuthState>();
  app.proxy = options.trustProxy ?? false;
  const { open, api, codec } = apiRouters(deps, { rateLimitPerMinute: options.rateLimitPerMinute });

  app.use(async (ctx, next) => {
    const end = httpRequests.startTimer();
    try {
      await next();
    } finally {
      // the matched route pattern, not the raw path, keeps the label set small
      end({ method: ctx.method, route: (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched', status: String(ctx.status) });
    }
  });
  app.use(errorMiddleware);
  app.use(refuseNulInUrl);
  app.use(open.routes());
  // the web UI (ui/dist) at /; never /api or /codec
  app.use(serveUi());
  app.use(codecCors(options.codecCorsOrigins ?? []));
  app.use(codec.routes());
  app.use(codec.allowedMethods());
  app.use(api.routes());
  app.use(api.allowedMethods());
  return app;
}

async function readiness(deps: ServiceDeps): Promise<Record<string, string>> {
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
  const [store, temporal] = await Promise.allSettled([
    within(deps.db.query('SELECT 1'), 2_000),
    within(deps.temporal.client.workflowService.describeNamespace({ namespace: deps.temporal.namespace }), 2_000),
  ]);
  const verdict = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : `failing: ${(r.reason as Error).message}`);
  return { store: verdict(store), temporal: verdict(temporal) };
}
