-- Retention (store/retention.ts): the hourly schedule deletes rows older than ALERTS_RETENTION_DAYS
-- (the audit log: ALERTS_AUDIT_RETENTION_DAYS) in small batches, oldest first. Each batch reads the
-- oldest expired rows through one of these indexes, so a batch touches only the rows it deletes
-- instead of scanning the table.
CREATE INDEX IF NOT EXISTS alert_logs_created ON alert_logs (created_at);
-- only finished deliveries expire (a scheduled or in_progress one is still running)
CREATE INDEX IF NOT EXISTS alert_deliveries_finished_updated ON alert_deliveries (updated_at)
  WHERE status IN ('delivered', 'failed', 'suppressed');
CREATE INDEX IF NOT EXISTS alert_held_created ON alert_held (created_at);
CREATE INDEX IF NOT EXISTS alert_audit_log_created ON alert_audit_log (created_at);

-- operator_alerts (migration 008) has its index on created_at already: operator_alerts_created.
