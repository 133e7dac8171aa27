import type Router from '@koa/router';
import { z } from 'zod';
import { invalid } from '../../lib/errors';
import { idSchema, silenceInputSchema, silenceSchema } from '../../lib/schemas';
import { describeSilence, silenceInputIssues } from '../../lib/silences';
import type { ServiceDeps } from '../../runtime/deps';
import { createSilence, deleteSilence, ENDED_SILENCES_LISTED_DAYS, listSilences } from '../../store/silences';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';

// The API's envelopes of silences (the records are lib/schemas.ts's); api/openapi.ts describes them.

export const silencesQuerySchema = z
  .strictObject({
    configId: z.string().max(200).optional().meta({ description: "only this alert config's own silences" }),
    workflowId: z.string().max(200).optional().meta({ description: 'only the silences of this MeshHook workflow as a whole (not those of its configs)' }),
    all: z.enum(['true', 'false']).optional().meta({ description: `"true": one-off silences that ended more than ${ENDED_SILENCES_LISTED_DAYS} days ago too` }),
  })
  .meta({ id: 'SilencesQuery' });

export const silenceListSchema = z.object({ silences: z.array(silenceSchema).meta({ description: 'oldest first' }) }).meta({ id: 'SilenceList' });

export const silenceIdPathSchema = z.object({ silenceId: idSchema('silenceId').meta({ description: 'the silence id (`sil_…`)' }) });

/** Silences (maintenance windows) of a config or of a MeshHook workflow's configs (docs/silences.md). */
export function silenceRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/silences', async (ctx) => {
    const input = parseInput(silenceInputSchema, await readJson(ctx), 'silence');
    const now = Date.now();
    const issues = silenceInputIssues(input, now);
    if (issues.length > 0) throw invalid(`${issues[0].path}: ${issues[0].message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`, { issues });
    const silence = await createSilence(deps.db, ctx.state.projectId, input, { tokenId: ctx.state.tokenId });
    ctx.status = 201;
    ctx.body = describeSilence(silence, now);
  });

  router.get('/api/silences', async (ctx) => {
    const q = parseInput(silencesQuerySchema, ctx.query, 'query');
    if (q.configId !== undefined && q.workflowId !== undefined) {
      throw invalid('workflowId: give configId or workflowId, not both', { issues: [{ path: 'workflowId', message: 'give configId or workflowId, not both' }] });
    }
    const now = Date.now();
    const silences = await listSilences(deps.db, ctx.state.projectId, { configId: q.configId, workflowId: q.workflowId, all: q.all === 'true', nowMs: now });
    ctx.body = { silences: silences.map((s) => describeSilence(s, now)) };
  });

  router.delete('/api/silences/:silenceId', async (ctx) => {
    await deleteSilence(deps.db, ctx.state.projectId, ctx.params.silenceId, { tokenId: ctx.state.tokenId });
    ctx.status = 204;
  });
}
