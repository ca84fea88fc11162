//! A restarted dispatcher carries on from its snapshot: it reads only the log after it, routes
//! on the same worker loads as one that read the whole log, and still acts on every case that
//! was waiting — once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, CommandRequest, ManualClock};
use wangge_engine::domain::{replay, CaseCommand, CaseStatus};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_engine::runtime::dispatch_snapshot::{dispatch_snapshot_store, DispatchSnapshot};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::SnapshotStore;
use wangge_engine::runtime::{partition_of, Ownership};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, ReportDetails, Resident, Source,
};
use wangge_testkit::NatsServer;

/// Buildings of the sample city whose grid workers are on duty.
const BUILDINGS: [&str; 3] = ["330106001001001", "330106001001002", "330106001001003"];

struct City {
    cases: Arc<CaseService<MemoryLog>>,
    grid: Arc<GridDirectory>,
    categories: Arc<CategoryCatalogue>,
}

impl City {
    fn new() -> Self {
        let clock = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap());
        Self {
            cases: Arc::new(CaseService::new(MemoryLog::new(), Arc::new(clock))),
            grid: Arc::new(GridDirectory::sample_city()),
            categories: Arc::new(CategoryCatalogue::sample()),
        }
    }

    fn dispatcher(&self) -> Dispatcher<MemoryLog> {
        Dispatcher::new(
            self.cases.clone(),
            self.grid.clone(),
            self.categories.clone(),
        )
    }

    async fn report(&self, n: usize) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self
            .grid
            .locate_building(BUILDINGS[n % BUILDINGS.len()])
            .expect("building in the sample city")
            .clone();
        let report = CaseReported {
            intake_clock: None,
            title: "12栋3单元门口下水道堵塞".into(),
            description: "下水道堵塞,污水外溢".into(),
            reported_category: "drainage.blocked".into(),
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
        self.cases
            .handle(CommandRequest {
                case_id,
                command: CaseCommand::Report { location, report },
                actor: Actor::resident("r-1"),
                source: Source {
                    system: "test".into(),
                    message_id: format!("report-{case_id}"),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .expect("report accepted");
        case_id
    }

    async fn status(&self, case_id: CaseId) -> CaseStatus {
        replay(&self.cases.log().load(case_id).await.unwrap().events).status
    }

    async fn dispatches_of(&self, case_id: CaseId) -> usize {
        let history = self.cases.log().load(case_id).await.unwrap();
        history
            .events
            .iter()
            .filter(|e| matches!(e.event, CaseEvent::Dispatched(_)))
            .count()
    }

    async fn wait_until_dispatched(&self, cases: &[CaseId]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for case_id in cases {
            while self.status(*case_id).await != CaseStatus::Dispatched {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "case {case_id:?} never dispatched"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The snapshot in `store`, once it has reached the log's head.
async fn snapshot_at_head(store: &SnapshotStore, city: &City) -> DispatchSnapshot {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let head = city.cases.log().head().await.unwrap();
        if let Some(bytes) = store.load().await.unwrap() {
            let snapshot = DispatchSnapshot::decode(&bytes).unwrap();
            if snapshot.position == head {
                return snapshot;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot at the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restarted_dispatcher_carries_on_from_its_snapshot_and_dispatches_every_waiting_case_once(
) {
    let server = NatsServer::start();
    let store = SnapshotStore::open(server.connect().await, dispatch_snapshot_store(1))
        .await
        .unwrap();
    let city = City::new();

    // The first instance holds partition 0 only (so it writes the snapshot): the cases of
    // other partitions wait for whoever holds theirs.
    let first = Arc::new(
        city.dispatcher()
            .with_snapshots(store.clone(), Duration::from_millis(100)),
    );
    let ownership = Ownership::nothing();
    ownership.set([0].into());
    let running = tokio::spawn(first.clone().run(ownership, 1, std::future::pending()));
    let mut before = Vec::new();
    for n in 0..24 {
        before.push(city.report(n).await);
    }
    let mine: Vec<CaseId> = before
        .iter()
        .copied()
        .filter(|c| partition_of(*c) == 0)
        .collect();
    city.wait_until_dispatched(&mine).await;
    let snapshot = snapshot_at_head(&store, &city).await;
    running.abort();
    let waiting_then = before.len() - mine.len();
    assert_eq!(
        snapshot.waiting.len(),
        waiting_then,
        "the snapshot keeps every case still waiting"
    );

    // While no dispatcher runs, more reports come in.
    let mut after = Vec::new();
    for n in 0..6 {
        after.push(city.report(n).await);
    }

    // A new instance holding everything starts from the snapshot, not from the log's start.
    let second = Arc::new(
        city.dispatcher()
            .with_snapshots(store.clone(), Duration::from_secs(300)),
    );
    let running = tokio::spawn(second.clone().run(
        Ownership::everything(),
        1,
        std::future::pending(),
    ));
    let all: Vec<CaseId> = before.iter().chain(&after).copied().collect();
    city.wait_until_dispatched(&all).await;
    assert_eq!(second.restored_from(), Some(snapshot.position));
    for case_id in &all {
        assert_eq!(
            city.dispatches_of(*case_id).await,
            1,
            "case {case_id:?} dispatched once"
        );
    }
    // Let the second instance read its own last commits, then compare its loads with a
    // dispatcher that folded the whole log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.abort();
    let whole_log = city.dispatcher();
    let head = city.cases.log().head().await.unwrap();
    let mut commits = city.cases.log().read_from(1).take(head as usize);
    while let Some(commit) = commits.next().await {
        whole_log.observe(&commit.unwrap());
    }
    for building in BUILDINGS {
        let worker = format!("w-{building}");
        assert_eq!(
            second.open_cases(&worker),
            whole_log.open_cases(&worker),
            "open load of {worker}"
        );
        assert!(whole_log.open_cases(&worker) > 0);
    }
}

#[tokio::test]
async fn a_snapshot_ahead_of_the_log_is_ignored_and_the_whole_log_read() {
    let server = NatsServer::start();
    let store = SnapshotStore::open(server.connect().await, dispatch_snapshot_store(1))
        .await
        .unwrap();
    // A snapshot of another log, begun again: its position is past this log's head.
    let stranger = wangge_engine::runtime::loads::WorkerLoads::default();
    store
        .save(&DispatchSnapshot::encode(10_000, &stranger, Vec::new()))
        .await
        .unwrap();
    let city = City::new();
    let mut reports = Vec::new();
    for n in 0..3 {
        reports.push(city.report(n).await);
    }
    let dispatcher = Arc::new(
        city.dispatcher()
            .with_snapshots(store.clone(), Duration::from_secs(300)),
    );
    let running = tokio::spawn(dispatcher.clone().run(
        Ownership::everything(),
        1,
        std::future::pending(),
    ));
    city.wait_until_dispatched(&reports).await;
    assert_eq!(dispatcher.restored_from(), None);
    running.abort();
}

#[tokio::test]
async fn a_damaged_snapshot_is_ignored_and_the_whole_log_read() {
    let server = NatsServer::start();
    let store = SnapshotStore::open(server.connect().await, dispatch_snapshot_store(1))
        .await
        .unwrap();
    store.save(b"not a snapshot at all").await.unwrap();
    let city = City::new();
    let reports = vec![city.report(0).await, city.report(1).await];
    let dispatcher = Arc::new(
        city.dispatcher()
            .with_snapshots(store.clone(), Duration::from_secs(300)),
    );
    let running = tokio::spawn(dispatcher.clone().run(
        Ownership::everything(),
        1,
        std::future::pending(),
    ));
    city.wait_until_dispatched(&reports).await;
    assert_eq!(dispatcher.restored_from(), None);
    running.abort();
}
