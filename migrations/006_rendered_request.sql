-- The request a delivery sends (URL, headers, body), rendered once before its first POST and sealed
-- (key id beside the ciphertext, bound to the delivery): a first attempt cut off and run again sends
-- these same bytes, not a second rendering (a delay alert's run.durationMs, a config edited meanwhile).
-- NULL until the first attempt, and for deliveries that failed before rendering.
ALTER TABLE alert_deliveries ADD COLUMN request_key_id text;
ALTER TABLE alert_deliveries ADD COLUMN request_sealed text;
