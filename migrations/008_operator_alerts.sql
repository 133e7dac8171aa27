-- Operator alerts (issue 13, docs/operator-alerts.md): one row per operator event and target (the
-- deployment's operator webhook, or the project's own), keyed by its workflow id
-- `op:<target>:<event id>`, so the same event raised twice is one row and one delivery. `event` is
-- the body as sent: no secret, no webhook URL. `seq` orders the list and is its page cursor.
CREATE TABLE operator_alerts (
  alert_id     text PRIMARY KEY,
  seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  event_id     text NOT NULL,
  -- null for a deployment-wide event (service.degraded)
  project_id   text,
  type         text NOT NULL,
  target       text NOT NULL CHECK (target IN ('deployment', 'project')),
  status       text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'delivered', 'failed')),
  attempts     integer NOT NULL DEFAULT 0,
  http_status  integer,
  error        text,
  event        jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_alerts_project ON operator_alerts (project_id, seq);
CREATE INDEX operator_alerts_created ON operator_alerts (created_at);
