//! Property: any envelope serializes, satisfies the envelope and its per-type schema, and
//! decodes back to itself.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;
use uuid::Uuid;
use wangge_schemas::generate::event_schema_path;
use wangge_schemas::*;

use crate::support::validation_errors;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn case_id() -> impl Strategy<Value = CaseId> {
    uuid().prop_map(CaseId)
}

/// 2020-01-01 to 2035-12-31, with nanoseconds, as the engine and publishers write them.
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (1_577_836_800i64..2_082_758_400, 0u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).expect("in range"))
}

fn identifier() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,30}"
}

/// Free text: Chinese, ASCII and anything else printable.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("12栋3单元1-6门口下水道堵塞".to_owned()),
        Just("小区垃圾不分类,异味严重".to_owned()),
        "[\\u4e00-\\u9fa5a-zA-Z0-9,。 ]{0,40}",
        "\\PC{0,40}",
    ]
}

fn cell_code() -> impl Strategy<Value = String> {
    "330106[0-9]{3}([0-9]{3}){0,2}"
}

fn category() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "drainage.blocked",
        "sanitation.garbage_unsorted",
        "lighting.street_light_out",
        "lighting.stairwell_light_out",
        "fire_safety.corridor_blocked",
        "service.residence_certificate",
        "service.elderly_age_certification",
        "service.micro_wish",
    ])
    .prop_map(str::to_owned)
}

fn tier() -> impl Strategy<Value = Tier> {
    prop::sample::select(vec![Tier::Building, Tier::Community, Tier::District])
}

fn sla_step() -> impl Strategy<Value = SlaStep> {
    prop::sample::select(vec![
        SlaStep::Accept,
        SlaStep::Dispatch,
        SlaStep::Acknowledge,
        SlaStep::Resolve,
        SlaStep::Verify,
    ])
}

fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(vec![
        Channel::MiniProgram,
        Channel::Hotline12345,
        Channel::WechatGroup,
        Channel::Kiosk,
        Channel::Sensor,
        Channel::InPerson,
    ])
}

fn media() -> impl Strategy<Value = Vec<MediaRef>> {
    let kind = prop::sample::select(vec![
        MediaKind::Photo,
        MediaKind::Video,
        MediaKind::Audio,
        MediaKind::Document,
    ]);
    let one = (
        kind,
        "oss://wangge-media/[a-z0-9/-]{1,60}\\.(jpg|mp4|m4a|pdf)",
        proptest::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(kind, url, sha256)| MediaRef { kind, url, sha256 });
    prop::collection::vec(one, 0..4)
}

fn resident() -> impl Strategy<Value = Resident> {
    (
        "[a-zA-Z0-9-]{1,128}",
        proptest::option::of((
            "rk-[0-9a-f]{32}",
            "[A-Za-z0-9+/]{32}",
            "[A-Za-z0-9+/]{8,64}",
        )),
        proptest::option::of("[\\u4e00-\\u9fa5]{1,8}"),
    )
        .prop_map(|(id, sealed, legacy_name)| Resident {
            id,
            contact: sealed.map(|(key_id, nonce, ciphertext)| {
                Box::new(SealedContact {
                    key_id,
                    nonce,
                    ciphertext,
                })
            }),
            legacy_contact: legacy_name.map(|name| {
                Box::new(ResidentContact {
                    name: Some(name),
                    ..ResidentContact::default()
                })
            }),
        })
}

fn report_details() -> impl Strategy<Value = ReportDetails> {
    prop_oneof![
        (channel(), resident())
            .prop_map(|(channel, resident)| ReportDetails::ResidentReport { channel, resident }),
        (
            identifier(),
            prop::sample::select(vec![
                PatrolKind::FireSafety,
                PatrolKind::FloodSafety,
                PatrolKind::Daily
            ]),
            any::<bool>()
        )
            .prop_map(|(worker_id, patrol_kind, fixed_on_spot)| {
                ReportDetails::PatrolFinding {
                    worker_id,
                    patrol_kind,
                    fixed_on_spot,
                }
            }),
        (channel(), resident())
            .prop_map(|(channel, resident)| ReportDetails::ServiceRequest { channel, resident }),
    ]
}

fn coordinates() -> impl Strategy<Value = Coordinates> {
    (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(latitude, longitude)| Coordinates {
        latitude,
        longitude,
    })
}

/// One arm per variant of [`CaseEvent`]; `every_variant_is_generated` checks none is missing.
fn case_event() -> impl Strategy<Value = CaseEvent> {
    let opt_text = || proptest::option::of(text());
    let arms: Vec<BoxedStrategy<CaseEvent>> = vec![
        (
            text(),
            text(),
            category(),
            media(),
            proptest::option::of(coordinates()),
            report_details(),
        )
            .prop_map(
                |(title, description, reported_category, media, coordinates, details)| {
                    CaseEvent::Reported(CaseReported {
                        intake_clock: None,
                        title,
                        description,
                        reported_category,
                        media,
                        coordinates,
                        details,
                    })
                },
            )
            .boxed(),
        (
            category(),
            prop::sample::select(vec![
                Priority::Urgent,
                Priority::High,
                Priority::Normal,
                Priority::Low,
            ]),
        )
            .prop_map(|(category, priority)| {
                CaseEvent::Accepted(CaseAccepted { category, priority })
            })
            .boxed(),
        text()
            .prop_map(|reason| CaseEvent::Rejected(CaseRejected { reason }))
            .boxed(),
        (case_id(), opt_text())
            .prop_map(|(into_case_id, reason)| {
                CaseEvent::Merged(CaseMerged {
                    into_case_id,
                    reason,
                })
            })
            .boxed(),
        (tier(), cell_code(), identifier())
            .prop_map(|(tier, cell, assignee)| {
                CaseEvent::Dispatched(CaseDispatched {
                    tier,
                    cell,
                    assignee,
                })
            })
            .boxed(),
        identifier()
            .prop_map(|worker_id| CaseEvent::Acknowledged(CaseAcknowledged { worker_id }))
            .boxed(),
        (identifier(), text())
            .prop_map(|(worker_id, reason)| CaseEvent::Declined(CaseDeclined { worker_id, reason }))
            .boxed(),
        (
            proptest::option::of(identifier()),
            identifier(),
            tier(),
            cell_code(),
            text(),
        )
            .prop_map(|(from_worker, to_worker, tier, cell, reason)| {
                CaseEvent::Reassigned(CaseReassigned {
                    from_worker,
                    to_worker,
                    tier,
                    cell,
                    reason,
                })
            })
            .boxed(),
        identifier()
            .prop_map(|worker_id| CaseEvent::HandlingStarted(HandlingStarted { worker_id }))
            .boxed(),
        (
            prop::sample::select(vec![
                SuspendReason::WaitingForResident,
                SuspendReason::WaitingForParts,
                SuspendReason::Parked,
            ]),
            opt_text(),
        )
            .prop_map(|(reason, note)| CaseEvent::Suspended(CaseSuspended { reason, note }))
            .boxed(),
        opt_text()
            .prop_map(|note| CaseEvent::Resumed(CaseResumed { note }))
            .boxed(),
        (
            sla_step(),
            1u32..=u32::MAX,
            prop::sample::select(TimeUnit::ALL.to_vec()),
            text(),
        )
            .prop_map(|(step, amount, unit, reason)| {
                CaseEvent::ExtensionGranted(ExtensionGranted {
                    step,
                    extension: TimeLimit { amount, unit },
                    reason,
                })
            })
            .boxed(),
        (identifier(), text(), media())
            .prop_map(|(worker_id, notes, media)| {
                CaseEvent::Resolved(CaseResolved {
                    worker_id,
                    notes,
                    media,
                })
            })
            .boxed(),
        (identifier(), opt_text())
            .prop_map(|(verifier, notes)| CaseEvent::Verified(CaseVerified { verifier, notes }))
            .boxed(),
        (identifier(), text())
            .prop_map(|(verifier, reason)| {
                CaseEvent::ReworkRequested(ReworkRequested { verifier, reason })
            })
            .boxed(),
        prop::sample::select(vec![ClosureKind::Verified, ClosureKind::SelfHandled])
            .prop_map(|closure| CaseEvent::Closed(CaseClosed { closure }))
            .boxed(),
        text()
            .prop_map(|reason| CaseEvent::Reopened(CaseReopened { reason }))
            .boxed(),
        (
            1u8..=5,
            opt_text(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(prop::sample::select(SatisfactionLevel::ALL.to_vec())),
        )
            .prop_map(|(satisfaction, comment, resolved, level)| {
                CaseEvent::Evaluated(CaseEvaluated {
                    satisfaction: level.map_or(satisfaction, SatisfactionLevel::score),
                    comment,
                    resolved,
                    level,
                    channel: level.map(|_| Channel::Hotline12345),
                })
            })
            .boxed(),
        text()
            .prop_map(|text| CaseEvent::CommentAdded(CommentAdded { text }))
            .boxed(),
        (tier(), tier(), cell_code(), text())
            .prop_map(|(from_tier, to_tier, cell, reason)| {
                CaseEvent::Escalated(CaseEscalated {
                    from_tier,
                    to_tier,
                    cell,
                    reason,
                })
            })
            .boxed(),
        (sla_step(), timestamp(), 1u8..=99)
            .prop_map(|(step, deadline, threshold_percent)| {
                CaseEvent::SlaWarning(SlaWarning {
                    step,
                    deadline,
                    threshold_percent,
                })
            })
            .boxed(),
        (sla_step(), timestamp())
            .prop_map(|(step, deadline)| CaseEvent::SlaBreached(SlaBreached { step, deadline }))
            .boxed(),
        text()
            .prop_map(|reason| CaseEvent::Voided(CaseVoided { reason }))
            .boxed(),
        (
            text(),
            prop::option::of(timestamp()),
            prop::option::of(timestamp()),
            step_deadlines(),
        )
            .prop_map(|(reason, previous_deadline, previous_warning_at, clock)| {
                CaseEvent::DeadlineRevised(Box::new(DeadlineRevised {
                    reason,
                    previous_deadline,
                    previous_warning_at,
                    clock,
                }))
            })
            .boxed(),
        (
            (cell_code(), prop::option::of(text())),
            prop::collection::vec(identifier(), 1..4),
            prop::option::of(text()),
            prop::option::of(identifier()),
            (sla_step(), timestamp(), text()),
        )
            .prop_map(
                |((district, unit), leaders, contact, assignee, (step, overdue_since, reason))| {
                    CaseEvent::SupervisionRequested(SupervisionRequested {
                        cell: district.clone(),
                        district,
                        unit,
                        leaders,
                        contact,
                        assignee,
                        step,
                        overdue_since,
                        reason,
                    })
                },
            )
            .boxed(),
    ];
    Union::new(arms)
}

fn time_limit() -> impl Strategy<Value = TimeLimit> {
    (
        1u32..=u32::MAX,
        prop::sample::select(TimeUnit::ALL.to_vec()),
    )
        .prop_map(|(amount, unit)| TimeLimit { amount, unit })
}

/// A recorded clock: any shape the contract allows.
fn step_deadlines() -> impl Strategy<Value = StepDeadlines> {
    let rung = (
        1u32..=9,
        prop::sample::select(vec![
            sla::EscalationAction::ReassignInCell,
            sla::EscalationAction::EscalateTier,
        ]),
        time_limit(),
        prop::option::of(timestamp()),
    )
        .prop_map(|(level, action, after, due_at)| EscalationRung {
            level,
            action,
            after,
            due_at,
        });
    (
        (
            sla_step(),
            timestamp(),
            identifier(),
            prop::option::of(time_limit()),
        ),
        prop::collection::vec(time_limit(), 0..3),
        (
            1u8..=99,
            prop::option::of(timestamp()),
            prop::option::of(timestamp()),
        ),
        prop::collection::vec(rung, 0..3),
        (any::<bool>(), -720i32..=720),
    )
        .prop_map(
            |(
                (step, started_at, policy, limit),
                extensions,
                (warning_percent, warning_at, deadline),
                escalations,
                (provisional, offset),
            )| {
                StepDeadlines {
                    step,
                    started_at,
                    policy,
                    limit,
                    extensions,
                    measure: sla::SlaClock::Business,
                    warning_percent,
                    warning_at,
                    deadline,
                    escalations,
                    suspended_since: None,
                    budget_seconds: Some(3600),
                    remaining_seconds: None,
                    provisional,
                    calendar: ClockCalendar {
                        id: "cn".to_owned(),
                        utc_offset: sla::UtcOffset::from_minutes(offset).expect("within range"),
                        holidays_published_through: None,
                    },
                }
            },
        )
}

fn actor() -> impl Strategy<Value = Actor> {
    let kind = prop::sample::select(vec![
        ActorKind::Resident,
        ActorKind::GridWorker,
        ActorKind::Supervisor,
        ActorKind::System,
    ]);
    (kind, identifier()).prop_map(|(kind, id)| Actor { kind, id })
}

fn source() -> impl Strategy<Value = Source> {
    (
        prop::sample::select(vec![
            "miniprogram",
            "hotline-12345",
            "kiosk-07",
            "grid-app",
            "wangge-engine",
        ]),
        "[a-z0-9-]{1,40}",
    )
        .prop_map(|(system, message_id)| Source {
            system: system.to_owned(),
            message_id,
        })
}

fn location() -> impl Strategy<Value = GridLocation> {
    ("[0-9]{3}", "[0-9]{3}", "[0-9]{3}").prop_map(|(street, community, cell)| {
        let district = format!("330106{street}");
        let community = format!("{district}{community}");
        let building = format!("{community}{cell}");
        GridLocation {
            district,
            community,
            building,
        }
    })
}

/// Any envelope this crate could write: the event at its current schema version.
fn envelope() -> impl Strategy<Value = EventEnvelope> {
    (
        (
            uuid(),
            case_event(),
            case_id(),
            1u64..=u64::MAX,
            timestamp(),
            timestamp(),
        ),
        (
            actor(),
            source(),
            uuid(),
            proptest::option::of(uuid()),
            location(),
        ),
    )
        .prop_map(
            |(
                (event_id, event, case_id, sequence, occurred_at, recorded_at),
                (actor, source, correlation_id, causation_id, location),
            )| {
                let schema_version = event.schema_version();
                EventEnvelope {
                    event_id,
                    event,
                    schema_version,
                    case_id,
                    sequence,
                    occurred_at,
                    recorded_at,
                    actor,
                    source,
                    correlation_id,
                    causation_id,
                    location,
                    sla_clock: None,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_envelope_round_trips_and_satisfies_its_schemas(envelope in envelope()) {
        let json = serde_json::to_value(&envelope).expect("envelopes serialize");
        let per_type = event_schema_path(envelope.event_type(), envelope.schema_version);

        let errors = validation_errors("events/envelope.json", &json);
        prop_assert!(errors.is_empty(), "envelope schema: {errors:?}\n{json:#}");
        let errors = validation_errors(&per_type, &json);
        prop_assert!(errors.is_empty(), "{per_type}: {errors:?}\n{json:#}");

        prop_assert_eq!(decode_event(json.clone()), Ok(envelope.clone()));
        let bytes = serde_json::to_vec(&envelope).expect("envelopes serialize");
        prop_assert_eq!(decode_event_slice(&bytes), Ok(envelope));
    }
}

#[test]
fn every_variant_is_generated() {
    let mut runner = TestRunner::deterministic();
    let strategy = case_event();
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        let tree = strategy.new_tree(&mut runner).expect("strategy generates");
        seen.insert(tree.current().event_type());
    }
    let catalogue: BTreeSet<&str> = EVENT_CATALOGUE.iter().map(|(name, _)| *name).collect();
    assert_eq!(seen, catalogue);
}
