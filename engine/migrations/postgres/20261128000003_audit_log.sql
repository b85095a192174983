-- Every control action an operator or script took, kept across restarts.
CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    role      TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    arguments TEXT   NOT NULL,
    outcome   TEXT   NOT NULL,
    result    TEXT   NOT NULL,
    client    TEXT   NOT NULL
);
