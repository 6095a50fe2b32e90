-- Webhooks can be deleted (kept for their deliveries' history) and their secrets are sealed by the
-- application (the column keeps its type; sealed values start with "v1:").
ALTER TABLE webhooks ADD COLUMN deleted_at TIMESTAMPTZ;
-- One row: the key check value of the master key this database is sealed with, and when the audit
-- chains were first keyed with it.
CREATE TABLE vault_check (id INT PRIMARY KEY CHECK (id = 1), check_value TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, audit_keyed_at TIMESTAMPTZ);
