//! The durable task inbox against a real nats-server of the test's own: a case dispatched
//! to a worker reaches that worker's inbox whether or not the worker (or the publisher) was
//! running at the time; a reassignment withdraws the task from one worker and assigns it to
//! another; and neither a restarted publisher nor a restarted server loses or repeats a task.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::task::JoinHandle;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::tasks::inbox::TASK_PUBLISHER_CONSUMER;
use wangge_engine::tasks::{
    open_tasks, TaskError, TaskFastPath, TaskPublisher, TaskPublisherConfig, TaskStreamConfig,
    WorkerInbox,
};
use wangge_schemas::worker::{TaskKind, TaskMessage};
use wangge_schemas::{CaseId, Priority, Tier};
use wangge_testkit::NatsServer;

use support::{eventually, report_command, request, BUILDING, COMMUNITY};

const WAIT: Duration = Duration::from_secs(20);
const WANG: &str = "wang-li";
const ZHAO: &str = "zhao-min";

// ---------------------------------------------------------------------------------------
// The harness: a private nats-server, the engine's case service, task publishers, inboxes
// ---------------------------------------------------------------------------------------

struct World {
    server: NatsServer,
    cases: Arc<CaseService<JetStreamLog>>,
    publisher: Option<JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_publisher();
    }
}

/// Short timings, so that a commit a killed publisher held comes back within the test.
fn publisher_config() -> TaskPublisherConfig {
    TaskPublisherConfig {
        ack_wait: Duration::from_secs(2),
        pull_expiry: Duration::from_secs(1),
        retry_delay: Duration::from_millis(100),
        batch: 8,
        ..Default::default()
    }
}

impl World {
    async fn start() -> Self {
        let server = NatsServer::start();
        let log = JetStreamLog::open(server.connect().await, JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
        Self {
            server,
            cases,
            publisher: None,
        }
    }

    /// Starts a task publisher on a connection of its own, as an engine instance would.
    async fn start_publisher(&mut self) {
        self.start_publisher_with_fast_path().await;
    }

    /// Starts a task publisher, and returns the fast path a dispatcher beside it would use.
    async fn start_publisher_with_fast_path(&mut self) -> TaskFastPath {
        let client = self.server.connect().await;
        let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let publisher = TaskPublisher::open(client, log, publisher_config())
            .await
            .expect("open the task publisher");
        let fast_path = publisher.fast_path();
        self.publisher = Some(tokio::spawn(publisher.run(std::future::pending())));
        fast_path
    }

    /// Kills the publisher's task wherever it is, as a crash would.
    fn kill_publisher(&mut self) {
        if let Some(task) = self.publisher.take() {
            task.abort();
        }
    }

    /// A worker's app connecting to its inbox.
    async fn inbox(&self, worker: &str) -> WorkerInbox {
        WorkerInbox::open(
            self.server.connect().await,
            worker,
            &TaskStreamConfig::default(),
        )
        .await
        .expect("open the inbox")
    }

    /// Runs a command as the engine's own components would, retrying while the server is
    /// coming back (the same message id makes a retry harmless).
    async fn handle(&self, case: CaseId, command: CaseCommand, message_id: &str) {
        eventually(&format!("{message_id} on {case}"), WAIT, || {
            let request = request(case, command.clone(), message_id);
            async move { self.cases.handle(request).await.ok() }
        })
        .await;
    }

    /// A reported and accepted case in the test building, waiting for a worker.
    async fn accepted(&self) -> CaseId {
        let case = CaseId::new_v7();
        self.handle(case, report_command(), &format!("report-{case}"))
            .await;
        self.handle(
            case,
            CaseCommand::Accept {
                category: "municipal.lighting".to_owned(),
                priority: Priority::Urgent,
            },
            &format!("accept-{case}"),
        )
        .await;
        case
    }

    /// A reported and accepted case, dispatched to `worker` in the test building.
    async fn dispatched_to(&self, worker: &str) -> CaseId {
        let case = self.accepted().await;
        self.handle(case, dispatch_to(worker), &format!("dispatch-{case}"))
            .await;
        case
    }

    /// How many task messages the task stream holds (every one ever published).
    async fn task_messages(&self) -> u64 {
        let context = jetstream::new(self.server.connect().await);
        match context.get_stream("WANGGE_TASKS").await {
            Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
            Err(_) => 0,
        }
    }

    /// Waits until the publisher has nothing left to do: every commit acknowledged.
    async fn publisher_caught_up(&self) {
        let context = jetstream::new(self.server.connect().await);
        eventually("the task publisher to catch up", WAIT, || {
            let context = context.clone();
            async move {
                let stream = context.get_stream("WANGGE_EVENTS").await.ok()?;
                let mut consumer: jetstream::consumer::PullConsumer =
                    stream.get_consumer(TASK_PUBLISHER_CONSUMER).await.ok()?;
                let info = consumer.info().await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            }
        })
        .await;
    }
}

/// Takes tasks from `inbox` until `count` have arrived, then makes sure no more come.
async fn take_exactly(inbox: &WorkerInbox, count: usize) -> Vec<TaskMessage> {
    let mut taken = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while taken.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} got {} of {count} tasks: {taken:#?}",
            inbox.worker_id(),
            taken.len()
        );
        match inbox.take(100, Duration::from_millis(200)).await {
            Ok(tasks) => taken.extend(tasks),
            // The server may be coming back; the inbox reconnects by itself.
            Err(TaskError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("inbox of {}: {error}", inbox.worker_id()),
        }
    }
    let extra = inbox
        .take(100, Duration::from_millis(300))
        .await
        .expect("fetch again");
    assert!(
        extra.is_empty(),
        "{} got more than {count} tasks: {extra:#?}",
        inbox.worker_id()
    );
    assert_eq!(taken.len(), count, "{taken:#?}");
    taken
}

fn dispatch_to(worker: &str) -> CaseCommand {
    CaseCommand::Dispatch {
        tier: Tier::Building,
        cell: BUILDING.to_owned(),
        assignee: worker.to_owned(),
    }
}

fn kinds(tasks: &[TaskMessage]) -> Vec<(CaseId, TaskKind)> {
    tasks.iter().map(|t| (t.case_id, t.kind)).collect()
}

// ---------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_case_dispatched_while_the_worker_is_offline_reaches_the_inbox_when_they_connect() {
    let mut world = World::start().await;
    // Dispatched before any engine published tasks and before the worker ever connected.
    let case = world.dispatched_to(WANG).await;
    world.start_publisher().await;
    eventually("the task to be published", WAIT, || async {
        (world.task_messages().await == 1).then_some(())
    })
    .await;

    let inbox = world.inbox(WANG).await;
    let tasks = take_exactly(&inbox, 1).await;

    let task = &tasks[0];
    assert_eq!((task.case_id, task.kind), (case, TaskKind::Assigned));
    assert_eq!(task.worker_id, WANG);
    assert_eq!(task.title, "Street light out");
    assert_eq!(task.category, "municipal.lighting");
    assert_eq!(task.priority, Some(Priority::Urgent));
    assert_eq!((task.tier, task.cell.as_str()), (Tier::Building, BUILDING));
    assert_eq!(task.sequence, 3, "the dispatch is the case's third event");
    assert!(task.dispatched_at.is_some());

    // Connected but not looking: the next case waits for the next fetch.
    let second = world.dispatched_to(WANG).await;
    let tasks = take_exactly(&inbox, 1).await;
    assert_eq!(kinds(&tasks), [(second, TaskKind::Assigned)]);

    // A new connection of the same worker resumes where the inbox stands: nothing again.
    let reconnected = world.inbox(WANG).await;
    assert!(reconnected
        .take(100, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_reassignment_withdraws_the_task_from_the_old_worker_and_assigns_it_to_the_new() {
    let mut world = World::start().await;
    world.start_publisher().await;
    let case = world.dispatched_to(WANG).await;
    world
        .handle(
            case,
            CaseCommand::Reassign {
                to_worker: ZHAO.to_owned(),
                tier: Tier::Building,
                cell: BUILDING.to_owned(),
                reason: "wang-li is on leave".to_owned(),
            },
            "reassign",
        )
        .await;

    let wang = take_exactly(&world.inbox(WANG).await, 2).await;
    let zhao_inbox = world.inbox(ZHAO).await;
    let zhao = take_exactly(&zhao_inbox, 1).await;

    assert_eq!(
        kinds(&wang),
        [(case, TaskKind::Assigned), (case, TaskKind::Withdrawn)]
    );
    assert_eq!(
        wang[1].reason.as_deref(),
        Some("reassigned to `zhao-min`: wang-li is on leave")
    );
    assert!(open_tasks(&wang).is_empty(), "the task is no longer wang's");
    assert_eq!(kinds(&zhao), [(case, TaskKind::Assigned)]);
    assert_eq!(zhao[0].event_type, "case.reassigned");
    assert_eq!(open_tasks(&zhao).len(), 1);

    // Escalated to the community: the task leaves zhao too.
    world
        .handle(
            case,
            CaseCommand::Escalate {
                to_tier: Tier::Community,
                cell: COMMUNITY.to_owned(),
                reason: "the whole street is dark".to_owned(),
            },
            "escalate",
        )
        .await;
    let zhao = take_exactly(&zhao_inbox, 1).await;
    assert_eq!(kinds(&zhao), [(case, TaskKind::Withdrawn)]);
    assert_eq!(
        (zhao[0].tier, zhao[0].cell.as_str()),
        (Tier::Building, BUILDING)
    );
}

#[tokio::test]
async fn rework_returns_to_the_handler_and_closing_clears_the_inbox() {
    let mut world = World::start().await;
    world.start_publisher().await;
    let case = world.dispatched_to(WANG).await;
    let inbox = world.inbox(WANG).await;
    assert_eq!(
        kinds(&take_exactly(&inbox, 1).await),
        [(case, TaskKind::Assigned)]
    );
    let steps = [
        CaseCommand::Acknowledge {
            worker_id: WANG.to_owned(),
        },
        CaseCommand::Resolve {
            worker_id: WANG.to_owned(),
            notes: "replaced".to_owned(),
            media: Vec::new(),
        },
        CaseCommand::Verify {
            verifier: "chen".to_owned(),
            passed: false,
            notes: Some("still flickering".to_owned()),
        },
    ];
    for (index, command) in steps.into_iter().enumerate() {
        world.handle(case, command, &format!("step-{index}")).await;
    }
    let rework = take_exactly(&inbox, 1).await;
    assert_eq!(kinds(&rework), [(case, TaskKind::ReworkRequested)]);
    assert_eq!(rework[0].reason.as_deref(), Some("still flickering"));

    let finish = [
        CaseCommand::Resolve {
            worker_id: WANG.to_owned(),
            notes: "replaced the driver too".to_owned(),
            media: Vec::new(),
        },
        CaseCommand::Verify {
            verifier: "chen".to_owned(),
            passed: true,
            notes: None,
        },
    ];
    for (index, command) in finish.into_iter().enumerate() {
        world
            .handle(case, command, &format!("finish-{index}"))
            .await;
    }
    let closed = take_exactly(&inbox, 1).await;
    assert_eq!(kinds(&closed), [(case, TaskKind::Withdrawn)]);
    assert_eq!(closed[0].event_type, "case.closed");
}

#[tokio::test]
async fn a_task_the_dispatcher_delivers_at_once_is_there_once_and_one_it_fails_to_deliver_comes_from_the_publisher(
) {
    let mut world = World::start().await;
    let fast_path = world.start_publisher_with_fast_path().await;

    // The dispatcher announces the delivery, writes the dispatch, and delivers at once.
    let delivered = world.accepted().await;
    let mut history = world.cases.log().load(delivered).await.unwrap();
    let delivery = fast_path.announce(delivered, 3);
    let before = history.events.len();
    world
        .cases
        .handle_after(
            request(delivered, dispatch_to(WANG), "dispatch-1"),
            &mut history,
        )
        .await
        .unwrap();
    let (earlier, commit) = history.events.split_at(before);
    assert_eq!(delivery.deliver(earlier, commit).await, Ok(1));

    // Another dispatch is announced and written, but its delivery never happens (the
    // dispatcher stopped in between): the publisher must deliver it.
    let undelivered = world.accepted().await;
    let announced = fast_path.announce(undelivered, 3);
    world
        .handle(undelivered, dispatch_to(WANG), "dispatch-2")
        .await;
    drop(announced);

    world.publisher_caught_up().await;
    let tasks = take_exactly(&world.inbox(WANG).await, 2).await;
    let got: BTreeSet<CaseId> = tasks.iter().map(|t| t.case_id).collect();
    assert_eq!(got, BTreeSet::from([delivered, undelivered]));
    assert_eq!(
        world.task_messages().await,
        2,
        "one task message per dispatch"
    );
}

#[tokio::test]
async fn an_inbox_needs_a_worker_id_that_can_name_a_subject() {
    let world = World::start().await;
    let refused = WorkerInbox::open(
        world.server.connect().await,
        "wang.li",
        &TaskStreamConfig::default(),
    )
    .await;
    assert!(matches!(refused, Err(TaskError::InvalidWorkerId(id)) if id == "wang.li"));
}

// ---------------------------------------------------------------------------------------
// Nothing lost, nothing repeated
// ---------------------------------------------------------------------------------------

/// Cases dispatched round robin to `workers`, recorded per worker.
async fn dispatch_round_robin(
    world: &World,
    workers: &[&str],
    count: usize,
    into: &mut BTreeMap<String, BTreeSet<CaseId>>,
) {
    for index in 0..count {
        let worker = workers[index % workers.len()];
        let case = world.dispatched_to(worker).await;
        into.entry(worker.to_owned()).or_default().insert(case);
    }
}

/// Every worker got exactly its cases, each once, assigned.
async fn assert_inboxes(world: &World, expected: &BTreeMap<String, BTreeSet<CaseId>>) {
    for (worker, cases) in expected {
        let tasks = take_exactly(&world.inbox(worker).await, cases.len()).await;
        let got: BTreeSet<CaseId> = tasks.iter().map(|t| t.case_id).collect();
        assert_eq!(&got, cases, "{worker}'s tasks");
        assert!(tasks.iter().all(|t| t.kind == TaskKind::Assigned));
    }
}

#[tokio::test]
async fn restarting_the_publisher_neither_loses_nor_duplicates_a_task() {
    let mut world = World::start().await;
    let workers = ["w-1", "w-2", "w-3"];
    let mut expected = BTreeMap::new();

    world.start_publisher().await;
    dispatch_round_robin(&world, &workers, 6, &mut expected).await;
    // Killed wherever it is: between fetching a commit and publishing, or between
    // publishing and acknowledging.
    world.kill_publisher();
    dispatch_round_robin(&world, &workers, 6, &mut expected).await;
    world.start_publisher().await;
    dispatch_round_robin(&world, &workers, 3, &mut expected).await;
    world.kill_publisher();
    world.start_publisher().await;

    world.publisher_caught_up().await;
    // Whatever the killed publishers held has come back by now and been published again.
    tokio::time::sleep(publisher_config().ack_wait + Duration::from_secs(1)).await;
    world.publisher_caught_up().await;
    assert_eq!(
        world.task_messages().await,
        15,
        "one task message per dispatch"
    );
    assert_inboxes(&world, &expected).await;
}

#[tokio::test]
async fn killing_and_restarting_the_server_loses_nothing() {
    let mut world = World::start().await;
    world.start_publisher().await;
    let mut expected = BTreeMap::new();
    let early = world.dispatched_to(WANG).await;
    let inbox = world.inbox(WANG).await;
    assert_eq!(
        kinds(&take_exactly(&inbox, 1).await),
        [(early, TaskKind::Assigned)]
    );

    dispatch_round_robin(&world, &[WANG, ZHAO], 4, &mut expected).await;
    world.server.kill();
    world.server.restart();
    dispatch_round_robin(&world, &[WANG, ZHAO], 4, &mut expected).await;

    world.publisher_caught_up().await;
    // The inbox opened before the crash carries on with what it had not taken.
    let wang = take_exactly(&inbox, expected[WANG].len()).await;
    let got: BTreeSet<CaseId> = wang.iter().map(|t| t.case_id).collect();
    assert_eq!(got, expected[WANG]);
    let zhao = take_exactly(&world.inbox(ZHAO).await, expected[ZHAO].len()).await;
    let got: BTreeSet<CaseId> = zhao.iter().map(|t| t.case_id).collect();
    assert_eq!(got, expected[ZHAO]);
    assert_eq!(world.task_messages().await, 9);
}
