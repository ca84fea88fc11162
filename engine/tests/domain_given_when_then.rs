//! Business rules of the case aggregate, one sentence per test:
//! given these past events, when this command arrives, then these events (or this refusal).

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;
use wangge_engine::domain::{
    apply, decide, location_for, replay, stamp, CaseCommand, CaseState, CaseStatus, DomainError,
    EventMeta, SlaRecordKind,
};
use wangge_schemas::{
    Actor, CaseAccepted, CaseAcknowledged, CaseClosed, CaseDeclined, CaseDispatched, CaseEscalated,
    CaseEvaluated, CaseEvent, CaseId, CaseMerged, CaseReassigned, CaseRejected, CaseReopened,
    CaseReported, CaseResolved, CaseResumed, CaseSuspended, CaseVerified, CaseVoided, Channel,
    ClosureKind, CommentAdded, ExtensionGranted, GridLocation, HandlingStarted, MediaKind,
    MediaRef, PatrolKind, Priority, ReportDetails, Resident, ReworkRequested, SatisfactionLevel,
    SlaBreached, SlaStep, SlaWarning, Source, SuspendReason, Tier, TimeLimit, TimeUnit,
};

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

const WANG: &str = "wang-li";
const ZHANG: &str = "zhang-wei";
const VERIFIER: &str = "sup-chen";
const BUILDING_CELL: &str = "110101001002007";
const COMMUNITY_CELL: &str = "110101001002";
const DISTRICT_CELL: &str = "110101001";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn case_id() -> CaseId {
    CaseId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

fn location() -> GridLocation {
    GridLocation {
        district: DISTRICT_CELL.to_owned(),
        community: COMMUNITY_CELL.to_owned(),
        building: BUILDING_CELL.to_owned(),
    }
}

fn meta(message: usize) -> EventMeta {
    EventMeta {
        actor: Actor::system("test"),
        source: Source {
            system: "test".to_owned(),
            message_id: format!("m-{message}"),
        },
        correlation_id: Uuid::from_u128(7),
        causation_id: None,
        occurred_at: now(),
        recorded_at: now(),
    }
}

fn ids() -> impl FnMut() -> Uuid {
    let mut next = 0u128;
    move || {
        next += 1;
        Uuid::from_u128(next)
    }
}

struct Given {
    state: CaseState,
    now: DateTime<Utc>,
}

struct When {
    state: CaseState,
    result: Result<Vec<CaseEvent>, DomainError>,
}

/// The case as these events (each from its own message) left it.
fn given(history: Vec<CaseEvent>) -> Given {
    let mut state = CaseState::default();
    for (message, event) in history.into_iter().enumerate() {
        for envelope in stamp(
            &state,
            case_id(),
            &location(),
            vec![event],
            &meta(message),
            ids(),
        ) {
            state = apply(state, &envelope);
        }
    }
    Given { state, now: now() }
}

fn given_no_case() -> Given {
    given(Vec::new())
}

impl Given {
    fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    fn when(self, command: CaseCommand) -> When {
        let result = decide(&self.state, &command, self.now);
        When {
            state: self.state,
            result,
        }
    }
}

impl When {
    /// Asserts the decided events and returns the state once they are applied.
    #[track_caller]
    fn then_expect(self, expected: Vec<CaseEvent>) -> CaseState {
        let events = match self.result {
            Ok(events) => events,
            Err(error) => panic!("expected {expected:?}, the command was refused: {error}"),
        };
        assert_eq!(events, expected);
        let location = self.state.location.clone().unwrap_or_else(location);
        let stamped = stamp(&self.state, case_id(), &location, events, &meta(999), ids());
        stamped.iter().fold(self.state, apply)
    }

    #[track_caller]
    fn then_reject(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected refusal {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }

    #[track_caller]
    fn then_reject_as_invalid_transition(self) {
        match self.result {
            Err(DomainError::InvalidTransition { .. }) => {}
            other => panic!("expected an invalid transition, got {other:?}"),
        }
    }

    #[track_caller]
    fn then_reject_field(self, expected_field: &str) {
        match self.result {
            Err(DomainError::InvalidField { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("expected invalid field `{expected_field}`, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Facts and histories
// ---------------------------------------------------------------------------------------

fn resident_report() -> CaseReported {
    CaseReported {
        intake_clock: None,
        title: "12栋3单元1-6门口下水道堵塞".to_owned(),
        description: "drain blocked at building 12, unit 3".to_owned(),
        reported_category: "drainage".to_owned(),
        media: vec![photo("reports/drain.jpg")],
        coordinates: None,
        details: ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: "r-1001".to_owned(),
                contact: None,
                legacy_contact: None,
            },
        },
    }
}

fn patrol_report(worker_id: &str) -> CaseReported {
    CaseReported {
        intake_clock: None,
        title: "楼道灯坏了".to_owned(),
        description: "stairwell light broken on the 3rd floor".to_owned(),
        reported_category: "lighting".to_owned(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::PatrolFinding {
            worker_id: worker_id.to_owned(),
            patrol_kind: PatrolKind::Daily,
            fixed_on_spot: true,
        },
    }
}

fn photo(url: &str) -> MediaRef {
    MediaRef {
        kind: MediaKind::Photo,
        url: url.to_owned(),
        sha256: None,
    }
}

fn reported() -> CaseEvent {
    CaseEvent::Reported(resident_report())
}
fn reported_on_patrol_by(worker_id: &str) -> CaseEvent {
    CaseEvent::Reported(patrol_report(worker_id))
}
fn accepted() -> CaseEvent {
    CaseEvent::Accepted(CaseAccepted {
        category: "drainage".to_owned(),
        priority: Priority::High,
    })
}
fn dispatched_to(worker_id: &str) -> CaseEvent {
    CaseEvent::Dispatched(CaseDispatched {
        tier: Tier::Building,
        cell: BUILDING_CELL.to_owned(),
        assignee: worker_id.to_owned(),
    })
}
fn acknowledged_by(worker_id: &str) -> CaseEvent {
    CaseEvent::Acknowledged(CaseAcknowledged {
        worker_id: worker_id.to_owned(),
    })
}
fn handling_started_by(worker_id: &str) -> CaseEvent {
    CaseEvent::HandlingStarted(HandlingStarted {
        worker_id: worker_id.to_owned(),
    })
}
fn suspended() -> CaseEvent {
    CaseEvent::Suspended(CaseSuspended {
        reason: SuspendReason::WaitingForParts,
        note: None,
    })
}
fn resolved_by(worker_id: &str) -> CaseEvent {
    CaseEvent::Resolved(CaseResolved {
        worker_id: worker_id.to_owned(),
        notes: "drain cleared".to_owned(),
        media: vec![photo("results/drain.jpg")],
    })
}
fn verified() -> CaseEvent {
    CaseEvent::Verified(CaseVerified {
        verifier: VERIFIER.to_owned(),
        notes: None,
    })
}
fn closed(closure: ClosureKind) -> CaseEvent {
    CaseEvent::Closed(CaseClosed { closure })
}
fn reopened() -> CaseEvent {
    CaseEvent::Reopened(CaseReopened {
        reason: "blocked again".to_owned(),
    })
}
fn evaluated(satisfaction: u8) -> CaseEvent {
    CaseEvent::Evaluated(CaseEvaluated {
        satisfaction,
        comment: None,
        resolved: None,
        level: None,
        channel: None,
    })
}
fn comment(text: &str) -> CaseEvent {
    CaseEvent::CommentAdded(CommentAdded {
        text: text.to_owned(),
    })
}

fn awaiting_dispatch() -> Vec<CaseEvent> {
    vec![reported(), accepted()]
}
fn dispatched_to_wang() -> Vec<CaseEvent> {
    [awaiting_dispatch(), vec![dispatched_to(WANG)]].concat()
}
fn acknowledged_by_wang() -> Vec<CaseEvent> {
    [dispatched_to_wang(), vec![acknowledged_by(WANG)]].concat()
}
fn in_progress_with_wang() -> Vec<CaseEvent> {
    [acknowledged_by_wang(), vec![handling_started_by(WANG)]].concat()
}
fn suspended_with_wang() -> Vec<CaseEvent> {
    [in_progress_with_wang(), vec![suspended()]].concat()
}
fn resolved_by_wang() -> Vec<CaseEvent> {
    [in_progress_with_wang(), vec![resolved_by(WANG)]].concat()
}
fn closed_after_verification() -> Vec<CaseEvent> {
    [
        resolved_by_wang(),
        vec![verified(), closed(ClosureKind::Verified)],
    ]
    .concat()
}
fn rejected() -> Vec<CaseEvent> {
    vec![
        reported(),
        CaseEvent::Rejected(CaseRejected {
            reason: "not a case".to_owned(),
        }),
    ]
}
fn merged() -> Vec<CaseEvent> {
    vec![
        reported(),
        CaseEvent::Merged(CaseMerged {
            into_case_id: other_case(),
            reason: None,
        }),
    ]
}
fn voided() -> Vec<CaseEvent> {
    [
        awaiting_dispatch(),
        vec![CaseEvent::Voided(CaseVoided {
            reason: "test".to_owned(),
        })],
    ]
    .concat()
}

fn other_case() -> CaseId {
    CaseId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002))
}

/// One history for every status.
fn history_in(status: CaseStatus) -> Vec<CaseEvent> {
    match status {
        CaseStatus::New => Vec::new(),
        CaseStatus::Reported => vec![reported()],
        CaseStatus::AwaitingDispatch => awaiting_dispatch(),
        CaseStatus::Dispatched => dispatched_to_wang(),
        CaseStatus::Acknowledged => acknowledged_by_wang(),
        CaseStatus::InProgress => in_progress_with_wang(),
        CaseStatus::Suspended => suspended_with_wang(),
        CaseStatus::Resolved => resolved_by_wang(),
        CaseStatus::Closed => closed_after_verification(),
        CaseStatus::Rejected => rejected(),
        CaseStatus::Merged => merged(),
        CaseStatus::Voided => voided(),
    }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

fn report() -> CaseCommand {
    CaseCommand::Report {
        location: location(),
        report: resident_report(),
    }
}
fn accept() -> CaseCommand {
    CaseCommand::Accept {
        category: "drainage".to_owned(),
        priority: Priority::High,
    }
}
fn dispatch_to(worker_id: &str) -> CaseCommand {
    CaseCommand::Dispatch {
        tier: Tier::Building,
        cell: BUILDING_CELL.to_owned(),
        assignee: worker_id.to_owned(),
    }
}
fn acknowledge(worker_id: &str) -> CaseCommand {
    CaseCommand::Acknowledge {
        worker_id: worker_id.to_owned(),
    }
}
fn decline(worker_id: &str) -> CaseCommand {
    CaseCommand::Decline {
        worker_id: worker_id.to_owned(),
        reason: "not my building".to_owned(),
    }
}
fn reassign_to(worker_id: &str) -> CaseCommand {
    CaseCommand::Reassign {
        to_worker: worker_id.to_owned(),
        tier: Tier::Building,
        cell: BUILDING_CELL.to_owned(),
        reason: "on leave".to_owned(),
    }
}
fn start_handling(worker_id: &str) -> CaseCommand {
    CaseCommand::StartHandling {
        worker_id: worker_id.to_owned(),
    }
}
fn suspend() -> CaseCommand {
    CaseCommand::Suspend {
        reason: SuspendReason::WaitingForParts,
        note: None,
    }
}
fn resume() -> CaseCommand {
    CaseCommand::Resume {
        note: Some("parts arrived".to_owned()),
    }
}
fn grant_extension() -> CaseCommand {
    CaseCommand::GrantExtension {
        step: SlaStep::Resolve,
        extension: TimeLimit {
            amount: 2,
            unit: TimeUnit::WorkingDays,
        },
        reason: "pipe must be replaced".to_owned(),
    }
}
fn resolve(worker_id: &str) -> CaseCommand {
    CaseCommand::Resolve {
        worker_id: worker_id.to_owned(),
        notes: "drain cleared".to_owned(),
        media: vec![photo("results/drain.jpg")],
    }
}
fn verify_passed() -> CaseCommand {
    CaseCommand::Verify {
        verifier: VERIFIER.to_owned(),
        passed: true,
        notes: None,
    }
}
fn verify_failed(notes: Option<&str>) -> CaseCommand {
    CaseCommand::Verify {
        verifier: VERIFIER.to_owned(),
        passed: false,
        notes: notes.map(str::to_owned),
    }
}
fn self_handle(worker_id: &str) -> CaseCommand {
    CaseCommand::SelfHandle {
        worker_id: worker_id.to_owned(),
        notes: "replaced the bulb".to_owned(),
        media: Vec::new(),
    }
}
fn reopen() -> CaseCommand {
    CaseCommand::Reopen {
        reason: "blocked again".to_owned(),
    }
}
fn evaluate(satisfaction: u8) -> CaseCommand {
    CaseCommand::Evaluate {
        satisfaction,
        comment: None,
        resolved: None,
        level: None,
        channel: None,
    }
}
fn comment_on(text: &str) -> CaseCommand {
    CaseCommand::Comment {
        text: text.to_owned(),
    }
}
fn escalate_to(to_tier: Tier, cell: &str) -> CaseCommand {
    CaseCommand::Escalate {
        to_tier,
        cell: cell.to_owned(),
        reason: "needs the housing department".to_owned(),
    }
}
fn sla_warning(deadline: DateTime<Utc>) -> CaseCommand {
    CaseCommand::RecordSlaWarning {
        step: SlaStep::Resolve,
        deadline,
        threshold_percent: 80,
    }
}
fn sla_breach(deadline: DateTime<Utc>) -> CaseCommand {
    CaseCommand::RecordSlaBreach {
        step: SlaStep::Resolve,
        deadline,
    }
}
fn void() -> CaseCommand {
    CaseCommand::Void {
        reason: "entered by mistake".to_owned(),
    }
}

/// One instance of every command, each valid on its own terms.
fn every_command() -> Vec<CaseCommand> {
    vec![
        report(),
        accept(),
        CaseCommand::Reject {
            reason: "not a case".to_owned(),
        },
        CaseCommand::Merge {
            into_case_id: other_case(),
            reason: None,
        },
        dispatch_to(WANG),
        acknowledge(WANG),
        decline(WANG),
        reassign_to(ZHANG),
        start_handling(WANG),
        suspend(),
        resume(),
        grant_extension(),
        resolve(WANG),
        verify_passed(),
        self_handle(WANG),
        reopen(),
        evaluate(5),
        comment_on("resident called again"),
        escalate_to(Tier::District, DISTRICT_CELL),
        sla_warning(now() + Duration::hours(1)),
        sla_breach(now() - Duration::hours(1)),
        void(),
    ]
}

// ---------------------------------------------------------------------------------------
// The state machine as a table
// ---------------------------------------------------------------------------------------

/// Each command and the statuses in which it is not refused as an invalid transition.
#[test]
fn each_command_is_considered_only_in_its_statuses() {
    use CaseStatus::*;
    let open_after_acceptance = [
        AwaitingDispatch,
        Dispatched,
        Acknowledged,
        InProgress,
        Suspended,
        Resolved,
    ];
    let open = [&[Reported][..], &open_after_acceptance[..]].concat();
    let existing: Vec<CaseStatus> = CaseStatus::ALL.into_iter().filter(|s| *s != New).collect();
    let table: Vec<(&str, Vec<CaseStatus>)> = vec![
        ("report", vec![New]),
        ("accept", vec![Reported]),
        ("reject", vec![Reported]),
        ("merge", vec![Reported]),
        ("dispatch", vec![AwaitingDispatch]),
        ("acknowledge", vec![Dispatched]),
        ("decline", vec![Dispatched]),
        ("reassign", vec![Dispatched, Acknowledged, InProgress]),
        ("start_handling", vec![Acknowledged]),
        ("suspend", vec![InProgress]),
        ("resume", vec![Suspended]),
        ("grant_extension", open_after_acceptance.to_vec()),
        ("resolve", vec![Acknowledged, InProgress]),
        ("verify", vec![Resolved]),
        ("self_handle", vec![Reported, AwaitingDispatch]),
        ("reopen", vec![Closed]),
        ("evaluate", vec![Closed]),
        ("comment", existing),
        (
            "escalate",
            vec![AwaitingDispatch, Dispatched, Acknowledged, InProgress],
        ),
        ("record_sla_warning", open.clone()),
        ("record_sla_breach", open),
        (
            "void",
            vec![
                Reported,
                AwaitingDispatch,
                Dispatched,
                Acknowledged,
                InProgress,
                Suspended,
            ],
        ),
    ];
    let commands = every_command();
    assert_eq!(commands.len(), table.len(), "the table names every command");
    for (command, (name, allowed)) in commands.iter().zip(&table) {
        assert_eq!(command.name(), *name);
        for status in CaseStatus::ALL {
            let given = given(history_in(status));
            assert_eq!(given.state.status, status, "history for {status}");
            let result = decide(&given.state, command, now());
            let refused_as_transition = matches!(
                result,
                Err(DomainError::InvalidTransition { .. }
                    | DomainError::CaseNotFound
                    | DomainError::CaseAlreadyExists)
            );
            assert_eq!(
                !refused_as_transition,
                allowed.contains(&status),
                "{name} in {status}: {result:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 信息采集 collection
// ---------------------------------------------------------------------------------------

#[test]
fn a_resident_report_opens_the_case() {
    let state = given_no_case().when(report()).then_expect(vec![reported()]);
    assert_eq!(state.status, CaseStatus::Reported);
    assert_eq!(state.case_id, Some(case_id()));
    assert_eq!(state.location, Some(location()));
    assert_eq!(state.reported_category.as_deref(), Some("drainage"));
    assert_eq!(state.version, 1);
}

#[test]
fn a_patrol_finding_remembers_the_worker_who_found_it() {
    let state = given_no_case()
        .when(CaseCommand::Report {
            location: location(),
            report: patrol_report(WANG),
        })
        .then_expect(vec![reported_on_patrol_by(WANG)]);
    assert_eq!(state.patrol_worker.as_deref(), Some(WANG));
}

#[test]
fn a_case_cannot_be_reported_twice() {
    given(vec![reported()])
        .when(report())
        .then_reject(DomainError::CaseAlreadyExists);
    given(closed_after_verification())
        .when(report())
        .then_reject(DomainError::CaseAlreadyExists);
}

#[test]
fn a_report_must_have_a_title_a_category_and_a_full_location() {
    let mut untitled = resident_report();
    untitled.title = "  ".to_owned();
    given_no_case()
        .when(CaseCommand::Report {
            location: location(),
            report: untitled,
        })
        .then_reject_field("title");

    let mut uncategorised = resident_report();
    uncategorised.reported_category = String::new();
    given_no_case()
        .when(CaseCommand::Report {
            location: location(),
            report: uncategorised,
        })
        .then_reject_field("reported_category");

    let mut nowhere = location();
    nowhere.building = String::new();
    given_no_case()
        .when(CaseCommand::Report {
            location: nowhere,
            report: resident_report(),
        })
        .then_reject_field("location.building");
}

#[test]
fn a_report_must_say_who_reported_it() {
    given_no_case()
        .when(CaseCommand::Report {
            location: location(),
            report: patrol_report(" "),
        })
        .then_reject_field("worker_id");

    let mut anonymous = resident_report();
    anonymous.details = ReportDetails::ServiceRequest {
        channel: Channel::Kiosk,
        resident: Resident {
            id: String::new(),
            contact: None,
            legacy_contact: None,
        },
    };
    given_no_case()
        .when(CaseCommand::Report {
            location: location(),
            report: anonymous,
        })
        .then_reject_field("resident.id");
}

#[test]
fn every_other_command_on_an_unknown_case_is_not_found() {
    for command in every_command().into_iter().skip(1) {
        given_no_case()
            .when(command)
            .then_reject(DomainError::CaseNotFound);
    }
}

// ---------------------------------------------------------------------------------------
// 立案 acceptance, rejection, merging
// ---------------------------------------------------------------------------------------

#[test]
fn an_accepted_case_waits_for_dispatch() {
    let state = given(vec![reported()])
        .when(accept())
        .then_expect(vec![accepted()]);
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.category.as_deref(), Some("drainage"));
    assert_eq!(state.priority, Some(Priority::High));
}

#[test]
fn an_acceptance_without_a_category_confirms_the_reported_one() {
    given(vec![reported()])
        .when(CaseCommand::Accept {
            category: " ".to_owned(),
            priority: Priority::High,
        })
        .then_expect(vec![accepted()]);
}

#[test]
fn acceptance_corrects_the_reported_category() {
    let state = given(vec![reported()])
        .when(CaseCommand::Accept {
            category: "sewage".to_owned(),
            priority: Priority::Urgent,
        })
        .then_expect(vec![CaseEvent::Accepted(CaseAccepted {
            category: "sewage".to_owned(),
            priority: Priority::Urgent,
        })]);
    assert_eq!(state.category.as_deref(), Some("sewage"));
    assert_eq!(state.reported_category.as_deref(), Some("drainage"));
}

#[test]
fn the_dispatcher_accepts_and_dispatches_a_new_report_in_one_decision() {
    let state = given(vec![reported()])
        .when(CaseCommand::AcceptAndDispatch {
            category: "drainage".to_owned(),
            priority: Priority::High,
            tier: Tier::Building,
            cell: BUILDING_CELL.to_owned(),
            assignee: "wang".to_owned(),
        })
        .then_expect(vec![accepted(), dispatched_to("wang")]);
    assert_eq!(state.status, CaseStatus::Dispatched);
    assert_eq!(state.assignee.as_deref(), Some("wang"));
}

#[test]
fn accepting_and_dispatching_at_once_is_only_for_a_new_report_and_needs_an_assignee() {
    let accept_and_dispatch = |assignee: &str| CaseCommand::AcceptAndDispatch {
        category: "drainage".to_owned(),
        priority: Priority::High,
        tier: Tier::Building,
        cell: BUILDING_CELL.to_owned(),
        assignee: assignee.to_owned(),
    };
    given(awaiting_dispatch())
        .when(accept_and_dispatch("wang"))
        .then_reject(DomainError::InvalidTransition {
            command: "accept_and_dispatch",
            status: CaseStatus::AwaitingDispatch,
        });
    given(vec![reported()])
        .when(accept_and_dispatch(" "))
        .then_reject_field("assignee");
}

#[test]
fn a_case_is_accepted_only_once() {
    given(awaiting_dispatch())
        .when(accept())
        .then_reject(DomainError::InvalidTransition {
            command: "accept",
            status: CaseStatus::AwaitingDispatch,
        });
}

#[test]
fn an_invalid_report_is_rejected_with_a_reason() {
    let state = given(vec![reported()])
        .when(CaseCommand::Reject {
            reason: "not a case".to_owned(),
        })
        .then_expect(vec![CaseEvent::Rejected(CaseRejected {
            reason: "not a case".to_owned(),
        })]);
    assert_eq!(state.status, CaseStatus::Rejected);
    given(vec![reported()])
        .when(CaseCommand::Reject {
            reason: String::new(),
        })
        .then_reject_field("reason");
}

#[test]
fn an_accepted_case_can_no_longer_be_rejected_only_voided() {
    given(awaiting_dispatch())
        .when(CaseCommand::Reject {
            reason: "not a case".to_owned(),
        })
        .then_reject_as_invalid_transition();
}

#[test]
fn a_duplicate_is_merged_into_the_original() {
    let state = given(vec![reported()])
        .when(CaseCommand::Merge {
            into_case_id: other_case(),
            reason: Some("same drain".to_owned()),
        })
        .then_expect(vec![CaseEvent::Merged(CaseMerged {
            into_case_id: other_case(),
            reason: Some("same drain".to_owned()),
        })]);
    assert_eq!(state.status, CaseStatus::Merged);
    assert_eq!(state.merged_into, Some(other_case()));
}

#[test]
fn a_case_cannot_be_merged_into_itself() {
    given(vec![reported()])
        .when(CaseCommand::Merge {
            into_case_id: case_id(),
            reason: None,
        })
        .then_reject_field("into_case_id");
}

#[test]
fn a_merge_reason_if_given_must_say_something() {
    given(vec![reported()])
        .when(CaseCommand::Merge {
            into_case_id: other_case(),
            reason: Some(" ".to_owned()),
        })
        .then_reject_field("reason");
}

// ---------------------------------------------------------------------------------------
// 派遣 dispatch, acknowledgement, decline, reassignment
// ---------------------------------------------------------------------------------------

#[test]
fn an_accepted_case_is_dispatched_to_a_worker_of_a_cell() {
    let state = given(awaiting_dispatch())
        .when(dispatch_to(WANG))
        .then_expect(vec![dispatched_to(WANG)]);
    assert_eq!(state.status, CaseStatus::Dispatched);
    assert_eq!(state.assignee.as_deref(), Some(WANG));
    assert_eq!(state.tier, Some(Tier::Building));
    assert_eq!(state.cell.as_deref(), Some(BUILDING_CELL));
}

#[test]
fn a_case_is_not_dispatched_before_it_is_accepted() {
    given(vec![reported()])
        .when(dispatch_to(WANG))
        .then_reject(DomainError::InvalidTransition {
            command: "dispatch",
            status: CaseStatus::Reported,
        });
}

#[test]
fn dispatch_needs_a_cell_and_an_assignee() {
    given(awaiting_dispatch())
        .when(CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: String::new(),
            assignee: WANG.to_owned(),
        })
        .then_reject_field("cell");
    given(awaiting_dispatch())
        .when(CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: BUILDING_CELL.to_owned(),
            assignee: "\t".to_owned(),
        })
        .then_reject_field("assignee");
}

#[test]
fn the_assignee_acknowledges_the_task() {
    let state = given(dispatched_to_wang())
        .when(acknowledge(WANG))
        .then_expect(vec![acknowledged_by(WANG)]);
    assert_eq!(state.status, CaseStatus::Acknowledged);
}

#[test]
fn only_the_assignee_may_acknowledge() {
    given(dispatched_to_wang())
        .when(acknowledge(ZHANG))
        .then_reject(DomainError::NotAssignee {
            worker_id: ZHANG.to_owned(),
            assignee: Some(WANG.to_owned()),
        });
}

#[test]
fn a_task_is_acknowledged_only_once() {
    given(acknowledged_by_wang())
        .when(acknowledge(WANG))
        .then_reject(DomainError::InvalidTransition {
            command: "acknowledge",
            status: CaseStatus::Acknowledged,
        });
}

#[test]
fn a_declined_task_goes_back_for_dispatch_without_an_assignee() {
    let state = given(dispatched_to_wang())
        .when(decline(WANG))
        .then_expect(vec![CaseEvent::Declined(CaseDeclined {
            worker_id: WANG.to_owned(),
            reason: "not my building".to_owned(),
        })]);
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.assignee, None);
}

#[test]
fn a_declined_task_can_be_dispatched_again() {
    let history = [
        dispatched_to_wang(),
        vec![CaseEvent::Declined(CaseDeclined {
            worker_id: WANG.to_owned(),
            reason: "not my building".to_owned(),
        })],
    ]
    .concat();
    given(history)
        .when(dispatch_to(ZHANG))
        .then_expect(vec![dispatched_to(ZHANG)]);
}

#[test]
fn only_the_assignee_may_decline_and_must_say_why() {
    given(dispatched_to_wang())
        .when(decline(ZHANG))
        .then_reject(DomainError::NotAssignee {
            worker_id: ZHANG.to_owned(),
            assignee: Some(WANG.to_owned()),
        });
    given(dispatched_to_wang())
        .when(CaseCommand::Decline {
            worker_id: WANG.to_owned(),
            reason: " ".to_owned(),
        })
        .then_reject_field("reason");
}

#[test]
fn an_acknowledged_task_can_no_longer_be_declined() {
    given(acknowledged_by_wang())
        .when(decline(WANG))
        .then_reject_as_invalid_transition();
}

#[test]
fn a_reassigned_task_waits_for_the_new_worker_to_acknowledge_it() {
    for history in [
        dispatched_to_wang(),
        acknowledged_by_wang(),
        in_progress_with_wang(),
    ] {
        let state =
            given(history)
                .when(reassign_to(ZHANG))
                .then_expect(vec![CaseEvent::Reassigned(CaseReassigned {
                    from_worker: Some(WANG.to_owned()),
                    to_worker: ZHANG.to_owned(),
                    tier: Tier::Building,
                    cell: BUILDING_CELL.to_owned(),
                    reason: "on leave".to_owned(),
                })]);
        assert_eq!(state.status, CaseStatus::Dispatched);
        assert_eq!(state.assignee.as_deref(), Some(ZHANG));
    }
}

#[test]
fn a_task_is_not_reassigned_to_the_worker_who_has_it() {
    given(acknowledged_by_wang())
        .when(reassign_to(WANG))
        .then_reject_field("to_worker");
}

#[test]
fn a_task_that_waits_for_dispatch_or_is_suspended_is_not_reassigned() {
    given(awaiting_dispatch())
        .when(reassign_to(ZHANG))
        .then_reject_as_invalid_transition();
    given(suspended_with_wang())
        .when(reassign_to(ZHANG))
        .then_reject_as_invalid_transition();
}

// ---------------------------------------------------------------------------------------
// 处置 handling, suspension, extension
// ---------------------------------------------------------------------------------------

#[test]
fn the_assignee_starts_handling_an_acknowledged_task() {
    let state = given(acknowledged_by_wang())
        .when(start_handling(WANG))
        .then_expect(vec![handling_started_by(WANG)]);
    assert_eq!(state.status, CaseStatus::InProgress);
}

#[test]
fn only_the_assignee_starts_handling_and_only_after_acknowledging() {
    given(acknowledged_by_wang())
        .when(start_handling(ZHANG))
        .then_reject(DomainError::NotAssignee {
            worker_id: ZHANG.to_owned(),
            assignee: Some(WANG.to_owned()),
        });
    given(dispatched_to_wang())
        .when(start_handling(WANG))
        .then_reject(DomainError::InvalidTransition {
            command: "start_handling",
            status: CaseStatus::Dispatched,
        });
}

#[test]
fn a_case_in_progress_is_suspended_and_the_clock_stops() {
    let state = given(in_progress_with_wang())
        .when(suspend())
        .then_expect(vec![suspended()]);
    assert_eq!(state.status, CaseStatus::Suspended);
    assert_eq!(state.suspension, Some(SuspendReason::WaitingForParts));
}

#[test]
fn only_a_case_in_progress_is_suspended() {
    given(acknowledged_by_wang())
        .when(suspend())
        .then_reject_as_invalid_transition();
    given(suspended_with_wang())
        .when(suspend())
        .then_reject_as_invalid_transition();
}

#[test]
fn a_suspension_note_if_given_must_say_something() {
    given(in_progress_with_wang())
        .when(CaseCommand::Suspend {
            reason: SuspendReason::Parked,
            note: Some(String::new()),
        })
        .then_reject_field("note");
}

#[test]
fn a_resumed_case_is_in_progress_again() {
    let state = given(suspended_with_wang())
        .when(resume())
        .then_expect(vec![CaseEvent::Resumed(CaseResumed {
            note: Some("parts arrived".to_owned()),
        })]);
    assert_eq!(state.status, CaseStatus::InProgress);
    assert_eq!(state.suspension, None);
    assert_eq!(state.assignee.as_deref(), Some(WANG));
}

#[test]
fn only_a_suspended_case_is_resumed() {
    given(in_progress_with_wang())
        .when(resume())
        .then_reject(DomainError::InvalidTransition {
            command: "resume",
            status: CaseStatus::InProgress,
        });
}

#[test]
fn a_suspended_case_is_not_resolved_nor_escalated_before_it_resumes() {
    given(suspended_with_wang())
        .when(resolve(WANG))
        .then_reject_as_invalid_transition();
    given(suspended_with_wang())
        .when(escalate_to(Tier::Community, COMMUNITY_CELL))
        .then_reject_as_invalid_transition();
}

#[test]
fn an_extension_is_granted_to_an_open_accepted_case() {
    let expected = vec![CaseEvent::ExtensionGranted(ExtensionGranted {
        step: SlaStep::Resolve,
        extension: TimeLimit {
            amount: 2,
            unit: TimeUnit::WorkingDays,
        },
        reason: "pipe must be replaced".to_owned(),
    })];
    for history in [
        awaiting_dispatch(),
        in_progress_with_wang(),
        suspended_with_wang(),
        resolved_by_wang(),
    ] {
        let before = given(history.clone()).state.status;
        let state = given(history)
            .when(grant_extension())
            .then_expect(expected.clone());
        assert_eq!(state.status, before, "an extension does not move the case");
    }
}

#[test]
fn no_extension_before_acceptance_or_after_the_outcome() {
    given(vec![reported()])
        .when(grant_extension())
        .then_reject_as_invalid_transition();
    given(closed_after_verification())
        .when(grant_extension())
        .then_reject_as_invalid_transition();
    given(voided())
        .when(grant_extension())
        .then_reject_as_invalid_transition();
}

#[test]
fn an_extension_must_extend_and_say_why() {
    given(in_progress_with_wang())
        .when(CaseCommand::GrantExtension {
            step: SlaStep::Resolve,
            extension: TimeLimit {
                amount: 0,
                unit: TimeUnit::WorkingHours,
            },
            reason: "x".to_owned(),
        })
        .then_reject_field("extension.amount");
    given(in_progress_with_wang())
        .when(CaseCommand::GrantExtension {
            step: SlaStep::Resolve,
            extension: TimeLimit {
                amount: 1,
                unit: TimeUnit::WorkingHours,
            },
            reason: String::new(),
        })
        .then_reject_field("reason");
}

// ---------------------------------------------------------------------------------------
// 反馈 feedback
// ---------------------------------------------------------------------------------------

#[test]
fn the_assignee_resolves_a_case_in_progress() {
    let state = given(in_progress_with_wang())
        .when(resolve(WANG))
        .then_expect(vec![resolved_by(WANG)]);
    assert_eq!(state.status, CaseStatus::Resolved);
}

#[test]
fn resolving_an_acknowledged_task_records_the_implicit_start() {
    let state = given(acknowledged_by_wang())
        .when(resolve(WANG))
        .then_expect(vec![handling_started_by(WANG), resolved_by(WANG)]);
    assert_eq!(state.status, CaseStatus::Resolved);
}

#[test]
fn only_the_assignee_resolves_and_must_say_what_was_done() {
    given(in_progress_with_wang())
        .when(resolve(ZHANG))
        .then_reject(DomainError::NotAssignee {
            worker_id: ZHANG.to_owned(),
            assignee: Some(WANG.to_owned()),
        });
    given(in_progress_with_wang())
        .when(CaseCommand::Resolve {
            worker_id: WANG.to_owned(),
            notes: " ".to_owned(),
            media: vec![],
        })
        .then_reject_field("notes");
    given(in_progress_with_wang())
        .when(CaseCommand::Resolve {
            worker_id: WANG.to_owned(),
            notes: "done".to_owned(),
            media: vec![photo("")],
        })
        .then_reject_field("media.url");
}

#[test]
fn a_dispatched_task_is_not_resolved_before_it_is_acknowledged() {
    given(dispatched_to_wang())
        .when(resolve(WANG))
        .then_reject_as_invalid_transition();
}

// ---------------------------------------------------------------------------------------
// 核查结案 verification and closing, 自处理 self-handling
// ---------------------------------------------------------------------------------------

#[test]
fn a_passed_verification_closes_the_case_in_one_decision() {
    let state = given(resolved_by_wang())
        .when(verify_passed())
        .then_expect(vec![verified(), closed(ClosureKind::Verified)]);
    assert_eq!(state.status, CaseStatus::Closed);
    assert_eq!(state.closure, Some(ClosureKind::Verified));
}

#[test]
fn a_failed_verification_sends_the_case_back_to_the_same_worker() {
    let state = given(resolved_by_wang())
        .when(verify_failed(Some("still smells")))
        .then_expect(vec![CaseEvent::ReworkRequested(ReworkRequested {
            verifier: VERIFIER.to_owned(),
            reason: "still smells".to_owned(),
        })]);
    assert_eq!(state.status, CaseStatus::InProgress);
    assert_eq!(state.assignee.as_deref(), Some(WANG));
    assert_eq!(state.rework_count, 1);
}

#[test]
fn after_rework_the_same_worker_resolves_again() {
    let history = [
        resolved_by_wang(),
        vec![CaseEvent::ReworkRequested(ReworkRequested {
            verifier: VERIFIER.to_owned(),
            reason: "still smells".to_owned(),
        })],
    ]
    .concat();
    given(history)
        .when(resolve(WANG))
        .then_expect(vec![resolved_by(WANG)]);
}

#[test]
fn a_failed_verification_must_say_what_to_rework() {
    given(resolved_by_wang())
        .when(verify_failed(None))
        .then_reject_field("notes");
    given(resolved_by_wang())
        .when(verify_failed(Some("  ")))
        .then_reject_field("notes");
}

#[test]
fn verification_needs_a_verifier_and_a_resolved_case() {
    given(resolved_by_wang())
        .when(CaseCommand::Verify {
            verifier: String::new(),
            passed: true,
            notes: None,
        })
        .then_reject_field("verifier");
    given(in_progress_with_wang())
        .when(verify_passed())
        .then_reject(DomainError::InvalidTransition {
            command: "verify",
            status: CaseStatus::InProgress,
        });
}

#[test]
fn a_patrol_worker_self_handles_their_own_finding_in_one_decision() {
    let expected = vec![
        handling_started_by(WANG),
        CaseEvent::Resolved(CaseResolved {
            worker_id: WANG.to_owned(),
            notes: "replaced the bulb".to_owned(),
            media: Vec::new(),
        }),
        closed(ClosureKind::SelfHandled),
    ];
    let state = given(vec![reported_on_patrol_by(WANG)])
        .when(self_handle(WANG))
        .then_expect(expected.clone());
    assert_eq!(state.status, CaseStatus::Closed);
    assert_eq!(state.closure, Some(ClosureKind::SelfHandled));

    given(vec![reported_on_patrol_by(WANG), accepted()])
        .when(self_handle(WANG))
        .then_expect(expected);
}

#[test]
fn nobody_else_self_handles_a_patrol_finding() {
    given(vec![reported_on_patrol_by(WANG)])
        .when(self_handle(ZHANG))
        .then_reject(DomainError::NotPatrolReporter {
            worker_id: ZHANG.to_owned(),
            reporter: Some(WANG.to_owned()),
        });
}

#[test]
fn a_resident_report_is_never_self_handled() {
    given(vec![reported()])
        .when(self_handle(WANG))
        .then_reject(DomainError::NotPatrolReporter {
            worker_id: WANG.to_owned(),
            reporter: None,
        });
}

#[test]
fn a_dispatched_patrol_finding_goes_the_normal_way() {
    given(vec![
        reported_on_patrol_by(WANG),
        accepted(),
        dispatched_to(WANG),
    ])
    .when(self_handle(WANG))
    .then_reject_as_invalid_transition();
}

// ---------------------------------------------------------------------------------------
// A closed case: reopening, 综合评价 evaluation, comments
// ---------------------------------------------------------------------------------------

#[test]
fn a_reopened_case_waits_for_dispatch_in_the_same_cell() {
    let state = given(closed_after_verification())
        .when(reopen())
        .then_expect(vec![reopened()]);
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.tier, Some(Tier::Building));
    assert_eq!(state.cell.as_deref(), Some(BUILDING_CELL));
    assert_eq!(state.assignee, None);
    assert_eq!(state.closure, None);
    assert_eq!(state.reopen_count, 1);
}

#[test]
fn only_a_closed_case_is_reopened_and_with_a_reason() {
    given(resolved_by_wang())
        .when(reopen())
        .then_reject_as_invalid_transition();
    given(voided())
        .when(reopen())
        .then_reject_as_invalid_transition();
    given(closed_after_verification())
        .when(CaseCommand::Reopen {
            reason: String::new(),
        })
        .then_reject_field("reason");
}

#[test]
fn the_reporter_evaluates_a_closed_case() {
    let state = given(closed_after_verification())
        .when(CaseCommand::Evaluate {
            satisfaction: 5,
            comment: Some("很快".to_owned()),
            resolved: None,
            level: None,
            channel: None,
        })
        .then_expect(vec![CaseEvent::Evaluated(CaseEvaluated {
            satisfaction: 5,
            comment: Some("很快".to_owned()),
            resolved: None,
            level: None,
            channel: None,
        })]);
    assert_eq!(state.satisfaction, Some(5));
    assert_eq!(state.status, CaseStatus::Closed);
}

#[test]
fn a_hotline_level_is_recorded_with_its_score_the_answer_and_the_channel() {
    let evaluation = |satisfaction, level| CaseCommand::Evaluate {
        satisfaction,
        comment: None,
        resolved: Some(false),
        level: Some(level),
        channel: Some(Channel::Hotline12345),
    };
    given(closed_after_verification())
        .when(evaluation(4, SatisfactionLevel::BasicallySatisfied))
        .then_expect(vec![CaseEvent::Evaluated(CaseEvaluated {
            satisfaction: 4,
            comment: None,
            resolved: Some(false),
            level: Some(SatisfactionLevel::BasicallySatisfied),
            channel: Some(Channel::Hotline12345),
        })]);
    // A word and a score that disagree would make the event say two things.
    given(closed_after_verification())
        .when(evaluation(5, SatisfactionLevel::Dissatisfied))
        .then_reject_field("satisfaction");
}

#[test]
fn a_closure_is_evaluated_only_once() {
    given([closed_after_verification(), vec![evaluated(4)]].concat())
        .when(evaluate(5))
        .then_reject(DomainError::AlreadyEvaluated);
}

#[test]
fn each_closure_after_a_reopening_is_evaluated_again() {
    let history = [
        closed_after_verification(),
        vec![
            evaluated(2),
            reopened(),
            dispatched_to(WANG),
            acknowledged_by(WANG),
        ],
        vec![resolved_by(WANG), verified(), closed(ClosureKind::Verified)],
    ]
    .concat();
    let state = given(history)
        .when(evaluate(5))
        .then_expect(vec![evaluated(5)]);
    assert_eq!(state.satisfaction, Some(5));
}

#[test]
fn satisfaction_is_one_to_five() {
    for satisfaction in [0, 6, 255] {
        given(closed_after_verification())
            .when(evaluate(satisfaction))
            .then_reject_field("satisfaction");
    }
    for satisfaction in 1..=5 {
        given(closed_after_verification())
            .when(evaluate(satisfaction))
            .then_expect(vec![evaluated(satisfaction)]);
    }
}

#[test]
fn an_open_case_is_not_evaluated() {
    given(resolved_by_wang())
        .when(evaluate(5))
        .then_reject(DomainError::InvalidTransition {
            command: "evaluate",
            status: CaseStatus::Resolved,
        });
}

#[test]
fn anyone_may_comment_on_any_existing_case() {
    for status in CaseStatus::ALL
        .into_iter()
        .filter(|status| *status != CaseStatus::New)
    {
        let state = given(history_in(status))
            .when(comment_on("resident called again"))
            .then_expect(vec![comment("resident called again")]);
        assert_eq!(state.status, status, "a comment does not move the case");
    }
}

#[test]
fn a_comment_must_say_something() {
    given(vec![reported()])
        .when(comment_on(" \n"))
        .then_reject_field("text");
}

#[test]
fn a_closed_case_accepts_only_reopening_evaluation_and_comments() {
    for command in every_command() {
        let name = command.name();
        let result = decide(&given(closed_after_verification()).state, &command, now());
        match name {
            "reopen" | "evaluate" | "comment" => assert!(result.is_ok(), "{name}: {result:?}"),
            "report" => assert_eq!(result, Err(DomainError::CaseAlreadyExists)),
            _ => assert_eq!(
                result,
                Err(DomainError::InvalidTransition {
                    command: name,
                    status: CaseStatus::Closed
                })
            ),
        }
    }
}

#[test]
fn a_rejected_merged_or_voided_case_accepts_only_comments() {
    for history in [rejected(), merged(), voided()] {
        let state = given(history).state;
        for command in every_command() {
            let result = decide(&state, &command, now());
            match command.name() {
                "comment" => assert!(result.is_ok()),
                "report" => assert_eq!(result, Err(DomainError::CaseAlreadyExists)),
                name => assert_eq!(
                    result,
                    Err(DomainError::InvalidTransition {
                        command: name,
                        status: state.status
                    })
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Escalation (大事全网联动)
// ---------------------------------------------------------------------------------------

#[test]
fn an_undispatched_case_escalates_from_its_building() {
    let state = given(awaiting_dispatch())
        .when(escalate_to(Tier::Community, COMMUNITY_CELL))
        .then_expect(vec![CaseEvent::Escalated(CaseEscalated {
            from_tier: Tier::Building,
            to_tier: Tier::Community,
            cell: COMMUNITY_CELL.to_owned(),
            reason: "needs the housing department".to_owned(),
        })]);
    assert_eq!(state.tier, Some(Tier::Community));
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
}

#[test]
fn an_escalated_case_leaves_its_worker_and_waits_for_dispatch_above() {
    for history in [
        dispatched_to_wang(),
        acknowledged_by_wang(),
        in_progress_with_wang(),
    ] {
        let state = given(history)
            .when(escalate_to(Tier::District, DISTRICT_CELL))
            .then_expect(vec![CaseEvent::Escalated(CaseEscalated {
                from_tier: Tier::Building,
                to_tier: Tier::District,
                cell: DISTRICT_CELL.to_owned(),
                reason: "needs the housing department".to_owned(),
            })]);
        assert_eq!(state.status, CaseStatus::AwaitingDispatch);
        assert_eq!(state.assignee, None);
        assert_eq!(state.tier, Some(Tier::District));
        assert_eq!(state.cell.as_deref(), Some(DISTRICT_CELL));
        assert_eq!(state.escalation_count, 1);
    }
}

#[test]
fn escalation_only_goes_up() {
    given(dispatched_to_wang())
        .when(escalate_to(Tier::Building, BUILDING_CELL))
        .then_reject(DomainError::NotAnEscalation {
            from_tier: Tier::Building,
            to_tier: Tier::Building,
        });
    let at_district = [
        awaiting_dispatch(),
        vec![CaseEvent::Escalated(CaseEscalated {
            from_tier: Tier::Building,
            to_tier: Tier::District,
            cell: DISTRICT_CELL.to_owned(),
            reason: "big".to_owned(),
        })],
    ]
    .concat();
    given(at_district.clone())
        .when(escalate_to(Tier::Community, COMMUNITY_CELL))
        .then_reject(DomainError::NotAnEscalation {
            from_tier: Tier::District,
            to_tier: Tier::Community,
        });
    // The district takes what nobody else can (兜底): there is nothing above it.
    given(at_district)
        .when(escalate_to(Tier::District, DISTRICT_CELL))
        .then_reject(DomainError::NotAnEscalation {
            from_tier: Tier::District,
            to_tier: Tier::District,
        });
}

#[test]
fn an_escalation_names_the_cell_and_the_reason() {
    given(awaiting_dispatch())
        .when(escalate_to(Tier::Community, ""))
        .then_reject_field("cell");
    given(awaiting_dispatch())
        .when(CaseCommand::Escalate {
            to_tier: Tier::Community,
            cell: COMMUNITY_CELL.to_owned(),
            reason: " ".to_owned(),
        })
        .then_reject_field("reason");
}

// ---------------------------------------------------------------------------------------
// SLA facts, recorded exactly once
// ---------------------------------------------------------------------------------------

#[test]
fn an_sla_warning_is_recorded_before_the_deadline() {
    let deadline = now() + Duration::hours(2);
    let state = given(in_progress_with_wang())
        .when(sla_warning(deadline))
        .then_expect(vec![CaseEvent::SlaWarning(SlaWarning {
            step: SlaStep::Resolve,
            deadline,
            threshold_percent: 80,
        })]);
    assert!(state.sla_warnings.contains(&(SlaStep::Resolve, deadline)));
    assert_eq!(state.status, CaseStatus::InProgress);
}

#[test]
fn the_same_sla_warning_is_recorded_once() {
    let deadline = now() + Duration::hours(2);
    let history = [
        in_progress_with_wang(),
        vec![CaseEvent::SlaWarning(SlaWarning {
            step: SlaStep::Resolve,
            deadline,
            threshold_percent: 80,
        })],
    ]
    .concat();
    given(history.clone())
        .when(sla_warning(deadline))
        .then_reject(DomainError::AlreadyRecorded {
            kind: SlaRecordKind::Warning,
            step: SlaStep::Resolve,
            deadline,
        });
    // An extension moves the deadline, and the new deadline gets its own warning.
    let extended = deadline + Duration::days(2);
    given(history)
        .when(sla_warning(extended))
        .then_expect(vec![CaseEvent::SlaWarning(SlaWarning {
            step: SlaStep::Resolve,
            deadline: extended,
            threshold_percent: 80,
        })]);
}

#[test]
fn a_warning_threshold_is_a_fraction_of_the_limit() {
    for threshold_percent in [0, 100] {
        given(in_progress_with_wang())
            .when(CaseCommand::RecordSlaWarning {
                step: SlaStep::Resolve,
                deadline: now(),
                threshold_percent,
            })
            .then_reject_field("threshold_percent");
    }
}

#[test]
fn a_breach_is_recorded_once_the_deadline_has_passed() {
    let deadline = now() - Duration::minutes(1);
    let state = given(dispatched_to_wang())
        .when(sla_breach(deadline))
        .then_expect(vec![CaseEvent::SlaBreached(SlaBreached {
            step: SlaStep::Resolve,
            deadline,
        })]);
    assert!(state.sla_breaches.contains(&(SlaStep::Resolve, deadline)));
    // Exactly at the deadline counts as passed.
    given(dispatched_to_wang())
        .when(sla_breach(now()))
        .then_expect(vec![CaseEvent::SlaBreached(SlaBreached {
            step: SlaStep::Resolve,
            deadline: now(),
        })]);
}

#[test]
fn a_breach_before_the_deadline_is_refused() {
    let deadline = now() + Duration::seconds(1);
    given(dispatched_to_wang())
        .when(sla_breach(deadline))
        .then_reject(DomainError::BreachBeforeDeadline {
            step: SlaStep::Resolve,
            deadline,
            now: now(),
        });
    // The same command later, when the deadline has passed, is recorded.
    given(dispatched_to_wang())
        .at(deadline)
        .when(sla_breach(deadline))
        .then_expect(vec![CaseEvent::SlaBreached(SlaBreached {
            step: SlaStep::Resolve,
            deadline,
        })]);
}

#[test]
fn the_same_breach_is_recorded_once_even_next_to_its_warning() {
    let deadline = now() - Duration::hours(1);
    let history = [
        in_progress_with_wang(),
        vec![
            CaseEvent::SlaWarning(SlaWarning {
                step: SlaStep::Resolve,
                deadline,
                threshold_percent: 80,
            }),
            CaseEvent::SlaBreached(SlaBreached {
                step: SlaStep::Resolve,
                deadline,
            }),
        ],
    ]
    .concat();
    given(history.clone())
        .when(sla_breach(deadline))
        .then_reject(DomainError::AlreadyRecorded {
            kind: SlaRecordKind::Breach,
            step: SlaStep::Resolve,
            deadline,
        });
    // Another step with the same deadline is another fact.
    given(history)
        .when(CaseCommand::RecordSlaBreach {
            step: SlaStep::Verify,
            deadline,
        })
        .then_expect(vec![CaseEvent::SlaBreached(SlaBreached {
            step: SlaStep::Verify,
            deadline,
        })]);
}

#[test]
fn sla_facts_are_recorded_from_the_report_on_but_not_after_the_outcome() {
    let deadline = now() - Duration::minutes(5);
    given(vec![reported()])
        .when(CaseCommand::RecordSlaBreach {
            step: SlaStep::Accept,
            deadline,
        })
        .then_expect(vec![CaseEvent::SlaBreached(SlaBreached {
            step: SlaStep::Accept,
            deadline,
        })]);
    given(closed_after_verification())
        .when(sla_breach(deadline))
        .then_reject_as_invalid_transition();
    given(rejected())
        .when(sla_warning(deadline))
        .then_reject_as_invalid_transition();
}

// ---------------------------------------------------------------------------------------
// 作废 voiding
// ---------------------------------------------------------------------------------------

#[test]
fn an_open_case_is_voided_with_a_reason() {
    let expected = vec![CaseEvent::Voided(CaseVoided {
        reason: "entered by mistake".to_owned(),
    })];
    for status in [
        CaseStatus::Reported,
        CaseStatus::AwaitingDispatch,
        CaseStatus::Dispatched,
        CaseStatus::Acknowledged,
        CaseStatus::InProgress,
        CaseStatus::Suspended,
    ] {
        let state = given(history_in(status))
            .when(void())
            .then_expect(expected.clone());
        assert_eq!(state.status, CaseStatus::Voided);
        assert_eq!(state.suspension, None);
    }
    given(vec![reported()])
        .when(CaseCommand::Void {
            reason: String::new(),
        })
        .then_reject_field("reason");
}

#[test]
fn a_resolved_case_is_verified_not_voided() {
    given(resolved_by_wang())
        .when(void())
        .then_reject(DomainError::InvalidTransition {
            command: "void",
            status: CaseStatus::Resolved,
        });
}

// ---------------------------------------------------------------------------------------
// Errors, stamping, folding
// ---------------------------------------------------------------------------------------

#[test]
fn errors_have_stable_codes_and_lower_case_messages_without_trailing_punctuation() {
    let errors = [
        (DomainError::CaseNotFound, "case_not_found"),
        (DomainError::CaseAlreadyExists, "case_already_exists"),
        (
            DomainError::InvalidTransition {
                command: "verify",
                status: CaseStatus::InProgress,
            },
            "invalid_transition",
        ),
        (
            DomainError::NotAssignee {
                worker_id: ZHANG.to_owned(),
                assignee: None,
            },
            "not_assignee",
        ),
        (
            DomainError::InvalidField {
                field: "text",
                reason: "must not be empty".to_owned(),
            },
            "invalid_field",
        ),
        (
            DomainError::AlreadyRecorded {
                kind: SlaRecordKind::Breach,
                step: SlaStep::Accept,
                deadline: now(),
            },
            "already_recorded",
        ),
        (DomainError::AlreadyEvaluated, "already_evaluated"),
        (
            DomainError::NotPatrolReporter {
                worker_id: ZHANG.to_owned(),
                reporter: None,
            },
            "not_patrol_reporter",
        ),
        (
            DomainError::BreachBeforeDeadline {
                step: SlaStep::Verify,
                deadline: now(),
                now: now(),
            },
            "breach_before_deadline",
        ),
        (
            DomainError::NotAnEscalation {
                from_tier: Tier::District,
                to_tier: Tier::Building,
            },
            "not_an_escalation",
        ),
    ];
    for (error, code) in errors {
        assert_eq!(error.code(), code);
        let message = error.to_string();
        let first = message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "{message}");
        assert!(!message.ends_with(['.', '!']), "{message}");
    }
    assert_eq!(
        DomainError::InvalidTransition {
            command: "verify",
            status: CaseStatus::InProgress
        }
        .to_string(),
        "command `verify` is not allowed while the case is in_progress"
    );
}

#[test]
fn statuses_have_snake_case_names_and_four_are_terminal() {
    for status in CaseStatus::ALL {
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{}\"", status.as_str()));
    }
    let terminal: Vec<_> = CaseStatus::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [
            CaseStatus::Closed,
            CaseStatus::Rejected,
            CaseStatus::Merged,
            CaseStatus::Voided
        ]
    );
}

#[test]
fn stamping_numbers_events_after_the_last_one_without_gaps() {
    let state = given(resolved_by_wang()).state;
    let events = decide(&state, &verify_passed(), now()).unwrap();
    let meta = meta(42);
    let stamped = stamp(&state, case_id(), &location(), events, &meta, ids());
    let sequences: Vec<u64> = stamped.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [state.version + 1, state.version + 2]);
    assert_ne!(stamped[0].event_id, stamped[1].event_id);
    for envelope in &stamped {
        assert_eq!(envelope.schema_version, envelope.event.schema_version());
        assert_eq!(envelope.source, meta.source);
        assert_eq!(envelope.case_id, case_id());
    }
    let resolved = stamp(
        &state,
        case_id(),
        &location(),
        vec![resolved_by(WANG)],
        &meta,
        ids(),
    );
    assert_eq!(
        resolved[0].schema_version, 2,
        "case.resolved is written as version 2"
    );
}

#[test]
fn the_place_of_a_command_is_its_report_or_the_case() {
    let nowhere = CaseState::default();
    assert_eq!(location_for(&nowhere, &report()), Some(location()));
    assert_eq!(location_for(&nowhere, &accept()), None);
    assert_eq!(
        location_for(&given(vec![reported()]).state, &accept()),
        Some(location())
    );
}

#[test]
fn each_source_message_remembers_the_sequences_it_wrote() {
    let before = given(resolved_by_wang()).state;
    let version = before.version;
    let events = decide(&before, &verify_passed(), now()).unwrap();
    let stamped = stamp(&before, case_id(), &location(), events, &meta(42), ids());
    let after = stamped.iter().fold(before, apply);
    assert_eq!(
        after.processed_sources.get(&meta(42).source),
        Some(&(version + 1, version + 2))
    );
    assert_eq!(after.processed_sources.get(&meta(0).source), Some(&(1, 1)));
    assert_eq!(replay(&stamped).processed_sources.len(), 1);
}

#[test]
fn a_second_report_in_the_log_does_not_redefine_the_case() {
    let mut other_place = resident_report();
    other_place.reported_category = "lighting".to_owned();
    let state = given(vec![
        reported(),
        accepted(),
        CaseEvent::Reported(other_place),
    ])
    .state;
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.reported_category.as_deref(), Some("drainage"));
    assert_eq!(state.version, 3);
}

#[test]
fn a_log_that_starts_mid_way_still_folds_to_what_it_says() {
    let state = given(vec![dispatched_to(WANG), acknowledged_by(WANG)]).state;
    assert_eq!(state.status, CaseStatus::Acknowledged);
    assert_eq!(state.case_id, Some(case_id()));
    assert_eq!(state.location, Some(location()));
    assert_eq!(state.assignee.as_deref(), Some(WANG));
}
