-- A CAF can be retired by hand (its remaining folios are then to be annulled at the SII).
ALTER TABLE cafs ADD COLUMN retired_at TEXT;
-- The pace of issuance (documents of a company since a date) is read every few seconds.
CREATE INDEX documents_company_created ON documents(company, created_at);
