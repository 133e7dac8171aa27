// Workflow code only: deterministic, no I/O, no Node built-ins.
export { AlertDelivery, runFinished } from './alert-delivery';
export { AlertNoise, noiseItem } from './alert-noise';
export { ProcessExecutionEvent } from './process-event';
export { OperatorAlertDelivery } from './operator-alert';
export { RetentionSweep } from './retention';
export { DelayWatcher, watchDeadline } from './delay-watcher';
