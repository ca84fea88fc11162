-- Read models at a third of their size (issue 11, item 5).
--
-- Per-case states are kept as their JSON compressed with zstd against a dictionary trained
-- on such JSON (`projections/src/compact/`), in `bytea` columns: about 150–250 B where the
-- JSONB took 1.3–1.6 kB. A case's audit trail becomes one row per case (`audit_trails`)
-- whose `entries` grow by a compressed frame per batch, where it was a row of about 830 B
-- per event; the chain is unchanged (the same hashed texts, the same hashes).
--
-- SQL cannot compress against the dictionary, so the stored states cannot be carried over:
-- like V3, this migration empties the cases, audit and indicators projections and moves
-- their checkpoints back to the start of the log; their runners fold the whole log again
-- (`wangge projections status` shows them catching up). Patrols are untouched. Stop
-- instances of the previous release before starting this one: an old runner would write
-- JSON where compressed bytes are now expected.

TRUNCATE cases, sla_board, audit_trail, audit_heads,
         indicator_cases,
         indicator_daily, indicator_durations,
         indicator_daily_by_community, indicator_durations_by_community,
         indicator_daily_by_district, indicator_durations_by_district;

UPDATE projection_checkpoints
   SET position = 0, recorded_at = NULL, updated_at = now()
 WHERE projection IN ('cases', 'audit', 'indicators');

-- Shadow tables and checkpoints of a rebuild that was under way are of the old shape.
DO $$
DECLARE
    shadow text;
BEGIN
    FOR shadow IN SELECT tablename FROM pg_tables
                  WHERE schemaname = current_schema() AND tablename LIKE '%\_rebuild'
    LOOP
        EXECUTE format('DROP TABLE %I', shadow);
    END LOOP;
END
$$;
DELETE FROM projection_checkpoints WHERE projection LIKE '%\_rebuild';

-- cases: the state compressed. The list indexes by status and by category go: each cost
-- more than 100 B per case (every index of `cases` gets a new entry whenever a case's status,
-- holder or clock changes). A list filtered by status or category alone is served by the
-- general list order, newest first, with the filter applied; within a district, community or
-- building by that scope's index.
ALTER TABLE cases ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8');
DROP INDEX cases_status_list;
DROP INDEX cases_category_list;

-- audit: one row per case, its entries as compressed frames appended batch by batch.
DROP TABLE audit_trail;
CREATE TABLE audit_trails (
    case_id uuid PRIMARY KEY,
    -- Frames of `{"s":…,"p":…,"h":…,"seal":…}` + the hashed entry text, two lines an entry.
    entries bytea NOT NULL
);
-- A trail is already compressed: kept in its row (up to a page) rather than moved to TOAST
-- in 2 kB chunks with an index of its own, which cost a quarter more.
ALTER TABLE audit_trails ALTER COLUMN entries SET STORAGE MAIN;
ALTER TABLE audit_heads ALTER COLUMN summary TYPE bytea USING convert_to(summary::text, 'UTF8');

-- indicators: the per-case state compressed.
ALTER TABLE indicator_cases ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8');
