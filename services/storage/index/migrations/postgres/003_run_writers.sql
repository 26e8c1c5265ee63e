-- Which open index (run_index_sessions.id) wrote a run last, and which began a write: the instances still
-- running find what one that stopped left running or half-written, and never touch what a live one works on.
-- NULL: written by a catch-up or before this migration (no instance claims it).
ALTER TABLE runs ADD COLUMN session bigint;
ALTER TABLE run_journal ADD COLUMN session bigint;
CREATE INDEX runs_running ON runs (seq) WHERE status = 'running';
