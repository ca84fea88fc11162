//! The [`ReadModels`] queries over the PostgreSQL tables. SQL selects and sums; what a sum
//! means, names, grouping keys and the order of every list come from [`crate::answer`],
//! exactly as for the memory store.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wangge_schemas::{CaseId, Tier};

use super::rollup::{self, IndicatorLevel, Span, COUNTERS};
use super::store::{position_of, tier_name};
use super::PostgresReadModels;
use crate::answer;
use crate::compact;
use crate::fold::audit::{AuditHead, AuditRecord};
use crate::fold::cases::{CaseRow, LightCounts};
use crate::fold::indicators::{DurationMetric, IndicatorCounts};
use crate::fold::summary::name_of;
use crate::query::*;

/// A statement with its parameters, built up filter by filter.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Binds a value and returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Appends ` AND column = $n` when `value` is given.
    fn and_eq(&mut self, column: &str, value: Option<impl ToSql + Sync + Send + 'static>) {
        if let Some(value) = value {
            let placeholder = self.bind(value);
            self.text
                .push_str(&format!(" AND {column} = {placeholder}"));
        }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn unavailable(error: tokio_postgres::Error) -> ReadError {
    ReadError::Unavailable(super::pool::describe(&error))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ReadError {
    ReadError::Unavailable(format!("a stored {what} is unreadable: {error}"))
}

/// The smallest whole microsecond at or after `at`: a bound the tables' microsecond values
/// compare with exactly as with `at` itself.
fn ceil_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = crate::fold::cases::to_micros(at);
    if floor < at {
        floor + chrono::Duration::microseconds(1)
    } else {
        floor
    }
}

/// Rows of the indicator tables whose cell is of `tier`: the rule of
/// [`IndicatorKey::tier`](crate::fold::indicators::IndicatorKey::tier) in SQL.
fn tier_condition(tier: Tier) -> &'static str {
    match tier {
        Tier::District => "community = ''",
        Tier::Community => "community <> '' AND cell = community",
        Tier::Building => "community <> '' AND cell <> community",
    }
}

/// The latest day any row of the indicator tables can be counted on: today wherever a
/// calendar can be (UTC+14). It only steers which rows a range is read from.
fn latest_possible_day() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(14)).date_naive()
}

/// The filters of an indicator query: columns that must be equal, and a condition of its
/// own.
struct Scope<'a> {
    district: &'a Option<String>,
    community: &'a Option<String>,
    cell: &'a Option<String>,
    category: &'a Option<String>,
    condition: Option<&'static str>,
}

/// Appends the rows of `spans` as one `UNION ALL`: each span's rows, from the daily or the
/// monthly table of `(daily, monthly)`, filtered by `scope`, each selecting `select` and
/// its span's sign as `s`. Summing `s * column` over them gives the range's sums.
fn union_of_spans(
    sql: &mut Sql,
    spans: &[Span],
    (daily, monthly): (&str, &str),
    select: &str,
    scope: &Scope<'_>,
) {
    for (n, span) in spans.iter().enumerate() {
        if n > 0 {
            sql.push(" UNION ALL ");
        }
        match *span {
            Span::Days { from, to, sign } => {
                sql.push(&format!(
                    "SELECT {select}, {sign}::bigint AS s FROM {daily}"
                ));
                let from = sql.bind(from);
                let to = sql.bind(to);
                sql.push(&format!(" WHERE day >= {from} AND day <= {to}"));
            }
            Span::Month { month } => {
                sql.push(&format!("SELECT {select}, 1::bigint AS s FROM {monthly}"));
                let month = sql.bind(month);
                sql.push(&format!(" WHERE month = {month}"));
            }
        }
        sql.and_eq("district", scope.district.clone());
        sql.and_eq("community", scope.community.clone());
        sql.and_eq("cell", scope.cell.clone());
        sql.and_eq("category", scope.category.clone());
        if let Some(condition) = scope.condition {
            sql.push(&format!(" AND {condition}"));
        }
    }
}

fn parse_tier(name: &str) -> Result<Tier, ReadError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| corrupt("tier", e))
}

fn view_of(stored: &[u8]) -> Result<CaseView, ReadError> {
    let row: CaseRow = compact::decode_json(stored).map_err(|e| corrupt("case", e))?;
    Ok(CaseView {
        summary: row.summary,
        sla: row.sla,
    })
}

impl PostgresReadModels {
    async fn rows(&self, sql: &Sql) -> Result<Vec<tokio_postgres::Row>, ReadError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&sql.text)
            .await
            .map_err(unavailable)?;
        client
            .query(&statement, &sql.params())
            .await
            .map_err(unavailable)
    }

    /// Case views from a statement selecting the compressed `state` first.
    async fn views(&self, sql: &Sql) -> Result<Vec<CaseView>, ReadError> {
        self.rows(sql)
            .await?
            .iter()
            .map(|row| view_of(row.get(0)))
            .collect()
    }
}

#[async_trait::async_trait]
impl ReadModels for PostgresReadModels {
    async fn cases(&self, query: &CaseQuery) -> Result<Page<CaseView>, ReadError> {
        let filter = query.validate()?;
        let q = &filter.query;
        let mut sql = Sql::new("SELECT state FROM cases WHERE true");
        sql.and_eq("district", q.district.clone());
        sql.and_eq("community", q.community.clone());
        sql.and_eq("building", q.building.clone());
        sql.and_eq("cell", q.cell.clone());
        sql.and_eq("tier", q.tier.map(tier_name));
        sql.and_eq("status", q.status.map(|s| s.as_str()));
        sql.and_eq("open", q.open);
        sql.and_eq("category", q.category.clone());
        sql.and_eq("intake", q.intake.map(|i| name_of(&i)));
        sql.and_eq("assignee", q.assignee.clone());
        sql.and_eq("provisional", q.provisional);
        sql.and_eq("supervised", q.supervised);
        if let Some(from) = q.reported_from {
            // list_at is reported_at where there is one, so the same bound on it adds
            // nothing to the answer but lets the list indexes stop at the range's end.
            let from = sql.bind(ceil_micros(from));
            sql.push(&format!(" AND reported_at >= {from} AND list_at >= {from}"));
        }
        if let Some(to) = q.reported_to {
            let to = sql.bind(ceil_micros(to));
            sql.push(&format!(" AND reported_at < {to} AND list_at < {to}"));
        }
        if let Some(after) = filter.after {
            let at = sql.bind(after.reported_at);
            let id = sql.bind(after.case_id.0);
            sql.push(&format!(" AND (list_at, case_id) < ({at}, {id})"));
        }
        let limit = sql.bind(filter.limit as i64 + 1);
        sql.push(&format!(
            " ORDER BY list_at DESC, case_id DESC LIMIT {limit}"
        ));
        let mut items = self.views(&sql).await?;
        let more = items.len() > filter.limit;
        items.truncate(filter.limit);
        let next_cursor = if more {
            items.last().map(|last| last.cursor().encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn case(&self, case_id: CaseId) -> Result<Option<CaseView>, ReadError> {
        let mut sql = Sql::new("SELECT state FROM cases WHERE case_id = ");
        let id = sql.bind(case_id.0);
        sql.push(&id);
        Ok(self.views(&sql).await?.into_iter().next())
    }

    async fn audit_trail(&self, case_id: CaseId) -> Result<Option<AuditTrail>, ReadError> {
        let mut trails = self.audit_records(&[case_id]).await?;
        let (records, head) = trails.remove(&case_id).unwrap_or_default();
        if records.is_empty() && head.is_none() {
            return Ok(None);
        }
        Ok(Some(answer::audit_trail(
            case_id,
            records,
            head.as_ref(),
            self.context.seal_policy(),
        )))
    }

    async fn sla_board(&self, query: &BoardQuery) -> Result<Vec<BoardRow>, ReadError> {
        let group = query.group.unwrap_or_default();
        let (code, tier) = match group {
            BoardGroup::District => ("district", "NULL::text"),
            BoardGroup::Community => ("community", "NULL::text"),
            BoardGroup::Cell => ("cell", "tier"),
        };
        let mut sql = Sql::new(format!(
            "SELECT {code}, {tier}, sum(green)::bigint, sum(yellow)::bigint, sum(red)::bigint, \
             (sum(green + yellow + red) FILTER (WHERE supervised))::bigint \
             FROM sla_board WHERE true"
        ));
        sql.and_eq("supervised", query.supervised);
        sql.and_eq("district", query.district.clone());
        if let Some(community) = &query.community {
            // '' is how the table spells "held at the district": it matches no community.
            sql.and_eq("community", Some(community.clone()));
            sql.push(" AND community <> ''");
        }
        if group == BoardGroup::Community {
            sql.push(" AND community <> ''");
        }
        sql.and_eq("tier", query.tier.map(tier_name));
        sql.push(" GROUP BY 1, 2");
        let mut sums: BTreeMap<(String, Option<Tier>), answer::BoardSums> = BTreeMap::new();
        for row in self.rows(&sql).await? {
            let tier = row
                .get::<_, Option<String>>(1)
                .map(|t| parse_tier(&t))
                .transpose()?;
            let counts = LightCounts {
                green: row.get(2),
                yellow: row.get(3),
                red: row.get(4),
            };
            let supervised: Option<i64> = row.get(5);
            let group = sums.entry((row.get(0), tier)).or_default();
            group.counts.merge(&counts);
            group.supervised += supervised.unwrap_or(0);
        }
        Ok(answer::board_rows(&self.context, sums))
    }

    async fn overdue(
        &self,
        query: &OverdueQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<OverdueCase>, ReadError> {
        let (limit, after) = query.validate()?;
        let mut sql = Sql::new(
            "SELECT state FROM cases \
             WHERE light = 'red' AND deadline IS NOT NULL AND step IS NOT NULL",
        );
        sql.and_eq("district", query.district.clone());
        sql.and_eq("community", query.community.clone());
        sql.and_eq("cell", query.cell.clone());
        sql.and_eq("tier", query.tier.map(tier_name));
        if let Some(after) = after {
            let at = sql.bind(after.deadline);
            let id = sql.bind(after.case_id.0);
            sql.push(&format!(" AND (deadline, case_id) > ({at}, {id})"));
        }
        let bound = sql.bind(limit as i64 + 1);
        sql.push(&format!(" ORDER BY deadline, case_id LIMIT {bound}"));
        let mut items: Vec<OverdueCase> = self
            .views(&sql)
            .await?
            .iter()
            .filter_map(|view| answer::overdue_case(view, now))
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = more.then(|| items.last()).flatten().map(|last| {
            OverdueCursor {
                deadline: last.deadline,
                case_id: last.case_id,
            }
            .encode()
        });
        Ok(Page { items, next_cursor })
    }

    async fn indicators(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorRow>, ReadError> {
        let group = query.validate()?;
        let key = match group {
            IndicatorGroup::Total => "'total'::text",
            IndicatorGroup::Day => "to_char(day, 'YYYY-MM-DD')",
            IndicatorGroup::District => "district",
            IndicatorGroup::Community => "community",
            IndicatorGroup::Cell => "cell",
            IndicatorGroup::Category => "category",
        };
        // The coarsest level that has the columns the query names, by month where it can:
        // a grouping by day needs the days, and the cell level keeps no months by category.
        let level = IndicatorLevel::for_query(query, group);
        let monthly_histograms = level
            .monthly_durations_table()
            .filter(|_| group != IndicatorGroup::Day);
        let spans = if monthly_histograms.is_some() {
            rollup::spans(query.from, query.to, latest_possible_day())
        } else {
            vec![Span::Days {
                from: query.from,
                to: query.to,
                sign: 1,
            }]
        };
        let scope = Scope {
            district: &query.district,
            community: &query.community,
            cell: &query.cell,
            category: &query.category,
            condition: None,
        };
        let signed_sums = COUNTERS
            .iter()
            .map(|c| format!("sum(s * {c})::bigint"))
            .collect::<Vec<_>>()
            .join(", ");
        let any_counted = COUNTERS
            .iter()
            .map(|c| format!("sum(s * {c}) <> 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut counts_sql = Sql::new(format!("SELECT k, {signed_sums} FROM ("));
        union_of_spans(
            &mut counts_sql,
            &spans,
            (level.daily_table(), level.monthly_table()),
            &format!("{key} AS k, {}", COUNTERS.join(", ")),
            &scope,
        );
        counts_sql.push(&format!(") AS r GROUP BY k HAVING {any_counted}"));
        let mut durations_sql = Sql::new("SELECT k, metric, bucket, sum(s * count)::bigint FROM (");
        union_of_spans(
            &mut durations_sql,
            &spans,
            // Without monthly histograms the spans are days only.
            (
                level.durations_table(),
                monthly_histograms.unwrap_or_default(),
            ),
            &format!("{key} AS k, metric, bucket, count"),
            &scope,
        );
        durations_sql.push(") AS r GROUP BY 1, 2, 3 HAVING sum(s * count) <> 0");
        #[allow(clippy::type_complexity)]
        let mut sums: BTreeMap<
            String,
            (IndicatorCounts, BTreeMap<u16, i64>, BTreeMap<u16, i64>),
        > = BTreeMap::new();
        // The counters and the histograms are independent reads: asked at once, on two of
        // the pool's connections, the answer waits for the slower of them, not for both.
        let (counted, durations) =
            futures::try_join!(self.rows(&counts_sql), self.rows(&durations_sql))?;
        for row in counted {
            let counts = IndicatorCounts::from_values(std::array::from_fn(|n| row.get(n + 1)));
            sums.entry(row.get(0)).or_default().0.add(&counts, 1);
        }
        for row in durations {
            let metric: String = row.get(1);
            let bucket = u16::try_from(row.get::<_, i16>(2)).unwrap_or(0);
            let count: i64 = row.get(3);
            let entry = sums.entry(row.get(0)).or_default();
            let buckets = match DurationMetric::parse(&metric) {
                Some(DurationMetric::TimeToAcknowledge) => &mut entry.1,
                Some(DurationMetric::TimeToClose) => &mut entry.2,
                None => return Err(corrupt("duration metric", metric)),
            };
            *buckets.entry(bucket).or_default() += count;
        }
        Ok(sums
            .into_iter()
            .map(|(key, (counts, acknowledge, close))| {
                IndicatorRow::from_sums(key, counts, &acknowledge, &close)
            })
            .collect())
    }

    async fn ranking(&self, query: &RankingQuery) -> Result<Ranking, ReadError> {
        let rules = query.validate()?;
        let spans = rollup::spans(query.from, query.to, latest_possible_day());
        let mut sql = Sql::new(
            "SELECT cell, min(community), sum(s * due)::bigint, sum(s * closed)::bigint, \
             sum(s * closed_on_time)::bigint FROM (",
        );
        union_of_spans(
            &mut sql,
            &spans,
            (
                IndicatorLevel::Cell.daily_table(),
                IndicatorLevel::Cell.monthly_table(),
            ),
            "cell, community, due, closed, closed_on_time",
            &Scope {
                district: &query.district,
                community: &query.community,
                cell: &None,
                category: &None,
                condition: Some(tier_condition(rules.tier)),
            },
        );
        // Cells with report-day counters alone have nothing to rank by (closed and closed
        // on time are only ever counted with due, on the same row).
        sql.push(") AS r GROUP BY cell HAVING sum(s * due) <> 0");
        let cells = self
            .rows(&sql)
            .await?
            .iter()
            .map(|row| answer::CellSums {
                cell: row.get(0),
                community: row.get(1),
                due: row.get(2),
                closed: row.get(3),
                closed_on_time: row.get(4),
            })
            .collect();
        Ok(answer::ranking(&self.context, cells, rules))
    }

    async fn patrol_coverage(&self, query: &PatrolQuery) -> Result<PatrolReport, ReadError> {
        query.validate()?;
        let mut sql = Sql::new(
            "SELECT cell, count(*), sum(findings)::bigint, sum(fixed_on_spot)::bigint, \
             (array_agg(last_at ORDER BY last_at DESC, last_worker ASC))[1], \
             (array_agg(last_worker ORDER BY last_at DESC, last_worker ASC))[1] \
             FROM patrol_coverage",
        );
        let from = sql.bind(query.from);
        let to = sql.bind(query.to);
        sql.push(&format!(
            " WHERE day >= {from} AND day <= {to} GROUP BY cell"
        ));
        let mut sums: BTreeMap<String, answer::PatrolSums> = BTreeMap::new();
        for row in self.rows(&sql).await? {
            let last_at: Option<DateTime<Utc>> = row.get(4);
            let last_worker: Option<String> = row.get(5);
            sums.insert(
                row.get(0),
                answer::PatrolSums {
                    days_patrolled: row.get(1),
                    findings: row.get(2),
                    fixed_on_spot: row.get(3),
                    last: last_at.zip(last_worker),
                },
            );
        }
        answer::patrol_report(&self.context, query, &sums)
    }

    async fn inbox(&self, worker_id: &str) -> Result<Vec<InboxTask>, ReadError> {
        let mut sql = Sql::new("SELECT state FROM cases WHERE open AND assignee = ");
        let worker = sql.bind(worker_id.to_owned());
        sql.push(&worker);
        let mut tasks: Vec<InboxTask> = self
            .views(&sql)
            .await?
            .iter()
            .filter(|case| answer::is_in_inbox(case, worker_id))
            .map(answer::inbox_task)
            .collect();
        answer::sort_inbox(&mut tasks);
        Ok(tasks)
    }

    async fn provisional_open_cases(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        // The partial index cases_provisional_open holds exactly these rows.
        let sql = Sql::new(
            "SELECT district, count(*) FROM cases WHERE provisional AND open GROUP BY district",
        );
        Ok(self
            .rows(&sql)
            .await?
            .iter()
            .map(|row| (row.get(0), position_of(row.get(1))))
            .collect())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        let names: Vec<&str> = crate::fold::PROJECTION_NAMES.to_vec();
        let mut sql = Sql::new(
            "SELECT projection, position, recorded_at FROM projection_checkpoints \
             WHERE projection = ANY(",
        );
        let placeholder = sql.bind(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        sql.push(&placeholder);
        sql.push(")");
        let mut stored: BTreeMap<String, (u64, Option<DateTime<Utc>>)> = BTreeMap::new();
        for row in self.rows(&sql).await? {
            stored.insert(row.get(0), (position_of(row.get(1)), row.get(2)));
        }
        Ok(names
            .iter()
            .map(|name| {
                let (position, recorded_at) = stored.get(*name).copied().unwrap_or((0, None));
                Checkpoint {
                    projection: (*name).to_owned(),
                    position,
                    recorded_at,
                }
            })
            .collect())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Progress> {
        let receiver = self.progress.subscribe();
        self.start_listener();
        receiver
    }
}

impl PostgresReadModels {
    /// The stored trails (in sequence order) and chain heads of these cases; cases with
    /// neither are left out.
    pub async fn audit_records(
        &self,
        cases: &[CaseId],
    ) -> Result<BTreeMap<CaseId, (Vec<AuditRecord>, Option<AuditHead>)>, ReadError> {
        let ids: Vec<Uuid> = cases.iter().map(|c| c.0).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT case_id, entries FROM audit_trails WHERE case_id = ANY($1)")
            .await
            .map_err(unavailable)?;
        let rows = client
            .query(&statement, &[&ids])
            .await
            .map_err(unavailable)?;
        let mut trails: BTreeMap<CaseId, (Vec<AuditRecord>, Option<AuditHead>)> = BTreeMap::new();
        for row in rows {
            let case_id = CaseId(row.get(0));
            let stored = compact::trail::decode(case_id, row.get(1));
            for problem in &stored.unreadable {
                // What does not read is missing from the trail, and verification names the
                // missing entries; the cause belongs in the log.
                tracing::warn!(case = %case_id, %problem, "part of a stored audit trail does not read");
            }
            let mut records = stored.records;
            records.sort_by_key(|r| r.sequence);
            trails.entry(case_id).or_default().0 = records;
        }
        let statement = client
            .prepare_cached(
                "SELECT case_id, sequence, hash, summary FROM audit_heads WHERE case_id = ANY($1)",
            )
            .await
            .map_err(unavailable)?;
        for row in client
            .query(&statement, &[&ids])
            .await
            .map_err(unavailable)?
        {
            let case_id = CaseId(row.get(0));
            let summary: &[u8] = row.get(3);
            let head = AuditHead {
                sequence: position_of(row.get(1)),
                hash: row.get(2),
                summary: compact::decode_json(summary).map_err(|e| corrupt("audit head", e))?,
            };
            trails.entry(case_id).or_default().1 = Some(head);
        }
        Ok(trails)
    }
}
