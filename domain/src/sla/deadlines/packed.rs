//! The SLA facts of one case in a compact binary form: what the timer book holds for every
//! open case and writes into its snapshot.
//!
//! The layout is a serde-derived mirror of the facts encoded with postcard (varints): enums
//! as explicit one-byte codes, so reordering a schema enum never changes a stored meaning;
//! instants as nanoseconds after the running step's start where they fit (one or two bytes
//! for a case folded in one go), else as whole seconds and nanoseconds. A case at one step,
//! with no extension, pause or mark, packs into about 24 bytes. Packing is lossless:
//! `unpack(pack(s)) == s` for every fold.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{Priority, SlaStep, TimeLimit, TimeUnit};

use super::{FinishedStep, SlaState, StepRun};
use crate::sla::{BusinessCalendar, SlaClock, SlaPolicy};

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
}

#[derive(Serialize, Deserialize)]
struct PackedRun {
    step: u8,
    started_at: Stamp,
    limit: (u32, u8),
    extensions: Vec<(u32, u8)>,
    pauses: Vec<(Moment, Moment)>,
}

#[derive(Serialize, Deserialize)]
struct PackedFinished {
    step: u8,
    started_at: Moment,
    stopped_at: Moment,
    measure: u8,
    budget_nanos: i64,
    used_nanos: i64,
    deadline: Option<Moment>,
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

impl SlaState<'_> {
    /// The fold's facts in their compact binary form (policy and calendar not included).
    pub fn pack(&self) -> Box<[u8]> {
        let base = self.run.as_ref().map(|run| run.started_at);
        let packed = Packed {
            flags: if self.reported { REPORTED } else { 0 }
                | if self.keep_history { KEEP_HISTORY } else { 0 },
            priority: self.priority.map_or(0, priority_code),
            run: self.run.as_ref().map(|run| PackedRun {
                step: step_code(run.step),
                started_at: stamp(run.started_at),
                limit: limit_code(run.limit),
                extensions: run.extensions.iter().copied().map(limit_code).collect(),
                pauses: run
                    .pauses
                    .iter()
                    .map(|(from, to)| (moment(*from, base), moment(*to, base)))
                    .collect(),
            }),
            last_event_at: self.last_event_at.map(|at| moment(at, base)),
            suspended_since: self.suspended_since.map(|at| moment(at, base)),
            finished: self
                .finished
                .iter()
                .map(|finished| PackedFinished {
                    step: step_code(finished.step),
                    started_at: moment(finished.started_at, base),
                    stopped_at: moment(finished.stopped_at, base),
                    measure: measure_code(finished.measure),
                    budget_nanos: finished.budget.num_nanoseconds().unwrap_or(i64::MAX),
                    used_nanos: finished.used.num_nanoseconds().unwrap_or(i64::MAX),
                    deadline: finished.deadline.map(|at| moment(at, base)),
                })
                .collect(),
            marks: self
                .marks
                .iter()
                .map(|(step, deadline, breach)| {
                    (step_code(*step), moment(*deadline, base), *breach)
                })
                .collect(),
        };
        postcard::to_allocvec(&packed)
            .expect("packing into a vector cannot fail")
            .into_boxed_slice()
    }

    /// A fold carried on from packed facts, under `policy` and `calendar`.
    pub fn unpack<'a>(
        policy: &'a SlaPolicy,
        calendar: &'a BusinessCalendar,
        bytes: &[u8],
    ) -> Result<SlaState<'a>, UnreadableFacts> {
        let packed: Packed =
            postcard::from_bytes(bytes).map_err(|error| UnreadableFacts::new(error.to_string()))?;
        let run = match packed.run {
            None => None,
            Some(run) => Some((run.started_at, run)),
        };
        let base = match &run {
            Some((started_at, _)) => Some(from_stamp(*started_at)?),
            None => None,
        };
        let at = |moment: Moment| from_moment(moment, base);
        let run = match run {
            None => None,
            Some((_, run)) => Some(StepRun {
                step: step_of(run.step)?,
                started_at: base.ok_or_else(|| UnreadableFacts::new("run without a start"))?,
                limit: limit_of(run.limit)?,
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
                    measure: measure_of(finished.measure)?,
                    budget: Duration::nanoseconds(finished.budget_nanos),
                    used: Duration::nanoseconds(finished.used_nanos),
                    deadline: finished.deadline.map(at).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, UnreadableFacts>>()?;
        let marks = packed
            .marks
            .into_iter()
            .map(|(step, deadline, breach)| Ok((step_of(step)?, at(deadline)?, breach)))
            .collect::<Result<Vec<_>, UnreadableFacts>>()?;
        if packed.flags & !(REPORTED | KEEP_HISTORY) != 0 {
            return Err(UnreadableFacts::new(format!(
                "unknown flags {:#x}",
                packed.flags
            )));
        }
        Ok(SlaState {
            policy,
            calendar,
            reported: packed.flags & REPORTED != 0,
            priority: priority_of(packed.priority)?,
            last_event_at: packed.last_event_at.map(at).transpose()?,
            suspended_since: packed.suspended_since.map(at).transpose()?,
            run,
            finished: Box::new(finished),
            marks,
            keep_history: packed.flags & KEEP_HISTORY != 0,
        })
    }
}
