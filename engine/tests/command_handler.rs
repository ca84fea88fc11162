//! The command handler as the rest of the system sees it: a command goes in, its events are
//! committed exactly once (or it is refused and nothing is written), however many senders
//! race on one case and however often a message is delivered again.
//!
//! Every behaviour is a generic async function over the log; the `handler_rules!` macro runs
//! each against a `MemoryLog` (module `memory`) and a `JetStreamLog` on a nats-server of its
//! own (module `jetstream`). The module `jetstream_duplicate_window` needs the real server.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Barrier;
use wangge_engine::app::{CaseService, CommandError, CommandOutcome, CommandRequest};
use wangge_engine::domain::{CaseCommand, CaseStatus, DomainError};
use wangge_engine::log::{EventLog, MemoryLog, StoredCommit};
use wangge_schemas::{CaseEvent, CaseId, EventEnvelope, Priority, Source, Tier};
use wangge_testkit::NatsServer;

use support::{location, patrol_finding, report_command, request, service, within, BUILDING};

const PATIENCE: Duration = Duration::from_secs(5);
const WANG: &str = "wang-li";
const ZHANG: &str = "zhang-wei";

fn accept() -> CaseCommand {
    CaseCommand::Accept {
        category: "municipal.lighting".to_owned(),
        priority: Priority::Normal,
    }
}

fn dispatch_to(worker: &str) -> CaseCommand {
    CaseCommand::Dispatch {
        tier: Tier::Building,
        cell: BUILDING.to_owned(),
        assignee: worker.to_owned(),
    }
}

fn acknowledge(worker: &str) -> CaseCommand {
    CaseCommand::Acknowledge {
        worker_id: worker.to_owned(),
    }
}

fn comment(text: &str) -> CaseCommand {
    CaseCommand::Comment {
        text: text.to_owned(),
    }
}

fn sequences(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

/// A reported case, accepted and waiting for a worker.
async fn case_awaiting_dispatch<L: EventLog>(cases: &CaseService<L>) -> CaseId {
    let case = CaseId::new_v7();
    cases
        .handle(request(case, report_command(), &format!("report-{case}")))
        .await
        .unwrap();
    cases
        .handle(request(case, accept(), &format!("accept-{case}")))
        .await
        .unwrap();
    case
}

/// A case dispatched to `worker`, who has not answered yet.
async fn case_dispatched_to<L: EventLog>(cases: &CaseService<L>, worker: &str) -> CaseId {
    let case = case_awaiting_dispatch(cases).await;
    cases
        .handle(request(
            case,
            dispatch_to(worker),
            &format!("dispatch-{case}"),
        ))
        .await
        .unwrap();
    case
}

/// Every commit in the log, oldest first.
async fn all_commits<L: EventLog>(log: &L) -> Vec<StoredCommit> {
    let head = log.head().await.unwrap() as usize;
    within(
        "the whole log",
        PATIENCE,
        log.read_from(1).take(head).try_collect::<Vec<_>>(),
    )
    .await
    .unwrap()
}

/// Runs all `requests` at the same moment, each on its own task.
async fn race<L: EventLog>(
    cases: &Arc<CaseService<L>>,
    requests: Vec<CommandRequest>,
) -> Vec<Result<CommandOutcome, CommandError>> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let (cases, barrier) = (cases.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cases.handle(request).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn events_from(events: &[EventEnvelope], source: &Source) -> Vec<EventEnvelope> {
    events
        .iter()
        .filter(|e| &e.source == source)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Commands are decided and committed
// ---------------------------------------------------------------------------------------

async fn reporting_a_case_commits_its_first_event_at_sequence_one<L: EventLog + Clone>(log: L) {
    let cases = service(log.clone());
    let case = CaseId::new_v7();

    let outcome = cases
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();

    assert!(!outcome.duplicate);
    assert_eq!((outcome.case_id, outcome.sequence), (case, 1));
    assert!(matches!(outcome.events[..], [ref e] if matches!(e.event, CaseEvent::Reported(_))));
    assert_eq!(log.load(case).await.unwrap().events, outcome.events);
    let (state, _) = cases.state_of(case).await.unwrap();
    assert_eq!(state.status, CaseStatus::Reported);
}

async fn a_command_on_a_case_never_reported_is_refused_and_writes_nothing<L: EventLog + Clone>(
    log: L,
) {
    let cases = service(log.clone());

    let refused = cases
        .handle(request(CaseId::new_v7(), accept(), "accept-1"))
        .await;

    assert!(
        matches!(
            refused,
            Err(CommandError::Domain(DomainError::CaseNotFound))
        ),
        "{refused:?}"
    );
    assert_eq!(log.head().await.unwrap(), 0);
}

async fn a_refused_command_writes_nothing<L: EventLog + Clone>(log: L) {
    let cases = service(log.clone());
    let case = case_dispatched_to(&cases, WANG).await;
    let head = log.head().await.unwrap();

    let refused = cases
        .handle(request(case, acknowledge(ZHANG), "ack-zhang"))
        .await;

    assert!(
        matches!(
            refused,
            Err(CommandError::Domain(DomainError::NotAssignee { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(log.head().await.unwrap(), head);
}

async fn a_command_that_causes_several_events_commits_them_together<L: EventLog + Clone>(log: L) {
    // A patrol finding fixed on the spot: handling started, resolved and closed at once.
    let cases = service(log.clone());
    let case = CaseId::new_v7();
    let report = CaseCommand::Report {
        location: location(),
        report: patrol_finding(WANG),
    };
    cases
        .handle(request(case, report, "patrol-1"))
        .await
        .unwrap();
    let head = log.head().await.unwrap();
    let self_handle = CaseCommand::SelfHandle {
        worker_id: WANG.to_owned(),
        notes: "Moved the bicycles to the shed".to_owned(),
        media: Vec::new(),
    };

    let outcome = cases
        .handle(request(case, self_handle, "fixed-1"))
        .await
        .unwrap();

    assert_eq!(sequences(&outcome.events), vec![2, 3, 4]);
    assert_eq!(outcome.sequence, 4);
    assert_eq!(
        log.head().await.unwrap(),
        head + 1,
        "one commit for the three events"
    );
    let last = all_commits(&log).await.pop().unwrap();
    assert_eq!(last.events, outcome.events);
    assert_eq!(
        cases.state_of(case).await.unwrap().0.status,
        CaseStatus::Closed
    );
}

// ---------------------------------------------------------------------------------------
// Racing senders
// ---------------------------------------------------------------------------------------

async fn two_reports_of_one_case_racing_exactly_one_creates_it<L: EventLog + Clone>(log: L) {
    let cases = Arc::new(service(log.clone()));
    let case = CaseId::new_v7();

    let results = race(
        &cases,
        vec![
            request(case, report_command(), "hotline-1"),
            request(case, report_command(), "app-1"),
        ],
    )
    .await;

    let created: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(CommandError::Domain(DomainError::CaseAlreadyExists)))),
        "the loser is decided again and learns the case exists: {results:?}"
    );
    assert_eq!(log.load(case).await.unwrap().events, created[0].events);
}

async fn two_dispatchers_racing_on_one_case_exactly_one_dispatches_it<L: EventLog + Clone>(log: L) {
    let cases = Arc::new(service(log.clone()));
    let case = case_awaiting_dispatch(&cases).await;

    let results = race(
        &cases,
        vec![
            request(case, dispatch_to(WANG), "desk-a"),
            request(case, dispatch_to(ZHANG), "desk-b"),
        ],
    )
    .await;

    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(
        r,
        Err(CommandError::Domain(DomainError::InvalidTransition {
            command: "dispatch",
            status: CaseStatus::Dispatched
        }))
    )));
    let history = log.load(case).await.unwrap();
    assert_eq!(sequences(&history.events), vec![1, 2, 3]);
    assert_eq!(history.events[2..], won[0].events);
}

async fn a_worker_acknowledging_from_two_phones_at_once_is_recorded_once<L: EventLog + Clone>(
    log: L,
) {
    let cases = Arc::new(service(log.clone()));
    let case = case_dispatched_to(&cases, WANG).await;

    let results = race(
        &cases,
        vec![
            request(case, acknowledge(WANG), "phone-1"),
            request(case, acknowledge(WANG), "phone-2"),
        ],
    )
    .await;

    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().any(|r| matches!(
        r,
        Err(CommandError::Domain(DomainError::InvalidTransition {
            command: "acknowledge",
            ..
        }))
    )));
    let history = log.load(case).await.unwrap();
    let acknowledged = history
        .events
        .iter()
        .filter(|e| matches!(e.event, CaseEvent::Acknowledged(_)))
        .count();
    assert_eq!(acknowledged, 1);
}

async fn a_worker_acknowledging_while_the_case_is_reassigned_is_decided_on_what_happened_first<
    L: EventLog + Clone,
>(
    log: L,
) {
    let cases = Arc::new(service(log.clone()));
    let case = case_dispatched_to(&cases, WANG).await;
    let reassign = CaseCommand::Reassign {
        to_worker: ZHANG.to_owned(),
        tier: Tier::Building,
        cell: BUILDING.to_owned(),
        reason: "Wang is on leave".to_owned(),
    };

    let results = race(
        &cases,
        vec![
            request(case, acknowledge(WANG), "wang-ack"),
            request(case, reassign, "supervisor-1"),
        ],
    )
    .await;

    // Whichever came first, the log tells one consistent story.
    assert!(
        results[1].is_ok(),
        "a reassignment is allowed either way: {results:?}"
    );
    let history = log.load(case).await.unwrap();
    let types: Vec<_> = history.events[3..].iter().map(|e| e.event_type()).collect();
    match &results[0] {
        Ok(_) => assert_eq!(types, ["case.acknowledged", "case.reassigned"]),
        Err(CommandError::Domain(DomainError::NotAssignee {
            worker_id,
            assignee,
        })) => {
            assert_eq!(
                (worker_id.as_str(), assignee.as_deref()),
                (WANG, Some(ZHANG))
            );
            assert_eq!(types, ["case.reassigned"]);
        }
        Err(other) => panic!("unexpected refusal: {other}"),
    }
    assert_eq!(
        sequences(&history.events),
        (1..=history.events.len() as u64).collect::<Vec<_>>()
    );
}

async fn ten_concurrent_comments_are_all_committed_with_gapless_sequences<L: EventLog + Clone>(
    log: L,
) {
    let cases = Arc::new(service(log.clone()));
    let case = CaseId::new_v7();
    cases
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    let comments: Vec<_> = (0..10)
        .map(|i| {
            request(
                case,
                comment(&format!("comment {i}")),
                &format!("comment-{i}"),
            )
        })
        .collect();

    let results = race(&cases, comments.clone()).await;

    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every comment is accepted"))
        .collect();
    assert!(outcomes.iter().all(|o| !o.duplicate && o.events.len() == 1));
    let given: BTreeSet<u64> = outcomes.iter().map(|o| o.sequence).collect();
    assert_eq!(
        given,
        (2..=11).collect(),
        "each comment got its own sequence"
    );
    let history = log.load(case).await.unwrap();
    assert_eq!(sequences(&history.events), (1..=11).collect::<Vec<_>>());
    for (request, outcome) in comments.iter().zip(&outcomes) {
        assert_eq!(
            events_from(&history.events, &request.source),
            outcome.events,
            "exactly once"
        );
    }
}

async fn two_engine_instances_writing_to_one_case_never_lose_an_event<L: EventLog + Clone>(log: L) {
    // Each instance remembers cases between commands; the log corrects a stale memory.
    let (first, second) = (
        Arc::new(service(log.clone())),
        Arc::new(service(log.clone())),
    );
    let case = CaseId::new_v7();
    first
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    second
        .handle(request(
            case,
            comment("seen by the second instance"),
            "second-0",
        ))
        .await
        .unwrap();

    let tasks: Vec<_> = [first, second]
        .into_iter()
        .enumerate()
        .map(|(n, cases)| {
            tokio::spawn(async move {
                for i in 0..5 {
                    let source = format!("instance{n}-{i}");
                    cases
                        .handle(request(case, comment(&source), &source))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let history = log.load(case).await.unwrap();
    assert_eq!(sequences(&history.events), (1..=12).collect::<Vec<_>>());
    let sources: HashSet<_> = history
        .events
        .iter()
        .map(|e| e.source.message_id.clone())
        .collect();
    assert_eq!(sources.len(), 12, "every command once");
}

async fn an_engine_instance_with_a_stale_view_of_a_case_is_corrected_by_the_log<
    L: EventLog + Clone,
>(
    log: L,
) {
    let (stale, current) = (service(log.clone()), service(log.clone()));
    let case = case_awaiting_dispatch(&stale).await;
    current
        .handle(request(case, dispatch_to(WANG), "desk-a"))
        .await
        .unwrap();

    let refused = stale
        .handle(request(case, dispatch_to(ZHANG), "desk-b"))
        .await;

    assert!(
        matches!(
            refused,
            Err(CommandError::Domain(DomainError::InvalidTransition {
                command: "dispatch",
                ..
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(log.load(case).await.unwrap().events.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Messages delivered again
// ---------------------------------------------------------------------------------------

async fn a_command_retried_with_the_same_source_is_a_duplicate_and_writes_nothing<
    L: EventLog + Clone,
>(
    log: L,
) {
    let cases = service(log.clone());
    let case = case_dispatched_to(&cases, WANG).await;
    let ack = request(case, acknowledge(WANG), "ack-1");
    let first = cases.handle(ack.clone()).await.unwrap();
    let head = log.head().await.unwrap();

    let again = cases.handle(ack.clone()).await.unwrap();

    assert!(again.duplicate);
    assert_eq!(
        (again.events, again.sequence),
        (first.events.clone(), first.sequence)
    );
    assert_eq!(log.head().await.unwrap(), head);
    // Also after later commands, and through an engine that has just started.
    cases
        .handle(request(case, comment("on my way"), "comment-1"))
        .await
        .unwrap();
    let later = service(log.clone()).handle(ack).await.unwrap();
    assert_eq!((later.duplicate, later.events), (true, first.events));
}

async fn a_report_retried_through_a_restarted_engine_is_a_duplicate<L: EventLog + Clone>(log: L) {
    let case = CaseId::new_v7();
    let report = request(case, report_command(), "report-1");
    let first = service(log.clone()).handle(report.clone()).await.unwrap();

    let again = service(log.clone()).handle(report).await.unwrap();

    assert_eq!((again.duplicate, again.events), (true, first.events));
    assert_eq!(log.head().await.unwrap(), 1);
}

async fn a_command_delivered_several_times_at_once_is_written_once<L: EventLog + Clone>(log: L) {
    let cases = Arc::new(service(log.clone()));
    let case = case_dispatched_to(&cases, WANG).await;
    let head = log.head().await.unwrap();
    let ack = request(case, acknowledge(WANG), "ack-1");

    let results = race(&cases, vec![ack.clone(), ack.clone(), ack.clone(), ack]).await;

    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every delivery is answered"))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| !o.duplicate).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().all(|o| o.events == outcomes[0].events));
    assert_eq!(log.head().await.unwrap(), head + 1);
}

async fn one_message_acting_on_two_cases_is_recorded_on_both<L: EventLog + Clone>(log: L) {
    // A supervisor's note sent to two cases in one message: the message id is the same,
    // the cases are not.
    let cases = service(log.clone());
    let (a, b) = (CaseId::new_v7(), CaseId::new_v7());
    cases
        .handle(request(a, report_command(), "report-a"))
        .await
        .unwrap();
    cases
        .handle(request(b, report_command(), "report-b"))
        .await
        .unwrap();

    let on_a = cases
        .handle(request(a, comment("Checked by the district"), "bulk-1"))
        .await
        .unwrap();
    let on_b = cases
        .handle(request(b, comment("Checked by the district"), "bulk-1"))
        .await
        .unwrap();

    assert!(!on_a.duplicate && !on_b.duplicate, "{on_a:?} {on_b:?}");
    assert_eq!(log.load(a).await.unwrap().events.len(), 2);
    assert_eq!(log.load(b).await.unwrap().events.len(), 2);
}

async fn the_same_message_id_from_two_systems_is_two_commands<L: EventLog + Clone>(log: L) {
    let cases = service(log.clone());
    let case = CaseId::new_v7();
    cases
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    let mut from_kiosk = request(case, comment("from the kiosk"), "msg-1");
    from_kiosk.source.system = "kiosk-07".to_owned();
    let mut from_app = request(case, comment("from the app"), "msg-1");
    from_app.source.system = "miniprogram".to_owned();

    let kiosk = cases.handle(from_kiosk).await.unwrap();
    let app = cases.handle(from_app).await.unwrap();

    assert!(!kiosk.duplicate && !app.duplicate);
    assert_eq!(log.load(case).await.unwrap().events.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Commands after a history the caller holds
// ---------------------------------------------------------------------------------------

async fn a_command_after_the_cases_current_history_is_written_and_extends_it<
    L: EventLog + Clone,
>(
    log: L,
) {
    let cases = service(log.clone());
    let case = case_awaiting_dispatch(&cases).await;
    let mut history = log.load(case).await.unwrap();

    let outcome = cases
        .handle_after(request(case, dispatch_to(WANG), "dispatch-1"), &mut history)
        .await
        .unwrap();

    assert!(!outcome.duplicate);
    assert_eq!(sequences(&outcome.events), [3]);
    // What the caller holds now is the case exactly as the log has it, positions included:
    // it can go on from there without reading the case.
    assert_eq!(history, log.load(case).await.unwrap());
    let next = cases
        .handle_after(request(case, acknowledge(WANG), "ack-1"), &mut history)
        .await
        .unwrap();
    assert_eq!(sequences(&next.events), [4]);
    assert_eq!(history, log.load(case).await.unwrap());
}

async fn a_command_after_a_history_the_case_has_moved_on_from_is_stale_and_writes_nothing<
    L: EventLog + Clone,
>(
    log: L,
) {
    let cases = service(log.clone());
    let case = case_awaiting_dispatch(&cases).await;
    let mut seen = log.load(case).await.unwrap();
    // Someone else acts on the case after the caller looked at it.
    cases
        .handle(request(case, comment("Resident called again"), "comment-1"))
        .await
        .unwrap();
    let head = log.head().await.unwrap();
    let before = seen.clone();

    let refused = cases
        .handle_after(request(case, dispatch_to(WANG), "dispatch-1"), &mut seen)
        .await;

    assert!(
        matches!(refused, Err(CommandError::Stale { expected: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(log.head().await.unwrap(), head, "nothing was written");
    assert_eq!(seen, before, "the caller's history is left as it was");
}

async fn a_command_after_a_known_history_whose_source_was_handled_is_a_duplicate<
    L: EventLog + Clone,
>(
    log: L,
) {
    // Two engine instances decide the same step on the same history (a lease hand-over):
    // the second one's command, with the same source, is the first one's result.
    let (first, second) = (service(log.clone()), service(log.clone()));
    let case = case_awaiting_dispatch(&first).await;
    let seen = log.load(case).await.unwrap();
    let written = first
        .handle_after(
            request(case, dispatch_to(WANG), "dispatch@2"),
            &mut seen.clone(),
        )
        .await
        .unwrap();
    let head = log.head().await.unwrap();

    let mut stale = seen.clone();
    let again = second
        .handle_after(request(case, dispatch_to(ZHANG), "dispatch@2"), &mut stale)
        .await
        .unwrap();

    assert!(again.duplicate);
    assert_eq!(again.events, written.events, "the first dispatch stands");
    assert_eq!(log.head().await.unwrap(), head, "nothing was written");
    assert_eq!(
        stale,
        log.load(case).await.unwrap(),
        "the caller holds the case as it is now"
    );
    // A history that already shows the source answers without asking the log.
    let mut current = log.load(case).await.unwrap();
    let known = second
        .handle_after(
            request(case, dispatch_to(ZHANG), "dispatch@2"),
            &mut current,
        )
        .await
        .unwrap();
    assert_eq!((known.duplicate, known.events), (true, written.events));
}

// ---------------------------------------------------------------------------------------
// Both logs
// ---------------------------------------------------------------------------------------

macro_rules! handler_rules {
    ($($rule:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $rule() {
                    super::$rule(MemoryLog::new()).await;
                }
            )*
        }

        mod jetstream {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $rule() {
                    let server = NatsServer::start();
                    super::$rule(support::jetstream_log(&server).await).await;
                }
            )*
        }
    };
}

handler_rules!(
    reporting_a_case_commits_its_first_event_at_sequence_one,
    a_command_on_a_case_never_reported_is_refused_and_writes_nothing,
    a_refused_command_writes_nothing,
    a_command_that_causes_several_events_commits_them_together,
    two_reports_of_one_case_racing_exactly_one_creates_it,
    two_dispatchers_racing_on_one_case_exactly_one_dispatches_it,
    a_worker_acknowledging_from_two_phones_at_once_is_recorded_once,
    a_worker_acknowledging_while_the_case_is_reassigned_is_decided_on_what_happened_first,
    ten_concurrent_comments_are_all_committed_with_gapless_sequences,
    two_engine_instances_writing_to_one_case_never_lose_an_event,
    an_engine_instance_with_a_stale_view_of_a_case_is_corrected_by_the_log,
    a_command_retried_with_the_same_source_is_a_duplicate_and_writes_nothing,
    a_report_retried_through_a_restarted_engine_is_a_duplicate,
    a_command_delivered_several_times_at_once_is_written_once,
    one_message_acting_on_two_cases_is_recorded_on_both,
    the_same_message_id_from_two_systems_is_two_commands,
    a_command_after_the_cases_current_history_is_written_and_extends_it,
    a_command_after_a_history_the_case_has_moved_on_from_is_stale_and_writes_nothing,
    a_command_after_a_known_history_whose_source_was_handled_is_a_duplicate,
);

// ---------------------------------------------------------------------------------------
// Beyond the server's duplicate window
// ---------------------------------------------------------------------------------------

mod jetstream_duplicate_window {
    use super::*;
    use wangge_engine::log::{JetStreamLog, JetStreamLogConfig};

    const WINDOW: Duration = Duration::from_secs(1);

    /// Waits until the server has forgotten a commit's `Nats-Msg-Id`: a message under the
    /// same id, conditional on the probe case being where the first one left it, is no
    /// longer answered as a duplicate but stored. (The log itself cannot tell: it recognises
    /// a retried commit by the message after its expected position, window or not.) Leaves
    /// two probe messages in the stream.
    async fn wait_until_the_server_forgets_a_key(server: &NatsServer, log: &JetStreamLog) {
        let probe = support::commit(CaseId::new_v7(), 0, 1, "probe");
        let first = log.append(probe.clone(), 0).await.unwrap();
        assert!(!first.duplicate);
        let context = async_nats::jetstream::new(server.connect().await);
        let subject = log.config().case_subject(probe.case_id);
        let publish = |context: async_nats::jetstream::Context| {
            let (subject, key) = (subject.clone(), probe.idempotency_key.clone());
            async move {
                let message = async_nats::jetstream::message::PublishMessage::build()
                    .payload("probe".into())
                    .message_id(key)
                    .expected_last_subject_sequence(first.position);
                context
                    .send_publish(subject, message)
                    .await
                    .unwrap()
                    .await
                    .unwrap()
            }
        };
        assert!(
            publish(context.clone()).await.duplicate,
            "remembered inside the window"
        );
        support::eventually("the duplicate window to pass", WINDOW * 5, || {
            let publish = publish(context.clone());
            async move { (!publish.await.duplicate).then_some(()) }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_retried_after_the_duplicate_window_is_still_not_written_twice() {
        let server = NatsServer::start();
        let config = JetStreamLogConfig {
            duplicate_window: WINDOW,
            ..JetStreamLogConfig::default()
        };
        let log = support::jetstream_log_with(&server, config).await;
        let running = service(log.clone());
        let case = CaseId::new_v7();
        let report = request(case, report_command(), "report-1");
        let first_report = running.handle(report.clone()).await.unwrap();
        let note = request(case, comment("Resident called again"), "comment-1");
        let first_note = running.handle(note.clone()).await.unwrap();
        let head = log.head().await.unwrap();

        wait_until_the_server_forgets_a_key(&server, &log).await;

        // The running engine and one that has just started both know the case's history.
        let restarted = service(log.clone());
        for cases in [&running, &restarted] {
            let note_again = cases.handle(note.clone()).await.unwrap();
            assert_eq!(
                (note_again.duplicate, &note_again.events),
                (true, &first_note.events)
            );
            let report_again = cases.handle(report.clone()).await.unwrap();
            assert_eq!(
                (report_again.duplicate, &report_again.events),
                (true, &first_report.events)
            );
        }
        let probe_commits = 2;
        assert_eq!(
            log.head().await.unwrap(),
            head + probe_commits,
            "nothing new was written"
        );
        assert_eq!(log.load(case).await.unwrap().events.len(), 2);
    }
}
