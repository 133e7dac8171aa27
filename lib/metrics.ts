import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { delayDeadlineMs } from './conditions';
import { logger } from './log';
import { OPERATOR_EVENT_TYPES } from './operator-events';
import { CONDITION_TYPES, NOISE_OUTCOMES } from './schemas';

/**
 * Prometheus metrics of this process, served at GET /metrics (docs/observability.md). In the embedded
 * default one process holds the API's and the worker's; deployed apart, each process reports its own
 * part (a worker without the API serves them on ALERTS_METRICS_PORT). The Temporal SDK's own metrics
 * (temporal_*) are appended to the same text by metricsText(). Gauges of what the store holds (retrying,
 * held, disabled) are read from it at scrape time.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'alerts_process_' });

/** every condition a delivery can have, so that each label set exists (at zero) before its first alert */
const CONDITIONS = [...CONDITION_TYPES, 'test'] as const;
const ATTEMPT_OUTCOMES = ['delivered', 'retrying', 'failed'] as const;
/** held: the delivery found its config disabled by the service and its alert was held, not sent (nor exhausted) */
const FINAL_STATUSES = ['delivered', 'failed', 'suppressed', 'held', ...NOISE_OUTCOMES] as const;
/** outcomes of an operator alert: raised (a delivery started, or it was already), then delivered or failed; skipped when no operator webhook is set */
export const OPERATOR_ALERT_OUTCOMES = ['raised', 'delivered', 'failed', 'skipped'] as const;
export type OperatorAlertOutcome = (typeof OPERATOR_ALERT_OUTCOMES)[number];

export const eventsAccepted = new Counter({
  name: 'alerts_events_accepted_total',
  help: 'Execution events accepted, by event type',
  labelNames: ['type'] as const,
  registers: [registry],
});

export const deliveriesStarted = new Counter({
  name: 'alerts_deliveries_started_total',
  help: 'AlertDelivery workflows started (duplicate="true": the event had already started it)',
  labelNames: ['condition', 'duplicate'] as const,
  registers: [registry],
});

export const deliveryAttempts = new Counter({
  name: 'alerts_delivery_attempts_total',
  help: 'Webhook POST attempts, by condition and outcome (delivered, retrying, failed)',
  labelNames: ['condition', 'outcome'] as const,
  registers: [registry],
});

export const deliveriesFinished = new Counter({
  name: 'alerts_deliveries_finished_total',
  help: 'Deliveries that reached a final status (delivered, failed, suppressed, held; silenced, deduplicated, throttled, grouped, repeat_suppressed: a delay watch the noise pipeline ended), by condition; failed ones are exhausted or refused alerts an operator should look at, held ones wait for their config to be re-enabled',
  labelNames: ['condition', 'status'] as const,
  registers: [registry],
});

export const attemptDuration = new Histogram({
  name: 'alerts_delivery_attempt_duration_seconds',
  help: 'Time from sending a webhook POST to its answer (or error)',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const dispatchLatency = new Histogram({
  name: 'alerts_dispatch_latency_seconds',
  help: "Time from an alert's trigger (the event's arrival at the service; for a delay alert, its deadline) to its first webhook POST",
  buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  registers: [registry],
});

export const endToEndLatency = new Histogram({
  name: 'alerts_end_to_end_latency_seconds',
  help: "Time from what an alert reports (the event's occurredAt, else its arrival; for a delay alert, its deadline) to the receiver's 2xx, retries included",
  labelNames: ['condition'] as const,
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
  registers: [registry],
});

export const httpRequests = new Histogram({
  name: 'alerts_http_request_duration_seconds',
  help: 'API request durations by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

export const operatorAlerts = new Counter({
  name: 'alerts_operator_alerts_total',
  help: 'Operator alerts (delivery.exhausted, config.failing, ...), by type and outcome (raised, delivered, failed, skipped: no operator webhook set)',
  labelNames: ['type', 'outcome'] as const,
  registers: [registry],
});

for (const condition of CONDITIONS) {
  for (const outcome of ATTEMPT_OUTCOMES) deliveryAttempts.inc({ condition, outcome }, 0);
  for (const status of FINAL_STATUSES) deliveriesFinished.inc({ condition, status }, 0);
}
for (const type of OPERATOR_EVENT_TYPES) for (const outcome of OPERATOR_ALERT_OUTCOMES) operatorAlerts.inc({ type, outcome }, 0);

// ------------------------------------------------------------ what callers note

/** The parts of a delivery (AlertDeliveryInput) that say when its alert was triggered. */
export interface DeliveryTiming {
  condition: string;
  event: { occurredAt?: string };
  /** when the service received the event (ISO time) */
  receivedAt?: string;
  /** a delay watch: its threshold */
  delaySeconds?: number;
  /** a redelivery repeats an old alert on request: it has no latency worth a histogram */
  redeliveryOf?: string;
}

const parsedMs = (iso: string | undefined) => {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
};

/** A delay alert's deadline (the run's start + threshold); undefined for other alerts. */
function deadlineMs(d: DeliveryTiming): number | undefined {
  if (d.delaySeconds === undefined) return undefined;
  const fallback = parsedMs(d.receivedAt) ?? NaN;
  const at = delayDeadlineMs(d.event, d.delaySeconds, fallback);
  return Number.isFinite(at) ? at : undefined;
}

/** The first webhook POST of a delivery is being sent (attempt 1): dispatch latency from its trigger. */
export function noteFirstAttemptSent(d: DeliveryTiming, sentAtMs = Date.now()): void {
  if (d.redeliveryOf) return;
  const trigger = d.delaySeconds !== undefined ? deadlineMs(d) : parsedMs(d.receivedAt);
  if (trigger !== undefined) dispatchLatency.observe(Math.max(0, sentAtMs - trigger) / 1000);
}

/** One webhook attempt was judged. */
export function noteAttempt(condition: string, outcome: string, durationMs: number): void {
  attemptDuration.observe(durationMs / 1000);
  deliveryAttempts.inc({ condition, outcome });
}

/**
 * A delivery reached its final status (delivered, failed, suppressed): counted by condition and
 * status; a delivered one adds its end-to-end latency (from the event's time to now).
 */
export function noteDeliveryFinished(d: DeliveryTiming, status: string, finishedAtMs = Date.now()): void {
  deliveriesFinished.inc({ condition: d.condition, status });
  if (status !== 'delivered' || d.redeliveryOf) return;
  const trigger = d.delaySeconds !== undefined ? deadlineMs(d) : (parsedMs(d.event.occurredAt) ?? parsedMs(d.receivedAt));
  if (trigger !== undefined) endToEndLatency.observe({ condition: d.condition }, Math.max(0, finishedAtMs - trigger) / 1000);
}

/** An operator alert of `type` came to `outcome` (the operator alert code calls it). */
export function noteOperatorAlert(type: string, outcome: OperatorAlertOutcome): void {
  operatorAlerts.inc({ type, outcome });
}

// ------------------------------------------------------------ gauges read from the store at scrape time

/** What the store holds now, for the gauges below (store/gauges.ts reads it). */
export interface StoreGauges {
  /** deliveries in progress whose last attempt failed and will be retried, by condition */
  retryingByCondition: Record<string, number>;
  /** alerts held for configs the service disabled */
  held: number;
  /** disabled configs: by the service (a 410, or failing too long) and by their owner */
  disabledConfigs: { service: number; user: number };
}

/** What the store held at the start of the scrape under way (metricsText reads it, the gauges' collect() show it). */
let snapshot: StoreGauges | undefined;
const log = logger('metrics');

export const deliveriesRetrying = new Gauge({
  name: 'alerts_deliveries_retrying',
  help: 'Deliveries whose last attempt failed and that wait for their next attempt (read from the store), by condition',
  labelNames: ['condition'] as const,
  registers: [registry],
  collect() {
    const now = snapshot;
    this.reset();
    if (!now) return;
    for (const condition of CONDITIONS) this.set({ condition }, now.retryingByCondition[condition] ?? 0);
  },
});

export const heldAlerts = new Gauge({
  name: 'alerts_held_alerts',
  help: 'Alerts held for configs the service disabled, waiting to be sent or discarded when the config is re-enabled (read from the store)',
  registers: [registry],
  collect() {
    const now = snapshot;
    this.reset();
    if (now) this.set(now.held);
  },
});

export const disabledConfigs = new Gauge({
  name: 'alerts_configs_disabled',
  help: 'Disabled alert configs (read from the store): disabled_by="service" (a 410, or failing for too long; their alerts are held), disabled_by="user"',
  labelNames: ['disabled_by'] as const,
  registers: [registry],
  collect() {
    const now = snapshot;
    this.reset();
    if (!now) return;
    this.set({ disabled_by: 'service' }, now.disabledConfigs.service);
    this.set({ disabled_by: 'user' }, now.disabledConfigs.user);
  },
});

// ------------------------------------------------------------ the Temporal SDK's metrics

let sdkMetricsUrl: string | undefined;
const SDK_SCRAPE_TIMEOUT_MS = 2_000;

/** Where the Temporal SDK's Prometheus exporter of this process listens (boot sets it when it installs the runtime). */
export function setTemporalMetricsUrl(url: string | undefined): void {
  sdkMetricsUrl = url;
}

/** The whole /metrics text: this process's metrics, then the Temporal SDK's (temporal_*). */
// one scrape at a time: the store snapshot belongs to the scrape that read it
let scrapes: Promise<unknown> = Promise.resolve();

/**
 * The text of GET /metrics: this process's metrics, the store gauges read from `store` (the store of
 * the service answering the scrape; a failed or late read leaves the labelled ones without samples and
 * the held count at 0) and the
 * Temporal SDK's metrics appended.
 */
export function metricsText(store?: () => Promise<StoreGauges>): Promise<string> {
  const scrape = scrapes.then(() => scrapeOnce(store));
  scrapes = scrape.catch(() => undefined);
  return scrape;
}

/** A store read slower than this (a database gone silent) leaves the gauges without samples rather than holding every later scrape. */
const STORE_READ_TIMEOUT_MS = 3_000;

function withinStoreTimeout<T>(read: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${STORE_READ_TIMEOUT_MS} ms`)), STORE_READ_TIMEOUT_MS);
  });
  return Promise.race([read, late]).finally(() => clearTimeout(timer));
}

async function scrapeOnce(store: (() => Promise<StoreGauges>) | undefined): Promise<string> {
  snapshot = store
    ? await withinStoreTimeout(store()).catch((err) => {
        log.warn({ error: (err as Error).message }, 'could not read the store gauges (retrying, held, disabled) for /metrics');
        return undefined;
      })
    : undefined;
  let own: string;
  try {
    own = await registry.metrics();
  } finally {
    snapshot = undefined;
  }
  if (!sdkMetricsUrl) return own;
  try {
    const res = await fetch(sdkMetricsUrl, { signal: AbortSignal.timeout(SDK_SCRAPE_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return `${own.trimEnd()}\n${(await res.text()).trimEnd()}\n`;
  } catch (err) {
    return `${own.trimEnd()}\n# the Temporal SDK's metrics (${sdkMetricsUrl}) did not answer: ${(err as Error).message}\n`;
  }
}
