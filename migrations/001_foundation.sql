-- API tokens: stored as SHA-256 of the token, each belonging to one project.
CREATE TABLE api_tokens (
  id           text PRIMARY KEY,
  token_hash   text NOT NULL UNIQUE,
  project_id   text NOT NULL,
  label        text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);

-- Alert configs. The webhook URL, header values and signing secrets live only in
-- `sealed` (AES-256-GCM, JSON inside), encrypted with the key named by key_id.
CREATE TABLE alert_configs (
  id               text PRIMARY KEY,
  project_id       text NOT NULL,
  workflow_id      text NOT NULL,
  name             text NOT NULL,
  enabled          boolean NOT NULL DEFAULT true,
  disabled_reason  text,
  conditions       jsonb NOT NULL,
  payload_template jsonb,
  retry            jsonb NOT NULL,
  timeout_ms       integer NOT NULL,
  key_id           text NOT NULL,
  sealed           text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_configs_project_workflow ON alert_configs (project_id, workflow_id);

-- One row per delivery attempt, plus the final outcome of the delivery.
CREATE TABLE alert_logs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       text NOT NULL,
  delivery_id      text NOT NULL,
  config_id        text NOT NULL,
  workflow_id      text NOT NULL,
  run_id           text NOT NULL,
  event_id         text NOT NULL,
  condition        text NOT NULL,
  attempt          integer NOT NULL,
  outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
  http_status      integer,
  error            text,
  duration_ms      integer,
  response_snippet text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (delivery_id, attempt)
);
CREATE INDEX alert_logs_project_created ON alert_logs (project_id, id DESC);
CREATE INDEX alert_logs_project_config ON alert_logs (project_id, config_id, id DESC);
CREATE INDEX alert_logs_project_workflow_run ON alert_logs (project_id, workflow_id, run_id, id DESC);
