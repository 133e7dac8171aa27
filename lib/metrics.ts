import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of this process, served at GET /metrics. In the embedded
 * default one process holds the API's and the worker's; deployed apart, each
 * process reports its own part.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'alerts_process_' });

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
  help: 'Webhook POST attempts, by outcome (delivered, retrying, failed)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const deliveriesFinished = new Counter({
  name: 'alerts_deliveries_finished_total',
  help: 'Deliveries that reached a final status (delivered, failed, suppressed); failed ones are exhausted or refused alerts an operator should look at',
  labelNames: ['status'] as const,
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
  help: "Time from the event's arrival at the service to the first webhook POST of its alert",
  buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  registers: [registry],
});

export const httpRequests = new Histogram({
  name: 'alerts_http_request_duration_seconds',
  help: 'API request durations by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});
