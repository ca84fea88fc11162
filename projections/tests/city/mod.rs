//! A small city to write read-model tests in: the sample grid, the engine's own command
//! handler on an in-memory log, a clock moved by hand, and the read models fed from the log.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::log::{EventLog, MemoryLog, StoredCommit};
use wangge_projections::{FoldContext, MemoryReadModels};
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, GridLocation, PatrolKind, Priority, ReportDetails,
    Resident, SlaStep, Source, Tier,
};

pub struct City {
    pub clock: ManualClock,
    pub log: MemoryLog,
    pub cases: CaseService<MemoryLog>,
    pub context: FoldContext,
    messages: std::sync::atomic::AtomicU64,
}

/// Tuesday 2026-11-24, 09:00 in Beijing (01:00 UTC): a working day.
pub fn tuesday_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0)
        .single()
        .unwrap()
}

impl City {
    pub fn new() -> Self {
        let clock = ManualClock::starting_at(tuesday_morning());
        let log = MemoryLog::new();
        let cases = CaseService::new(log.clone(), Arc::new(clock.clone()));
        Self {
            clock,
            log,
            cases,
            context: FoldContext::bundled(),
            messages: Default::default(),
        }
    }

    pub fn grid(&self) -> Arc<wangge_engine::grid::LiveGrid> {
        self.context.grid()
    }

    /// A building cell (the n-th in code order) and a worker who covers it.
    pub fn building(&self, n: usize) -> (GridLocation, String) {
        let grid = self.grid();
        let mut codes: Vec<&str> = grid.building_codes().collect();
        codes.sort_unstable();
        let code = codes[n % codes.len()];
        let location = grid.locate_building(code).unwrap().clone();
        let worker = grid
            .workers_of(code)
            .find(|w| w.on_duty)
            .map(|w| w.id.clone())
            .unwrap_or_else(|| format!("worker-{code}"));
        (location, worker)
    }

    pub fn later(&self, minutes: i64) {
        self.clock.advance(Duration::minutes(minutes));
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs a command; panics with the refusal if the case rules refuse it.
    pub async fn run(&self, case_id: CaseId, actor: Actor, command: CaseCommand) {
        let n = self
            .messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = CommandRequest {
            case_id,
            command: command.clone(),
            actor,
            source: Source {
                system: "read-model-test".into(),
                message_id: format!("m-{n}"),
            },
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
        };
        if let Err(error) = self.cases.handle(request).await {
            panic!("{} refused: {error}", command.name());
        }
    }

    /// A resident reports a blocked drain (high priority, 1 working day to resolve).
    pub async fn resident_reports(&self, location: &GridLocation, category: &str) -> CaseId {
        let case_id = CaseId::new_v7();
        let report = CaseReported {
            intake_clock: None,
            title: "12栋3单元1-6门口下水道堵塞".into(),
            description: "下水道堵塞,污水外溢".into(),
            reported_category: category.into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::MiniProgram,
                resident: Resident {
                    id: "resident-1".into(),
                    contact: None,
                    legacy_contact: None,
                },
            },
        };
        self.run(
            case_id,
            Actor::resident("resident-1"),
            CaseCommand::Report {
                location: location.clone(),
                report,
            },
        )
        .await;
        case_id
    }

    /// A grid worker records a patrol finding.
    pub async fn patrol_finds(
        &self,
        location: &GridLocation,
        worker: &str,
        fixed_on_spot: bool,
    ) -> CaseId {
        let case_id = CaseId::new_v7();
        let report = CaseReported {
            intake_clock: None,
            title: "楼道堆放杂物,堵塞消防通道".into(),
            description: "巡查发现".into(),
            reported_category: "fire_safety.corridor_blocked".into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::PatrolFinding {
                worker_id: worker.into(),
                patrol_kind: PatrolKind::FireSafety,
                fixed_on_spot,
            },
        };
        self.run(
            case_id,
            Actor::grid_worker(worker),
            CaseCommand::Report {
                location: location.clone(),
                report,
            },
        )
        .await;
        case_id
    }

    pub async fn accept(&self, case_id: CaseId, category: &str, priority: Priority) {
        let command = CaseCommand::Accept {
            category: category.into(),
            priority,
        };
        self.run(case_id, Actor::system("dispatcher"), command)
            .await;
    }

    pub async fn dispatch(&self, case_id: CaseId, location: &GridLocation, worker: &str) {
        let command = CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: location.building.clone(),
            assignee: worker.into(),
        };
        self.run(case_id, Actor::system("dispatcher"), command)
            .await;
    }

    pub async fn worker(&self, case_id: CaseId, worker: &str, command: CaseCommand) {
        self.run(case_id, Actor::grid_worker(worker), command).await;
    }

    /// Reported, accepted and dispatched to the building's worker.
    pub async fn dispatched_case(&self, location: &GridLocation, worker: &str) -> CaseId {
        let case_id = self.resident_reports(location, "drainage.blocked").await;
        self.later(5);
        self.accept(case_id, "drainage.blocked", Priority::High)
            .await;
        self.later(5);
        self.dispatch(case_id, location, worker).await;
        case_id
    }

    /// The worker acknowledges, handles and resolves; the supervisor verifies.
    pub async fn handle_to_closing(&self, case_id: CaseId, worker: &str, passed: bool) {
        self.worker(
            case_id,
            worker,
            CaseCommand::Acknowledge {
                worker_id: worker.into(),
            },
        )
        .await;
        self.later(10);
        self.worker(
            case_id,
            worker,
            CaseCommand::StartHandling {
                worker_id: worker.into(),
            },
        )
        .await;
        self.later(40);
        self.worker(
            case_id,
            worker,
            CaseCommand::Resolve {
                worker_id: worker.into(),
                notes: "已疏通".into(),
                media: Vec::new(),
            },
        )
        .await;
        self.later(30);
        self.run(
            case_id,
            Actor::supervisor("inspector"),
            CaseCommand::Verify {
                verifier: "inspector".into(),
                passed,
                notes: (!passed).then(|| "未彻底处理,返工".to_owned()),
            },
        )
        .await;
    }

    /// Records the warning or breach of a step at `deadline`, as the SLA timer would.
    pub async fn timer_records(
        &self,
        case_id: CaseId,
        step: SlaStep,
        deadline: DateTime<Utc>,
        breach: bool,
    ) {
        let command = if breach {
            CaseCommand::RecordSlaBreach { step, deadline }
        } else {
            CaseCommand::RecordSlaWarning {
                step,
                deadline,
                threshold_percent: 80,
            }
        };
        self.run(case_id, Actor::system("wangge-sla-timer"), command)
            .await;
    }

    /// Every commit in the log so far.
    pub async fn commits(&self) -> Vec<StoredCommit> {
        let head = self.log.head().await.unwrap();
        self.log
            .read_from(1)
            .take(head as usize)
            .map(|commit| commit.unwrap())
            .collect()
            .await
    }

    /// Read models folded from the whole log.
    pub async fn read_models(&self) -> Arc<MemoryReadModels> {
        let models = MemoryReadModels::new(self.context.clone());
        models.fold_commits(&self.commits().await).await.unwrap();
        models
    }
}
