//! Shared by the read-side tests: a simulated city that turns random operations into a real
//! event history (through the engine's `CaseService` on a `MemoryLog`, with a
//! `ManualClock` and the engine's own SLA timer book recording warnings and breaches), and
//! helpers to read a log back and compare read models.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use proptest::prelude::*;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::{CaseCommand, CaseStatus};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, MemoryLog, StoredCommit};
use wangge_engine::runtime::timers::TimerBook;
use wangge_projections::FoldContext;
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, GridLocation, IntakeKind, PatrolKind, Priority,
    ReportDetails, Resident, SlaStep, Source, SuspendReason, Tier, TimeLimit, TimeUnit,
};

/// A Monday morning in the sample city (08:30 local, UTC+8).
pub fn start_of_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 30, 0).unwrap()
}

/// One step of a simulated day.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new case: its intake kind (0..3), building and category (indexes, wrapped).
    Report {
        kind: u8,
        building: usize,
        category: usize,
        fixed_on_spot: bool,
    },
    /// Somebody acts on an existing case (index, wrapped).
    Act { case: usize, action: Action },
    /// Time passes; the timers record whatever fell due.
    Wait { minutes: u32 },
}

#[derive(Debug, Clone)]
pub enum Action {
    /// The next step of the closed loop, whatever the case's status (or nothing).
    Advance {
        worker: usize,
        satisfaction: u8,
    },
    Accept {
        priority: u8,
    },
    Dispatch {
        worker: usize,
    },
    Acknowledge,
    Decline,
    Reassign {
        worker: usize,
    },
    Start,
    Suspend {
        reason: u8,
    },
    Resume,
    Extend,
    Resolve,
    VerifyPass,
    VerifyFail,
    SelfHandle,
    Reopen,
    Evaluate {
        satisfaction: u8,
    },
    Escalate {
        to_district: bool,
    },
    Reject,
    Void,
    Merge {
        into: usize,
    },
    Comment,
}

pub fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        24 => (any::<usize>(), 1u8..=5).prop_map(|(worker, satisfaction)| Action::Advance { worker, satisfaction }),
        4 => (0u8..4).prop_map(|priority| Action::Accept { priority }),
        4 => any::<usize>().prop_map(|worker| Action::Dispatch { worker }),
        4 => Just(Action::Acknowledge),
        1 => Just(Action::Decline),
        1 => any::<usize>().prop_map(|worker| Action::Reassign { worker }),
        3 => Just(Action::Start),
        1 => (0u8..3).prop_map(|reason| Action::Suspend { reason }),
        1 => Just(Action::Resume),
        1 => Just(Action::Extend),
        3 => Just(Action::Resolve),
        3 => Just(Action::VerifyPass),
        1 => Just(Action::VerifyFail),
        1 => Just(Action::SelfHandle),
        1 => Just(Action::Reopen),
        2 => (1u8..=5).prop_map(|satisfaction| Action::Evaluate { satisfaction }),
        1 => any::<bool>().prop_map(|to_district| Action::Escalate { to_district }),
        1 => Just(Action::Reject),
        1 => Just(Action::Void),
        1 => any::<usize>().prop_map(|into| Action::Merge { into }),
        1 => Just(Action::Comment),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, any::<usize>(), any::<usize>(), any::<bool>()).prop_map(
            |(kind, building, category, fixed_on_spot)| Op::Report {
                kind,
                building,
                category,
                fixed_on_spot
            }
        ),
        10 => (any::<usize>(), action()).prop_map(|(case, action)| Op::Act { case, action }),
        3 => prop_oneof![5 => 1u32..60, 1 => 60u32..(24 * 60)].prop_map(|minutes| Op::Wait { minutes }),
    ]
}

/// The sample city, driven by operations.
pub struct Simulation<L: EventLog> {
    pub service: CaseService<L>,
    pub clock: Arc<ManualClock>,
    timers: TimerBook,
    pub cases: Vec<CaseId>,
    observed: u64,
    buildings: Vec<GridLocation>,
    workers: Vec<String>,
    categories: Vec<Vec<String>>,
    messages: u64,
}

impl Simulation<MemoryLog> {
    pub fn in_memory() -> Self {
        Self::on(MemoryLog::new())
    }
}

impl<L: EventLog + Clone> Simulation<L> {
    pub fn on(log: L) -> Self {
        let grid = Arc::new(GridDirectory::sample_city());
        let catalogue = Arc::new(CategoryCatalogue::sample());
        let clock = Arc::new(ManualClock::starting_at(start_of_day()));
        let mut buildings: Vec<GridLocation> = grid
            .building_codes()
            .filter_map(|code| grid.locate_building(code).cloned())
            .collect();
        buildings.sort_by(|a, b| a.building.cmp(&b.building));
        let mut workers: Vec<String> = grid.workers().map(|w| w.id.clone()).collect();
        workers.sort();
        let categories = IntakeKind::ALL
            .iter()
            .map(|kind| {
                catalogue
                    .codes_for(*kind)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        Self {
            service: CaseService::new(log, clock.clone()),
            timers: TimerBook::new(grid, catalogue),
            clock,
            cases: Vec::new(),
            observed: 0,
            buildings,
            workers,
            categories,
            messages: 0,
        }
    }

    pub fn log(&self) -> &L {
        self.service.log()
    }

    fn request(&mut self, case_id: CaseId, command: CaseCommand) -> CommandRequest {
        self.messages += 1;
        CommandRequest {
            case_id,
            command,
            actor: Actor::system("simulation"),
            source: Source {
                system: "simulation".to_owned(),
                message_id: format!("m{}", self.messages),
            },
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// Sends a command; a refusal is part of the simulation (nothing is written).
    async fn send(&mut self, case_id: CaseId, command: CaseCommand) {
        let request = self.request(case_id, command);
        let _ = self.service.handle(request).await;
    }

    pub async fn run_all(&mut self, ops: &[Op]) {
        for op in ops {
            self.run(op).await;
        }
        // Whatever happens today: warnings and breaches up to a week later.
        self.run(&Op::Wait {
            minutes: 7 * 24 * 60,
        })
        .await;
    }

    pub async fn run(&mut self, op: &Op) {
        match op {
            Op::Report {
                kind,
                building,
                category,
                fixed_on_spot,
            } => {
                self.report(*kind, *building, *category, *fixed_on_spot)
                    .await
            }
            Op::Act { case, action } => {
                if self.cases.is_empty() {
                    return;
                }
                let case_id = self.cases[case % self.cases.len()];
                self.act(case_id, action).await;
            }
            Op::Wait { minutes } => {
                self.clock
                    .advance(chrono::Duration::minutes(i64::from(*minutes)));
            }
        }
        self.fire_timers().await;
    }

    async fn report(&mut self, kind: u8, building: usize, category: usize, fixed_on_spot: bool) {
        let kind = IntakeKind::ALL[usize::from(kind) % 3];
        // A handful of buildings, so that cells have several cases and patrols coincide.
        let location = self.buildings[building % self.buildings.len().min(8)].clone();
        let codes = &self.categories[IntakeKind::ALL.iter().position(|k| *k == kind).unwrap()];
        let category = codes[category % codes.len()].clone();
        let n = self.cases.len();
        let resident = Resident {
            id: format!("resident-{}", n % 7),
            contact: None,
            legacy_contact: None,
        };
        let details = match kind {
            IntakeKind::ResidentReport => ReportDetails::ResidentReport {
                channel: Channel::MiniProgram,
                resident,
            },
            IntakeKind::ServiceRequest => ReportDetails::ServiceRequest {
                channel: Channel::Hotline12345,
                resident,
            },
            IntakeKind::PatrolFinding => ReportDetails::PatrolFinding {
                worker_id: self.workers[n % self.workers.len()].clone(),
                patrol_kind: PatrolKind::Daily,
                fixed_on_spot,
            },
        };
        let case_id = CaseId::new_v7();
        let command = CaseCommand::Report {
            location,
            report: CaseReported {
                intake_clock: None,
                title: format!("case {n}: {category}"),
                description: "seen on the way".to_owned(),
                reported_category: category,
                media: Vec::new(),
                coordinates: None,
                details,
            },
        };
        let request = self.request(case_id, command);
        if self.service.handle(request).await.is_ok() {
            self.cases.push(case_id);
        }
    }

    async fn act(&mut self, case_id: CaseId, action: &Action) {
        let Ok((state, _)) = self.service.state_of(case_id).await else {
            return;
        };
        let Some(location) = state.location.clone() else {
            return;
        };
        let holder = state
            .assignee
            .clone()
            .unwrap_or_else(|| self.workers[0].clone());
        let worker = |index: &usize| self.workers[index % self.workers.len()].clone();
        let action = match action {
            Action::Advance {
                worker,
                satisfaction,
            } => match state.status {
                CaseStatus::Reported => Action::Accept {
                    priority: (*worker % 4) as u8,
                },
                CaseStatus::AwaitingDispatch => Action::Dispatch { worker: *worker },
                CaseStatus::Dispatched => Action::Acknowledge,
                CaseStatus::Acknowledged => Action::Start,
                CaseStatus::InProgress => Action::Resolve,
                CaseStatus::Suspended => Action::Resume,
                CaseStatus::Resolved => Action::VerifyPass,
                CaseStatus::Closed if !state.evaluated => Action::Evaluate {
                    satisfaction: *satisfaction,
                },
                _ => return,
            },
            other => other.clone(),
        };
        let action = &action;
        let command = match action {
            Action::Advance { .. } => return,
            Action::Accept { priority } => CaseCommand::Accept {
                category: String::new(),
                priority: [
                    Priority::Urgent,
                    Priority::High,
                    Priority::Normal,
                    Priority::Low,
                ][usize::from(*priority) % 4],
            },
            Action::Dispatch { worker: index } => {
                let tier = state.tier.unwrap_or(Tier::Building);
                let cell = state
                    .cell
                    .clone()
                    .unwrap_or_else(|| location.building.clone());
                CaseCommand::Dispatch {
                    tier,
                    cell,
                    assignee: worker(index),
                }
            }
            Action::Acknowledge => CaseCommand::Acknowledge { worker_id: holder },
            Action::Decline => CaseCommand::Decline {
                worker_id: holder,
                reason: "not my street".to_owned(),
            },
            Action::Reassign { worker: index } => CaseCommand::Reassign {
                to_worker: worker(index),
                tier: state.tier.unwrap_or(Tier::Building),
                cell: state
                    .cell
                    .clone()
                    .unwrap_or_else(|| location.building.clone()),
                reason: "on leave".to_owned(),
            },
            Action::Start => CaseCommand::StartHandling { worker_id: holder },
            Action::Suspend { reason } => CaseCommand::Suspend {
                reason: [
                    SuspendReason::WaitingForResident,
                    SuspendReason::WaitingForParts,
                    SuspendReason::Parked,
                ][usize::from(*reason) % 3],
                note: None,
            },
            Action::Resume => CaseCommand::Resume { note: None },
            Action::Extend => CaseCommand::GrantExtension {
                step: SlaStep::Resolve,
                extension: TimeLimit {
                    amount: 1,
                    unit: TimeUnit::WorkingDays,
                },
                reason: "parts on order".to_owned(),
            },
            Action::Resolve => CaseCommand::Resolve {
                worker_id: holder,
                notes: "done".to_owned(),
                media: Vec::new(),
            },
            Action::VerifyPass | Action::VerifyFail => CaseCommand::Verify {
                verifier: format!("supervisor-{}", location.community),
                passed: matches!(action, Action::VerifyPass),
                notes: matches!(action, Action::VerifyFail).then(|| "still broken".to_owned()),
            },
            Action::SelfHandle => CaseCommand::SelfHandle {
                worker_id: state.patrol_worker.clone().unwrap_or(holder),
                notes: "fixed on the spot".to_owned(),
                media: Vec::new(),
            },
            Action::Reopen => CaseCommand::Reopen {
                reason: "came back".to_owned(),
            },
            Action::Evaluate { satisfaction } => CaseCommand::Evaluate {
                satisfaction: *satisfaction,
                comment: None,
                resolved: None,
                level: None,
                channel: None,
            },
            Action::Escalate { to_district } => {
                let (to_tier, cell) = if *to_district || state.tier == Some(Tier::Community) {
                    (Tier::District, location.district.clone())
                } else {
                    (Tier::Community, location.community.clone())
                };
                CaseCommand::Escalate {
                    to_tier,
                    cell,
                    reason: "needs more hands".to_owned(),
                }
            }
            Action::Reject => CaseCommand::Reject {
                reason: "not a case".to_owned(),
            },
            Action::Void => CaseCommand::Void {
                reason: "a test".to_owned(),
            },
            Action::Merge { into } => {
                let into_case_id = self.cases[into % self.cases.len()];
                if into_case_id == case_id {
                    return;
                }
                CaseCommand::Merge {
                    into_case_id,
                    reason: None,
                }
            }
            Action::Comment => CaseCommand::Comment {
                text: "called the resident".to_owned(),
            },
        };
        self.send(case_id, command).await;
    }

    /// Folds the new commits into the timer book and records every warning and breach
    /// that fell due by now, as the engine's timers would.
    async fn fire_timers(&mut self) {
        loop {
            for commit in read_log(self.log(), self.observed + 1).await {
                self.observed = commit.position;
                self.timers.observe(&commit);
            }
            let now = self.clock.now();
            let jobs = self.timers.take_due(now, |_| true);
            let mut fired = false;
            for job in jobs {
                if let Some(command) = job.timer.command() {
                    let request = self.request(job.case_id, command);
                    if self.service.handle(request).await.is_ok() {
                        fired = true;
                    }
                }
            }
            if !fired {
                return;
            }
        }
    }
}

/// Every commit of the log from `from` up to its head now.
pub async fn read_log<L: EventLog>(log: &L, from: u64) -> Vec<StoredCommit> {
    let head = log.head().await.expect("log head");
    if head < from {
        return Vec::new();
    }
    let mut commits = Vec::new();
    let mut stream = log.read_from(from);
    while let Some(commit) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the log hands out its commits")
    {
        let commit = commit.expect("read the log");
        let position = commit.position;
        commits.push(commit);
        if position >= head {
            break;
        }
    }
    commits
}

pub fn context() -> FoldContext {
    FoldContext::bundled()
}
