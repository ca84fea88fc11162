//! SLA clocks of a case as a pure function of its events: the business rules as sentences
//! on the real 2026 calendar and the bundled policies, then invariants over random
//! histories, random policies and random calendars.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;
use wangge_engine::domain::sla::{
    sla_clocks, BusinessCalendar, CalendarSet, CalendarSpec, EscalationAction, EscalationLevel,
    HolidaySpec, MakeUpDaySpec, PolicySet, SlaClock, SlaFacts, SlaPolicy, SlaState, StepClock,
    StepTargets, Terms, TimerKind, TrafficLight, UtcOffset, WeekSchedule, WorkingInterval,
};
use wangge_engine::domain::{decide, replay, stamp, EventMeta};
use wangge_schemas::{
    Actor, CaseAccepted, CaseAcknowledged, CaseClosed, CaseDeclined, CaseDispatched, CaseEscalated,
    CaseEvaluated, CaseEvent, CaseId, CaseMerged, CaseReassigned, CaseRejected, CaseReopened,
    CaseReported, CaseResolved, CaseResumed, CaseSuspended, CaseVerified, CaseVoided, Channel,
    ClosureKind, CommentAdded, EventEnvelope, ExtensionGranted, GridLocation, HandlingStarted,
    Priority, ReportDetails, Resident, ReworkRequested, SlaBreached, SlaStep, SlaWarning, Source,
    SuspendReason, Tier, TimeLimit, TimeUnit,
};

// ---------------------------------------------------------------------------------------
// A case as a list of (when, what)
// ---------------------------------------------------------------------------------------

fn beijing(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    UtcOffset::CHINA
        .fixed_offset()
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("a valid Beijing time")
        .with_timezone(&Utc)
}

fn location() -> GridLocation {
    GridLocation {
        district: "110101001".to_owned(),
        community: "110101001002".to_owned(),
        building: "110101001002007".to_owned(),
    }
}

fn case_id() -> CaseId {
    CaseId(Uuid::from_u128(7))
}

fn envelope(sequence: u64, occurred_at: DateTime<Utc>, event: CaseEvent) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::from_u128(u128::from(sequence)),
        schema_version: event.schema_version(),
        event,
        case_id: case_id(),
        sequence,
        occurred_at,
        recorded_at: occurred_at,
        actor: Actor::system("test"),
        source: Source {
            system: "test".to_owned(),
            message_id: format!("message-{sequence}"),
        },
        correlation_id: Uuid::from_u128(1),
        causation_id: None,
        location: location(),
        sla_clock: None,
    }
}

fn history(facts: &[(DateTime<Utc>, CaseEvent)]) -> Vec<EventEnvelope> {
    facts
        .iter()
        .zip(1..)
        .map(|((at, event), sequence)| envelope(sequence, *at, event.clone()))
        .collect()
}

fn reported() -> CaseEvent {
    CaseEvent::Reported(CaseReported {
        intake_clock: None,
        title: "新起点A区路灯不亮".to_owned(),
        description: "street lights out in block A".to_owned(),
        reported_category: "lighting.street_light_out".to_owned(),
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
    })
}

fn accepted(priority: Priority) -> CaseEvent {
    CaseEvent::Accepted(CaseAccepted {
        category: "lighting.street_light_out".to_owned(),
        priority,
    })
}

fn dispatched(worker: &str) -> CaseEvent {
    CaseEvent::Dispatched(CaseDispatched {
        tier: Tier::Community,
        cell: "110101001002".to_owned(),
        assignee: worker.to_owned(),
    })
}

fn reassigned(worker: &str) -> CaseEvent {
    CaseEvent::Reassigned(CaseReassigned {
        from_worker: None,
        to_worker: worker.to_owned(),
        tier: Tier::Community,
        cell: "110101001002".to_owned(),
        reason: "on leave".to_owned(),
    })
}

fn declined() -> CaseEvent {
    CaseEvent::Declined(CaseDeclined {
        worker_id: "wang".to_owned(),
        reason: "not my cell".to_owned(),
    })
}

fn acknowledged() -> CaseEvent {
    CaseEvent::Acknowledged(CaseAcknowledged {
        worker_id: "wang".to_owned(),
    })
}

fn handling_started() -> CaseEvent {
    CaseEvent::HandlingStarted(HandlingStarted {
        worker_id: "wang".to_owned(),
    })
}

fn suspended(reason: SuspendReason) -> CaseEvent {
    CaseEvent::Suspended(CaseSuspended { reason, note: None })
}

fn resumed() -> CaseEvent {
    CaseEvent::Resumed(CaseResumed { note: None })
}

fn extension(step: SlaStep, extension: TimeLimit) -> CaseEvent {
    CaseEvent::ExtensionGranted(ExtensionGranted {
        step,
        extension,
        reason: "parts on order".to_owned(),
    })
}

fn resolved() -> CaseEvent {
    CaseEvent::Resolved(CaseResolved {
        worker_id: "wang".to_owned(),
        notes: "lamp replaced".to_owned(),
        media: Vec::new(),
    })
}

fn verified() -> CaseEvent {
    CaseEvent::Verified(CaseVerified {
        verifier: "li".to_owned(),
        notes: None,
    })
}

fn rework() -> CaseEvent {
    CaseEvent::ReworkRequested(ReworkRequested {
        verifier: "li".to_owned(),
        reason: "still dark".to_owned(),
    })
}

fn closed() -> CaseEvent {
    CaseEvent::Closed(CaseClosed {
        closure: ClosureKind::Verified,
    })
}

fn reopened() -> CaseEvent {
    CaseEvent::Reopened(CaseReopened {
        reason: "dark again".to_owned(),
    })
}

fn escalated() -> CaseEvent {
    CaseEvent::Escalated(CaseEscalated {
        from_tier: Tier::Community,
        to_tier: Tier::District,
        cell: "110101001".to_owned(),
        reason: "not handled in time".to_owned(),
    })
}

fn voided() -> CaseEvent {
    CaseEvent::Voided(CaseVoided {
        reason: "test report".to_owned(),
    })
}

fn warning_recorded(step: SlaStep, deadline: DateTime<Utc>) -> CaseEvent {
    CaseEvent::SlaWarning(SlaWarning {
        step,
        deadline,
        threshold_percent: 80,
    })
}

fn breach_recorded(step: SlaStep, deadline: DateTime<Utc>) -> CaseEvent {
    CaseEvent::SlaBreached(SlaBreached { step, deadline })
}

fn clock_minutes(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::ClockMinutes,
    }
}

fn working_minutes(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::WorkingMinutes,
    }
}

fn working_hours(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::WorkingHours,
    }
}

fn working_days(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::WorkingDays,
    }
}

fn national() -> BusinessCalendar {
    CalendarSet::bundled().default_calendar().clone()
}

fn policy(name: &str) -> SlaPolicy {
    PolicySet::bundled()
        .get(name)
        .unwrap_or_else(|| panic!("bundled policy {name}"))
        .clone()
}

/// The one running clock after `facts` under a bundled policy and the national calendar.
fn clock(policy_name: &str, facts: &[(DateTime<Utc>, CaseEvent)]) -> StepClock {
    let mut clocks = sla_clocks(&history(facts), &policy(policy_name), &national());
    assert_eq!(clocks.len(), 1, "exactly one clock runs: {clocks:?}");
    clocks.remove(0)
}

/// A case accepted with `priority`, dispatched and acknowledged at `acknowledged_at`.
fn acknowledged_case(
    priority: Priority,
    acknowledged_at: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, CaseEvent)> {
    vec![
        (acknowledged_at - Duration::minutes(30), reported()),
        (acknowledged_at - Duration::minutes(20), accepted(priority)),
        (acknowledged_at - Duration::minutes(10), dispatched("wang")),
        (acknowledged_at, acknowledged()),
    ]
}

// ---------------------------------------------------------------------------------------
// Which clock runs
// ---------------------------------------------------------------------------------------

#[test]
fn the_accept_clock_starts_at_the_report_and_counts_working_minutes() {
    // Thirty working minutes from 22:00 on Tuesday: from 08:30 on Wednesday.
    let late_evening = beijing(2026, 3, 10, 22, 0);
    let accept = clock("standard", &[(late_evening, reported())]);
    assert_eq!(accept.step, SlaStep::Accept);
    assert_eq!(accept.measure, SlaClock::Business);
    assert_eq!(accept.deadline, Some(beijing(2026, 3, 11, 9, 0)));
    assert_eq!(accept.warning_at, Some(beijing(2026, 3, 11, 8, 54)));
}

#[test]
fn an_urgent_case_must_be_dispatched_within_ten_minutes_of_acceptance() {
    let dispatch = clock(
        "standard",
        &[
            (beijing(2026, 3, 10, 9, 0), reported()),
            (beijing(2026, 3, 10, 9, 5), accepted(Priority::Urgent)),
        ],
    );
    assert_eq!(dispatch.step, SlaStep::Dispatch);
    assert_eq!(dispatch.deadline, Some(beijing(2026, 3, 10, 9, 15)));
}

#[test]
fn acknowledgement_is_due_within_two_working_hours_of_dispatch() {
    let acknowledge = clock(
        "standard",
        &[
            (beijing(2026, 3, 6, 16, 0), reported()),
            (beijing(2026, 3, 6, 16, 10), accepted(Priority::Normal)),
            (beijing(2026, 3, 6, 16, 30), dispatched("wang")),
        ],
    );
    assert_eq!(acknowledge.step, SlaStep::Acknowledge);
    assert_eq!(acknowledge.measure, SlaClock::Business);
    assert_eq!(acknowledge.deadline, Some(beijing(2026, 3, 9, 9, 30)));
}

#[test]
fn each_reassignment_restarts_the_acknowledge_clock() {
    let acknowledge = clock(
        "standard",
        &[
            (beijing(2026, 3, 10, 8, 40), reported()),
            (beijing(2026, 3, 10, 8, 50), accepted(Priority::Normal)),
            (beijing(2026, 3, 10, 9, 0), dispatched("wang")),
            (beijing(2026, 3, 10, 10, 30), reassigned("zhang")),
        ],
    );
    assert_eq!(acknowledge.started_at, beijing(2026, 3, 10, 10, 30));
    // 10:30–12:00 and 13:30–14:00.
    assert_eq!(acknowledge.deadline, Some(beijing(2026, 3, 10, 14, 0)));
}

#[test]
fn a_declined_or_escalated_task_waits_for_dispatch_again() {
    let base = [
        (beijing(2026, 3, 10, 8, 40), reported()),
        (beijing(2026, 3, 10, 8, 50), accepted(Priority::Normal)),
        (beijing(2026, 3, 10, 9, 0), dispatched("wang")),
    ];
    for event in [declined(), escalated()] {
        let mut facts = base.to_vec();
        facts.push((beijing(2026, 3, 10, 9, 20), event));
        let dispatch = clock("standard", &facts);
        assert_eq!(dispatch.step, SlaStep::Dispatch);
        assert_eq!(dispatch.deadline, Some(beijing(2026, 3, 10, 9, 50)));
    }
}

#[test]
fn the_resolve_limit_follows_the_priority() {
    let acknowledged_at = beijing(2026, 3, 10, 10, 0);
    let expectations = [
        (Priority::Urgent, beijing(2026, 3, 10, 15, 30)),
        (Priority::High, beijing(2026, 3, 11, 17, 30)),
        (Priority::Normal, beijing(2026, 3, 17, 17, 30)),
        // Mar 11–13, 16–20, 23–27 and 30–31.
        (Priority::Low, beijing(2026, 3, 31, 17, 30)),
    ];
    for (priority, deadline) in expectations {
        let resolve = clock("standard", &acknowledged_case(priority, acknowledged_at));
        assert_eq!(resolve.step, SlaStep::Resolve);
        assert_eq!(resolve.deadline, Some(deadline), "{priority:?}");
    }
}

#[test]
fn resolving_starts_at_handling_when_the_worker_never_acknowledged() {
    let resolve = clock(
        "standard",
        &[
            (beijing(2026, 3, 10, 8, 40), reported()),
            (beijing(2026, 3, 10, 8, 50), accepted(Priority::Urgent)),
            (beijing(2026, 3, 10, 9, 0), dispatched("wang")),
            (beijing(2026, 3, 10, 9, 30), handling_started()),
        ],
    );
    assert_eq!(resolve.started_at, beijing(2026, 3, 10, 9, 30));
    // Handling after an acknowledgement does not restart the clock.
    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 3, 10, 9, 0));
    facts.push((beijing(2026, 3, 10, 11, 0), handling_started()));
    assert_eq!(
        clock("standard", &facts).started_at,
        beijing(2026, 3, 10, 9, 0)
    );
}

#[test]
fn rework_restarts_the_resolve_clock_and_verification_has_its_own() {
    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 3, 10, 9, 0));
    facts.push((beijing(2026, 3, 10, 11, 0), resolved()));
    let verify = clock("standard", &facts);
    assert_eq!(verify.step, SlaStep::Verify);
    // On-site verification within one working hour (the brief's urban limit).
    assert_eq!(verify.deadline, Some(beijing(2026, 3, 10, 12, 0)));

    facts.push((beijing(2026, 3, 10, 15, 0), rework()));
    let resolve = clock("standard", &facts);
    assert_eq!(resolve.step, SlaStep::Resolve);
    assert_eq!(resolve.started_at, beijing(2026, 3, 10, 15, 0));
    // 15:00–17:30, then 08:30–10:00 the next day.
    assert_eq!(resolve.deadline, Some(beijing(2026, 3, 11, 10, 0)));
}

#[test]
fn verification_after_national_day_eve_is_due_after_the_holiday() {
    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 9, 30, 9, 0));
    facts.push((beijing(2026, 9, 30, 17, 0), resolved()));
    // Half an hour left on the eve, the other half on the first working day after.
    assert_eq!(
        clock("standard", &facts).deadline,
        Some(beijing(2026, 10, 8, 9, 0))
    );
}

#[test]
fn terminal_events_stop_every_clock_and_a_reopening_starts_dispatch_again() {
    let calendar = national();
    let standard = policy("standard");
    let voided_case = history(&[
        (beijing(2026, 3, 10, 9, 0), reported()),
        (beijing(2026, 3, 10, 9, 5), voided()),
    ]);
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &voided_case);
    assert!(state.current().into_iter().collect::<Vec<_>>().is_empty());
    assert!(state.due().is_empty());
    assert_eq!(state.finished().len(), 1);
    assert!(state.finished()[0].on_time());

    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 3, 10, 9, 0));
    facts.push((beijing(2026, 3, 10, 11, 0), resolved()));
    facts.push((beijing(2026, 3, 10, 14, 0), verified()));
    facts.push((beijing(2026, 3, 10, 14, 0), closed()));
    let closed_case = history(&facts);
    assert!(sla_clocks(&closed_case, &standard, &calendar).is_empty());

    facts.push((beijing(2026, 3, 12, 10, 0), reopened()));
    let dispatch = clock("standard", &facts);
    assert_eq!(dispatch.step, SlaStep::Dispatch);
    assert_eq!(dispatch.started_at, beijing(2026, 3, 12, 10, 0));
}

#[test]
fn finished_steps_say_whether_they_were_on_time() {
    let calendar = national();
    let standard = policy("standard");
    let events = history(&[
        (beijing(2026, 3, 10, 9, 0), reported()),
        (beijing(2026, 3, 10, 9, 20), accepted(Priority::Normal)),
        (beijing(2026, 3, 10, 10, 0), dispatched("wang")),
        (beijing(2026, 3, 10, 15, 0), acknowledged()),
    ]);
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &events);
    let outcomes: Vec<(SlaStep, bool)> = state
        .finished()
        .iter()
        .map(|step| (step.step, step.on_time()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (SlaStep::Accept, true),
            (SlaStep::Dispatch, false),
            (SlaStep::Acknowledge, false)
        ]
    );
    let acknowledge = &state.finished()[2];
    // Two working hours from 10:00 end at 12:00; acknowledged at 15:00.
    assert_eq!(acknowledge.deadline, Some(beijing(2026, 3, 10, 12, 0)));
}

#[test]
fn a_step_finished_after_hours_past_its_deadline_is_late_though_it_used_only_its_budget() {
    let calendar = national();
    let standard = policy("standard");
    // Acknowledged at 15:30 on Tuesday: two working hours end at 17:30 (the end of the day).
    let events = history(&[
        (beijing(2026, 3, 10, 15, 0), reported()),
        (beijing(2026, 3, 10, 15, 10), accepted(Priority::Normal)),
        (beijing(2026, 3, 10, 15, 30), dispatched("wang")),
        (beijing(2026, 3, 10, 19, 0), acknowledged()),
    ]);
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &events);
    let acknowledge = state
        .finished()
        .iter()
        .find(|step| step.step == SlaStep::Acknowledge)
        .expect("the acknowledge step finished");
    assert_eq!(acknowledge.deadline, Some(beijing(2026, 3, 10, 17, 30)));
    assert!(!acknowledge.on_time());
}

// ---------------------------------------------------------------------------------------
// Suspension and extension
// ---------------------------------------------------------------------------------------

#[test]
fn suspension_pauses_the_clock() {
    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 3, 9, 9, 0));
    facts.push((beijing(2026, 3, 9, 9, 30), handling_started()));
    // Without the pause: 09:00 + 4 working hours = 14:30.
    assert_eq!(
        clock("standard", &facts).deadline,
        Some(beijing(2026, 3, 9, 14, 30))
    );

    facts.push((
        beijing(2026, 3, 9, 10, 0),
        suspended(SuspendReason::WaitingForResident),
    ));
    let waiting = clock("standard", &facts);
    assert_eq!(waiting.deadline, None);
    assert_eq!(waiting.suspended_since, Some(beijing(2026, 3, 9, 10, 0)));
    assert_eq!(waiting.remaining, Some(Duration::hours(3)));
    let calendar = national();
    let standard = policy("standard");
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &history(&facts));
    assert!(state.is_suspended());
    assert!(state.due().is_empty(), "nothing is due while suspended");

    // Resumed at 14:00: the three hours left run 14:00–17:00.
    facts.push((beijing(2026, 3, 9, 14, 0), resumed()));
    let resumed_clock = clock("standard", &facts);
    assert_eq!(resumed_clock.deadline, Some(beijing(2026, 3, 9, 17, 0)));
    assert_eq!(resumed_clock.remaining, None);
}

#[test]
fn a_parked_case_stands_still_over_the_spring_festival() {
    let mut facts = acknowledged_case(Priority::Normal, beijing(2026, 2, 10, 9, 0));
    facts.push((beijing(2026, 2, 10, 10, 0), handling_started()));
    facts.push((
        beijing(2026, 2, 11, 8, 30),
        suspended(SuspendReason::Parked),
    ));
    facts.push((beijing(2026, 3, 2, 8, 30), resumed()));
    // Budget: to the end of business on Feb 24 (Feb 11, 12, 13, 14 make-up, 24) from
    // Feb 10 09:00: 7 + 5 × 7.5 = 44.5 working hours. Used before parking: 7 hours.
    // The remaining 37.5 hours are five working days from Mon Mar 2 08:30.
    let resolve = clock("standard", &facts);
    assert_eq!(resolve.budget, Duration::minutes(44 * 60 + 30));
    assert_eq!(resolve.deadline, Some(beijing(2026, 3, 6, 17, 30)));
}

#[test]
fn a_suspension_after_the_deadline_leaves_the_breach_due() {
    let calendar = national();
    let standard = policy("standard");
    let mut facts = acknowledged_case(Priority::Urgent, beijing(2026, 3, 9, 9, 0));
    facts.push((beijing(2026, 3, 9, 10, 0), handling_started()));
    facts.push((
        beijing(2026, 3, 9, 16, 0),
        suspended(SuspendReason::WaitingForParts),
    ));
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &history(&facts));
    let resolve = state.current().expect("resolve runs");
    assert_eq!(resolve.deadline, Some(beijing(2026, 3, 9, 14, 30)));
    assert_eq!(resolve.remaining, Some(Duration::zero()));
    let kinds: Vec<TimerKind> = state.due().iter().map(|timer| timer.kind).collect();
    assert_eq!(
        kinds,
        [
            TimerKind::Warning {
                threshold_percent: 80
            },
            TimerKind::Breach
        ],
        "what was reached before the pause is still due, the ladder is not"
    );
    assert_eq!(
        state.light(beijing(2026, 3, 20, 9, 0)),
        Some((SlaStep::Resolve, TrafficLight::Red))
    );
}

#[test]
fn an_extension_moves_the_deadline() {
    let mut facts = acknowledged_case(Priority::High, beijing(2026, 3, 9, 10, 0));
    assert_eq!(
        clock("standard", &facts).deadline,
        Some(beijing(2026, 3, 10, 17, 30))
    );
    facts.push((
        beijing(2026, 3, 10, 16, 0),
        extension(SlaStep::Resolve, working_days(1)),
    ));
    let extended = clock("standard", &facts);
    assert_eq!(extended.extensions, [working_days(1)]);
    assert_eq!(extended.deadline, Some(beijing(2026, 3, 11, 17, 30)));

    facts.push((
        beijing(2026, 3, 10, 16, 5),
        extension(SlaStep::Resolve, working_hours(2)),
    ));
    assert_eq!(
        clock("standard", &facts).deadline,
        Some(beijing(2026, 3, 12, 10, 30))
    );
}

#[test]
fn an_extension_for_another_step_changes_nothing() {
    let mut facts = acknowledged_case(Priority::High, beijing(2026, 3, 9, 10, 0));
    facts.push((
        beijing(2026, 3, 9, 11, 0),
        extension(SlaStep::Verify, working_days(3)),
    ));
    assert_eq!(
        clock("standard", &facts).deadline,
        Some(beijing(2026, 3, 10, 17, 30))
    );
}

// ---------------------------------------------------------------------------------------
// Warnings, breaches, ladders and the timer service
// ---------------------------------------------------------------------------------------

#[test]
fn the_warning_falls_at_eighty_percent_of_the_working_time() {
    // Dirty road: five working hours from 08:30 end at 15:00; four hours in, at 14:00.
    let road = clock(
        "sanitation_road",
        &acknowledged_case(Priority::Normal, beijing(2026, 3, 9, 8, 30)),
    );
    assert_eq!(road.deadline, Some(beijing(2026, 3, 9, 15, 0)));
    assert_eq!(road.warning_percent, 80);
    assert_eq!(road.warning_at, Some(beijing(2026, 3, 9, 14, 0)));
}

#[test]
fn exposed_rubbish_is_due_by_the_end_of_the_next_working_day() {
    let facts = acknowledged_case(Priority::Normal, beijing(2026, 3, 13, 16, 0));
    let rubbish = clock("sanitation", &facts);
    assert_eq!(rubbish.deadline, Some(beijing(2026, 3, 16, 17, 30)));
}

#[test]
fn illegal_construction_has_fifteen_working_days_across_a_holiday() {
    let facts = acknowledged_case(Priority::Normal, beijing(2026, 9, 24, 10, 0));
    // Sep 28–30, Oct 8–10 (10th the make-up Saturday), Oct 12–16, Oct 19–22.
    let construction = clock("construction", &facts);
    assert_eq!(construction.deadline, Some(beijing(2026, 10, 22, 17, 30)));
}

#[test]
fn emergencies_run_on_clock_time_through_a_holiday() {
    let night = beijing(2026, 10, 1, 2, 50);
    let accept = clock("urgent_facility", &[(night, reported())]);
    assert_eq!(accept.measure, SlaClock::Continuous);
    assert_eq!(accept.deadline, Some(beijing(2026, 10, 1, 3, 0)));
    assert_eq!(accept.warning_at, Some(beijing(2026, 10, 1, 2, 58)));

    let resolve = clock(
        "urgent_facility",
        &acknowledged_case(Priority::Urgent, beijing(2026, 10, 1, 3, 20)),
    );
    assert_eq!(resolve.deadline, Some(beijing(2026, 10, 1, 5, 20)));
    // A service request's seven days are working days: the holiday does not count, the
    // make-up Saturday does (Oct 8, 9, 10, 12, 13, 14, 15).
    let request = clock(
        "service_request",
        &acknowledged_case(Priority::Normal, beijing(2026, 9, 30, 11, 0)),
    );
    assert_eq!(request.measure, SlaClock::Business);
    assert_eq!(request.deadline, Some(beijing(2026, 10, 15, 17, 30)));
}

#[test]
fn the_escalation_ladder_counts_each_rung_from_the_one_before() {
    let calendar = national();
    let standard = policy("standard");
    let events = history(&[
        (beijing(2026, 3, 9, 8, 40), reported()),
        (beijing(2026, 3, 9, 8, 50), accepted(Priority::Normal)),
        (beijing(2026, 3, 9, 9, 0), dispatched("wang")),
    ]);
    let state = SlaState::replay(Some(Terms::new(&standard, &calendar)), &events);
    let acknowledge = state.current().expect("acknowledge runs");
    assert_eq!(acknowledge.deadline, Some(beijing(2026, 3, 9, 11, 0)));
    let rungs: Vec<(u32, EscalationAction, Option<DateTime<Utc>>)> = acknowledge
        .escalations
        .iter()
        .map(|rung| (rung.level, rung.action, rung.due_at))
        .collect();
    assert_eq!(
        rungs,
        [
            // One working hour after 11:00.
            (
                1,
                EscalationAction::ReassignInCell,
                Some(beijing(2026, 3, 9, 12, 0))
            ),
            // Two working hours after 12:00, lunch skipped.
            (
                2,
                EscalationAction::EscalateTier,
                Some(beijing(2026, 3, 9, 15, 30))
            ),
        ]
    );

    // At 16:00 the timer service sees the breach and only the highest rung reached.
    let now = beijing(2026, 3, 9, 16, 0);
    let kinds: Vec<TimerKind> = state.due_by(now).iter().map(|timer| timer.kind).collect();
    assert_eq!(
        kinds,
        [
            TimerKind::Breach,
            TimerKind::Escalation {
                level: 2,
                action: EscalationAction::EscalateTier
            }
        ]
    );
    assert_eq!(
        state.light(beijing(2026, 3, 9, 10, 0)),
        Some((SlaStep::Acknowledge, TrafficLight::Green))
    );
    assert_eq!(
        state.light(beijing(2026, 3, 9, 10, 45)),
        Some((SlaStep::Acknowledge, TrafficLight::Yellow))
    );
    assert_eq!(
        state.light(now),
        Some((SlaStep::Acknowledge, TrafficLight::Red))
    );
}

#[test]
fn a_recorded_warning_or_breach_is_not_due_again() {
    let calendar = national();
    let road = policy("sanitation_road");
    let mut facts = acknowledged_case(Priority::Normal, beijing(2026, 3, 9, 8, 30));
    let deadline = beijing(2026, 3, 9, 15, 0);

    let due = SlaState::replay(Some(Terms::new(&road, &calendar)), &history(&facts))
        .due_by(beijing(2026, 3, 9, 14, 5));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].deadline, deadline);
    facts.push((
        beijing(2026, 3, 9, 14, 5),
        warning_recorded(SlaStep::Resolve, deadline),
    ));
    let state = SlaState::replay(Some(Terms::new(&road, &calendar)), &history(&facts));
    assert!(state.current().unwrap().warning_recorded);
    assert!(state.due_by(beijing(2026, 3, 9, 14, 30)).is_empty());

    facts.push((
        beijing(2026, 3, 9, 15, 1),
        breach_recorded(SlaStep::Resolve, deadline),
    ));
    let state = SlaState::replay(Some(Terms::new(&road, &calendar)), &history(&facts));
    assert!(state.current().unwrap().breach_recorded);
    let kinds: Vec<TimerKind> = state.due().iter().map(|timer| timer.kind).collect();
    assert_eq!(
        kinds,
        [TimerKind::Escalation {
            level: 1,
            action: EscalationAction::EscalateTier
        }]
    );

    // An extension makes a new deadline, which gets its own warning.
    facts.push((
        beijing(2026, 3, 9, 15, 10),
        extension(SlaStep::Resolve, working_hours(4)),
    ));
    let state = SlaState::replay(Some(Terms::new(&road, &calendar)), &history(&facts));
    let extended = state.current().unwrap();
    assert_eq!(extended.deadline, Some(beijing(2026, 3, 10, 10, 0)));
    assert!(!extended.warning_recorded && !extended.breach_recorded);
    assert_eq!(
        state.due()[0].kind,
        TimerKind::Warning {
            threshold_percent: 80
        }
    );
}

#[test]
fn the_timer_commands_are_accepted_by_the_aggregate_exactly_once() {
    let calendar = national();
    let standard = policy("standard");
    let mut events = history(&[
        (beijing(2026, 3, 9, 8, 40), reported()),
        (beijing(2026, 3, 9, 8, 50), accepted(Priority::Normal)),
        (beijing(2026, 3, 9, 9, 0), dispatched("wang")),
    ]);
    let now = beijing(2026, 3, 9, 11, 30);
    let due = SlaState::replay(Some(Terms::new(&standard, &calendar)), &events).due_by(now);
    let commands: Vec<_> = due.iter().filter_map(|timer| timer.command()).collect();
    assert_eq!(
        commands.len(),
        1,
        "the breach; the warning is overtaken: {due:?}"
    );
    for command in &commands {
        let state = replay(&events);
        let facts = decide(&state, command, now).expect("the aggregate records the breach");
        let meta = EventMeta {
            actor: Actor::system("sla-timer"),
            source: Source {
                system: "wangge-engine".to_owned(),
                message_id: "timer-1".to_owned(),
            },
            correlation_id: Uuid::from_u128(9),
            causation_id: None,
            occurred_at: now,
            recorded_at: now,
        };
        let mut next_id = 100u128;
        events.extend(stamp(&state, case_id(), &location(), facts, &meta, || {
            next_id += 1;
            Uuid::from_u128(next_id)
        }));
        // Fired again: the aggregate refuses, and the SLA state no longer lists it.
        assert!(decide(&replay(&events), command, now).is_err());
    }
    let after = SlaState::replay(Some(Terms::new(&standard, &calendar)), &events).due_by(now);
    assert!(
        after.iter().all(|timer| timer.command().is_none()),
        "{after:?}"
    );
}

#[test]
fn time_never_runs_backwards_within_a_case() {
    // A publisher's clock said the acknowledgement came before the dispatch.
    let resolve = clock(
        "standard",
        &[
            (beijing(2026, 3, 9, 9, 0), reported()),
            (beijing(2026, 3, 9, 9, 10), accepted(Priority::Urgent)),
            (beijing(2026, 3, 9, 10, 0), dispatched("wang")),
            (beijing(2026, 3, 9, 9, 30), acknowledged()),
        ],
    );
    assert_eq!(resolve.step, SlaStep::Resolve);
    assert_eq!(resolve.started_at, beijing(2026, 3, 9, 10, 0));
}

// ---------------------------------------------------------------------------------------
// The policy file
// ---------------------------------------------------------------------------------------

#[test]
fn the_bundled_policies_are_valid_and_survive_their_file_format() {
    let policies = PolicySet::bundled();
    let names: Vec<&str> = policies
        .policies()
        .map(|policy| policy.name.as_str())
        .collect();
    for name in [
        "standard",
        "sanitation",
        "sanitation_road",
        "urgent_facility",
        "utilities",
        "service_request",
        "construction",
    ] {
        assert!(names.contains(&name), "{name} is bundled");
    }
    assert_eq!(policies.default_policy().name, "standard");
    assert!(policy("urgent_facility")
        .targets
        .values()
        .flat_map(|targets| targets.limits())
        .all(|limit| !limit.unit.is_working_time()));
    assert_eq!(
        policy("standard").limit(SlaStep::Resolve, Some(Priority::Low)),
        Some(working_days(15))
    );
    // Before acceptance the priority is unknown: `all` applies.
    assert_eq!(
        policy("standard").limit(SlaStep::Accept, None),
        Some(working_minutes(30))
    );
    let json = serde_json::to_string(&policies.to_file()).unwrap();
    assert_eq!(PolicySet::from_json(&json).unwrap(), policies);
}

#[test]
fn a_malformed_policy_file_is_refused_with_the_reason() {
    let file = |policy: &str, extra: &str| {
        format!(r#"{{"default_policy": "p", {extra} "policies": [{policy}]}}"#)
    };
    let good =
        r#"{"name": "p", "targets": {"resolve": {"all": {"amount": 1, "unit": "working_days"}}}}"#;
    assert!(PolicySet::from_json(&file(good, "")).is_ok());
    assert_eq!(
        PolicySet::from_json(&file(good, ""))
            .unwrap()
            .default_policy()
            .warning_percent,
        80
    );

    let cases = [
        (
            good.replace("\"targets\"", "\"warning_percent\": 100, \"targets\""),
            "",
            "warning_percent must be 1 to 99",
        ),
        (good.replace("\"amount\": 1", "\"amount\": 0"), "", "at least 1"),
        // The category → policy mapping is the catalogue's alone.
        (good.to_owned(), r#""categories": {"sanitation": "p"},"#, "unknown field `categories`"),
        (good.replace("\"targets\"", "\"clock\": \"continuous\", \"targets\""), "", "unknown field `clock`"),
        (good.replace("working_days", "minutes"), "", "unknown variant `minutes`"),
        (
            good.replace(
                "}}}",
                r#"}}}, "escalation": {"verify": [{"action": "escalate_tier", "after": {"amount": 1, "unit": "clock_minutes"}}]}"#,
            ),
            "",
            "step verify is not timed",
        ),
        (good.replace("resolve", "resolution"), "", "targets"),
        (good.replace("working_days", "fortnights"), "", "unit"),
    ];
    for (policy, categories, expected) in cases {
        let message = PolicySet::from_json(&file(&policy, categories))
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains(expected),
            "`{message}` should say `{expected}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Properties over random histories, policies and calendars
// ---------------------------------------------------------------------------------------

/// What happens next in a random history.
#[derive(Debug, Clone)]
enum Happening {
    Event(CaseEvent),
    /// The timer service records every warning and breach due at this moment.
    TimerFires,
    /// A supervisor extends whichever step is running.
    ExtendRunning(TimeLimit),
}

fn arb_priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::Urgent),
        Just(Priority::High),
        Just(Priority::Normal),
        Just(Priority::Low)
    ]
}

fn arb_step() -> impl Strategy<Value = SlaStep> {
    prop_oneof![
        Just(SlaStep::Accept),
        Just(SlaStep::Dispatch),
        Just(SlaStep::Acknowledge),
        Just(SlaStep::Resolve),
        Just(SlaStep::Verify)
    ]
}

fn arb_limit() -> impl Strategy<Value = TimeLimit> {
    prop_oneof![
        (1u32..=600).prop_map(clock_minutes),
        (1u32..=40).prop_map(working_hours),
        (1u32..=20).prop_map(working_days),
    ]
}

fn arb_happening() -> impl Strategy<Value = Happening> {
    let event = |event: CaseEvent| Just(Happening::Event(event));
    prop_oneof![
        3 => event(reported()),
        3 => arb_priority().prop_map(|priority| Happening::Event(accepted(priority))),
        1 => event(CaseEvent::Rejected(CaseRejected { reason: "not a case".to_owned() })),
        1 => event(CaseEvent::Merged(CaseMerged { into_case_id: CaseId(Uuid::from_u128(8)), reason: None })),
        4 => event(dispatched("wang")),
        3 => event(acknowledged()),
        1 => event(declined()),
        2 => event(reassigned("zhang")),
        3 => event(handling_started()),
        4 => prop_oneof![
            Just(SuspendReason::WaitingForResident),
            Just(SuspendReason::WaitingForParts),
            Just(SuspendReason::Parked)
        ]
        .prop_map(|reason| Happening::Event(suspended(reason))),
        4 => event(resumed()),
        3 => (arb_step(), arb_limit()).prop_map(|(step, limit)| Happening::Event(extension(step, limit))),
        3 => event(resolved()),
        2 => event(verified()),
        1 => event(rework()),
        1 => event(closed()),
        1 => event(reopened()),
        1 => event(CaseEvent::Evaluated(CaseEvaluated { satisfaction: 4, comment: None, resolved: None, level: None, channel: None })),
        1 => event(CaseEvent::CommentAdded(CommentAdded { text: "called the resident".to_owned() })),
        1 => event(escalated()),
        1 => (arb_step(), 0i64..20_000).prop_map(|(step, minutes)| Happening::Event(
            warning_recorded(step, beijing(2026, 1, 1, 0, 0) + Duration::minutes(minutes * 30))
        )),
        1 => (arb_step(), 0i64..20_000).prop_map(|(step, minutes)| Happening::Event(
            breach_recorded(step, beijing(2026, 1, 1, 0, 0) + Duration::minutes(minutes * 30))
        )),
        1 => event(voided()),
        4 => Just(Happening::TimerFires),
        3 => arb_limit().prop_map(Happening::ExtendRunning),
    ]
}

/// Minutes between happenings: mostly short, sometimes days or weeks.
fn arb_gap(backwards: bool) -> BoxedStrategy<i64> {
    let lowest = if backwards { -600 } else { 0 };
    prop_oneof![
        6 => lowest..=240i64,
        3 => 0i64..=3_000,
        1 => 0i64..=30 * 1_440,
    ]
    .boxed()
}

fn arb_start() -> impl Strategy<Value = DateTime<Utc>> {
    // Between Dec 2025 and Nov 2026, on any minute.
    (0i64..340 * 1_440).prop_map(|minutes| beijing(2025, 12, 1, 0, 0) + Duration::minutes(minutes))
}

/// A history: the happenings at their times, with each `TimerFires` turned into the
/// warning and breach events the timer service would record at that moment.
fn build_history(
    policy: &SlaPolicy,
    calendar: &BusinessCalendar,
    start: DateTime<Utc>,
    script: &[(i64, Happening)],
) -> Vec<EventEnvelope> {
    let mut events = vec![envelope(1, start, reported())];
    let mut now = start;
    for (gap, happening) in script {
        now += Duration::minutes(*gap);
        match happening {
            Happening::Event(event) => {
                let sequence = events.len() as u64 + 1;
                events.push(envelope(sequence, now, event.clone()));
            }
            Happening::TimerFires => {
                let state = SlaState::replay(Some(Terms::new(policy, calendar)), &events);
                let records: Vec<CaseEvent> = state
                    .due_by(now)
                    .into_iter()
                    .filter_map(|timer| match timer.kind {
                        TimerKind::Warning { threshold_percent } => {
                            Some(CaseEvent::SlaWarning(SlaWarning {
                                step: timer.step,
                                deadline: timer.deadline,
                                threshold_percent,
                            }))
                        }
                        TimerKind::Breach => Some(breach_recorded(timer.step, timer.deadline)),
                        TimerKind::Escalation { .. } => None,
                    })
                    .collect();
                for record in records {
                    let sequence = events.len() as u64 + 1;
                    events.push(envelope(sequence, now, record));
                }
            }
            Happening::ExtendRunning(limit) => {
                let running =
                    SlaState::replay(Some(Terms::new(policy, calendar)), &events).running_step();
                if let Some(step) = running {
                    let sequence = events.len() as u64 + 1;
                    events.push(envelope(sequence, now, extension(step, *limit)));
                }
            }
        }
    }
    events
}

fn arb_targets() -> impl Strategy<Value = StepTargets> {
    (
        prop::option::of(arb_limit()),
        prop::option::of(arb_limit()),
        prop::option::of(arb_limit()),
        prop::option::of(arb_limit()),
        prop::option::of(arb_limit()),
    )
        .prop_map(|(all, urgent, high, normal, low)| StepTargets {
            all,
            urgent,
            high,
            normal,
            low,
        })
}

fn arb_ladder() -> impl Strategy<Value = Vec<EscalationLevel>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just(EscalationAction::ReassignInCell),
                Just(EscalationAction::EscalateTier)
            ],
            arb_limit(),
        )
            .prop_map(|(action, after)| EscalationLevel { action, after }),
        0..3,
    )
}

prop_compose! {
    fn arb_policy()(
        warning_percent in 1u8..=99,
        targets in prop::collection::vec(prop::option::weighted(0.85, arb_targets()), 5),
        ladders in prop::collection::vec(arb_ladder(), 5),
    ) -> SlaPolicy {
        let steps = [SlaStep::Accept, SlaStep::Dispatch, SlaStep::Acknowledge, SlaStep::Resolve, SlaStep::Verify];
        let mut policy = SlaPolicy {
            name: "random".to_owned(),
            description: None,
            warning_percent,
            targets: Default::default(),
            escalation: Default::default(),
        };
        for ((step, target), ladder) in steps.into_iter().zip(targets).zip(ladders) {
            if let Some(target) = target {
                policy.targets.insert(step, target);
                policy.escalation.insert(step, ladder);
            }
        }
        policy
    }
}

fn arb_day() -> impl Strategy<Value = Vec<WorkingInterval>> {
    prop::collection::vec(0u16..=1440, 0..=6).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts.dedup();
        cuts.chunks_exact(2)
            .filter_map(|pair| WorkingInterval::from_minutes(pair[0], pair[1]))
            .collect()
    })
}

prop_compose! {
    fn arb_calendar()(
        days in prop::collection::vec(arb_day(), 7),
        offset_quarters in -48i32..=56,
        holidays in prop::collection::vec((0u64..500, 0u64..10), 0..10),
        make_ups in prop::collection::vec(0u64..500, 0..6),
    ) -> BusinessCalendar {
        let day = |offset: u64| NaiveDate::from_ymd_opt(2025, 11, 1).unwrap() + chrono::Days::new(offset);
        let nine_to_five = vec![WorkingInterval::from_minutes(9 * 60, 17 * 60).unwrap()];
        let mut working_hours = WeekSchedule {
            monday: days[0].clone(),
            tuesday: days[1].clone(),
            wednesday: days[2].clone(),
            thursday: days[3].clone(),
            friday: days[4].clone(),
            saturday: days[5].clone(),
            sunday: days[6].clone(),
        };
        if days.iter().all(Vec::is_empty) {
            working_hours.thursday = nine_to_five.clone();
        }
        let holidays: Vec<HolidaySpec> = holidays
            .iter()
            .map(|(start, length)| HolidaySpec { name: "h".to_owned(), from: day(*start), to: day(start + length) })
            .collect();
        let make_up_working_days = make_ups
            .iter()
            .map(|offset| day(*offset))
            .filter(|date| !holidays.iter().any(|h| h.from <= *date && *date <= h.to))
            .map(|date| MakeUpDaySpec { name: "m".to_owned(), date })
            .collect();
        BusinessCalendar::try_from(CalendarSpec {
            id: "random".to_owned(),
            name: "random".to_owned(),
            time_zone: "Etc/Random".to_owned(),
            utc_offset: UtcOffset::from_minutes(offset_quarters * 15).unwrap(),
            working_hours,
            holidays,
            make_up_working_days,
            make_up_day_hours: Some(nine_to_five),
            holidays_published_through: None,
        })
        .expect("a generated calendar is valid")
    }
}

fn in_working_time_or_at_its_end(calendar: &BusinessCalendar, instant: DateTime<Utc>) -> bool {
    let local = calendar.local_date_time(instant);
    let time = local - local.date().and_time(NaiveTime::MIN);
    let within = |date: NaiveDate, time: Duration| {
        calendar.working_intervals_on(date).iter().any(|interval| {
            Duration::minutes(i64::from(interval.start_minute())) < time
                && time <= Duration::minutes(i64::from(interval.end_minute()))
        })
    };
    within(local.date(), time)
        || (time == Duration::zero() && within(local.date().pred_opt().unwrap(), Duration::days(1)))
}

fn without(events: &[EventEnvelope], drop: impl Fn(&CaseEvent) -> bool) -> Vec<EventEnvelope> {
    events
        .iter()
        .filter(|envelope| !drop(&envelope.event))
        .cloned()
        .collect()
}

type Scenario = (
    SlaPolicy,
    BusinessCalendar,
    DateTime<Utc>,
    Vec<(i64, Happening)>,
);

fn arb_scenario(backwards: bool) -> impl Strategy<Value = Scenario> {
    (
        arb_policy(),
        prop_oneof![1 => Just(national()), 2 => arb_calendar()],
        arb_start(),
        prop::collection::vec((arb_gap(backwards), arb_happening()), 0..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn recomputing_from_history_always_gives_the_same_answer(
        (policy, calendar, start, script) in arb_scenario(true),
    ) {
        let events = build_history(&policy, &calendar, start, &script);
        let all_at_once = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);

        let mut incremental = SlaState::new(Some(Terms::new(&policy, &calendar)));
        let mut lean = SlaState::new(Some(Terms::new(&policy, &calendar))).without_history();
        for (index, envelope) in events.iter().enumerate() {
            incremental.apply(envelope);
            lean.apply(envelope);
            // A state kept in memory and one replayed from the log agree at every point.
            let replayed = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events[..=index]);
            prop_assert_eq!(&incremental, &replayed);
            // A fold stored as facts (JSON, as a read model or a snapshot keeps it) and
            // carried on later is the same fold.
            let stored = serde_json::to_string(&incremental.facts()).unwrap();
            let facts: SlaFacts = serde_json::from_str(&stored).unwrap();
            prop_assert_eq!(&SlaState::from_facts(Some(Terms::new(&policy, &calendar)), facts), &incremental);
            // Packed, as the timer book holds an open case and its snapshot stores it, and
            // carried on later: the same fold, with its history or without (the book's).
            let unpacked = SlaState::unpack(Some(Terms::new(&policy, &calendar)), &incremental.pack()).unwrap();
            prop_assert_eq!(&unpacked, &incremental);
            let unpacked = SlaState::unpack(Some(Terms::new(&policy, &calendar)), &lean.pack()).unwrap();
            prop_assert_eq!(&unpacked, &lean);
            prop_assert_eq!(lean.due(), incremental.due());
        }
        prop_assert_eq!(&incremental, &all_at_once);
        prop_assert_eq!(incremental.current().into_iter().collect::<Vec<_>>(), all_at_once.current().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(incremental.due(), all_at_once.due());

        // Twice, and through the stored JSON form of the events.
        prop_assert_eq!(sla_clocks(&events, &policy, &calendar), all_at_once.current().into_iter().collect::<Vec<_>>());
        let stored = serde_json::to_string(&events).unwrap();
        let reloaded: Vec<EventEnvelope> = serde_json::from_str(&stored).unwrap();
        let again = SlaState::replay(Some(Terms::new(&policy, &calendar)), &reloaded);
        prop_assert_eq!(&again, &all_at_once);
        prop_assert_eq!(again.due(), all_at_once.due());
        prop_assert!(all_at_once.current().into_iter().collect::<Vec<_>>().len() <= 1);
    }

    #[test]
    fn business_deadlines_lie_in_working_time_and_come_in_order(
        (policy, calendar, start, script) in arb_scenario(false),
    ) {
        let events = build_history(&policy, &calendar, start, &script);
        let state = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);
        for clock in state.current().into_iter().collect::<Vec<_>>() {
            prop_assert!(clock.budget > Duration::zero());
            let mut instants: Vec<DateTime<Utc>> = clock.warning_at.into_iter().collect();
            instants.extend(clock.deadline);
            instants.extend(clock.escalations.iter().filter_map(|rung| rung.due_at));
            prop_assert!(instants.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", clock);
            prop_assert!(instants.iter().all(|instant| *instant >= clock.started_at));
            if clock.measure == SlaClock::Business {
                for instant in instants {
                    prop_assert!(
                        in_working_time_or_at_its_end(&calendar, instant),
                        "{} local is outside working time: {:?}",
                        calendar.local_date_time(instant),
                        clock
                    );
                }
            }
            if let Some(since) = clock.suspended_since {
                prop_assert!(clock.remaining.is_some());
                for timer in state.due() {
                    prop_assert!(timer.at <= since, "due while suspended: {:?}", timer);
                    let escalation = matches!(timer.kind, TimerKind::Escalation { .. });
                    prop_assert!(!escalation, "an escalation while suspended");
                }
            }
        }
        for finished in state.finished() {
            prop_assert!(finished.stopped_at >= finished.started_at);
            if let Some(deadline) = finished.deadline {
                prop_assert_eq!(finished.on_time(), finished.stopped_at <= deadline);
            } else {
                prop_assert!(finished.on_time());
            }
        }
    }

    #[test]
    fn a_suspension_never_makes_a_deadline_earlier(
        (policy, calendar, start, script) in arb_scenario(false),
    ) {
        let events = build_history(&policy, &calendar, start, &script);
        let paused = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);
        let unpaused_events = without(&events, |event| {
            matches!(event, CaseEvent::Suspended(_) | CaseEvent::Resumed(_))
        });
        let unpaused = SlaState::replay(Some(Terms::new(&policy, &calendar)), &unpaused_events);
        let (with, without) = (paused.current().into_iter().collect::<Vec<_>>(), unpaused.current().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(with.len(), without.len());
        for (with, without) in with.iter().zip(&without) {
            prop_assert_eq!((with.step, with.started_at, with.budget), (without.step, without.started_at, without.budget));
            prop_assert!(without.deadline.is_some());
            if let Some(deadline) = with.deadline {
                prop_assert!(deadline >= without.deadline.unwrap());
            }
            if let (Some(with), Some(without)) = (with.warning_at, without.warning_at) {
                prop_assert!(with >= without);
            }
        }
        prop_assert_eq!(paused.finished().len(), unpaused.finished().len());
        for (with, without) in paused.finished().iter().zip(unpaused.finished()) {
            prop_assert_eq!((with.step, with.started_at, with.stopped_at), (without.step, without.started_at, without.stopped_at));
            if let (Some(with), Some(without)) = (with.deadline, without.deadline) {
                prop_assert!(with >= without);
            }
        }
    }

    #[test]
    fn an_extension_never_makes_a_deadline_earlier(
        (policy, calendar, start, script) in arb_scenario(false),
    ) {
        let events = build_history(&policy, &calendar, start, &script);
        let extended = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);
        let plain = SlaState::replay(Some(Terms::new(&policy, &calendar)), &without(&events, |event| matches!(event, CaseEvent::ExtensionGranted(_))),
        );
        let (with, without) = (extended.current().into_iter().collect::<Vec<_>>(), plain.current().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(with.len(), without.len());
        for (with, without) in with.iter().zip(&without) {
            prop_assert_eq!((with.step, with.started_at), (without.step, without.started_at));
            prop_assert!(with.budget >= without.budget);
            match (with.deadline, without.deadline) {
                (Some(with), Some(without)) => prop_assert!(with >= without),
                (Some(_), None) => prop_assert!(false, "a longer limit was reached, a shorter not"),
                _ => {}
            }
        }
    }

    #[test]
    fn a_recorded_timer_is_never_due_again(
        (policy, calendar, start, script) in arb_scenario(false),
        later in 0i64..20_000,
    ) {
        let mut events = build_history(&policy, &calendar, start, &script);
        let now = events.last().unwrap().occurred_at + Duration::minutes(later);
        let state = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);
        let fired: Vec<_> = state.due_by(now).into_iter().filter(|timer| timer.command().is_some()).collect();
        for timer in &fired {
            let event = match timer.kind {
                TimerKind::Breach => breach_recorded(timer.step, timer.deadline),
                _ => warning_recorded(timer.step, timer.deadline),
            };
            let sequence = events.len() as u64 + 1;
            events.push(envelope(sequence, now, event));
        }
        let after = SlaState::replay(Some(Terms::new(&policy, &calendar)), &events);
        for timer in after.due() {
            prop_assert!(
                !fired.iter().any(|done| done.step == timer.step && done.deadline == timer.deadline && done.kind == timer.kind),
                "fired twice: {:?}", timer
            );
        }
    }
}
