import { raiseOperatorAlert } from '../dispatch/operator-alert';
import { logger } from '../lib/log';
import type { OperatorEvent } from '../lib/operator-events';
import type { ServiceDeps } from './deps';
import { repeatEvery, type Monitor } from './periodic';

const log = logger('operator');

/** How often Temporal and the store are probed, unless told otherwise. */
export const DEGRADED_PROBE_MS = 1_000;
/** A probe that takes longer than this counts as the dependency being unreachable. */
export const DEGRADED_PROBE_TIMEOUT_MS = 2_000;

export type Dependency = 'temporal' | 'store';

interface Outage {
  downSince: number;
  /** the alert's delivery started (during the outage or at recovery): nothing more to send for it */
  sent: boolean;
}

const withTimeout = <T>(work: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
};

/** The service.degraded event of one outage; `recoveredAt` once the dependency is back. */
export function degradedEvent(dependency: Dependency, downSince: number, nowMs: number, recoveredAt?: number): OperatorEvent {
  return {
    id: `service.degraded:${dependency}:${downSince}`,
    type: 'service.degraded',
    projectId: null,
    occurredAt: new Date(nowMs).toISOString(),
    data: {
      dependency,
      downSince: new Date(downSince).toISOString(),
      recoveredAt: recoveredAt === undefined ? null : new Date(recoveredAt).toISOString(),
      downSeconds: Math.round(((recoveredAt ?? nowMs) - downSince) / 1000),
    },
  };
}

/**
 * Probes Temporal (describeNamespace) and the store (SELECT 1) every `probeEveryMs`. A dependency
 * unreachable for longer than ALERTS_DEGRADED_AFTER_SECONDS raises service.degraded to the
 * deployment's operator webhook: during the outage when it is the store (the delivery needs only
 * Temporal and the operator webhook), and when it recovers when it is Temporal (starting the delivery
 * needs Temporal) or when the store's could not be started during it. One alert per outage: its id
 * is the dependency and when it went down.
 */
export function startDegradedMonitor(
  deps: Pick<ServiceDeps, 'db' | 'keyring' | 'temporal' | 'operations'>,
  options: { probeEveryMs?: number; probeTimeoutMs?: number } = {},
): Monitor {
  const every = options.probeEveryMs ?? DEGRADED_PROBE_MS;
  const timeoutMs = options.probeTimeoutMs ?? DEGRADED_PROBE_TIMEOUT_MS;
  const afterMs = () => deps.operations.degradedAfterSeconds * 1000;
  const probes: Record<Dependency, () => Promise<unknown>> = {
    temporal: () => deps.temporal.client.workflowService.describeNamespace({ namespace: deps.temporal.namespace }),
    store: () => deps.db.query('SELECT 1'),
  };
  const outages = new Map<Dependency, Outage>();
  // at most one raise of an outage's alert at a time (a start waits up to its deadline while Temporal is down)
  const raising = new Map<string, Promise<void>>();

  const raise = (dependency: Dependency, outage: Outage, event: OperatorEvent, after?: () => void) => {
    if (raising.has(event.id)) return;
    const attempt = raiseOperatorAlert(deps, event)
      .then((started) => {
        if (started) outage.sent = true;
        else log.warn({ dependency, eventId: event.id }, 'service.degraded could not be started; trying again');
      })
      .finally(() => {
        raising.delete(event.id);
        after?.();
      });
    raising.set(event.id, attempt);
  };

  const probe = async (dependency: Dependency) => {
    const nowMs = Date.now();
    const up = await withTimeout(probes[dependency](), timeoutMs, dependency).then(
      () => true,
      (err: Error) => {
        if (!outages.has(dependency)) log.warn({ dependency, err: err.message.split('\n')[0] }, `${dependency} is unreachable`);
        return false;
      },
    );
    const outage = outages.get(dependency);
    if (!up) {
      if (!outage) outages.set(dependency, { downSince: nowMs, sent: false });
      // starting a delivery needs Temporal: an outage of Temporal is sent when it recovers, the store's during it
      else if (dependency !== 'temporal' && !outage.sent && nowMs - outage.downSince > afterMs()) raise(dependency, outage, degradedEvent(dependency, outage.downSince, nowMs));
      return;
    }
    if (!outage) return;
    log.info({ dependency, downSeconds: Math.round((nowMs - outage.downSince) / 1000) }, `${dependency} is reachable again`);
    // keep trying the recovery's alert until it starts; a new outage is a new alert
    const retryUntilSent = () => {
      if (!outage.sent && !monitor.stopped) raise(dependency, outage, degradedEvent(dependency, outage.downSince, Date.now(), nowMs), () => setTimeout(retryUntilSent, every));
    };
    outages.delete(dependency);
    if (!outage.sent && nowMs - outage.downSince > afterMs()) {
      // a raise still waiting on the outage's start: let it end first
      const pending = raising.get(degradedEvent(dependency, outage.downSince, nowMs).id);
      if (pending) void pending.then(retryUntilSent);
      else retryUntilSent();
    }
  };

  // a raise still waiting on Temporal is not waited for by stop(): it ends (and never throws) when the connection closes
  const monitor = repeatEvery(every, () => Promise.all((Object.keys(probes) as Dependency[]).map(probe)));
  return monitor;
}
