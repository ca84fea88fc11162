//! A forged event is named by `wangge audit verify` (issue 10, item 4): the engine writes
//! cases on a real nats-server, sealing every commit; a writer holding the engine's NATS
//! credentials — but not its seal key — appends `case.voided` commits straight onto case
//! subjects in the engine's exact wire format: one sealed with another key, one with no seal,
//! one carrying the seal of the case's previous genuine commit, one signed by another key
//! under the engine's key id. `wangge projections rebuild audit` reads
//! the log into PostgreSQL, and `wangge audit verify` (the binary) exits non-zero naming each
//! forged event by case, sequence and event id, while the genuine cases still verify.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use uuid::Uuid;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::seal::{next_link_after, HEADER_SEAL, HEADER_SEAL_LINK};
use wangge_engine::domain::{replay, stamp, CaseCommand, EventMeta};
use wangge_engine::log::codec::{
    encode_events, event_types, HEADER_CASE_ID, HEADER_EARLIER_POSITIONS, HEADER_EVENT_TYPES,
    HEADER_FIRST_SEQUENCE, HEADER_LAST_SEQUENCE,
};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, SealKey};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, CaseVoided, Channel, EventEnvelope, GridLocation,
    ReportDetails, Resident, Source,
};
use wangge_testkit::{NatsServer, TestDatabase};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");

fn wangge(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(WANGGE);
    command.args(args).env("WANGGE_LOG", "warn");
    for var in [
        "WANGGE_SEAL_PUBLIC_KEYS_FILE",
        "WANGGE_ALLOW_UNSEALED_BEFORE",
        "WANGGE_NATS_URL",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run wangge")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
            title: "Street light out".to_owned(),
            description: "Dark for three nights at the east gate".to_owned(),
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
        },
    }
}

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

/// How the forger seals its commit.
enum ForgedSeal<'a> {
    /// With a key of its own, linked properly (signatures are public, so links are easy).
    OtherKey(&'a SealKey),
    /// With none.
    Without,
    /// With the seal headers of the case's last genuine commit, copied.
    CopiedFromLastCommit,
    /// Signed with its own key, under the engine's key id.
    ClaimingKeyId(&'a SealKey, &'a str),
}

/// What a writer with the engine's NATS credentials but without its seal key can do: append a
/// `case.voided` commit to the case's subject, headers and body exactly as the engine writes
/// them, conditional on the case's last position so the log stays gapless. Returns the
/// forged event.
async fn forge_voided(
    log: &JetStreamLog,
    forger: &jetstream::Context,
    case_id: CaseId,
    seal: ForgedSeal<'_>,
) -> EventEnvelope {
    let history = log.load(case_id).await.unwrap();
    let state = replay(&history.events);
    let now = Utc::now();
    let meta = EventMeta {
        actor: Actor::supervisor("supervisor-1"),
        source: Source {
            system: "forger".to_owned(),
            message_id: Uuid::now_v7().to_string(),
        },
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: now,
        recorded_at: now,
    };
    let events = stamp(
        &state,
        case_id,
        state.location.as_ref().unwrap(),
        vec![CaseEvent::Voided(CaseVoided {
            reason: "duplicate report".to_owned(),
        })],
        &meta,
        Uuid::now_v7,
    );
    let payload = encode_events(&events);
    let positions: Vec<String> = history
        .commit_positions
        .iter()
        .map(u64::to_string)
        .collect();
    let mut message = PublishMessage::build()
        .message_id(Uuid::now_v7().to_string())
        .expected_last_subject_sequence(history.last_position)
        .header(HEADER_CASE_ID, case_id.to_string())
        .header(HEADER_FIRST_SEQUENCE, events[0].sequence.to_string())
        .header(HEADER_LAST_SEQUENCE, events[0].sequence.to_string())
        .header(HEADER_EVENT_TYPES, event_types(&events))
        .header(HEADER_EARLIER_POSITIONS, positions.join(","));
    match seal {
        ForgedSeal::OtherKey(key) => {
            let stream = forger.get_stream("WANGGE_EVENTS").await.unwrap();
            let last = stream.direct_get(history.last_position).await.unwrap();
            let link = next_link_after(last.headers.get(HEADER_SEAL).map(|v| v.as_str()));
            let seal = key.seal_commit(case_id, &events, &payload, link);
            message = message
                .header(HEADER_SEAL, seal.header_value())
                .header(HEADER_SEAL_LINK, seal.link_value());
        }
        ForgedSeal::ClaimingKeyId(key, key_id) => {
            let stream = forger.get_stream("WANGGE_EVENTS").await.unwrap();
            let last = stream.direct_get(history.last_position).await.unwrap();
            let link = next_link_after(last.headers.get(HEADER_SEAL).map(|v| v.as_str()));
            let mut seal = key.seal_commit(case_id, &events, &payload, link);
            seal.key_id = key_id.to_owned();
            message = message
                .header(HEADER_SEAL, seal.header_value())
                .header(HEADER_SEAL_LINK, seal.link_value());
        }
        ForgedSeal::Without => {}
        ForgedSeal::CopiedFromLastCommit => {
            let stream = forger.get_stream("WANGGE_EVENTS").await.unwrap();
            let last = stream.direct_get(history.last_position).await.unwrap();
            for header in [HEADER_SEAL, HEADER_SEAL_LINK] {
                let value = last.headers.get(header).unwrap().as_str().to_owned();
                message = message.header(header, value);
            }
        }
    }
    let subject = JetStreamLogConfig::default().case_subject(case_id);
    forger
        .send_publish(subject, message.payload(payload))
        .await
        .unwrap()
        .await
        .expect("the server takes the forged commit: it holds the engine's credentials");
    events.into_iter().next().unwrap()
}

fn keyring_file(dir: &Path, keys: &[&SealKey]) -> String {
    let path = dir.join("keyring");
    let lines: Vec<String> = keys.iter().map(|k| k.keyring_line()).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_each_event_appended_outside_the_engine_with_its_nats_credentials() {
    let server = NatsServer::start();
    let database = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let engine_key = Arc::new(SealKey::generate());
    let log = JetStreamLog::open(server.connect().await, JetStreamLogConfig::default())
        .await
        .unwrap()
        .with_seal_key(engine_key.clone());
    let engine = CaseService::new(log.clone(), Arc::new(SystemClock));
    let cases: Vec<CaseId> = (0..5).map(|_| CaseId::new_v7()).collect();
    for (n, case_id) in cases.iter().enumerate() {
        engine
            .handle(request(*case_id, report(), &format!("report-{n}")))
            .await
            .unwrap();
        engine
            .handle(request(
                *case_id,
                CaseCommand::Comment {
                    text: "seen on patrol".to_owned(),
                },
                &format!("comment-{n}"),
            ))
            .await
            .unwrap();
    }
    let [other_key, unsealed, copied, claiming, genuine] =
        [cases[0], cases[1], cases[2], cases[3], cases[4]];

    let forger = jetstream::new(server.connect().await);
    let stranger = SealKey::generate();
    let forged_other_key =
        forge_voided(&log, &forger, other_key, ForgedSeal::OtherKey(&stranger)).await;
    let forged_unsealed = forge_voided(&log, &forger, unsealed, ForgedSeal::Without).await;
    let forged_copied = forge_voided(&log, &forger, copied, ForgedSeal::CopiedFromLastCommit).await;
    let forged_claiming = forge_voided(
        &log,
        &forger,
        claiming,
        ForgedSeal::ClaimingKeyId(&stranger, engine_key.key_id()),
    )
    .await;
    // The engine goes on with a forged case (its cached state is behind: it reloads and
    // links its seal past the forged commit); its own commit still verifies.
    let after = engine
        .handle(request(
            other_key,
            CaseCommand::Comment {
                text: "why was this voided?".to_owned(),
            },
            "comment-after",
        ))
        .await
        .unwrap();
    assert_eq!(after.sequence, 4);

    let nats = [("WANGGE_NATS_URL", server.url())];
    let postgres = ("WANGGE_POSTGRES_URL", database.url());
    let rebuild = wangge(
        &["projections", "rebuild", "audit"],
        &[nats[0].clone(), postgres.clone()],
    );
    assert!(rebuild.status.success(), "{}", text(&rebuild.stderr));

    let keyring = keyring_file(dir.path(), &[&engine_key]);
    let env = [
        postgres.clone(),
        ("WANGGE_SEAL_PUBLIC_KEYS_FILE", keyring.clone()),
    ];
    let verify = wangge(&["audit", "verify"], &env);
    let (stdout, stderr) = (text(&verify.stdout), text(&verify.stderr));
    assert_eq!(verify.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "one line per forged event:\n{stdout}");
    let named = |case: CaseId, event: &EventEnvelope, why: &str| {
        let start = format!("case {case} entry 3 (event {}): forged: ", event.event_id);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&start) && l.contains(why)),
            "expected `{start}… {why}` in:\n{stdout}"
        );
    };
    named(
        other_key,
        &forged_other_key,
        &format!("unknown key {}", stranger.key_id()),
    );
    named(unsealed, &forged_unsealed, "no seal after a sealed commit");
    named(copied, &forged_copied, "broken link");
    named(
        claiming,
        &forged_claiming,
        &format!("bad signature: key {}", engine_key.key_id()),
    );
    assert!(!stdout.contains(&genuine.to_string()), "{stdout}");
    assert!(
        !stdout.contains(&format!("case {other_key} entry 4")),
        "the engine's commit after the forgery is genuine:\n{stdout}"
    );
    assert!(stderr.contains("4 forged"), "{stderr}");

    let one = wangge(&["audit", "verify", &genuine.to_string()], &env);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let forged_one = wangge(&["audit", "verify", &unsealed.to_string()], &env);
    assert_eq!(forged_one.status.code(), Some(1));

    // Accepting a log from before sealing does not let an unsealed forgery through.
    let tolerant = [
        postgres.clone(),
        ("WANGGE_SEAL_PUBLIC_KEYS_FILE", keyring),
        ("WANGGE_ALLOW_UNSEALED_BEFORE", "1000000".to_owned()),
    ];
    let still = wangge(&["audit", "verify", &unsealed.to_string()], &tolerant);
    assert_eq!(still.status.code(), Some(1), "{}", text(&still.stdout));

    // Without the keyring nothing is verified.
    let blind = wangge(&["audit", "verify"], &[postgres]);
    assert_eq!(blind.status.code(), Some(2), "{}", text(&blind.stderr));
    assert!(
        text(&blind.stderr).contains("--seal-public-keys"),
        "{}",
        text(&blind.stderr)
    );
}
