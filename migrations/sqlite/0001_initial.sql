-- Release 0.1.0's schema. IF NOT EXISTS throughout: a database made by that release, which had
-- no version table, is adopted by applying this migration over it without loss.
CREATE TABLE IF NOT EXISTS companies (rut TEXT PRIMARY KEY, data TEXT NOT NULL, environment TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (company TEXT PRIMARY KEY REFERENCES companies(rut), sealed BLOB NOT NULL, subject TEXT NOT NULL,
  holder_rut TEXT NOT NULL, not_after TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cafs (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut), tipo INTEGER NOT NULL,
  desde INTEGER NOT NULL, hasta INTEGER NOT NULL, next_folio INTEGER NOT NULL, fa TEXT NOT NULL, expires_on TEXT, idk INTEGER NOT NULL,
  authority TEXT NOT NULL, sealed BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cafs_company_tipo ON cafs(company, tipo, desde);
CREATE TABLE IF NOT EXISTS documents (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut), tipo INTEGER NOT NULL,
  folio INTEGER NOT NULL, caf_id INTEGER NOT NULL REFERENCES cafs(id), fch_emis TEXT NOT NULL, rut_recep TEXT NOT NULL, mnt_total INTEGER NOT NULL,
  totals TEXT NOT NULL, xml BLOB NOT NULL, ted TEXT NOT NULL, state TEXT NOT NULL, api_key_id TEXT, created_at TEXT NOT NULL,
  upload_id INTEGER, sii_estado TEXT, sii_glosa TEXT, UNIQUE (company, tipo, folio));
CREATE INDEX IF NOT EXISTS documents_unsent ON documents(state, upload_id);
CREATE INDEX IF NOT EXISTS documents_state_age ON documents(state, created_at);
CREATE TABLE IF NOT EXISTS uploads (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut), boleta INTEGER NOT NULL,
  state TEXT NOT NULL, envelope BLOB, track_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_at TEXT NOT NULL, lease_until TEXT,
  estado TEXT, glosa TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_state ON uploads(state, next_at);
CREATE TABLE IF NOT EXISTS webhooks (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut), url TEXT NOT NULL, secret TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id INTEGER NOT NULL REFERENCES webhooks(id), event TEXT NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, lease_until TEXT, last_status TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(state, next_at);
CREATE INDEX IF NOT EXISTS documents_company ON documents(company, id);
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, company TEXT, scopes TEXT NOT NULL, created_at TEXT NOT NULL,
  expires_at TEXT, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS revoked_keys (hash TEXT PRIMARY KEY, revoked_at TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (key_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, response TEXT,
  created_at TEXT NOT NULL, PRIMARY KEY (key_id, idem_key));
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, seq INTEGER NOT NULL, action TEXT NOT NULL,
  subject TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (scope, seq));
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, key_id TEXT, format TEXT NOT NULL, all_or_nothing INTEGER NOT NULL,
  total INTEGER NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, enqueued_at TEXT, idem_key TEXT, request_hash TEXT,
  UNIQUE (key_id, idem_key));
CREATE TABLE IF NOT EXISTS batch_items (batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
  company TEXT NOT NULL, reference TEXT, source TEXT NOT NULL, tipo INTEGER, payload TEXT, state TEXT NOT NULL, folio INTEGER,
  error TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, PRIMARY KEY (batch_id, idx));
CREATE INDEX IF NOT EXISTS batch_items_state ON batch_items(state, updated_at);
CREATE INDEX IF NOT EXISTS batch_items_batch_state ON batch_items(batch_id, state);
