//! The routing policy, one business rule per test: which tier, cell and worker a case goes
//! to, and why a tier was passed over. Pure: a grid, the bundled catalogue, open loads and
//! a cursor in, a decision out.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::json;
use wangge_engine::domain::routing::{
    route, route_ladder, RouteDecision, RouteError, RouteRequest, SkipReason, SkippedTier,
    WorkerLoad,
};
use wangge_engine::grid::{
    CategoryCatalogue, GridDirectory, GridEvent, GridState, WorkerDutyChanged,
};
use wangge_schemas::{GridLocation, Tier};

// ---------------------------------------------------------------------------------------
// The harness: one street office, the bundled catalogue, and a sentence-like helper
// ---------------------------------------------------------------------------------------

static CATALOGUE: LazyLock<CategoryCatalogue> = LazyLock::new(CategoryCatalogue::sample);
static SAMPLE_CITY: LazyLock<GridState> = LazyLock::new(GridDirectory::sample_city);

const STREET: &str = "330106001";
/// 学院公寓社区: two staff.
const STAFFED: &str = "330106001001";
/// 2栋 and 4栋 of 学院公寓社区, each with its grid worker.
const BUILDING: &str = "330106001001001";
const NEIGHBOUR: &str = "330106001001002";
/// 学院北苑社区 and its 3栋: nobody works there yet.
const UNSTAFFED: &str = "330106001002";
const EMPTY_BUILDING: &str = "330106001002001";

/// 翠苑街道 with a utilities, a sanitation and an urban-management officer; one staffed and
/// one unstaffed community.
fn street() -> GridState {
    let file = json!({
        "city": "示范市 (routing street)",
        "districts": [{
            "code": STREET, "name": "翠苑街道", "supervisor": "sup-330106001",
            "communities": [
                {"code": STAFFED, "name": "学院公寓社区", "supervisor": "sup-330106001001",
                 "buildings": [
                    {"code": BUILDING, "name": "2栋", "supervisor": "sup-330106001001001"},
                    {"code": NEIGHBOUR, "name": "4栋", "supervisor": "sup-330106001001002"}
                 ]},
                {"code": UNSTAFFED, "name": "学院北苑社区", "supervisor": "sup-330106001002",
                 "buildings": [
                    {"code": EMPTY_BUILDING, "name": "3栋", "supervisor": "sup-330106001002001"}
                 ]}
            ]
        }],
        "workers": [
            {"id": "w-330106001001001", "name": "陈建华", "cells": [BUILDING],
             "skills": ["drainage", "fire_safety", "lighting.stairwell_light_out"], "on_duty": true},
            {"id": "w-330106001001002", "name": "林秀英", "cells": [NEIGHBOUR],
             "skills": ["drainage", "fire_safety"], "on_duty": true},
            {"id": "cs-330106001001-1", "name": "王立新", "cells": [STAFFED],
             "skills": ["drainage", "sanitation", "facility", "lighting"], "on_duty": true},
            {"id": "cs-330106001001-2", "name": "李桂兰", "cells": [STAFFED],
             "skills": ["sanitation", "service", "inquiry"], "on_duty": true},
            {"id": "ds-330106001-utilities", "name": "赵国强", "department": "市政公用 utilities",
             "cells": [STREET], "skills": ["facility", "utilities", "drainage"], "on_duty": true},
            {"id": "ds-330106001-sanitation", "name": "吴春梅", "department": "环卫 sanitation",
             "cells": [STREET], "skills": ["sanitation"], "on_duty": true},
            {"id": "ds-330106001-urban", "name": "孙卫东", "department": "城管 urban management",
             "cells": [STREET], "skills": ["construction", "traffic"], "on_duty": true}
        ]
    });
    GridDirectory::from_json(&file.to_string(), "routing street").expect("the street is valid")
}

fn location(grid: &GridState, building: &str) -> GridLocation {
    grid.locate_building(building)
        .unwrap_or_else(|| panic!("no building {building}"))
        .clone()
}

fn off_duty(grid: &mut GridState, ids: &[&str]) {
    for id in ids {
        grid.apply(&GridEvent::WorkerDutyChanged(WorkerDutyChanged {
            worker_id: (*id).to_owned(),
            on_duty: false,
        }))
        .expect("a registered worker");
    }
}

/// A case to route: category and building, plus what a test changes.
struct Case {
    category: &'static str,
    building: &'static str,
    start_tier: Option<Tier>,
    exclude: Vec<String>,
    load: WorkerLoad,
    cursor: u64,
}

fn case(category: &'static str, building: &'static str) -> Case {
    Case {
        category,
        building,
        start_tier: None,
        exclude: Vec::new(),
        load: WorkerLoad::new(),
        cursor: 0,
    }
}

impl Case {
    fn excluding(mut self, ids: &[&str]) -> Self {
        self.exclude = ids.iter().map(|id| (*id).to_owned()).collect();
        self
    }
    fn loads(mut self, loads: &[(&str, u32)]) -> Self {
        self.load = loads.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect();
        self
    }
    fn cursor(mut self, cursor: u64) -> Self {
        self.cursor = cursor;
        self
    }
    fn starting_at(mut self, tier: Tier) -> Self {
        self.start_tier = Some(tier);
        self
    }
    fn routed_in(&self, grid: &GridState) -> Result<RouteDecision, RouteError> {
        let location = location(grid, self.building);
        let category = CATALOGUE
            .get(self.category)
            .unwrap_or_else(|| panic!("no category {}", self.category));
        route(
            &RouteRequest {
                location: &location,
                category,
                start_tier: self.start_tier,
                exclude: &self.exclude,
                cursor: self.cursor,
            },
            grid,
            &self.load,
        )
    }
    fn routed(&self, grid: &GridState) -> RouteDecision {
        self.routed_in(grid)
            .unwrap_or_else(|error| panic!("{} not routed: {error}", self.category))
    }
}

fn skipped(tier: Tier, cell: &str, reason: SkipReason) -> SkippedTier {
    SkippedTier {
        tier,
        cell: cell.to_owned(),
        reason,
    }
}

fn to(tier: Tier, cell: &str, assignee: &str, skipped: Vec<SkippedTier>) -> RouteDecision {
    RouteDecision {
        tier,
        cell: cell.to_owned(),
        assignee: assignee.to_owned(),
        fallback: false,
        skipped,
    }
}

// ---------------------------------------------------------------------------------------
// Territory and owner
// ---------------------------------------------------------------------------------------

#[test]
fn a_blocked_drain_goes_to_the_buildings_grid_worker() {
    let decision = case("drainage.blocked", BUILDING).routed(&street());
    assert_eq!(
        decision,
        to(Tier::Building, BUILDING, "w-330106001001001", vec![])
    );
    assert_eq!(decision.worker_id(), Some("w-330106001001001"));
}

#[test]
fn a_missing_manhole_cover_goes_to_the_district_owner_first() {
    assert_eq!(
        case("facility.manhole_cover", BUILDING).routed(&street()),
        to(Tier::District, STREET, "ds-330106001-utilities", vec![])
    );
}

#[test]
fn a_missing_manhole_cover_goes_to_the_territory_when_the_owner_cannot_take_it() {
    let mut grid = street();
    off_duty(&mut grid, &["ds-330106001-utilities"]);
    assert_eq!(
        case("facility.manhole_cover", BUILDING).routed(&grid),
        to(
            Tier::Community,
            STAFFED,
            "cs-330106001001-1",
            vec![skipped(Tier::District, STREET, SkipReason::NobodyWithSkill)]
        )
    );
}

#[test]
fn a_broken_stairwell_light_goes_to_the_property_owner_in_the_community_before_the_building() {
    assert_eq!(
        case("lighting.stairwell_light_out", BUILDING).routed(&street()),
        to(Tier::Community, STAFFED, "cs-330106001001-1", vec![])
    );
}

#[test]
fn exposed_rubbish_goes_to_the_territory_first() {
    assert_eq!(
        case("sanitation.garbage_exposed", BUILDING).routed(&street()),
        to(Tier::Community, STAFFED, "cs-330106001001-1", vec![])
    );
}

#[test]
fn exposed_rubbish_goes_to_the_owner_when_the_territory_has_nobody_on_duty() {
    let mut grid = street();
    off_duty(&mut grid, &["cs-330106001001-1", "cs-330106001001-2"]);
    assert_eq!(
        case("sanitation.garbage_exposed", BUILDING).routed(&grid),
        to(
            Tier::District,
            STREET,
            "ds-330106001-sanitation",
            vec![skipped(Tier::Community, STAFFED, SkipReason::NobodyOnDuty)]
        )
    );
}

#[test]
fn the_ladders_of_the_bundled_categories() {
    let ladder = |code: &str| route_ladder(CATALOGUE.get(code).expect("category"), None);
    use Tier::{Building, Community, District};
    assert_eq!(ladder("facility.manhole_cover"), vec![District, Community]);
    assert_eq!(
        ladder("lighting.stairwell_light_out"),
        vec![Community, Building, District]
    );
    assert_eq!(
        ladder("drainage.blocked"),
        vec![Building, Community, District]
    );
    assert_eq!(
        ladder("sanitation.garbage_exposed"),
        vec![Community, District]
    );
    assert_eq!(ladder("utilities.water_outage"), vec![District]);
    let drain = CATALOGUE.get("drainage.blocked").expect("category");
    assert_eq!(
        route_ladder(drain, Some(Community)),
        vec![Community, District]
    );
}

// ---------------------------------------------------------------------------------------
// Choosing the worker
// ---------------------------------------------------------------------------------------

#[test]
fn an_off_duty_grid_worker_is_skipped_and_the_community_takes_the_drain() {
    let mut grid = street();
    off_duty(&mut grid, &["w-330106001001001"]);
    assert_eq!(
        case("drainage.blocked", BUILDING).routed(&grid),
        to(
            Tier::Community,
            STAFFED,
            "cs-330106001001-1",
            vec![skipped(Tier::Building, BUILDING, SkipReason::NobodyOnDuty)]
        )
    );
}

#[test]
fn the_least_loaded_qualified_worker_wins() {
    let rubbish = case("sanitation.garbage_exposed", BUILDING)
        .loads(&[("cs-330106001001-1", 3), ("cs-330106001001-2", 1)]);
    for cursor in 0..4 {
        let decision = Case {
            cursor,
            ..rubbish.clone_case()
        }
        .routed(&street());
        assert_eq!(decision.assignee, "cs-330106001001-2", "cursor {cursor}");
    }
}

#[test]
fn a_worker_without_open_tasks_counts_as_zero_load() {
    let decision = case("sanitation.garbage_exposed", BUILDING)
        .loads(&[("cs-330106001001-1", 1)])
        .routed(&street());
    assert_eq!(decision.assignee, "cs-330106001001-2");
}

#[test]
fn equally_loaded_workers_take_turns_by_the_cursor() {
    let turns: Vec<String> = (0..5)
        .map(|cursor| {
            case("sanitation.garbage_exposed", BUILDING)
                .loads(&[("cs-330106001001-1", 2), ("cs-330106001001-2", 2)])
                .cursor(cursor)
                .routed(&street())
                .assignee
        })
        .collect();
    assert_eq!(
        turns,
        [
            "cs-330106001001-1",
            "cs-330106001001-2",
            "cs-330106001001-1",
            "cs-330106001001-2",
            "cs-330106001001-1",
        ]
    );
}

#[test]
fn the_same_request_is_always_routed_the_same_way() {
    let grid = street();
    let first = case("sanitation.garbage_exposed", BUILDING)
        .cursor(7)
        .routed(&grid);
    for _ in 0..10 {
        assert_eq!(
            case("sanitation.garbage_exposed", BUILDING)
                .cursor(7)
                .routed(&grid),
            first
        );
    }
}

#[test]
fn workers_without_the_skill_are_passed_over_up_to_the_district_supervisor() {
    // The neighbour's grid worker does not do stairwell lights; the community owns them.
    let mut grid = street();
    off_duty(&mut grid, &["cs-330106001001-1"]);
    assert_eq!(
        case("lighting.stairwell_light_out", NEIGHBOUR).routed(&grid),
        RouteDecision {
            tier: Tier::District,
            cell: STREET.to_owned(),
            assignee: "sup-330106001".to_owned(),
            fallback: true,
            skipped: vec![
                skipped(Tier::Community, STAFFED, SkipReason::NobodyWithSkill),
                skipped(Tier::Building, NEIGHBOUR, SkipReason::NobodyWithSkill),
                skipped(Tier::District, STREET, SkipReason::NobodyWithSkill),
            ],
        }
    );
}

// ---------------------------------------------------------------------------------------
// Skipping tiers, and 兜底
// ---------------------------------------------------------------------------------------

#[test]
fn tiers_with_nobody_are_skipped_and_the_decision_says_why() {
    let decision = case("drainage.blocked", EMPTY_BUILDING).routed(&street());
    assert_eq!(
        decision,
        to(
            Tier::District,
            STREET,
            "ds-330106001-utilities",
            vec![
                skipped(Tier::Building, EMPTY_BUILDING, SkipReason::NoWorkers),
                skipped(Tier::Community, UNSTAFFED, SkipReason::NoWorkers),
            ]
        )
    );
    assert_eq!(
        decision.skipped[0].to_string(),
        "building 330106001002001: no workers"
    );
}

#[test]
fn when_nobody_anywhere_can_take_it_the_district_supervisor_does() {
    let decision = case("inquiry.citizen_card", EMPTY_BUILDING).routed(&street());
    assert_eq!(
        decision,
        RouteDecision {
            tier: Tier::District,
            cell: STREET.to_owned(),
            assignee: "sup-330106001".to_owned(),
            fallback: true,
            skipped: vec![
                skipped(Tier::Community, UNSTAFFED, SkipReason::NoWorkers),
                skipped(Tier::District, STREET, SkipReason::NobodyWithSkill),
            ],
        }
    );
    assert_eq!(decision.worker_id(), None);
}

#[test]
fn when_the_whole_street_is_off_duty_the_district_supervisor_takes_it() {
    let mut grid = street();
    let everyone: Vec<String> = grid.workers().map(|w| w.id.clone()).collect();
    let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
    off_duty(&mut grid, &everyone);
    let decision = case("drainage.blocked", BUILDING).routed(&grid);
    assert!(decision.fallback);
    assert_eq!(decision.assignee, "sup-330106001");
    assert!(decision
        .skipped
        .iter()
        .all(|tier| tier.reason == SkipReason::NobodyOnDuty));
}

// ---------------------------------------------------------------------------------------
// Decliners, reassignment, escalation
// ---------------------------------------------------------------------------------------

#[test]
fn a_worker_who_declined_is_never_chosen_again() {
    let grid = street();
    let declined_once = case("drainage.blocked", BUILDING)
        .excluding(&["w-330106001001001"])
        .routed(&grid);
    assert_eq!(
        declined_once,
        to(
            Tier::Community,
            STAFFED,
            "cs-330106001001-1",
            vec![skipped(Tier::Building, BUILDING, SkipReason::AllExcluded)]
        )
    );
    let declined_twice = case("drainage.blocked", BUILDING)
        .excluding(&["w-330106001001001", "cs-330106001001-1"])
        .routed(&grid);
    assert_eq!(declined_twice.assignee, "ds-330106001-utilities");
    let everyone_declined = case("drainage.blocked", BUILDING)
        .excluding(&[
            "w-330106001001001",
            "cs-330106001001-1",
            "ds-330106001-utilities",
        ])
        .routed(&grid);
    assert!(everyone_declined.fallback);
    assert_eq!(everyone_declined.assignee, "sup-330106001");
}

#[test]
fn a_reassignment_excludes_the_current_assignee_even_when_least_loaded() {
    let decision = case("sanitation.garbage_exposed", BUILDING)
        .loads(&[("cs-330106001001-1", 0), ("cs-330106001001-2", 9)])
        .excluding(&["cs-330106001001-1"])
        .routed(&street());
    assert_eq!(decision.assignee, "cs-330106001001-2");
}

#[test]
fn an_escalated_case_starts_at_the_named_tier_and_only_goes_up() {
    let decision = case("drainage.blocked", BUILDING)
        .starting_at(Tier::Community)
        .routed(&street());
    assert_eq!(
        decision,
        to(Tier::Community, STAFFED, "cs-330106001001-1", vec![])
    );
    let to_district = case("drainage.blocked", BUILDING)
        .starting_at(Tier::District)
        .routed(&street());
    assert_eq!(to_district.assignee, "ds-330106001-utilities");
}

// ---------------------------------------------------------------------------------------
// Locations that do not fit the grid
// ---------------------------------------------------------------------------------------

#[test]
fn a_case_in_a_building_the_grid_does_not_have_is_refused() {
    let grid = street();
    let nowhere = GridLocation {
        district: STREET.into(),
        community: STAFFED.into(),
        building: "330106001001099".into(),
    };
    let error = route(
        &RouteRequest {
            location: &nowhere,
            category: CATALOGUE.get("drainage.blocked").expect("category"),
            start_tier: None,
            exclude: &[],
            cursor: 0,
        },
        &grid,
        &WorkerLoad::new(),
    )
    .expect_err("unknown building");
    assert_eq!(
        error.to_string(),
        "building 330106001001099 is not in the grid"
    );
}

#[test]
fn a_case_whose_location_disagrees_with_the_grid_is_refused() {
    let grid = street();
    let misplaced = GridLocation {
        district: STREET.into(),
        community: UNSTAFFED.into(),
        building: BUILDING.into(),
    };
    let error = route(
        &RouteRequest {
            location: &misplaced,
            category: CATALOGUE.get("drainage.blocked").expect("category"),
            start_tier: None,
            exclude: &[],
            cursor: 0,
        },
        &grid,
        &WorkerLoad::new(),
    )
    .expect_err("misplaced");
    assert!(
        matches!(error, RouteError::LocationMismatch { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("community 330106001001"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// The sample city
// ---------------------------------------------------------------------------------------

#[test]
fn in_the_sample_city_every_drain_goes_to_its_buildings_worker_unless_off_duty() {
    let city = &*SAMPLE_CITY;
    let drain = CATALOGUE.get("drainage.blocked").expect("category");
    for building in city.building_codes() {
        let location = location(city, building);
        let decision = route(
            &RouteRequest {
                location: &location,
                category: drain,
                start_tier: None,
                exclude: &[],
                cursor: 0,
            },
            city,
            &WorkerLoad::new(),
        )
        .expect("routed");
        let worker = format!("w-{building}");
        if city.worker(&worker).expect("registered").on_duty {
            assert_eq!(decision, to(Tier::Building, building, &worker, vec![]));
        } else {
            assert_eq!(
                decision.skipped[0],
                skipped(Tier::Building, building, SkipReason::NobodyOnDuty)
            );
            assert!(decision.tier > Tier::Building && !decision.fallback);
        }
    }
}

#[test]
fn in_the_sample_city_a_manhole_cover_goes_to_the_streets_utilities_department() {
    let decision = Case {
        category: "facility.manhole_cover",
        building: "330106003020002",
        start_tier: None,
        exclude: Vec::new(),
        load: WorkerLoad::new(),
        cursor: 0,
    }
    .routed(&SAMPLE_CITY);
    assert_eq!(
        decision,
        to(
            Tier::District,
            "330106003",
            "ds-330106003-utilities",
            vec![]
        )
    );
}

// ---------------------------------------------------------------------------------------
// Property: whatever the duty roster, loads, exclusions and cursor
// ---------------------------------------------------------------------------------------

impl Case {
    fn clone_case(&self) -> Case {
        Case {
            category: self.category,
            building: self.building,
            start_tier: self.start_tier,
            exclude: self.exclude.clone(),
            load: self.load.clone(),
            cursor: self.cursor,
        }
    }
}

fn scenario() -> impl Strategy<Value = (usize, usize, Option<Tier>, Vec<u8>, u64)> {
    (
        0..1192usize,
        0..19usize,
        proptest::option::of(prop_oneof![
            Just(Tier::Building),
            Just(Tier::Community),
            Just(Tier::District)
        ]),
        // One byte per worker near the case: off duty, excluded, and open load.
        proptest::collection::vec(any::<u8>(), 8),
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The chosen worker is on duty, has the skill, is not excluded, covers the chosen
    /// cell, and that cell contains the case's location; a skipped tier really had nobody;
    /// and nobody at the chosen tier had a smaller load.
    #[test]
    fn the_chosen_worker_always_qualifies_and_covers_the_cases_cell(
        (building_index, category_index, start_tier, knobs, cursor) in scenario()
    ) {
        let mut grid = SAMPLE_CITY.clone();
        let mut buildings: Vec<&str> = SAMPLE_CITY.building_codes().collect();
        buildings.sort_unstable();
        let location = location(&grid, buildings[building_index]);
        let category = CATALOGUE.iter().nth(category_index).expect("19 categories");

        let nearby: Vec<String> = [&location.building, &location.community, &location.district]
            .into_iter()
            .flat_map(|cell| grid.workers_of(cell).map(|w| w.id.clone()).collect::<Vec<_>>())
            .collect();
        let mut exclude = Vec::new();
        let mut load = WorkerLoad::new();
        for (id, knob) in nearby.iter().zip(knobs.iter().cycle()) {
            if knob % 4 == 0 {
                grid.apply(&GridEvent::WorkerDutyChanged(WorkerDutyChanged {
                    worker_id: id.clone(),
                    on_duty: false,
                })).expect("registered");
            }
            if knob % 7 == 0 {
                exclude.push(id.clone());
            }
            load.insert(id.clone(), u32::from(knob % 3));
        }

        let request = RouteRequest {
            location: &location,
            category,
            start_tier,
            exclude: &exclude,
            cursor,
        };
        let decision = route(&request, &grid, &load).expect("every sample building routes");
        prop_assert_eq!(&route(&request, &grid, &load).expect("again"), &decision);

        let cell_of = |tier| match tier {
            Tier::Building => &location.building,
            Tier::Community => &location.community,
            Tier::District => &location.district,
        };
        prop_assert_eq!(&decision.cell, cell_of(decision.tier));
        let qualifies = |id: &str| {
            grid.worker(id).is_some_and(|w| {
                w.on_duty && w.has_skill(category.skill()) && !exclude.iter().any(|e| e == id)
            })
        };
        for skip in &decision.skipped {
            prop_assert_eq!(&skip.cell, cell_of(skip.tier));
            prop_assert!(grid.workers_of(&skip.cell).all(|w| !qualifies(&w.id)));
        }
        let ladder = route_ladder(category, start_tier);
        if decision.fallback {
            prop_assert_eq!(decision.skipped.len(), ladder.len());
            prop_assert_eq!(Some(decision.assignee.as_str()), grid.supervisor_of(&location.district));
        } else {
            let worker = grid.worker(&decision.assignee).expect("a registered worker");
            prop_assert!(worker.on_duty);
            prop_assert!(worker.has_skill(category.skill()));
            prop_assert!(!exclude.contains(&worker.id));
            prop_assert!(worker.covers(&decision.cell));
            prop_assert_eq!(ladder[decision.skipped.len()], decision.tier);
            let mine = load.get(&worker.id).copied().unwrap_or(0);
            for other in grid.workers_of(&decision.cell).filter(|w| qualifies(&w.id)) {
                prop_assert!(load.get(&other.id).copied().unwrap_or(0) >= mine);
            }
        }
    }
}
