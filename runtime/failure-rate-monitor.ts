import { raiseOperatorAlert } from '../dispatch/operator-alert';
import { logger } from '../lib/log';
import type { OperatorEvent } from '../lib/operator-events';
import type { FailureRateSettings } from '../lib/schemas';
import { notHeldAttempt } from '../store/held';
import { failureRateSettingsByProject } from '../store/project-settings';
import type { ServiceDeps } from './deps';
import { repeatEvery, type Monitor } from './periodic';

const log = logger('operator');

/** How often the worker computes each project's failure rate, unless told otherwise. */
export const FAILURE_RATE_CHECK_MS = 5_000;

/** One project's attempts over its window: `failed` counts the attempts logged failed or retrying. */
export interface ProjectAttempts {
  projectId: string;
  failed: number;
  total: number;
}

/**
 * Every project's attempts over its own window ending at `nowMs`: `settings` are the projects'
 * effective settings (failureRateSettingsByProject), a project not in it has `defaults`. A held
 * alert's row (store/held.ts) and a noise pipeline decision's (attempt 0: silenced, grouped, …) are
 * no attempts, nothing was sent: they count neither as failed nor in the total.
 */
export async function attemptsOverWindows(deps: Pick<ServiceDeps, 'db'>, defaults: FailureRateSettings, settings: Map<string, FailureRateSettings>, nowMs: number): Promise<ProjectAttempts[]> {
  // the projects' own windows, as the rows the query joins
  const windows = [...settings].map(([projectId, s]) => ({ project_id: projectId, window_seconds: s.windowSeconds }));
  const widest = Math.max(defaults.windowSeconds, ...windows.map((w) => w.window_seconds));
  const rows = await deps.db.query<{ project_id: string; failed: number; total: number }>(
    `SELECT l.project_id, count(*) FILTER (WHERE l.outcome IN ('failed', 'retrying'))::int AS failed, count(*)::int AS total
     FROM alert_logs l LEFT JOIN jsonb_to_recordset($3::jsonb) AS w(project_id text, window_seconds int) ON w.project_id = l.project_id
     WHERE l.created_at > $1::timestamptz - make_interval(secs => $2)
       AND l.created_at > $1::timestamptz - make_interval(secs => COALESCE(w.window_seconds, $4::int))
       AND ${notHeldAttempt('l')}
       AND l.attempt > 0
     GROUP BY l.project_id`,
    [new Date(nowMs).toISOString(), widest, JSON.stringify(windows), defaults.windowSeconds],
  );
  return rows.map((r) => ({ projectId: r.project_id, failed: r.failed, total: r.total }));
}

/** The delivery.failure_rate event of a project over a window, or null when its rate is not above the threshold (or too few attempts). */
export function failureRateEvent(attempts: ProjectAttempts, settings: FailureRateSettings, nowMs: number): OperatorEvent | null {
  if (attempts.total < settings.minAttempts || attempts.total === 0) return null;
  const rate = attempts.failed / attempts.total;
  if (rate <= settings.threshold) return null;
  const windowIndex = Math.floor(nowMs / (settings.windowSeconds * 1000));
  return {
    // once per window: the same window's event is the same workflow id, sent once however many checks see it
    id: `delivery.failure_rate:${attempts.projectId}:${windowIndex}`,
    type: 'delivery.failure_rate',
    projectId: attempts.projectId,
    occurredAt: new Date(nowMs).toISOString(),
    data: { rate: Math.round(rate * 10_000) / 10_000, failed: attempts.failed, total: attempts.total, windowSeconds: settings.windowSeconds, threshold: settings.threshold },
  };
}

/**
 * The worker's failure-rate monitor: every `checkEveryMs` it computes each project's share of failed
 * attempts (alert_logs, held alerts' rows left out) over the project's window and raises
 * delivery.failure_rate above the threshold, at most once per window. Operator alerts are not in alert_logs, so their own failures
 * never count (no recursion). Several workers may run it: the event id makes it one alert.
 */
export function startFailureRateMonitor(deps: ServiceDeps, options: { checkEveryMs?: number } = {}): Monitor {
  const every = options.checkEveryMs ?? FAILURE_RATE_CHECK_MS;
  const raised = new Set<string>();

  const check = async () => {
    const nowMs = Date.now();
    const defaults = deps.operations.failureRate;
    const settings = await failureRateSettingsByProject(deps.db, defaults);
    for (const attempts of await attemptsOverWindows(deps, defaults, settings, nowMs)) {
      const event = failureRateEvent(attempts, settings.get(attempts.projectId) ?? defaults, nowMs);
      if (!event || raised.has(event.id)) continue;
      log.warn({ projectId: attempts.projectId, ...event.data }, 'failure rate above the threshold');
      if (await raiseOperatorAlert(deps, event)) raised.add(event.id);
    }
    // the ids of windows long gone are not raised again anyway (the window index moved on)
    if (raised.size > 10_000) raised.clear();
  };
  return repeatEvery(every, () => check().catch((err) => log.warn({ err: (err as Error).message }, 'failure-rate check failed; trying again at the next check')));
}
