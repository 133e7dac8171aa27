import { AlertsError, notFound } from '../lib/errors';
import { immediateDeliveryId } from '../lib/delivery-ids';
import { logger } from '../lib/log';
import { noiseOn, noiseSettingsOf, type HeldAction, type StartedDelivery } from '../lib/schemas';
import type { ServiceDeps } from '../runtime/deps';
import { recordAudit, SERVICE_ACTOR, type Actor } from '../store/audit';
import { getConfig } from '../store/configs';
import { lockForReenable, reenableConfig } from '../store/health';
import { countHeld, deleteHeld, discardHeld, firstAttemptDone, heldAlertsPending, oldestHeld, type HeldAlert } from '../store/held';
import { raiseOperatorAlert } from './operator-alert';
import { noiseAlertItem } from './noise-routing';
import { sendToNoisePipeline, startDelivery } from './start-delivery';

/**
 * Re-enabling a config, and what becomes of the alerts held while the service had it disabled
 * (docs/endpoint-health.md): `send` starts one new delivery per held alert, oldest first, each
 * signed afresh by its own attempts; `discard` deletes them.
 */

type Deps = Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>;

const log = logger('held-alerts');

/** What re-enabling did with the held alerts; `none`: there were none to decide about. */
export interface HeldOutcome {
  action: HeldAction | 'none';
  count: number;
  deliveries: StartedDelivery[];
}

export { heldAlertsPending };

/**
 * The delivery id of a held alert, the same however often it is sent: for an alert held before any
 * delivery started, the id its event would have had (so the event sent again later is a duplicate);
 * for one held by its delivery, that id marked `-held`.
 */
export const heldDeliveryId = (configId: string, held: Pick<HeldAlert, 'eventId' | 'deliveryId'>) =>
  held.deliveryId ? `${held.deliveryId}-held` : immediateDeliveryId(configId, held.eventId);

const BATCH = 100;
/** How long the next held alert waits for the first attempt of the one before it, beyond the receiver's timeout. */
const FIRST_ATTEMPT_MARGIN_MS = 5_000;
const POLL_MS = 25;

/**
 * Sends (one new delivery each, oldest first) or discards the config's held alerts, with the audit
 * entry. Each alert goes once its predecessor's first attempt has an outcome, so the receiver gets
 * them in order (a retried one's later attempts may come after the next); once a first attempt
 * takes longer than the receiver's timeout, the rest are started without waiting. A held alert is deleted
 * once its delivery started; a request cut off half-way (Temporal unreachable: 503) leaves the rest
 * held, and repeating it starts nothing twice (deterministic delivery ids).
 */
export async function releaseHeld(deps: Deps, projectId: string, configId: string, action: HeldAction, actor: Actor = SERVICE_ACTOR): Promise<HeldOutcome> {
  const config = await getConfig(deps.db, deps.keyring, projectId, configId);
  const entry = (n: number) => ({ projectId, actor, configId, workflowId: config.workflowId, changes: [{ field: 'heldAlerts', from: n, to: 0 }] });
  if (action === 'discard') {
    const count = await deps.db.transaction(async (tx) => {
      const n = await discardHeld(tx, projectId, configId);
      if (n > 0) await recordAudit(tx, { ...entry(n), action: 'config.held_discarded' });
      return n;
    });
    return { action, count, deliveries: [] };
  }
  const count = await countHeld(deps.db, projectId, configId);
  if (count > 0) await recordAudit(deps.db, { ...entry(count), action: 'config.held_sent' });
  const deliveries: StartedDelivery[] = [];
  const noiseSettings = noiseSettingsOf(config);
  const noise = noiseOn(noiseSettings) ? noiseSettings : null;
  let inOrder = true;
  for (;;) {
    const batch = await oldestHeld(deps.db, deps.keyring, projectId, configId, BATCH);
    for (const held of batch) {
      const deliveryId = heldDeliveryId(configId, held);
      // a config with noise settings takes its held alerts through its pipeline: an outage held while it was
      // disabled is grouped, throttled, … as it would have been, not sent as one webhook each
      if (noise && held.condition !== 'test' && held.condition !== 'recovered') {
        const item = await noiseAlertItem(
          { id: configId, name: config.name, noise },
          { deliveryId, condition: held.condition, event: held.event, silencedBy: null, watch: false },
          Date.now(),
        );
        await sendToNoisePipeline(deps, { projectId, configId }, item);
        await deleteHeld(deps.db, projectId, held.id);
        deliveries.push({ deliveryId, configId, condition: held.condition, duplicate: false, noise: 'pipeline' });
        continue;
      }
      const started = await startDelivery(deps, {
        deliveryId,
        projectId,
        configId,
        condition: held.condition,
        event: held.event,
        ...(held.deliveryId ? { redeliveryOf: held.deliveryId } : {}),
      });
      await deleteHeld(deps.db, projectId, held.id);
      deliveries.push(started);
      if (!inOrder) continue;
      const deadline = Date.now() + config.webhook.timeoutMs + FIRST_ATTEMPT_MARGIN_MS;
      while (!(await firstAttemptDone(deps.db, deliveryId))) {
        // a receiver that does not answer in time: the rest go without waiting (the request must end)
        if (Date.now() >= deadline) {
          inOrder = false;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
    if (batch.length < BATCH) break;
  }
  log.info({ projectId, configId, count: deliveries.length }, 'held alerts sent');
  return { action, count: deliveries.length, deliveries };
}

/**
 * POST …/enable: turns the config on (no disable reason, health afresh, audit config.reenabled, all
 * in one transaction under the row lock, which also counts the held alerts: `held` is required when
 * there are any, 409 held_alerts_pending), raises config.reenabled when the service had disabled it,
 * right after the commit, and then sends or discards the held alerts. Enabling an enabled config
 * changes nothing, but still sends or discards what is held (a request cut off half-way, repeated).
 */
export async function enableConfig(deps: Deps, projectId: string, configId: string, held: HeldAction | undefined, actor: Actor = SERVICE_ACTOR): Promise<HeldOutcome> {
  const { before, pending } = await deps.db.transaction(async (tx) => {
    const state = await lockForReenable(tx, projectId, configId);
    if (!state) throw notFound(`alert config ${configId}`);
    const pending = await countHeld(tx, projectId, configId);
    if (pending > 0 && !held) throw heldAlertsPending(pending);
    if (!state.enabled) {
      await reenableConfig(tx, projectId, configId);
      await recordAudit(tx, {
        projectId,
        actor,
        action: 'config.reenabled',
        configId,
        workflowId: state.workflowId,
        changes: [{ field: 'enabled', from: false, to: true }, ...(state.disabledReason ? [{ field: 'disabledReason', from: state.disabledReason, to: null }] : [])],
      });
    }
    return { before: state, pending };
  });
  if (!before.enabled && before.disabledReason) {
    await raiseReenabled(deps, projectId, configId, { name: before.name, workflowId: before.workflowId, previousReason: before.disabledReason }, { action: held ?? 'none', count: pending });
  }
  return held ? releaseHeld(deps, projectId, configId, held, actor) : { action: 'none', count: 0, deliveries: [] };
}

/**
 * After POST /api/alerts/config saved a config (store/configs.ts's saveConfig re-enables it in its
 * own transaction): config.reenabled when the service had disabled it, right after that commit, then
 * the held alerts sent or discarded when the request said so (also for a config enabled already:
 * alerts left held by a request cut off half-way).
 */
export async function afterConfigSaved(
  deps: Deps,
  projectId: string,
  config: { id: string; name: string; workflowId: string; enabled: boolean },
  reenabled: { disabledReason: string | null; heldCount: number } | undefined,
  held: HeldAction | undefined,
  actor: Actor = SERVICE_ACTOR,
): Promise<HeldOutcome> {
  if (reenabled?.disabledReason) {
    await raiseReenabled(deps, projectId, config.id, { name: config.name, workflowId: config.workflowId, previousReason: reenabled.disabledReason }, { action: held ?? 'none', count: reenabled.heldCount });
  }
  return held && config.enabled ? releaseHeld(deps, projectId, config.id, held, actor) : { action: 'none', count: 0, deliveries: [] };
}

async function raiseReenabled(deps: Deps, projectId: string, configId: string, config: { name: string; workflowId: string; previousReason: string }, held: { action: HeldOutcome['action']; count: number }): Promise<void> {
  const at = new Date();
  try {
    await raiseOperatorAlert(deps, {
      id: `config.reenabled:${configId}:${at.getTime()}`,
      type: 'config.reenabled',
      projectId,
      occurredAt: at.toISOString(),
      data: { configId, configName: config.name, workflowId: config.workflowId, previousReason: config.previousReason, held },
    });
  } catch (err) {
    // raiseOperatorAlert never throws by contract; a re-enable that happened is not answered with an error
    log.warn({ projectId, configId, error: (err as Error).message }, 'config.reenabled could not be raised');
  }
}
