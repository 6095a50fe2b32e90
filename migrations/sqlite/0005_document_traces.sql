-- The W3C trace context a document was issued in: the instance that uploads it continues its trace.
ALTER TABLE documents ADD COLUMN trace TEXT;
