//! The routing policy: which cell and which worker a case goes to. Pure: the grid, the
//! category, the workers' open loads and a round-robin cursor come in as values.
//!
//! 1. **The ladder of tiers.** A facility goes to its owner first, then the territory
//!    (先属主后属地): `[owner_tier, handling_tier, …up to district]`. An event (and every
//!    service request) goes to the territory first, then the owner (先属地后属主):
//!    `[handling_tier, owner_tier, …up to district]`. After an escalation the shell names the
//!    tier to start at, and the ladder is that tier and every tier above it.
//! 2. **The cell at each tier** is the one that contains the case's location.
//! 3. **A worker there qualifies** when on duty, holding the category's skill (the exact
//!    code, a dotted prefix, or `*`), and not excluded (a decliner, or the current assignee
//!    on a reassignment). Among those, the least open load wins; a tie is broken round robin
//!    by the cursor, over the tied workers in order of id.
//! 4. **A tier where nobody qualifies is skipped**, and the decision says why.
//! 5. **兜底:** when every tier is skipped, the case goes to the district cell's supervisor
//!    (`fallback: true`): where responsibility is unclear, the district takes it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use wangge_schemas::grid::{Category, RoutingRule};
use wangge_schemas::{GridLocation, Tier};

use crate::grid::{tier_name, GridState, Worker};

/// Open tasks per worker id; a worker who is not listed has none.
pub type WorkerLoad = HashMap<String, u32>;

/// What the policy needs to know about one case to route it.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// Where the case is (its building fixes its community and district).
    pub location: &'a GridLocation,
    /// The case's category: its routing rule, tiers and skill.
    pub category: &'a Category,
    /// `None`: follow the category's rule. `Some(tier)`: start at this tier and only go up
    /// (after an escalation).
    pub start_tier: Option<Tier>,
    /// Workers who must not get the case: those who declined it, and the current assignee
    /// on a reassignment.
    pub exclude: &'a [String],
    /// Breaks ties between equally loaded workers: the `cursor % n`-th of the `n` tied
    /// workers in order of id. The shell advances it (e.g. per dispatch) to rotate.
    pub cursor: u64,
}

/// Where the case goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub tier: Tier,
    /// The responsible cell's code (building, community or district).
    pub cell: String,
    /// The chosen worker's id, or with `fallback` the district supervisor's.
    pub assignee: String,
    /// Nobody qualified at any tier: the district supervisor takes it (兜底).
    pub fallback: bool,
    /// The tiers tried before this one and why each was passed over, in order.
    pub skipped: Vec<SkippedTier>,
}

impl RouteDecision {
    /// The chosen worker, or `None` when the case fell back to the district supervisor.
    pub fn worker_id(&self) -> Option<&str> {
        (!self.fallback).then_some(self.assignee.as_str())
    }
}

/// A tier the case passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTier {
    pub tier: Tier,
    pub cell: String,
    pub reason: SkipReason,
}

/// Why nobody at a tier could take the case, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The cell has no workers at all.
    NoWorkers,
    /// Nobody covering the cell is on duty.
    NobodyOnDuty,
    /// Someone is on duty, but nobody on duty has the skill.
    NobodyWithSkill,
    /// Everyone on duty with the skill is excluded (declined, or is the current assignee).
    AllExcluded,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoWorkers => "no workers",
            Self::NobodyOnDuty => "nobody on duty",
            Self::NobodyWithSkill => "nobody on duty with the skill",
            Self::AllExcluded => "everyone qualified is excluded",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SkippedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            tier_name(&self.tier),
            self.cell,
            self.reason
        )
    }
}

/// A case that cannot be routed because its location does not fit the grid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("building {building} is not in the grid")]
    UnknownBuilding { building: String },
    #[error(
        "the case is located in building {building} of community {community}, district \
         {district}, but the grid puts that building in community {grid_community}, district \
         {grid_district}"
    )]
    LocationMismatch {
        building: String,
        community: String,
        district: String,
        grid_community: String,
        grid_district: String,
    },
}

/// The tiers a case is offered to, in order, before the district supervisor takes it.
pub fn route_ladder(category: &Category, start_tier: Option<Tier>) -> Vec<Tier> {
    fn push(ladder: &mut Vec<Tier>, tier: Tier) {
        if !ladder.contains(&tier) {
            ladder.push(tier);
        }
    }
    let (first, second) = match start_tier {
        Some(tier) => (tier, tier),
        None => match category.routing {
            RoutingRule::Facility => (category.owner_tier(), category.handling_tier),
            RoutingRule::Event => (category.handling_tier, category.owner_tier()),
        },
    };
    let mut ladder = Vec::with_capacity(3);
    push(&mut ladder, first);
    push(&mut ladder, second);
    let mut above = second.parent();
    while let Some(tier) = above {
        push(&mut ladder, tier);
        above = tier.parent();
    }
    ladder
}

/// Routes one case: the responsible tier, cell and worker, or the district supervisor.
pub fn route(
    request: &RouteRequest<'_>,
    grid: &GridState,
    load: &WorkerLoad,
) -> Result<RouteDecision, RouteError> {
    let location = request.location;
    let Some(known) = grid.locate_building(&location.building) else {
        return Err(RouteError::UnknownBuilding {
            building: location.building.clone(),
        });
    };
    if known != location {
        return Err(RouteError::LocationMismatch {
            building: location.building.clone(),
            community: location.community.clone(),
            district: location.district.clone(),
            grid_community: known.community.clone(),
            grid_district: known.district.clone(),
        });
    }

    let skill = request.category.skill();
    let excluded: BTreeSet<&str> = request.exclude.iter().map(String::as_str).collect();
    let mut skipped = Vec::new();
    for tier in route_ladder(request.category, request.start_tier) {
        // The building is known and its location matches, so every tier's cell exists.
        let Some(cell) = grid.cell_at(location, tier) else {
            continue;
        };
        match choose(
            grid.workers_of(&cell.code),
            skill,
            &excluded,
            load,
            request.cursor,
        ) {
            Ok(worker) => {
                debug_assert!(worker.on_duty && worker.has_skill(skill));
                return Ok(RouteDecision {
                    tier,
                    cell: cell.code.clone(),
                    assignee: worker.id.clone(),
                    fallback: false,
                    skipped,
                });
            }
            Err(reason) => skipped.push(SkippedTier {
                tier,
                cell: cell.code.clone(),
                reason,
            }),
        }
    }

    let district = &location.district;
    let supervisor = grid
        .supervisor_of(district)
        .map(str::to_owned)
        .unwrap_or_default();
    debug_assert!(!supervisor.is_empty(), "every cell has a supervisor");
    Ok(RouteDecision {
        tier: Tier::District,
        cell: district.clone(),
        assignee: supervisor,
        fallback: true,
        skipped,
    })
}

/// The qualified worker with the least open load, ties broken by the cursor; or why nobody.
fn choose<'g>(
    workers: impl Iterator<Item = &'g Worker>,
    skill: &str,
    excluded: &BTreeSet<&str>,
    load: &WorkerLoad,
    cursor: u64,
) -> Result<&'g Worker, SkipReason> {
    let mut reason = SkipReason::NoWorkers;
    let mut best_load = u32::MAX;
    let mut tied: Vec<&Worker> = Vec::new();
    for worker in workers {
        // The furthest any worker got explains the skip: any worker at all, then on duty,
        // then with the skill, then not excluded.
        let stage = if !worker.on_duty {
            SkipReason::NobodyOnDuty
        } else if !worker.has_skill(skill) {
            SkipReason::NobodyWithSkill
        } else if excluded.contains(worker.id.as_str()) {
            SkipReason::AllExcluded
        } else {
            let open = load.get(&worker.id).copied().unwrap_or(0);
            if open < best_load {
                best_load = open;
                tied.clear();
            }
            if open == best_load {
                tied.push(worker);
            }
            continue;
        };
        reason = furthest(reason, stage);
    }
    if tied.is_empty() {
        return Err(reason);
    }
    // Workers come in order of id, so the cursor picks the same worker for the same state.
    let index = (cursor % tied.len() as u64) as usize;
    Ok(tied[index])
}

fn furthest(a: SkipReason, b: SkipReason) -> SkipReason {
    let rank = |reason| match reason {
        SkipReason::NoWorkers => 0,
        SkipReason::NobodyOnDuty => 1,
        SkipReason::NobodyWithSkill => 2,
        SkipReason::AllExcluded => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
