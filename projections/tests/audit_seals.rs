//! The audit trail a read model serves is checked against the engine's seals when it is
//! given the keyring (as `wangge serve` and the demo do): an event slipped into the log
//! without the engine's key shows as forged in the case's trail, in memory and in
//! PostgreSQL alike, and a genuine case's trail stays intact.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::commit::StoredSeal;
use wangge_engine::domain::seal::Keyring;
use wangge_engine::domain::{replay, stamp, CaseCommand, EventMeta};
use wangge_engine::log::{Commit, EventLog, MemoryLog, SealKey, StoredCommit};
use wangge_projections::fold::audit::{AuditProblemKind, AuditProjection, SealPolicy};
use wangge_projections::query::ReadModels;
use wangge_projections::runner::project_batch;
use wangge_projections::{FoldContext, MemoryReadModels, PostgresReadModels};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, CaseVoided, Channel, GridLocation, ReportDetails,
    Resident, Source,
};
use wangge_testkit::TestDatabase;

fn request(case_id: CaseId, command: CaseCommand, message_id: &str) -> CommandRequest {
    CommandRequest {
        case_id,
        command,
        actor: Actor::system("test"),
        source: Source {
            system: "test".to_owned(),
            message_id: message_id.to_owned(),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

fn report() -> CaseCommand {
    CaseCommand::Report {
        location: GridLocation {
            district: "110101001".to_owned(),
            community: "110101001002".to_owned(),
            building: "110101001002007".to_owned(),
        },
        report: CaseReported {
            intake_clock: None,
            title: "Blocked drain".to_owned(),
            description: "Water over the path by unit 3".to_owned(),
            reported_category: "municipal.lighting".to_owned(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::MiniProgram,
                resident: Resident {
                    id: "resident-7".to_owned(),
                    contact: None,
                    legacy_contact: None,
                },
            },
        },
    }
}

/// Two sealed cases; then a `case.voided` appended to the first through a handle of the same
/// log that holds no key (a writer outside the engine). Returns the log's commits.
async fn a_log_with_a_forgery(key: Arc<SealKey>) -> (Vec<StoredCommit>, CaseId, CaseId) {
    let outside = MemoryLog::new();
    let engine = CaseService::new(outside.clone().with_seal_key(key), Arc::new(SystemClock));
    let (forged, genuine) = (CaseId::new_v7(), CaseId::new_v7());
    for (n, case_id) in [forged, genuine].into_iter().enumerate() {
        engine
            .handle(request(case_id, report(), &format!("report-{n}")))
            .await
            .unwrap();
    }
    let history = outside.load(forged).await.unwrap();
    let state = replay(&history.events);
    let now = chrono::Utc::now();
    let meta = EventMeta {
        actor: Actor::supervisor("supervisor-1"),
        source: Source {
            system: "forger".to_owned(),
            message_id: "void-1".to_owned(),
        },
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        occurred_at: now,
        recorded_at: now,
    };
    let events = stamp(
        &state,
        forged,
        state.location.as_ref().unwrap(),
        vec![CaseEvent::Voided(CaseVoided {
            reason: "no longer needed".to_owned(),
        })],
        &meta,
        uuid::Uuid::now_v7,
    );
    let commit = Commit {
        case_id: forged,
        events,
        idempotency_key: "void-1".to_owned(),
    };
    outside.append(commit, history.last_position).await.unwrap();
    let head = outside.head().await.unwrap();
    let commits = outside
        .read_from(1)
        .take(head as usize)
        .try_collect()
        .await
        .unwrap();
    (commits, forged, genuine)
}

fn context_checking(key: &SealKey) -> FoldContext {
    let mut keyring = Keyring::default();
    keyring.insert(key.verifying_key());
    FoldContext::bundled().with_seal_policy(Arc::new(SealPolicy {
        keyring,
        allow_unsealed_before: None,
    }))
}

async fn the_forgery_is_named_and_the_genuine_case_is_intact(
    models: &dyn ReadModels,
    forged: CaseId,
    genuine: CaseId,
) {
    let trail = models.audit_trail(forged).await.unwrap().unwrap();
    assert_eq!(trail.problems.len(), 1, "{:?}", trail.problems);
    let problem = &trail.problems[0];
    assert_eq!(
        (problem.kind.clone(), problem.sequence),
        (AuditProblemKind::Forged, 2)
    );
    assert_eq!(problem.event_id, Some(trail.entries[1].entry.event_id));
    assert!(problem.detail.contains("no seal after a sealed commit"));
    let trail = models.audit_trail(genuine).await.unwrap().unwrap();
    assert!(trail.problems.is_empty(), "{:?}", trail.problems);
}

#[tokio::test]
async fn the_memory_read_models_name_an_event_slipped_in_without_the_engines_key() {
    let key = Arc::new(SealKey::generate());
    let (commits, forged, genuine) = a_log_with_a_forgery(key.clone()).await;
    let models = MemoryReadModels::new(context_checking(&key));
    models.fold_commits(&commits).await.unwrap();
    the_forgery_is_named_and_the_genuine_case_is_intact(&*models, forged, genuine).await;

    // Without a keyring the read model checks the hash chain only: the forgery hides there.
    let unchecked = MemoryReadModels::new(FoldContext::bundled());
    unchecked.fold_commits(&commits).await.unwrap();
    let trail = unchecked.audit_trail(forged).await.unwrap().unwrap();
    assert!(trail.problems.is_empty());
}

#[tokio::test]
async fn the_postgres_read_models_name_an_event_slipped_in_without_the_engines_key() {
    let key = Arc::new(SealKey::generate());
    let (commits, forged, genuine) = a_log_with_a_forgery(key.clone()).await;
    let database = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&database.url(), context_checking(&key))
        .await
        .unwrap();
    project_batch(&AuditProjection, &*models, 0, &commits)
        .await
        .unwrap();
    the_forgery_is_named_and_the_genuine_case_is_intact(&*models, forged, genuine).await;
}

/// Seal headers come from whoever wrote the commit: one holding U+0000 (which PostgreSQL
/// cannot store in text) is stored without stalling the projection, and named as forged.
#[tokio::test]
async fn a_seal_header_holding_a_nul_is_stored_and_named_never_stalling_the_projection() {
    let key = Arc::new(SealKey::generate());
    let (mut commits, forged, genuine) = a_log_with_a_forgery(key.clone()).await;
    let last = commits.last_mut().unwrap();
    assert_eq!(last.case_id, forged);
    last.seal = Some(StoredSeal {
        seal: "engine\u{0}:AAAA".to_owned(),
        link: Some("\u{0}".to_owned()),
        payload_sha256: [0; 32],
    });
    let database = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&database.url(), context_checking(&key))
        .await
        .unwrap();
    project_batch(&AuditProjection, &*models, 0, &commits)
        .await
        .expect("the batch is written");
    let trail = models.audit_trail(forged).await.unwrap().unwrap();
    assert_eq!(trail.problems.len(), 1, "{:?}", trail.problems);
    assert_eq!(trail.problems[0].kind, AuditProblemKind::Forged);
    assert!(trail.problems[0].detail.contains("malformed seal"));
    assert!(models
        .audit_trail(genuine)
        .await
        .unwrap()
        .unwrap()
        .problems
        .is_empty());
}
