-- The receiving side (intercambio): a company's exchange mailbox, every message taken from it (or
-- uploaded) once, each supplier envelope and DTE with its verification, the answers sent back, and
-- the RCV events of each received document.
CREATE TABLE mailboxes (company TEXT PRIMARY KEY REFERENCES companies(rut), imap_url TEXT NOT NULL, username TEXT NOT NULL,
  password TEXT NOT NULL, folder TEXT NOT NULL, poll_seconds BIGINT NOT NULL, smtp_url TEXT, smtp_username TEXT,
  smtp_password TEXT, from_address TEXT NOT NULL, uid_validity BIGINT, last_uid BIGINT NOT NULL DEFAULT 0,
  next_poll_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ, last_poll_at TIMESTAMPTZ, last_error TEXT,
  failures BIGINT NOT NULL DEFAULT 0, updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE received_messages (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut),
  message_id TEXT NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL, sender TEXT, subject TEXT, raw BYTEA NOT NULL,
  outcome TEXT NOT NULL, note TEXT, created_at TIMESTAMPTZ NOT NULL, UNIQUE (company, message_id));
CREATE INDEX received_messages_digest ON received_messages(company, digest);
CREATE TABLE received_envelopes (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut),
  message_id BIGINT NOT NULL REFERENCES received_messages(id), filename TEXT NOT NULL, envio_id TEXT NOT NULL,
  cod_envio BIGINT NOT NULL, digest TEXT NOT NULL, rut_emisor TEXT, rut_receptor TEXT, contact TEXT, estado INT NOT NULL, glosa TEXT NOT NULL,
  checks TEXT NOT NULL, xml BYTEA NOT NULL, created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX received_envelopes_digest ON received_envelopes(company, digest);
CREATE TABLE received_documents (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut),
  envelope_id BIGINT NOT NULL REFERENCES received_envelopes(id), rut_emisor TEXT NOT NULL, tipo INT NOT NULL,
  folio BIGINT NOT NULL, fch_emis DATE NOT NULL, rut_recep TEXT NOT NULL, mnt_total BIGINT NOT NULL,
  rzn_soc TEXT NOT NULL, xml BYTEA NOT NULL, estado INT NOT NULL, glosa TEXT NOT NULL, checks TEXT NOT NULL,
  state TEXT NOT NULL, sii_reception TIMESTAMPTZ, deadline TIMESTAMPTZ, next_rcv_at TIMESTAMPTZ, decision TEXT,
  decided_at TIMESTAMPTZ, reason TEXT, deadline_notified BIGINT NOT NULL DEFAULT 0, created_at TIMESTAMPTZ NOT NULL,
  UNIQUE (company, rut_emisor, tipo, folio));
CREATE INDEX received_documents_state ON received_documents(state, deadline);
CREATE TABLE received_events (id BIGSERIAL PRIMARY KEY, document_id BIGINT NOT NULL REFERENCES received_documents(id),
  code TEXT NOT NULL, description TEXT NOT NULL, responsible TEXT, at TIMESTAMPTZ NOT NULL, source TEXT NOT NULL,
  UNIQUE (document_id, code, at));
CREATE TABLE exchange_responses (id BIGSERIAL PRIMARY KEY, company TEXT NOT NULL REFERENCES companies(rut),
  kind TEXT NOT NULL, envelope_id BIGINT REFERENCES received_envelopes(id), document_id BIGINT REFERENCES received_documents(id),
  xml BYTEA NOT NULL, to_address TEXT, state TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at TIMESTAMPTZ NOT NULL,
  lease_until TIMESTAMPTZ, last_error TEXT, sent_at TIMESTAMPTZ, smtp_id TEXT, created_at TIMESTAMPTZ NOT NULL);
CREATE INDEX exchange_responses_due ON exchange_responses(state, next_at);
