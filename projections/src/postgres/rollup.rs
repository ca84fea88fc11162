//! The indicators kept at three levels: per cell (the projection's own rows), and again per
//! community and per district, so a query over a whole district or city sums a few rows a
//! day instead of thousands; and each level once more per calendar month, so a range of
//! weeks reads a row a month and a few days instead of a row every day ([`spans`]).
//!
//! The coarser levels and the months are written from the cell level's deltas in the same
//! transaction (one statement per table, the batch's arrays grouped in SQL), and rows whose
//! counters all came to zero are deleted at every level (looked for only when a delta in
//! the batch took something away), so each level holds exactly the sums of the one below
//! and each month the sums of its days. A query reads the coarsest level that still has
//! every column its scope and its grouping name ([`IndicatorLevel::for_query`]).

use chrono::{Datelike, NaiveDate};

use crate::query::{IndicatorGroup, IndicatorQuery};

/// The counters of a day's row, in table order (the order of
/// [`IndicatorCounts::values`](crate::fold::indicators::IndicatorCounts::values)).
pub const COUNTERS: [&str; 11] = [
    "registered",
    "due",
    "closed",
    "closed_on_time",
    "handled",
    "reworked",
    "dispatched",
    "responded_on_time",
    "evaluated",
    "resolved_for_resident",
    "satisfied",
];

/// One level of the indicator tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndicatorLevel {
    Cell,
    Community,
    District,
}

impl IndicatorLevel {
    pub const ALL: [IndicatorLevel; 3] = [
        IndicatorLevel::Cell,
        IndicatorLevel::Community,
        IndicatorLevel::District,
    ];

    /// The levels written from the cell level's deltas.
    pub const ROLLUPS: [IndicatorLevel; 2] = [IndicatorLevel::Community, IndicatorLevel::District];

    /// The coarsest level that can answer `query`: a cell in its scope or grouping needs the
    /// cell level; a community, the community level.
    pub fn for_query(query: &IndicatorQuery, group: IndicatorGroup) -> Self {
        if query.cell.is_some() || group == IndicatorGroup::Cell {
            IndicatorLevel::Cell
        } else if query.community.is_some() || group == IndicatorGroup::Community {
            IndicatorLevel::Community
        } else {
            IndicatorLevel::District
        }
    }

    /// The daily counters' table.
    pub fn daily_table(self) -> &'static str {
        match self {
            IndicatorLevel::Cell => "indicator_daily",
            IndicatorLevel::Community => "indicator_daily_by_community",
            IndicatorLevel::District => "indicator_daily_by_district",
        }
    }

    /// The daily duration histograms' table a query at this level reads. The community
    /// level keeps none of its own (`V12__leaner_read_models`): its months serve ranges, and
    /// the few days around them, or a grouping by day, are summed from the cell level's rows
    /// of the community, as few as the community level's were (a duration row hardly ever
    /// shares its day, category, metric and bucket with another cell's).
    pub fn durations_table(self) -> &'static str {
        match self {
            IndicatorLevel::Cell | IndicatorLevel::Community => "indicator_durations",
            IndicatorLevel::District => "indicator_durations_by_district",
        }
    }

    /// Whether the level keeps daily histograms of its own (written from the cell level's
    /// deltas at the coarser levels).
    pub fn keeps_daily_histograms(self) -> bool {
        self != IndicatorLevel::Community
    }

    /// The monthly counters' table: the daily rows summed by calendar month (at the cell
    /// level without the category: it serves the ranking, which never names one).
    pub fn monthly_table(self) -> &'static str {
        match self {
            IndicatorLevel::Cell => "indicator_monthly_by_cell",
            IndicatorLevel::Community => "indicator_monthly_by_community",
            IndicatorLevel::District => "indicator_monthly_by_district",
        }
    }

    /// The monthly duration histograms' table (none at the cell level).
    pub fn monthly_durations_table(self) -> Option<&'static str> {
        match self {
            IndicatorLevel::Cell => None,
            IndicatorLevel::Community => Some("indicator_durations_monthly_by_community"),
            IndicatorLevel::District => Some("indicator_durations_monthly_by_district"),
        }
    }

    /// The key columns of a monthly row at this level (`month`: the month's first day).
    pub fn monthly_keys(self) -> &'static [&'static str] {
        match self {
            IndicatorLevel::Cell => &["month", "district", "community", "cell"],
            IndicatorLevel::Community => &["month", "district", "community", "category"],
            IndicatorLevel::District => &["month", "district", "category"],
        }
    }

    /// The key columns of a day's row at this level.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            IndicatorLevel::Cell => &["day", "district", "community", "cell", "category"],
            IndicatorLevel::Community => &["day", "district", "community", "category"],
            IndicatorLevel::District => &["day", "district", "category"],
        }
    }
}

/// The batch's daily deltas as UNNEST reads them: the cell level's arrays — day, district,
/// community, cell, category, then the [`COUNTERS`] — as `$1…`, named by their columns.
pub fn daily_deltas() -> String {
    let counters = (0..COUNTERS.len())
        .map(|n| format!("${}::bigint[]", n + 6))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], {counters}) \
         AS u(day, district, community, cell, category, {})",
        COUNTERS.join(", ")
    )
}

/// Adds the batch's daily deltas ([`daily_deltas`]) to `table` at `level`: the cell level
/// row by row, the coarser levels summed by their keys.
pub fn upsert_daily(level: IndicatorLevel, table: &str) -> String {
    upsert_counters(table, level.keys())
}

/// Adds the batch's daily deltas to the monthly `table` at `level`, summed by month.
pub fn upsert_monthly(level: IndicatorLevel, table: &str) -> String {
    upsert_counters(table, level.monthly_keys())
}

/// Deletes the rows of `table` at `level` that the batch's keys (the cell level's five key
/// arrays) touched and whose counters are all zero.
pub fn delete_empty_daily(level: IndicatorLevel, table: &str) -> String {
    delete_empty_counters(table, level.keys())
}

/// The same for the monthly `table` at `level`.
pub fn delete_empty_monthly(level: IndicatorLevel, table: &str) -> String {
    delete_empty_counters(table, level.monthly_keys())
}

/// Adds the batch's duration deltas (the cell level's 8 arrays: the five keys, metric,
/// bucket, count) to `table` at `level`.
pub fn upsert_durations(level: IndicatorLevel, table: &str) -> String {
    upsert_histogram(table, level.keys())
}

/// The same for the monthly histograms `table` at `level`.
pub fn upsert_monthly_durations(level: IndicatorLevel, table: &str) -> String {
    upsert_histogram(table, level.monthly_keys())
}

/// Deletes the histogram rows of `table` at `level` the batch touched whose count is zero.
pub fn delete_empty_durations(level: IndicatorLevel, table: &str) -> String {
    delete_empty_histogram(table, level.keys())
}

/// The same for the monthly histograms `table` at `level`.
pub fn delete_empty_monthly_durations(level: IndicatorLevel, table: &str) -> String {
    delete_empty_histogram(table, level.monthly_keys())
}

/// How a key column of a table is computed from the cell level's delta columns: `month`
/// is the first day of the delta's day's month, the others are taken as they are.
fn source(column: &str) -> String {
    if column == "month" {
        "date_trunc('month', day)::date AS month".to_owned()
    } else {
        column.to_owned()
    }
}

fn sources(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| source(k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Positions `1..=n` for a GROUP BY of the first `n` selected columns.
fn positions(n: usize) -> String {
    (1..=n)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn upsert_counters(table: &str, keys: &[&str]) -> String {
    let sums = COUNTERS
        .iter()
        .map(|c| format!("sum({c})::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let added = COUNTERS
        .iter()
        .map(|c| format!("{c} = d.{c} + EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} AS d ({columns}, {counters}) \
         SELECT {sources}, {sums} FROM {deltas} \
         GROUP BY {grouped} \
         ON CONFLICT ({columns}) DO UPDATE SET {added}",
        columns = keys.join(", "),
        sources = sources(keys),
        grouped = positions(keys.len()),
        counters = COUNTERS.join(", "),
        deltas = daily_deltas(),
    )
}

fn delete_empty_counters(table: &str, keys: &[&str]) -> String {
    let zero = COUNTERS
        .iter()
        .map(|c| format!("d.{c} = 0"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "DELETE FROM {table} d USING (SELECT DISTINCT {sources} FROM UNNEST($1::date[], \
         $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS u(day, district, community, cell, category)) k WHERE {matched} AND {zero}",
        sources = sources(keys),
        matched = matched(keys),
    )
}

fn upsert_histogram(table: &str, keys: &[&str]) -> String {
    let n = keys.len();
    format!(
        "INSERT INTO {table} AS d ({columns}, metric, bucket, count) \
         SELECT {sources}, metric, bucket, sum(count)::bigint FROM UNNEST($1::date[], $2::text[], \
         $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::bigint[]) \
         AS u(day, district, community, cell, category, metric, bucket, count) \
         GROUP BY {grouped} \
         ON CONFLICT ({columns}, metric, bucket) DO UPDATE SET count = d.count + EXCLUDED.count",
        columns = keys.join(", "),
        sources = sources(keys),
        grouped = positions(n + 2),
    )
}

fn delete_empty_histogram(table: &str, keys: &[&str]) -> String {
    let mut keys = keys.to_vec();
    keys.extend(["metric", "bucket"]);
    format!(
        "DELETE FROM {table} d USING (SELECT DISTINCT {sources} FROM UNNEST($1::date[], \
         $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[]) \
         AS u(day, district, community, cell, category, metric, bucket)) k \
         WHERE {matched} AND d.count = 0",
        sources = sources(&keys),
        matched = matched(&keys),
    )
}

fn matched(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("d.{k} = k.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A run of days read from one kind of row, added or taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The daily rows of `from..=to`, added (`sign` 1) or taken away (−1).
    Days {
        from: NaiveDate,
        to: NaiveDate,
        sign: i64,
    },
    /// The monthly row of the month starting on `month` (always added).
    Month { month: NaiveDate },
}

/// How a day range is read with as few rows as the monthly tables allow: each calendar
/// month it touches is either its days in the range, or the whole month's row minus the
/// month's days outside the range, whichever reads fewer rows. Days after `today` hold no
/// rows (nothing is counted on a day that has not come), so taking them away costs
/// nothing and a month running to today is read whole; `today` only steers the choice,
/// the sums are the same either way (the monthly rows hold exactly the sums of the daily
/// ones).
pub fn spans(from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut month = first_of_month(from);
    while month <= to {
        let next = next_month(month);
        let last = next.pred_opt().unwrap_or(next);
        let (inside_from, inside_to) = (from.max(month), to.min(last));
        let inside = days(inside_from, inside_to);
        let before =
            (month < inside_from).then(|| (month, inside_from.pred_opt().unwrap_or(month)));
        let after = (inside_to < last).then(|| (inside_to.succ_opt().unwrap_or(last), last));
        // Days still to come have no rows to read.
        let cost = |run: Option<(NaiveDate, NaiveDate)>| match run {
            Some((a, b)) if a <= today => days(a, b.min(today)),
            _ => 0,
        };
        if cost(before) + cost(after) < inside {
            spans.push(Span::Month { month });
            // Taken away whole, to be right even if a row were dated after today: a run
            // without rows costs one index probe.
            for (a, b) in [before, after].into_iter().flatten() {
                spans.push(Span::Days {
                    from: a,
                    to: b,
                    sign: -1,
                });
            }
        } else {
            spans.push(Span::Days {
                from: inside_from,
                to: inside_to,
                sign: 1,
            });
        }
        month = next;
    }
    spans
}

/// The first day of `day`'s month.
pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn next_month(first: NaiveDate) -> NaiveDate {
    first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

fn days(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    /// The days a set of spans counts, each with how many times (months spelled out).
    fn counted(spans: &[Span]) -> BTreeMap<NaiveDate, i64> {
        let mut counted = BTreeMap::new();
        let mut add = |from: NaiveDate, to: NaiveDate, sign: i64| {
            for d in from.iter_days().take_while(|d| *d <= to) {
                *counted.entry(d).or_insert(0) += sign;
            }
        };
        for span in spans {
            match *span {
                Span::Days { from, to, sign } => add(from, to, sign),
                Span::Month { month } => add(month, next_month(month).pred_opt().unwrap(), 1),
            }
        }
        counted.retain(|_, n| *n != 0);
        counted
    }

    #[test]
    fn thirty_days_to_today_read_this_month_whole_and_last_month_by_what_is_cheaper() {
        let today = day(2026, 12, 4);
        let spans = spans(day(2026, 11, 5), today, today);
        assert_eq!(
            spans,
            vec![
                Span::Month {
                    month: day(2026, 11, 1)
                },
                Span::Days {
                    from: day(2026, 11, 1),
                    to: day(2026, 11, 4),
                    sign: -1
                },
                Span::Month {
                    month: day(2026, 12, 1)
                },
                // Nothing is read for the days to come, but they are taken away all the same.
                Span::Days {
                    from: day(2026, 12, 5),
                    to: day(2026, 12, 31),
                    sign: -1
                },
            ]
        );
    }

    #[test]
    fn a_few_days_inside_one_month_are_read_day_by_day() {
        let today = day(2026, 12, 20);
        assert_eq!(
            spans(day(2026, 12, 3), day(2026, 12, 9), today),
            vec![Span::Days {
                from: day(2026, 12, 3),
                to: day(2026, 12, 9),
                sign: 1
            }]
        );
    }

    proptest::proptest! {
        /// Whatever the range and the day it is, the spans count every day of the range
        /// once and no other day.
        #[test]
        fn spans_count_exactly_the_days_of_the_range(
            start in 0i64..800, length in 0i64..400, today_offset in -100i64..500,
        ) {
            let base = day(2025, 1, 1);
            let from = base + chrono::Duration::days(start);
            let to = from + chrono::Duration::days(length);
            let today = from + chrono::Duration::days(today_offset);
            let counted = counted(&spans(from, to, today));
            let wanted: BTreeMap<NaiveDate, i64> = from
                .iter_days()
                .take_while(|d| *d <= to)
                .map(|d| (d, 1))
                .collect();
            proptest::prop_assert_eq!(counted, wanted);
        }
    }

    fn query() -> IndicatorQuery {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
        IndicatorQuery {
            from: day,
            to: day,
            district: None,
            community: None,
            cell: None,
            category: None,
            group: None,
        }
    }

    #[test]
    fn a_city_or_district_wide_question_reads_the_district_level() {
        let mut q = query();
        assert_eq!(
            IndicatorLevel::for_query(&q, IndicatorGroup::Day),
            IndicatorLevel::District
        );
        q.district = Some("d1".into());
        q.category = Some("drainage.blocked".into());
        for group in [
            IndicatorGroup::Total,
            IndicatorGroup::Day,
            IndicatorGroup::District,
            IndicatorGroup::Category,
        ] {
            assert_eq!(
                IndicatorLevel::for_query(&q, group),
                IndicatorLevel::District
            );
        }
    }

    #[test]
    fn naming_a_community_needs_the_community_level_and_a_cell_the_cell_level() {
        let mut q = query();
        assert_eq!(
            IndicatorLevel::for_query(&q, IndicatorGroup::Community),
            IndicatorLevel::Community
        );
        q.community = Some("c1".into());
        assert_eq!(
            IndicatorLevel::for_query(&q, IndicatorGroup::Total),
            IndicatorLevel::Community
        );
        assert_eq!(
            IndicatorLevel::for_query(&q, IndicatorGroup::Cell),
            IndicatorLevel::Cell
        );
        q.cell = Some("b1".into());
        assert_eq!(
            IndicatorLevel::for_query(&q, IndicatorGroup::Total),
            IndicatorLevel::Cell
        );
    }
}
