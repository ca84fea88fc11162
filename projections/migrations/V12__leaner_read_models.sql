-- What the read models no longer need, measured at a million cases (benches/RESULTS.md,
-- "Indicators by month"): 5.5 kB per case with autovacuum at pace, against a target of 5.
--
-- * indicator_durations_by_community (374 B per case): since V10 a range of days reads a
--   community's months, and the few days around them (or a grouping by day) are summed from
--   the cell level's rows of the community; at the community level those rows hardly ever
--   merge (a duration row's day, category, metric and bucket are nearly its own).
-- * cases_district_list (131 B): no query plan chose it — a district holds a quarter of
--   the city's cases, so the newest-first list finds a page of them by walking cases_list.
-- * indicator_daily_ranking (195 B): the ranking reads the cell level's months (V10); the
--   days around them come from the primary key, which starts with the day.

-- Stop instances of the previous release before starting this one: their indicators runner
-- writes the dropped table, so its next batch would fail (and be retried until stopped).

DROP TABLE indicator_durations_by_community;
DROP TABLE IF EXISTS indicator_durations_by_community_rebuild;
DROP INDEX cases_district_list;
DROP INDEX indicator_daily_ranking;
