-- Noise control (issue 14, docs/noise-control.md): a config's grouping, recovery, throttle, dedup and
-- repeat settings; silences; and the pipeline's decisions as log rows and delivery statuses.

-- The config's noise settings (lib/schemas.ts noiseSettingsSchema); NULL: all off, today's behaviour.
ALTER TABLE alert_configs ADD COLUMN noise jsonb;

-- What the pipeline did with an alert it did not send on its own: a log row with attempt 0 (nothing
-- was sent), and for a delay watch its delivery's final status.
ALTER TABLE alert_logs DROP CONSTRAINT IF EXISTS alert_logs_outcome_check;
ALTER TABLE alert_logs ADD CONSTRAINT alert_logs_outcome_check CHECK (outcome IN (
  'delivered', 'retrying', 'failed', 'silenced', 'deduplicated', 'throttled', 'grouped', 'repeat_suppressed'));
ALTER TABLE alert_deliveries DROP CONSTRAINT IF EXISTS alert_deliveries_status_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_status_check CHECK (status IN (
  'scheduled', 'in_progress', 'delivered', 'failed', 'suppressed', 'silenced', 'deduplicated', 'throttled', 'grouped', 'repeat_suppressed'));

-- Silences (maintenance windows): one-off (starts_at–ends_at) or recurring (a cron expression for
-- each window's start, its length, and a time zone), for one config or for every config of a
-- MeshHook workflow.
CREATE TABLE alert_silences (
  id               text PRIMARY KEY,
  project_id       text NOT NULL,
  config_id        text,
  workflow_id      text,
  starts_at        timestamptz,
  ends_at          timestamptz,
  cron             text,
  duration_seconds integer,
  time_zone        text,
  comment          text NOT NULL DEFAULT '',
  token_id         text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((config_id IS NULL) <> (workflow_id IS NULL)),
  CHECK ((cron IS NULL AND starts_at IS NOT NULL AND ends_at IS NOT NULL AND ends_at > starts_at)
      OR (cron IS NOT NULL AND duration_seconds > 0 AND time_zone IS NOT NULL))
);
CREATE INDEX alert_silences_project_config ON alert_silences (project_id, config_id) WHERE config_id IS NOT NULL;
CREATE INDEX alert_silences_project_workflow ON alert_silences (project_id, workflow_id) WHERE workflow_id IS NOT NULL;

ALTER TABLE alert_audit_log DROP CONSTRAINT IF EXISTS alert_audit_log_action_check;
ALTER TABLE alert_audit_log ADD CONSTRAINT alert_audit_log_action_check CHECK (action IN (
  'config.created', 'config.updated', 'config.deleted', 'config.secret_rotated', 'config.disabled',
  'config.reenabled', 'config.held_sent', 'config.held_discarded',
  'project.settings_updated', 'project.erased', 'silence.created', 'silence.deleted'));
