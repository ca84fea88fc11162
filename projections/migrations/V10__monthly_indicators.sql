-- Indicators per calendar month beside the daily ones, so a range of weeks reads one row a
-- month plus a few days instead of a row every day (measured at a million cases: the
-- 30-day ranking read 78,653 daily rows, a district's 30 days of histograms by community
-- 32,187).
--
-- A month's row holds exactly the sums of its days' rows at the same level: the
-- indicators runner writes both from the same deltas in the transaction that moves its
-- checkpoint, and deletes a monthly row whose counters all came to zero as it does a
-- daily one. `month` is the first day of the month. The cell level's months leave the
-- category out: they serve the red-and-black ranking, which sums every category.
--
-- Existing daily rows are summed into the new tables below; the checkpoint stays.

CREATE TABLE indicator_monthly_by_cell (
    month                 date NOT NULL,
    district              text COLLATE "C" NOT NULL,
    community             text COLLATE "C" NOT NULL,
    cell                  text COLLATE "C" NOT NULL,
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
    due                   bigint NOT NULL,
    PRIMARY KEY (month, district, community, cell)
);

CREATE TABLE indicator_monthly_by_community (
    month                 date NOT NULL,
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
    due                   bigint NOT NULL,
    PRIMARY KEY (month, district, community, category)
);

CREATE TABLE indicator_durations_monthly_by_community (
    month     date NOT NULL,
    district  text COLLATE "C" NOT NULL,
    community text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    smallint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (month, district, community, category, metric, bucket)
);

CREATE TABLE indicator_monthly_by_district (
    month                 date NOT NULL,
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
    due                   bigint NOT NULL,
    PRIMARY KEY (month, district, category)
);

CREATE TABLE indicator_durations_monthly_by_district (
    month     date NOT NULL,
    district  text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    smallint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (month, district, category, metric, bucket)
);

INSERT INTO indicator_monthly_by_cell
SELECT date_trunc('month', day)::date, district, community, cell,
       sum(registered), sum(closed), sum(closed_on_time), sum(handled), sum(reworked),
       sum(dispatched), sum(responded_on_time), sum(evaluated), sum(resolved_for_resident),
       sum(satisfied), sum(due)
  FROM indicator_daily GROUP BY 1, 2, 3, 4;

INSERT INTO indicator_monthly_by_community
SELECT date_trunc('month', day)::date, district, community, category,
       sum(registered), sum(closed), sum(closed_on_time), sum(handled), sum(reworked),
       sum(dispatched), sum(responded_on_time), sum(evaluated), sum(resolved_for_resident),
       sum(satisfied), sum(due)
  FROM indicator_daily_by_community GROUP BY 1, 2, 3, 4;

INSERT INTO indicator_durations_monthly_by_community
SELECT date_trunc('month', day)::date, district, community, category, metric, bucket, sum(count)
  FROM indicator_durations_by_community GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO indicator_monthly_by_district
SELECT date_trunc('month', day)::date, district, category,
       sum(registered), sum(closed), sum(closed_on_time), sum(handled), sum(reworked),
       sum(dispatched), sum(responded_on_time), sum(evaluated), sum(resolved_for_resident),
       sum(satisfied), sum(due)
  FROM indicator_daily_by_district GROUP BY 1, 2, 3;

INSERT INTO indicator_durations_monthly_by_district
SELECT date_trunc('month', day)::date, district, category, metric, bucket, sum(count)
  FROM indicator_durations_by_district GROUP BY 1, 2, 3, 4, 5;
