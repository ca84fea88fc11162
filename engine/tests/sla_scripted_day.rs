//! A scripted day on a controlled clock, under the 2026 calendar: the make-up working
//! Saturday before the Spring Festival (2026-02-14), then nine days of holiday, then work
//! again on Tuesday 2026-02-24.
//!
//! Reports arrive in building cells late on the Saturday. Some workers acknowledge; others
//! ignore their tasks. An ignored task is reassigned inside its building, then escalated to
//! the community, then (nobody else there handles drains) to the district — each step at the
//! working time the `standard` policy gives (acknowledge within 2 working hours, warn at
//! 80 %, reassign 1 working hour after the breach, escalate 2 working hours after that), with
//! the holiday skipped and nothing firing twice.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::{replay, CaseCommand};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, LogPosition, MemoryLog};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_schemas::grid::{GridEvent, GridWorker, WorkerRegistered};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, ReportDetails, Resident, SlaStep, Source, Tier,
};

/// Two buildings of 学院公寓社区, 翠苑街道.
const QUIET_BUILDING: &str = "330106001001001";
const BUSY_BUILDING: &str = "330106001001002";
const COMMUNITY: &str = "330106001001";
const DISTRICT: &str = "330106001";

/// Local time (UTC+8) on a date of 2026, as UTC.
fn local(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .unwrap()
        - Duration::hours(8)
}

struct Day {
    clock: ManualClock,
    cases: Arc<CaseService<MemoryLog>>,
    dispatcher: Arc<Dispatcher<MemoryLog>>,
    timers: Arc<TimerService<MemoryLog>>,
    grid: Arc<GridDirectory>,
    seen: LogPosition,
    ownership: Ownership,
}

impl Day {
    fn new(start: DateTime<Utc>) -> Self {
        let clock = ManualClock::starting_at(start);
        let cases = Arc::new(CaseService::new(MemoryLog::new(), Arc::new(clock.clone())));
        // The quiet building has a second grid worker, so a task can be reassigned in it.
        let mut grid = GridDirectory::sample_city();
        grid.apply(&GridEvent::WorkerRegistered(WorkerRegistered {
            worker: GridWorker {
                id: format!("w2-{QUIET_BUILDING}"),
                name: "李建国".into(),
                department: None,
                cells: vec![QUIET_BUILDING.into()],
                skills: vec!["drainage".into()],
                on_duty: true,
            },
        }))
        .expect("the second worker registers");
        let grid = Arc::new(grid);
        let categories = Arc::new(CategoryCatalogue::sample());
        let dispatcher = Arc::new(Dispatcher::new(
            cases.clone(),
            grid.clone(),
            categories.clone(),
        ));
        let book = TimerBook::new(grid.clone(), categories);
        let timers = Arc::new(TimerService::new(cases.clone(), book));
        Self {
            clock,
            cases,
            dispatcher,
            timers,
            grid,
            seen: 0,
            ownership: Ownership::everything(),
        }
    }

    async fn report(&self, building: &str, message_id: &str) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self.grid.locate_building(building).unwrap().clone();
        let report = CaseReported {
            intake_clock: None,
            title: "12栋3单元1-6门口下水道堵塞".into(),
            description: "下水道堵塞,污水外溢".into(),
            reported_category: "drainage.blocked".into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::Hotline12345,
                resident: Resident {
                    id: "r-77".into(),
                    contact: None,
                    legacy_contact: None,
                },
            },
        };
        self.command(
            case_id,
            CaseCommand::Report { location, report },
            Actor::resident("r-77"),
            message_id,
        )
        .await;
        case_id
    }

    async fn command(&self, case_id: CaseId, command: CaseCommand, actor: Actor, message_id: &str) {
        self.cases
            .handle(CommandRequest {
                case_id,
                command,
                actor,
                source: Source {
                    system: "day".into(),
                    message_id: message_id.into(),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{message_id}: {e}"));
    }

    /// Lets the engine catch up: every new commit to the timers and the dispatcher, the
    /// dispatcher acting on what waits, timers firing what is due now; until quiet.
    async fn settle(&mut self) {
        loop {
            let head = self.cases.log().head().await.unwrap();
            if head == self.seen {
                let fired = self
                    .timers
                    .fire_due(self.clock.now(), &self.ownership)
                    .await;
                if self.cases.log().head().await.unwrap() == self.seen
                    && fired.iter().all(|(_, f)| {
                        !matches!(f, wangge_engine::runtime::timers::Fired::Written(_))
                    })
                {
                    return;
                }
                continue;
            }
            let mut commits = self
                .cases
                .log()
                .read_from(self.seen + 1)
                .take((head - self.seen) as usize);
            while let Some(commit) = commits.next().await {
                let commit = commit.unwrap();
                self.seen = commit.position;
                self.dispatcher.observe(&commit);
                self.timers.observe(&commit).await;
                if Dispatcher::<MemoryLog>::needs_dispatcher(&commit) {
                    self.dispatcher.act(commit.case_id).await.unwrap();
                }
            }
        }
    }

    /// Moves the clock to `until` in 5-minute steps, letting the engine act at each.
    async fn run_until(&mut self, until: DateTime<Utc>) {
        while self.clock.now() < until {
            let next = (self.clock.now() + Duration::minutes(5)).min(until);
            self.clock.set(next);
            self.settle().await;
        }
    }

    async fn timeline(&self, case_id: CaseId) -> Vec<(String, DateTime<Utc>)> {
        self.cases
            .log()
            .load(case_id)
            .await
            .unwrap()
            .events
            .iter()
            .map(|e| {
                let what = match &e.event {
                    CaseEvent::Dispatched(d) => {
                        format!("dispatched {} {}", tier(d.tier), d.assignee)
                    }
                    CaseEvent::Reassigned(r) => {
                        format!("reassigned {} {}", tier(r.tier), r.to_worker)
                    }
                    CaseEvent::Escalated(x) => format!("escalated {} {}", tier(x.to_tier), x.cell),
                    CaseEvent::SlaWarning(w) => format!("warning {}", step(w.step)),
                    CaseEvent::SlaBreached(b) => format!("breach {}", step(b.step)),
                    other => other.event_type().trim_start_matches("case.").to_owned(),
                };
                (what, e.occurred_at)
            })
            .collect()
    }
}

fn tier(tier: Tier) -> &'static str {
    match tier {
        Tier::Building => "building",
        Tier::Community => "community",
        Tier::District => "district",
    }
}

fn step(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "accept",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledge",
        SlaStep::Resolve => "resolve",
        SlaStep::Verify => "verify",
    }
}

#[tokio::test]
async fn an_ignored_task_climbs_the_grid_at_working_times_across_the_spring_festival() {
    // 16:00 on the make-up Saturday before the Spring Festival.
    let mut day = Day::new(local(2, 14, 16, 0));
    let ignored = day.report(QUIET_BUILDING, "hotline-1").await;
    let handled = day.report(BUSY_BUILDING, "hotline-2").await;
    day.settle().await;

    // The busy building's worker acknowledges at once; nobody in the quiet one does.
    let worker = format!("w-{BUSY_BUILDING}");
    day.command(
        handled,
        CaseCommand::Acknowledge {
            worker_id: worker.clone(),
        },
        Actor::grid_worker(&worker),
        "ack-2",
    )
    .await;
    day.settle().await;

    // Run through the holiday to the end of Tuesday's working day.
    day.run_until(local(2, 24, 17, 30)).await;

    let timeline = day.timeline(ignored).await;
    let quiet = format!("w-{QUIET_BUILDING}");
    let second = format!("w2-{QUIET_BUILDING}");
    let expected: Vec<(String, DateTime<Utc>)> = vec![
        ("reported".into(), local(2, 14, 16, 0)),
        ("accepted".into(), local(2, 14, 16, 0)),
        (format!("dispatched building {quiet}"), local(2, 14, 16, 0)),
        // 80 % of 2 working hours = 96 min: 90 on Saturday until 17:30, 6 on Tuesday.
        ("warning acknowledge".into(), local(2, 24, 8, 36)),
        ("breach acknowledge".into(), local(2, 24, 9, 0)),
        // One working hour after the breach: another worker of the same building.
        (format!("reassigned building {second}"), local(2, 24, 10, 0)),
        ("warning acknowledge".into(), local(2, 24, 11, 36)),
        // 10:00 + 2 working hours: the end of the morning.
        ("breach acknowledge".into(), local(2, 24, 12, 0)),
        // One working hour later, the 12:00–13:30 lunch break not counted. Nobody else in
        // the building has not had the task: up to the community.
        (
            format!("escalated community {COMMUNITY}"),
            local(2, 24, 14, 30),
        ),
    ];
    let head: Vec<(String, DateTime<Utc>)> =
        timeline.iter().take(expected.len()).cloned().collect();
    assert_eq!(head, expected, "whole timeline: {timeline:#?}");
    // Then the community dispatches it to its staff.
    assert!(
        timeline[expected.len()]
            .0
            .starts_with("dispatched community"),
        "after the escalation: {timeline:#?}"
    );

    // The acknowledged case never got an acknowledge warning or breach.
    let handled_timeline = day.timeline(handled).await;
    assert!(
        !handled_timeline
            .iter()
            .any(|(what, _)| what.ends_with(" acknowledge")),
        "{handled_timeline:#?}"
    );
}

#[tokio::test]
async fn an_ignored_task_reaches_the_district_after_the_community_ignores_it_too() {
    let mut day = Day::new(local(3, 2, 9, 0)); // a Monday
    let ignored = day.report(QUIET_BUILDING, "hotline-3").await;
    day.settle().await;
    day.run_until(local(3, 4, 17, 30)).await;
    let timeline = day.timeline(ignored).await;
    let moves: Vec<&str> = timeline
        .iter()
        .filter(|(what, _)| {
            what.starts_with("reassigned")
                || what.starts_with("escalated")
                || what.starts_with("dispatched")
        })
        .map(|(what, _)| what.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .map(|s| Box::leak(s.into_boxed_str()) as &str)
        .collect();
    assert_eq!(
        moves[..6],
        [
            "dispatched building",
            "reassigned building",
            "escalated community",
            "dispatched community",
            // The community's other staff member does not handle drains: straight up.
            "escalated district",
            "dispatched district",
        ],
        "{timeline:#?}"
    );
    let district = timeline
        .iter()
        .find(|(what, _)| what.starts_with("escalated district"))
        .unwrap();
    assert!(district.0.ends_with(DISTRICT));
    // Every warning and breach at most once per deadline.
    let breaches = timeline
        .iter()
        .filter(|(what, _)| what.starts_with("breach"))
        .count();
    let state = replay(&day.cases.log().load(ignored).await.unwrap().events);
    assert_eq!(breaches, state.sla_breaches.len());
}

#[tokio::test]
async fn a_restarted_timer_service_rebuilds_from_the_log_and_fires_what_fell_due_once() {
    let mut day = Day::new(local(3, 2, 9, 0));
    let case_id = day.report(QUIET_BUILDING, "hotline-4").await;
    day.settle().await;
    // The engine is down over the deadline; the clock moves on without it.
    day.clock.set(local(3, 2, 11, 30));
    let fresh = Arc::new(TimerService::new(
        day.cases.clone(),
        TimerBook::new(day.grid.clone(), Arc::new(CategoryCatalogue::sample())),
    ));
    let mut commits = day
        .cases
        .log()
        .read_from(1)
        .take(day.cases.log().head().await.unwrap() as usize);
    while let Some(commit) = commits.next().await {
        fresh.observe(&commit.unwrap()).await;
    }
    assert_eq!(fresh.open_cases().await, 1);
    let first = fresh.fire_due(day.clock.now(), &day.ownership).await;
    let second = fresh.fire_due(day.clock.now(), &day.ownership).await;
    let written = |fired: &[(
        wangge_engine::runtime::timers::TimerJob,
        wangge_engine::runtime::timers::Fired,
    )]| {
        fired
            .iter()
            .filter(|(_, f)| matches!(f, wangge_engine::runtime::timers::Fired::Written(_)))
            .count()
    };
    assert_eq!(
        written(&first),
        1,
        "the overdue breach fires at once: {first:?}"
    );
    assert_eq!(written(&second), 0, "and only once: {second:?}");
    let timeline = day.timeline(case_id).await;
    let breach = timeline
        .iter()
        .find(|(what, _)| what == "breach acknowledge")
        .expect("breach recorded");
    // Recorded at the deadline it belongs to, not at the time the engine came back.
    assert_eq!(breach.1, local(3, 2, 11, 0));
    // The warning it overtook is not written late.
    assert!(
        !timeline
            .iter()
            .any(|(what, _)| what == "warning acknowledge"),
        "{timeline:#?}"
    );
}
