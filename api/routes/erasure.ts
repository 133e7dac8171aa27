import type Router from '@koa/router';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { AlertsError, invalid } from '../../lib/errors';
import { logger } from '../../lib/log';
import { AlertProjectId } from '../../lib/search-attributes';
import type { ServiceDeps } from '../../runtime/deps';
import { eraseProjectRows, operatorAlertWorkflowIds } from '../../store/erasure';
import type { AuthState } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../errors';
import { eraseProjectRequestSchema } from '../schemas';

const log = logger('retention');
const GRPC_NOT_FOUND = 5;

/** POST /api/project/erase: every piece of the token's project's data goes, but for the audit entry that says so. */
export function erasureRoutes(router: Router<AuthState>, deps: ServiceDeps): void {
  router.post('/api/project/erase', async (ctx) => {
    const { projectId, tokenId } = ctx.state;
    const { confirm } = parseInput(eraseProjectRequestSchema, await readJson(ctx), 'body');
    if (confirm !== projectId) {
      const message = `confirm must be this API token's project id, "${projectId}"`;
      throw invalid(`confirm: ${message}`, { issues: [{ path: 'confirm', message }] });
    }
    const executions = await projectWorkflows(deps, projectId);
    await terminateRunning(deps.temporal.client, executions);
    // after the terminations: no delivery of the project writes a row any more (but one attempt in flight: docs/retention.md)
    const erased = await eraseProjectRows(deps.db, projectId, { tokenId }, executions.length);
    await deleteExecutions(deps.temporal, executions);
    log.info({ projectId, tokenId, erased }, `erased project ${projectId}`);
    ctx.body = { erased };
  });
}

interface Execution {
  workflowId: string;
  runId: string;
  running: boolean;
}

/**
 * Every workflow execution of the project Temporal still keeps, open or closed: the alert workflows by
 * their AlertProjectId search attribute, and the project's operator alerts by the ids the store knows.
 */
async function projectWorkflows(deps: ServiceDeps, projectId: string): Promise<Execution[]> {
  const { client } = deps.temporal;
  // project ids come from API tokens; one with a quote or backslash could not be written into the query safely
  if (/["\\]/.test(projectId)) throw new AlertsError('internal', 'this project id cannot be written into a Temporal visibility query');
  const executions = new Map<string, Execution>();
  for await (const wf of client.workflow.list({ query: `${AlertProjectId.name} = "${projectId}"` })) {
    executions.set(`${wf.workflowId}\0${wf.runId}`, { workflowId: wf.workflowId, runId: wf.runId, running: wf.status.name === 'RUNNING' });
  }
  for (const workflowId of await operatorAlertWorkflowIds(deps.db, projectId)) {
    const described = await client.workflow
      .getHandle(workflowId)
      .describe()
      .catch((err) => {
        // never started, or already gone
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      });
    if (described) executions.set(`${workflowId}\0${described.runId}`, { workflowId, runId: described.runId, running: described.status.name === 'RUNNING' });
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
