//! The escalation ladder of an urgent manhole-cover case on the machine's own clock
//! (`SystemClock`), as `wangge serve` runs it: the timer service's run loop, the dispatcher,
//! the bundled policies and the sample city — on the in-memory log and on JetStream.
//!
//! `urgent_facility` acknowledges within 30 minutes on the plain clock, then reassigns in the
//! cell 10 minutes after the breach and escalates a tier 10 minutes after that. Rather than
//! waiting 40 minutes, each case is reported and dispatched with an `occurred_at` of 40
//! minutes ago less a few seconds (taken from the system clock, so with its sub-millisecond
//! part): the breach is overdue when the timers start and fires at once, the first rung falls
//! due a few seconds later on the real clock. Each test takes a few seconds.
//!
//! A manhole cover goes to its owner first (先属主后属地): the street's utilities department,
//! at the district — the top tier, with nobody else there who handles manhole covers. The
//! ladder must still do something there: the case is referred to the street's leadership for
//! supervision (督办), and stays with the utilities department.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory, SharedGrid};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, EventEnvelope, Priority, ReportDetails,
    Resident, SlaStep, Source, Tier,
};
use wangge_testkit::NatsServer;

use support::{eventually, jetstream_log};

/// 学院公寓社区 2栋, 翠苑街道.
const BUILDING: &str = "330106001001001";
const COMMUNITY: &str = "330106001001";
const DISTRICT: &str = "330106001";
const UTILITIES: &str = "ds-330106001-utilities";
const SUPERVISION_UNIT: &str = "翠苑街道党工委督查督办室";
const COMMUNITY_STAFF: &str = "cs-330106001001-1";

/// How long before the first rung falls due, after the timers start.
const LEAD: chrono::Duration = chrono::Duration::seconds(3);

/// The engine's actors on the system clock, as `wangge serve` wires them.
struct Engine<L: EventLog> {
    cases: Arc<CaseService<L>>,
    grid: SharedGrid,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<L: EventLog + Clone> Engine<L> {
    fn new(log: L) -> Self {
        let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
        let grid = SharedGrid::from(Arc::new(GridDirectory::sample_city()));
        let (stop, _) = tokio::sync::watch::channel(false);
        Self {
            cases,
            grid,
            stop,
            tasks: Vec::new(),
        }
    }

    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.stop.subscribe();
        async move {
            stopping.wait_for(|stop| *stop).await.ok();
        }
    }

    /// Starts the dispatcher and the timer service, owning every partition.
    fn start(&mut self) {
        let categories = Arc::new(CategoryCatalogue::sample());
        let dispatcher = Arc::new(Dispatcher::new(
            self.cases.clone(),
            self.grid.clone(),
            categories.clone(),
        ));
        let until = self.stopped();
        self.tasks.push(tokio::spawn(async move {
            dispatcher
                .run(Ownership::everything(), 1, until)
                .await
                .expect("dispatcher runs");
        }));
        let book = TimerBook::new(self.grid.clone(), categories);
        let timers = Arc::new(TimerService::new(self.cases.clone(), book));
        let until = self.stopped();
        self.tasks.push(tokio::spawn(async move {
            timers
                .run(Arc::new(SystemClock), Ownership::everything(), until)
                .await
                .expect("timers run");
        }));
    }

    async fn shut_down(self) {
        self.stop.send(true).ok();
        for task in self.tasks {
            task.await.unwrap();
        }
    }

    async fn command(&self, case_id: CaseId, command: CaseCommand, at: DateTime<Utc>, id: &str) {
        self.cases
            .handle(CommandRequest {
                case_id,
                command,
                actor: Actor::system("test"),
                source: Source {
                    system: "test".into(),
                    message_id: id.into(),
                },
                occurred_at: Some(at),
                correlation_id: None,
                causation_id: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }

    /// A resident's report of a missing manhole cover, accepted and dispatched at `at` to
    /// `assignee` in `cell` at `tier`.
    async fn manhole_case(
        &self,
        at: DateTime<Utc>,
        tier: Tier,
        cell: &str,
        assignee: &str,
    ) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self.grid.load().locate_building(BUILDING).unwrap().clone();
        let report = CaseReported {
            intake_clock: None,
            title: "路口井盖缺失,有安全隐患".into(),
            description: "路口井盖缺失,有安全隐患".into(),
            reported_category: "facility.manhole_cover".into(),
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
        self.command(
            case_id,
            CaseCommand::Report { location, report },
            at,
            &format!("report-{case_id}"),
        )
        .await;
        self.command(
            case_id,
            CaseCommand::AcceptAndDispatch {
                category: "facility.manhole_cover".into(),
                priority: Priority::Urgent,
                tier,
                cell: cell.into(),
                assignee: assignee.into(),
            },
            at,
            &format!("dispatch-{case_id}"),
        )
        .await;
        case_id
    }

    async fn events(&self, case_id: CaseId) -> Vec<EventEnvelope> {
        self.cases.log().load(case_id).await.unwrap().events
    }
}

/// When the case's acknowledge clock starts so that its first rung (breach + 10 minutes)
/// falls due `LEAD` after now, on the system clock, with its sub-millisecond part.
fn dispatched_at() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(40) + LEAD
}

fn breaches(events: &[EventEnvelope]) -> Vec<DateTime<Utc>> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            CaseEvent::SlaBreached(b) if b.step == SlaStep::Acknowledge => Some(b.deadline),
            _ => None,
        })
        .collect()
}

fn timeline(events: &[EventEnvelope]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {:?}", e.occurred_at, e.event.event_type(), e.event))
        .collect()
}

/// The district case: the first rung refers it to the district's leadership (督办).
async fn ignored_at_the_district<L: EventLog + Clone>(log: L) {
    let mut engine = Engine::new(log);
    let started = dispatched_at();
    let case_id = engine
        .manhole_case(started, Tier::District, DISTRICT, UTILITIES)
        .await;
    engine.start();

    let rung_due = started + chrono::Duration::minutes(40);
    let events = eventually(
        "the first rung to move the case on",
        LEAD.to_std().unwrap() + Duration::from_secs(12),
        || async {
            let events = engine.events(case_id).await;
            events
                .iter()
                .any(|e| {
                    matches!(
                        e.event,
                        CaseEvent::Reassigned(_)
                            | CaseEvent::Escalated(_)
                            | CaseEvent::SupervisionRequested(_)
                    )
                })
                .then_some(events)
        },
    )
    .await;
    let whole = timeline(&events);
    // The breach is recorded once, at the deadline computed to the nanosecond.
    assert_eq!(
        breaches(&events),
        vec![started + chrono::Duration::minutes(30)],
        "{whole:#?}"
    );
    let supervised = events
        .iter()
        .find_map(|e| match &e.event {
            CaseEvent::SupervisionRequested(r) => Some((e.occurred_at, r.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("referred for supervision: {whole:#?}"));
    assert_eq!(supervised.0, rung_due, "{whole:#?}");
    assert_eq!(supervised.1.unit.as_deref(), Some(SUPERVISION_UNIT));
    assert_eq!(supervised.1.assignee.as_deref(), Some(UTILITIES));
    assert_eq!(
        (supervised.1.cell.as_str(), supervised.1.step),
        (DISTRICT, SlaStep::Acknowledge)
    );
    // Oversight, not a transfer: nobody else got the case.
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.event, CaseEvent::Reassigned(_) | CaseEvent::Escalated(_))),
        "{whole:#?}"
    );
    engine.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manhole_cover_ignored_at_the_district_is_referred_for_supervision_on_the_memory_log() {
    ignored_at_the_district(MemoryLog::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manhole_cover_ignored_at_the_district_is_referred_for_supervision_on_jetstream() {
    let server = NatsServer::start();
    ignored_at_the_district(jetstream_log(&server).await).await;
}

/// The same ladder, for a case held at the community (its owner declined it): the first rung
/// finds nobody else there and escalates it to the district, where the dispatcher gives it to
/// the utilities department. This worked before too: the system clock is not the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manhole_cover_ignored_at_the_community_is_escalated_to_the_district_on_the_real_clock() {
    let mut engine = Engine::new(MemoryLog::new());
    let started = dispatched_at();
    let case_id = engine
        .manhole_case(started, Tier::Community, COMMUNITY, COMMUNITY_STAFF)
        .await;
    engine.start();

    let events = eventually(
        "the escalation and the dispatch at the district",
        LEAD.to_std().unwrap() + Duration::from_secs(12),
        || async {
            let events = engine.events(case_id).await;
            events
                .iter()
                .any(|e| matches!(&e.event, CaseEvent::Dispatched(d) if d.tier == Tier::District))
                .then_some(events)
        },
    )
    .await;
    let whole = timeline(&events);
    assert_eq!(
        breaches(&events),
        vec![started + chrono::Duration::minutes(30)],
        "{whole:#?}"
    );
    let escalated = events
        .iter()
        .find_map(|e| match &e.event {
            CaseEvent::Escalated(x) => Some((e.occurred_at, x.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("escalated: {whole:#?}"));
    assert_eq!(escalated.0, started + chrono::Duration::minutes(40));
    assert_eq!(
        (escalated.1.to_tier, escalated.1.cell.as_str()),
        (Tier::District, DISTRICT)
    );
    engine.shut_down().await;
}
