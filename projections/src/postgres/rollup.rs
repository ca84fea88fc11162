//! The indicators kept at three levels: per cell (the projection's own rows), and again per
//! community and per district, so a query over a whole district or city sums a few rows a
//! day instead of thousands.
//!
//! The coarser levels are written from the cell level's deltas in the same transaction (one
//! statement per table, the batch's arrays grouped in SQL), and rows whose counters all came
//! to zero are deleted at every level (looked for only when a delta in the batch took
//! something away), so each level holds exactly the sums of the one below. A query reads the coarsest level that still has every column its scope and its
//! grouping name ([`IndicatorLevel::for_query`]).

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

    /// The duration histograms' table.
    pub fn durations_table(self) -> &'static str {
        match self {
            IndicatorLevel::Cell => "indicator_durations",
            IndicatorLevel::Community => "indicator_durations_by_community",
            IndicatorLevel::District => "indicator_durations_by_district",
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
    let keys = level.keys().join(", ");
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
        "INSERT INTO {table} AS d ({keys}, {counters}) \
         SELECT {keys}, {sums} FROM {deltas} \
         GROUP BY {keys} \
         ON CONFLICT ({keys}) DO UPDATE SET {added}",
        counters = COUNTERS.join(", "),
        deltas = daily_deltas(),
    )
}

/// Deletes the rows of `table` at `level` that the batch's keys (the cell level's five key
/// arrays) touched and whose counters are all zero.
pub fn delete_empty_daily(level: IndicatorLevel, table: &str) -> String {
    let keys = level.keys();
    let zero = COUNTERS
        .iter()
        .map(|c| format!("d.{c} = 0"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "DELETE FROM {table} d USING (SELECT DISTINCT {list} FROM UNNEST($1::date[], \
         $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS u(day, district, community, cell, category)) k WHERE {matched} AND {zero}",
        list = keys.join(", "),
        matched = matched(keys),
    )
}

/// Adds the batch's duration deltas (the cell level's 8 arrays: the five keys, metric,
/// bucket, count) to `table` at `level`.
pub fn upsert_durations(level: IndicatorLevel, table: &str) -> String {
    let keys = level.keys().join(", ");
    format!(
        "INSERT INTO {table} AS d ({keys}, metric, bucket, count) \
         SELECT {keys}, metric, bucket, sum(count)::bigint FROM UNNEST($1::date[], $2::text[], \
         $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::bigint[]) \
         AS u(day, district, community, cell, category, metric, bucket, count) \
         GROUP BY {keys}, metric, bucket \
         ON CONFLICT ({keys}, metric, bucket) DO UPDATE SET count = d.count + EXCLUDED.count"
    )
}

/// Deletes the histogram rows of `table` at `level` the batch touched whose count is zero.
pub fn delete_empty_durations(level: IndicatorLevel, table: &str) -> String {
    let mut keys = level.keys().to_vec();
    keys.extend(["metric", "bucket"]);
    format!(
        "DELETE FROM {table} d USING (SELECT DISTINCT {list} FROM UNNEST($1::date[], \
         $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[]) \
         AS u(day, district, community, cell, category, metric, bucket)) k \
         WHERE {matched} AND d.count = 0",
        list = keys.join(", "),
        matched = matched(&keys),
    )
}

fn matched(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("d.{k} = k.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

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
