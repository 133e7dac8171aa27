-- Reverses outbox.up.sql: the trigger, its function and the meshhook_alerts schema (outbox and cursors) go.
DROP TRIGGER IF EXISTS meshhook_alerts_run_change ON public.workflow_runs;
DROP SCHEMA IF EXISTS meshhook_alerts CASCADE;
