-- The run index (see services/storage/index/postgres.ts). Derived data: the store is the truth.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- built / build_reason / build_below: how far the build from the store got; full_scan: some change was missed.
CREATE TABLE run_index_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO run_index_meta (key, value) VALUES ('built', '0'), ('build_reason', 'missing');

-- seq is the sort key (the timestamp's milliseconds × 1024 + a tiebreak): keyset paging walks it.
-- entry is the listing's JSON as given out (it keeps NULs and lone surrogates, which text columns cannot);
-- the other columns are what filters compare, with NUL written as U+FDD0 (postgres-listing.ts pgText).
-- The *_search columns are the texts folded (NFC, lower case) for substring search through trigrams.
CREATE TABLE runs (
  seq bigint PRIMARY KEY,
  run_id text NOT NULL UNIQUE,
  updated_at text NOT NULL,
  status text NOT NULL,
  schema text NOT NULL,
  user_id text,
  archived boolean NOT NULL,
  archive text,
  facets text[] NOT NULL,
  input_search text NOT NULL,
  transformed_search text NOT NULL,
  entry text NOT NULL
);
CREATE INDEX runs_by_user ON runs (user_id, seq);
CREATE INDEX runs_by_schema ON runs (schema, seq);
CREATE INDEX runs_by_status ON runs (status, seq);
CREATE INDEX runs_by_facet ON runs USING gin (facets);
CREATE INDEX runs_input_trgm ON runs USING gin (input_search gin_trgm_ops);
CREATE INDEX runs_transformed_trgm ON runs USING gin (transformed_search gin_trgm_ops);

-- Runs whose write has begun: read again at the next start.
CREATE TABLE run_journal (run_id text PRIMARY KEY);

-- Kept by a trigger, so that totals and /metrics never count a million rows.
CREATE TABLE run_counts (status text NOT NULL, archived boolean NOT NULL, runs bigint NOT NULL, PRIMARY KEY (status, archived));
CREATE FUNCTION run_counts_track () RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE run_counts SET runs = runs - 1 WHERE status = OLD.status AND archived = OLD.archived;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO run_counts (status, archived, runs) VALUES (NEW.status, NEW.archived, 1)
      ON CONFLICT (status, archived) DO UPDATE SET runs = run_counts.runs + 1;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER runs_counted AFTER INSERT OR DELETE OR UPDATE OF status, archived ON runs
  FOR EACH ROW EXECUTE FUNCTION run_counts_track();

-- One row per open index (per instance), its id held as an advisory lock while open:
-- a row whose lock is free belongs to a process that stopped without closing.
CREATE TABLE run_index_sessions (id bigserial PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now());
