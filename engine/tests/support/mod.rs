//! Small helpers shared by the integration tests: a place on the grid, a few ready-made
//! commands and commits, and bounded waiting. Each test binary uses only some of them.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use uuid::Uuid;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::{stamp, CaseCommand, CaseState, EventMeta};
use wangge_engine::log::{Commit, EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, CommentAdded, GridLocation, PatrolKind,
    ReportDetails, Resident, Source,
};
use wangge_testkit::NatsServer;

pub const DISTRICT: &str = "110101001";
pub const COMMUNITY: &str = "110101001002";
pub const BUILDING: &str = "110101001002007";

pub fn location() -> GridLocation {
    GridLocation {
        district: DISTRICT.to_owned(),
        community: COMMUNITY.to_owned(),
        building: BUILDING.to_owned(),
    }
}

pub fn source(system: &str, message_id: &str) -> Source {
    Source {
        system: system.to_owned(),
        message_id: message_id.to_owned(),
    }
}

/// A resident's report of a broken street light.
pub fn resident_report() -> CaseReported {
    CaseReported {
        intake_clock: None,
        title: "Street light out".to_owned(),
        description: "The light at the east gate has been dark for three nights".to_owned(),
        reported_category: "municipal.lighting".to_owned(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: "resident-1".to_owned(),
                contact: None,
                legacy_contact: None,
            },
        },
    }
}

/// A grid worker's patrol finding, fixed on the spot.
pub fn patrol_finding(worker_id: &str) -> CaseReported {
    CaseReported {
        intake_clock: None,
        title: "Blocked fire exit".to_owned(),
        description: "Bicycles in the stairwell of unit 2".to_owned(),
        reported_category: "safety.fire".to_owned(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::PatrolFinding {
            worker_id: worker_id.to_owned(),
            patrol_kind: PatrolKind::FireSafety,
            fixed_on_spot: true,
        },
    }
}

pub fn report_command() -> CaseCommand {
    CaseCommand::Report {
        location: location(),
        report: resident_report(),
    }
}

/// A command as a system would send it, with its own message id.
pub fn request(case_id: CaseId, command: CaseCommand, message_id: &str) -> CommandRequest {
    CommandRequest {
        case_id,
        command,
        actor: Actor::system("test"),
        source: source("test", message_id),
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

pub fn service<L: EventLog>(log: L) -> CaseService<L> {
    CaseService::new(log, Arc::new(SystemClock))
}

/// A commit continuing a case that already holds `after` events: `count` events, the
/// case's report first when the case is new, comments after that. Its idempotency key is
/// `<key>@<case_id>`, so equal keys on different cases do not collide.
pub fn commit(case_id: CaseId, after: u64, count: usize, key: &str) -> Commit {
    assert!(count > 0, "a commit holds at least one event");
    let events = (0..count as u64)
        .map(|i| {
            if after + i == 0 {
                CaseEvent::Reported(resident_report())
            } else {
                CaseEvent::CommentAdded(CommentAdded {
                    text: format!("note {}", after + i + 1),
                })
            }
        })
        .collect();
    let state = CaseState {
        version: after,
        ..CaseState::default()
    };
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let meta = EventMeta {
        actor: Actor::system("test"),
        source: source("test", key),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: at,
        recorded_at: at,
    };
    let events = stamp(&state, case_id, &location(), events, &meta, Uuid::now_v7);
    Commit {
        case_id,
        events,
        idempotency_key: format!("{key}@{case_id}"),
    }
}

/// A log on the given server with a stream of its own settings.
pub async fn jetstream_log_with(server: &NatsServer, config: JetStreamLogConfig) -> JetStreamLog {
    JetStreamLog::open(server.connect().await, config)
        .await
        .expect("open the event log")
}

pub async fn jetstream_log(server: &NatsServer) -> JetStreamLog {
    jetstream_log_with(server, JetStreamLogConfig::default()).await
}

/// A local TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `probe` until it returns `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `future` or fails the test after `within`.
pub async fn within<T>(what: &str, within: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(within, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"))
}
