//! The differential test of the read side: one random event history — made by the engine
//! itself, through `CaseService` with a manual clock and the SLA timers' own book — folded
//! into the memory store in one batch and into PostgreSQL in random batch splits; then every
//! query of the `ReadModels` interface, with several sets of parameters each, must answer
//! exactly the same from both.

mod simulation;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, NaiveDate};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use wangge_engine::app::Clock;
use wangge_engine::domain::CaseStatus;
use wangge_engine::log::StoredCommit;
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::fold::Projection;
use wangge_projections::postgres::rollup::{IndicatorLevel, COUNTERS};
use wangge_projections::postgres::schema::all_tables;
use wangge_projections::query::*;
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{MemoryReadModels, PostgresReadModels};
use wangge_schemas::{CaseId, IntakeKind, Tier};
use wangge_testkit::TestDatabase;

use simulation::{context, op, read_log, Simulation};

#[test]
fn every_query_answers_the_same_from_memory_and_from_postgresql() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(TestDatabase::create());
    let postgres = runtime
        .block_on(PostgresReadModels::connect(&database.url(), context()))
        .expect("connect the read models");
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        vec(op(), 20..240).prop_map(after_an_escalation),
        vec(1usize..60, 1..12),
    );
    let outcome = runner.run(&strategy, |(ops, splits)| {
        runtime.block_on(same_answers(&database, &postgres, ops, splits))
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    // The histories must exercise what the indicators are made of, or the comparison
    // says little: rounds due at a breach, and rounds charged to a community or district.
    for (what, count) in [
        ("a round due at its breach", &BREACHED_ROUNDS),
        (
            "a round charged to a community or a district",
            &HIGHER_TIER_ROUNDS,
        ),
    ] {
        assert!(
            count.load(Ordering::Relaxed) > 0,
            "no generated history had {what}"
        );
    }
}

/// Every history begins with a case escalated to its community, so that a round charged to
/// a higher tier is always there to compare (random operations reach one only rarely); what
/// follows is random and may move that case on, too.
fn after_an_escalation(random: Vec<simulation::Op>) -> Vec<simulation::Op> {
    use simulation::{Action, Op};
    let first = |action| Op::Act { case: 0, action };
    let mut ops = vec![
        Op::Report {
            kind: 0,
            building: 0,
            category: 0,
            fixed_on_spot: false,
        },
        first(Action::Accept { priority: 0 }),
        first(Action::Escalate { to_district: false }),
    ];
    ops.extend(random);
    ops
}

/// How many generated histories had a round due at its breach (due but not closed, or
/// closed late).
static BREACHED_ROUNDS: AtomicUsize = AtomicUsize::new(0);
/// How many had a round charged to a community or district cell.
static HIGHER_TIER_ROUNDS: AtomicUsize = AtomicUsize::new(0);

/// Notes what the history's indicators exercise (from the memory store's answers).
async fn tally_what_is_exercised(models: &dyn ReadModels, from: NaiveDate, to: NaiveDate) {
    let total = models
        .indicators(&IndicatorQuery {
            from,
            to,
            district: None,
            community: None,
            cell: None,
            category: None,
            group: None,
        })
        .await
        .expect("the memory store answers");
    if let Some(total) = total.first() {
        let c = &total.counts;
        if c.due > c.closed || c.closed > c.closed_on_time {
            BREACHED_ROUNDS.fetch_add(1, Ordering::Relaxed);
        }
    }
    for tier in [Tier::Community, Tier::District] {
        let ranking = models
            .ranking(&RankingQuery {
                from,
                to,
                district: None,
                community: None,
                tier: Some(tier),
                min_due: Some(1),
                limit: None,
            })
            .await
            .expect("the memory store answers");
        if ranking.ranked_cells > 0 {
            HIGHER_TIER_ROUNDS.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
}

async fn same_answers(
    database: &TestDatabase,
    postgres: &PostgresReadModels,
    ops: Vec<simulation::Op>,
    splits: Vec<usize>,
) -> Result<(), TestCaseError> {
    reset(database).await;
    let mut city = Simulation::in_memory();
    city.run_all(&ops).await;
    let commits = read_log(city.log(), 1).await;
    let now = city.clock.now();

    let memory = MemoryReadModels::new(context());
    memory
        .fold_commits(&commits)
        .await
        .expect("fold into memory");
    fold_in_pieces(postgres, &CasesProjection, &commits, &splits).await;
    fold_in_pieces(postgres, &AuditProjection, &commits, &splits).await;
    fold_in_pieces(postgres, &IndicatorsProjection, &commits, &splits).await;
    fold_in_pieces(postgres, &PatrolsProjection, &commits, &splits).await;

    each_indicator_level_sums_the_one_below(database).await?;
    each_month_sums_its_days(database).await?;
    let memory: &dyn ReadModels = &*memory;
    let postgres: &dyn ReadModels = postgres;
    compare_everything(memory, postgres, &city.cases, now).await
}

/// The community and district levels of the indicators hold exactly the cell level's rows
/// summed by their keys: no row missing, none extra, none with other counts.
async fn each_indicator_level_sums_the_one_below(
    database: &TestDatabase,
) -> Result<(), TestCaseError> {
    let client = database.connect().await;
    for level in IndicatorLevel::ROLLUPS {
        let keys = level.keys().join(", ");
        let mut tables = vec![(level.daily_table(), "indicator_daily", COUNTERS.to_vec())];
        if level.keeps_daily_histograms() {
            tables.push((
                level.durations_table(),
                "indicator_durations",
                vec!["count"],
            ));
        }
        for (rollup, cells, counters) in tables {
            let keys = if cells == "indicator_durations" {
                format!("{keys}, metric, bucket")
            } else {
                keys.clone()
            };
            let differing =
                rows_not_summed(&client, (cells, &keys), (rollup, &keys), &counters).await;
            prop_assert_eq!(differing, 0, "{} disagrees with {}", rollup, cells);
        }
    }
    Ok(())
}

/// Every level's monthly tables hold exactly the cell level's daily rows summed by month
/// and the level's keys.
async fn each_month_sums_its_days(database: &TestDatabase) -> Result<(), TestCaseError> {
    let client = database.connect().await;
    let month = "date_trunc('month', day)::date";
    for level in IndicatorLevel::ALL {
        let keys = level.monthly_keys().join(", ");
        let sources = level.monthly_keys().join(", ").replacen("month", month, 1);
        let mut tables = vec![(level.monthly_table(), "indicator_daily", COUNTERS.to_vec())];
        if let Some(histograms) = level.monthly_durations_table() {
            tables.push((histograms, "indicator_durations", vec!["count"]));
        }
        for (monthly, daily, counters) in tables {
            let (keys, sources) = if daily == "indicator_durations" {
                (
                    format!("{keys}, metric, bucket"),
                    format!("{sources}, metric, bucket"),
                )
            } else {
                (keys.clone(), sources.clone())
            };
            let differing =
                rows_not_summed(&client, (daily, &sources), (monthly, &keys), &counters).await;
            prop_assert_eq!(differing, 0, "{} disagrees with {}", monthly, daily);
        }
    }
    Ok(())
}

/// How many rows of `kept` (its `keys` and `counters`) differ from the rows of `source`
/// summed by the expressions `sources` (in the same order): a row missing, extra, or with
/// other counts.
async fn rows_not_summed(
    client: &tokio_postgres::Client,
    (source, sources): (&str, &str),
    (kept, keys): (&str, &str),
    counters: &[&str],
) -> i64 {
    let sums = counters
        .iter()
        .map(|c| format!("sum({c})::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let stored = counters.join(", ");
    let summed = format!("SELECT {sources}, {sums} FROM {source} GROUP BY {sources}");
    let kept = format!("SELECT {keys}, {stored} FROM {kept}");
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM (({summed} EXCEPT {kept}) UNION ALL \
                 ({kept} EXCEPT {summed})) AS differing"
            ),
            &[],
        )
        .await
        .expect("compare a table with the sums of another")
        .get(0)
}

/// Folds `commits` into PostgreSQL batch by batch, the batch sizes cycling through `splits`.
async fn fold_in_pieces<P: Projection>(
    postgres: &PostgresReadModels,
    projection: &P,
    commits: &[StoredCommit],
    splits: &[usize],
) where
    PostgresReadModels: ProjectionStore<P>,
{
    let mut position = ProjectionStore::<P>::checkpoint(postgres).await.unwrap();
    let mut rest = commits;
    let mut sizes = splits.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap()).min(rest.len());
        let (batch, after) = rest.split_at(size);
        position = project_batch(projection, postgres, position, batch)
            .await
            .expect("fold a batch into postgres");
        rest = after;
    }
}

async fn reset(database: &TestDatabase) {
    let client = database.connect().await;
    client
        .batch_execute(&format!(
            "TRUNCATE {}; UPDATE projection_checkpoints SET position = 0, recorded_at = NULL",
            all_tables().join(", ")
        ))
        .await
        .expect("reset the read models");
}

macro_rules! same {
    ($what:expr, $memory:expr, $postgres:expr) => {{
        let memory = $memory.await;
        let postgres = $postgres.await;
        match (&memory, &postgres) {
            (Ok(m), Ok(p)) => prop_assert_eq!(m, p, "{} differs", $what),
            (Err(m), Err(p)) => {
                prop_assert_eq!(m.to_string(), p.to_string(), "{} fails differently", $what)
            }
            _ => prop_assert!(
                false,
                "{}: memory {:?}, postgres {:?}",
                $what,
                memory,
                postgres
            ),
        }
        memory.ok()
    }};
}

async fn compare_everything(
    memory: &dyn ReadModels,
    postgres: &dyn ReadModels,
    cases: &[CaseId],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), TestCaseError> {
    same!("checkpoints", memory.checkpoints(), postgres.checkpoints());

    // Every case, its view and its trail; and one nobody knows.
    let unknown = CaseId::new_v7();
    for case_id in cases.iter().chain([&unknown]) {
        same!(
            format!("case {case_id}"),
            memory.case(*case_id),
            postgres.case(*case_id)
        );
        same!(
            format!("audit trail of {case_id}"),
            memory.audit_trail(*case_id),
            postgres.audit_trail(*case_id)
        );
    }

    // What the cases hold, to filter by.
    let all = memory
        .cases(&CaseQuery {
            limit: Some(MAX_PAGE),
            ..CaseQuery::default()
        })
        .await
        .unwrap()
        .items;
    let pick = |f: &dyn Fn(&CaseView) -> Option<String>| -> Vec<String> {
        let values: BTreeSet<String> = all.iter().filter_map(f).collect();
        values.into_iter().take(3).collect()
    };
    let districts = pick(&|c| Some(c.summary.location.district.clone()));
    let communities = pick(&|c| Some(c.summary.location.community.clone()));
    let buildings = pick(&|c| Some(c.summary.location.building.clone()));
    let cells = pick(&|c| Some(c.summary.cell.clone()));
    let categories = pick(&|c| c.summary.category.clone());
    let assignees: Vec<String> = {
        let values: BTreeSet<String> = all
            .iter()
            .filter_map(|c| c.summary.assignee.clone())
            .collect();
        values.into_iter().collect()
    };
    let days: BTreeSet<NaiveDate> = all
        .iter()
        .filter_map(|c| c.summary.reported_at)
        .map(|at| (at + Duration::hours(8)).date_naive())
        .collect();
    let first_day = days
        .first()
        .copied()
        .unwrap_or(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    // Rounds fall due up to the week the simulation waits after its last operation.
    let last_day = days.last().copied().unwrap_or(first_day) + Duration::days(14);
    tally_what_is_exercised(memory, first_day, last_day).await;

    // The case list: each filter alone, a few together, and paging through.
    let mut queries = vec![CaseQuery::default()];
    for d in &districts {
        queries.push(CaseQuery {
            district: Some(d.clone()),
            ..Default::default()
        });
    }
    for c in &communities {
        queries.push(CaseQuery {
            community: Some(c.clone()),
            ..Default::default()
        });
    }
    for b in &buildings {
        queries.push(CaseQuery {
            building: Some(b.clone()),
            ..Default::default()
        });
    }
    for c in &cells {
        queries.push(CaseQuery {
            cell: Some(c.clone()),
            open: Some(true),
            ..Default::default()
        });
    }
    for tier in [Tier::Building, Tier::Community, Tier::District] {
        queries.push(CaseQuery {
            tier: Some(tier),
            ..Default::default()
        });
    }
    for status in [
        CaseStatus::Reported,
        CaseStatus::AwaitingDispatch,
        CaseStatus::Dispatched,
        CaseStatus::Closed,
        CaseStatus::Suspended,
    ] {
        queries.push(CaseQuery {
            status: Some(status),
            ..Default::default()
        });
    }
    queries.push(CaseQuery {
        open: Some(true),
        ..Default::default()
    });
    queries.push(CaseQuery {
        open: Some(false),
        ..Default::default()
    });
    for c in &categories {
        queries.push(CaseQuery {
            category: Some(c.clone()),
            ..Default::default()
        });
    }
    for intake in IntakeKind::ALL {
        queries.push(CaseQuery {
            intake: Some(intake),
            ..Default::default()
        });
    }
    for a in assignees.iter().take(3) {
        queries.push(CaseQuery {
            assignee: Some(a.clone()),
            ..Default::default()
        });
    }
    if let Some(middle) = all.get(all.len() / 2).and_then(|c| c.summary.reported_at) {
        queries.push(CaseQuery {
            reported_from: Some(middle),
            ..Default::default()
        });
        queries.push(CaseQuery {
            reported_to: Some(middle),
            ..Default::default()
        });
        queries.push(CaseQuery {
            reported_from: Some(middle - Duration::hours(3)),
            reported_to: Some(middle + Duration::minutes(30)),
            open: Some(true),
            ..Default::default()
        });
    }
    for provisional in [true, false] {
        queries.push(CaseQuery {
            provisional: Some(provisional),
            open: Some(true),
            ..Default::default()
        });
    }
    queries.push(CaseQuery {
        limit: Some(0),
        ..Default::default()
    });
    // Names no case has: nothing, from both.
    queries.push(CaseQuery {
        district: Some("999999999".into()),
        ..Default::default()
    });
    queries.push(CaseQuery {
        assignee: Some("nobody-here".into()),
        category: Some("no.such.category".into()),
        ..Default::default()
    });
    queries.push(CaseQuery {
        cursor: Some("nonsense".into()),
        ..Default::default()
    });
    for query in queries {
        // Page through, three at a time, each store following its own cursors.
        let mut query = CaseQuery {
            limit: query.limit.or(Some(3)),
            ..query
        };
        for _ in 0..200 {
            let page = same!(
                format!("cases {query:?}"),
                memory.cases(&query),
                postgres.cases(&query)
            );
            match page.and_then(|p| p.next_cursor) {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
    }

    // The SLA board in every grouping and scope.
    for group in [
        BoardGroup::District,
        BoardGroup::Community,
        BoardGroup::Cell,
    ] {
        let mut scopes = vec![BoardQuery {
            group: Some(group),
            ..Default::default()
        }];
        for d in &districts {
            scopes.push(BoardQuery {
                group: Some(group),
                district: Some(d.clone()),
                ..Default::default()
            });
        }
        for c in &communities {
            scopes.push(BoardQuery {
                group: Some(group),
                community: Some(c.clone()),
                ..Default::default()
            });
        }
        for tier in [Tier::Building, Tier::Community, Tier::District] {
            scopes.push(BoardQuery {
                group: Some(group),
                tier: Some(tier),
                ..Default::default()
            });
        }
        for query in scopes {
            same!(
                format!("sla board {query:?}"),
                memory.sla_board(&query),
                postgres.sla_board(&query)
            );
        }
    }

    // The overdue list, paged, in scopes.
    let mut overdue = vec![OverdueQuery::default()];
    for d in &districts {
        overdue.push(OverdueQuery {
            district: Some(d.clone()),
            ..Default::default()
        });
    }
    for c in &communities {
        overdue.push(OverdueQuery {
            community: Some(c.clone()),
            ..Default::default()
        });
    }
    for c in &cells {
        overdue.push(OverdueQuery {
            cell: Some(c.clone()),
            ..Default::default()
        });
    }
    overdue.push(OverdueQuery {
        tier: Some(Tier::Community),
        ..Default::default()
    });
    for query in overdue {
        let mut query = OverdueQuery {
            limit: Some(2),
            ..query
        };
        for _ in 0..200 {
            let page = same!(
                format!("overdue {query:?}"),
                memory.overdue(&query, now),
                postgres.overdue(&query, now)
            );
            match page.and_then(|p| p.next_cursor) {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
    }

    // Indicators: every grouping over the whole span and over its first day, in scopes.
    for group in [
        IndicatorGroup::Total,
        IndicatorGroup::Day,
        IndicatorGroup::District,
        IndicatorGroup::Community,
        IndicatorGroup::Cell,
        IndicatorGroup::Category,
    ] {
        // Whole months and parts of months: read by month and by day, they must agree.
        for (from, to) in [
            (first_day, last_day),
            (first_day, first_day),
            (
                first_day - Duration::days(40),
                last_day + Duration::days(40),
            ),
            (first_day + Duration::days(1), last_day - Duration::days(1)),
        ] {
            let base = IndicatorQuery {
                from,
                to,
                district: None,
                community: None,
                cell: None,
                category: None,
                group: Some(group),
            };
            let mut scopes = vec![base.clone()];
            for d in &districts {
                scopes.push(IndicatorQuery {
                    district: Some(d.clone()),
                    ..base.clone()
                });
            }
            for c in &communities {
                scopes.push(IndicatorQuery {
                    community: Some(c.clone()),
                    ..base.clone()
                });
            }
            // A building cell, and the cells that held cases (any tier): rounds are charged
            // to those.
            for c in buildings.iter().take(1).chain(&cells) {
                scopes.push(IndicatorQuery {
                    cell: Some(c.clone()),
                    ..base.clone()
                });
            }
            for c in categories.iter().take(2) {
                scopes.push(IndicatorQuery {
                    category: Some(c.clone()),
                    ..base.clone()
                });
            }
            scopes.push(IndicatorQuery {
                community: Some("999999999999".into()),
                ..base.clone()
            });
            for query in scopes {
                same!(
                    format!("indicators {query:?}"),
                    memory.indicators(&query),
                    postgres.indicators(&query)
                );
            }
        }
    }
    let backwards = IndicatorQuery {
        from: last_day,
        to: first_day - Duration::days(1),
        district: None,
        community: None,
        cell: None,
        category: None,
        group: None,
    };
    same!(
        "indicators backwards",
        memory.indicators(&backwards),
        postgres.indicators(&backwards)
    );

    // 红黑榜, of each tier.
    let rankings = [(Some(1), Some(3)), (Some(2), None), (None, Some(100))]
        .into_iter()
        .flat_map(|rules| {
            [None, Some(Tier::Community), Some(Tier::District)].map(|tier| (rules, tier))
        });
    let ranges = [
        (first_day, last_day),
        (
            first_day - Duration::days(40),
            last_day + Duration::days(40),
        ),
    ];
    for (((min_due, limit), tier), (from, to)) in rankings.flat_map(|r| ranges.map(|d| (r, d))) {
        let mut scopes = vec![RankingQuery {
            from,
            to,
            district: None,
            community: None,
            tier,
            min_due,
            limit,
        }];
        for d in &districts {
            scopes.push(RankingQuery {
                district: Some(d.clone()),
                ..scopes[0].clone()
            });
        }
        for c in communities.iter().take(2) {
            scopes.push(RankingQuery {
                community: Some(c.clone()),
                ..scopes[0].clone()
            });
        }
        for query in scopes {
            same!(
                format!("ranking {query:?}"),
                memory.ranking(&query),
                postgres.ranking(&query)
            );
        }
    }

    // Patrol coverage.
    for (from, to) in [
        (first_day, last_day),
        (first_day, first_day),
        (last_day, last_day + Duration::days(3)),
    ] {
        let base = PatrolQuery {
            from,
            to,
            district: None,
            community: None,
            patrolled: None,
        };
        let mut scopes = vec![base.clone()];
        for d in districts.iter().take(2) {
            scopes.push(PatrolQuery {
                district: Some(d.clone()),
                ..base.clone()
            });
        }
        for c in communities.iter().take(2) {
            scopes.push(PatrolQuery {
                community: Some(c.clone()),
                patrolled: Some(true),
                ..base.clone()
            });
            scopes.push(PatrolQuery {
                community: Some(c.clone()),
                patrolled: Some(false),
                ..base.clone()
            });
        }
        scopes.push(PatrolQuery {
            district: Some("nowhere".into()),
            ..base.clone()
        });
        for query in scopes {
            same!(
                format!("patrols {query:?}"),
                memory.patrol_coverage(&query),
                postgres.patrol_coverage(&query)
            );
        }
    }

    // Every worker's inbox, and a stranger's.
    for worker in assignees.iter().map(String::as_str).chain(["nobody"]) {
        same!(
            format!("inbox of {worker}"),
            memory.inbox(worker),
            postgres.inbox(worker)
        );
    }
    same!(
        "provisional open cases",
        memory.provisional_open_cases(),
        postgres.provisional_open_cases()
    );
    Ok(())
}
