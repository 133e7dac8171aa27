-- One row per alert delivery (one AlertDelivery workflow): its current status
-- and the event it carries, sealed like a config's webhook (redeliver reads it).
CREATE TABLE alert_deliveries (
  delivery_id   text PRIMARY KEY,
  project_id    text NOT NULL,
  config_id     text NOT NULL,
  workflow_id   text NOT NULL,
  run_id        text NOT NULL,
  event_id      text NOT NULL,
  condition     text NOT NULL,
  status        text NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'delivered', 'failed', 'suppressed')),
  attempts      integer NOT NULL DEFAULT 0,
  http_status   integer,
  error         text,
  redelivery_of text,
  key_id        text NOT NULL,
  event_sealed  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_deliveries_project_created ON alert_deliveries (project_id, created_at DESC);
CREATE INDEX alert_deliveries_project_config ON alert_deliveries (project_id, config_id, created_at DESC);
