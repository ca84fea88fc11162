//! The engine's seal on every commit (issue 10, item 4): what a seal proves, that keys can
//! rotate without old commits failing, how the key file is kept, and that the engine seals
//! and chains every commit it appends — on the memory log and on a real nats-server.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::domain::commit::StoredCommit;
use wangge_engine::domain::fold::audit::{
    verify_seals, AuditChanges, AuditProblem, AuditProblemKind, AuditProjection, SealPolicy,
};
use wangge_engine::domain::fold::Projection;
use wangge_engine::domain::seal::{
    payload_digest, CommitSeal, Keyring, KeyringError, SealFault, SealedFacts, GENESIS_LINK,
};
use wangge_engine::domain::CaseCommand;
use wangge_engine::log::codec::encode_events;
use wangge_engine::log::{EventLog, MemoryLog, SealKey, SealKeyError};
use wangge_schemas::CaseId;
use wangge_testkit::NatsServer;

use support::{commit, report_command, request, within};

fn comment(text: &str) -> CaseCommand {
    CaseCommand::Comment {
        text: text.to_owned(),
    }
}

fn keyring_of(keys: &[&SealKey]) -> Keyring {
    let mut keyring = Keyring::default();
    for key in keys {
        keyring.insert(key.verifying_key());
    }
    keyring
}

fn policy(keys: &[&SealKey]) -> SealPolicy {
    SealPolicy {
        keyring: keyring_of(keys),
        allow_unsealed_before: None,
    }
}

/// Every commit of the log, as a projection reads them.
async fn read_all<L: EventLog>(log: &L) -> Vec<StoredCommit> {
    let head = log.head().await.unwrap();
    within(
        "the whole log",
        Duration::from_secs(5),
        log.read_from(1).take(head as usize).try_collect::<Vec<_>>(),
    )
    .await
    .unwrap()
}

/// The audit projection's entries of every case, then what the seals show of each case.
fn seal_problems(commits: &[StoredCommit], policy: &SealPolicy) -> Vec<AuditProblem> {
    let mut states = BTreeMap::new();
    let mut changes = AuditChanges::default();
    for commit in commits {
        let state = states.entry(commit.case_id).or_insert(None);
        AuditProjection.apply(state, commit, &mut changes);
    }
    let mut by_case: BTreeMap<CaseId, Vec<_>> = BTreeMap::new();
    for record in changes.records {
        by_case.entry(record.case_id).or_default().push(record);
    }
    by_case
        .iter()
        .flat_map(|(case_id, records)| verify_seals(*case_id, records, policy))
        .collect()
}

// ---------------------------------------------------------------------------------------
// What a seal proves
// ---------------------------------------------------------------------------------------

#[test]
fn a_seal_holds_for_the_commit_it_was_made_on_and_for_nothing_else() {
    let key = SealKey::generate();
    let case_id = CaseId::new_v7();
    let commit = commit(case_id, 0, 2, "report");
    let payload = encode_events(&commit.events);
    let seal = key.seal_commit(case_id, &commit.events, &payload, GENESIS_LINK);
    let ids: Vec<_> = commit.events.iter().map(|e| e.event_id).collect();
    let digest = payload_digest(&payload);
    let facts = SealedFacts {
        case_id,
        first_sequence: 1,
        last_sequence: 2,
        event_ids: &ids,
        payload_sha256: &digest,
        link: &GENESIS_LINK,
    };
    let keyring = key.keyring();
    assert_eq!(keyring.verify(&seal, &facts, &GENESIS_LINK), Ok(()));

    // The seal travels as two headers and reads back the same.
    let parsed = CommitSeal::parse(&seal.header_value(), Some(&seal.link_value())).unwrap();
    assert_eq!(parsed, seal);

    let bad = |facts: SealedFacts<'_>| keyring.verify(&seal, &facts, &GENESIS_LINK);
    let other_payload = payload_digest(b"[{\"type\":\"case.voided\"}]");
    assert!(matches!(
        bad(SealedFacts {
            payload_sha256: &other_payload,
            ..facts
        }),
        Err(SealFault::BadSignature { .. })
    ));
    let reordered: Vec<_> = ids.iter().rev().copied().collect();
    assert!(matches!(
        bad(SealedFacts {
            event_ids: &reordered,
            ..facts
        }),
        Err(SealFault::BadSignature { .. })
    ));
    assert!(matches!(
        bad(SealedFacts {
            case_id: CaseId::new_v7(),
            ..facts
        }),
        Err(SealFault::BadSignature { .. })
    ));
    assert!(matches!(
        bad(SealedFacts {
            last_sequence: 3,
            ..facts
        }),
        Err(SealFault::BadSignature { .. })
    ));
    // Linked elsewhere than the case's previous commit says: a broken link.
    assert!(matches!(
        keyring.verify(&seal, &facts, &[1; 32]),
        Err(SealFault::BrokenLink { .. })
    ));
    // Another engine's keyring does not know the key at all.
    assert_eq!(
        SealKey::generate()
            .keyring()
            .verify(&seal, &facts, &GENESIS_LINK),
        Err(SealFault::UnknownKey {
            key_id: key.key_id().to_owned()
        })
    );
}

#[test]
fn a_keyring_line_must_name_its_own_key() {
    let one = SealKey::generate();
    let two = SealKey::generate();
    let text = format!(
        "# the engines' seal keys, oldest first\n{}\n\n{}\n",
        one.keyring_line(),
        two.keyring_line()
    );
    let keyring = Keyring::parse(&text).unwrap();
    assert_eq!(keyring.len(), 2);

    let swapped = format!("{} {}", one.key_id(), two.public_key_text());
    assert!(matches!(
        Keyring::parse(&swapped),
        Err(KeyringError::Line { line: 1, reason }) if reason.contains("does not belong")
    ));
    let short = format!("{} AAAA", one.key_id());
    assert!(matches!(
        Keyring::parse(&short),
        Err(KeyringError::Line { line: 1, reason }) if reason.contains("3 bytes")
    ));
    assert!(matches!(
        Keyring::parse(&format!("# none\n{}", one.key_id())),
        Err(KeyringError::Line { line: 2, .. })
    ));
    assert_eq!(Keyring::parse("# nothing yet\n"), Err(KeyringError::Empty));
}

// ---------------------------------------------------------------------------------------
// The key file
// ---------------------------------------------------------------------------------------

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_seal_key_file_is_refused_when_missing_open_to_others_or_malformed() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        SealKey::load(&missing),
        Err(SealKeyError::Missing { .. })
    ));

    let key = SealKey::generate();
    let pem = dir.path().join("engine.pem");
    key.write_new(&pem).unwrap();
    for mode in [0o640, 0o604, 0o620] {
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = SealKey::load(&pem).unwrap_err();
        assert!(
            matches!(error, SealKeyError::TooOpen { mode: m, .. } if m == mode),
            "{error}"
        );
    }
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(SealKey::load(&pem).unwrap().key_id(), key.key_id());

    let seed = dir.path().join("engine.seed");
    write_private(&seed, &[9u8; 33]);
    let error = SealKey::load(&seed).unwrap_err();
    assert!(error.to_string().contains("33 bytes"), "{error}");

    let not_ed25519 = dir.path().join("rsa.pem");
    write_private(
        &not_ed25519,
        b"-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n",
    );
    let error = SealKey::load(&not_ed25519).unwrap_err();
    assert!(matches!(error, SealKeyError::Malformed { .. }), "{error}");
    assert!(error
        .to_string()
        .contains("not an Ed25519 PKCS#8 private key"));

    let directory = SealKey::load(dir.path()).unwrap_err();
    assert!(matches!(directory, SealKeyError::Unreadable { .. }));
}

#[test]
fn a_seed_file_and_a_pem_file_of_one_key_seal_alike_and_neither_is_ever_shown() {
    let dir = tempfile::tempdir().unwrap();
    let seed_bytes = [42u8; 32];
    let seed = dir.path().join("engine.seed");
    write_private(&seed, &seed_bytes);
    let from_seed = SealKey::load(&seed).unwrap();
    let pem = dir.path().join("engine.pem");
    from_seed.write_new(&pem).unwrap();
    let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a new key is readable by its owner only");
    let from_pem = SealKey::load(&pem).unwrap();
    assert_eq!(from_pem.key_id(), from_seed.key_id());
    assert_eq!(
        from_pem.verifying_key(),
        SealKey::from_seed(&seed_bytes).verifying_key()
    );

    // A new key is never written over an old one.
    assert!(matches!(
        SealKey::generate().write_new(&pem),
        Err(SealKeyError::Exists { .. })
    ));
    assert_eq!(SealKey::load(&pem).unwrap().key_id(), from_seed.key_id());

    let shown = format!("{from_pem:?}");
    assert!(shown.contains(from_pem.key_id()), "{shown}");
    assert!(!shown.contains("42"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// The engine seals every commit, and keys rotate
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_case_sealed_by_key_one_then_key_two_verifies_with_both_public_keys() {
    let (key_one, key_two) = (Arc::new(SealKey::generate()), Arc::new(SealKey::generate()));
    let log = MemoryLog::new();
    let before = CaseService::new(
        log.clone().with_seal_key(key_one.clone()),
        Arc::new(SystemClock),
    );
    let case_id = CaseId::new_v7();
    before
        .handle(request(case_id, report_command(), "report"))
        .await
        .unwrap();
    before
        .handle(request(case_id, comment("before the rotation"), "c1"))
        .await
        .unwrap();
    // The engines restart with key two; key one's public key stays in the keyring.
    let after = CaseService::new(
        log.clone().with_seal_key(key_two.clone()),
        Arc::new(SystemClock),
    );
    after
        .handle(request(case_id, comment("after the rotation"), "c2"))
        .await
        .unwrap();
    let commits = read_all(&log).await;
    assert_eq!(commits.len(), 3);

    assert_eq!(
        seal_problems(&commits, &policy(&[&key_one, &key_two])),
        vec![]
    );

    let without_key_one = seal_problems(&commits, &policy(&[&key_two]));
    let named: Vec<(u64, AuditProblemKind)> = without_key_one
        .iter()
        .map(|p| (p.sequence, p.kind.clone()))
        .collect();
    assert_eq!(
        named,
        vec![(1, AuditProblemKind::Forged), (2, AuditProblemKind::Forged)],
        "{without_key_one:?}"
    );
    assert!(without_key_one[0]
        .detail
        .contains(&format!("unknown key {}", key_one.key_id())));
}

#[tokio::test]
async fn an_unsealed_commit_after_a_sealed_one_is_a_forgery_and_a_log_before_sealing_is_accepted_only_below_its_position(
) {
    let key = Arc::new(SealKey::generate());
    let unsealed = MemoryLog::new();
    let sealed = unsealed.clone().with_seal_key(key.clone());
    // A case from before sealing: its first commit is unsealed, the engine's later ones are.
    let old_case = CaseId::new_v7();
    let old = unsealed
        .append(commit(old_case, 0, 1, "old"), 0)
        .await
        .unwrap();
    let engine = CaseService::new(sealed, Arc::new(SystemClock));
    engine
        .handle(request(old_case, comment("after the upgrade"), "c1"))
        .await
        .unwrap();
    // A sealed case, and a commit slipped in after its seal without one.
    let new_case = CaseId::new_v7();
    engine
        .handle(request(new_case, report_command(), "report"))
        .await
        .unwrap();
    let history = unsealed.load(new_case).await.unwrap();
    unsealed
        .append(commit(new_case, 1, 1, "slipped in"), history.last_position)
        .await
        .unwrap();
    let commits = read_all(&unsealed).await;

    let strict = seal_problems(&commits, &policy(&[&key]));
    let found: Vec<(CaseId, u64, AuditProblemKind)> = strict
        .iter()
        .map(|p| (p.case_id, p.sequence, p.kind.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (old_case, 1, AuditProblemKind::Unsealed),
            (new_case, 2, AuditProblemKind::Forged)
        ],
        "{strict:?}"
    );
    assert!(strict[1].detail.contains("no seal after a sealed commit"));

    let tolerant = SealPolicy {
        allow_unsealed_before: Some(old.position + 1),
        ..policy(&[&key])
    };
    let found: Vec<(CaseId, u64)> = seal_problems(&commits, &tolerant)
        .iter()
        .map(|p| (p.case_id, p.sequence))
        .collect();
    assert_eq!(
        found,
        vec![(new_case, 2)],
        "the old case passes; the forgery never does"
    );
}

#[tokio::test]
async fn a_sealed_commit_that_repeats_events_of_the_case_cannot_slip_its_new_event_in() {
    // The projection enters only the events a case does not have yet, so a commit holding
    // sequences 2..=3 on a case at 2 adds only event 3: its seal covers what the trail does
    // not fully hold, and the entry is named, whoever sealed it.
    let key = Arc::new(SealKey::generate());
    let log = MemoryLog::new();
    let engine = CaseService::new(
        log.clone().with_seal_key(key.clone()),
        Arc::new(SystemClock),
    );
    let case_id = CaseId::new_v7();
    engine
        .handle(request(case_id, report_command(), "report"))
        .await
        .unwrap();
    engine
        .handle(request(case_id, comment("on site"), "c1"))
        .await
        .unwrap();
    let forger = log.clone().with_seal_key(Arc::new(SealKey::generate()));
    let history = log.load(case_id).await.unwrap();
    forger
        .append(commit(case_id, 1, 2, "overlap"), history.last_position)
        .await
        .unwrap();
    let commits = read_all(&log).await;

    let problems = seal_problems(&commits, &policy(&[&key]));

    let named: Vec<(u64, AuditProblemKind)> = problems
        .iter()
        .map(|p| (p.sequence, p.kind.clone()))
        .collect();
    assert_eq!(named, vec![(3, AuditProblemKind::Forged)], "{problems:?}");
    assert!(problems[0].detail.contains("covers events 2..=3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_the_engine_appends_to_jetstream_is_sealed_and_chained() {
    let server = NatsServer::start();
    let key = Arc::new(SealKey::generate());
    let log = support::jetstream_log(&server)
        .await
        .with_seal_key(key.clone());
    let engine = CaseService::new(log.clone(), Arc::new(SystemClock));
    let cases = [CaseId::new_v7(), CaseId::new_v7()];
    for (n, case_id) in cases.iter().enumerate() {
        engine
            .handle(request(*case_id, report_command(), &format!("report-{n}")))
            .await
            .unwrap();
        // Cached: each commit links to the one before from what the last append returned.
        for c in 0..3 {
            engine
                .handle(request(*case_id, comment("on site"), &format!("c{n}-{c}")))
                .await
                .unwrap();
        }
    }
    // An append made without the case's history reads the link from the last commit.
    let history = log.load(cases[0]).await.unwrap();
    log.append(commit(cases[0], 4, 1, "direct"), history.last_position)
        .await
        .unwrap();
    // A second engine that never saw the case loads it and goes on with the chain.
    let other = CaseService::new(log.clone(), Arc::new(SystemClock));
    other
        .handle(request(cases[1], comment("from another instance"), "other"))
        .await
        .unwrap();

    let commits = read_all(&log).await;
    assert_eq!(commits.len(), 10);
    assert!(
        commits.iter().all(|c| c.seal.is_some()),
        "every commit sealed"
    );
    assert_eq!(seal_problems(&commits, &policy(&[&key])), vec![]);
}
