//! The timer book's snapshot on a real nats-server, with a controlled clock: a book restored
//! from a snapshot and the tail of the log is the book rebuilt from the whole log and fires
//! the same timers; a snapshot that does not apply is ignored; a restart after the deadlines
//! passed fires the overdue timers at once, and each exactly once — with one instance, and
//! with several that are killed and replaced by instances starting from the snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{
    Fired, Rebuilt, SnapshotConfig, SnapshotStore, SnapshotStoreConfig, TimerBook, TimerJob,
    TimerService,
};
use wangge_engine::runtime::{LeaseConfig, Ownership, PartitionLeases};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, Priority, ReportDetails, Resident, SlaStep,
    Source, SuspendReason, Tier, TimeLimit, TimeUnit,
};
use wangge_testkit::NatsServer;

/// A Monday morning, 09:00 in Hangzhou.
fn monday(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0).unwrap() - chrono::Duration::hours(8)
}

struct City {
    _server: NatsServer,
    clock: ManualClock,
    log: JetStreamLog,
    cases: Arc<CaseService<JetStreamLog>>,
    store: SnapshotStore,
    grid: Arc<GridDirectory>,
    buildings: Vec<String>,
    commands: usize,
}

impl City {
    async fn start() -> Self {
        let server = NatsServer::start();
        let client = server.connect().await;
        let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
            .await
            .unwrap();
        let clock = ManualClock::starting_at(monday(9, 0));
        let cases = Arc::new(CaseService::new(log.clone(), Arc::new(clock.clone())));
        let store = SnapshotStore::open(client, SnapshotStoreConfig::default())
            .await
            .unwrap();
        let grid = Arc::new(GridDirectory::sample_city());
        let mut buildings: Vec<String> = grid.building_codes().map(str::to_owned).collect();
        buildings.sort();
        Self {
            _server: server,
            clock,
            log,
            cases,
            store,
            grid,
            buildings,
            commands: 0,
        }
    }

    /// A timer service as an engine instance starts it, with or without the snapshot.
    fn timers(&self, snapshots: bool) -> TimerService<JetStreamLog> {
        let book = TimerBook::new(self.grid.clone(), Arc::new(CategoryCatalogue::sample()));
        let service = TimerService::new(self.cases.clone(), book);
        if snapshots {
            service.with_snapshots(self.store.clone(), SnapshotConfig::default())
        } else {
            service
        }
    }

    async fn command(&mut self, case_id: CaseId, command: CaseCommand) {
        self.commands += 1;
        let message_id = format!("test-{}", self.commands);
        self.cases
            .handle(CommandRequest {
                case_id,
                command,
                actor: Actor::system("test"),
                source: Source {
                    system: "test".into(),
                    message_id: message_id.clone(),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .unwrap_or_else(|error| panic!("{message_id}: {error}"));
    }

    /// A resident's report, accepted and dispatched to the building's worker: its
    /// acknowledge clock runs (2 working hours under the standard policy).
    async fn dispatched_case(&mut self, n: usize) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self
            .grid
            .locate_building(&self.buildings[n * 5 % self.buildings.len()])
            .unwrap()
            .clone();
        let worker = format!("w-{}", location.building);
        let building = location.building.clone();
        self.command(
            case_id,
            CaseCommand::Report {
                location,
                report: CaseReported {
                    intake_clock: None,
                    title: "12栋3单元1-6门口下水道堵塞".into(),
                    description: "下水道堵塞,污水外溢".into(),
                    reported_category: "drainage.blocked".into(),
                    media: Vec::new(),
                    coordinates: None,
                    details: ReportDetails::ResidentReport {
                        channel: Channel::Hotline12345,
                        resident: Resident {
                            id: format!("r-{n}"),
                            contact: None,
                            legacy_contact: None,
                        },
                    },
                },
            },
        )
        .await;
        self.command(
            case_id,
            CaseCommand::Accept {
                category: "drainage.blocked".into(),
                priority: Priority::Normal,
            },
        )
        .await;
        self.command(
            case_id,
            CaseCommand::Dispatch {
                tier: Tier::Building,
                cell: building,
                assignee: worker,
            },
        )
        .await;
        case_id
    }

    async fn worker_of(&self, case_id: CaseId) -> String {
        let events = self.log.load(case_id).await.unwrap().events;
        events
            .iter()
            .rev()
            .find_map(|e| match &e.event {
                CaseEvent::Dispatched(d) => Some(d.assignee.clone()),
                _ => None,
            })
            .unwrap()
    }

    async fn worker_of_opt(&self, case_id: CaseId) -> Option<String> {
        let events = self.log.load(case_id).await.unwrap().events;
        events.iter().rev().find_map(|e| match &e.event {
            CaseEvent::Dispatched(d) => Some(d.assignee.clone()),
            _ => None,
        })
    }

    async fn acknowledge(&mut self, case_id: CaseId) {
        let worker_id = self.worker_of(case_id).await;
        self.command(case_id, CaseCommand::Acknowledge { worker_id })
            .await;
    }

    async fn start_handling(&mut self, case_id: CaseId) {
        let worker_id = self.worker_of(case_id).await;
        self.command(case_id, CaseCommand::StartHandling { worker_id })
            .await;
    }

    /// Folds every commit the service has not seen yet, up to the head of the log.
    async fn catch_up(&self, timers: &TimerService<JetStreamLog>) {
        let head = self.log.head().await.unwrap();
        let from = timers.position().await + 1;
        if from > head {
            return;
        }
        let mut commits = self.log.read_from(from);
        while let Some(commit) = commits.next().await {
            let commit = commit.unwrap();
            timers.observe(&commit).await;
            if commit.position >= head {
                break;
            }
        }
    }

    /// Every warning and breach of a case, with how often each was recorded.
    async fn marks(
        &self,
        case_id: CaseId,
    ) -> HashMap<(&'static str, SlaStep, DateTime<Utc>), usize> {
        let mut counts = HashMap::new();
        for event in self.log.load(case_id).await.unwrap().events {
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
        counts
    }
}

fn jobs(fired: &[(TimerJob, Fired)]) -> Vec<(CaseId, u64, String)> {
    let mut jobs: Vec<_> = fired
        .iter()
        .map(|(job, _)| (job.case_id, job.version, format!("{:?}", job.timer)))
        .collect();
    jobs.sort();
    jobs
}

fn written(fired: &[(TimerJob, Fired)]) -> usize {
    fired
        .iter()
        .filter(|(_, fired)| matches!(fired, Fired::Written(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_restored_from_a_snapshot_and_the_tail_is_the_book_rebuilt_from_the_whole_log() {
    let mut city = City::start().await;
    // Before the snapshot: cases at every step the clock knows.
    let mut waiting = Vec::new();
    for n in 0..6 {
        waiting.push(city.dispatched_case(n).await);
    }
    let acknowledged = city.dispatched_case(10).await;
    city.acknowledge(acknowledged).await;
    let suspended = city.dispatched_case(11).await;
    city.acknowledge(suspended).await;
    city.start_handling(suspended).await;
    city.command(
        suspended,
        CaseCommand::Suspend {
            reason: SuspendReason::WaitingForResident,
            note: None,
        },
    )
    .await;
    let extended = city.dispatched_case(12).await;
    city.acknowledge(extended).await;
    let voided = city.dispatched_case(13).await;

    // At 10:40 80 % of the acknowledge time is gone: the warnings are recorded.
    let writer = city.timers(true);
    city.catch_up(&writer).await;
    city.clock.set(monday(10, 40));
    let warned = writer
        .fire_due(city.clock.now(), &Ownership::everything())
        .await;
    assert_eq!(written(&warned), waiting.len() + 1, "{warned:?}");
    city.catch_up(&writer).await;
    let position = writer.write_snapshot().await.unwrap();
    assert_eq!(position, city.log.head().await.unwrap());

    // After it, the tail: cases move on, one ends, new ones come in.
    city.acknowledge(waiting[0]).await;
    city.command(
        suspended,
        CaseCommand::Resume {
            note: Some("resident is home".into()),
        },
    )
    .await;
    city.command(
        extended,
        CaseCommand::GrantExtension {
            step: SlaStep::Resolve,
            extension: TimeLimit {
                amount: 1,
                unit: TimeUnit::WorkingDays,
            },
            reason: "parts on order".into(),
        },
    )
    .await;
    city.command(
        voided,
        CaseCommand::Void {
            reason: "entered twice".into(),
        },
    )
    .await;
    let late = city.dispatched_case(20).await;

    let restored = city.timers(true);
    assert_eq!(
        restored.restore().await,
        Rebuilt::FromSnapshot {
            position,
            cases: (waiting.len() + 4) as u64,
        }
    );
    city.catch_up(&restored).await;
    let rebuilt = city.timers(false);
    city.catch_up(&rebuilt).await;

    let entries = restored.entries().await;
    assert_eq!(entries, rebuilt.entries().await);
    assert_eq!(
        entries.len(),
        waiting.len() + 4,
        "the voided case left the book"
    );
    assert!(entries.iter().any(|entry| entry.case_id == late));
    assert!(entries.iter().all(|entry| entry.case_id != voided));

    // Late in the afternoon every clock left has run out: both books fire the same timers,
    // and what one wrote the other finds recorded already.
    city.clock.set(monday(17, 0));
    let from_snapshot = restored
        .fire_due(city.clock.now(), &Ownership::everything())
        .await;
    let from_log = rebuilt
        .fire_due(city.clock.now(), &Ownership::everything())
        .await;
    assert_eq!(jobs(&from_snapshot), jobs(&from_log));
    assert!(
        written(&from_snapshot) >= waiting.len(),
        "{from_snapshot:?}"
    );
    assert_eq!(written(&from_log), 0, "{from_log:?}");
    for (job, fired) in &from_log {
        assert!(
            matches!(
                fired,
                Fired::Skipped("already recorded") | Fired::Skipped("case moved on")
            ),
            "{job:?}: {fired:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_apply_is_ignored_and_the_whole_log_is_read() {
    let mut city = City::start().await;
    for n in 0..4 {
        city.dispatched_case(n).await;
    }
    let writer = city.timers(true);
    city.catch_up(&writer).await;
    writer.write_snapshot().await.unwrap();
    let good = city.store.load().await.unwrap().unwrap();

    // Of a format this engine does not know.
    let header_end = good.len().min(4096);
    let text = String::from_utf8_lossy(&good[..header_end]).into_owned();
    let at = text
        .find("\"format\":2,")
        .expect("the header names its format");
    let mut unknown = good.clone();
    unknown[at..at + 11].copy_from_slice(b"\"format\":7,");
    city.store.save(&unknown).await.unwrap();
    let timers = city.timers(true);
    assert_eq!(timers.restore().await, Rebuilt::FromStart);
    assert_eq!(timers.open_cases().await, 0);

    // Cut short, or not a snapshot at all.
    for broken in [&good[..good.len() - 3], b"not a snapshot".as_slice()] {
        city.store.save(broken).await.unwrap();
        let timers = city.timers(true);
        assert_eq!(timers.restore().await, Rebuilt::FromStart);
        assert_eq!(timers.open_cases().await, 0);
    }

    // Either way the book comes from the whole log, as if there were no snapshot.
    city.catch_up(&timers).await;
    let rebuilt = city.timers(false);
    city.catch_up(&rebuilt).await;
    assert_eq!(timers.entries().await, rebuilt.entries().await);
    assert_eq!(timers.open_cases().await, 4);

    // The snapshot as written still applies.
    city.store.save(&good).await.unwrap();
    assert!(matches!(
        city.timers(true).restore().await,
        Rebuilt::FromSnapshot { cases: 4, .. }
    ));

    // Beside a log that ends before it (another log, begun again): it does not apply.
    let mut other_city = City::start().await;
    other_city.dispatched_case(0).await;
    other_city.store.save(&good).await.unwrap();
    let timers = other_city.timers(true);
    assert_eq!(timers.restore().await, Rebuilt::FromStart);
    assert_eq!(timers.open_cases().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_past_the_deadlines_the_overdue_timers_fire_at_once_and_exactly_once() {
    let mut city = City::start().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(city.dispatched_case(n).await);
    }
    let clock: Arc<dyn Clock> = Arc::new(city.clock.clone());

    // An engine follows the log and is stopped cleanly before anything falls due: it
    // writes the snapshot as it stops.
    let first = Arc::new(city.timers(true));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        first
            .clone()
            .run(clock.clone(), Ownership::everything(), async {
                stopped.await.ok();
            }),
    );
    let head = city.log.head().await.unwrap();
    wait_until(Duration::from_secs(20), || async {
        first.position().await >= head
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // Down over the acknowledge deadline (11:00) and the warning before it.
    city.clock.set(monday(11, 30));
    let second = Arc::new(city.timers(true));
    assert_eq!(
        second.restore().await,
        Rebuilt::FromSnapshot {
            position: head,
            cases: ids.len() as u64,
        }
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        second
            .clone()
            .run(clock.clone(), Ownership::everything(), async {
                stopped.await.ok();
            }),
    );
    wait_until(Duration::from_secs(20), || async {
        let mut all = true;
        for id in &ids {
            all &= city
                .marks(*id)
                .await
                .keys()
                .any(|(kind, step, _)| *kind == "breach" && *step == SlaStep::Acknowledge);
        }
        all
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // Restarted again, from the snapshot written at that stop and from the whole log:
    // nothing is left to fire.
    for snapshots in [true, false] {
        let again = city.timers(snapshots);
        let rebuilt = again.restore().await;
        assert_eq!(rebuilt == Rebuilt::FromStart, !snapshots);
        city.catch_up(&again).await;
        let fired = again
            .fire_due(city.clock.now(), &Ownership::everything())
            .await;
        assert_eq!(written(&fired), 0, "{fired:?}");
    }

    for id in &ids {
        let marks = city.marks(*id).await;
        let breach_deadline = monday(11, 0);
        assert_eq!(
            marks.get(&("breach", SlaStep::Acknowledge, breach_deadline)),
            Some(&1),
            "case {id}: {marks:?}"
        );
        // The warning the breach overtook is not written late.
        assert_eq!(marks.len(), 1, "case {id}: {marks:?}");
    }
}

/// An engine instance: leases, dispatcher and timers with snapshots every second.
struct Instance {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Instance {
    async fn start(city: &City, server_url: &str, name: &str) -> Self {
        let client = async_nats::connect(server_url).await.unwrap();
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
            city.cases.clone(),
            city.grid.clone(),
            Arc::new(CategoryCatalogue::sample()),
        ));
        let timers = Arc::new(
            TimerService::new(
                city.cases.clone(),
                TimerBook::new(city.grid.clone(), Arc::new(CategoryCatalogue::sample())),
            )
            .with_snapshots(
                city.store.clone(),
                SnapshotConfig {
                    every: Duration::from_secs(1),
                    ..Default::default()
                },
            ),
        );
        let clock: Arc<dyn Clock> = Arc::new(city.clock.clone());
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
                    .run(clock, ownership, std::future::pending())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_instances_killed_and_restarted_from_snapshots_every_warning_and_breach_appears_once()
{
    let mut city = City::start().await;
    let url = city._server.url();
    let a = Instance::start(&city, &url, "a").await;
    let b = Instance::start(&city, &url, "b").await;
    // The two share out the partitions (the dispatcher passes over a report whose
    // partition is between holders; that is the dispatcher's business, not this test's).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let case_id = CaseId::new_v7();
        let location = city
            .grid
            .locate_building(&city.buildings[n * 7 % city.buildings.len()])
            .unwrap()
            .clone();
        city.command(
            case_id,
            CaseCommand::Report {
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
        )
        .await;
        ids.push(case_id);
    }
    // Whoever holds a case's partition dispatches it; the holder of partition 0 keeps
    // writing the snapshot.
    wait_until(Duration::from_secs(20), || async {
        let mut all = true;
        for id in &ids {
            all &= city.worker_of_opt(*id).await.is_some();
        }
        all
    })
    .await;
    let dispatched = city.log.head().await.unwrap();
    wait_until(Duration::from_secs(20), || async {
        matches!(
            city.timers(true).restore().await,
            Rebuilt::FromSnapshot { position, .. } if position >= dispatched
        )
    })
    .await;

    // 10:40: the warnings fall due, and `a` dies; `b` takes over `a`'s partitions once
    // the leases expire, and writes the snapshot from then on.
    city.clock.set(monday(10, 40));
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    let warned = |kind: &'static str| {
        let city = &city;
        let ids = &ids;
        move || async move {
            let mut all = true;
            for id in ids {
                all &= city
                    .marks(*id)
                    .await
                    .keys()
                    .any(|(k, step, _)| *k == kind && *step == SlaStep::Acknowledge);
            }
            all
        }
    };
    wait_until(Duration::from_secs(30), warned("warning")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // `b` dies too. Two new instances come up from the snapshot and the tail, and the clock
    // passes the deadlines: they write the breaches.
    b.kill();
    let c = Instance::start(&city, &url, "c").await;
    let d = Instance::start(&city, &url, "d").await;
    city.clock.set(monday(11, 5));
    wait_until(Duration::from_secs(30), warned("breach")).await;
    // A moment more for anything that would fire twice to show itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill();
    d.kill();

    for id in &ids {
        let marks = city.marks(*id).await;
        assert!(
            marks
                .keys()
                .any(|(kind, step, _)| *kind == "breach" && *step == SlaStep::Acknowledge),
            "case {id}: {marks:?}"
        );
        for (key, count) in marks {
            assert_eq!(count, 1, "case {id}: {key:?} recorded {count} times");
        }
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
