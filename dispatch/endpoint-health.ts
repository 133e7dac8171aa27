import { logger, errorFields } from '../lib/log';
import type { OperatorEvent } from '../lib/operator-events';
import type { AlertConditionName, ExecutionEvent } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { disableConfig } from '../store/configs';
import { findDelivery } from '../store/deliveries';
import { countFailure, countSuccess } from '../store/health';
import { raiseOperatorAlert } from './operator-alert';

/**
 * Endpoint health as deliveries end (docs/endpoint-health.md): a delivered alert ends the config's
 * streak of failures; a failed one counts, raises delivery.exhausted, and on the way warns
 * (config.failing) and then disables the config (config.disabled). A 410 disables at once.
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

/**
 * Counts a delivery's final outcome into its config's health. Test alerts and suppressed delay
 * watches do not count; neither does an alert held because the config was disabled (the caller does
 * not call this for it). `endpoint: false`: the delivery failed before reaching the receiver (its
 * config deleted or turned off, its template failing): delivery.exhausted, but no failure of the
 * endpoint.
 */
export async function noteDeliveryOutcome(
  deps: Deps,
  delivery: EndedDelivery,
  status: 'delivered' | 'failed' | 'suppressed',
  error: string | null,
  { endpoint = true }: { endpoint?: boolean } = {},
): Promise<void> {
  if (delivery.condition === 'test' || status === 'suppressed') return;
  const { projectId, configId, deliveryId } = delivery;
  if (status === 'delivered') {
    await countSuccess(deps.db, projectId, configId);
    return;
  }
  const counted = endpoint ? await countFailure(deps.db, deps.operations.health, projectId, configId) : undefined;
  const now = new Date().toISOString();
  const attempts = (await findDelivery(deps.db, projectId, deliveryId))?.attempts ?? null;
  await raise(deps, {
    id: `delivery.exhausted:${deliveryId}`,
    type: 'delivery.exhausted',
    projectId,
    occurredAt: now,
    data: {
      deliveryId, configId, configName: counted?.configName ?? (await configName(deps, projectId, configId)), workflowId: delivery.event.workflowId, runId: delivery.event.runId,
      condition: delivery.condition, attempts, error,
    },
  });
  if (!counted) return;
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
        disablesAt: counted.disableAfterSeconds > 0 ? new Date(ms(counted.failingSince) + counted.disableAfterSeconds * 1000).toISOString() : null,
        lastError: error,
      },
    });
  }
  if (counted.disabled) {
    log.warn({ projectId, configId, reason: counted.disabled.reason }, 'endpoint disabled after failing too long: config.disabled raised');
    await raise(deps, {
      id: `config.disabled:${configId}:${ms(counted.disabled.at)}`,
      type: 'config.disabled',
      projectId,
      occurredAt: now,
      data: { ...config, reason: counted.disabled.reason, disabledAt: counted.disabled.at, cause: 'failing', consecutiveFailures: counted.consecutiveFailures, failingSince: counted.failingSince },
    });
  }
}

async function configName(deps: Deps, projectId: string, configId: string): Promise<string | null> {
  const rows = await deps.db.query<{ name: string }>('SELECT name FROM alert_configs WHERE project_id = $1 AND id = $2', [projectId, configId]);
  return rows[0]?.name ?? null;
}

/** A receiver answered 410 Gone: the config is disabled at once, with an audit entry, and config.disabled is raised. */
export async function disableGoneConfig(deps: Deps, ref: { projectId: string; configId: string; deliveryId: string }, reason: string): Promise<void> {
  const disabled = await disableConfig(deps.db, ref.projectId, ref.configId, reason);
  if (!disabled) return;
  log.warn({ projectId: ref.projectId, configId: ref.configId, deliveryId: ref.deliveryId }, 'receiver answered 410 Gone: config disabled, config.disabled raised');
  await raise(deps, {
    id: `config.disabled:${ref.configId}:${ms(disabled.disabledAt)}`,
    type: 'config.disabled',
    projectId: ref.projectId,
    occurredAt: new Date().toISOString(),
    data: { configId: ref.configId, configName: disabled.configName, workflowId: disabled.workflowId, reason, disabledAt: disabled.disabledAt, cause: 'gone', deliveryId: ref.deliveryId },
  });
}
