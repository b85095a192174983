-- Every finished run of every instance, kept for HISTORY_RETENTION: what the runs view
-- searches, and what a restart or a deploy no longer wipes. Keyed by instance, so instances
-- sharing the database never write over each other's runs. `record` is the whole run as
-- JSON: each attempt, its error and delay, the leases and backends it held.
CREATE TABLE run_history (
    instance        TEXT             NOT NULL,
    run_id          INTEGER          NOT NULL,
    host            TEXT             NOT NULL,
    task            TEXT             NOT NULL,
    trigger         TEXT             NOT NULL,
    scheduled_at_ms INTEGER,
    started_at_ms   INTEGER          NOT NULL,
    ended_at_ms     INTEGER          NOT NULL,
    duration_ms     INTEGER          NOT NULL,
    outcome         TEXT             NOT NULL,
    failure         TEXT,
    detail          TEXT             NOT NULL,
    rows_changed    INTEGER          NOT NULL,
    attempts        INTEGER          NOT NULL,
    leases          INTEGER          NOT NULL,
    record          TEXT             NOT NULL,
    PRIMARY KEY (instance, run_id)
);
-- Newest first, and the keyset cursor (started, instance, run) of the runs view.
CREATE INDEX run_history_started ON run_history (started_at_ms, instance, run_id);
CREATE INDEX run_history_task ON run_history (task, started_at_ms);

-- The pool and the server every few seconds per instance (span_secs 5), replaced by one
-- sample per minute (span_secs 60) once a day old: the charts' ranges beyond the hour kept
-- in memory.
CREATE TABLE pool_samples (
    instance        TEXT             NOT NULL,
    at_ms           INTEGER          NOT NULL,
    span_secs       INTEGER          NOT NULL,
    active          INTEGER          NOT NULL,
    idle            INTEGER          NOT NULL,
    waiting         INTEGER          NOT NULL,
    leases          INTEGER          NOT NULL,
    stale           INTEGER          NOT NULL,
    p95_ms          REAL,
    lease_limit     INTEGER          NOT NULL,
    budget          INTEGER,
    server_clients  INTEGER,
    server_usable   INTEGER,
    PRIMARY KEY (instance, at_ms)
);
CREATE INDEX pool_samples_at ON pool_samples (at_ms);
