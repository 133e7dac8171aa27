import { logger, errorFields } from '../lib/log';
import type { OperatorEvent } from '../lib/operator-events';
import type { AlertConditionName, ExecutionEvent, HealthSettings } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { configName, disableConfig } from '../store/configs';
import { findDelivery, finishDelivery } from '../store/deliveries';
import { countFailure, endDelivered, FAILING_REASON_PREFIX, healthState, type FailureCounted } from '../store/health';
import { projectHealthSettings } from '../store/project-settings';
import type { AlertDeliveryStatus } from '../workflows/types';
import { raiseOperatorAlert } from './operator-alert';

/**
 * Endpoint health as deliveries end (docs/endpoint-health.md): a delivered alert ends the config's
 * streak of failures; a failed one counts, raises delivery.exhausted, and on the way warns
 * (config.failing) and then disables the config (config.disabled). A 410 disables at once.
 *
 * A delivery is counted by the transaction that ends it (its row moves to its final status), so the
 * step that ends it may run again (a local activity that timed out and is retried) without counting
 * twice. The operator alerts come after the commit; their ids are deterministic, so a step that runs
 * again raises them again from the config's state and each is sent once.
 */

type Deps = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>;

const log = logger('health');
const ms = (iso: string) => Date.parse(iso);

/** raiseOperatorAlert never throws by contract; this keeps a delivery's end safe even if it did. */
async function raise(deps: Deps, event: OperatorEvent): Promise<void> {
  try {
    await raiseOperatorAlert(deps, event);
  } catch (err) {
    log.warn({ operatorEventId: event.id, type: event.type, ...errorFields(err) }, 'the operator alert could not be raised');
  }
}

/** The delivery that ended, as the health accounting needs it. */
export interface EndedDelivery {
  deliveryId: string;
  projectId: string;
  configId: string;
  condition: AlertConditionName;
  event: Pick<ExecutionEvent, 'workflowId' | 'runId'>;
}

export interface DeliveryEnd {
  status: AlertDeliveryStatus;
  httpStatus: number | null;
  error: string | null;
}

/**
 * Ends a delivery (its row to its final status) and counts it into its config's health in the same
 * transaction, then raises the operator alerts that follow. Test alerts and suppressed delay watches
 * do not count; `endpoint: false`: the delivery failed before reaching the receiver (its config
 * deleted or turned off, its template failing): delivery.exhausted, but no failure of the endpoint.
 * A delivery ended already (this step ran before) is not counted again; its alerts are raised again.
 * Returns whether this call ended it.
 */
export async function endDelivery(deps: Deps, delivery: EndedDelivery, end: DeliveryEnd, { endpoint = true }: { endpoint?: boolean } = {}): Promise<boolean> {
  const { projectId, configId, deliveryId } = delivery;
  const counts = delivery.condition !== 'test' && (end.status === 'delivered' || (end.status === 'failed' && endpoint));
  // the common case, a delivered alert, is one statement
  if (end.status === 'delivered') return endDelivered(deps.db, deliveryId, end.httpStatus, { projectId, configId, counts });
  const thresholds = counts && end.status === 'failed' ? await projectHealthSettings(deps.db, projectId, deps.operations.health) : undefined;
  const { moved, counted } = await deps.db.transaction(async (tx) => {
    const moved = await finishDelivery(tx, deliveryId, end);
    if (!moved || !counts) return { moved, counted: undefined };
    return { moved, counted: await countFailure(tx, thresholds!, projectId, configId) };
  });
  if (end.status === 'failed' && delivery.condition !== 'test') {
    if (moved) await raiseFailed(deps, delivery, end.error, counted);
    else await raiseFailedAgain(deps, delivery, end.error, { endpoint });
  }
  return moved;
}

/**
 * The operator alerts of a failed delivery whose end was recorded by an earlier run of the step (or
 * by the store together with its last attempt): delivery.exhausted, and config.failing or
 * config.disabled when the config's state says so. Safe to repeat: each id is deterministic.
 */
export async function raiseFailedAgain(deps: Deps, delivery: EndedDelivery, error: string | null, { endpoint = true }: { endpoint?: boolean } = {}): Promise<void> {
  const state = await healthState(deps.db, delivery.projectId, delivery.configId);
  if (!state || !endpoint) return raiseFailed(deps, delivery, error, undefined, state?.configName ?? null);
  const thresholds = await projectHealthSettings(deps.db, delivery.projectId, deps.operations.health);
  const failingSince = state.failingSince;
  const counted: FailureCounted | undefined = failingSince
    ? {
        configId: delivery.configId, workflowId: state.workflowId, configName: state.configName, consecutiveFailures: state.consecutiveFailures, failingSince,
        warnAfterFailures: thresholds.warnAfterFailures, disableAfterSeconds: thresholds.disableAfterSeconds,
        warned: state.warnedAt !== null,
        disabled: !state.enabled && state.disabledAt && state.disabledReason?.startsWith(FAILING_REASON_PREFIX) ? { at: state.disabledAt, reason: state.disabledReason } : null,
      }
    : undefined;
  await raiseFailed(deps, delivery, error, counted, state.configName);
}

async function raiseFailed(deps: Deps, delivery: EndedDelivery, error: string | null, counted: FailureCounted | undefined, name?: string | null): Promise<void> {
  const { projectId, configId, deliveryId } = delivery;
  const now = new Date().toISOString();
  const attempts = (await findDelivery(deps.db, projectId, deliveryId))?.attempts ?? null;
  await raise(deps, {
    id: `delivery.exhausted:${deliveryId}`,
    type: 'delivery.exhausted',
    projectId,
    occurredAt: now,
    data: {
      deliveryId, configId, configName: counted?.configName ?? name ?? (await configName(deps.db, projectId, configId)), workflowId: delivery.event.workflowId, runId: delivery.event.runId,
      condition: delivery.condition, attempts, error,
    },
  });
  if (!counted) return;
  await raiseHealthAlerts(deps, projectId, counted, error, now);
}

async function raiseHealthAlerts(deps: Deps, projectId: string, counted: FailureCounted, error: string | null, now: string): Promise<void> {
  const { configId } = counted;
  const config = { configId, configName: counted.configName, workflowId: counted.workflowId };
  if (counted.warned) {
    log.warn({ projectId, configId, consecutiveFailures: counted.consecutiveFailures, failingSince: counted.failingSince }, 'endpoint failing: config.failing raised');
    await raise(deps, {
      id: `config.failing:${configId}:${ms(counted.failingSince)}`,
      type: 'config.failing',
      projectId,
      occurredAt: now,
      data: {
        ...config, consecutiveFailures: counted.consecutiveFailures, failingSince: counted.failingSince,
        warnAfterFailures: counted.warnAfterFailures, disableAfterSeconds: counted.disableAfterSeconds,
        disablesAt: disablesAt(counted.failingSince, counted),
        lastError: error,
      },
    });
  }
  if (counted.disabled) {
    log.warn({ projectId, configId, reason: counted.disabled.reason }, 'endpoint disabled after failing too long: config.disabled raised');
    await raise(deps, configDisabled(projectId, config, counted.disabled, { cause: 'failing', consecutiveFailures: counted.consecutiveFailures, failingSince: counted.failingSince }, now));
  }
}

/** config.disabled of the disable at `disabled.at`, under that disable's id (raised again, it is sent once); `more`: its cause and what that adds. */
function configDisabled(
  projectId: string,
  config: { configId: string; configName: string; workflowId: string },
  disabled: { at: string; reason: string },
  more: { cause: 'gone' | 'failing' } & Record<string, unknown>,
  occurredAt = new Date().toISOString(),
): OperatorEvent {
  return {
    id: `config.disabled:${config.configId}:${ms(disabled.at)}`,
    type: 'config.disabled',
    projectId,
    occurredAt,
    data: { ...config, reason: disabled.reason, disabledAt: disabled.at, ...more },
  };
}

const disablesAt = (failingSince: string, t: Pick<HealthSettings, 'disableAfterSeconds'>) =>
  t.disableAfterSeconds > 0 ? new Date(ms(failingSince) + t.disableAfterSeconds * 1000).toISOString() : null;

/** A receiver answered 410 Gone: the config is disabled at once, with an audit entry, and config.disabled is raised. */
export async function disableGoneConfig(deps: Deps, ref: { projectId: string; configId: string; deliveryId: string }, reason: string): Promise<void> {
  const disabled = await disableConfig(deps.db, ref.projectId, ref.configId, reason);
  if (!disabled) return;
  log.warn({ projectId: ref.projectId, configId: ref.configId, deliveryId: ref.deliveryId }, 'receiver answered 410 Gone: config disabled, config.disabled raised');
  const config = { configId: ref.configId, configName: disabled.configName, workflowId: disabled.workflowId };
  await raise(deps, configDisabled(ref.projectId, config, { at: disabled.disabledAt, reason }, { cause: 'gone', deliveryId: ref.deliveryId }));
}

/**
 * A delivery held its alert because the service has its config disabled: raises that disable's
 * config.disabled again. The step that disabled the config (a 410's attempt, a failure's end) raises
 * it only after its commit and may have been cut off in between; the id is the disable's, so however
 * many alerts are held it is sent once (while Temporal keeps the first: docs/operator-alerts.md). A 410's
 * raised again lacks `deliveryId` (its reason names the delivery).
 */
export async function raiseDisabledAgain(deps: Deps, ref: { projectId: string; configId: string }): Promise<void> {
  const state = await healthState(deps.db, ref.projectId, ref.configId);
  if (!state || state.enabled || state.disabledAt === null || state.disabledReason === null) return;
  const config = { configId: ref.configId, configName: state.configName, workflowId: state.workflowId };
  const more = state.disabledReason.startsWith(FAILING_REASON_PREFIX)
    ? { cause: 'failing' as const, consecutiveFailures: state.consecutiveFailures, failingSince: state.failingSince }
    : { cause: 'gone' as const };
  await raise(deps, configDisabled(ref.projectId, config, { at: state.disabledAt, reason: state.disabledReason }, more));
}
