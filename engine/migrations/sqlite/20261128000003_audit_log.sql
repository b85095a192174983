-- Every control action an operator or script took, kept across restarts.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    role      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    arguments TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    result    TEXT    NOT NULL,
    client    TEXT    NOT NULL
);
