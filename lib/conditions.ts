import type { AlertCondition, ConditionType, ExecutionEvent } from './schemas';

/** The condition an immediate event type fires (delay is handled by a watch). */
const IMMEDIATE: Partial<Record<ExecutionEvent['type'], ConditionType>> = {
  'run.failed': 'failure',
  'run.succeeded': 'success',
  'run.paused': 'manual_intervention',
  'run.canceled': 'canceled',
};

/** The condition an event type stands for (run.started: the delay a watch measures), or undefined (run.resumed). */
export const conditionOfEvent = (type: ExecutionEvent['type']): ConditionType | undefined => (type === 'run.started' ? 'delay' : IMMEDIATE[type]);

/** Events that end a run, and so end a delay watch quietly. */
export const FINISHING_EVENTS: ReadonlySet<ExecutionEvent['type']> = new Set(['run.succeeded', 'run.failed', 'run.canceled']);

export type AlertAction =
  | { kind: 'send'; condition: Exclude<ConditionType, 'delay'> }
  | { kind: 'watch'; thresholdSeconds: number }
  | { kind: 'finish-watch' };

/** What one event means for one config's conditions. */
export function matchConditions(conditions: AlertCondition[], eventType: ExecutionEvent['type']): AlertAction[] {
  const actions: AlertAction[] = [];
  const immediate = IMMEDIATE[eventType];
  for (const c of conditions) {
    if (c.type === 'delay') {
      if (eventType === 'run.started') actions.push({ kind: 'watch', thresholdSeconds: c.thresholdSeconds });
      else if (FINISHING_EVENTS.has(eventType)) actions.push({ kind: 'finish-watch' });
    } else if (c.type === immediate) {
      actions.push({ kind: 'send', condition: c.type });
    }
  }
  return actions;
}

/**
 * A delay watch's deadline: the run's start, the time of its run.started event (its occurredAt, else
 * when the service received it: `receivedAtMs`), plus the threshold.
 */
export function delayDeadlineMs(startEvent: Pick<ExecutionEvent, 'occurredAt'>, thresholdSeconds: number, receivedAtMs: number): number {
  const startedAt = startEvent.occurredAt ? Date.parse(startEvent.occurredAt) : NaN;
  return (Number.isFinite(startedAt) ? startedAt : receivedAtMs) + thresholdSeconds * 1000;
}

/**
 * Whether a run finished in time is decided by time: the finishing event's time against the
 * deadline, never by the order in which a worker happens to handle the timer and the event.
 */
export const finishedInTime = (finishedAtMs: number, deadlineMs: number): boolean => finishedAtMs <= deadlineMs;
