-- The web console's sign-in sessions (when no Redis is configured): the SHA-256 of the cookie's
-- token (never the token), the API key it was opened with, its CSRF token, when it was last used
-- (idle expiry) and when it ends whatever happens (absolute expiry).
CREATE TABLE console_sessions (id_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL, key_hash TEXT NOT NULL, csrf TEXT NOT NULL,
  created_at TEXT NOT NULL, last_seen TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE INDEX console_sessions_key ON console_sessions(key_id);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
