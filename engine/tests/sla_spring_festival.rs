//! A resident's service request made on the last working Friday before the 2026 Spring
//! Festival (Fri 2026-02-13) runs its seven working days around the holiday: the make-up
//! Saturday (Feb 14) counts, the nine days off (Feb 15–23) do not, and neither a warning nor
//! a breach is recorded while the city is on holiday. The SLA timers run as in production,
//! on a clock moved an hour at a time.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, Priority, ReportDetails, Resident, SlaStep,
    Source, Tier,
};

const BUILDING: &str = "330106001001002";
const COMMUNITY: &str = "330106001001";
const WORKER: &str = "cw-330106001001-a";

/// Local time (UTC+8) on a date of 2026, as UTC.
fn local(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .unwrap()
        - Duration::hours(8)
}

#[tokio::test]
async fn a_service_request_made_before_the_spring_festival_does_not_breach_during_it() {
    let clock = ManualClock::starting_at(local(2, 13, 10, 0));
    let log = MemoryLog::new();
    let cases = Arc::new(CaseService::new(log.clone(), Arc::new(clock.clone())));
    let grid = Arc::new(GridDirectory::sample_city());
    let timers = Arc::new(TimerService::new(
        cases.clone(),
        TimerBook::new(grid.clone(), Arc::new(CategoryCatalogue::sample())),
    ));
    let case = CaseId::new_v7();
    let location = grid.locate_building(BUILDING).unwrap().clone();
    let report = CaseReported {
        intake_clock: None,
        title: "申请居住证明".into(),
        description: "办理居住证明,用于孩子入学".into(),
        reported_category: "service.residence_certificate".into(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::ServiceRequest {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: "r-0213".into(),
                contact: None,
                legacy_contact: None,
            },
        },
    };
    let steps = [
        CaseCommand::Report { location, report },
        CaseCommand::AcceptAndDispatch {
            category: "service.residence_certificate".into(),
            priority: Priority::Normal,
            tier: Tier::Community,
            cell: COMMUNITY.into(),
            assignee: WORKER.into(),
        },
        CaseCommand::Acknowledge {
            worker_id: WORKER.into(),
        },
    ];
    let mut handling = None;
    for (n, command) in steps.into_iter().enumerate() {
        let outcome = cases
            .handle(CommandRequest {
                case_id: case,
                command,
                actor: Actor::system("test"),
                source: Source {
                    system: "spring-festival-test".into(),
                    message_id: format!("step-{n}"),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .unwrap();
        handling = outcome.events.last().and_then(|e| e.sla_clock.clone());
    }
    // Seven working days: Sat 14 (make-up), Tue 24, Wed 25, Thu 26, Fri 27, Sat 28 (make-up)
    // and Mon Mar 2, to its end of business.
    let handling = handling.expect("the acknowledgement records the handling clock");
    assert_eq!(handling.step, SlaStep::Resolve);
    assert_eq!(handling.deadline, Some(local(3, 2, 17, 30)));
    assert!(!handling.provisional);

    // The timers follow the log and fire on the clock, an hour at a time, through the
    // holiday and up to the day before the deadline.
    let mut commits = log.read_from(1);
    let mut fired_during_the_holiday = Vec::new();
    while clock.now() < local(3, 2, 8, 0) {
        while let Ok(Some(Ok(commit))) =
            tokio::time::timeout(std::time::Duration::from_millis(5), commits.next()).await
        {
            timers.observe(&commit).await;
        }
        let fired = timers.fire_due(clock.now(), &Ownership::everything()).await;
        if clock.now() <= local(2, 24, 8, 30) {
            fired_during_the_holiday.extend(fired);
        }
        clock.advance(Duration::hours(1));
    }
    assert!(
        fired_during_the_holiday.is_empty(),
        "nothing fires over the Spring Festival: {fired_during_the_holiday:?}"
    );
    let history = log.load(case).await.unwrap();
    assert!(
        !history
            .events
            .iter()
            .any(|e| matches!(e.event, CaseEvent::SlaBreached(_))),
        "no breach before the deadline"
    );
    // The warning comes at 80 % of the budget, in working time after the holiday.
    let warned = history.events.iter().find_map(|e| match &e.event {
        CaseEvent::SlaWarning(warning) => Some((e.occurred_at, warning.deadline)),
        _ => None,
    });
    let (warned_at, deadline) = warned.expect("the warning came after the holiday");
    assert!(warned_at > local(2, 24, 8, 30), "{warned_at}");
    assert_eq!(deadline, local(3, 2, 17, 30));

    // Left unresolved, the breach comes at the end of business on Monday, March 2.
    clock.set(local(3, 2, 17, 30));
    while let Ok(Some(Ok(commit))) =
        tokio::time::timeout(std::time::Duration::from_millis(5), commits.next()).await
    {
        timers.observe(&commit).await;
    }
    timers.fire_due(clock.now(), &Ownership::everything()).await;
    let history = log.load(case).await.unwrap();
    let breach = history.events.iter().find_map(|e| match &e.event {
        CaseEvent::SlaBreached(breach) => Some(breach.deadline),
        _ => None,
    });
    assert_eq!(breach, Some(local(3, 2, 17, 30)));
}
