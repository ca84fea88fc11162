//! A closed case leaves the timer book; a reopened one comes back with its clocks, folded
//! from its whole history, so the reopened case's dispatch runs against its limit again.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_engine::runtime::timers::{Fired, TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, Priority, ReportDetails, Resident, SlaStep, Source, Tier,
};

const BUILDING: &str = "330106001001001";

/// Tuesday 2026-11-24 at 09:00 in Beijing.
fn tuesday_nine() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap()
}

struct City {
    clock: ManualClock,
    cases: Arc<CaseService<MemoryLog>>,
    timers: TimerService<MemoryLog>,
    messages: std::sync::atomic::AtomicU64,
}

impl City {
    fn new() -> Self {
        let clock = ManualClock::starting_at(tuesday_nine());
        let cases = Arc::new(CaseService::new(MemoryLog::new(), Arc::new(clock.clone())));
        let grid = Arc::new(GridDirectory::sample_city());
        let book = TimerBook::new(grid, Arc::new(CategoryCatalogue::sample()));
        let timers = TimerService::new(cases.clone(), book);
        Self {
            clock,
            cases,
            timers,
            messages: Default::default(),
        }
    }

    async fn run(&self, case_id: CaseId, command: CaseCommand) {
        let n = self
            .messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.cases
            .handle(CommandRequest {
                case_id,
                command,
                actor: Actor::supervisor("sup-1"),
                source: Source {
                    system: "test".into(),
                    message_id: format!("m-{n}"),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .expect("the command is allowed");
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

    async fn fire(&self) -> Vec<Fired> {
        self.follow().await;
        let fired = self
            .timers
            .fire_due(self.clock.now(), &Ownership::everything())
            .await
            .into_iter()
            .map(|(_, fired)| fired)
            .collect();
        self.follow().await;
        fired
    }
}

#[tokio::test]
async fn a_reopened_case_comes_back_to_the_timers_and_its_dispatch_can_breach_again() {
    let city = City::new();
    let case_id = CaseId::new_v7();
    let location = GridDirectory::sample_city()
        .locate_building(BUILDING)
        .unwrap()
        .clone();
    let report = CaseReported {
        intake_clock: None,
        title: "楼道灯坏了".into(),
        description: "楼道灯坏了".into(),
        reported_category: "lighting.stairwell_light_out".into(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: "r-1".into(),
                contact: None,
                legacy_contact: None,
            },
        },
    };
    city.run(case_id, CaseCommand::Report { location, report })
        .await;
    city.run(
        case_id,
        CaseCommand::Accept {
            category: "lighting.stairwell_light_out".into(),
            priority: Priority::Normal,
        },
    )
    .await;
    let worker = format!("w-{BUILDING}");
    city.run(
        case_id,
        CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: BUILDING.into(),
            assignee: worker.clone(),
        },
    )
    .await;
    city.run(
        case_id,
        CaseCommand::Acknowledge {
            worker_id: worker.clone(),
        },
    )
    .await;
    city.run(
        case_id,
        CaseCommand::Resolve {
            worker_id: worker.clone(),
            notes: "已更换灯泡".into(),
            media: Vec::new(),
        },
    )
    .await;
    city.run(
        case_id,
        CaseCommand::Verify {
            verifier: "sup-1".into(),
            passed: true,
            notes: None,
        },
    )
    .await;
    city.follow().await;
    assert_eq!(
        city.timers.open_cases().await,
        0,
        "a closed case has no clocks"
    );

    // The light goes out again the next morning: the case is reopened and waits for dispatch.
    city.clock.advance(Duration::hours(24));
    city.run(
        case_id,
        CaseCommand::Reopen {
            reason: "灯又不亮了".into(),
        },
    )
    .await;
    city.follow().await;
    assert_eq!(
        city.timers.open_cases().await,
        1,
        "the reopened case is back in the book"
    );

    // Nobody dispatches it: 30 minutes later its dispatch step has breached.
    city.clock.advance(Duration::minutes(31));
    let fired = city.fire().await;
    let breached = fired.iter().any(|fired| {
        matches!(fired, Fired::Written(command) if matches!(**command, CaseCommand::RecordSlaBreach { step: SlaStep::Dispatch, .. }))
    });
    assert!(breached, "the reopened case's dispatch breached: {fired:?}");
}
