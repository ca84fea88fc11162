//! 督办 after the district, as business rules: when the district lets a step run past its own
//! limit, the escalation ladder ends in a request for supervision by the district's
//! leadership as the grid names it — once per breach, only at the district, the case staying
//! with its holder on its clock.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;
use wangge_domain::escalation::command_for_timer;
use wangge_domain::fold::CaseSummary;
use wangge_domain::grid::{
    check_against, parse_grid_command, CategoryCatalogue, DistrictSupervision,
    DistrictSupervisionChanged, GridEvent, GridState,
};
use wangge_domain::routing::WorkerLoad;
use wangge_domain::sla::{DueTimer, EscalationAction, TimerKind};
use wangge_domain::tasks::tasks_for_commit;
use wangge_domain::{
    apply, decide, stamp, CaseCommand, CaseState, CaseStatus, DomainError, EventMeta, SlaRecordKind,
};
use wangge_schemas::worker::TaskKind;
use wangge_schemas::{
    Actor, CaseAccepted, CaseDispatched, CaseEscalated, CaseEvent, CaseId, CaseReported, Channel,
    EventEnvelope, GridLocation, Priority, ReportDetails, Resident, SlaBreached, SlaStep, Source,
    Tier,
};

/// 翠苑街道, its 学院公寓社区 and 2栋, in the sample city.
const DISTRICT: &str = "330106001";
const COMMUNITY: &str = "330106001001";
const BUILDING: &str = "330106001001001";
const UTILITIES: &str = "ds-330106001-utilities";
const HOUSING: &str = "ds-330106001-housing";
const SAMPLE_UNIT: &str = "翠苑街道党工委督查督办室";

fn dispatched_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

/// The acknowledge deadline the timers say was breached.
fn deadline() -> DateTime<Utc> {
    dispatched_at() + Duration::hours(2)
}

fn location() -> GridLocation {
    GridLocation {
        district: DISTRICT.to_owned(),
        community: COMMUNITY.to_owned(),
        building: BUILDING.to_owned(),
    }
}

fn case_id() -> CaseId {
    CaseId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0009))
}

/// A case's log, built one event (one message) at a time.
struct Case {
    events: Vec<EventEnvelope>,
    state: CaseState,
}

impl Case {
    fn reported(category: &str) -> Self {
        let mut case = Self {
            events: Vec::new(),
            state: CaseState::default(),
        };
        case.record(
            CaseEvent::Reported(CaseReported {
                intake_clock: None,
                title: "12栋3单元1-6门口下水道堵塞".into(),
                description: "12栋3单元1-6门口下水道堵塞".into(),
                reported_category: category.into(),
                media: Vec::new(),
                coordinates: None,
                details: ReportDetails::ResidentReport {
                    channel: Channel::Hotline12345,
                    resident: Resident {
                        id: "r-1".into(),
                        contact: None,
                        legacy_contact: None,
                    },
                },
            }),
            dispatched_at() - Duration::minutes(5),
        );
        case.record(
            CaseEvent::Accepted(CaseAccepted {
                category: category.into(),
                priority: Priority::High,
            }),
            dispatched_at() - Duration::minutes(5),
        );
        case
    }

    /// Reported, accepted and dispatched to `assignee` at the district.
    fn at_the_district(category: &str, assignee: &str) -> Self {
        let mut case = Self::reported(category);
        case.record(
            CaseEvent::Escalated(CaseEscalated {
                from_tier: Tier::Community,
                to_tier: Tier::District,
                cell: DISTRICT.into(),
                reason: "acknowledgement overdue".into(),
            }),
            dispatched_at() - Duration::minutes(1),
        );
        case.record(
            CaseEvent::Dispatched(CaseDispatched {
                tier: Tier::District,
                cell: DISTRICT.into(),
                assignee: assignee.into(),
            }),
            dispatched_at(),
        );
        case
    }

    fn record(&mut self, event: CaseEvent, at: DateTime<Utc>) {
        let message = self.events.len();
        let meta = EventMeta {
            actor: Actor::system("test"),
            source: Source {
                system: "test".into(),
                message_id: format!("m-{message}"),
            },
            correlation_id: Uuid::from_u128(7),
            causation_id: None,
            occurred_at: at,
            recorded_at: at,
        };
        let mut next = message as u128 * 16;
        let ids = move || {
            next += 1;
            Uuid::from_u128(next)
        };
        for envelope in stamp(&self.state, case_id(), &location(), vec![event], &meta, ids) {
            self.state = apply(std::mem::take(&mut self.state), &envelope);
            self.events.push(envelope);
        }
    }

    /// Decides `command` at `now` and records what it decided.
    fn run(&mut self, command: &CaseCommand, now: DateTime<Utc>) -> Result<(), DomainError> {
        for event in decide(&self.state, command, now)? {
            self.record(event, now);
        }
        Ok(())
    }

    fn breached(&mut self, step: SlaStep, deadline: DateTime<Utc>) {
        self.record(
            CaseEvent::SlaBreached(SlaBreached { step, deadline }),
            deadline,
        );
    }

    fn supervision_requests(&self) -> Vec<&wangge_schemas::SupervisionRequested> {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                CaseEvent::SupervisionRequested(requested) => Some(requested),
                _ => None,
            })
            .collect()
    }
}

fn rung(level: u32, action: EscalationAction, deadline: DateTime<Utc>) -> DueTimer {
    DueTimer {
        at: deadline + Duration::hours(i64::from(level)),
        step: SlaStep::Acknowledge,
        deadline,
        kind: TimerKind::Escalation { level, action },
    }
}

fn choose(case: &Case, timer: &DueTimer, grid: &GridState) -> Option<CaseCommand> {
    command_for_timer(
        timer,
        case.state.version,
        &case.events,
        grid,
        &CategoryCatalogue::sample(),
        &WorkerLoad::new(),
    )
}

fn leadership(unit: &str, leaders: &[&str]) -> GridEvent {
    GridEvent::DistrictSupervisionChanged(DistrictSupervisionChanged {
        district: DISTRICT.into(),
        supervision: DistrictSupervision {
            unit: unit.into(),
            leaders: leaders.iter().map(|l| l.to_string()).collect(),
            contact: None,
        },
    })
}

// ---------------------------------------------------------------------------------------
// The ladder ends in supervision
// ---------------------------------------------------------------------------------------

#[test]
fn the_escalate_tier_rung_at_the_district_refers_the_case_to_the_districts_leadership() {
    let grid = GridState::sample_city();
    let mut case = Case::at_the_district("drainage.blocked", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());
    let timer = rung(2, EscalationAction::EscalateTier, deadline());

    let command = choose(&case, &timer, &grid).expect("the top of the ladder does something");
    let CaseCommand::RequestSupervision {
        district,
        cell,
        unit,
        leaders,
        step,
        overdue_since,
        reason,
        ..
    } = &command
    else {
        panic!("expected a request for supervision, got {command:?}");
    };
    assert_eq!((district.as_str(), cell.as_str()), (DISTRICT, DISTRICT));
    assert_eq!(unit.as_deref(), Some(SAMPLE_UNIT));
    assert_eq!(leaders, &["lead-330106001-1", "lead-330106001-2"]);
    assert_eq!((*step, *overdue_since), (SlaStep::Acknowledge, deadline()));
    assert!(reason.contains(SAMPLE_UNIT), "{reason}");

    let before = case.state.clone();
    case.run(&command, timer.at).expect("the case accepts it");
    let requested = case.supervision_requests();
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].assignee.as_deref(), Some(UTILITIES));
    // Oversight, not a transfer: the district still handles the case.
    assert_eq!(case.state.status, CaseStatus::Dispatched);
    assert_eq!(case.state.assignee, before.assignee);
    assert_eq!(
        (case.state.tier, case.state.cell.clone()),
        (before.tier, before.cell)
    );
}

#[test]
fn the_reassign_rung_at_the_district_hands_over_in_the_cell_first_then_asks_for_supervision() {
    let grid = GridState::sample_city();
    let mut case = Case::at_the_district("drainage.blocked", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());
    let first = rung(1, EscalationAction::ReassignInCell, deadline());

    // Housing handles drains too: someone else in the district cell can take it.
    let command = choose(&case, &first, &grid).unwrap();
    assert!(
        matches!(&command, CaseCommand::Reassign { to_worker, tier: Tier::District, .. } if to_worker == HOUSING),
        "{command:?}"
    );
    case.run(&command, first.at).unwrap();

    // Housing lets it run out too: nobody else in the cell has not had it.
    let second_deadline = first.at + Duration::hours(2);
    case.breached(SlaStep::Acknowledge, second_deadline);
    let again = rung(1, EscalationAction::ReassignInCell, second_deadline);
    let command = choose(&case, &again, &grid).unwrap();
    assert!(
        matches!(&command, CaseCommand::RequestSupervision { overdue_since, .. } if *overdue_since == second_deadline),
        "{command:?}"
    );
    case.run(&command, again.at).unwrap();
    assert_eq!(case.state.assignee.as_deref(), Some(HOUSING));
}

#[test]
fn a_district_that_names_no_supervision_refers_the_case_to_its_duty_leader() {
    let mut file: wangge_schemas::grid::GridFile =
        serde_json::from_str(wangge_domain::grid::SAMPLE_CITY_JSON).unwrap();
    for district in &mut file.districts {
        district.supervision = None;
    }
    let grid = GridState::from_file(&file).unwrap();
    let mut case = Case::at_the_district("drainage.blocked", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());

    let command = choose(
        &case,
        &rung(2, EscalationAction::EscalateTier, deadline()),
        &grid,
    );
    assert!(
        matches!(&command, Some(CaseCommand::RequestSupervision { unit: None, leaders, .. }) if leaders == &["sup-330106001"]),
        "{command:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Once per breach, only at the district
// ---------------------------------------------------------------------------------------

#[test]
fn supervision_is_requested_once_per_breach_and_the_rest_of_the_ladder_is_settled() {
    let grid = GridState::sample_city();
    let mut case = Case::at_the_district("facility.manhole_cover", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());
    let first = rung(1, EscalationAction::ReassignInCell, deadline());
    let command = choose(&case, &first, &grid).unwrap();
    assert!(matches!(command, CaseCommand::RequestSupervision { .. }));
    case.run(&command, first.at).unwrap();

    // The same timer again, and the next rung of the same breach: nothing more to do.
    assert_eq!(choose(&case, &first, &grid), None);
    let second = rung(2, EscalationAction::EscalateTier, deadline());
    assert_eq!(choose(&case, &second, &grid), None);
    // A retry of the command itself is refused as already recorded.
    assert_eq!(
        case.run(&command, second.at),
        Err(DomainError::AlreadyRecorded {
            kind: SlaRecordKind::Supervision,
            step: SlaStep::Acknowledge,
            deadline: deadline(),
        })
    );
    assert_eq!(case.supervision_requests().len(), 1);

    // A new deadline of the step that runs out again is a new breach, referred again.
    let later = deadline() + Duration::days(1);
    case.breached(SlaStep::Acknowledge, later);
    let command = choose(
        &case,
        &rung(1, EscalationAction::ReassignInCell, later),
        &grid,
    )
    .unwrap();
    case.run(&command, later + Duration::hours(1)).unwrap();
    assert_eq!(case.supervision_requests().len(), 2);
}

#[test]
fn below_the_district_the_ladder_escalates_a_tier_and_supervision_is_refused() {
    let grid = GridState::sample_city();
    let mut case = Case::reported("drainage.blocked");
    case.record(
        CaseEvent::Dispatched(CaseDispatched {
            tier: Tier::Community,
            cell: COMMUNITY.into(),
            assignee: "cs-330106001001-1".into(),
        }),
        dispatched_at(),
    );
    case.breached(SlaStep::Acknowledge, deadline());
    let timer = rung(2, EscalationAction::EscalateTier, deadline());
    assert!(matches!(
        choose(&case, &timer, &grid),
        Some(CaseCommand::Escalate {
            to_tier: Tier::District,
            ..
        })
    ));

    let asked = CaseCommand::RequestSupervision {
        district: DISTRICT.into(),
        cell: COMMUNITY.into(),
        unit: Some(SAMPLE_UNIT.into()),
        leaders: vec!["lead-330106001-1".into()],
        contact: None,
        step: SlaStep::Acknowledge,
        overdue_since: deadline(),
        reason: "acknowledgement overdue".into(),
    };
    assert_eq!(
        case.run(&asked, timer.at),
        Err(DomainError::NotAtDistrict {
            tier: Some(Tier::Community)
        })
    );
}

#[test]
fn supervision_needs_a_leader_and_a_deadline_that_has_passed() {
    let mut case = Case::at_the_district("drainage.blocked", UTILITIES);
    let asked = |leaders: Vec<String>| CaseCommand::RequestSupervision {
        district: DISTRICT.into(),
        cell: DISTRICT.into(),
        unit: Some(SAMPLE_UNIT.into()),
        leaders,
        contact: None,
        step: SlaStep::Acknowledge,
        overdue_since: deadline(),
        reason: "acknowledgement overdue".into(),
    };
    assert!(matches!(
        case.run(&asked(Vec::new()), deadline()),
        Err(DomainError::InvalidField {
            field: "leaders",
            ..
        })
    ));
    assert!(matches!(
        case.run(
            &asked(vec!["lead-330106001-1".into()]),
            deadline() - Duration::minutes(1)
        ),
        Err(DomainError::BreachBeforeDeadline { .. })
    ));
    assert!(case.supervision_requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// The leadership as of the event; the clock and the holder's inbox
// ---------------------------------------------------------------------------------------

#[test]
fn a_later_change_of_leadership_does_not_rewrite_who_was_asked() {
    let mut grid = GridState::sample_city();
    let mut case = Case::at_the_district("facility.manhole_cover", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());
    let timer = rung(1, EscalationAction::ReassignInCell, deadline());
    case.run(&choose(&case, &timer, &grid).unwrap(), timer.at)
        .unwrap();

    grid.apply(&leadership("区委督查室", &["lead-du-hong"]))
        .expect("a district may rename its supervision");
    let mut summary = CaseSummary::new(case_id(), location());
    for (position, event) in case.events.iter().enumerate() {
        summary.apply(event, position as u64 + 1);
    }
    let supervision = summary.supervision.clone().expect("shown as supervised");
    assert_eq!(supervision.unit.as_deref(), Some(SAMPLE_UNIT));
    assert_eq!(supervision.since, timer.at);
    assert_eq!(supervision.requests, 1);

    // The next breach is referred to the leadership named by then.
    let later = deadline() + Duration::days(1);
    case.breached(SlaStep::Acknowledge, later);
    let command = choose(
        &case,
        &rung(1, EscalationAction::ReassignInCell, later),
        &grid,
    )
    .unwrap();
    assert!(
        matches!(&command, CaseCommand::RequestSupervision { unit: Some(unit), leaders, .. } if unit == "区委督查室" && leaders == &["lead-du-hong"]),
        "{command:?}"
    );
    assert_eq!(
        case.supervision_requests()[0].unit.as_deref(),
        Some(SAMPLE_UNIT)
    );
}

#[test]
fn supervision_leaves_the_sla_clock_as_it_was_and_tells_the_holder() {
    let grid = GridState::sample_city();
    let mut case = Case::at_the_district("facility.manhole_cover", UTILITIES);
    case.breached(SlaStep::Acknowledge, deadline());
    let before = case.state.sla.clone();
    let earlier = case.events.clone();
    let timer = rung(1, EscalationAction::ReassignInCell, deadline());
    case.run(&choose(&case, &timer, &grid).unwrap(), timer.at)
        .unwrap();

    let mut after = case.state.sla.clone();
    // Only the instant of the latest event moved.
    after.last_event_at = before.last_event_at;
    assert_eq!(after, before);

    let tasks = tasks_for_commit(&earlier, &case.events[earlier.len()..]);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].worker_id, UTILITIES);
    assert_eq!(tasks[0].message.kind, TaskKind::Supervised);
    assert!(tasks[0]
        .message
        .reason
        .as_deref()
        .is_some_and(|r| r.contains(SAMPLE_UNIT)));
}

// ---------------------------------------------------------------------------------------
// The grid: only districts name supervision, and bad input names its field
// ---------------------------------------------------------------------------------------

fn grid_command(payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_type": "grid.district_supervision_changed",
        "schema_version": 1,
        "source": {"system": "grid-admin", "message_id": "s-1"},
        "actor": {"kind": "supervisor", "id": "admin-chen"},
        "payload": payload,
    }))
    .unwrap()
}

/// The refusal of a grid command, checked as the engine checks it: `(code, field)`.
fn refusal(payload: serde_json::Value) -> (&'static str, Option<String>, String) {
    let grid = GridState::sample_city();
    let rejection = parse_grid_command(&grid_command(payload))
        .and_then(|command| check_against(&command, &grid).map(|()| command))
        .expect_err("the command is refused");
    (rejection.code, rejection.field, rejection.reason)
}

#[test]
fn a_grid_command_names_a_districts_supervision_and_the_grid_keeps_it() {
    let mut grid = GridState::sample_city();
    let command = parse_grid_command(&grid_command(serde_json::json!({
        "district": "330106002",
        "supervision": {"unit": "区网格化服务管理中心", "leaders": ["lead-zhou"], "contact": "12345"}
    })))
    .expect("well formed");
    check_against(&command, &grid).expect("the grid accepts it");
    grid.apply(&command.event).unwrap();
    let named = grid.supervision_of("330106002").unwrap();
    assert_eq!(named.unit, "区网格化服务管理中心");
    assert_eq!(named.leaders, vec!["lead-zhou"]);
}

#[test]
fn supervision_on_a_community_is_refused_naming_the_district_field() {
    let (code, field, reason) = refusal(serde_json::json!({
        "district": COMMUNITY,
        "supervision": {"unit": "社区督查", "leaders": ["lead-1"]}
    }));
    assert_eq!(
        (code, field.as_deref()),
        ("invalid_value", Some("payload.district"))
    );
    assert!(reason.contains("only a district"), "{reason}");
}

#[test]
fn bad_supervision_input_is_refused_naming_the_field() {
    let cases = [
        (
            serde_json::json!({"district": DISTRICT, "supervision": {"unit": " ", "leaders": ["lead-1"]}}),
            "empty_text",
            "payload.supervision.unit",
        ),
        (
            serde_json::json!({"district": DISTRICT, "supervision": {"unit": "督查室", "leaders": []}}),
            "invalid_value",
            "payload.supervision.leaders",
        ),
        (
            serde_json::json!({"district": DISTRICT, "supervision": {"unit": "督查室", "leaders": ["lead-1", "杜 红"]}}),
            "invalid_id",
            "payload.supervision.leaders[1]",
        ),
        (
            serde_json::json!({"district": DISTRICT, "supervision": {"unit": "督查室", "leaders": ["lead-1", "lead-1"]}}),
            "invalid_value",
            "payload.supervision.leaders[1]",
        ),
        (
            serde_json::json!({"district": "330106099", "supervision": {"unit": "督查室", "leaders": ["lead-1"]}}),
            "unknown_cell",
            "payload.district",
        ),
        (
            serde_json::json!({"district": DISTRICT, "supervision": {"unit": "督查室", "leaders": ["lead-1"], "phone": "1"}}),
            "unknown_field",
            "payload.supervision.phone",
        ),
    ];
    for (payload, code, field) in cases {
        let (got_code, got_field, reason) = refusal(payload.clone());
        assert_eq!(
            (got_code, got_field.as_deref()),
            (code, Some(field)),
            "{payload}: {reason}"
        );
    }
}

#[test]
fn a_grid_file_with_supervision_on_a_community_is_refused_naming_the_field() {
    let mut file: serde_json::Value =
        serde_json::from_str(wangge_domain::grid::SAMPLE_CITY_JSON).unwrap();
    file["districts"][0]["communities"][0]["supervision"] =
        serde_json::json!({"unit": "社区督查", "leaders": ["lead-1"]});
    let error = GridState::from_json(&file.to_string(), "city.json").unwrap_err();
    assert!(
        error.to_string().contains("unknown field `supervision`"),
        "{error}"
    );

    let mut file: serde_json::Value =
        serde_json::from_str(wangge_domain::grid::SAMPLE_CITY_JSON).unwrap();
    file["districts"][1]["supervision"]["unit"] = serde_json::json!("");
    let error = GridState::from_json(&file.to_string(), "city.json").unwrap_err();
    assert_eq!(
        error.to_string(),
        "city.json: district 330106002 names supervision with an empty unit"
    );
}
