//! The one query interface of the read models, answered the same by memory and PostgreSQL.
//!
//! Queries are plain values, checked by [`validate`](CaseQuery::validate)-style functions
//! shared by both stores (a bad parameter is a [`ReadError::InvalidQuery`] naming the field
//! and the reason, which the HTTP API turns into a 400). Answers are plain values too, with
//! a fixed order, so the differential test can compare them whole.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wangge_engine::domain::CaseStatus;
use wangge_engine::grid::GridDirectory;
use wangge_schemas::{CaseId, IntakeKind, Priority, SlaStep, Tier};

use crate::fold::audit::{AuditEntry, AuditProblem};
use crate::fold::cases::{CaseSla, Light, LightCounts};
use crate::fold::indicators::IndicatorCounts;
use crate::fold::CaseSummary;

/// The most items one page may hold.
pub const MAX_PAGE: usize = 500;
/// Items per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// The longest range of days an indicator, ranking or coverage query may span.
pub const MAX_DAYS: i64 = 400;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A query parameter is wrong: tell the caller which and why.
    #[error("invalid `{field}`: {reason}")]
    InvalidQuery { field: &'static str, reason: String },
    /// The store could not be read; worth retrying.
    #[error("read models unavailable: {0}")]
    Unavailable(String),
}

impl ReadError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidQuery {
            field,
            reason: reason.into(),
        }
    }
}

/// One page of a list, in the list's fixed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn check_limit(limit: Option<usize>) -> Result<usize, ReadError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(0) => Err(ReadError::invalid("limit", "must be at least 1")),
        Some(n) if n > MAX_PAGE => Err(ReadError::invalid(
            "limit",
            format!("must be at most {MAX_PAGE}, got {n}"),
        )),
        Some(n) => Ok(n),
    }
}

fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), ReadError> {
    if to < from {
        return Err(ReadError::invalid(
            "to",
            format!("{to} is before `from` ({from})"),
        ));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ReadError::invalid(
            "to",
            format!("the range may span at most {MAX_DAYS} days"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Where a query looks: cells of the grid
// ---------------------------------------------------------------------------------------

/// The grid cells a query names. A query that names a cell the grid does not have (or a
/// community outside the district it also names) is a bad query, not an empty answer:
/// [`GridScope::check`] says which parameter and why. The HTTP API checks every query's
/// scope before asking the read models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GridScope<'q> {
    pub district: Option<&'q str>,
    pub community: Option<&'q str>,
    /// A building cell.
    pub building: Option<&'q str>,
    /// A cell of any tier (the holding cell, or the cell indicators are charged to).
    pub cell: Option<&'q str>,
}

impl GridScope<'_> {
    pub fn check(&self, grid: &GridDirectory) -> Result<(), ReadError> {
        let tiered = |field: &'static str, code: &str, tier: Tier| -> Result<(), ReadError> {
            match grid.cell(code) {
                Some(cell) if cell.tier == tier => Ok(()),
                Some(cell) => Err(ReadError::invalid(
                    field,
                    format!(
                        "`{code}` is a {} cell, not a {}",
                        wangge_engine::grid::tier_name(&cell.tier),
                        wangge_engine::grid::tier_name(&tier)
                    ),
                )),
                None => Err(ReadError::invalid(
                    field,
                    format!(
                        "no {} `{code}` in the grid",
                        wangge_engine::grid::tier_name(&tier)
                    ),
                )),
            }
        };
        if let Some(district) = self.district {
            tiered("district", district, Tier::District)?;
        }
        if let Some(community) = self.community {
            tiered("community", community, Tier::Community)?;
            if let Some(district) = self.district {
                let parent = grid.parent(community).map(|p| p.code.as_str());
                if parent != Some(district) {
                    return Err(ReadError::invalid(
                        "community",
                        format!("community `{community}` is not in district `{district}`"),
                    ));
                }
            }
        }
        if let Some(building) = self.building {
            tiered("building", building, Tier::Building)?;
        }
        if let Some(cell) = self.cell {
            if grid.cell(cell).is_none() {
                return Err(ReadError::invalid(
                    "cell",
                    format!("no cell `{cell}` in the grid"),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// Which cases, newest report first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    pub district: Option<String>,
    pub community: Option<String>,
    /// The building cell the case was reported in.
    pub building: Option<String>,
    /// The cell that holds the case now (any tier).
    pub cell: Option<String>,
    pub tier: Option<Tier>,
    #[param(value_type = Option<String>, example = "dispatched")]
    #[schema(value_type = Option<String>)]
    pub status: Option<CaseStatus>,
    /// Only cases still open (`true`) or only ended ones (`false`).
    pub open: Option<bool>,
    pub category: Option<String>,
    pub intake: Option<IntakeKind>,
    pub assignee: Option<String>,
    /// Only cases whose running step's deadline is provisional (`true`: counted past the
    /// calendar's published holidays, to be revised when the next schedule is published),
    /// or only those whose deadline is not (`false`).
    pub provisional: Option<bool>,
    /// Only cases referred for supervision (督办) after the district let them run past its
    /// own limit (`true`), or only the others (`false`).
    pub supervised: Option<bool>,
    /// Reported at or after.
    pub reported_from: Option<DateTime<Utc>>,
    /// Reported before.
    pub reported_to: Option<DateTime<Utc>>,
    /// 1 to 500, default 50.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Where a page of cases continues: after this report time and case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseCursor {
    pub reported_at: DateTime<Utc>,
    pub case_id: CaseId,
}

impl CaseCursor {
    /// The place of a case reported at `reported_at` in the list order (a case without a
    /// report sorts as reported at the epoch).
    pub fn of(reported_at: Option<DateTime<Utc>>, case_id: CaseId) -> Self {
        Self {
            reported_at: reported_at.unwrap_or(DateTime::UNIX_EPOCH),
            case_id,
        }
    }

    pub fn encode(&self) -> String {
        encode_cursor(self.reported_at, self.case_id)
    }

    pub fn decode(text: &str) -> Result<Self, ReadError> {
        let (reported_at, case_id) = decode_cursor(text)?;
        Ok(Self {
            reported_at,
            case_id,
        })
    }
}

/// A page cursor as the API hands it out: `<microseconds since the epoch>_<case id>`.
fn encode_cursor(at: DateTime<Utc>, case_id: CaseId) -> String {
    format!("{}_{}", at.timestamp_micros(), case_id.0.simple())
}

fn decode_cursor(text: &str) -> Result<(DateTime<Utc>, CaseId), ReadError> {
    let bad = || ReadError::invalid("cursor", "not a cursor this API handed out");
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok((
        DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        CaseId(Uuid::parse_str(id).map_err(|_| bad())?),
    ))
}

/// A validated [`CaseQuery`].
#[derive(Debug, Clone)]
pub struct CaseFilter {
    pub query: CaseQuery,
    pub limit: usize,
    pub after: Option<CaseCursor>,
}

impl CaseQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            building: self.building.as_deref(),
            cell: self.cell.as_deref(),
        }
    }

    pub fn validate(&self) -> Result<CaseFilter, ReadError> {
        let limit = check_limit(self.limit)?;
        let after = self.cursor.as_deref().map(CaseCursor::decode).transpose()?;
        if let (Some(from), Some(to)) = (self.reported_from, self.reported_to) {
            if to < from {
                return Err(ReadError::invalid(
                    "reported_to",
                    format!("{to} is before `reported_from` ({from})"),
                ));
            }
        }
        Ok(CaseFilter {
            query: self.clone(),
            limit,
            after,
        })
    }
}

impl CaseFilter {
    /// Whether a case passes the filter (the memory store's `WHERE`).
    pub fn matches(&self, case: &CaseView) -> bool {
        let q = &self.query;
        let s = &case.summary;
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&q.district, &s.location.district)
            && eq(&q.community, &s.location.community)
            && eq(&q.building, &s.location.building)
            && eq(&q.cell, &s.cell)
            && q.tier.is_none_or(|t| s.tier == Some(t))
            && q.status.is_none_or(|status| s.status == status)
            && q.open.is_none_or(|open| s.is_open() == open)
            && q.category.as_deref().is_none_or(|c| {
                s.category.as_deref() == Some(c)
                    || (s.category.is_none() && s.reported_category == c)
            })
            && q.intake.is_none_or(|i| s.intake == Some(i))
            && q.provisional
                .is_none_or(|provisional| case.sla.provisional == provisional)
            && q.assignee
                .as_deref()
                .is_none_or(|a| s.assignee.as_deref() == Some(a))
            && q.supervised
                .is_none_or(|wanted| s.is_supervised() == wanted)
            && q.reported_from
                .is_none_or(|from| s.reported_at.is_some_and(|at| at >= from))
            && q.reported_to
                .is_none_or(|to| s.reported_at.is_some_and(|at| at < to))
            && self.after.is_none_or(|after| case.cursor() < after)
    }
}

/// A case as the API serves it: its summary and its running SLA clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub summary: CaseSummary,
    pub sla: CaseSla,
}

impl CaseView {
    /// Its place in the list order (newest report first; a case without a report sorts as
    /// reported at the epoch).
    pub fn cursor(&self) -> CaseCursor {
        CaseCursor::of(self.summary.reported_at, self.summary.case_id)
    }
}

/// A case's events as the audit trail holds them, oldest first, and whether the trail is
/// intact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditTrail {
    pub case_id: CaseId,
    pub entries: Vec<AuditTrailEntry>,
    /// Problems [`verify_trail`](crate::fold::audit::verify_trail) found; empty when intact.
    pub problems: Vec<AuditProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditTrailEntry {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

// ---------------------------------------------------------------------------------------
// SLA board and overdue list
// ---------------------------------------------------------------------------------------

/// How the board groups open cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoardGroup {
    /// One row per district (all its cases, whoever holds them).
    District,
    /// One row per community (cases held by it or its buildings).
    Community,
    /// One row per holding cell and tier.
    #[default]
    Cell,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    pub district: Option<String>,
    pub community: Option<String>,
    pub tier: Option<Tier>,
    /// `district`, `community` or `cell` (default).
    pub group: Option<BoardGroup>,
    /// Only open cases under supervision (督办, `true`), or only the others (`false`).
    pub supervised: Option<bool>,
}

impl BoardQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            ..GridScope::default()
        }
    }
}

/// Open cases of one group by light.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BoardRow {
    /// The district, community or holding cell code.
    pub code: String,
    pub name: String,
    /// For `group=cell`: the tier of the holding cell.
    pub tier: Option<Tier>,
    #[serde(flatten)]
    pub counts: LightCounts,
    /// The worst light among the group's open cases.
    pub light: Light,
    /// How many of the group's open cases (of every light) are under supervision (督办).
    pub supervised: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverdueQuery {
    pub district: Option<String>,
    pub community: Option<String>,
    /// The holding cell.
    pub cell: Option<String>,
    pub tier: Option<Tier>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// Where a page of the overdue list continues: after this deadline and case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OverdueCursor {
    pub deadline: DateTime<Utc>,
    pub case_id: CaseId,
}

impl OverdueCursor {
    pub fn encode(&self) -> String {
        encode_cursor(self.deadline, self.case_id)
    }

    pub fn decode(text: &str) -> Result<Self, ReadError> {
        let (deadline, case_id) = decode_cursor(text)?;
        Ok(Self { deadline, case_id })
    }
}

impl OverdueQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            cell: self.cell.as_deref(),
            ..GridScope::default()
        }
    }

    pub fn validate(&self) -> Result<(usize, Option<OverdueCursor>), ReadError> {
        let limit = check_limit(self.limit)?;
        let after = self
            .cursor
            .as_deref()
            .map(OverdueCursor::decode)
            .transpose()?;
        Ok((limit, after))
    }
}

/// An open case past the limit of its running step: the longest overdue first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverdueCase {
    pub case_id: CaseId,
    pub title: String,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    #[schema(value_type = String)]
    pub status: CaseStatus,
    pub district: String,
    pub community: String,
    pub building: String,
    pub tier: Option<Tier>,
    /// The cell that holds it.
    pub cell: String,
    /// Who holds it (`None` while it waits for dispatch).
    pub assignee: Option<String>,
    pub step: SlaStep,
    pub deadline: DateTime<Utc>,
    /// How late it is at the time of the query, in seconds.
    pub late_by_seconds: i64,
}

// ---------------------------------------------------------------------------------------
// Indicators, red-and-black board, patrol coverage
// ---------------------------------------------------------------------------------------

/// What the indicator rows are per.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorGroup {
    /// One row for the whole scope.
    #[default]
    Total,
    /// One row per local day: each counter on its own cohort's day (see `IndicatorRow`).
    Day,
    District,
    /// One row per community; `''` for rounds charged to a district.
    Community,
    /// One row per cell charged: building cells, and the community and district cells that
    /// held cases when their rounds fell due.
    Cell,
    Category,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IndicatorQuery {
    /// First day (local), inclusive. Each counter is taken from its own cohort's days: the
    /// report day for `registered`, `handled`, `reworked`, `dispatched`,
    /// `responded_on_time` and the evaluations; the day a round fell due for `due`,
    /// `closed` and `closed_on_time`.
    pub from: NaiveDate,
    /// Last day (local), inclusive.
    pub to: NaiveDate,
    pub district: Option<String>,
    /// A community: its building cells and the community cell itself.
    pub community: Option<String>,
    /// A cell of any tier: the building cell cases were reported in (report-day counters), or
    /// the cell that held them when they fell due (due-day counters).
    pub cell: Option<String>,
    pub category: Option<String>,
    /// `total` (default), `day`, `district`, `community`, `cell` or `category`.
    pub group: Option<IndicatorGroup>,
}

impl IndicatorQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            cell: self.cell.as_deref(),
            ..GridScope::default()
        }
    }

    pub fn validate(&self) -> Result<IndicatorGroup, ReadError> {
        check_range(self.from, self.to)?;
        Ok(self.group.unwrap_or_default())
    }
}

/// The figures of one group over the query's days.
///
/// Two cohorts: `due`, `closed`, `closed_on_time`, 结案率, 按期结案率 and time to close count
/// rounds of handling by the day they fell due (应结案), charged to the cell that held the case
/// then; every other figure counts cases by the day they were reported, in the building cell
/// they were reported in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorRow {
    /// The day, district, community, cell or category code; `total` for the whole scope.
    pub key: String,
    #[serde(flatten)]
    pub counts: IndicatorCounts,
    /// 结案率 closure rate: `closed ÷ due` — due rounds that are closed, of the rounds that
    /// fell due in the days (at their closing, or at the breach of their resolve or verify
    /// step when that came first). Rounds open within their limit, or parked before it, are
    /// not due yet and count in neither.
    pub closure_rate: Option<f64>,
    /// 按期结案率 on-time closure rate: `closed_on_time ÷ due` — due rounds closed within
    /// their limit (no breach of their resolve or verify step recorded, no run of them ended
    /// past its deadline; self-handled cases always), of the same rounds as 结案率.
    pub on_time_closure_rate: Option<f64>,
    /// 返工率 rework rate: `reworked ÷ handled` — cases sent back after verification at least
    /// once, of cases with a result reported; by report day.
    pub rework_rate: Option<f64>,
    /// 响应率 response rate: `responded_on_time ÷ dispatched` — cases acknowledged with every
    /// acknowledge run within its limit, of cases dispatched; by report day. Self-handled
    /// cases are never dispatched, so they are in neither.
    pub response_rate: Option<f64>,
    /// 解决率 resolution rate: `resolved_for_resident ÷ evaluated` — solved is the resident's
    /// own answer when they were asked, else a satisfaction of 3+; by report day.
    pub resolution_rate: Option<f64>,
    /// 满意率 satisfaction rate: `satisfied ÷ evaluated` — scored 4+ of 5 (满意 and 基本满意
    /// are stored as 5 and 4); by report day.
    pub satisfaction_rate: Option<f64>,
    /// Median time from first dispatch to first acknowledgement, plain clock (report day).
    pub time_to_acknowledge_p50_seconds: Option<i64>,
    /// 90th percentile of the same.
    pub time_to_acknowledge_p90_seconds: Option<i64>,
    /// Median time from a round's start (the report, or the reopening) to its closing, plain
    /// clock, over the closed due rounds (due day).
    pub time_to_close_p50_seconds: Option<i64>,
    /// 90th percentile of the same.
    pub time_to_close_p90_seconds: Option<i64>,
}

impl IndicatorRow {
    /// A row from summed counters and summed duration buckets.
    pub fn from_sums(
        key: String,
        counts: IndicatorCounts,
        acknowledge: &std::collections::BTreeMap<u16, i64>,
        close: &std::collections::BTreeMap<u16, i64>,
    ) -> Self {
        use crate::fold::histogram::percentile;
        Self {
            key,
            closure_rate: rate(counts.closed, counts.due),
            on_time_closure_rate: rate(counts.closed_on_time, counts.due),
            rework_rate: rate(counts.reworked, counts.handled),
            response_rate: rate(counts.responded_on_time, counts.dispatched),
            resolution_rate: rate(counts.resolved_for_resident, counts.evaluated),
            satisfaction_rate: rate(counts.satisfied, counts.evaluated),
            time_to_acknowledge_p50_seconds: percentile(acknowledge, 0.5),
            time_to_acknowledge_p90_seconds: percentile(acknowledge, 0.9),
            time_to_close_p50_seconds: percentile(close, 0.5),
            time_to_close_p90_seconds: percentile(close, 0.9),
            counts,
        }
    }
}

/// `part ÷ whole`, rounded to 4 decimals (so both stores print the same figure); `None`
/// for an empty whole.
pub fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// Cells with fewer due rounds than this in the days are not ranked, unless the query says.
pub const DEFAULT_MIN_DUE: i64 = 10;
/// Cells on each list, unless the query says.
pub const DEFAULT_RANKING_LIMIT: usize = 10;
/// The most cells one list may hold.
pub const MAX_RANKING_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankingQuery {
    /// First day (local), inclusive: rounds that fell due from this day.
    pub from: NaiveDate,
    /// Last day (local), inclusive.
    pub to: NaiveDate,
    pub district: Option<String>,
    /// A community: its building cells (or, with `tier=community`, the community cell).
    pub community: Option<String>,
    /// The tier of the cells ranked: `building` (default), `community` or `district`. Each
    /// due round counts for the cell that held the case when it fell due, so a community
    /// cell is ranked on the cases it held itself.
    pub tier: Option<Tier>,
    /// Cells with fewer due rounds (应结案) in the days are not ranked: a rate over a case
    /// or two says little. At least 1; default 10.
    pub min_due: Option<i64>,
    /// How many cells on each list, at most: 1 to 100, default 10. With fewer than twice as
    /// many cells eligible, each list takes half of them (rounded down).
    pub limit: Option<usize>,
}

/// A validated [`RankingQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankingRules {
    pub tier: Tier,
    pub min_due: i64,
    pub limit: usize,
}

impl RankingQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            ..GridScope::default()
        }
    }

    pub fn validate(&self) -> Result<RankingRules, ReadError> {
        check_range(self.from, self.to)?;
        let min_due = self.min_due.unwrap_or(DEFAULT_MIN_DUE);
        if min_due < 1 {
            return Err(ReadError::invalid(
                "min_due",
                format!("must be at least 1, got {min_due}"),
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_RANKING_LIMIT);
        if limit == 0 || limit > MAX_RANKING_LIMIT {
            return Err(ReadError::invalid(
                "limit",
                format!("must be 1 to {MAX_RANKING_LIMIT}, got {limit}"),
            ));
        }
        Ok(RankingRules {
            tier: self.tier.unwrap_or(Tier::Building),
            min_due,
            limit,
        })
    }
}

/// 红黑榜: the cells of one tier ranked by 按期结案率 (on-time closure rate) over the days.
///
/// Only cells with at least `min_due` due rounds in the days are ranked. Best first: the
/// higher rate, then more due rounds, then the cell code. The red list takes the best, the
/// black list the worst, each at most `limit` and at most half of the ranked cells (rounded
/// down; with an odd number the middle cell is on neither), and the black list names only
/// cells whose rate is below every red cell's: no cell is on both lists, and a cell that
/// ties with the red list is never called worst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ranking {
    /// 红榜: the best, highest on-time closure rate first.
    pub red: Vec<RankedCell>,
    /// 黑榜: the worst, lowest on-time closure rate first.
    pub black: Vec<RankedCell>,
    /// Cells with enough due rounds to be ranked.
    pub ranked_cells: usize,
    /// The tier ranked.
    pub tier: Tier,
    /// The minimum of due rounds a cell needed to be ranked.
    pub min_due: i64,
}

/// One cell's figures over the ranking's days (rounds that fell due in them, charged to the
/// cell that held the case then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankedCell {
    pub cell: String,
    pub name: String,
    /// The cell's community (itself for a community cell; `''` for a district).
    pub community: String,
    /// 应结案: rounds that fell due.
    pub due: i64,
    /// 结案: of them, closed.
    pub closed: i64,
    /// 按期结案: of them, closed within the limit.
    pub closed_on_time: i64,
    /// 按期结案率: `closed_on_time ÷ due`, what the lists are ranked by.
    pub on_time_closure_rate: f64,
    /// 结案率: `closed ÷ due`.
    pub closure_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatrolQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub district: Option<String>,
    pub community: Option<String>,
    /// Only cells not patrolled in the range (`false`), or only patrolled ones (`true`).
    pub patrolled: Option<bool>,
}

impl PatrolQuery {
    pub fn scope(&self) -> GridScope<'_> {
        GridScope {
            district: self.district.as_deref(),
            community: self.community.as_deref(),
            ..GridScope::default()
        }
    }

    pub fn validate(&self) -> Result<(), ReadError> {
        check_range(self.from, self.to)
    }
}

/// A building cell's patrols over the query's days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatrolCoverage {
    pub cell: String,
    pub name: String,
    pub district: String,
    pub community: String,
    /// Days with at least one patrol.
    pub days_patrolled: i64,
    pub findings: i64,
    pub fixed_on_spot: i64,
    pub last_patrol_at: Option<DateTime<Utc>>,
    pub last_worker: Option<String>,
}

/// Patrol coverage of a scope: every building cell in it, with its patrols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatrolReport {
    pub cells: Vec<PatrolCoverage>,
    pub patrolled: usize,
    pub not_patrolled: usize,
}

// ---------------------------------------------------------------------------------------
// Worker inbox, projection progress
// ---------------------------------------------------------------------------------------

/// A task in a worker's inbox: an open case they hold, the most urgent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InboxTask {
    pub case_id: CaseId,
    pub title: String,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    #[schema(value_type = String)]
    pub status: CaseStatus,
    pub tier: Option<Tier>,
    pub cell: String,
    pub building: String,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub reworks: u32,
    #[serde(flatten)]
    pub sla: CaseSla,
}

/// Where a projection's checkpoint stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    pub projection: String,
    /// The log position of the last commit folded.
    pub position: u64,
    /// When that commit's last event was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
}

/// The read models changed: a projection committed up to `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub projection: String,
    pub position: u64,
}

// ---------------------------------------------------------------------------------------
// The interface
// ---------------------------------------------------------------------------------------

/// Everything the HTTP API and the dashboard ask of the read models.
#[async_trait::async_trait]
pub trait ReadModels: Send + Sync + 'static {
    async fn cases(&self, query: &CaseQuery) -> Result<Page<CaseView>, ReadError>;
    async fn case(&self, case_id: CaseId) -> Result<Option<CaseView>, ReadError>;
    /// The case's audit trail, verified; `None` for a case the trail does not know.
    async fn audit_trail(&self, case_id: CaseId) -> Result<Option<AuditTrail>, ReadError>;
    async fn sla_board(&self, query: &BoardQuery) -> Result<Vec<BoardRow>, ReadError>;
    async fn overdue(
        &self,
        query: &OverdueQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<OverdueCase>, ReadError>;
    async fn indicators(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorRow>, ReadError>;
    async fn ranking(&self, query: &RankingQuery) -> Result<Ranking, ReadError>;
    async fn patrol_coverage(&self, query: &PatrolQuery) -> Result<PatrolReport, ReadError>;
    async fn inbox(&self, worker_id: &str) -> Result<Vec<InboxTask>, ReadError>;
    /// Open cases whose running step's deadline is provisional, per district (districts
    /// with none left out).
    async fn provisional_open_cases(&self) -> Result<BTreeMap<String, u64>, ReadError>;
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError>;
    /// Announces each commit of a projection (the dashboard's live updates).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Progress>;
}
