-- Who changed which alert config, when, and what changed. `changes` lists the
-- non-secret fields that changed ({ field, from?, to? }); the webhook URL shows
-- only its scheme and host, header values and secrets only as "***", so this
-- table never holds what alert_configs.sealed protects.
CREATE TABLE alert_audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id text NOT NULL,
  -- the API token (api_tokens.id) that made the change; NULL when the service
  -- made it itself (a receiver's 410 disabling the config)
  token_id   text,
  action     text NOT NULL CHECK (action IN ('config.created', 'config.updated', 'config.deleted', 'config.secret_rotated', 'config.disabled')),
  config_id  text NOT NULL,
  workflow_id text NOT NULL,
  changes    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_audit_log_project ON alert_audit_log (project_id, id DESC);
CREATE INDEX alert_audit_log_project_config ON alert_audit_log (project_id, config_id, id DESC);
