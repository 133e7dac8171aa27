-- Payload templates are sealed with the webhook URL, headers and secrets: a template can hold a
-- static credential (a token in the body of a chat or paging alert). SQL cannot encrypt, so the
-- migration runner (store/migrate.ts) first seals each row's payload_template into `sealed`, in
-- this migration's transaction and with the keyring's first key; then the clear column goes.
ALTER TABLE alert_configs DROP COLUMN payload_template;

-- The audit log showed templates as they were. It now shows a template as "***" (null, the
-- default payload, stays null), and so do the entries written before.
UPDATE alert_audit_log
SET changes = (
  SELECT jsonb_agg(
           CASE WHEN change->>'field' = 'payload.template' THEN
             change
             || CASE WHEN change->'from' IS NOT NULL AND change->'from' <> 'null'::jsonb THEN '{"from": "***"}'::jsonb ELSE '{}'::jsonb END
             || CASE WHEN change->'to' IS NOT NULL AND change->'to' <> 'null'::jsonb THEN '{"to": "***"}'::jsonb ELSE '{}'::jsonb END
           ELSE change END
           ORDER BY position)
  FROM jsonb_array_elements(changes) WITH ORDINALITY AS element(change, position)
)
WHERE changes @> '[{"field": "payload.template"}]';
