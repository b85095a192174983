-- Identical refusals (same role, client address and action within a minute) are one row with a
-- count, so a flood of refused requests cannot bury operator actions in the log.
ALTER TABLE audit_log ADD COLUMN repeat_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at_ms INTEGER;
