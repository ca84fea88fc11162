//! The people of the simulated day: grid workers who acknowledge, decline, handle and
//! resolve what reaches them (some slowly, some not at all — so steps run late and the SLA
//! timers escalate), supervisors who verify results on site, residents who evaluate.
//!
//! They react to the events in the log, as people react to what their apps show them: each
//! reaction is put in an agenda at a simulated instant and carried out when the clock gets
//! there — by the same request-reply command a worker's app sends, so the engine checks it
//! like any other (a worker who acts on a task that was meanwhile reassigned is refused).
//! A resident's evaluation goes the way another system sends it: an intake message on
//! `wangge.intake.evaluation`, from the hotline calling them back or the mini-program.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::StoredCommit;
use wangge_schemas::worker::{ActingAs, WorkerCommand, WorkerCommandV1, WORKER_SCHEMA_VERSION};
use wangge_schemas::{CaseEvent, CaseId, ClosureKind, ReportDetails, SuspendReason};

use super::dice::Dice;
use super::traffic::{evaluation_message, Message};

/// Something a person will do.
pub enum Act {
    /// A worker's or supervisor's command, as their app sends it.
    Command(WorkerCommandV1),
    /// A resident's evaluation of a closed case, as the system they answered in publishes it.
    Evaluate(Message),
}

/// How a worker deals with tasks today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Habit {
    Prompt,
    Slow,
    /// On duty in the system, but not answering (ill, phone off): the timers deal with it.
    Absent,
}

/// What the people know of a case.
#[derive(Debug, Default, Clone)]
struct Known {
    cell: Option<String>,
    assignee: Option<String>,
    resident: Option<String>,
}

pub struct People {
    dice: Dice,
    seed: u64,
    grid: Arc<GridDirectory>,
    agenda: BTreeMap<(DateTime<Utc>, u64), Act>,
    scheduled: u64,
    cases: HashMap<CaseId, Known>,
}

const DECLINE_REASONS: &[&str] = &[
    "今日请假,无法处理",
    "不属于本网格职责范围,请改派",
    "需要物业配合,请改派物业",
];
const VERIFY_FAILURES: &[&str] = &[
    "现场核查未通过:仍有积水",
    "现场核查未通过:垃圾未清运",
    "居民反映问题未解决",
];
const RESOLUTIONS: &[&str] = &[
    "已联系物业疏通,现场已恢复",
    "已清理完毕,附照片",
    "已更换灯具,恢复照明",
    "已劝离车辆并张贴告示",
    "材料已审核,证明已开具",
];

/// A number fixed by the seed and `key` (FNV-1a).
fn keyed(seed: u64, key: &[u8]) -> u64 {
    key.iter()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
        })
}

impl People {
    pub fn new(seed: u64, grid: Arc<GridDirectory>) -> Self {
        Self {
            dice: Dice::new(seed ^ 0x5eed),
            seed,
            grid,
            agenda: BTreeMap::new(),
            scheduled: 0,
            cases: HashMap::new(),
        }
    }

    /// A worker's habit, fixed for the day by the seed: most are prompt, some slow, a few
    /// absent.
    fn habit(&self, worker: &str) -> Habit {
        let mut dice = Dice::new(
            self.seed
                ^ worker.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                }),
        );
        match dice.below(100) {
            0..=5 => Habit::Absent,
            6..=19 => Habit::Slow,
            _ => Habit::Prompt,
        }
    }

    fn plan(&mut self, at: DateTime<Utc>, act: Act) {
        self.scheduled += 1;
        self.agenda.insert((at, self.scheduled), act);
    }

    fn command(
        &mut self,
        at: DateTime<Utc>,
        case_id: CaseId,
        person: &str,
        command: WorkerCommand,
    ) {
        let message = WorkerCommandV1 {
            schema_version: WORKER_SCHEMA_VERSION,
            message_id: format!("demo-app-{}", self.scheduled + 1),
            worker_id: person.to_owned(),
            acting_as: ActingAs::GridWorker,
            case_id,
            command,
        };
        self.plan(at, Act::Command(message));
    }

    /// The acts due by `now`, in order.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Act> {
        let later = self.agenda.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.agenda, later)
            .into_values()
            .collect()
    }

    /// Reacts to a commit of the log.
    pub fn observe(&mut self, commit: &StoredCommit) {
        for event in &commit.events {
            let case_id = event.case_id;
            // Each reaction's chances come from the event itself, so the same day plays the
            // same way whatever order concurrent actors happened to write in.
            let mut key = case_id.0.as_bytes().to_vec();
            key.extend(event.sequence.to_be_bytes());
            self.dice = Dice::new(keyed(self.seed, &key));
            let at = event.occurred_at;
            let minutes =
                |dice: &mut Dice, low, high| at + Duration::minutes(dice.between(low, high));
            match &event.event {
                CaseEvent::Reported(reported) => {
                    let resident = match &reported.details {
                        ReportDetails::ResidentReport { resident, .. }
                        | ReportDetails::ServiceRequest { resident, .. } => {
                            Some(resident.id.clone())
                        }
                        ReportDetails::PatrolFinding { .. } => None,
                    };
                    self.cases.entry(case_id).or_default().resident = resident;
                }
                CaseEvent::Dispatched(dispatched) => {
                    let known = self.cases.entry(case_id).or_default();
                    known.cell = Some(dispatched.cell.clone());
                    known.assignee = Some(dispatched.assignee.clone());
                    self.task_arrives(case_id, &dispatched.assignee, at);
                }
                CaseEvent::Reassigned(reassigned) => {
                    let known = self.cases.entry(case_id).or_default();
                    known.cell = Some(reassigned.cell.clone());
                    known.assignee = Some(reassigned.to_worker.clone());
                    self.task_arrives(case_id, &reassigned.to_worker, at);
                }
                CaseEvent::Escalated(escalated) => {
                    let known = self.cases.entry(case_id).or_default();
                    known.cell = Some(escalated.cell.clone());
                    known.assignee = None;
                }
                CaseEvent::Declined(_) => {
                    self.cases.entry(case_id).or_default().assignee = None;
                }
                CaseEvent::Acknowledged(acknowledged) => {
                    let start = minutes(&mut self.dice, 5, 30);
                    self.command(
                        start,
                        case_id,
                        &acknowledged.worker_id,
                        WorkerCommand::Start {},
                    );
                }
                CaseEvent::HandlingStarted(started) if event.actor.id == started.worker_id => {
                    if self.dice.chance(12) {
                        let when = minutes(&mut self.dice, 5, 40);
                        self.command(
                            when,
                            case_id,
                            &started.worker_id,
                            WorkerCommand::Suspend {
                                reason: SuspendReason::WaitingForResident,
                                note: Some("住户不在家,约定稍后上门".into()),
                            },
                        );
                    } else {
                        let when = self.handling_time(at, &started.worker_id);
                        self.resolve(when, case_id, &started.worker_id);
                    }
                }
                CaseEvent::Suspended(_) => {
                    if let Some(worker) = self.assignee_of(case_id) {
                        let when = minutes(&mut self.dice, 40, 180);
                        self.command(
                            when,
                            case_id,
                            &worker,
                            WorkerCommand::Resume {
                                note: Some("已与住户约好,继续处理".into()),
                            },
                        );
                    }
                }
                CaseEvent::Resumed(_) => {
                    if let Some(worker) = self.assignee_of(case_id) {
                        let when = minutes(&mut self.dice, 20, 90);
                        self.resolve(when, case_id, &worker);
                    }
                }
                CaseEvent::ReworkRequested(_) => {
                    if let Some(worker) = self.assignee_of(case_id) {
                        let when = minutes(&mut self.dice, 30, 120);
                        self.resolve(when, case_id, &worker);
                    }
                }
                CaseEvent::Resolved(_) => {
                    // Self-handled patrol findings close in the same commit: nothing to verify.
                    let closes_now = commit
                        .events
                        .iter()
                        .any(|e| matches!(e.event, CaseEvent::Closed(_)));
                    let cell = self.cases.get(&case_id).and_then(|k| k.cell.clone());
                    let supervisor = cell.as_deref().and_then(|c| self.grid.supervisor_of(c));
                    if let (false, Some(supervisor)) = (closes_now, supervisor.map(str::to_owned)) {
                        let when = minutes(&mut self.dice, 20, 120);
                        let passed = self.dice.chance(86);
                        let notes = (!passed).then(|| self.dice.pick(VERIFY_FAILURES).to_string());
                        self.command(
                            when,
                            case_id,
                            &supervisor,
                            WorkerCommand::Verify { passed, notes },
                        );
                    }
                }
                CaseEvent::Closed(closed) if closed.closure == ClosureKind::Verified => {
                    let resident = self.cases.get(&case_id).and_then(|k| k.resident.clone());
                    if let (Some(resident), true) = (resident, self.dice.chance(70)) {
                        let when = minutes(&mut self.dice, 30, 300);
                        let message = evaluation_message(&mut self.dice, case_id, &resident, when);
                        self.plan(when, Act::Evaluate(message));
                    }
                }
                CaseEvent::Closed(_)
                | CaseEvent::Rejected(_)
                | CaseEvent::Voided(_)
                | CaseEvent::Merged(_) => {
                    // Keep what evaluation needs until the case is evaluated; forget the rest.
                    if let Some(known) = self.cases.get_mut(&case_id) {
                        known.cell = None;
                        known.assignee = None;
                    }
                }
                CaseEvent::Evaluated(_) => {
                    self.cases.remove(&case_id);
                }
                _ => {}
            }
        }
    }

    /// A task reached a worker: they take it, decline it, or — absent — do nothing.
    fn task_arrives(&mut self, case_id: CaseId, worker: &str, at: DateTime<Utc>) {
        let habit = self.habit(worker);
        if habit == Habit::Absent {
            return;
        }
        if self.dice.chance(7) {
            let when = at + Duration::minutes(self.dice.between(3, 20));
            let reason = self.dice.pick(DECLINE_REASONS).to_string();
            self.command(when, case_id, worker, WorkerCommand::Decline { reason });
            return;
        }
        let delay = match habit {
            Habit::Prompt => self.dice.between(2, 45),
            _ => self.dice.between(60, 200),
        };
        self.command(
            at + Duration::minutes(delay),
            case_id,
            worker,
            WorkerCommand::Acknowledge {},
        );
    }

    /// How long handling takes: mostly an hour or two, sometimes most of a day.
    fn handling_time(&mut self, at: DateTime<Utc>, worker: &str) -> DateTime<Utc> {
        let minutes = match (self.habit(worker), self.dice.below(10)) {
            (Habit::Slow, _) | (_, 0) => self.dice.between(300, 1_200),
            _ => self.dice.between(15, 150),
        };
        at + Duration::minutes(minutes)
    }

    fn resolve(&mut self, at: DateTime<Utc>, case_id: CaseId, worker: &str) {
        let notes = self.dice.pick(RESOLUTIONS).to_string();
        self.command(
            at,
            case_id,
            worker,
            WorkerCommand::Resolve {
                notes,
                media: Vec::new(),
            },
        );
    }

    /// The worker who holds a case, as far as the people know.
    fn assignee_of(&self, case_id: CaseId) -> Option<String> {
        self.cases
            .get(&case_id)
            .and_then(|known| known.assignee.clone())
    }
}
