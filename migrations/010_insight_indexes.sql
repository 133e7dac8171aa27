-- The config insight chart (GET /api/alerts/config/by-id/{id}/stats) reads one config's attempts of
-- the last hours, and the retrying gauge of /metrics counts the deliveries not yet finished: indexes
-- so that neither scans the whole table as it grows to the retention period.
CREATE INDEX alert_logs_project_config_created ON alert_logs (project_id, config_id, created_at);
CREATE INDEX alert_deliveries_unfinished ON alert_deliveries (status) WHERE status IN ('scheduled', 'in_progress');
