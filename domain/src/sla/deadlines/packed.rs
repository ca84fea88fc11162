//! The SLA facts of one case in a compact binary form: what the timer book holds for every
//! open case and writes into its snapshot.
//!
//! The layout is a serde-derived mirror of the facts encoded with postcard (varints): enums
//! as explicit one-byte codes, so reordering a schema enum never changes a stored meaning;
//! instants as nanoseconds after the running step's start where they fit (one or two bytes
//! for a case folded in one go), else as whole seconds and nanoseconds. A case at one step
//! with its recorded clock (a deadline, a warning, two rungs), packs into about 60 bytes.
//! Packing is lossless: `unpack(pack(s)) == s` for every fold.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::sla::{EscalationAction, UtcOffset};
use wangge_schemas::{ClockCalendar, EscalationRung, Priority, SlaStep, TimeLimit, TimeUnit};

use super::{FinishedStep, RecordedClock, SlaFacts, SlaState, StepRun, Terms};
use crate::sla::SlaClock;

/// Packed facts that cannot be read back: written by another version, or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed sla facts are unreadable: {reason}")]
pub struct UnreadableFacts {
    pub reason: String,
}

impl UnreadableFacts {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

const REPORTED: u8 = 1;
const KEEP_HISTORY: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Packed {
    /// `REPORTED | KEEP_HISTORY`.
    flags: u8,
    /// 0 = none, else [`priority_code`].
    priority: u8,
    run: Option<PackedRun>,
    last_event_at: Option<Moment>,
    suspended_since: Option<Moment>,
    finished: Vec<PackedFinished>,
    /// `(step, deadline, is_breach)`.
    marks: Vec<(u8, Moment, bool)>,
    calendar: Option<PackedCalendar>,
}

#[derive(Serialize, Deserialize)]
struct PackedRun {
    step: u8,
    started_at: Stamp,
    limit: Option<(u32, u8)>,
    extensions: Vec<(u32, u8)>,
    pauses: Vec<(Moment, Moment)>,
    recorded: Option<PackedRecorded>,
}

#[derive(Serialize, Deserialize)]
struct PackedRecorded {
    policy: String,
    measure: u8,
    warning_percent: u8,
    warning_at: Option<Moment>,
    deadline: Option<Moment>,
    rungs: Vec<PackedRung>,
    budget_seconds: Option<i64>,
    remaining_seconds: Option<i64>,
    provisional: bool,
}

/// `(level, action, after, due_at)`.
type PackedRung = (u32, u8, (u32, u8), Option<Moment>);

#[derive(Serialize, Deserialize)]
struct PackedFinished {
    step: u8,
    started_at: Moment,
    stopped_at: Moment,
    deadline: Option<Moment>,
}

#[derive(Serialize, Deserialize)]
struct PackedCalendar {
    id: String,
    offset_minutes: i32,
    /// Days from the common era's first day.
    published_through: Option<i32>,
}

/// An instant exactly: whole seconds since the epoch and the nanoseconds past them.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Stamp(i64, u32);

/// An instant relative to the running step's start when it fits in `i64` nanoseconds.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum Moment {
    After(i64),
    At(Stamp),
}

fn stamp(at: DateTime<Utc>) -> Stamp {
    Stamp(at.timestamp(), at.timestamp_subsec_nanos())
}

fn from_stamp(stamp: Stamp) -> Result<DateTime<Utc>, UnreadableFacts> {
    DateTime::from_timestamp(stamp.0, stamp.1).ok_or_else(|| {
        UnreadableFacts::new(format!("instant {}.{} out of range", stamp.0, stamp.1))
    })
}

fn moment(at: DateTime<Utc>, base: Option<DateTime<Utc>>) -> Moment {
    base.and_then(|base| (at - base).num_nanoseconds())
        .map_or(Moment::At(stamp(at)), Moment::After)
}

fn from_moment(
    moment: Moment,
    base: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, UnreadableFacts> {
    match moment {
        Moment::At(stamp) => from_stamp(stamp),
        Moment::After(nanos) => base
            .and_then(|base| base.checked_add_signed(Duration::nanoseconds(nanos)))
            .ok_or_else(|| UnreadableFacts::new("relative instant without a running step")),
    }
}

fn step_code(step: SlaStep) -> u8 {
    match step {
        SlaStep::Accept => 0,
        SlaStep::Dispatch => 1,
        SlaStep::Acknowledge => 2,
        SlaStep::Resolve => 3,
        SlaStep::Verify => 4,
    }
}

fn step_of(code: u8) -> Result<SlaStep, UnreadableFacts> {
    Ok(match code {
        0 => SlaStep::Accept,
        1 => SlaStep::Dispatch,
        2 => SlaStep::Acknowledge,
        3 => SlaStep::Resolve,
        4 => SlaStep::Verify,
        other => return Err(UnreadableFacts::new(format!("unknown step code {other}"))),
    })
}

fn priority_code(priority: Priority) -> u8 {
    match priority {
        Priority::Urgent => 1,
        Priority::High => 2,
        Priority::Normal => 3,
        Priority::Low => 4,
    }
}

fn priority_of(code: u8) -> Result<Option<Priority>, UnreadableFacts> {
    Ok(match code {
        0 => None,
        1 => Some(Priority::Urgent),
        2 => Some(Priority::High),
        3 => Some(Priority::Normal),
        4 => Some(Priority::Low),
        other => {
            return Err(UnreadableFacts::new(format!(
                "unknown priority code {other}"
            )))
        }
    })
}

fn limit_code(limit: TimeLimit) -> (u32, u8) {
    let unit = TimeUnit::ALL
        .iter()
        .position(|unit| *unit == limit.unit)
        .and_then(|index| u8::try_from(index).ok())
        .unwrap_or(u8::MAX);
    (limit.amount, unit)
}

fn limit_of((amount, unit): (u32, u8)) -> Result<TimeLimit, UnreadableFacts> {
    let unit = *TimeUnit::ALL
        .get(usize::from(unit))
        .ok_or_else(|| UnreadableFacts::new(format!("unknown time unit code {unit}")))?;
    Ok(TimeLimit { amount, unit })
}

fn measure_code(measure: SlaClock) -> u8 {
    match measure {
        SlaClock::Business => 0,
        SlaClock::Continuous => 1,
    }
}

fn measure_of(code: u8) -> Result<SlaClock, UnreadableFacts> {
    match code {
        0 => Ok(SlaClock::Business),
        1 => Ok(SlaClock::Continuous),
        other => Err(UnreadableFacts::new(format!(
            "unknown measure code {other}"
        ))),
    }
}

fn action_code(action: EscalationAction) -> u8 {
    match action {
        EscalationAction::ReassignInCell => 0,
        EscalationAction::EscalateTier => 1,
    }
}

fn action_of(code: u8) -> Result<EscalationAction, UnreadableFacts> {
    match code {
        0 => Ok(EscalationAction::ReassignInCell),
        1 => Ok(EscalationAction::EscalateTier),
        other => Err(UnreadableFacts::new(format!(
            "unknown escalation action code {other}"
        ))),
    }
}

impl SlaState<'_> {
    /// The fold's facts in their compact binary form (the terms not included).
    pub fn pack(&self) -> Box<[u8]> {
        pack_facts(self.facts())
    }

    /// A fold carried on from packed facts, under `terms` if any.
    pub fn unpack<'a>(
        terms: Option<Terms<'a>>,
        bytes: &[u8],
    ) -> Result<SlaState<'a>, UnreadableFacts> {
        Ok(SlaState::from_facts(terms, unpack_facts(bytes)?))
    }
}

/// [`SlaFacts`] in their compact binary form.
pub fn pack_facts(facts: &SlaFacts) -> Box<[u8]> {
    let base = facts.run.as_ref().map(|run| run.started_at);
    let packed = Packed {
        flags: if facts.reported { REPORTED } else { 0 }
            | if facts.keep_history { KEEP_HISTORY } else { 0 },
        priority: facts.priority.map_or(0, priority_code),
        run: facts.run.as_ref().map(|run| PackedRun {
            step: step_code(run.step),
            started_at: stamp(run.started_at),
            limit: run.limit.map(limit_code),
            extensions: run.extensions.iter().copied().map(limit_code).collect(),
            pauses: run
                .pauses
                .iter()
                .map(|(from, to)| (moment(*from, base), moment(*to, base)))
                .collect(),
            recorded: run.recorded.as_ref().map(|recorded| PackedRecorded {
                policy: recorded.policy.clone(),
                measure: measure_code(recorded.measure),
                warning_percent: recorded.warning_percent,
                warning_at: recorded.warning_at.map(|at| moment(at, base)),
                deadline: recorded.deadline.map(|at| moment(at, base)),
                rungs: recorded
                    .rungs
                    .iter()
                    .map(|rung| {
                        (
                            rung.level,
                            action_code(rung.action),
                            limit_code(rung.after),
                            rung.due_at.map(|at| moment(at, base)),
                        )
                    })
                    .collect(),
                budget_seconds: recorded.budget_seconds,
                remaining_seconds: recorded.remaining_seconds,
                provisional: recorded.provisional,
            }),
        }),
        last_event_at: facts.last_event_at.map(|at| moment(at, base)),
        suspended_since: facts.suspended_since.map(|at| moment(at, base)),
        finished: facts
            .finished
            .iter()
            .map(|finished| PackedFinished {
                step: step_code(finished.step),
                started_at: moment(finished.started_at, base),
                stopped_at: moment(finished.stopped_at, base),
                deadline: finished.deadline.map(|at| moment(at, base)),
            })
            .collect(),
        marks: facts
            .marks
            .iter()
            .map(|(step, deadline, breach)| (step_code(*step), moment(*deadline, base), *breach))
            .collect(),
        calendar: facts.calendar.as_ref().map(|calendar| PackedCalendar {
            id: calendar.id.clone(),
            offset_minutes: calendar.utc_offset.minutes(),
            published_through: calendar
                .holidays_published_through
                .map(|date| chrono::Datelike::num_days_from_ce(&date)),
        }),
    };
    postcard::to_allocvec(&packed)
        .expect("packing into a vector cannot fail")
        .into_boxed_slice()
}

/// [`SlaFacts`] from their compact binary form.
pub fn unpack_facts(bytes: &[u8]) -> Result<SlaFacts, UnreadableFacts> {
    let packed: Packed =
        postcard::from_bytes(bytes).map_err(|error| UnreadableFacts::new(error.to_string()))?;
    if packed.flags & !(REPORTED | KEEP_HISTORY) != 0 {
        return Err(UnreadableFacts::new(format!(
            "unknown flags {:#x}",
            packed.flags
        )));
    }
    let base = match &packed.run {
        Some(run) => Some(from_stamp(run.started_at)?),
        None => None,
    };
    let at = |moment: Moment| from_moment(moment, base);
    let run = match packed.run {
        None => None,
        Some(run) => Some(StepRun {
            step: step_of(run.step)?,
            started_at: base.ok_or_else(|| UnreadableFacts::new("run without a start"))?,
            limit: run.limit.map(limit_of).transpose()?,
            extensions: run
                .extensions
                .into_iter()
                .map(limit_of)
                .collect::<Result<_, _>>()?,
            pauses: run
                .pauses
                .into_iter()
                .map(|(from, to)| Ok((at(from)?, at(to)?)))
                .collect::<Result<_, UnreadableFacts>>()?,
            recorded: match run.recorded {
                None => None,
                Some(recorded) => Some(RecordedClock {
                    policy: recorded.policy,
                    measure: measure_of(recorded.measure)?,
                    warning_percent: recorded.warning_percent,
                    warning_at: recorded.warning_at.map(at).transpose()?,
                    deadline: recorded.deadline.map(at).transpose()?,
                    rungs: recorded
                        .rungs
                        .into_iter()
                        .map(|(level, action, after, due_at)| {
                            Ok(EscalationRung {
                                level,
                                action: action_of(action)?,
                                after: limit_of(after)?,
                                due_at: due_at.map(at).transpose()?,
                            })
                        })
                        .collect::<Result<_, UnreadableFacts>>()?,
                    budget_seconds: recorded.budget_seconds,
                    remaining_seconds: recorded.remaining_seconds,
                    provisional: recorded.provisional,
                }),
            },
        }),
    };
    let finished = packed
        .finished
        .into_iter()
        .map(|finished| {
            Ok(FinishedStep {
                step: step_of(finished.step)?,
                started_at: at(finished.started_at)?,
                stopped_at: at(finished.stopped_at)?,
                deadline: finished.deadline.map(at).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, UnreadableFacts>>()?;
    let marks = packed
        .marks
        .into_iter()
        .map(|(step, deadline, breach)| Ok((step_of(step)?, at(deadline)?, breach)))
        .collect::<Result<Vec<_>, UnreadableFacts>>()?;
    let calendar = match packed.calendar {
        None => None,
        Some(calendar) => Some(ClockCalendar {
            id: calendar.id,
            utc_offset: UtcOffset::from_minutes(calendar.offset_minutes).ok_or_else(|| {
                UnreadableFacts::new(format!(
                    "utc offset {} out of range",
                    calendar.offset_minutes
                ))
            })?,
            holidays_published_through: calendar
                .published_through
                .map(|days| {
                    NaiveDate::from_num_days_from_ce_opt(days)
                        .ok_or_else(|| UnreadableFacts::new(format!("date {days} out of range")))
                })
                .transpose()?,
        }),
    };
    Ok(SlaFacts {
        reported: packed.flags & REPORTED != 0,
        priority: priority_of(packed.priority)?,
        last_event_at: packed.last_event_at.map(at).transpose()?,
        suspended_since: packed.suspended_since.map(at).transpose()?,
        run,
        finished,
        marks,
        calendar,
        keep_history: packed.flags & KEEP_HISTORY != 0,
    })
}
