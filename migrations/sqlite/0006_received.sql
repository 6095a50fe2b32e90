-- The receiving side (intercambio): a company's exchange mailbox, every message taken from it (or
-- uploaded) once, each supplier envelope and DTE with its verification, the answers sent back, and
-- the RCV events of each received document.
CREATE TABLE mailboxes (company TEXT PRIMARY KEY REFERENCES companies(rut), imap_url TEXT NOT NULL, username TEXT NOT NULL,
  password TEXT NOT NULL, folder TEXT NOT NULL, poll_seconds INTEGER NOT NULL, smtp_url TEXT, smtp_username TEXT,
  smtp_password TEXT, from_address TEXT NOT NULL, uid_validity INTEGER, last_uid INTEGER NOT NULL DEFAULT 0,
  next_poll_at TEXT NOT NULL, lease_until TEXT, last_poll_at TEXT, last_error TEXT,
  failures INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL);
CREATE TABLE received_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut),
  message_id TEXT NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL, sender TEXT, subject TEXT, raw BLOB NOT NULL,
  outcome TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL, UNIQUE (company, message_id));
CREATE INDEX received_messages_digest ON received_messages(company, digest);
CREATE TABLE received_envelopes (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut),
  message_id INTEGER NOT NULL REFERENCES received_messages(id), filename TEXT NOT NULL, envio_id TEXT NOT NULL,
  cod_envio INTEGER NOT NULL, digest TEXT NOT NULL, rut_emisor TEXT, rut_receptor TEXT, contact TEXT, estado INTEGER NOT NULL, glosa TEXT NOT NULL,
  checks TEXT NOT NULL, xml BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX received_envelopes_digest ON received_envelopes(company, digest);
CREATE TABLE received_documents (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut),
  envelope_id INTEGER NOT NULL REFERENCES received_envelopes(id), rut_emisor TEXT NOT NULL, tipo INTEGER NOT NULL,
  folio INTEGER NOT NULL, fch_emis TEXT NOT NULL, rut_recep TEXT NOT NULL, mnt_total INTEGER NOT NULL,
  rzn_soc TEXT NOT NULL, xml BLOB NOT NULL, estado INTEGER NOT NULL, glosa TEXT NOT NULL, checks TEXT NOT NULL,
  state TEXT NOT NULL, sii_reception TEXT, deadline TEXT, next_rcv_at TEXT, decision TEXT,
  decided_at TEXT, reason TEXT, deadline_notified INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
  UNIQUE (company, rut_emisor, tipo, folio));
CREATE INDEX received_documents_state ON received_documents(state, deadline);
CREATE TABLE received_events (id INTEGER PRIMARY KEY AUTOINCREMENT, document_id INTEGER NOT NULL REFERENCES received_documents(id),
  code TEXT NOT NULL, description TEXT NOT NULL, responsible TEXT, at TEXT NOT NULL, source TEXT NOT NULL,
  UNIQUE (document_id, code, at));
CREATE TABLE exchange_responses (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut),
  kind TEXT NOT NULL, envelope_id INTEGER REFERENCES received_envelopes(id), document_id INTEGER REFERENCES received_documents(id),
  xml BLOB NOT NULL, to_address TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL,
  lease_until TEXT, last_error TEXT, sent_at TEXT, smtp_id TEXT, created_at TEXT NOT NULL);
CREATE INDEX exchange_responses_due ON exchange_responses(state, next_at);
