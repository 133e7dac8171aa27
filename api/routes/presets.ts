import type Router from '@koa/router';
import { PRESET_NAMES, PRESETS } from '../../lib/presets';
import type { ServiceDeps } from '../../runtime/deps';
import type { AuthState } from '../auth';

/** GET /api/alerts/presets: the built-in payload presets (lib/presets.ts), their templates to start a customisation from. */
export function presetRoutes(router: Router<AuthState>, _deps: ServiceDeps): void {
  router.get('/api/alerts/presets', (ctx) => {
    ctx.body = { presets: PRESET_NAMES.map((name) => ({ name, label: PRESETS[name].label, url: PRESETS[name].url ?? null, template: PRESETS[name].template })) };
  });
}
