//! Invariants of the case aggregate over random command sequences and random event logs.
//!
//! Commands are generated as templates ("the assignee acknowledges", "someone else
//! resolves") and resolved against the current state, the way real users act on what they
//! see, so that long plausible runs happen next to wrong senders, blank fields and commands
//! out of place.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;
use wangge_engine::domain::{
    apply, decide, location_for, replay, stamp, CaseCommand, CaseState, CaseStatus, EventMeta,
};
use wangge_schemas::{
    decode_event, Actor, CaseAccepted, CaseAcknowledged, CaseClosed, CaseDeclined, CaseDispatched,
    CaseEscalated, CaseEvaluated, CaseEvent, CaseId, CaseMerged, CaseReassigned, CaseRejected,
    CaseReopened, CaseReported, CaseResolved, CaseResumed, CaseSuspended, CaseVerified, CaseVoided,
    Channel, ClosureKind, CommentAdded, EventEnvelope, ExtensionGranted, GridLocation,
    HandlingStarted, PatrolKind, Priority, ReportDetails, Resident, ReworkRequested, SlaBreached,
    SlaStep, SlaWarning, Source, SuspendReason, Tier, TimeLimit, TimeUnit,
};

const WORKERS: [&str; 3] = ["wang", "zhang", "li"];

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 6, 8, 30, 0).unwrap()
}

fn case_id() -> CaseId {
    CaseId(Uuid::from_u128(1))
}

fn other_case_id() -> CaseId {
    CaseId(Uuid::from_u128(2))
}

fn location() -> GridLocation {
    GridLocation {
        district: "110101001".to_owned(),
        community: "110101001002".to_owned(),
        building: "110101001002007".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Command templates
// ---------------------------------------------------------------------------------------

/// Who sends a command, resolved against the state when it is sent.
#[derive(Debug, Clone)]
enum Who {
    TheAssignee,
    TheReporter,
    Named(&'static str),
    Blank,
}

impl Who {
    fn resolve(&self, state: &CaseState) -> String {
        match self {
            Who::TheAssignee => state
                .assignee
                .clone()
                .unwrap_or_else(|| WORKERS[0].to_owned()),
            Who::TheReporter => state
                .patrol_worker
                .clone()
                .unwrap_or_else(|| WORKERS[0].to_owned()),
            Who::Named(name) => (*name).to_owned(),
            Who::Blank => " ".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
enum Template {
    /// Whatever moves the case along its main loop from where it is now, as a user who
    /// looks at the case would do next.
    Next {
        by: Who,
        passed: bool,
    },
    Report {
        patrol_by: Option<Who>,
    },
    Accept {
        category: String,
        priority: Priority,
    },
    Reject {
        reason: String,
    },
    Merge {
        into_itself: bool,
    },
    Dispatch {
        tier: Tier,
        to: Who,
    },
    Acknowledge {
        by: Who,
    },
    Decline {
        by: Who,
        reason: String,
    },
    Reassign {
        to: Who,
        tier: Tier,
    },
    StartHandling {
        by: Who,
    },
    Suspend {
        reason: SuspendReason,
    },
    Resume,
    GrantExtension {
        step: SlaStep,
        amount: u32,
    },
    Resolve {
        by: Who,
        notes: String,
    },
    Verify {
        passed: bool,
        notes: Option<String>,
    },
    SelfHandle {
        by: Who,
    },
    Reopen {
        reason: String,
    },
    Evaluate {
        satisfaction: u8,
    },
    Comment {
        text: String,
    },
    Escalate {
        to_tier: Tier,
    },
    SlaWarning {
        step: SlaStep,
        deadline_slot: i64,
        threshold_percent: u8,
    },
    SlaBreach {
        step: SlaStep,
        deadline_slot: i64,
    },
    Void {
        reason: String,
    },
}

/// A deadline on a half-hour grid around the run, so that repeats and both sides of
/// `now` are common.
fn deadline(slot: i64) -> DateTime<Utc> {
    base_time() + Duration::minutes(30 * slot)
}

impl Template {
    fn resolve(&self, state: &CaseState) -> CaseCommand {
        match self {
            Template::Next { by, passed } => {
                let next = match state.status {
                    CaseStatus::New => Template::Report { patrol_by: None },
                    CaseStatus::Reported => Template::Accept {
                        category: "lighting".to_owned(),
                        priority: Priority::Normal,
                    },
                    CaseStatus::AwaitingDispatch => Template::Dispatch {
                        tier: Tier::Building,
                        to: Who::Named(WORKERS[1]),
                    },
                    CaseStatus::Dispatched => Template::Acknowledge { by: by.clone() },
                    CaseStatus::Acknowledged if *passed => {
                        Template::StartHandling { by: by.clone() }
                    }
                    CaseStatus::Acknowledged | CaseStatus::InProgress => Template::Resolve {
                        by: by.clone(),
                        notes: "done".to_owned(),
                    },
                    CaseStatus::Suspended => Template::Resume,
                    CaseStatus::Resolved => Template::Verify {
                        passed: *passed,
                        notes: Some("checked on site".to_owned()),
                    },
                    CaseStatus::Closed if *passed && !state.evaluated => {
                        Template::Evaluate { satisfaction: 4 }
                    }
                    CaseStatus::Closed => Template::Reopen {
                        reason: "again".to_owned(),
                    },
                    CaseStatus::Rejected | CaseStatus::Merged | CaseStatus::Voided => {
                        Template::Comment {
                            text: "noted".to_owned(),
                        }
                    }
                };
                next.resolve(state)
            }
            Template::Report { patrol_by } => {
                let details = match patrol_by {
                    Some(who) => ReportDetails::PatrolFinding {
                        worker_id: who.resolve(state),
                        patrol_kind: PatrolKind::FireSafety,
                        fixed_on_spot: false,
                    },
                    None => ReportDetails::ResidentReport {
                        channel: Channel::Hotline12345,
                        resident: Resident {
                            id: "r-1".to_owned(),
                            contact: None,
                            legacy_contact: None,
                        },
                    },
                };
                CaseCommand::Report {
                    location: location(),
                    report: CaseReported {
                        intake_clock: None,
                        title: "新起点A区路灯不亮".to_owned(),
                        description: "street lights out".to_owned(),
                        reported_category: "lighting".to_owned(),
                        media: Vec::new(),
                        coordinates: None,
                        details,
                    },
                }
            }
            Template::Accept { category, priority } => CaseCommand::Accept {
                category: category.clone(),
                priority: *priority,
            },
            Template::Reject { reason } => CaseCommand::Reject {
                reason: reason.clone(),
            },
            Template::Merge { into_itself } => CaseCommand::Merge {
                into_case_id: if *into_itself {
                    case_id()
                } else {
                    other_case_id()
                },
                reason: None,
            },
            Template::Dispatch { tier, to } => CaseCommand::Dispatch {
                tier: *tier,
                cell: "cell".to_owned(),
                assignee: to.resolve(state),
            },
            Template::Acknowledge { by } => CaseCommand::Acknowledge {
                worker_id: by.resolve(state),
            },
            Template::Decline { by, reason } => CaseCommand::Decline {
                worker_id: by.resolve(state),
                reason: reason.clone(),
            },
            Template::Reassign { to, tier } => CaseCommand::Reassign {
                to_worker: to.resolve(state),
                tier: *tier,
                cell: "cell".to_owned(),
                reason: "rota".to_owned(),
            },
            Template::StartHandling { by } => CaseCommand::StartHandling {
                worker_id: by.resolve(state),
            },
            Template::Suspend { reason } => CaseCommand::Suspend {
                reason: *reason,
                note: None,
            },
            Template::Resume => CaseCommand::Resume { note: None },
            Template::GrantExtension { step, amount } => CaseCommand::GrantExtension {
                step: *step,
                extension: TimeLimit {
                    amount: *amount,
                    unit: TimeUnit::WorkingHours,
                },
                reason: "complex".to_owned(),
            },
            Template::Resolve { by, notes } => CaseCommand::Resolve {
                worker_id: by.resolve(state),
                notes: notes.clone(),
                media: Vec::new(),
            },
            Template::Verify { passed, notes } => CaseCommand::Verify {
                verifier: "sup".to_owned(),
                passed: *passed,
                notes: notes.clone(),
            },
            Template::SelfHandle { by } => CaseCommand::SelfHandle {
                worker_id: by.resolve(state),
                notes: "fixed".to_owned(),
                media: Vec::new(),
            },
            Template::Reopen { reason } => CaseCommand::Reopen {
                reason: reason.clone(),
            },
            Template::Evaluate { satisfaction } => CaseCommand::Evaluate {
                satisfaction: *satisfaction,
                comment: None,
                resolved: None,
                level: None,
                channel: None,
            },
            Template::Comment { text } => CaseCommand::Comment { text: text.clone() },
            Template::Escalate { to_tier } => CaseCommand::Escalate {
                to_tier: *to_tier,
                cell: "upper".to_owned(),
                reason: "too big".to_owned(),
            },
            Template::SlaWarning {
                step,
                deadline_slot,
                threshold_percent,
            } => CaseCommand::RecordSlaWarning {
                step: *step,
                deadline: deadline(*deadline_slot),
                threshold_percent: *threshold_percent,
            },
            Template::SlaBreach {
                step,
                deadline_slot,
            } => CaseCommand::RecordSlaBreach {
                step: *step,
                deadline: deadline(*deadline_slot),
            },
            Template::Void { reason } => CaseCommand::Void {
                reason: reason.clone(),
            },
        }
    }
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => Just(Who::TheAssignee),
        2 => Just(Who::TheReporter),
        2 => proptest::sample::select(WORKERS.to_vec()).prop_map(Who::Named),
        1 => Just(Who::Blank),
    ]
}

/// Mostly meaningful text, sometimes blank.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec!["下水道堵塞", "done", "needs parts"]).prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => Just(" \t".to_owned()),
    ]
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![
        Just(Tier::Building),
        Just(Tier::Community),
        Just(Tier::District)
    ]
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::Urgent),
        Just(Priority::High),
        Just(Priority::Normal),
        Just(Priority::Low)
    ]
}

fn step() -> impl Strategy<Value = SlaStep> {
    prop_oneof![
        Just(SlaStep::Accept),
        Just(SlaStep::Dispatch),
        Just(SlaStep::Acknowledge),
        Just(SlaStep::Resolve),
        Just(SlaStep::Verify),
    ]
}

fn suspend_reason() -> impl Strategy<Value = SuspendReason> {
    prop_oneof![
        Just(SuspendReason::WaitingForResident),
        Just(SuspendReason::WaitingForParts),
        Just(SuspendReason::Parked),
    ]
}

fn closure() -> impl Strategy<Value = ClosureKind> {
    prop_oneof![Just(ClosureKind::Verified), Just(ClosureKind::SelfHandled)]
}

/// Weights favour the main loop; the outcomes that end a case for good are rarer so that
/// runs get far.
fn template() -> impl Strategy<Value = Template> {
    prop_oneof![
        30 => (who(), proptest::bool::weighted(0.7)).prop_map(|(by, passed)| Template::Next { by, passed }),
        4 => proptest::option::weighted(0.4, who()).prop_map(|patrol_by| Template::Report { patrol_by }),
        4 => (text(), priority()).prop_map(|(category, priority)| Template::Accept { category, priority }),
        1 => text().prop_map(|reason| Template::Reject { reason }),
        1 => any::<bool>().prop_map(|into_itself| Template::Merge { into_itself }),
        5 => (tier(), who()).prop_map(|(tier, to)| Template::Dispatch { tier, to }),
        5 => who().prop_map(|by| Template::Acknowledge { by }),
        2 => (who(), text()).prop_map(|(by, reason)| Template::Decline { by, reason }),
        2 => (who(), tier()).prop_map(|(to, tier)| Template::Reassign { to, tier }),
        4 => who().prop_map(|by| Template::StartHandling { by }),
        2 => suspend_reason().prop_map(|reason| Template::Suspend { reason }),
        2 => Just(Template::Resume),
        1 => (step(), 0u32..3).prop_map(|(step, amount)| Template::GrantExtension { step, amount }),
        5 => (who(), text()).prop_map(|(by, notes)| Template::Resolve { by, notes }),
        5 => (proptest::bool::weighted(0.6), proptest::option::of(text()))
            .prop_map(|(passed, notes)| Template::Verify { passed, notes }),
        2 => who().prop_map(|by| Template::SelfHandle { by }),
        2 => text().prop_map(|reason| Template::Reopen { reason }),
        2 => (0u8..=6).prop_map(|satisfaction| Template::Evaluate { satisfaction }),
        2 => text().prop_map(|text| Template::Comment { text }),
        2 => tier().prop_map(|to_tier| Template::Escalate { to_tier }),
        2 => (step(), -2i64..6, prop_oneof![Just(80u8), Just(0), Just(100)]).prop_map(
            |(step, deadline_slot, threshold_percent)| Template::SlaWarning { step, deadline_slot, threshold_percent }
        ),
        2 => (step(), -2i64..6).prop_map(|(step, deadline_slot)| Template::SlaBreach { step, deadline_slot }),
        1 => text().prop_map(|reason| Template::Void { reason }),
    ]
}

// ---------------------------------------------------------------------------------------
// Running a sequence through decide, stamp and apply
// ---------------------------------------------------------------------------------------

struct Step {
    command: CaseCommand,
    now: DateTime<Utc>,
    before: CaseState,
    result: Result<Vec<EventEnvelope>, wangge_engine::domain::DomainError>,
}

struct Run {
    steps: Vec<Step>,
    log: Vec<EventEnvelope>,
    state: CaseState,
}

fn run(templates: &[Template]) -> Run {
    let mut state = CaseState::default();
    let mut log = Vec::new();
    let mut steps = Vec::new();
    let mut next_id = 0u128;
    for (index, template) in templates.iter().enumerate() {
        let command = template.resolve(&state);
        let now = base_time() + Duration::minutes(10 * index as i64);
        let before = state.clone();
        let result = decide(&state, &command, now).map(|events| {
            let meta = EventMeta {
                actor: Actor::grid_worker("someone"),
                source: Source {
                    system: "prop".to_owned(),
                    message_id: format!("m-{index}"),
                },
                correlation_id: Uuid::from_u128(index as u128),
                causation_id: None,
                occurred_at: now,
                recorded_at: now,
            };
            let location = location_for(&state, &command).expect("an accepted command has a place");
            stamp(&state, case_id(), &location, events, &meta, || {
                next_id += 1;
                Uuid::from_u128(next_id)
            })
        });
        if let Ok(envelopes) = &result {
            for envelope in envelopes {
                state = apply(state, envelope);
                log.push(envelope.clone());
            }
        }
        steps.push(Step {
            command,
            now,
            before,
            result,
        });
    }
    Run { steps, log, state }
}

fn commands() -> impl Strategy<Value = Vec<Template>> {
    // Most runs start with a report, so that the case exists for the rest.
    (
        proptest::option::weighted(0.4, who()),
        proptest::collection::vec(template(), 1..80),
    )
        .prop_map(|(patrol_by, mut templates)| {
            templates.insert(0, Template::Report { patrol_by });
            templates
        })
}

/// Invariants of any state the aggregate itself produced.
fn check_state_invariants(state: &CaseState) -> Result<(), TestCaseError> {
    use CaseStatus::*;
    let terminal_variant = matches!(state.status, Closed | Rejected | Merged | Voided);
    prop_assert_eq!(state.status.is_terminal(), terminal_variant);
    prop_assert_eq!(state.suspension.is_some(), state.status == Suspended);
    prop_assert_eq!(state.closure.is_some(), state.status == Closed);
    prop_assert_eq!(state.merged_into.is_some(), state.status == Merged);
    prop_assert!(!state.evaluated || state.status == Closed);
    prop_assert_eq!(state.case_id.is_some(), state.status != New);
    if matches!(
        state.status,
        Dispatched | Acknowledged | InProgress | Suspended | Resolved
    ) {
        prop_assert!(
            state.assignee.is_some(),
            "a case at work has a worker: {:?}",
            state
        );
    }
    if matches!(state.status, AwaitingDispatch) {
        prop_assert!(state.assignee.is_none());
    }
    if let Some(satisfaction) = state.satisfaction {
        prop_assert!((1..=5).contains(&satisfaction));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_log_rebuilds_exactly_the_same_state(templates in commands()) {
        let run = run(&templates);
        prop_assert_eq!(&replay(&run.log), &run.state);
        // Through the stored form as well: what is written as JSON and read back (upcast on
        // load) rebuilds the same case.
        let reloaded: Vec<EventEnvelope> = run
            .log
            .iter()
            .map(|envelope| decode_event(serde_json::to_value(envelope).unwrap()).unwrap())
            .collect();
        prop_assert_eq!(&reloaded, &run.log);
        prop_assert_eq!(replay(&reloaded), run.state);
    }

    #[test]
    fn a_refused_command_records_nothing_and_an_accepted_one_records_something(
        templates in commands()
    ) {
        let run = run(&templates);
        let mut state = CaseState::default();
        for step in &run.steps {
            prop_assert_eq!(&step.before, &state);
            match &step.result {
                Err(error) => {
                    // Deciding again on the untouched state gives the same refusal.
                    let again = decide(&step.before, &step.command, step.now);
                    prop_assert_eq!(again.as_ref().err(), Some(error));
                }
                Ok(envelopes) => {
                    prop_assert!(!envelopes.is_empty(), "{} decided nothing", step.command.name());
                    state = envelopes.iter().fold(state, apply);
                }
            }
        }
        prop_assert_eq!(state, run.state);
    }

    #[test]
    fn sequences_are_gapless_from_one_and_event_ids_unique(templates in commands()) {
        let run = run(&templates);
        for (index, envelope) in run.log.iter().enumerate() {
            prop_assert_eq!(envelope.sequence, index as u64 + 1);
            prop_assert_eq!(envelope.case_id, case_id());
            prop_assert_eq!(envelope.schema_version, envelope.event.schema_version());
        }
        let ids: BTreeSet<Uuid> = run.log.iter().map(|envelope| envelope.event_id).collect();
        prop_assert_eq!(ids.len(), run.log.len());
        prop_assert_eq!(run.state.version, run.log.len() as u64);
        // Each message's recorded range is exactly the events it wrote.
        for (source, (first, last)) in &run.state.processed_sources {
            for envelope in &run.log {
                let inside = (*first..=*last).contains(&envelope.sequence);
                prop_assert_eq!(inside, &envelope.source == source);
            }
        }
    }

    #[test]
    fn a_closed_case_accepts_only_reopening_evaluation_and_comments(templates in commands()) {
        let run = run(&templates);
        for step in &run.steps {
            if step.before.status == CaseStatus::Closed && step.result.is_ok() {
                prop_assert!(
                    matches!(step.command.name(), "reopen" | "evaluate" | "comment"),
                    "closed case accepted {}", step.command.name()
                );
            }
            if matches!(step.before.status, CaseStatus::Rejected | CaseStatus::Merged | CaseStatus::Voided)
                && step.result.is_ok()
            {
                prop_assert_eq!(step.command.name(), "comment");
            }
        }
    }

    #[test]
    fn every_state_on_the_way_keeps_its_invariants(templates in commands()) {
        let run = run(&templates);
        // Only what a whole decision leaves behind is checked: a state between two events
        // of one decision (verified but not yet closed) is never decided on.
        for step in &run.steps {
            check_state_invariants(&step.before)?;
        }
        check_state_invariants(&run.state)?;
    }

    #[test]
    fn a_case_has_at_most_one_outcome_at_a_time(templates in commands()) {
        let run = run(&templates);
        let mut outcome: Option<&'static str> = None;
        for envelope in &run.log {
            let event_type = envelope.event.event_type();
            match (&envelope.event, outcome) {
                (CaseEvent::Closed(_) | CaseEvent::Rejected(_) | CaseEvent::Merged(_) | CaseEvent::Voided(_), None) => {
                    outcome = Some(event_type);
                }
                (CaseEvent::Reopened(_), Some("case.closed")) => outcome = None,
                (CaseEvent::CommentAdded(_), _) => {}
                (CaseEvent::Evaluated(_), Some("case.closed")) => {}
                (_, None) => {}
                (_, Some(current)) => {
                    prop_assert!(false, "{} recorded after the outcome {}", event_type, current);
                }
            }
        }
        prop_assert_eq!(outcome.is_some(), run.state.status.is_terminal());
    }
}

// ---------------------------------------------------------------------------------------
// Arbitrary logs: apply (and decide on what it builds) is total
// ---------------------------------------------------------------------------------------

fn any_worker() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORKERS.to_vec()).prop_map(str::to_owned),
        ".{0,4}"
    ]
}

fn any_event() -> impl Strategy<Value = CaseEvent> {
    let report = (any::<bool>(), any_worker()).prop_map(|(patrol, worker_id)| {
        CaseEvent::Reported(CaseReported {
            intake_clock: None,
            title: "t".to_owned(),
            description: String::new(),
            reported_category: "c".to_owned(),
            media: Vec::new(),
            coordinates: None,
            details: if patrol {
                ReportDetails::PatrolFinding {
                    worker_id,
                    patrol_kind: PatrolKind::FloodSafety,
                    fixed_on_spot: true,
                }
            } else {
                ReportDetails::ServiceRequest {
                    channel: Channel::Kiosk,
                    resident: Resident {
                        id: worker_id,
                        contact: None,
                        legacy_contact: None,
                    },
                }
            },
        })
    });
    prop_oneof![
        report,
        priority().prop_map(|priority| CaseEvent::Accepted(CaseAccepted {
            category: "c".to_owned(),
            priority
        })),
        Just(CaseEvent::Rejected(CaseRejected {
            reason: "r".to_owned()
        })),
        Just(CaseEvent::Merged(CaseMerged {
            into_case_id: other_case_id(),
            reason: None
        })),
        (tier(), any_worker()).prop_map(|(tier, assignee)| CaseEvent::Dispatched(CaseDispatched {
            tier,
            cell: "c".to_owned(),
            assignee
        })),
        any_worker().prop_map(|worker_id| CaseEvent::Acknowledged(CaseAcknowledged { worker_id })),
        any_worker().prop_map(|worker_id| CaseEvent::Declined(CaseDeclined {
            worker_id,
            reason: "r".to_owned()
        })),
        (proptest::option::of(any_worker()), any_worker(), tier()).prop_map(
            |(from_worker, to_worker, tier)| {
                CaseEvent::Reassigned(CaseReassigned {
                    from_worker,
                    to_worker,
                    tier,
                    cell: "c".to_owned(),
                    reason: "r".to_owned(),
                })
            }
        ),
        any_worker()
            .prop_map(|worker_id| CaseEvent::HandlingStarted(HandlingStarted { worker_id })),
        suspend_reason()
            .prop_map(|reason| CaseEvent::Suspended(CaseSuspended { reason, note: None })),
        Just(CaseEvent::Resumed(CaseResumed { note: None })),
        (step(), any::<u32>()).prop_map(|(step, amount)| CaseEvent::ExtensionGranted(
            ExtensionGranted {
                step,
                extension: TimeLimit {
                    amount,
                    unit: TimeUnit::ClockMinutes
                },
                reason: "r".to_owned(),
            }
        )),
        any_worker().prop_map(|worker_id| CaseEvent::Resolved(CaseResolved {
            worker_id,
            notes: "n".to_owned(),
            media: Vec::new()
        })),
        Just(CaseEvent::Verified(CaseVerified {
            verifier: "v".to_owned(),
            notes: None
        })),
        Just(CaseEvent::ReworkRequested(ReworkRequested {
            verifier: "v".to_owned(),
            reason: "r".to_owned()
        })),
        closure().prop_map(|closure| CaseEvent::Closed(CaseClosed { closure })),
        Just(CaseEvent::Reopened(CaseReopened {
            reason: "r".to_owned()
        })),
        (any::<u8>(), any::<Option<bool>>()).prop_map(|(satisfaction, resolved)| {
            CaseEvent::Evaluated(CaseEvaluated {
                satisfaction,
                comment: None,
                resolved,
                level: None,
                channel: None,
            })
        }),
        Just(CaseEvent::CommentAdded(CommentAdded {
            text: "x".to_owned()
        })),
        (tier(), tier()).prop_map(|(from_tier, to_tier)| CaseEvent::Escalated(CaseEscalated {
            from_tier,
            to_tier,
            cell: "c".to_owned(),
            reason: "r".to_owned(),
        })),
        (step(), -3i64..3, any::<u8>()).prop_map(|(step, slot, threshold_percent)| {
            CaseEvent::SlaWarning(SlaWarning {
                step,
                deadline: deadline(slot),
                threshold_percent,
            })
        }),
        (step(), -3i64..3).prop_map(|(step, slot)| CaseEvent::SlaBreached(SlaBreached {
            step,
            deadline: deadline(slot)
        })),
        Just(CaseEvent::Voided(CaseVoided {
            reason: "r".to_owned()
        })),
    ]
}

fn any_envelope() -> impl Strategy<Value = EventEnvelope> {
    (
        any_event(),
        prop_oneof![0u64..20, Just(u64::MAX)],
        any::<bool>(),
        0u8..3,
        any::<u128>(),
    )
        .prop_map(|(event, sequence, first_case, message, id)| EventEnvelope {
            event_id: Uuid::from_u128(id),
            schema_version: event.schema_version(),
            event,
            case_id: if first_case {
                case_id()
            } else {
                other_case_id()
            },
            sequence,
            occurred_at: base_time(),
            recorded_at: base_time(),
            actor: Actor::system("fuzz"),
            source: Source {
                system: "fuzz".to_owned(),
                message_id: message.to_string(),
            },
            correlation_id: Uuid::nil(),
            causation_id: None,
            location: location(),
            sla_clock: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apply_folds_any_log_even_out_of_order(
        log in proptest::collection::vec(any_envelope(), 0..40),
        probes in proptest::collection::vec(template(), 0..8),
    ) {
        let state = replay(&log);
        prop_assert_eq!(state.version, log.iter().map(|e| e.sequence).max().unwrap_or(0));
        prop_assert_eq!(state.suspension.is_some(), state.status == CaseStatus::Suspended);
        prop_assert_eq!(state.closure.is_some(), state.status == CaseStatus::Closed);
        prop_assert_eq!(state.case_id, log.first().map(|e| e.case_id));
        // Whatever the fold built, deciding on it does not panic either.
        for probe in &probes {
            let _ = decide(&state, &probe.resolve(&state), base_time());
        }
    }
}

/// Guards the properties above against passing vacuously: the generator must drive cases
/// through every status and get every command accepted somewhere.
#[test]
fn the_generated_runs_reach_every_status_and_every_command() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut statuses = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let (mut accepted_count, mut total) = (0usize, 0usize);
    for _ in 0..300 {
        let templates = commands().new_tree(&mut runner).unwrap().current();
        let run = run(&templates);
        for step in &run.steps {
            statuses.insert(step.before.status);
            total += 1;
            match &step.result {
                Ok(_) => {
                    accepted_count += 1;
                    accepted.insert(step.command.name());
                }
                Err(error) => {
                    refused.insert(error.code());
                }
            }
        }
        statuses.insert(run.state.status);
    }
    assert_eq!(
        statuses.len(),
        CaseStatus::ALL.len(),
        "statuses reached: {statuses:?}"
    );
    assert_eq!(accepted.len(), 22, "commands accepted: {accepted:?}");
    assert!(refused.len() >= 9, "refusals seen: {refused:?}");
    assert!(
        accepted_count * 3 >= total,
        "only {accepted_count} of {total} commands accepted"
    );
}
