-- Delay watches as rows (issue 15, docs/delay-watches.md): a run.started of a watched workflow is
-- its delivery's row with a deadline, which a finishing event closes; one DelayWatcher workflow per
-- config sleeps on a Temporal timer until the earliest open deadline and starts an AlertDelivery only
-- for the runs that are late. Rows of earlier versions (an AlertDelivery workflow per watch) have no
-- deadline here: their workflow holds the timer, as before.

-- the watch's deadline (the run's start + the threshold); NULL: not a watch of this kind
ALTER TABLE alert_deliveries ADD COLUMN watch_deadline timestamptz;
-- the earliest finishing event's time (its occurredAt, else when the service received it)
ALTER TABLE alert_deliveries ADD COLUMN run_finished_at timestamptz;
-- when the watcher claimed the watch past its deadline (by the watcher's workflow clock)
ALTER TABLE alert_deliveries ADD COLUMN watch_fired_at timestamptz;
-- when the fired (late) watch's AlertDelivery workflow was started: NULL after a claim, the next pass starts it again
ALTER TABLE alert_deliveries ADD COLUMN watch_started_at timestamptz;

-- the open watches of a config, earliest deadline first (the watcher's min and its claim)
CREATE INDEX alert_deliveries_open_watches ON alert_deliveries (config_id, watch_deadline)
  WHERE status = 'scheduled' AND watch_fired_at IS NULL AND watch_deadline IS NOT NULL;
-- fired watches whose AlertDelivery was not yet started (a watcher cut off between the claim and the start)
CREATE INDEX alert_deliveries_unstarted_watches ON alert_deliveries (config_id)
  WHERE watch_fired_at IS NOT NULL AND watch_started_at IS NULL;

-- One row per config with delay watches: the time its DelayWatcher is committed to wake at (NULL:
-- asleep on nothing, or ended). Its row lock orders a run.started's insert against the watcher's
-- reading of the earliest deadline (store/watches.ts).
CREATE TABLE delay_watchers (
  config_id  text PRIMARY KEY,
  project_id text NOT NULL,
  wake_at    timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
