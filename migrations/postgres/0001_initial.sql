-- Release 0.1.0's schema. IF NOT EXISTS throughout: a database made by that release, which had
-- no version table, is adopted by applying this migration over it without loss.
CREATE TABLE IF NOT EXISTS companies (rut TEXT PRIMARY KEY, data TEXT NOT NULL, environment TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (company TEXT PRIMARY KEY REFERENCES companies(rut), sealed BYTEA NOT NULL, subject TEXT NOT NULL,
  holder_rut TEXT NOT NULL, not_after TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS cafs (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut), tipo INT NOT NULL,
  desde BIGINT NOT NULL, hasta BIGINT NOT NULL, next_folio BIGINT NOT NULL, fa DATE NOT NULL, expires_on DATE, idk BIGINT NOT NULL,
  authority TEXT NOT NULL, sealed BYTEA NOT NULL, created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS cafs_company_tipo ON cafs(company, tipo, desde);
CREATE TABLE IF NOT EXISTS documents (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut), tipo INT NOT NULL,
  folio BIGINT NOT NULL, caf_id BIGINT NOT NULL REFERENCES cafs(id), fch_emis DATE NOT NULL, rut_recep TEXT NOT NULL, mnt_total BIGINT NOT NULL,
  totals TEXT NOT NULL, xml BYTEA NOT NULL, ted TEXT NOT NULL, state TEXT NOT NULL, api_key_id TEXT, created_at TIMESTAMPTZ NOT NULL,
  upload_id BIGINT, sii_estado TEXT, sii_glosa TEXT, UNIQUE (company, tipo, folio));
CREATE INDEX IF NOT EXISTS documents_unsent ON documents(state, upload_id);
CREATE INDEX IF NOT EXISTS documents_state_age ON documents(state, created_at);
CREATE TABLE IF NOT EXISTS uploads (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut), boleta BOOLEAN NOT NULL,
  state TEXT NOT NULL, envelope BYTEA, track_id TEXT, attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT, next_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ,
  estado TEXT, glosa TEXT, created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_state ON uploads(state, next_at);
CREATE TABLE IF NOT EXISTS webhooks (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut), url TEXT NOT NULL, secret TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (id BIGSERIAL PRIMARY KEY, webhook_id BIGINT NOT NULL REFERENCES webhooks(id), event TEXT NOT NULL, state TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0, next_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ, last_status TEXT, created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(state, next_at);
CREATE INDEX IF NOT EXISTS documents_company ON documents(company, id);
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, company TEXT, scopes TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS revoked_keys (hash TEXT PRIMARY KEY, revoked_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (key_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, response TEXT,
  created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (key_id, idem_key));
CREATE TABLE IF NOT EXISTS audit (id BIGSERIAL PRIMARY KEY, scope TEXT NOT NULL, seq BIGINT NOT NULL, action TEXT NOT NULL,
  subject TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (scope, seq));
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, key_id TEXT, format TEXT NOT NULL, all_or_nothing BOOLEAN NOT NULL,
  total BIGINT NOT NULL, state TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, enqueued_at TIMESTAMPTZ, idem_key TEXT,
  request_hash TEXT, UNIQUE (key_id, idem_key));
CREATE TABLE IF NOT EXISTS batch_items (batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE, idx BIGINT NOT NULL,
  company TEXT NOT NULL, reference TEXT, source TEXT NOT NULL, tipo INT, payload TEXT, state TEXT NOT NULL, folio BIGINT,
  error TEXT, attempts BIGINT NOT NULL DEFAULT 0, updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (batch_id, idx));
CREATE INDEX IF NOT EXISTS batch_items_state ON batch_items(state, updated_at);
CREATE INDEX IF NOT EXISTS batch_items_batch_state ON batch_items(batch_id, state);
