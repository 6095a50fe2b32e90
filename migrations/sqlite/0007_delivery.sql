-- Delivering issued documents to their buyers: the SII's list of authorised taxpayers with their
-- exchange address, each company's own addresses for its buyers, the deliveries (one EnvioDTE per
-- buyer and group of documents accepted together), and the events of issued documents (the
-- buyers' answers and the RCV's history).
CREATE TABLE buyer_directory (rut TEXT PRIMARY KEY, rzn_soc TEXT, email TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE buyer_addresses (company TEXT NOT NULL REFERENCES companies(rut), rut TEXT NOT NULL, email TEXT NOT NULL,
  updated_at TEXT NOT NULL, PRIMARY KEY (company, rut));
CREATE TABLE buyer_deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, company TEXT NOT NULL REFERENCES companies(rut), buyer TEXT NOT NULL,
  to_address TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, lease_until TEXT,
  last_error TEXT, smtp_id TEXT, created_at TEXT NOT NULL, sent_at TEXT);
CREATE INDEX buyer_deliveries_due ON buyer_deliveries(state, next_at);
ALTER TABLE documents ADD COLUMN delivery_state TEXT;
ALTER TABLE documents ADD COLUMN delivery_id INTEGER;
ALTER TABLE documents ADD COLUMN buyer_state TEXT;
ALTER TABLE documents ADD COLUMN rcv_next_at TEXT;
CREATE INDEX documents_delivery_due ON documents(delivery_state, company, rut_recep);
CREATE INDEX documents_rcv_due ON documents(rcv_next_at);
CREATE INDEX documents_delivery ON documents(delivery_id);
CREATE TABLE document_events (id INTEGER PRIMARY KEY AUTOINCREMENT, document_id INTEGER NOT NULL REFERENCES documents(id), code TEXT NOT NULL,
  description TEXT NOT NULL, responsible TEXT, at TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (document_id, code, at));
