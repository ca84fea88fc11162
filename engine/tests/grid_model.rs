//! The grid with its people: loading a grid file, folding grid events, and every refusal
//! naming what is wrong. Pure and fast: JSON and events in, a grid or an error out.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Value};
use wangge_engine::grid::{
    events_of_file, CategoryCatalogue, CellAdded, GridDirectory, GridError, GridEvent, GridFile,
    GridState, GridWorker, ReferenceDataError, RoutingRule, WorkerCellsChanged, WorkerDutyChanged,
    WorkerRegistered, WorkerSkillsChanged,
};
use wangge_schemas::{GridLocation, Tier};

// ---------------------------------------------------------------------------------------
// The harness: a small street with two communities, and ways to change it
// ---------------------------------------------------------------------------------------

const DISTRICT: &str = "330106001";
const COMMUNITY: &str = "330106001001";
const BUILDING: &str = "330106001001001";
const OTHER_COMMUNITY: &str = "330106001002";
const OTHER_BUILDING: &str = "330106001002001";

fn street() -> Value {
    json!({
        "city": "示范市 (test street)",
        "districts": [{
            "code": DISTRICT, "name": "翠苑街道", "supervisor": "sup-330106001",
            "calendar": "cn-zj",
            "communities": [
                {"code": COMMUNITY, "name": "学院公寓社区", "supervisor": "sup-330106001001",
                 "buildings": [
                    {"code": BUILDING, "name": "2栋", "supervisor": "sup-330106001001001"},
                    {"code": "330106001001002", "name": "4栋", "supervisor": "sup-330106001001002"}
                 ]},
                {"code": OTHER_COMMUNITY, "name": "学院北苑社区", "supervisor": "sup-330106001002",
                 "buildings": [
                    {"code": OTHER_BUILDING, "name": "3栋", "supervisor": "sup-330106001002001"}
                 ]}
            ]
        }],
        "workers": [
            {"id": "w-330106001001001", "name": "陈建华", "cells": [BUILDING],
             "skills": ["drainage", "fire_safety"], "on_duty": true},
            {"id": "cs-330106001001-1", "name": "王立新", "department": "社区网格长",
             "cells": [COMMUNITY], "skills": ["sanitation", "facility"], "on_duty": true},
            {"id": "ds-330106001-utilities", "name": "赵国强", "department": "市政公用 utilities",
             "cells": [DISTRICT], "skills": ["facility", "utilities"], "on_duty": true}
        ]
    })
}

fn load(file: &Value) -> Result<GridState, ReferenceDataError> {
    GridDirectory::from_json(&file.to_string(), "test street")
}

fn loaded() -> GridState {
    load(&street()).expect("the test street is valid")
}

/// The message of the error a broken file gets.
fn load_error(file: &Value) -> String {
    match load(file) {
        Ok(_) => panic!("the broken file was accepted"),
        Err(error) => error.to_string(),
    }
}

fn building(code: &str, parent: &str) -> GridEvent {
    GridEvent::CellAdded(CellAdded {
        tier: Tier::Building,
        code: code.to_owned(),
        name: "13栋".to_owned(),
        parent: Some(parent.to_owned()),
        supervisor: format!("sup-{code}"),
        calendar: None,
    })
}

fn worker(id: &str, cells: &[&str], skills: &[&str]) -> GridWorker {
    GridWorker {
        id: id.to_owned(),
        name: "周晓燕".to_owned(),
        department: None,
        cells: cells.iter().map(|c| (*c).to_owned()).collect(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        on_duty: true,
    }
}

fn registered(worker: GridWorker) -> GridEvent {
    GridEvent::WorkerRegistered(WorkerRegistered { worker })
}

fn duty(id: &str, on_duty: bool) -> GridEvent {
    GridEvent::WorkerDutyChanged(WorkerDutyChanged {
        worker_id: id.to_owned(),
        on_duty,
    })
}

/// Applies a refused event and checks the grid did not change; returns the refusal.
fn refused(event: GridEvent) -> GridError {
    let mut grid = loaded();
    let before = grid.clone();
    let error = grid.apply(&event).expect_err("the event is refused");
    assert_eq!(grid, before, "a refused event changed the grid: {event:?}");
    error
}

// ---------------------------------------------------------------------------------------
// The sample city
// ---------------------------------------------------------------------------------------

#[test]
fn the_sample_city_loads_with_four_streets_224_communities_and_1192_buildings() {
    let city = GridDirectory::sample_city();
    assert_eq!(city.counts(), (4, 224, 1192));
    assert_eq!(city.worker_count(), 1192 + 224 * 2 + 4 * 5);
    assert_eq!(city.building_codes().count(), 1192);
}

#[test]
fn in_the_sample_city_every_building_has_its_own_grid_worker_and_every_cell_a_supervisor() {
    let city = GridDirectory::sample_city();
    for code in city.building_codes() {
        let workers: Vec<&str> = city.workers_of(code).map(|w| w.id.as_str()).collect();
        assert_eq!(workers, vec![format!("w-{code}")], "building {code}");
        assert_eq!(
            city.supervisor_of(code),
            Some(format!("sup-{code}").as_str())
        );
        let location = city.locate_building(code).expect("located");
        assert_eq!(city.workers_of(&location.community).count(), 2);
        assert_eq!(city.workers_of(&location.district).count(), 5);
        assert_eq!(
            city.supervisor_of(&location.community),
            Some(format!("sup-{}", location.community).as_str())
        );
    }
    let calendars: Vec<(&str, &str)> = city.district_calendars().collect();
    assert_eq!(
        calendars,
        vec![
            ("330106001", "cn"),
            ("330106002", "cn"),
            ("330106003", "cn"),
            ("330106004", "cn"),
        ]
    );
}

#[test]
fn about_one_in_twenty_of_the_sample_citys_workers_is_off_duty() {
    let city = GridDirectory::sample_city();
    let off = city.workers().filter(|w| !w.on_duty).count();
    let share = off as f64 / city.worker_count() as f64;
    assert!(
        (0.03..=0.07).contains(&share),
        "{off} off duty ({share:.3})"
    );
}

#[test]
fn the_sample_citys_district_staff_cover_the_five_departments() {
    let city = GridDirectory::sample_city();
    let departments: BTreeSet<&str> = city
        .workers_of("330106001")
        .filter_map(|w| w.department.as_deref())
        .collect();
    assert_eq!(
        departments,
        BTreeSet::from([
            "城管 urban management",
            "民政 civil affairs",
            "住建 housing",
            "市政公用 utilities",
            "环卫 sanitation",
        ])
    );
}

#[test]
fn every_category_of_the_catalogue_can_be_handled_by_someone_in_every_sample_street() {
    let city = GridDirectory::sample_city();
    let catalogue = CategoryCatalogue::sample();
    for district in city.districts() {
        for category in catalogue.iter() {
            let somebody = city.workers().any(|w| {
                w.has_skill(category.skill())
                    && w.cells.iter().any(|cell| cell.starts_with(&district.code))
            });
            assert!(somebody, "{} in {}", category.code, district.code);
        }
    }
}

#[test]
fn the_catalogue_routes_facilities_owner_first_and_names_policies() {
    let catalogue = CategoryCatalogue::sample();
    assert_eq!(catalogue.len(), 19);
    let manhole = catalogue.get("facility.manhole_cover").expect("manhole");
    assert_eq!(manhole.routing, RoutingRule::Facility);
    assert_eq!(manhole.owner_tier(), Tier::District);
    assert_eq!(manhole.handling_tier, Tier::Community);
    assert_eq!(manhole.sla_policy(), "urgent_facility");
    assert_eq!(manhole.skill(), "facility.manhole_cover");
    let rubbish = catalogue
        .get("sanitation.garbage_exposed")
        .expect("rubbish");
    assert_eq!(rubbish.routing, RoutingRule::Event);
    assert_eq!(rubbish.sla_policy(), "sanitation");
    let policies: BTreeSet<&str> = catalogue.iter().map(|c| c.sla_policy()).collect();
    assert_eq!(
        policies,
        BTreeSet::from([
            "construction",
            "sanitation",
            "sanitation_road",
            "service_request",
            "standard",
            "urgent_facility",
            "utilities",
        ])
    );
}

// ---------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------

#[test]
fn a_building_locates_its_community_and_district() {
    let grid = loaded();
    assert_eq!(
        grid.locate_building(BUILDING),
        Some(&GridLocation {
            district: DISTRICT.into(),
            community: COMMUNITY.into(),
            building: BUILDING.into(),
        })
    );
    assert_eq!(
        grid.locate_building(COMMUNITY),
        None,
        "a community is not a building"
    );
    assert_eq!(grid.locate_building("330106009001001"), None);
}

#[test]
fn cells_of_any_tier_have_a_parent_a_supervisor_and_their_districts_calendar() {
    let grid = loaded();
    let cell = grid.cell(COMMUNITY).expect("community");
    assert_eq!(
        (cell.tier, cell.name.as_str()),
        (Tier::Community, "学院公寓社区")
    );
    assert_eq!(
        grid.parent(BUILDING).map(|c| c.code.as_str()),
        Some(COMMUNITY)
    );
    assert_eq!(
        grid.parent(COMMUNITY).map(|c| c.code.as_str()),
        Some(DISTRICT)
    );
    assert_eq!(grid.parent(DISTRICT), None);
    assert_eq!(
        grid.supervisor_of(OTHER_BUILDING),
        Some("sup-330106001002001")
    );
    assert_eq!(grid.calendar_of(OTHER_BUILDING), Some("cn-zj"));
    assert_eq!(grid.calendar_of(DISTRICT), Some("cn-zj"));
    assert_eq!(grid.calendar_of("nowhere"), None);
}

#[test]
fn the_cell_of_a_location_at_each_tier() {
    let grid = loaded();
    let location = grid.locate_building(BUILDING).expect("located").clone();
    let at = |tier| grid.cell_at(&location, tier).map(|c| c.code.as_str());
    assert_eq!(at(Tier::Building), Some(BUILDING));
    assert_eq!(at(Tier::Community), Some(COMMUNITY));
    assert_eq!(at(Tier::District), Some(DISTRICT));
}

#[test]
fn workers_are_found_by_id_and_by_the_cells_they_cover() {
    let grid = loaded();
    let utilities = grid.worker("ds-330106001-utilities").expect("registered");
    assert_eq!(utilities.department.as_deref(), Some("市政公用 utilities"));
    assert!(utilities.has_skill("facility.manhole_cover"));
    assert!(!utilities.has_skill("sanitation.garbage_exposed"));
    let at_district: Vec<&str> = grid.workers_of(DISTRICT).map(|w| w.id.as_str()).collect();
    assert_eq!(at_district, vec!["ds-330106001-utilities"]);
    assert_eq!(grid.workers_of(OTHER_BUILDING).count(), 0);
    assert!(grid.worker("w-nobody").is_none());
}

#[test]
fn a_district_without_a_calendar_uses_cn_2026() {
    let mut file = street();
    file["districts"][0]
        .as_object_mut()
        .expect("district")
        .remove("calendar");
    assert_eq!(
        load(&file).expect("loads").calendar_of(BUILDING),
        Some("cn")
    );
}

// ---------------------------------------------------------------------------------------
// Loader errors name the offending code
// ---------------------------------------------------------------------------------------

#[test]
fn a_community_whose_code_is_not_under_its_district_is_refused_by_code() {
    let mut file = street();
    file["districts"][0]["communities"][1]["code"] = json!("330106009002");
    let message = load_error(&file);
    assert!(
        message.contains("community 330106009002 does not start with its parent's code 330106001"),
        "{message}"
    );
    assert!(message.starts_with("test street: "), "{message}");
}

#[test]
fn a_building_whose_code_is_not_under_its_community_is_refused_by_code() {
    let mut file = street();
    file["districts"][0]["communities"][1]["buildings"][0]["code"] = json!("330106001001003");
    let message = load_error(&file);
    assert!(
        message.contains(
            "building 330106001001003 does not start with its parent's code 330106001002"
        ),
        "{message}"
    );
}

#[test]
fn a_building_code_that_appears_twice_is_refused_by_code() {
    let mut file = street();
    file["districts"][0]["communities"][0]["buildings"][1]["code"] = json!(BUILDING);
    let message = load_error(&file);
    assert!(
        message.contains(&format!(
            "building {BUILDING} is already in the grid as a building"
        )),
        "{message}"
    );
}

#[test]
fn a_worker_in_a_cell_the_grid_does_not_have_is_refused_by_id_and_cell() {
    let mut file = street();
    file["workers"][0]["cells"] = json!(["330106001001009"]);
    let message = load_error(&file);
    assert!(
        message.contains(
            "worker w-330106001001001 names cell 330106001001009, which is not in the grid"
        ),
        "{message}"
    );
}

#[test]
fn two_workers_with_one_id_are_refused_by_id() {
    let mut file = street();
    file["workers"][1]["id"] = json!("w-330106001001001");
    assert!(load_error(&file).contains("worker w-330106001001001 is already registered"));
}

#[test]
fn a_malformed_skill_is_refused_with_the_worker_and_the_skill() {
    let mut file = street();
    file["workers"][2]["skills"] = json!(["facility", "drainage.*"]);
    let message = load_error(&file);
    assert!(
        message.contains("worker ds-330106001-utilities has skill `drainage.*`"),
        "{message}"
    );
}

#[test]
fn a_cell_without_a_supervisor_is_refused() {
    let mut file = street();
    file["districts"][0]["communities"][0]["buildings"][0]["supervisor"] = json!(" ");
    let message = load_error(&file);
    assert!(
        message.contains(&format!("building {BUILDING} has an empty supervisor")),
        "{message}"
    );

    let mut missing = street();
    missing["districts"][0]["communities"][0]
        .as_object_mut()
        .expect("community")
        .remove("supervisor");
    let message = load_error(&missing);
    assert!(message.contains("missing field `supervisor`"), "{message}");
}

#[test]
fn an_unknown_field_is_refused_so_a_typo_does_not_go_unnoticed() {
    let mut file = street();
    file["workers"][0]["on_dutty"] = json!(true);
    let message = load_error(&file);
    assert!(message.contains("unknown field `on_dutty`"), "{message}");
}

#[test]
fn a_missing_file_names_its_path() {
    let error = wangge_engine::grid::load_grid_file(std::path::Path::new("/nonexistent/grid.json"))
        .expect_err("no such file");
    assert!(
        error.to_string().contains("/nonexistent/grid.json"),
        "{error}"
    );
}

#[test]
fn a_file_is_the_events_that_build_it() {
    let file: GridFile = serde_json::from_value(street()).expect("reads");
    let events = events_of_file(&file);
    assert_eq!(events.len(), 1 + 2 + 3 + 3, "cells, then workers");
    let replayed = GridState::replay(file.city.clone(), &events).expect("folds");
    assert_eq!(replayed, loaded());
}

// ---------------------------------------------------------------------------------------
// Grid events fold
// ---------------------------------------------------------------------------------------

#[test]
fn a_new_building_is_located_and_counted() {
    let mut grid = loaded();
    grid.apply(&building("330106001001006", COMMUNITY))
        .expect("a building under a community");
    assert_eq!(grid.counts(), (1, 2, 4));
    assert_eq!(
        grid.locate_building("330106001001006")
            .map(|l| l.community.as_str()),
        Some(COMMUNITY)
    );
    assert_eq!(
        grid.supervisor_of("330106001001006"),
        Some("sup-330106001001006")
    );
}

#[test]
fn a_new_district_and_community_take_their_places() {
    let mut grid = loaded();
    grid.apply(&GridEvent::CellAdded(CellAdded {
        tier: Tier::District,
        code: "330106005".into(),
        name: "蒋村街道".into(),
        parent: None,
        supervisor: "sup-330106005".into(),
        calendar: None,
    }))
    .expect("a district");
    grid.apply(&GridEvent::CellAdded(CellAdded {
        tier: Tier::Community,
        code: "330106005001".into(),
        name: "蒋村社区".into(),
        parent: Some("330106005".into()),
        supervisor: "sup-330106005001".into(),
        calendar: None,
    }))
    .expect("a community");
    assert_eq!(grid.counts(), (2, 3, 3));
    assert_eq!(grid.calendar_of("330106005001"), Some("cn"));
}

#[test]
fn a_registered_worker_covers_its_cells() {
    let mut grid = loaded();
    grid.apply(&registered(worker(
        "cs-330106001002-1",
        &[OTHER_COMMUNITY, OTHER_BUILDING],
        &["*"],
    )))
    .expect("registers");
    for cell in [OTHER_COMMUNITY, OTHER_BUILDING] {
        let ids: Vec<&str> = grid.workers_of(cell).map(|w| w.id.as_str()).collect();
        assert_eq!(ids, vec!["cs-330106001002-1"], "{cell}");
    }
    assert!(grid
        .worker("cs-330106001002-1")
        .expect("registered")
        .has_skill("service.micro_wish"));
}

#[test]
fn a_worker_goes_off_and_back_on_duty() {
    let mut grid = loaded();
    grid.apply(&duty("w-330106001001001", false))
        .expect("off duty");
    assert!(!grid.worker("w-330106001001001").expect("known").on_duty);
    grid.apply(&duty("w-330106001001001", true))
        .expect("on duty");
    assert!(grid.worker("w-330106001001001").expect("known").on_duty);
}

#[test]
fn a_workers_skills_are_replaced() {
    let mut grid = loaded();
    grid.apply(&GridEvent::WorkerSkillsChanged(WorkerSkillsChanged {
        worker_id: "w-330106001001001".into(),
        skills: vec!["lighting.stairwell_light_out".into()],
    }))
    .expect("skills change");
    let worker = grid.worker("w-330106001001001").expect("known");
    assert!(worker.has_skill("lighting.stairwell_light_out"));
    assert!(!worker.has_skill("drainage.blocked"));
}

#[test]
fn a_worker_moved_to_other_cells_leaves_the_old_ones() {
    let mut grid = loaded();
    grid.apply(&GridEvent::WorkerCellsChanged(WorkerCellsChanged {
        worker_id: "w-330106001001001".into(),
        cells: vec![OTHER_BUILDING.into()],
    }))
    .expect("cells change");
    assert_eq!(grid.workers_of(BUILDING).count(), 0);
    let ids: Vec<&str> = grid
        .workers_of(OTHER_BUILDING)
        .map(|w| w.id.as_str())
        .collect();
    assert_eq!(ids, vec!["w-330106001001001"]);
    assert!(grid
        .worker("w-330106001001001")
        .expect("known")
        .covers(OTHER_BUILDING));
}

// ---------------------------------------------------------------------------------------
// Each refusal is clear, and leaves the grid as it was
// ---------------------------------------------------------------------------------------

#[test]
fn a_cell_that_is_already_there_is_refused() {
    assert_eq!(
        refused(building(BUILDING, COMMUNITY)).to_string(),
        format!("building {BUILDING} is already in the grid as a building")
    );
    assert_eq!(
        refused(building(COMMUNITY, COMMUNITY)).to_string(),
        format!("building {COMMUNITY} is already in the grid as a community")
    );
}

#[test]
fn a_cell_whose_parent_does_not_exist_is_refused() {
    assert_eq!(
        refused(building("330106001003001", "330106001003")).to_string(),
        "building 330106001003001 names parent 330106001003, which is not in the grid"
    );
}

#[test]
fn a_building_directly_under_a_district_is_refused() {
    assert_eq!(
        refused(building("330106001777", DISTRICT)).to_string(),
        "building 330106001777 names parent 330106001, a district; it must belong to a community"
    );
}

#[test]
fn a_community_without_a_parent_or_a_district_with_one_is_refused() {
    let orphan = GridEvent::CellAdded(CellAdded {
        tier: Tier::Community,
        code: "330106001003".into(),
        name: "新社区".into(),
        parent: None,
        supervisor: "sup-330106001003".into(),
        calendar: None,
    });
    assert_eq!(
        refused(orphan).to_string(),
        "community 330106001003 names no parent; it must belong to a district"
    );
    let adopted = GridEvent::CellAdded(CellAdded {
        tier: Tier::District,
        code: "330106005".into(),
        name: "蒋村街道".into(),
        parent: Some("330106".into()),
        supervisor: "sup-330106005".into(),
        calendar: None,
    });
    assert_eq!(
        refused(adopted).to_string(),
        "district 330106005 names parent 330106, but a district has no parent"
    );
}

#[test]
fn only_districts_name_a_calendar() {
    let event = GridEvent::CellAdded(CellAdded {
        tier: Tier::Building,
        code: "330106001001006".into(),
        name: "13栋".into(),
        parent: Some(COMMUNITY.into()),
        supervisor: "sup-330106001001006".into(),
        calendar: Some("cn".into()),
    });
    assert_eq!(
        refused(event),
        GridError::CalendarOutsideDistrict {
            code: "330106001001006".into(),
            tier: Tier::Building,
            calendar: "cn".into(),
        }
    );
}

#[test]
fn a_worker_registered_twice_is_refused() {
    assert_eq!(
        refused(registered(worker(
            "w-330106001001001",
            &[BUILDING],
            &["drainage"]
        )))
        .to_string(),
        "worker w-330106001001001 is already registered"
    );
}

#[test]
fn a_worker_without_cells_in_unknown_cells_or_with_a_cell_twice_is_refused() {
    assert_eq!(
        refused(registered(worker("w-new", &[], &["drainage"]))).to_string(),
        "worker w-new covers no cell"
    );
    assert_eq!(
        refused(registered(worker(
            "w-new",
            &["330106001009001"],
            &["drainage"]
        )))
        .to_string(),
        "worker w-new names cell 330106001009001, which is not in the grid"
    );
    assert_eq!(
        refused(registered(worker(
            "w-new",
            &[BUILDING, BUILDING],
            &["drainage"]
        )))
        .to_string(),
        format!("worker w-new names cell {BUILDING} twice")
    );
    assert_eq!(
        refused(GridEvent::WorkerCellsChanged(WorkerCellsChanged {
            worker_id: "w-330106001001001".into(),
            cells: vec![BUILDING.into(), "330106001009001".into()],
        }))
        .to_string(),
        "worker w-330106001001001 names cell 330106001009001, which is not in the grid"
    );
}

#[test]
fn a_change_to_a_worker_nobody_registered_is_refused() {
    assert_eq!(
        refused(duty("w-ghost", false)).to_string(),
        "worker w-ghost is not registered"
    );
    assert_eq!(
        refused(GridEvent::WorkerSkillsChanged(WorkerSkillsChanged {
            worker_id: "w-ghost".into(),
            skills: vec!["*".into()],
        }))
        .to_string(),
        "worker w-ghost is not registered"
    );
    assert_eq!(
        refused(GridEvent::WorkerCellsChanged(WorkerCellsChanged {
            worker_id: "w-ghost".into(),
            cells: vec![BUILDING.into()],
        }))
        .to_string(),
        "worker w-ghost is not registered"
    );
}

#[test]
fn malformed_skills_are_refused() {
    for (skill, reason) in [
        ("", "is empty"),
        ("drainage.*", "uses `*` other than alone"),
        ("drainage..blocked", "has an empty segment between dots"),
        ("fire safety", "contains white space"),
    ] {
        let message = refused(GridEvent::WorkerSkillsChanged(WorkerSkillsChanged {
            worker_id: "w-330106001001001".into(),
            skills: vec!["drainage".into(), skill.into()],
        }))
        .to_string();
        assert!(
            message.starts_with(&format!(
                "worker w-330106001001001 has skill `{skill}`, which {reason}"
            )),
            "{message}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

const CELLS: &[&str] = &[
    DISTRICT,
    COMMUNITY,
    BUILDING,
    "330106001001002",
    OTHER_COMMUNITY,
    OTHER_BUILDING,
    "330106001001006",
    "330106001003",
    "330106009",
];
const WORKERS: &[&str] = &[
    "w-330106001001001",
    "cs-330106001001-1",
    "ds-330106001-utilities",
    "w-new-1",
    "w-new-2",
];
const SKILLS: &[&str] = &[
    "*",
    "drainage",
    "sanitation.road_dirty",
    "facility",
    "bad.*",
    "",
];

fn any_event() -> impl Strategy<Value = GridEvent> {
    let cell = proptest::sample::select(CELLS);
    let worker_id = proptest::sample::select(WORKERS);
    let skills = proptest::collection::vec(proptest::sample::select(SKILLS), 0..3);
    let cells = proptest::collection::vec(cell.clone(), 0..3);
    let tier = prop_oneof![
        Just(Tier::Building),
        Just(Tier::Community),
        Just(Tier::District)
    ];
    prop_oneof![
        (tier, cell.clone(), proptest::option::of(cell.clone())).prop_map(
            |(tier, code, parent)| GridEvent::CellAdded(CellAdded {
                tier,
                code: code.to_owned(),
                name: "格".into(),
                parent: parent.map(str::to_owned),
                supervisor: format!("sup-{code}"),
                calendar: None,
            })
        ),
        (
            worker_id.clone(),
            cells.clone(),
            skills.clone(),
            any::<bool>()
        )
            .prop_map(|(id, cells, skills, on_duty)| registered(GridWorker {
                on_duty,
                ..worker(id, &cells, &skills)
            })),
        (worker_id.clone(), any::<bool>()).prop_map(|(id, on)| duty(id, on)),
        (worker_id.clone(), skills).prop_map(|(id, skills)| {
            GridEvent::WorkerSkillsChanged(WorkerSkillsChanged {
                worker_id: id.to_owned(),
                skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            })
        }),
        (worker_id, cells).prop_map(|(id, cells)| {
            GridEvent::WorkerCellsChanged(WorkerCellsChanged {
                worker_id: id.to_owned(),
                cells: cells.iter().map(|c| (*c).to_owned()).collect(),
            })
        }),
    ]
}

proptest! {
    /// A refused event leaves the grid exactly as it was; replaying the accepted events
    /// rebuilds the same grid; and the grid's indexes agree with its workers.
    #[test]
    fn refusals_change_nothing_and_accepted_events_replay_to_the_same_grid(
        events in proptest::collection::vec(any_event(), 0..40)
    ) {
        let file: GridFile = serde_json::from_value(street()).expect("reads");
        let mut accepted = events_of_file(&file);
        let mut grid = loaded();
        for event in &events {
            let before = grid.clone();
            match grid.apply(event) {
                Ok(()) => accepted.push(event.clone()),
                Err(_) => prop_assert_eq!(&grid, &before),
            }
        }
        let replayed = GridState::replay(file.city.clone(), &accepted).expect("accepted events fold");
        prop_assert_eq!(&replayed, &grid);

        for worker in grid.workers() {
            prop_assert!(!worker.cells.is_empty());
            for cell in &worker.cells {
                prop_assert!(grid.cell(cell).is_some());
                prop_assert!(grid.workers_of(cell).any(|w| w.id == worker.id));
            }
        }
        for cell in CELLS {
            for worker in grid.workers_of(cell) {
                prop_assert!(worker.covers(cell));
            }
        }
        for code in grid.building_codes() {
            let location = grid.locate_building(code).expect("located");
            prop_assert_eq!(grid.parent(code).map(|c| c.code.as_str()), Some(location.community.as_str()));
            prop_assert_eq!(grid.parent(&location.community).map(|c| c.code.as_str()), Some(location.district.as_str()));
            prop_assert!(code.starts_with(&location.community));
        }
    }
}
