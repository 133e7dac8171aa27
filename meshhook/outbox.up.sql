-- MeshHook Alerts: the change source's outbox, applied by a MeshHook operator to MeshHook's own database
-- (PostgreSQL 13+, Supabase included). Idempotent: run it again after an upgrade. Reversed by outbox.down.sql.
--
-- It adds one schema, meshhook_alerts, and one trigger on public.workflow_runs; MeshHook's tables are
-- not changed otherwise. Every insert of a run and every change of its status writes a row of
-- meshhook_alerts.run_changes in the same transaction (so a change is recorded exactly when it is
-- committed, never lost) and announces it with NOTIFY meshhook_alerts (a hint: the source also polls).

CREATE SCHEMA IF NOT EXISTS meshhook_alerts;

CREATE TABLE IF NOT EXISTS meshhook_alerts.run_changes (
  id          bigserial PRIMARY KEY,
  -- the writing transaction: the source reads in (txid, id) order and only below the oldest transaction
  -- still running, so a change committed late behind a later id is never skipped
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  run_id      uuid NOT NULL,
  project_id  uuid NOT NULL,
  workflow_id uuid NOT NULL,
  old_status  text,
  new_status  text NOT NULL,
  started_at  timestamptz,
  finished_at timestamptz,
  changed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS run_changes_order ON meshhook_alerts.run_changes (txid, id);

-- where each source has read to
CREATE TABLE IF NOT EXISTS meshhook_alerts.cursors (
  source     text PRIMARY KEY,
  txid       xid8 NOT NULL,
  change_id  bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- SECURITY DEFINER: whichever role MeshHook writes its runs with (on Supabase, possibly one behind
-- row-level security) needs no rights on this schema; the function writes as the role that applied this file.
CREATE OR REPLACE FUNCTION meshhook_alerts.record_run_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
    RETURN NEW;
  END IF;
  INSERT INTO meshhook_alerts.run_changes (run_id, project_id, workflow_id, old_status, new_status, started_at, finished_at)
  VALUES (NEW.id, NEW.project_id, NEW.workflow_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, NEW.started_at, NEW.finished_at);
  PERFORM pg_notify('meshhook_alerts', '');
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS meshhook_alerts_run_change ON public.workflow_runs;
CREATE TRIGGER meshhook_alerts_run_change
  AFTER INSERT OR UPDATE OF status ON public.workflow_runs
  FOR EACH ROW EXECUTE FUNCTION meshhook_alerts.record_run_change();
