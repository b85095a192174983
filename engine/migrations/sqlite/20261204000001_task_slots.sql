-- Which scheduled start of each declared task has run, and where: a run claims its start in
-- its own transaction, so instances sharing the database run each start once (a start already
-- claimed is skipped). Each task's run deletes its claims older than two periods (a day for
-- cron schedules), so the table stays at a few rows per task.
CREATE TABLE task_slots (
    task          TEXT   NOT NULL,
    slot_ms       BIGINT NOT NULL,
    instance      TEXT   NOT NULL,
    claimed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (task, slot_ms)
);
