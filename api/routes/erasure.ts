import type Router from '@koa/router';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { AlertsError, invalid } from '../../lib/errors';
import { logger } from '../../lib/log';
import { AlertProjectId } from '../../lib/search-attributes';
import type { ServiceDeps } from '../../runtime/deps';
import type { Actor } from '../../store/audit';
import { addErased, eraseProjectRows, NOTHING_ERASED, operatorAlertWorkflowIds, type ErasedCounts } from '../../store/erasure';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { eraseProjectRequestSchema } from '../schemas';

const log = logger('retention');
const GRPC_NOT_FOUND = 5;

/**
 * Erase passes at most: each lists the project's workflows again, so one that visibility did not
 * list yet, or that an event POSTed during the erase started, is found by a later pass.
 */
export const ERASE_MAX_PASSES = 5;
/** The pause between passes: long enough for visibility to list a workflow started just before (Elasticsearch refreshes about every second). */
export const ERASE_SETTLE_MS = 2_000;

/** POST /api/project/erase: every piece of the token's project's data goes, but for the audit entry that says so. */
export function erasureRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/project/erase', async (ctx) => {
    const { projectId, tokenId } = ctx.state;
    const { confirm } = parseInput(eraseProjectRequestSchema, await readJson(ctx), 'body');
    if (confirm !== projectId) {
      const message = `confirm must be this API token's project id, "${projectId}"`;
      throw invalid(`confirm: ${message}`, { issues: [{ path: 'confirm', message }] });
    }
    ctx.body = { erased: await eraseProject(deps, projectId, { tokenId }) };
  });
}

/**
 * Erases the project in passes until one finds no workflow it had not seen: each pass lists the
 * project's workflow executions, terminates the new ones still running, deletes the project's rows
 * (one transaction) and deletes the new executions. A delivery that visibility listed late, or that
 * an event POSTed meanwhile started, is found by the next pass, and the rows it wrote in between
 * (its delivery, an attempt's log row, an operator alert) are deleted again. The last pass, which
 * found nothing new, deletes what is left and writes `project.erased` with the counts of every pass,
 * in one transaction. What can still come after it: docs/retention.md.
 *
 * `settle` is the wait between passes (tests: what happens in between).
 */
export async function eraseProject(
  deps: ServiceDeps,
  projectId: string,
  actor: Actor,
  settle: (pass: number) => Promise<void> = () => new Promise((resolve) => setTimeout(resolve, ERASE_SETTLE_MS)),
): Promise<ErasedCounts> {
  const seen = new Set<string>();
  let erased = NOTHING_ERASED;
  let operatorAlertIds: string[] = [];
  for (let pass = 1; ; pass++) {
    const fresh = (await projectWorkflows(deps, projectId, operatorAlertIds)).filter((e) => !seen.has(executionKey(e)));
    for (const e of fresh) seen.add(executionKey(e));
    await terminateRunning(deps.temporal.client, fresh);
    erased = addErased(erased, { workflows: fresh.length });
    const last = (pass > 1 && fresh.length === 0) || pass === ERASE_MAX_PASSES;
    const store = await eraseProjectRows(deps.db, projectId, last ? { actor, before: erased } : undefined);
    await deleteExecutions(deps.temporal, fresh);
    if (last) {
      if (fresh.length > 0) log.warn({ projectId, passes: pass }, `erasing project ${projectId} still found new workflows after ${pass} passes: erase it again`);
      log.info({ projectId, tokenId: actor.tokenId, erased: store.erased, passes: pass }, `erased project ${projectId}`);
      return store.erased!;
    }
    erased = addErased(erased, store.deleted);
    operatorAlertIds = store.operatorAlertIds;
    await settle(pass);
  }
}

interface Execution {
  workflowId: string;
  runId: string;
  running: boolean;
}

const executionKey = (e: Execution) => `${e.workflowId}\0${e.runId}`;

/**
 * Every workflow execution of the project Temporal still keeps, open or closed: the alert workflows by
 * their AlertProjectId search attribute, and the project's operator alerts (no search attributes) by
 * their ids: those in operator_alerts, and `deletedAlertIds`, those the previous pass deleted.
 */
async function projectWorkflows(deps: ServiceDeps, projectId: string, deletedAlertIds: string[]): Promise<Execution[]> {
  const { client } = deps.temporal;
  // project ids come from API tokens; one with a quote or backslash could not be written into the query safely
  if (/["\\]/.test(projectId)) throw new AlertsError('internal', 'this project id cannot be written into a Temporal visibility query');
  const executions = new Map<string, Execution>();
  for await (const wf of client.workflow.list({ query: `${AlertProjectId.name} = "${projectId}"` })) {
    const e = { workflowId: wf.workflowId, runId: wf.runId, running: wf.status.name === 'RUNNING' };
    executions.set(executionKey(e), e);
  }
  for (const workflowId of new Set([...(await operatorAlertWorkflowIds(deps.db, projectId)), ...deletedAlertIds])) {
    const described = await client.workflow
      .getHandle(workflowId)
      .describe()
      .catch((err) => {
        // never started, or already gone
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      });
    if (described) {
      const e = { workflowId, runId: described.runId, running: described.status.name === 'RUNNING' };
      executions.set(executionKey(e), e);
    }
  }
  return [...executions.values()];
}

async function terminateRunning(client: Client, executions: Execution[]): Promise<void> {
  for (const e of executions.filter((x) => x.running)) {
    await client.workflow
      .getHandle(e.workflowId, e.runId)
      .terminate('project erased (POST /api/project/erase)')
      .catch((err) => {
        // it closed meanwhile: nothing to stop
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      });
  }
}

/** Deletes each execution and its history (Temporal does it asynchronously; the Web UI may list one for a moment). */
async function deleteExecutions(temporal: ServiceDeps['temporal'], executions: Execution[]): Promise<void> {
  for (const e of executions) {
    await temporal.client.workflowService
      .deleteWorkflowExecution({ namespace: temporal.namespace, workflowExecution: { workflowId: e.workflowId, runId: e.runId } })
      .catch((err: { code?: number }) => {
        if (err.code !== GRPC_NOT_FOUND) throw err;
      });
  }
}
