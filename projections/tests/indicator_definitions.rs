//! Every indicator's definition against numbers worked out by hand, on a scripted three days
//! of nine cases in one community of the sample city (学院公寓社区, district 翠苑街道):
//! closed on time, closed late, open past its limit, open within its limit, parked before
//! its limit, escalated to the community and late there, escalated to the district and late
//! there, self-handled, and closed on time then reopened and closed late. The timers'
//! breaches are recorded by hand at their deadlines, as the SLA timers do. The same history
//! folded into PostgreSQL answers the same.

mod city;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use city::City;
use wangge_engine::domain::CaseCommand;
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::{IndicatorCounts, IndicatorsProjection};
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::fold::Projection;
use wangge_projections::query::*;
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{PostgresReadModels, ReadModels};
use wangge_schemas::{Actor, CaseId, GridLocation, Priority, SlaStep, SuspendReason, Tier};
use wangge_testkit::TestDatabase;

const DISTRICT: &str = "330106001";
const COMMUNITY: &str = "330106001001";
/// 2栋, 4栋 and 6栋 of the community.
const B1: &str = "330106001001001";
const B2: &str = "330106001001002";
const B3: &str = "330106001001003";
const COMMUNITY_WORKER: &str = "cs-330106001001-1";
const DISTRICT_WORKER: &str = "ds-330106001-urban";

/// Local time (UTC+8) on a day of November 2026.
fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .single()
        .expect("a valid time")
        - Duration::hours(8)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).expect("a date")
}

fn local_day(instant: DateTime<Utc>) -> NaiveDate {
    (instant + Duration::hours(8)).date_naive()
}

/// The story's three days: Tuesday 24th to Thursday 26th.
fn story(group: IndicatorGroup) -> IndicatorQuery {
    IndicatorQuery {
        from: day(24),
        to: day(26),
        district: None,
        community: None,
        cell: None,
        category: None,
        group: Some(group),
    }
}

fn ranking(tier: Option<Tier>, min_due: Option<i64>) -> RankingQuery {
    RankingQuery {
        from: day(24),
        to: day(26),
        district: None,
        community: None,
        tier,
        min_due,
        limit: None,
    }
}

/// The due-day counters `(due, closed, closed_on_time)` of a row.
fn due_counts(counts: &IndicatorCounts) -> (i64, i64, i64) {
    (counts.due, counts.closed, counts.closed_on_time)
}

struct Story {
    city: City,
    workers: [String; 3],
    buildings: [GridLocation; 3],
}

impl Story {
    fn new() -> Self {
        let city = City::new();
        let (b1, w1) = city.building(0);
        let (b2, w2) = city.building(1);
        let (b3, w3) = city.building(2);
        assert_eq!(
            [&b1.building, &b2.building, &b3.building],
            [B1, B2, B3],
            "the sample city's first three buildings"
        );
        Self {
            city,
            workers: [w1, w2, w3],
            buildings: [b1, b2, b3],
        }
    }

    fn at(&self, instant: DateTime<Utc>) {
        assert!(instant >= self.city.now(), "the story runs forwards");
        self.city.clock.set(instant);
    }

    /// A resident's report in building `n`, accepted and dispatched to its worker now.
    async fn dispatched(&self, n: usize, priority: Priority) -> CaseId {
        let case_id = self
            .city
            .resident_reports(&self.buildings[n], "drainage.blocked")
            .await;
        self.city
            .accept(case_id, "drainage.blocked", priority)
            .await;
        self.city
            .dispatch(case_id, &self.buildings[n], &self.workers[n])
            .await;
        case_id
    }

    async fn acknowledge(&self, case_id: CaseId, worker: &str) {
        self.city
            .worker(
                case_id,
                worker,
                CaseCommand::Acknowledge {
                    worker_id: worker.into(),
                },
            )
            .await;
    }

    async fn resolve(&self, case_id: CaseId, worker: &str) {
        self.city
            .worker(
                case_id,
                worker,
                CaseCommand::Resolve {
                    worker_id: worker.into(),
                    notes: "已处理".into(),
                    media: Vec::new(),
                },
            )
            .await;
    }

    async fn verify(&self, case_id: CaseId, passed: bool) {
        self.city
            .run(
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

    async fn supervisor(&self, case_id: CaseId, command: CaseCommand) {
        self.city
            .run(case_id, Actor::supervisor("sup-330106001001"), command)
            .await;
    }

    /// Moved up to `tier` and dispatched there to `worker`.
    async fn escalate(&self, case_id: CaseId, tier: Tier, cell: &str, worker: &str) {
        self.supervisor(
            case_id,
            CaseCommand::Escalate {
                to_tier: tier,
                cell: cell.into(),
                reason: "需要上级协调".into(),
            },
        )
        .await;
        self.supervisor(
            case_id,
            CaseCommand::Dispatch {
                tier,
                cell: cell.into(),
                assignee: worker.into(),
            },
        )
        .await;
    }

    async fn evaluate(&self, case_id: CaseId, satisfaction: u8) {
        self.city
            .run(
                case_id,
                Actor::resident("resident-1"),
                CaseCommand::Evaluate {
                    satisfaction,
                    comment: None,
                    resolved: None,
                    level: None,
                    channel: None,
                },
            )
            .await;
    }

    /// The running step's deadline, as the engine recorded it.
    async fn deadline(&self, case_id: CaseId) -> DateTime<Utc> {
        let models = self.city.read_models().await;
        let case = models.case(case_id).await.unwrap().expect("the case");
        assert_eq!(case.sla.step, Some(SlaStep::Resolve), "{case_id}");
        case.sla.deadline.expect("a resolve deadline")
    }

    /// The SLA timer records the breach of the resolve step at its deadline.
    async fn breach(&self, case_id: CaseId, deadline: DateTime<Utc>) {
        self.city
            .timer_records(case_id, SlaStep::Resolve, deadline, true)
            .await;
    }
}

/// The nine cases, all reported on Tuesday 24th (high priority: one working day to resolve,
/// unless said otherwise). The expected figures are in the test below.
async fn three_days() -> Story {
    let s = Story::new();
    let [w1, w2, w3] = s.workers.clone();

    // Tuesday 24th.
    s.at(at(24, 9, 0));
    let a = s.dispatched(0, Priority::High).await; // A: closed on time (after a rework)
    let b = s.dispatched(0, Priority::High).await; // B: closed late
    let h = s.dispatched(0, Priority::High).await; // H: on time, reopened, then late
    let c = s.dispatched(1, Priority::High).await; // C: open past its limit
    let d = s.dispatched(1, Priority::Normal).await; // D: open within its limit (5 working days)
    let e = s.dispatched(1, Priority::High).await; // E: parked before its limit
    let i = s.dispatched(1, Priority::High).await; // I: the district's, late there
    let f = s.dispatched(2, Priority::High).await; // F: the community's, late there
    s.at(at(24, 9, 30));
    for (case_id, worker) in [(a, &w1), (b, &w1), (h, &w1), (c, &w2), (d, &w2), (e, &w2)] {
        s.acknowledge(case_id, worker).await;
    }
    // F and I are moved up before their building workers answered (within the two hours).
    s.escalate(f, Tier::Community, COMMUNITY, COMMUNITY_WORKER)
        .await;
    s.escalate(i, Tier::District, DISTRICT, DISTRICT_WORKER)
        .await;
    s.at(at(24, 9, 40));
    s.acknowledge(f, COMMUNITY_WORKER).await;
    s.acknowledge(i, DISTRICT_WORKER).await;
    // G: a patrol finding 6栋's worker fixed on the spot (自处理).
    s.at(at(24, 10, 0));
    let g = s.city.patrol_finds(&s.buildings[2], &w3, true).await;
    s.city
        .worker(
            g,
            &w3,
            CaseCommand::SelfHandle {
                worker_id: w3.clone(),
                notes: "已现场清理".into(),
                media: Vec::new(),
            },
        )
        .await;
    // E: handling starts, then the case is parked (挂账) well before its limit.
    s.city
        .worker(
            e,
            &w2,
            CaseCommand::StartHandling {
                worker_id: w2.clone(),
            },
        )
        .await;
    s.at(at(24, 10, 30));
    s.supervisor(
        e,
        CaseCommand::Suspend {
            reason: SuspendReason::Parked,
            note: None,
        },
    )
    .await;
    // A: resolved, sent back once, resolved again and closed within the day.
    s.resolve(a, &w1).await;
    s.at(at(24, 10, 40));
    s.verify(a, false).await;
    s.at(at(24, 11, 0));
    s.resolve(a, &w1).await;
    s.at(at(24, 11, 10));
    s.verify(a, true).await;
    s.evaluate(a, 5).await;
    // H, first round: closed within its limit.
    s.resolve(h, &w1).await;
    s.at(at(24, 11, 20));
    s.verify(h, true).await;

    // Wednesday 25th: H comes back, and the limits of B, C, F and I run out (at the close
    // of business on the next working day after Tuesday).
    s.at(at(25, 9, 0));
    s.supervisor(
        h,
        CaseCommand::Reopen {
            reason: "又堵了".into(),
        },
    )
    .await;
    s.city.dispatch(h, &s.buildings[0], &w1).await;
    s.at(at(25, 9, 10));
    s.acknowledge(h, &w1).await;
    let mut deadlines = Vec::new();
    for case_id in [b, c, f, i] {
        deadlines.push((case_id, s.deadline(case_id).await));
    }
    for (_, deadline) in &deadlines {
        assert_eq!(
            local_day(*deadline),
            day(25),
            "one working day after Tuesday"
        );
    }
    s.at(deadlines.iter().map(|(_, at)| *at).max().unwrap());
    for (case_id, deadline) in deadlines {
        s.breach(case_id, deadline).await;
    }

    // Thursday 26th: B and F are closed late in the morning; H's second round runs out at
    // the close of business and is closed late after it.
    s.at(at(26, 10, 0));
    s.resolve(b, &w1).await;
    s.resolve(f, COMMUNITY_WORKER).await;
    s.at(at(26, 10, 10));
    s.verify(b, true).await;
    s.verify(f, true).await;
    s.evaluate(b, 2).await;
    let h_deadline = s.deadline(h).await;
    assert_eq!(local_day(h_deadline), day(26));
    s.at(h_deadline);
    s.breach(h, h_deadline).await;
    s.at(h_deadline + Duration::minutes(10));
    s.resolve(h, &w1).await;
    s.at(h_deadline + Duration::minutes(20));
    s.verify(h, true).await;
    s.at(at(26, 18, 0));
    // D is still within its five working days; E stands parked; C and I stay open.
    assert_eq!(
        local_day(s.deadline(d).await).weekday(),
        chrono::Weekday::Tue
    );
    s
}

#[tokio::test]
async fn every_indicator_is_counted_as_defined() {
    let story = three_days().await;
    let models = story.city.read_models().await;
    check_figures(&*models).await;

    // The same history in PostgreSQL answers the same, query for query.
    let database = TestDatabase::create().await;
    let postgres = PostgresReadModels::connect(&database.url(), story.city.context.clone())
        .await
        .expect("connect the read models");
    let commits = story.city.commits().await;
    fold(&postgres, &CasesProjection, &commits).await;
    fold(&postgres, &AuditProjection, &commits).await;
    fold(&postgres, &IndicatorsProjection, &commits).await;
    fold(&postgres, &PatrolsProjection, &commits).await;
    check_figures(&*postgres).await;
}

async fn fold<P: Projection>(
    postgres: &PostgresReadModels,
    projection: &P,
    commits: &[wangge_engine::log::StoredCommit],
) where
    PostgresReadModels: ProjectionStore<P>,
{
    // In batches of three commits, so cases span batches.
    let mut position = 0;
    for batch in commits.chunks(3) {
        position = project_batch(projection, postgres, position, batch)
            .await
            .expect("fold a batch into PostgreSQL");
    }
}

async fn check_figures(models: &dyn ReadModels) {
    // ---- The whole story -------------------------------------------------------------
    let total = &models
        .indicators(&story(IndicatorGroup::Total))
        .await
        .unwrap()[0];
    let c = &total.counts;
    // 立案: all nine, each once (the reopened H too).
    assert_eq!(c.registered, 9);
    // 应结案, by round: A, G and H's first round (closed on time, due when they closed);
    // B, C, F and I (due at their breach on Wednesday, closed or not); H's second round (due
    // at its breach on Thursday). Not due: D (within its limit) and E (parked before it).
    // 结案: all of them but C and I, still open. 按期结案: A, G and H's first round.
    assert_eq!(due_counts(c), (8, 6, 3));
    assert_eq!(total.closure_rate, Some(0.75));
    assert_eq!(total.on_time_closure_rate, Some(0.375));
    // 返工率: A was sent back once, of the five with a result reported (A, B, F, G, H).
    assert_eq!((c.reworked, c.handled), (1, 5));
    assert_eq!(total.rework_rate, Some(0.2));
    // 响应率: all eight dispatched cases were acknowledged within two working hours (F and I
    // by the community and the district, H in both rounds); G, self-handled, never was.
    assert_eq!((c.responded_on_time, c.dispatched), (8, 8));
    assert_eq!(total.response_rate, Some(1.0));
    // 解决率 and 满意率: A scored 5, B scored 2.
    assert_eq!(
        (c.evaluated, c.resolved_for_resident, c.satisfied),
        (2, 1, 1)
    );
    assert_eq!(total.satisfaction_rate, Some(0.5));
    assert_eq!(total.resolution_rate, Some(0.5));

    // ---- Day by day: each counter on its own cohort's day -----------------------------
    let days = models
        .indicators(&story(IndicatorGroup::Day))
        .await
        .unwrap();
    let keys: Vec<&str> = days.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["2026-11-24", "2026-11-25", "2026-11-26"]);
    let (tuesday, wednesday, thursday) = (&days[0], &days[1], &days[2]);
    // Tuesday: every report, and the three rounds closed within their limit that day.
    assert_eq!(tuesday.counts.registered, 9);
    assert_eq!(due_counts(&tuesday.counts), (3, 3, 3));
    assert_eq!(tuesday.closure_rate, Some(1.0));
    // B's evaluation came on Thursday; it counts with its report, on Tuesday.
    assert_eq!(tuesday.counts.evaluated, 2);
    // Wednesday: B, C, F and I ran out of time; B and F closed since (on Thursday), late.
    assert_eq!(wednesday.counts.registered, 0);
    assert_eq!(due_counts(&wednesday.counts), (4, 2, 0));
    assert_eq!(wednesday.closure_rate, Some(0.5));
    assert_eq!(wednesday.on_time_closure_rate, Some(0.0));
    assert_eq!(
        wednesday.rework_rate, None,
        "no case was reported on Wednesday"
    );
    // Thursday: H's second round, due at its breach, closed late.
    assert_eq!(due_counts(&thursday.counts), (1, 1, 0));

    // ---- Cell by cell: late rounds charged to whoever held the case -----------------
    let cells = models
        .indicators(&story(IndicatorGroup::Cell))
        .await
        .unwrap();
    let cell = |code: &str| {
        cells
            .iter()
            .find(|r| r.key == code)
            .unwrap_or_else(|| panic!("no row for {code}: {cells:?}"))
    };
    let keys: Vec<&str> = cells.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, [DISTRICT, COMMUNITY, B1, B2, B3]);
    // 2栋: A, B, H reported; due A, B and H twice; on time A and H's first round.
    assert_eq!(cell(B1).counts.registered, 3);
    assert_eq!(due_counts(&cell(B1).counts), (4, 4, 2));
    assert_eq!(cell(B1).counts.reworked, 1);
    // 4栋: C, D, E, I reported; only C is due here (I went late at the district).
    assert_eq!(cell(B2).counts.registered, 4);
    assert_eq!(due_counts(&cell(B2).counts), (1, 0, 0));
    // 6栋: F and G reported; G is its own, F is not charged here: the community held it.
    assert_eq!(cell(B3).counts.registered, 2);
    assert_eq!(due_counts(&cell(B3).counts), (1, 1, 1));
    // The community cell answers for F, the district for I: no reports, only due rounds.
    assert_eq!(cell(COMMUNITY).counts.registered, 0);
    assert_eq!(due_counts(&cell(COMMUNITY).counts), (1, 1, 0));
    assert_eq!(due_counts(&cell(DISTRICT).counts), (1, 0, 0));

    // A case held by the district counts under the community '' (and in no community).
    let communities = models
        .indicators(&story(IndicatorGroup::Community))
        .await
        .unwrap();
    let keys: Vec<&str> = communities.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["", COMMUNITY]);
    assert_eq!(due_counts(&communities[0].counts), (1, 0, 0));
    assert_eq!(due_counts(&communities[1].counts), (7, 6, 3));
    // Asking for the community cell alone gives F's round.
    let community_cell = models
        .indicators(&IndicatorQuery {
            cell: Some(COMMUNITY.into()),
            ..story(IndicatorGroup::Total)
        })
        .await
        .unwrap();
    assert_eq!(due_counts(&community_cell[0].counts), (1, 1, 0));

    // ---- 红黑榜 ------------------------------------------------------------------------
    // Building cells with a due round: 6栋 1/1, 2栋 2/4, 4栋 0/1. Three ranked: one on each
    // list, 2栋 in the middle on neither.
    let board = models.ranking(&ranking(None, Some(1))).await.unwrap();
    assert_eq!(
        (board.ranked_cells, board.min_due, board.tier),
        (3, 1, Tier::Building)
    );
    let red: Vec<(&str, i64, i64)> = board
        .red
        .iter()
        .map(|c| (c.cell.as_str(), c.closed_on_time, c.due))
        .collect();
    let black: Vec<(&str, i64, i64)> = board
        .black
        .iter()
        .map(|c| (c.cell.as_str(), c.closed_on_time, c.due))
        .collect();
    assert_eq!(red, [(B3, 1, 1)]);
    assert_eq!(black, [(B2, 0, 1)]);
    assert_eq!(board.red[0].on_time_closure_rate, 1.0);
    assert_eq!(board.black[0].closure_rate, 0.0);
    // At least two due rounds: 2栋 alone, which is no ranking.
    let board = models.ranking(&ranking(None, Some(2))).await.unwrap();
    assert_eq!(board.ranked_cells, 1);
    assert!(board.red.is_empty() && board.black.is_empty());
    // The default minimum of 10 ranks nobody in a story of nine cases.
    let board = models.ranking(&ranking(None, None)).await.unwrap();
    assert_eq!((board.ranked_cells, board.min_due), (0, DEFAULT_MIN_DUE));
    // The community and the district are ranked among their own tier.
    for (tier, code) in [(Tier::Community, COMMUNITY), (Tier::District, DISTRICT)] {
        let board = models.ranking(&ranking(Some(tier), Some(1))).await.unwrap();
        assert_eq!(board.ranked_cells, 1, "{tier:?}");
        let community_only = models
            .ranking(&RankingQuery {
                community: Some(COMMUNITY.into()),
                ..ranking(Some(tier), Some(1))
            })
            .await
            .unwrap();
        let expected = usize::from(code == COMMUNITY);
        assert_eq!(community_only.ranked_cells, expected, "{tier:?}");
    }
}
