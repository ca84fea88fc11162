//! The dispatcher as business rules: a report is accepted (立案) and sent (派遣) to the right
//! worker of the sample city; declines, escalations and self-handling take their own paths.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use wangge_engine::app::{CaseService, CommandRequest, ManualClock};
use wangge_engine::domain::{replay, CaseCommand, CaseStatus};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_engine::runtime::dispatcher::{DispatchOutcome, Dispatcher};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, PatrolKind, ReportDetails, Resident, Source,
    Tier,
};

/// 学院公寓社区 2栋 (its grid worker is on duty).
const BUILDING: &str = "330106001001001";
const COMMUNITY: &str = "330106001001";
const DISTRICT: &str = "330106001";

struct World {
    cases: Arc<CaseService<MemoryLog>>,
    dispatcher: Arc<Dispatcher<MemoryLog>>,
    grid: Arc<GridDirectory>,
}

fn world() -> World {
    let clock = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap());
    let cases = Arc::new(CaseService::new(MemoryLog::new(), Arc::new(clock)));
    let grid = Arc::new(GridDirectory::sample_city());
    let categories = Arc::new(CategoryCatalogue::sample());
    let dispatcher = Arc::new(Dispatcher::new(cases.clone(), grid.clone(), categories));
    World {
        cases,
        dispatcher,
        grid,
    }
}

fn request(
    case_id: CaseId,
    command: CaseCommand,
    actor: Actor,
    message_id: &str,
) -> CommandRequest {
    CommandRequest {
        case_id,
        command,
        actor,
        source: Source {
            system: "test".into(),
            message_id: message_id.into(),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

impl World {
    async fn report(&self, building: &str, category: &str, details: ReportDetails) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self
            .grid
            .locate_building(building)
            .expect("building in the sample city")
            .clone();
        let report = CaseReported {
            intake_clock: None,
            title: "12栋3单元1-6门口下水道堵塞".into(),
            description: "下水道堵塞,污水外溢".into(),
            reported_category: category.into(),
            media: Vec::new(),
            coordinates: None,
            details,
        };
        self.cases
            .handle(request(
                case_id,
                CaseCommand::Report { location, report },
                Actor::resident("r-1"),
                &format!("report-{case_id}"),
            ))
            .await
            .expect("report accepted");
        case_id
    }

    async fn resident_report(&self, building: &str, category: &str) -> CaseId {
        let details = ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: "r-1".into(),
                contact: None,
                legacy_contact: None,
            },
        };
        self.report(building, category, details).await
    }

    async fn state(&self, case_id: CaseId) -> wangge_engine::domain::CaseState {
        replay(&self.cases.log().load(case_id).await.unwrap().events)
    }

    /// Feeds every commit in the log to the dispatcher's load fold (as `run` does).
    async fn observe_log(&self) {
        use futures::StreamExt;
        let head = self.cases.log().head().await.unwrap();
        let mut commits = self.cases.log().read_from(1).take(head as usize);
        while let Some(commit) = commits.next().await {
            self.dispatcher.observe(&commit.unwrap());
        }
    }
}

#[tokio::test]
async fn a_blocked_drain_is_accepted_and_sent_to_the_buildings_grid_worker() {
    let world = world();
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    let outcome = world.dispatcher.act(case_id).await.unwrap();
    let Some(DispatchOutcome::Dispatched(decision)) = outcome else {
        panic!("not dispatched: {outcome:?}")
    };
    assert_eq!(decision.tier, Tier::Building);
    assert_eq!(decision.cell, BUILDING);
    assert_eq!(decision.assignee, format!("w-{BUILDING}"));
    let state = world.state(case_id).await;
    assert_eq!(state.status, CaseStatus::Dispatched);
    assert_eq!(state.category.as_deref(), Some("drainage.blocked"));
}

#[tokio::test]
async fn a_missing_manhole_cover_goes_to_the_owning_district_department_first() {
    let world = world();
    let case_id = world
        .resident_report(BUILDING, "facility.manhole_cover")
        .await;
    let Some(DispatchOutcome::Dispatched(decision)) = world.dispatcher.act(case_id).await.unwrap()
    else {
        panic!("not dispatched")
    };
    assert_eq!(decision.tier, Tier::District);
    assert_eq!(decision.cell, DISTRICT);
}

#[tokio::test]
async fn a_declined_task_goes_to_someone_else_never_back_to_the_decliner() {
    let world = world();
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    world.dispatcher.act(case_id).await.unwrap();
    let worker = format!("w-{BUILDING}");
    world
        .cases
        .handle(request(
            case_id,
            CaseCommand::Decline {
                worker_id: worker.clone(),
                reason: "在外地培训".into(),
            },
            Actor::grid_worker(&worker),
            "decline-1",
        ))
        .await
        .unwrap();
    let Some(DispatchOutcome::Dispatched(decision)) = world.dispatcher.act(case_id).await.unwrap()
    else {
        panic!("not dispatched again")
    };
    assert_ne!(decision.assignee, worker);
    // Nobody else covers the building: the next tier up, the community, takes it.
    assert_eq!(decision.tier, Tier::Community);
    assert_eq!(decision.cell, COMMUNITY);
}

#[tokio::test]
async fn an_escalated_case_is_dispatched_at_the_tier_it_was_escalated_to() {
    let world = world();
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    world.dispatcher.act(case_id).await.unwrap();
    world
        .cases
        .handle(request(
            case_id,
            CaseCommand::Escalate {
                to_tier: Tier::Community,
                cell: COMMUNITY.into(),
                reason: "超时未响应".into(),
            },
            Actor::system("sla-timer"),
            "escalate-1",
        ))
        .await
        .unwrap();
    let Some(DispatchOutcome::Dispatched(decision)) = world.dispatcher.act(case_id).await.unwrap()
    else {
        panic!("not dispatched after escalation")
    };
    assert_eq!(decision.tier, Tier::Community);
    assert_eq!(decision.cell, COMMUNITY);
}

#[tokio::test]
async fn a_patrol_finding_fixed_on_the_spot_is_closed_by_self_handling() {
    let world = world();
    let worker = format!("w-{BUILDING}");
    let details = ReportDetails::PatrolFinding {
        worker_id: worker.clone(),
        patrol_kind: PatrolKind::FireSafety,
        fixed_on_spot: true,
    };
    let case_id = world
        .report(BUILDING, "fire_safety.corridor_blocked", details)
        .await;
    let outcome = world.dispatcher.act(case_id).await.unwrap();
    assert_eq!(
        outcome,
        Some(DispatchOutcome::SelfHandled { worker_id: worker })
    );
    assert_eq!(world.state(case_id).await.status, CaseStatus::Closed);
}

#[tokio::test]
async fn a_case_that_needs_nothing_is_left_alone() {
    let world = world();
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    world.dispatcher.act(case_id).await.unwrap();
    let before = world.cases.log().head().await.unwrap();
    assert_eq!(world.dispatcher.act(case_id).await.unwrap(), None);
    assert_eq!(world.cases.log().head().await.unwrap(), before);
}

#[tokio::test]
async fn the_least_loaded_of_the_community_staff_gets_the_next_case() {
    let world = world();
    // Rubbish is a community matter (territory first): two staff share the community.
    let first = world
        .resident_report(BUILDING, "sanitation.garbage_unsorted")
        .await;
    world.dispatcher.act(first).await.unwrap();
    world.observe_log().await;
    let second = world
        .resident_report(BUILDING, "sanitation.garbage_unsorted")
        .await;
    world.dispatcher.act(second).await.unwrap();
    let (a, b) = (
        world.state(first).await.assignee,
        world.state(second).await.assignee,
    );
    assert!(a.is_some() && b.is_some());
    assert_ne!(
        a, b,
        "the second case should go to the other, idle staff member"
    );
}

#[tokio::test]
async fn two_dispatchers_acting_on_one_case_at_once_dispatch_it_once() {
    let world = world();
    let other = Arc::new(Dispatcher::new(
        world.cases.clone(),
        world.grid.clone(),
        Arc::new(CategoryCatalogue::sample()),
    ));
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    let (a, b) = tokio::join!(world.dispatcher.act(case_id), other.act(case_id));
    a.unwrap();
    b.unwrap();
    let events = world.cases.log().load(case_id).await.unwrap().events;
    let dispatched = events
        .iter()
        .filter(|e| matches!(e.event, CaseEvent::Dispatched(_)))
        .count();
    let accepted = events
        .iter()
        .filter(|e| matches!(e.event, CaseEvent::Accepted(_)))
        .count();
    assert_eq!(
        (accepted, dispatched),
        (1, 1),
        "events: {:?}",
        events.iter().map(|e| e.event_type()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn running_dispatcher_dispatches_reports_as_they_arrive() {
    let world = world();
    let running = tokio::spawn(world.dispatcher.clone().run(
        Ownership::everything(),
        1,
        std::future::pending(),
    ));
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while world.state(case_id).await.status != CaseStatus::Dispatched {
        assert!(tokio::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.abort();
}

#[tokio::test]
async fn a_report_that_came_while_nobody_held_its_partition_is_dispatched_when_one_takes_it() {
    let world = world();
    // Between two holders, as in a lease hand-over: this instance holds nothing yet.
    let ownership = Ownership::nothing();
    let running = tokio::spawn(world.dispatcher.clone().run(
        ownership.clone(),
        1,
        std::future::pending(),
    ));
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        world.state(case_id).await.status,
        CaseStatus::Reported,
        "nobody acted yet"
    );

    // The partitions are taken over; no new commit of the case arrives, yet it is dispatched.
    ownership.set((0..wangge_engine::runtime::PARTITIONS).collect());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while world.state(case_id).await.status != CaseStatus::Dispatched {
        assert!(tokio::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
}

#[tokio::test]
async fn a_new_report_the_dispatcher_can_route_is_accepted_and_dispatched_in_one_commit() {
    let world = world();
    let running = tokio::spawn(world.dispatcher.clone().run(
        Ownership::everything(),
        1,
        std::future::pending(),
    ));
    let case_id = world.resident_report(BUILDING, "drainage.blocked").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while world.state(case_id).await.status != CaseStatus::Dispatched {
        assert!(tokio::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.abort();
    let history = world.cases.log().load(case_id).await.unwrap();
    assert_eq!(
        history.commit_positions.len(),
        2,
        "the report, then accept and dispatch together"
    );
    let types: Vec<&str> = history.events.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["case.reported", "case.accepted", "case.dispatched"]);
}
