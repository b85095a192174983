-- What each instance's alert receivers were last told (its alert group, as JSON), so a restart
-- neither repeats a notification nor forgets an alert still firing.
CREATE TABLE alert_groups (
    instance      TEXT    PRIMARY KEY,
    state         TEXT    NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Every notification to a receiver and where its delivery is: pending ones are delivered after
-- a restart, delivered ones are never sent again.
CREATE TABLE alert_notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    instance        TEXT    NOT NULL,
    receiver        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    fingerprints    TEXT    NOT NULL,
    alerts          INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at_ms INTEGER
);
CREATE INDEX alert_notifications_pending ON alert_notifications (instance, status);
