//! The parts of an answer both stores build the same way: grouping keys, names from the grid,
//! rankings, the order of every list. A store only selects and sums; what a sum means and
//! how it is presented is decided here, once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use wangge_engine::domain::CaseStatus;
use wangge_schemas::{CaseId, Tier};

use crate::fold::audit::{
    verify_seals, verify_trail, AuditHead, AuditProblem, AuditRecord, SealPolicy,
};
use crate::fold::cases::{Light, LightCounts};
use crate::fold::indicators::IndicatorKey;
use crate::fold::FoldContext;
use crate::query::{
    AuditTrail, AuditTrailEntry, BoardGroup, BoardQuery, BoardRow, CaseView, InboxTask,
    IndicatorGroup, OverdueCase, PatrolCoverage, PatrolQuery, PatrolReport, RankedCell, Ranking,
    RankingRules, ReadError,
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
    supervised: bool,
) -> bool {
    query.supervised.is_none_or(|wanted| wanted == supervised)
        && query.district.as_deref().is_none_or(|d| d == district)
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
    sums: BTreeMap<(String, Option<Tier>), BoardSums>,
) -> Vec<BoardRow> {
    sums.into_iter()
        .filter(|(_, sums)| sums.counts.total() > 0)
        .map(|((code, tier), sums)| BoardRow {
            name: cell_name(context, &code),
            code,
            tier,
            light: worst_light(&sums.counts),
            counts: sums.counts,
            supervised: sums.supervised,
        })
        .collect()
}

/// One board group's open cases by light, and how many of them are under supervision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardSums {
    pub counts: LightCounts,
    pub supervised: i64,
}

impl BoardSums {
    /// Adds one board entry's counts.
    pub fn add(&mut self, counts: &LightCounts, supervised: bool) {
        self.counts.merge(counts);
        if supervised {
            self.supervised += counts.total();
        }
    }
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
    indicator_group_key_of(
        group,
        key.day,
        [&key.district, &key.community, &key.cell, &key.category],
    )
}

/// [`indicator_group_key`] of a key given as its day and its district, community, cell and
/// category names.
pub fn indicator_group_key_of(
    group: IndicatorGroup,
    day: chrono::NaiveDate,
    [district, community, cell, category]: [&str; 4],
) -> String {
    match group {
        IndicatorGroup::Total => "total".to_owned(),
        IndicatorGroup::Day => day.to_string(),
        IndicatorGroup::District => district.to_owned(),
        IndicatorGroup::Community => community.to_owned(),
        IndicatorGroup::Cell => cell.to_owned(),
        IndicatorGroup::Category => category.to_owned(),
    }
}

/// One cell's due-day counters summed over a ranking's days, as a store reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellSums {
    pub cell: String,
    pub community: String,
    pub due: i64,
    pub closed: i64,
    pub closed_on_time: i64,
}

/// 红黑榜 from each cell's sums (the rules are on [`Ranking`]).
pub fn ranking(context: &FoldContext, cells: Vec<CellSums>, rules: RankingRules) -> Ranking {
    let mut ranked: Vec<RankedCell> = cells
        .into_iter()
        .filter(|sums| sums.due >= rules.min_due)
        .map(|sums| RankedCell {
            name: cell_name(context, &sums.cell),
            on_time_closure_rate: crate::query::rate(sums.closed_on_time, sums.due).unwrap_or(0.0),
            closure_rate: crate::query::rate(sums.closed, sums.due).unwrap_or(0.0),
            cell: sums.cell,
            community: sums.community,
            due: sums.due,
            closed: sums.closed,
            closed_on_time: sums.closed_on_time,
        })
        .collect();
    let ranked_cells = ranked.len();
    // Best first: higher rate, then more cases (a rate over more cases says more), then code.
    ranked.sort_by(|a, b| {
        b.on_time_closure_rate
            .total_cmp(&a.on_time_closure_rate)
            .then(b.due.cmp(&a.due))
            .then(a.cell.cmp(&b.cell))
    });
    // Each list at most half the cells: with fewer than twice the limit, the better half
    // is red and the worse half black, and no cell can be on both.
    let per_list = rules.limit.min(ranked_cells / 2);
    let mut black = ranked.split_off(per_list);
    let red = ranked;
    let lowest_red = red.last().map(|cell| cell.on_time_closure_rate);
    // Worst first: lower rate, then more cases (more evidence of it), then code.
    black.sort_by(|a, b| {
        a.on_time_closure_rate
            .total_cmp(&b.on_time_closure_rate)
            .then(b.due.cmp(&a.due))
            .then(a.cell.cmp(&b.cell))
    });
    black.truncate(per_list);
    // A cell as good as one on the red list is not named among the worst.
    black.retain(|cell| lowest_red.is_some_and(|lowest| cell.on_time_closure_rate < lowest));
    Ranking {
        red,
        black,
        ranked_cells,
        tier: rules.tier,
        min_due: rules.min_due,
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

/// Everything wrong with a case's stored trail: its hash chain against the head the
/// projection recorded, then (with a policy) every entry's seal; in sequence order.
pub fn verify_case_trail(
    case_id: CaseId,
    records: &[AuditRecord],
    head: Option<&AuditHead>,
    seals: Option<&SealPolicy>,
) -> Vec<AuditProblem> {
    let mut problems = verify_trail(
        case_id,
        records,
        head.map(|h| (h.sequence, h.hash.as_str())),
    );
    if let Some(policy) = seals {
        problems.extend(verify_seals(case_id, records, policy));
        // Stable: for one entry, the chain's finding comes before the seal's.
        problems.sort_by_key(|p| p.sequence);
    }
    problems
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
/// verification found (the seals too, when a policy is configured).
pub fn audit_trail(
    case_id: CaseId,
    mut records: Vec<AuditRecord>,
    head: Option<&AuditHead>,
    seals: Option<&SealPolicy>,
) -> AuditTrail {
    records.sort_by_key(|r| r.sequence);
    let problems = verify_case_trail(case_id, &records, head, seals);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(min_due: i64, limit: usize) -> RankingRules {
        RankingRules {
            tier: Tier::Building,
            min_due,
            limit,
        }
    }

    /// Cells `c00`, `c01`, … with `(due, closed on time)` each.
    fn cells(figures: &[(i64, i64)]) -> Vec<CellSums> {
        figures
            .iter()
            .enumerate()
            .map(|(n, (due, on_time))| CellSums {
                cell: format!("c{n:02}"),
                community: "c".into(),
                due: *due,
                closed: *due,
                closed_on_time: *on_time,
            })
            .collect()
    }

    fn codes(list: &[RankedCell]) -> Vec<&str> {
        list.iter().map(|cell| cell.cell.as_str()).collect()
    }

    #[test]
    fn cells_with_fewer_due_cases_than_the_minimum_are_not_ranked() {
        // c00 at 100 % over 2 cases, c01 at 50 % over 10, c02 at 90 % over 10, c03 at 0 %
        // over 1: with a minimum of 10 only c01 and c02 are ranked.
        let figures = [(2, 2), (10, 5), (10, 9), (1, 0)];
        let ranking = ranking(&FoldContext::bundled(), cells(&figures), rules(10, 10));
        assert_eq!(ranking.ranked_cells, 2);
        assert_eq!(codes(&ranking.red), ["c02"]);
        assert_eq!(codes(&ranking.black), ["c01"]);
        assert_eq!(ranking.min_due, 10);
    }

    #[test]
    fn with_fewer_cells_than_two_lists_the_better_half_is_red_and_the_worse_half_black() {
        // Six cells, five to a list: three each, none on both (the case that put one cell
        // first on the red list and fourth on the black).
        let figures = [(25, 3), (20, 12), (30, 27), (12, 6), (15, 15), (40, 10)];
        let ranking = ranking(&FoldContext::bundled(), cells(&figures), rules(10, 5));
        assert_eq!(codes(&ranking.red), ["c04", "c02", "c01"]);
        assert_eq!(codes(&ranking.black), ["c00", "c05", "c03"]);
        // Seven (c06 at 70 %): three each, and the middle one (c01 at 60 %) on neither.
        let mut figures = figures.to_vec();
        figures.push((10, 7));
        let ranking = ranking_of(&figures, rules(10, 5));
        assert_eq!(codes(&ranking.red), ["c04", "c02", "c06"]);
        assert_eq!(codes(&ranking.black), ["c00", "c05", "c03"]);
        // One cell alone is no ranking.
        let ranking = ranking_of(&[(12, 6)], rules(10, 5));
        assert_eq!(ranking.ranked_cells, 1);
        assert!(ranking.red.is_empty() && ranking.black.is_empty());
    }

    fn ranking_of(figures: &[(i64, i64)], rules: RankingRules) -> Ranking {
        ranking(&FoldContext::bundled(), cells(figures), rules)
    }

    #[test]
    fn with_many_cells_each_list_takes_the_limit_and_no_cell_is_on_both() {
        let figures: Vec<(i64, i64)> = (0..25).map(|n| (20, n % 21)).collect();
        let ranking = ranking_of(&figures, rules(10, 10));
        assert_eq!(ranking.ranked_cells, 25);
        assert_eq!((ranking.red.len(), ranking.black.len()), (10, 10));
        let worst_red = ranking.red.last().unwrap().on_time_closure_rate;
        assert!(ranking
            .black
            .iter()
            .all(|cell| cell.on_time_closure_rate < worst_red));
        for red in &ranking.red {
            assert!(!codes(&ranking.black).contains(&red.cell.as_str()));
        }
        // Best first on red, worst first on black; ties by more cases, then code.
        assert_eq!(ranking.red[0].on_time_closure_rate, 1.0);
        assert_eq!(ranking.black[0].on_time_closure_rate, 0.0);
        assert_eq!(codes(&ranking.black)[..2], ["c00", "c21"]);
    }

    #[test]
    fn a_cell_as_good_as_the_red_list_is_never_named_among_the_worst() {
        // Everybody on time: the red list is the busiest half, the black list is empty.
        let figures = [(12, 12), (30, 30), (15, 15), (11, 11)];
        let ranking = ranking_of(&figures, rules(10, 5));
        assert_eq!(codes(&ranking.red), ["c01", "c02"]);
        assert!(ranking.black.is_empty());
        // A tie across the middle: only the cell below it is black.
        let figures = [(10, 10), (10, 5), (10, 5), (10, 2)];
        let ranking = ranking_of(&figures, rules(10, 5));
        assert_eq!(codes(&ranking.red), ["c00", "c01"]);
        assert_eq!(codes(&ranking.black), ["c03"]);
    }
}
