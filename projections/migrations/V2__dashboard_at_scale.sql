-- The dashboard at a million cases: indexes for the queries it makes, and the indicators
-- kept again at two coarser levels.
--
-- A query without a cell in it (its scope and its grouping) reads the community level; one
-- without a community either reads the district level: the same sums from up to a hundred
-- times fewer rows. The indicators runner writes every level in the transaction that moves
-- its checkpoint, from the same deltas (so they always agree), and deletes a row whose
-- counters are all zero at each level, as at the cell level.

-- cases: a building's cases (the dashboard's drill-down) and a community's open ones.
CREATE INDEX cases_building_list ON cases (building, list_at DESC, case_id DESC);
CREATE INDEX cases_community_open_list ON cases (community, list_at DESC, case_id DESC) WHERE open;

-- The red-and-black board ranks cells over a range of days: an index-only scan of the range.
CREATE INDEX indicator_daily_ranking ON indicator_daily (day, cell)
    INCLUDE (district, community, registered, closed_on_time);

-- indicators per day, community and category
CREATE TABLE indicator_daily_by_community (
    day                   date NOT NULL,
    district              text COLLATE "C" NOT NULL,
    community             text COLLATE "C" NOT NULL,
    category              text COLLATE "C" NOT NULL,
    registered            bigint NOT NULL,
    closed                bigint NOT NULL,
    closed_on_time        bigint NOT NULL,
    handled               bigint NOT NULL,
    reworked              bigint NOT NULL,
    dispatched            bigint NOT NULL,
    responded_on_time     bigint NOT NULL,
    evaluated             bigint NOT NULL,
    resolved_for_resident bigint NOT NULL,
    satisfied             bigint NOT NULL,
    PRIMARY KEY (day, district, community, category)
);

CREATE TABLE indicator_durations_by_community (
    day       date NOT NULL,
    district  text COLLATE "C" NOT NULL,
    community text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    smallint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (day, district, community, category, metric, bucket)
);

-- indicators per day, district and category
CREATE TABLE indicator_daily_by_district (
    day                   date NOT NULL,
    district              text COLLATE "C" NOT NULL,
    category              text COLLATE "C" NOT NULL,
    registered            bigint NOT NULL,
    closed                bigint NOT NULL,
    closed_on_time        bigint NOT NULL,
    handled               bigint NOT NULL,
    reworked              bigint NOT NULL,
    dispatched            bigint NOT NULL,
    responded_on_time     bigint NOT NULL,
    evaluated             bigint NOT NULL,
    resolved_for_resident bigint NOT NULL,
    satisfied             bigint NOT NULL,
    PRIMARY KEY (day, district, category)
);

CREATE TABLE indicator_durations_by_district (
    day       date NOT NULL,
    district  text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    smallint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (day, district, category, metric, bucket)
);

-- Read models that existed before this migration get their coarser levels from the cell level.
INSERT INTO indicator_daily_by_community (day, district, community, category, registered, closed, closed_on_time, handled, reworked, dispatched, responded_on_time, evaluated, resolved_for_resident, satisfied)
SELECT day, district, community, category, sum(registered), sum(closed), sum(closed_on_time), sum(handled), sum(reworked), sum(dispatched), sum(responded_on_time), sum(evaluated), sum(resolved_for_resident), sum(satisfied)
FROM indicator_daily GROUP BY day, district, community, category;

INSERT INTO indicator_durations_by_community (day, district, community, category, metric, bucket, count)
SELECT day, district, community, category, metric, bucket, sum(count) FROM indicator_durations GROUP BY day, district, community, category, metric, bucket;

INSERT INTO indicator_daily_by_district (day, district, category, registered, closed, closed_on_time, handled, reworked, dispatched, responded_on_time, evaluated, resolved_for_resident, satisfied)
SELECT day, district, category, sum(registered), sum(closed), sum(closed_on_time), sum(handled), sum(reworked), sum(dispatched), sum(responded_on_time), sum(evaluated), sum(resolved_for_resident), sum(satisfied)
FROM indicator_daily GROUP BY day, district, category;

INSERT INTO indicator_durations_by_district (day, district, category, metric, bucket, count)
SELECT day, district, category, metric, bucket, sum(count) FROM indicator_durations GROUP BY day, district, category, metric, bucket;
