//! The parts of an answer both stores build the same way: grouping keys, names from the grid,
//! rankings, the order of every list. A store only selects and sums; what a sum means and
//! how it is presented is decided here, once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use wangge_engine::domain::CaseStatus;
use wangge_schemas::{CaseId, Tier};

use crate::fold::audit::{verify_trail, AuditHead, AuditRecord};
use crate::fold::cases::{Light, LightCounts};
use crate::fold::indicators::IndicatorKey;
use crate::fold::FoldContext;
use crate::query::{
    AuditTrail, AuditTrailEntry, BoardGroup, BoardQuery, BoardRow, CaseView, InboxTask,
    IndicatorGroup, OverdueCase, PatrolCoverage, PatrolQuery, PatrolReport, RankedCell, Ranking,
    ReadError,
};

/// The name of a cell in the grid, or its code when the grid does not know it.
pub fn cell_name(context: &FoldContext, code: &str) -> String {
    context
        .grid()
        .cell(code)
        .map_or_else(|| code.to_owned(), |cell| cell.name.clone())
}

/// The worst light among counts (green for none).
pub fn worst_light(counts: &LightCounts) -> Light {
    if counts.red > 0 {
        Light::Red
    } else if counts.yellow > 0 {
        Light::Yellow
    } else {
        Light::Green
    }
}

/// Whether a board entry is in the query's scope.
pub fn in_board_scope(
    query: &BoardQuery,
    district: &str,
    community: Option<&str>,
    tier: Tier,
) -> bool {
    query.district.as_deref().is_none_or(|d| d == district)
        && query
            .community
            .as_deref()
            .is_none_or(|c| community == Some(c))
        && query.tier.is_none_or(|t| t == tier)
}

/// The group a board entry counts in: its code and, for cells, its tier. `None` for an
/// entry that has no such group (a case held at the district, grouped by community).
pub fn board_group(
    group: BoardGroup,
    district: &str,
    community: Option<&str>,
    cell: &str,
    tier: Tier,
) -> Option<(String, Option<Tier>)> {
    match group {
        BoardGroup::District => Some((district.to_owned(), None)),
        BoardGroup::Community => community.map(|c| (c.to_owned(), None)),
        BoardGroup::Cell => Some((cell.to_owned(), Some(tier))),
    }
}

/// Board rows from counts summed per group: named, lit, groups without open cases left out,
/// ordered by code and tier.
pub fn board_rows(
    context: &FoldContext,
    sums: BTreeMap<(String, Option<Tier>), LightCounts>,
) -> Vec<BoardRow> {
    sums.into_iter()
        .filter(|(_, counts)| counts.total() > 0)
        .map(|((code, tier), counts)| BoardRow {
            name: cell_name(context, &code),
            code,
            tier,
            light: worst_light(&counts),
            counts,
        })
        .collect()
}

/// An open case past its deadline, as the overdue list shows it at `now`.
pub fn overdue_case(case: &CaseView, now: DateTime<Utc>) -> Option<OverdueCase> {
    let sla = &case.sla;
    if sla.light != Some(Light::Red) {
        return None;
    }
    let (step, deadline) = (sla.step?, sla.deadline?);
    let s = &case.summary;
    Some(OverdueCase {
        case_id: s.case_id,
        title: s.title.clone(),
        category: s.category.clone(),
        priority: s.priority,
        status: s.status,
        district: s.location.district.clone(),
        community: s.location.community.clone(),
        building: s.location.building.clone(),
        tier: s.tier,
        cell: s.cell.clone(),
        assignee: s.assignee.clone(),
        step,
        deadline,
        late_by_seconds: (now - deadline).num_seconds().max(0),
    })
}

/// The key of the indicator row an entry counts in.
pub fn indicator_group_key(group: IndicatorGroup, key: &IndicatorKey) -> String {
    match group {
        IndicatorGroup::Total => "total".to_owned(),
        IndicatorGroup::Day => key.day.to_string(),
        IndicatorGroup::District => key.district.clone(),
        IndicatorGroup::Community => key.community.clone(),
        IndicatorGroup::Cell => key.cell.clone(),
        IndicatorGroup::Category => key.category.clone(),
    }
}

/// 红黑榜 from `(cell, community, registered, closed on time)` per cell.
pub fn ranking(
    context: &FoldContext,
    cells: Vec<(String, String, i64, i64)>,
    min_cases: i64,
    limit: usize,
) -> Ranking {
    let mut ranked: Vec<RankedCell> = cells
        .into_iter()
        .filter(|(_, _, registered, _)| *registered >= min_cases)
        .map(|(cell, community, registered, closed_on_time)| RankedCell {
            name: cell_name(context, &cell),
            on_time_closure_rate: crate::query::rate(closed_on_time, registered).unwrap_or(0.0),
            cell,
            community,
            registered,
            closed_on_time,
        })
        .collect();
    let ranked_cells = ranked.len();
    // Best first: higher rate, then more cases (a rate over more cases says more), then code.
    ranked.sort_by(|a, b| {
        b.on_time_closure_rate
            .total_cmp(&a.on_time_closure_rate)
            .then(b.registered.cmp(&a.registered))
            .then(a.cell.cmp(&b.cell))
    });
    let red: Vec<RankedCell> = ranked.iter().take(limit).cloned().collect();
    let mut black = ranked;
    black.sort_by(|a, b| {
        a.on_time_closure_rate
            .total_cmp(&b.on_time_closure_rate)
            .then(b.registered.cmp(&a.registered))
            .then(a.cell.cmp(&b.cell))
    });
    black.truncate(limit);
    Ranking {
        red,
        black,
        ranked_cells,
    }
}

/// One cell's patrols summed over the query's days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatrolSums {
    pub days_patrolled: i64,
    pub findings: i64,
    pub fixed_on_spot: i64,
    pub last: Option<(DateTime<Utc>, String)>,
}

/// Every building cell of the grid in the query's scope, with its patrols (none for cells
/// nobody patrolled), ordered by code.
pub fn patrol_report(
    context: &FoldContext,
    query: &PatrolQuery,
    sums: &BTreeMap<String, PatrolSums>,
) -> Result<PatrolReport, ReadError> {
    let grid = context.grid();
    if let Some(district) = &query.district {
        if grid.cell(district).is_none_or(|c| c.tier != Tier::District) {
            return Err(ReadError::invalid(
                "district",
                format!("no district `{district}` in the grid"),
            ));
        }
    }
    if let Some(community) = &query.community {
        if grid
            .cell(community)
            .is_none_or(|c| c.tier != Tier::Community)
        {
            return Err(ReadError::invalid(
                "community",
                format!("no community `{community}` in the grid"),
            ));
        }
    }
    let mut buildings: Vec<&str> = grid.building_codes().collect();
    buildings.sort_unstable();
    let mut cells = Vec::new();
    for code in buildings {
        let Some(location) = grid.locate_building(code) else {
            continue;
        };
        let in_scope = query
            .district
            .as_deref()
            .is_none_or(|d| d == location.district)
            && query
                .community
                .as_deref()
                .is_none_or(|c| c == location.community);
        if !in_scope {
            continue;
        }
        let sum = sums.get(code).cloned().unwrap_or_default();
        let patrolled = sum.days_patrolled > 0;
        if query.patrolled.is_some_and(|want| want != patrolled) {
            continue;
        }
        cells.push(PatrolCoverage {
            cell: code.to_owned(),
            name: cell_name(context, code),
            district: location.district.clone(),
            community: location.community.clone(),
            days_patrolled: sum.days_patrolled,
            findings: sum.findings,
            fixed_on_spot: sum.fixed_on_spot,
            last_patrol_at: sum.last.as_ref().map(|(at, _)| *at),
            last_worker: sum.last.map(|(_, worker)| worker),
        });
    }
    let patrolled = cells.iter().filter(|c| c.days_patrolled > 0).count();
    Ok(PatrolReport {
        not_patrolled: cells.len() - patrolled,
        patrolled,
        cells,
    })
}

/// A worker's task from the case they hold.
pub fn inbox_task(case: &CaseView) -> InboxTask {
    let s = &case.summary;
    InboxTask {
        case_id: s.case_id,
        title: s.title.clone(),
        category: s.category.clone(),
        priority: s.priority,
        status: s.status,
        tier: s.tier,
        cell: s.cell.clone(),
        building: s.location.building.clone(),
        dispatched_at: s.dispatched_at,
        reworks: s.reworks,
        sla: case.sla.clone(),
    }
}

/// Whether a case belongs in its assignee's inbox.
pub fn is_in_inbox(case: &CaseView, worker_id: &str) -> bool {
    case.summary.is_open()
        && case.summary.assignee.as_deref() == Some(worker_id)
        && case.summary.status != CaseStatus::AwaitingDispatch
}

/// The inbox order: the earliest deadline first (tasks without one last), then the oldest
/// dispatch, then case id.
pub fn sort_inbox(tasks: &mut [InboxTask]) {
    tasks.sort_by(|a, b| {
        let deadline = |t: &InboxTask| (t.sla.deadline.is_none(), t.sla.deadline);
        deadline(a)
            .cmp(&deadline(b))
            .then(a.dispatched_at.cmp(&b.dispatched_at))
            .then(a.case_id.cmp(&b.case_id))
    });
}

/// A case's trail as served: the entries parsed from their hashed text, and what
/// verification found.
pub fn audit_trail(
    case_id: CaseId,
    mut records: Vec<AuditRecord>,
    head: Option<&AuditHead>,
) -> AuditTrail {
    records.sort_by_key(|r| r.sequence);
    let problems = verify_trail(
        case_id,
        &records,
        head.map(|h| (h.sequence, h.hash.as_str())),
    );
    let entries = records
        .into_iter()
        .filter_map(|record| {
            let entry = record.entry().ok()?;
            Some(AuditTrailEntry {
                entry,
                prev_hash: record.prev_hash,
                hash: record.hash,
            })
        })
        .collect();
    AuditTrail {
        case_id,
        entries,
        problems,
    }
}
