-- The Standard Webhooks headers an attempt sent (webhook-id, webhook-timestamp, webhook-signature), so the
-- test-alert answer and the web UI can show what the receiver got. The signatures are HMACs of the body,
-- not the secret. NULL for rows written before this migration and for attempts that sent nothing.
ALTER TABLE alert_logs ADD COLUMN signature_headers jsonb;
