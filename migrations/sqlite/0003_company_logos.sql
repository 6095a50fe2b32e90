-- The logo printed on a company's documents (PNG or JPEG, checked when uploaded).
CREATE TABLE company_logos (company TEXT PRIMARY KEY REFERENCES companies(rut), media_type TEXT NOT NULL,
  data BLOB NOT NULL, updated_at TEXT NOT NULL);
