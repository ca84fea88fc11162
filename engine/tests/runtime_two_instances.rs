//! Two engine instances share dispatch and timers on one real nats-server. One is killed
//! while timers are due: the other takes over its partitions, and every warning and breach
//! still appears exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use wangge_engine::app::{CaseService, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::{LeaseConfig, PartitionLeases};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, ReportDetails, Resident, SlaStep, Source,
};
use wangge_testkit::NatsServer;

/// A Monday morning, 09:00 in Hangzhou.
fn monday_0900() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

struct Instance {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Instance {
    async fn start(server: &NatsServer, name: &str, clock: ManualClock) -> Self {
        let client = server.connect().await;
        let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
            .await
            .unwrap();
        let cases = Arc::new(CaseService::new(log, Arc::new(clock.clone())));
        let grid = Arc::new(GridDirectory::sample_city());
        let categories = Arc::new(CategoryCatalogue::sample());
        let leases = PartitionLeases::open(
            client,
            LeaseConfig {
                ttl: Duration::from_secs(2),
                ..LeaseConfig::new(name)
            },
        )
        .await
        .unwrap();
        let ownership = leases.ownership();
        let dispatcher = Arc::new(Dispatcher::new(
            cases.clone(),
            grid.clone(),
            categories.clone(),
        ));
        let timers = Arc::new(TimerService::new(
            cases.clone(),
            TimerBook::new(grid, categories),
        ));
        let tasks = vec![
            tokio::spawn(leases.run(std::future::pending())),
            tokio::spawn({
                let ownership = ownership.clone();
                async move {
                    dispatcher
                        .run(ownership, 1, std::future::pending())
                        .await
                        .ok();
                }
            }),
            tokio::spawn(async move {
                timers
                    .run(Arc::new(clock), ownership, std::future::pending())
                    .await
                    .ok();
            }),
        ];
        Self { tasks }
    }

    /// Killed: every task stops where it is, leases are not handed back.
    fn kill(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn report(
    cases: &CaseService<JetStreamLog>,
    grid: &GridDirectory,
    building: &str,
    n: usize,
) -> CaseId {
    let case_id = CaseId::new_v7();
    let location = grid.locate_building(building).unwrap().clone();
    cases
        .handle(wangge_engine::app::CommandRequest {
            case_id,
            command: CaseCommand::Report {
                location,
                report: CaseReported {
                    intake_clock: None,
                    title: "楼道灯坏了".into(),
                    description: "三楼楼道灯不亮".into(),
                    reported_category: "drainage.blocked".into(),
                    media: Vec::new(),
                    coordinates: None,
                    details: ReportDetails::ResidentReport {
                        channel: Channel::MiniProgram,
                        resident: Resident {
                            id: format!("r-{n}"),
                            contact: None,
                            legacy_contact: None,
                        },
                    },
                },
            },
            actor: Actor::resident(&format!("r-{n}")),
            source: Source {
                system: "test".into(),
                message_id: format!("report-{n}"),
            },
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
        })
        .await
        .unwrap();
    case_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_of_two_instances_killed_while_timers_are_due_every_warning_and_breach_appears_once(
) {
    let server = NatsServer::start();
    let clock = ManualClock::starting_at(monday_0900());
    let a = Instance::start(&server, "a", clock.clone()).await;
    let b = Instance::start(&server, "b", clock.clone()).await;

    let client = server.connect().await;
    let log = JetStreamLog::open(client, JetStreamLogConfig::default())
        .await
        .unwrap();
    let cases = CaseService::new(log.clone(), Arc::new(clock.clone()));
    let grid = GridDirectory::sample_city();
    let buildings: Vec<&str> = {
        let mut codes: Vec<&str> = grid.building_codes().collect();
        codes.sort_unstable();
        codes
    };
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(report(&cases, &grid, buildings[n * 7], n).await);
    }
    // Every case gets dispatched by whichever instance holds its partition.
    wait_until(Duration::from_secs(20), || async {
        let mut all = true;
        for id in &ids {
            let events = log.load(*id).await.unwrap().events;
            all &= events
                .iter()
                .any(|e| matches!(e.event, CaseEvent::Dispatched(_)));
        }
        all
    })
    .await;

    // Nobody acknowledges. At 10:40 every acknowledge deadline (11:00) is 80 % gone, and
    // the warnings fall due; instance `a` dies right then.
    clock.set(monday_0900() + chrono::Duration::minutes(100));
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.kill();
    // At 11:05 the breaches are due too; only `b` is left, once `a`'s leases expire.
    clock.set(monday_0900() + chrono::Duration::minutes(125));

    wait_until(Duration::from_secs(30), || async {
        let mut all = true;
        for id in &ids {
            let events = log.load(*id).await.unwrap().events;
            all &= events.iter().any(
                |e| matches!(&e.event, CaseEvent::SlaBreached(b) if b.step == SlaStep::Acknowledge),
            );
        }
        all
    })
    .await;
    // A moment more for anything that would fire twice to show itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.kill();

    for id in &ids {
        let events = log.load(*id).await.unwrap().events;
        let mut counts: HashMap<(&str, SlaStep, DateTime<Utc>), usize> = HashMap::new();
        for event in &events {
            match &event.event {
                CaseEvent::SlaWarning(w) => {
                    *counts.entry(("warning", w.step, w.deadline)).or_default() += 1
                }
                CaseEvent::SlaBreached(b) => {
                    *counts.entry(("breach", b.step, b.deadline)).or_default() += 1
                }
                _ => {}
            }
        }
        assert!(counts
            .keys()
            .any(|(kind, step, _)| *kind == "breach" && *step == SlaStep::Acknowledge));
        for (key, count) in counts {
            assert_eq!(count, 1, "case {id}: {key:?} recorded {count} times");
        }
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "gapless"
        );
    }
}

async fn wait_until<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
