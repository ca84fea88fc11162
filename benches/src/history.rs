//! A realistic city log at any size, made fast and without a server: for the read-side
//! benchmarks, which need millions of events.
//!
//! Every event is decided by the engine's own pure core (`decide` → `stamp` → `apply`), so
//! the history is one the engine could have written: cases reported in building cells of
//! the sample city, accepted, dispatched to a worker of the cell, acknowledged (some late,
//! with the SLA warnings and breaches the timers would record), handled, resolved,
//! verified (some sent back for rework), closed and evaluated — and some still open at
//! every step, as a live city has them. Commits of many cases interleave in log order.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use wangge_engine::domain::{
    apply, decide, location_for, stamp, CaseCommand, CaseState, EventMeta,
};
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::StoredCommit;
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, GridLocation, Priority, ReportDetails, Resident, SlaStep,
    Source, Tier,
};

/// Cases whose commits interleave in one stretch of the log.
const INTERLEAVE: usize = 500;

/// A deterministic xorshift generator.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn minutes(&mut self, low: i64, high: i64) -> Duration {
        Duration::minutes(low + (self.next() % (high - low + 1) as u64) as i64)
    }
}

const REPORTS: &[(&str, &str)] = &[
    ("12栋3单元1-6门口下水道堵塞", "drainage.blocked"),
    ("小区垃圾不分类,异味严重", "sanitation.garbage_unsorted"),
    ("新起点A区路灯不亮", "lighting.street_light_out"),
    ("楼道灯坏了", "lighting.stairwell_light_out"),
    ("消防通道被私家车占用", "traffic.fire_lane_parking"),
];

/// Makes a city's log, stretch by stretch.
pub struct CityHistory {
    dice: Dice,
    /// `(building cell, its location, a worker covering it)`, in code order.
    cells: Vec<(GridLocation, String)>,
    next_position: u64,
    next_case: u64,
    /// When the next case is reported.
    clock: DateTime<Utc>,
    /// Time between reports.
    spacing: Duration,
    /// Seal headers for the commits, when they are to carry them: their own generator, so
    /// the cases are the same with and without.
    seals: Option<Dice>,
}

impl CityHistory {
    /// A history starting at `start`, one report every `spacing`.
    pub fn new(grid: &GridDirectory, seed: u64, start: DateTime<Utc>, spacing: Duration) -> Self {
        let mut codes: Vec<&str> = grid.building_codes().collect();
        codes.sort_unstable();
        let cells = codes
            .into_iter()
            .filter_map(|code| {
                let location = grid.locate_building(code)?.clone();
                let worker = grid.workers_of(code).find(|w| w.on_duty)?.id.clone();
                Some((location, worker))
            })
            .collect();
        Self {
            dice: Dice(seed.max(1)),
            cells,
            next_position: 1,
            next_case: 0,
            clock: start,
            spacing,
            seals: None,
        }
    }

    /// A year up to now with `cases` reports spread evenly over it (seed 3: the history the
    /// read-side benches share), sealed or not.
    pub fn last_year(grid: &GridDirectory, cases: usize, sealed: bool) -> Self {
        let year = Duration::days(365);
        let spacing =
            Duration::milliseconds((year.num_milliseconds() / cases.max(1) as i64).max(1));
        let history = Self::new(grid, 3, Utc::now() - year, spacing);
        if sealed {
            history.with_seal_headers()
        } else {
            history
        }
    }

    /// The same history with every commit carrying seal headers of the engine's shape: key
    /// id, a 64-byte signature in base64, the link the engine's rule gives (the digest of the
    /// case's previous signature), the payload's digest. The signature and digest are random
    /// bytes, not signatures (nothing verifies them): what the read models store of a sealed
    /// log, for measuring sizes.
    pub fn with_seal_headers(mut self) -> Self {
        self.seals = Some(Dice(self.dice.0 ^ 0x5EA1_5EA1_5EA1_5EA1));
        self
    }

    /// The seal headers of a case's next commit, after `previous` (its last commit's seal).
    fn seal_headers(&mut self, previous: Option<&str>) -> Option<wangge_engine::log::StoredSeal> {
        use base64::Engine as _;
        let dice = self.seals.as_mut()?;
        let mut random = |bytes: &mut [u8]| {
            for byte in bytes {
                *byte = dice.next() as u8;
            }
        };
        let mut signature = [0_u8; 64];
        random(&mut signature);
        let mut payload_sha256 = [0_u8; 32];
        random(&mut payload_sha256);
        // One engine key for the whole log, as one engine instance has.
        let key_id = "3f9a2c71d04b8e65";
        let seal = format!(
            "{key_id}:{}",
            base64::engine::general_purpose::STANDARD.encode(signature)
        );
        let link = hex::encode(wangge_engine::domain::seal::next_link_after(previous));
        Some(wangge_engine::log::StoredSeal {
            seal,
            link: Some(link),
            payload_sha256,
        })
    }

    /// The next `cases` cases' commits, interleaved in log order with positions continuing
    /// the log. Each case's commits are in order; a case's lifecycle ends in this stretch.
    pub fn stretch(&mut self, cases: usize) -> Vec<StoredCommit> {
        let mut lives: Vec<Vec<(Vec<wangge_schemas::EventEnvelope>, DateTime<Utc>)>> =
            (0..cases).map(|_| self.one_case()).collect();
        // Interleave: commits in order of when they happened, cases in groups.
        let mut commits: Vec<(
            DateTime<Utc>,
            usize,
            usize,
            Vec<wangge_schemas::EventEnvelope>,
        )> = Vec::new();
        for (index, life) in lives.iter_mut().enumerate() {
            for (step, (events, at)) in life.drain(..).enumerate() {
                commits.push((at, index / INTERLEAVE, step * cases + index, events));
            }
        }
        commits.sort_by_key(|(at, group, order, _)| (*group, *at, *order));
        // Each case's last seal header, for the next commit's link (a case's lifecycle ends
        // in its stretch, so this is dropped with it).
        let mut last_seal: std::collections::HashMap<CaseId, String> = Default::default();
        commits
            .into_iter()
            .map(|(_, _, _, events)| {
                let position = self.next_position;
                self.next_position += 1;
                let case_id = events[0].case_id;
                // A synthetic log, never appended by an engine: unsealed, like a log written
                // before sealing, unless seal headers were asked for.
                let seal = self.seal_headers(last_seal.get(&case_id).map(String::as_str));
                if let Some(seal) = &seal {
                    last_seal.insert(case_id, seal.seal.clone());
                }
                StoredCommit {
                    position,
                    case_id,
                    events,
                    seal,
                }
            })
            .collect()
    }

    /// One case's commits, each with the instant it happened.
    fn one_case(&mut self) -> Vec<(Vec<wangge_schemas::EventEnvelope>, DateTime<Utc>)> {
        self.next_case += 1;
        let n = self.next_case;
        let case_id = CaseId(Uuid::from_u64_pair(0x0196_0000_0000_7000 | (n >> 48), n));
        let (location, worker) = self.cells[self.dice.below(self.cells.len())].clone();
        let (title, category) = REPORTS[self.dice.below(REPORTS.len())];
        let mut at = self.clock;
        self.clock += self.spacing;
        let mut case = Case {
            id: case_id,
            state: CaseState::default(),
            commits: Vec::new(),
            messages: 0,
        };
        let resident = format!("resident-{}", n % 100_000);
        case.run(
            at,
            Actor::resident(&resident),
            CaseCommand::Report {
                location: location.clone(),
                report: CaseReported {
                    intake_clock: None,
                    title: title.into(),
                    description: format!("{title}。请尽快处理。"),
                    reported_category: category.into(),
                    media: Vec::new(),
                    coordinates: None,
                    details: ReportDetails::ResidentReport {
                        channel: Channel::MiniProgram,
                        resident: Resident {
                            id: resident.clone(),
                            contact: None,
                            legacy_contact: None,
                        },
                    },
                },
            },
        );
        let system = Actor::system("wangge-dispatcher");
        let timer = Actor::system("wangge-sla-timer");
        let worker_actor = Actor::grid_worker(&worker);
        // How far the case gets: most close, some stay open at each step.
        let reach = self.dice.below(100);
        at += self.dice.minutes(1, 20);
        case.run(
            at,
            system.clone(),
            CaseCommand::Accept {
                category: category.into(),
                priority: Priority::Normal,
            },
        );
        if reach < 3 {
            return case.commits;
        }
        at += self.dice.minutes(1, 10);
        case.run(
            at,
            system.clone(),
            CaseCommand::Dispatch {
                tier: Tier::Building,
                cell: location.building.clone(),
                assignee: worker.clone(),
            },
        );
        if reach < 8 {
            return case.commits;
        }
        // Late to acknowledge now and then: the timers' warning and breach come first.
        if self.dice.chance(12) {
            let deadline = at + Duration::hours(2);
            case.run(
                at + Duration::minutes(96),
                timer.clone(),
                CaseCommand::RecordSlaWarning {
                    step: SlaStep::Acknowledge,
                    deadline,
                    threshold_percent: 80,
                },
            );
            case.run(
                deadline,
                timer.clone(),
                CaseCommand::RecordSlaBreach {
                    step: SlaStep::Acknowledge,
                    deadline,
                },
            );
            at = deadline + self.dice.minutes(5, 50);
        } else {
            at += self.dice.minutes(2, 90);
        }
        case.run(
            at,
            worker_actor.clone(),
            CaseCommand::Acknowledge {
                worker_id: worker.clone(),
            },
        );
        if reach < 12 {
            return case.commits;
        }
        at += self.dice.minutes(5, 30);
        case.run(
            at,
            worker_actor.clone(),
            CaseCommand::StartHandling {
                worker_id: worker.clone(),
            },
        );
        if reach < 16 {
            return case.commits;
        }
        at += self.dice.minutes(20, 400);
        case.run(
            at,
            worker_actor.clone(),
            CaseCommand::Resolve {
                worker_id: worker.clone(),
                notes: "已处理完毕".into(),
                media: Vec::new(),
            },
        );
        if reach < 19 {
            return case.commits;
        }
        let supervisor = Actor::supervisor("inspector");
        if self.dice.chance(9) {
            at += self.dice.minutes(20, 120);
            case.run(
                at,
                supervisor.clone(),
                CaseCommand::Verify {
                    verifier: "inspector".into(),
                    passed: false,
                    notes: Some("未彻底处理,返工".into()),
                },
            );
            at += self.dice.minutes(30, 200);
            case.run(
                at,
                worker_actor.clone(),
                CaseCommand::Resolve {
                    worker_id: worker.clone(),
                    notes: "返工完成".into(),
                    media: Vec::new(),
                },
            );
        }
        at += self.dice.minutes(20, 120);
        case.run(
            at,
            supervisor,
            CaseCommand::Verify {
                verifier: "inspector".into(),
                passed: true,
                notes: Some("现场核查通过".into()),
            },
        );
        if self.dice.chance(65) {
            at += self.dice.minutes(30, 600);
            let satisfaction = [5, 5, 5, 4, 4, 4, 3, 3, 2, 1][self.dice.below(10)];
            case.run(
                at,
                Actor::resident(&resident),
                CaseCommand::Evaluate {
                    satisfaction,
                    comment: None,
                    resolved: None,
                    level: None,
                    channel: None,
                },
            );
        }
        case.commits
    }
}

struct Case {
    id: CaseId,
    state: CaseState,
    commits: Vec<(Vec<wangge_schemas::EventEnvelope>, DateTime<Utc>)>,
    messages: u64,
}

impl Case {
    /// Decides a command with the engine's pure core and keeps its events as one commit.
    fn run(&mut self, at: DateTime<Utc>, actor: Actor, command: CaseCommand) {
        let events = decide(&self.state, &command, at).unwrap_or_else(|error| {
            panic!(
                "the history generator wrote an invalid {}: {error}",
                command.name()
            )
        });
        let location = location_for(&self.state, &command).expect("every case has a place");
        self.messages += 1;
        let meta = EventMeta {
            actor,
            source: Source {
                system: "bench-history".into(),
                message_id: format!("{}-{}", self.id, self.messages),
            },
            correlation_id: self.id.0,
            causation_id: None,
            occurred_at: at,
            recorded_at: at,
        };
        let mut counter = 0u64;
        let id = self.id.0.as_u64_pair();
        let envelopes = stamp(&self.state, self.id, &location, events, &meta, || {
            counter += 1;
            Uuid::from_u64_pair(
                id.0 ^ 0xe7e7,
                id.1.wrapping_mul(31)
                    .wrapping_add(self.messages * 8 + counter),
            )
        });
        for envelope in &envelopes {
            self.state = apply(std::mem::take(&mut self.state), envelope);
        }
        self.commits.push((envelopes, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_stretch_is_a_log_the_engine_could_have_written() {
        let grid = GridDirectory::sample_city();
        let start = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mut history = CityHistory::new(&grid, 7, start, Duration::seconds(30));
        let first = history.stretch(1_200);
        let second = history.stretch(300);
        let mut last_sequence: HashMap<CaseId, u64> = HashMap::new();
        let mut position = 0;
        for commit in first.iter().chain(&second) {
            assert_eq!(commit.position, position + 1, "positions follow each other");
            position = commit.position;
            for event in &commit.events {
                let last = last_sequence.entry(event.case_id).or_default();
                assert_eq!(
                    event.sequence,
                    *last + 1,
                    "sequences are gapless in log order"
                );
                *last = event.sequence;
            }
        }
        assert_eq!(last_sequence.len(), 1_500);
        let closed = first
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.event_type() == "case.closed")
            .count();
        assert!(closed > 900 && closed < 1_200, "most cases close: {closed}");
    }
}
