-- The random secret that browser-session keys are derived from (one row). Kept here so
-- sessions survive a restart.
CREATE TABLE session_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT    NOT NULL
);

-- Sessions ended by logout before their expiry; a row goes once its session would have expired.
CREATE TABLE revoked_sessions (
    id            TEXT    PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX revoked_sessions_expiry ON revoked_sessions (expires_at_ms);
