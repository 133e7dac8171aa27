-- MeshHook Alerts: the rights the change source needs on MeshHook's database, as a role to grant to
-- the login it connects with (after outbox.up.sql). Idempotent.
--
--   CREATE ROLE alerts_source LOGIN PASSWORD '…' IN ROLE meshhook_alerts_source;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meshhook_alerts_source') THEN
    CREATE ROLE meshhook_alerts_source NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA meshhook_alerts TO meshhook_alerts_source;
GRANT SELECT ON meshhook_alerts.run_changes TO meshhook_alerts_source;
GRANT SELECT, INSERT, UPDATE ON meshhook_alerts.cursors TO meshhook_alerts_source;
GRANT SELECT ON public.workflow_definitions, public.workflow_events TO meshhook_alerts_source;
