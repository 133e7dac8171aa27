-- Operating the service (issue 13): endpoint health per config, alerts held while a config is
-- disabled, per-project operator settings, and audit entries about a project rather than a config.

-- The audit log's new actions; an entry about the whole project (settings, erasure) has no config.
ALTER TABLE alert_audit_log DROP CONSTRAINT IF EXISTS alert_audit_log_action_check;
ALTER TABLE alert_audit_log ADD CONSTRAINT alert_audit_log_action_check CHECK (action IN (
  'config.created', 'config.updated', 'config.deleted', 'config.secret_rotated', 'config.disabled',
  'config.reenabled', 'config.held_sent', 'config.held_discarded',
  'project.settings_updated', 'project.erased'));
ALTER TABLE alert_audit_log ALTER COLUMN config_id DROP NOT NULL;
ALTER TABLE alert_audit_log ALTER COLUMN workflow_id DROP NOT NULL;

-- Endpoint health: consecutive failed deliveries since the last delivered one, when that streak
-- began, and whether its early warning (config.failing) was sent. Reset by a delivered alert.
ALTER TABLE alert_configs ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0;
ALTER TABLE alert_configs ADD COLUMN failing_since timestamptz;
ALTER TABLE alert_configs ADD COLUMN last_success_at timestamptz;
ALTER TABLE alert_configs ADD COLUMN last_failure_at timestamptz;
ALTER TABLE alert_configs ADD COLUMN warned_at timestamptz;
ALTER TABLE alert_configs ADD COLUMN disabled_at timestamptz;

-- Alerts of a config the service disabled (a 410, or failing for too long), held rather than
-- dropped: on re-enabling, the user sends them (oldest first, each a new delivery signed afresh) or
-- discards them. The event is sealed as in alert_deliveries. One row per (config, event, condition):
-- an event sent again while the config is disabled is held once.
CREATE TABLE alert_held (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id   text NOT NULL,
  config_id    text NOT NULL,
  workflow_id  text NOT NULL,
  run_id       text NOT NULL,
  event_id     text NOT NULL,
  condition    text NOT NULL,
  -- the delivery that found the config disabled, when one had started (a delay watch firing)
  delivery_id  text,
  key_id       text NOT NULL,
  event_sealed text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (config_id, event_id, condition)
);
CREATE INDEX alert_held_project_config ON alert_held (project_id, config_id, id);

-- Per-project operator settings set through the API. The operator webhook's URL and secret are
-- sealed (AES-256-GCM, key_id beside them) like a config's; health and failure_rate override the
-- deployment's defaults (ALERTS_ENDPOINT_*, ALERTS_FAILURE_RATE_*) field by field.
CREATE TABLE project_settings (
  project_id      text PRIMARY KEY,
  key_id          text,
  operator_sealed text,
  health          jsonb NOT NULL DEFAULT '{}'::jsonb,
  failure_rate    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
