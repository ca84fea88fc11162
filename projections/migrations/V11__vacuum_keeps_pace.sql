-- Autovacuum that keeps pace with rows rewritten in place.
--
-- Every batch a case changes in rewrites its rows in the per-case tables (its case row, its
-- whole audit trail, its chain head, its indicator state) and updates the day's and month's
-- counters. The old versions are dead at once; until a VACUUM passes they cannot be
-- reused, so the table grows. PostgreSQL's default waits until a fifth of a table is dead:
-- at a million cases, 200,000 dead rows (for the trails, about 300 MB) before the first
-- pass. Measured at a million cases written faster than autovacuum ran: 8.1 kB per case as
-- filled, 4.8 kB after VACUUM FULL (benches/RESULTS.md, "Indicators by month").
--
-- Here a pass starts once 1 % of a table (at least 1,000 rows) is dead, without the cost
-- delay that would make it lag behind the writers. Rebuilds carry these settings over to
-- the tables they swap in.

ALTER TABLE cases SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sla_board SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE audit_trails SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0,
    toast.autovacuum_vacuum_scale_factor = 0.01, toast.autovacuum_vacuum_cost_delay = 0);
ALTER TABLE audit_heads SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE indicator_cases SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE indicator_daily SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE indicator_durations SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE indicator_daily_by_community SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE indicator_durations_by_community SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
