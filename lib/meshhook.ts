import type { ExecutionEvent } from './schemas';

/**
 * MeshHook's runs as the contract's execution events: one recorded status change of a run
 * (meshhook/outbox.up.sql) becomes one event. Pure; the source (meshhook/source.ts) reads the rows.
 */

/** A row of meshhook_alerts.run_changes, with the run's definition and, for a failure, its last error event. */
export interface RunChange {
  changeId: string;
  runId: string;
  projectId: string;
  oldStatus: string | null;
  newStatus: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  changedAt: Date;
  /** workflow_definitions.slug and version */
  slug: string;
  version: number | null;
  /** the definition's own name, when it has one (definition->>'name') */
  name: string | null;
  /** the payload of the run's last workflow_events row that carries an error (failures only) */
  errorPayload: unknown;
}

/** The event a status change stands for: undefined for a change no condition cares about (a run inserted paused, say). */
export function eventTypeOf(oldStatus: string | null, newStatus: string): ExecutionEvent['type'] | undefined {
  switch (newStatus) {
    case 'running':
      return oldStatus === 'paused' ? 'run.resumed' : 'run.started';
    case 'paused':
      return 'run.paused';
    case 'succeeded':
      return 'run.succeeded';
    case 'failed':
      return 'run.failed';
    case 'canceled':
      return 'run.canceled';
    default:
      return undefined;
  }
}

const FINISHED = new Set<ExecutionEvent['type']>(['run.succeeded', 'run.failed', 'run.canceled']);

const text = (value: unknown, max: number) => (typeof value === 'string' && value !== '' ? value.slice(0, max) : undefined);

/** A failure's error from a workflow_events payload: `{ error: { message, step } }`, `{ error: "…" }` or `{ message, step }`. */
export function errorOf(payload: unknown): ExecutionEvent['error'] {
  if (!payload || typeof payload !== 'object') return undefined;
  const p = payload as Record<string, unknown>;
  const inner = p.error && typeof p.error === 'object' ? (p.error as Record<string, unknown>) : {};
  const message = text(inner.message, 10_000) ?? text(p.error, 10_000) ?? text(p.message, 10_000);
  const step = text(inner.step, 500) ?? text(p.step, 500) ?? text(p.stepId, 500);
  const code = text(inner.code, 200) ?? text(p.code, 200);
  if (!message && !step && !code) return undefined;
  return { ...(message ? { message } : {}), ...(step ? { step } : {}), ...(code ? { code } : {}) };
}

/**
 * The execution event of one change. Its id is the change's own (`mh-<runId>-<changeId>`): a change
 * handed over twice (a source restarted before it saved its cursor) starts the same deliveries,
 * which Temporal refuses to start again.
 */
export function eventOfChange(change: RunChange): ExecutionEvent | undefined {
  const type = eventTypeOf(change.oldStatus, change.newStatus);
  if (!type) return undefined;
  const error = type === 'run.failed' ? errorOf(change.errorPayload) : undefined;
  return {
    id: `mh-${change.runId}-${change.changeId}`,
    type,
    // when it happened by MeshHook's own record of the run, else when the change was written
    occurredAt: ((type === 'run.started' ? change.startedAt : FINISHED.has(type) ? change.finishedAt : null) ?? change.changedAt).toISOString(),
    workflowId: change.slug,
    runId: change.runId,
    workflow: { name: (change.name ?? change.slug).slice(0, 500), ...(change.version !== null ? { version: change.version } : {}) },
    run: {
      ...(change.startedAt ? { startedAt: change.startedAt.toISOString() } : {}),
      ...(change.finishedAt ? { finishedAt: change.finishedAt.toISOString() } : {}),
    },
    ...(error ? { error } : {}),
    data: { meshhookProjectId: change.projectId, status: change.newStatus },
  };
}

/** MESHHOOK_PROJECTS: `<MeshHook project uuid>:<alerts project>` pairs, comma-separated. */
export function parseProjectMap(spec: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const pair of (spec ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = pair.lastIndexOf(':');
    const from = pair.slice(0, at).trim().toLowerCase();
    const to = pair.slice(at + 1).trim();
    if (at <= 0 || !to) throw new Error(`MESHHOOK_PROJECTS: "${pair}" is not <MeshHook project id>:<alerts project id>`);
    if (map.has(from)) throw new Error(`MESHHOOK_PROJECTS: MeshHook project ${from} is mapped twice`);
    map.set(from, to);
  }
  return map;
}
