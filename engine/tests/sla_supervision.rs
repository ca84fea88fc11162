//! 督办 after the district, end to end on JetStream (a real nats-server) with the manual
//! clock: a blocked drain nobody acknowledges climbs building → community → district on a
//! short test policy, and when the district lets it run out too the case is referred to the
//! street's leadership — once — and stays with the district's handler.
//!
//! The test policy: acknowledge within 10 clock minutes, escalate a tier 5 clock minutes
//! after a breach. The dispatcher runs as `wangge serve` runs it; the timers are fired by
//! hand on the manual clock.

mod support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, FixedSlaTerms, ManualClock};
use wangge_engine::domain::sla::SlaReference;
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory, SharedGrid};
use wangge_engine::log::{EventLog, JetStreamLog};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{Fired, TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, EventEnvelope, ReportDetails, Resident,
    SlaStep, Source, Tier,
};
use wangge_testkit::NatsServer;

use support::{eventually, jetstream_log};

/// 学院公寓社区 2栋, 翠苑街道.
const BUILDING: &str = "330106001001001";
const COMMUNITY: &str = "330106001001";
const DISTRICT: &str = "330106001";
const UNIT: &str = "翠苑街道党工委督查督办室";

/// Tuesday 2026-11-24 at 09:00 in Beijing.
fn tuesday_nine() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap()
}

/// The bundled policies with `standard` (blocked drains) cut short, for a test.
fn short_test_policies() -> String {
    let mut policies: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/sla/policies.json")).unwrap();
    let standard = policies["policies"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == "standard")
        .unwrap();
    let minutes = |amount: u32| serde_json::json!({"amount": amount, "unit": "clock_minutes"});
    standard["description"] = "TEST ONLY: short limits for the supervision test".into();
    standard["targets"]["acknowledge"] = serde_json::json!({"all": minutes(10)});
    standard["escalation"] = serde_json::json!({
        "acknowledge": [{"action": "escalate_tier", "after": minutes(5)}]
    });
    policies.to_string()
}

struct City {
    clock: ManualClock,
    cases: Arc<CaseService<JetStreamLog>>,
    timers: TimerService<JetStreamLog>,
    stop: tokio::sync::watch::Sender<bool>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl City {
    async fn start(server: &NatsServer) -> Self {
        let clock = ManualClock::starting_at(tuesday_nine());
        let grid = SharedGrid::from(Arc::new(GridDirectory::sample_city()));
        let categories = Arc::new(CategoryCatalogue::sample());
        let reference = SlaReference::from_json(
            wangge_engine::domain::sla::BUNDLED_CALENDARS_JSON,
            &short_test_policies(),
        )
        .expect("the test policies are valid");
        let terms = FixedSlaTerms::from_reference(reference, grid.clone(), categories.clone());
        let cases = Arc::new(
            CaseService::new(jetstream_log(server).await, Arc::new(clock.clone()))
                .with_sla_terms(Arc::new(terms)),
        );
        let dispatcher = Arc::new(Dispatcher::new(
            cases.clone(),
            grid.clone(),
            categories.clone(),
        ));
        let (stop, mut stopping) = tokio::sync::watch::channel(false);
        let dispatcher = tokio::spawn(async move {
            dispatcher
                .run(Ownership::everything(), 1, async move {
                    stopping.wait_for(|stop| *stop).await.ok();
                })
                .await
                .expect("dispatcher runs");
        });
        let timers = TimerService::new(cases.clone(), TimerBook::new(grid, categories));
        Self {
            clock,
            cases,
            timers,
            stop,
            dispatcher,
        }
    }

    async fn report(&self) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = GridDirectory::sample_city()
            .locate_building(BUILDING)
            .unwrap()
            .clone();
        let report = CaseReported {
            intake_clock: None,
            title: "12栋3单元1-6门口下水道堵塞".into(),
            description: "12栋3单元1-6门口下水道堵塞,污水漫到路面".into(),
            reported_category: "drainage.blocked".into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::Hotline12345,
                resident: Resident {
                    id: "r-1".into(),
                    contact: None,
                    legacy_contact: None,
                },
            },
        };
        self.cases
            .handle(CommandRequest {
                case_id,
                command: CaseCommand::Report { location, report },
                actor: Actor::system("test"),
                source: Source {
                    system: "test".into(),
                    message_id: format!("report-{case_id}"),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .expect("reported");
        case_id
    }

    async fn events(&self, case_id: CaseId) -> Vec<EventEnvelope> {
        self.cases.log().load(case_id).await.unwrap().events
    }

    /// Waits until the dispatcher has dispatched the case at `tier`.
    async fn dispatched_at(&self, case_id: CaseId, tier: Tier) -> String {
        eventually(
            "the dispatcher to dispatch the case",
            StdDuration::from_secs(10),
            || async {
                self.events(case_id)
                    .await
                    .iter()
                    .rev()
                    .find_map(|e| match &e.event {
                        CaseEvent::Dispatched(d) if d.tier == tier => Some(d.assignee.clone()),
                        _ => None,
                    })
            },
        )
        .await
    }

    /// Every commit not yet folded, into the timer book (as its follower does).
    async fn follow(&self) {
        let head = self.cases.log().head().await.unwrap();
        let from = self.timers.position().await + 1;
        if from > head {
            return;
        }
        let mut commits = self
            .cases
            .log()
            .read_from(from)
            .take((head - from + 1) as usize);
        while let Some(commit) = commits.next().await {
            self.timers.observe(&commit.unwrap()).await;
        }
    }

    /// Moves the clock on and fires what fell due, until nothing more does.
    async fn advance(&self, by: Duration) -> Vec<Fired> {
        self.clock.advance(by);
        let mut all = Vec::new();
        for _ in 0..5 {
            self.follow().await;
            let fired: Vec<Fired> = self
                .timers
                .fire_due(self.clock.now(), &Ownership::everything())
                .await
                .into_iter()
                .map(|(_, fired)| fired)
                .collect();
            if fired.is_empty() {
                break;
            }
            all.extend(fired);
        }
        self.follow().await;
        all
    }

    async fn shut_down(self) {
        self.stop.send(true).ok();
        self.dispatcher.await.unwrap();
    }
}

fn count(events: &[EventEnvelope], wanted: fn(&CaseEvent) -> bool) -> usize {
    events.iter().filter(|e| wanted(&e.event)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_nobody_acknowledges_climbs_to_the_district_and_is_then_referred_for_supervision_once(
) {
    let server = NatsServer::start();
    let city = City::start(&server).await;
    let case_id = city.report().await;

    // The building's grid worker gets it, and lets it run out: 10 minutes, then 5 more.
    let building_worker = city.dispatched_at(case_id, Tier::Building).await;
    assert_eq!(building_worker, format!("w-{BUILDING}"));
    city.advance(Duration::minutes(10)).await;
    city.advance(Duration::minutes(5)).await;

    // The community's staff get it, and let it run out too.
    let community_staff = city.dispatched_at(case_id, Tier::Community).await;
    assert!(
        community_staff.starts_with(&format!("cs-{COMMUNITY}")),
        "{community_staff}"
    );
    city.advance(Duration::minutes(10)).await;
    city.advance(Duration::minutes(5)).await;

    // The street office's department that handles drains gets it, and lets it run out.
    let district_staff = city.dispatched_at(case_id, Tier::District).await;
    assert!(
        district_staff.starts_with(&format!("ds-{DISTRICT}")),
        "{district_staff}"
    );
    let district_dispatch = city.clock.now();
    city.advance(Duration::minutes(10)).await;
    let fired = city.advance(Duration::minutes(5)).await;
    assert!(
        fired
            .iter()
            .any(|f| matches!(f, Fired::Written(c) if matches!(**c, CaseCommand::RequestSupervision { .. }))),
        "{fired:?}"
    );

    let events = city.events(case_id).await;
    let requested: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            CaseEvent::SupervisionRequested(r) => Some((e.occurred_at, r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 1);
    let (at, request) = &requested[0];
    assert_eq!(*at, district_dispatch + Duration::minutes(15));
    assert_eq!(request.unit.as_deref(), Some(UNIT));
    assert_eq!(
        request.leaders,
        vec!["lead-330106001-1", "lead-330106001-2"]
    );
    assert_eq!(
        (request.district.as_str(), request.cell.as_str()),
        (DISTRICT, DISTRICT)
    );
    assert_eq!(request.step, SlaStep::Acknowledge);
    assert_eq!(
        request.overdue_since,
        district_dispatch + Duration::minutes(10)
    );
    assert_eq!(request.assignee.as_deref(), Some(district_staff.as_str()));

    // Two escalations and one supervision request: the case stays with the district.
    assert_eq!(count(&events, |e| matches!(e, CaseEvent::Escalated(_))), 2);
    let state = wangge_engine::domain::replay(&events);
    assert_eq!(state.assignee.as_deref(), Some(district_staff.as_str()));
    assert_eq!(state.tier, Some(Tier::District));

    // Hours later nothing more has been written: the rung is settled, nothing loops.
    let version = state.version;
    for _ in 0..6 {
        let fired = city.advance(Duration::minutes(30)).await;
        assert!(
            fired.iter().all(|f| !matches!(f, Fired::Written(_))),
            "{fired:?}"
        );
    }
    let later = city.events(case_id).await;
    assert_eq!(
        later.last().map(|e| e.sequence),
        Some(version),
        "nothing after the supervision request"
    );
    city.shut_down().await;
}
