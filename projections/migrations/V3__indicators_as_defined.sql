-- Indicators as defined: 结案率 and 按期结案率 divide by the rounds of handling that fell due
-- (应结案: at their closing, or at the breach of their resolve or verify step when that came
-- first), counted on the day they fell due and charged to the cell that held the case then.
-- A case now adds to two keys: its report key (report day, reported building cell) and the
-- due key of each due round (due day, holding cell of any tier; community '' for a case
-- held by the district).
--
-- The counters already stored were computed under the old definitions (every registered
-- case in its report day and building cell) and the stored per-case states have another
-- shape, so they cannot be carried over: this migration empties the indicators projection
-- and moves its checkpoint back to the start of the log. The indicators runner then folds
-- the whole log again under the new definitions (`wangge projections status` shows it
-- catching up); nothing else is needed. Stop instances of the previous release before
-- starting this one: an old runner would fill the emptied tables with the old definitions.

TRUNCATE indicator_cases,
         indicator_daily, indicator_durations,
         indicator_daily_by_community, indicator_durations_by_community,
         indicator_daily_by_district, indicator_durations_by_district;

UPDATE projection_checkpoints
   SET position = 0, recorded_at = NULL, updated_at = now()
 WHERE projection = 'indicators';

-- 应结案: rounds that fell due on the day, charged to the row's cell.
ALTER TABLE indicator_daily ADD COLUMN due bigint NOT NULL;
ALTER TABLE indicator_daily_by_community ADD COLUMN due bigint NOT NULL;
ALTER TABLE indicator_daily_by_district ADD COLUMN due bigint NOT NULL;

-- The red-and-black board ranks cells by the due-day counters: still an index-only scan.
DROP INDEX indicator_daily_ranking;
CREATE INDEX indicator_daily_ranking ON indicator_daily (day, cell)
    INCLUDE (district, community, due, closed, closed_on_time);
