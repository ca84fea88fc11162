//! Every endpoint answers the week as supervisors would read it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{
    local, now_of, Week, BUILDINGS, COMMUNITY, DISTRICT, GREEN_BUILDINGS, RED_BUILDINGS,
    YELLOW_BUILDINGS,
};
use crate::{get, get_ok};

fn light_of(rows: &Value, code: &str, tier: &str) -> Option<String> {
    rows.as_array()?
        .iter()
        .find(|row| row["code"] == code && row["tier"] == tier)
        .map(|row| row["light"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_board_lights_each_building_by_its_worst_open_case() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let cells = get_ok(&served.url("/api/v1/board?group=cell")).await;
    for building in RED_BUILDINGS {
        assert_eq!(
            light_of(&cells, building, "building").as_deref(),
            Some("red"),
            "{cells}"
        );
    }
    for building in YELLOW_BUILDINGS {
        assert_eq!(
            light_of(&cells, building, "building").as_deref(),
            Some("yellow"),
            "{cells}"
        );
    }
    for building in GREEN_BUILDINGS {
        assert_eq!(
            light_of(&cells, building, "building").as_deref(),
            Some("green"),
            "{cells}"
        );
    }
    // Grouped by district, the counts add up to the cells' counts in it.
    let districts = get_ok(&served.url("/api/v1/board?group=district")).await;
    let row = districts
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["code"] == DISTRICT)
        .expect("the district has open cases");
    assert_eq!(row["name"], "翠苑街道");
    assert_eq!(row["light"], "red");
    let in_district: i64 = cells
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["code"].as_str().unwrap().starts_with(DISTRICT))
        .map(|row| row["red"].as_i64().unwrap())
        .sum();
    assert_eq!(row["red"].as_i64(), Some(in_district));
    // Scoped to one community.
    let community = get_ok(&served.url(&format!(
        "/api/v1/board?group=cell&district={DISTRICT}&community={COMMUNITY}"
    )))
    .await;
    assert!(community
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["code"].as_str().unwrap().starts_with(COMMUNITY)));
}

#[tokio::test]
async fn cases_are_filtered_and_paged_with_a_cursor_without_gaps_or_repeats() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let all = get_ok(&served.url("/api/v1/cases?limit=500")).await;
    let all_ids: Vec<Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].clone())
        .collect();
    assert!(all["next_cursor"].is_null());
    assert!(all_ids.len() > 20, "a week of cases: {}", all_ids.len());

    let mut paged = Vec::new();
    let mut url = served.url("/api/v1/cases?limit=7");
    loop {
        let page = get_ok(&url).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        paged.extend(items.iter().map(|c| c["case_id"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => url = served.url(&format!("/api/v1/cases?limit=7&cursor={cursor}")),
            None => break,
        }
    }
    assert_eq!(paged, all_ids, "pages walk the same list in the same order");

    // Newest report first.
    let reported: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reported_at"].as_str().unwrap())
        .collect();
    let mut sorted = reported.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(reported, sorted);

    let building = RED_BUILDINGS[0];
    let open = get_ok(&served.url(&format!("/api/v1/cases?building={building}&open=true"))).await;
    let open = open["items"].as_array().unwrap();
    assert!(!open.is_empty());
    for case in open {
        assert_eq!(case["location"]["building"], building);
        assert_ne!(case["status"], "closed");
    }
    let closed = get_ok(&served.url("/api/v1/cases?status=closed&limit=500")).await;
    assert!(closed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "closed"));
    let today = get_ok(&served.url(&format!(
        "/api/v1/cases?reported_from={}&limit=500",
        local(24, 0, 0).to_rfc3339().replace('+', "%2B")
    )))
    .await;
    assert_eq!(
        today["items"].as_array().unwrap().len(),
        6,
        "six reports this morning"
    );
}

#[tokio::test]
async fn a_case_its_history_and_its_verified_audit_trail() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let closed = get_ok(&served.url("/api/v1/cases?status=closed&limit=1")).await;
    let case_id = closed["items"][0]["case_id"].as_str().unwrap().to_owned();

    let case = get_ok(&served.url(&format!("/api/v1/cases/{case_id}"))).await;
    assert_eq!(case["case_id"], case_id.as_str());
    assert_eq!(case["status"], "closed");

    let logged = week
        .events_of(wangge_schemas::CaseId(case_id.parse().unwrap()))
        .await;
    let history = get_ok(&served.url(&format!("/api/v1/cases/{case_id}/history"))).await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), logged.len(), "every event of the case, once");
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    let logged_types: Vec<&str> = logged.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, logged_types);
    assert_eq!(events[0]["event_type"], "case.reported");
    assert!(events.iter().any(|e| e["actor"]["kind"] == "grid_worker"));

    let audit = get_ok(&served.url(&format!("/api/v1/cases/{case_id}/audit"))).await;
    assert_eq!(audit["intact"], true, "{audit}");
    assert_eq!(audit["problems"], serde_json::json!([]));
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), logged.len());
    for pair in entries.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "each entry links to the one before"
        );
    }
}

#[tokio::test]
async fn the_overdue_list_says_how_late_each_case_is_at_the_api_clock_and_who_holds_it() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let now = now_of(&week);
    let overdue = get_ok(&served.url("/api/v1/overdue")).await;
    let items = overdue["items"].as_array().unwrap();
    let buildings: BTreeSet<&str> = items
        .iter()
        .map(|c| c["building"].as_str().unwrap())
        .collect();
    assert_eq!(buildings, RED_BUILDINGS.into_iter().collect(), "{overdue}");
    for case in items {
        let deadline: chrono::DateTime<chrono::Utc> =
            case["deadline"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            case["late_by_seconds"].as_i64(),
            Some((now - deadline).num_seconds())
        );
        assert_eq!(case["step"], "acknowledge");
        let case_id = wangge_schemas::CaseId(case["case_id"].as_str().unwrap().parse().unwrap());
        assert_eq!(case["assignee"], week.assignee(case_id).await.as_str());
    }
    // Longest overdue first.
    let deadlines: Vec<&str> = items
        .iter()
        .map(|c| c["deadline"].as_str().unwrap())
        .collect();
    let mut sorted = deadlines.clone();
    sorted.sort();
    assert_eq!(deadlines, sorted);
}

#[tokio::test]
async fn daily_indicators_show_closures_late_closures_and_rework() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let days =
        get_ok(&served.url("/api/v1/indicators?from=2026-11-18&to=2026-11-24&group=day")).await;
    let rows = days.as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert!(
        keys.contains(&"2026-11-18") && keys.contains(&"2026-11-24"),
        "{keys:?}"
    );
    let total = get_ok(&served.url("/api/v1/indicators?from=2026-11-18&to=2026-11-24")).await;
    let total = &total[0];
    assert_eq!(total["key"], "total");
    let closed = total["closed"].as_i64().unwrap();
    let on_time = total["closed_on_time"].as_i64().unwrap();
    assert!(
        closed > on_time && on_time > 0,
        "some closures were late: {total}"
    );
    // This morning's cases are open within their limits (or past their acknowledgement
    // only): registered, not yet due.
    let due = total["due"].as_i64().unwrap();
    assert!(
        due >= closed && due < total["registered"].as_i64().unwrap(),
        "{total}"
    );
    assert_eq!(
        total["closure_rate"].as_f64(),
        Some(((closed as f64 / due as f64) * 10_000.0).round() / 10_000.0)
    );
    assert!(total["reworked"].as_i64().unwrap() > 0, "{total}");
    assert!(total["time_to_close_p50_seconds"].as_i64().unwrap() > 0);
    assert!(
        total["time_to_close_p90_seconds"].as_i64() >= total["time_to_close_p50_seconds"].as_i64()
    );
    let rate = total["on_time_closure_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0);
    // Per district: two districts had cases.
    let districts =
        get_ok(&served.url("/api/v1/indicators?from=2026-11-18&to=2026-11-24&group=district"))
            .await;
    assert_eq!(districts.as_array().unwrap().len(), 2, "{districts}");
}

#[tokio::test]
async fn the_red_and_black_board_ranks_building_cells_by_on_time_closure() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let ranking =
        get_ok(&served.url("/api/v1/ranking?from=2026-11-18&to=2026-11-24&min_due=1&limit=3"))
            .await;
    let red = ranking["red"].as_array().unwrap();
    let black = ranking["black"].as_array().unwrap();
    let ranked = ranking["ranked_cells"].as_u64().unwrap();
    assert!(ranked >= 6, "{ranking}");
    assert_eq!(ranking["min_due"], 1);
    assert_eq!(ranking["tier"], "building");
    assert_eq!(red.len(), 3, "{ranking}");
    assert!(!black.is_empty() && black.len() <= 3, "{ranking}");
    let rate = |cell: &serde_json::Value| cell["on_time_closure_rate"].as_f64().unwrap();
    // Every red cell is better than every black cell: no cell is on both lists.
    let worst_red = red.iter().map(rate).fold(f64::INFINITY, f64::min);
    let best_black = black.iter().map(rate).fold(f64::NEG_INFINITY, f64::max);
    assert!(worst_red > best_black, "{ranking}");
    for cell in red.iter().chain(black) {
        assert!(BUILDINGS.contains(&cell["cell"].as_str().unwrap()));
        assert!(cell["due"].as_i64().unwrap() >= 1);
        assert!(cell["closed_on_time"].as_i64() <= cell["due"].as_i64());
    }
    // The default minimum (10 due cases) ranks none of the week's building cells, which
    // have three or four cases each.
    let default = get_ok(&served.url("/api/v1/ranking?from=2026-11-18&to=2026-11-24")).await;
    assert_eq!(default["min_due"], 10);
    assert_eq!(default["ranked_cells"], 0, "{default}");
}

#[tokio::test]
async fn patrol_coverage_names_the_cells_patrolled_and_the_ones_not() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let patrolled = get_ok(&served.url(&format!(
        "/api/v1/patrols?from=2026-11-18&to=2026-11-24&district={DISTRICT}&patrolled=true"
    )))
    .await;
    let cells: BTreeSet<&str> = patrolled["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell"].as_str().unwrap())
        .collect();
    // The patrols of the 18th, 19th, 20th and 23rd in 翠苑街道 (the 23rd's is in 文新街道).
    let expected: BTreeSet<&str> = [18usize, 19, 20]
        .into_iter()
        .map(|day| BUILDINGS[day % BUILDINGS.len()])
        .collect();
    assert_eq!(cells, expected, "{patrolled}");
    let not = get_ok(&served.url(&format!(
        "/api/v1/patrols?from=2026-11-18&to=2026-11-24&district={DISTRICT}&patrolled=false"
    )))
    .await;
    assert_eq!(not["patrolled"], 0);
    assert_eq!(not["not_patrolled"].as_u64(), Some(298 - 3));
}

#[tokio::test]
async fn a_workers_inbox_holds_the_open_tasks_they_hold() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let overdue = get_ok(&served.url("/api/v1/overdue")).await;
    let worker = overdue["items"][0]["assignee"].as_str().unwrap().to_owned();
    let building = overdue["items"][0]["building"].as_str().unwrap().to_owned();
    let inbox = get_ok(&served.url(&format!("/api/v1/workers/{worker}/inbox"))).await;
    let tasks = inbox.as_array().unwrap();
    assert!(!tasks.is_empty());
    assert!(tasks.iter().any(|t| t["building"] == building.as_str()));
    assert_eq!(tasks[0]["light"], "red");
    let idle = get_ok(&served.url("/api/v1/workers/w-330106004056001/inbox")).await;
    assert_eq!(idle, serde_json::json!([]));
}

#[tokio::test]
async fn projection_lag_is_nothing_once_the_read_models_have_caught_up() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let head = week.head().await;
    let status = get_ok(&served.url("/api/v1/projections")).await;
    assert_eq!(status["head"].as_u64(), Some(head));
    assert_eq!(status["now"], serde_json::to_value(now_of(&week)).unwrap());
    let names: Vec<&str> = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["projection"].as_str().unwrap())
        .collect();
    assert_eq!(names, wangge_projections::PROJECTION_NAMES.to_vec());
    for projection in status["projections"].as_array().unwrap() {
        assert_eq!(projection["position"].as_u64(), Some(head));
        assert_eq!(projection["behind"], 0);
    }
}

#[tokio::test]
async fn the_grid_tree_holds_every_cell_with_its_name() {
    let week = Week::new();
    let served = week.serve().await;
    let (status, grid) = get(&served.url("/api/v1/grid")).await;
    assert_eq!(status, 200);
    let districts = grid["districts"].as_array().unwrap();
    assert_eq!(districts.len(), 4);
    let communities: usize = districts
        .iter()
        .map(|d| d["communities"].as_array().unwrap().len())
        .sum();
    let buildings: usize = districts
        .iter()
        .flat_map(|d| d["communities"].as_array().unwrap())
        .map(|c| c["buildings"].as_array().unwrap().len())
        .sum();
    assert_eq!((communities, buildings), (224, 1192));
    assert_eq!(districts[0]["code"], DISTRICT);
    assert_eq!(districts[0]["communities"][0]["name"], "学院公寓社区");
    assert_eq!(
        districts[0]["communities"][0]["buildings"][0]["name"],
        "2栋"
    );
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_served_from_the_binary() {
    let week = Week::new();
    let served = week.serve().await;
    for (path, kind, needle) in [
        ("/", "text/html", "网格治理"),
        ("/dashboard.css", "text/css", "--red"),
        ("/dashboard.js", "text/javascript", "EventSource"),
    ] {
        let response = crate::support::authorized_get(served.url(path))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{path}");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} fetches nothing from elsewhere"
        );
    }
}
