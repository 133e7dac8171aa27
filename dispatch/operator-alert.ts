import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { logger } from '../lib/log';
import { noteOperatorAlert } from '../lib/metrics';
import { operatorAlertId, type OperatorAlertInput, type OperatorTarget } from '../lib/operator-delivery';
import type { OperatorEvent } from '../lib/operator-events';
import type { ServiceDeps } from '../runtime/deps';
import { recordOperatorAlert, reopenUnstartedOperatorAlert, updateOperatorAlert } from '../store/operator-alerts';
import { projectOperatorWebhook } from '../store/project-settings';
import { START_DEADLINE_MS } from './start-delivery';

const log = logger('operator');

type Deps = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>;

/** Which operator webhooks get the event: the deployment's (when set), and for a project event the project's own (when set). */
async function targetsOf(deps: Deps, event: OperatorEvent): Promise<OperatorTarget[]> {
  const targets: OperatorTarget[] = deps.operations.operatorWebhook ? ['deployment'] : [];
  if (event.projectId) {
    try {
      if (await projectOperatorWebhook(deps.db, deps.keyring, event.projectId)) targets.push('project');
    } catch (err) {
      // the store is down: the deployment's webhook still gets it
      log.warn({ eventId: event.id, type: event.type, projectId: event.projectId, err: (err as Error).message }, "could not read the project's operator webhook; the deployment's still gets the alert");
      noteOperatorAlert(event.type, 'failed');
    }
  }
  return targets;
}

/**
 * Raises one operator alert: starts its durable delivery (OperatorAlertDelivery, workflow id
 * `op:<target>:<event id>`) to every operator webhook that should get it. The id is deterministic and
 * a closed or running workflow with it is never started again (REJECT_DUPLICATE, FAIL), so the same
 * event raised twice is sent once. Never throws: an operator alert must not fail the work that
 * raised it; a delivery that cannot start is logged and counted, and answered `false` (the caller
 * may raise the same event again later, as the degraded monitor does).
 * Returns whether every target's delivery started (or had already).
 */
export async function raiseOperatorAlert(deps: Deps, event: OperatorEvent): Promise<boolean> {
  try {
    const targets = await targetsOf(deps, event);
    if (targets.length === 0) {
      noteOperatorAlert(event.type, 'skipped');
      log.debug({ eventId: event.id, type: event.type, projectId: event.projectId }, 'no operator webhook is set: operator alert not sent');
      return true;
    }
    const started = await Promise.all(targets.map((target) => startOperatorAlert(deps, { alertId: operatorAlertId(target, event.id), target, event })));
    return started.every(Boolean);
  } catch (err) {
    log.error({ eventId: event.id, type: event.type, projectId: event.projectId, err: (err as Error).message }, 'could not raise the operator alert');
    noteOperatorAlert(event.type, 'failed');
    return false;
  }
}

async function startOperatorAlert(deps: Deps, input: OperatorAlertInput): Promise<boolean> {
  const fields = { alertId: input.alertId, type: input.event.type, projectId: input.event.projectId, target: input.target };
  // recorded first, so that the list shows an alert whose start failed (failed, no attempt: in progress again once a later raise starts it);
  // the workflow records it too, in case the store is what is down
  const recorded = await recordOperatorAlert(deps.db, input).catch(() => false);
  const { client, taskQueue } = deps.temporal;
  try {
    await client.withDeadline(Date.now() + START_DEADLINE_MS, () =>
      client.workflow.start('OperatorAlertDelivery', {
        workflowId: input.alertId,
        taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        staticSummary: `${input.event.type} operator alert to the ${input.target} operator webhook`,
      }),
    );
    if (!recorded) await reopenUnstartedOperatorAlert(deps.db, input.alertId).catch(() => undefined);
    noteOperatorAlert(input.event.type, 'raised');
    log.info(fields, 'operator alert raised');
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      log.debug(fields, 'operator alert already raised: not sent again');
      return true;
    }
    const error = `could not start its delivery: ${(err as Error).message.split('\n')[0]}`;
    log.error({ ...fields, err: error }, 'operator alert not started');
    noteOperatorAlert(input.event.type, 'failed');
    await updateOperatorAlert(deps.db, input.alertId, { status: 'failed', error }).catch(() => undefined);
    return false;
  }
}
