//! The read models as supervisors rely on them: each test is a day in the sample city,
//! driven through the engine's own command handler, then read back through the one query
//! interface of the in-memory read models.

mod city;

use chrono::{Duration, NaiveDate};
use city::City;
use wangge_engine::domain::{CaseCommand, CaseStatus};
use wangge_projections::fold::audit::{verify_trail, AuditProblemKind, AuditRecord};
use wangge_projections::fold::cases::Light;
use wangge_projections::query::*;
use wangge_projections::ReadModels;
use wangge_schemas::{Priority, SlaStep, SuspendReason, Tier};

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn the_day() -> IndicatorQuery {
    IndicatorQuery {
        from: day("2026-11-24"),
        to: day("2026-11-24"),
        district: None,
        community: None,
        cell: None,
        category: None,
        group: None,
    }
}

#[tokio::test]
async fn a_dispatched_case_is_green_on_its_building_and_in_the_workers_inbox() {
    let city = City::new();
    let (location, worker) = city.building(0);
    let case_id = city.dispatched_case(&location, &worker).await;
    let models = city.read_models().await;

    let case = models
        .case(case_id)
        .await
        .unwrap()
        .expect("the case is there");
    assert_eq!(case.summary.status, CaseStatus::Dispatched);
    assert_eq!(case.summary.assignee.as_deref(), Some(worker.as_str()));
    assert_eq!(case.summary.tier, Some(Tier::Building));
    assert_eq!(case.sla.step, Some(SlaStep::Acknowledge));
    assert_eq!(case.sla.light, Some(Light::Green));
    // Two working hours to acknowledge, from 09:10 Beijing time.
    assert_eq!(
        case.sla.deadline,
        Some(city::tuesday_morning() + Duration::minutes(10) + Duration::hours(2))
    );

    let board = models
        .sla_board(&BoardQuery {
            community: Some(location.community.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].code, location.building);
    assert_eq!(board[0].tier, Some(Tier::Building));
    assert_eq!((board[0].counts.green, board[0].counts.red), (1, 0));
    assert_eq!(board[0].light, Light::Green);

    let inbox = models.inbox(&worker).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].case_id, case_id);
    assert!(models.inbox("somebody-else").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_recorded_warning_turns_a_case_yellow_and_a_breach_red_with_how_late() {
    let city = City::new();
    let (location, worker) = city.building(3);
    let case_id = city.dispatched_case(&location, &worker).await;
    let deadline = city
        .read_models()
        .await
        .case(case_id)
        .await
        .unwrap()
        .unwrap()
        .sla
        .deadline
        .unwrap();

    city.later(100);
    city.timer_records(case_id, SlaStep::Acknowledge, deadline, false)
        .await;
    let models = city.read_models().await;
    assert_eq!(
        models.case(case_id).await.unwrap().unwrap().sla.light,
        Some(Light::Yellow)
    );
    let by_district = models
        .sla_board(&BoardQuery {
            group: Some(BoardGroup::District),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_district.len(), 1);
    assert_eq!(by_district[0].code, location.district);
    assert_eq!(by_district[0].light, Light::Yellow);

    city.later(30);
    city.timer_records(case_id, SlaStep::Acknowledge, deadline, true)
        .await;
    let models = city.read_models().await;
    assert_eq!(
        models.case(case_id).await.unwrap().unwrap().sla.light,
        Some(Light::Red)
    );
    let now = deadline + Duration::minutes(45);
    let overdue = models.overdue(&OverdueQuery::default(), now).await.unwrap();
    assert_eq!(overdue.items.len(), 1);
    let late = &overdue.items[0];
    assert_eq!(late.case_id, case_id);
    assert_eq!(late.step, SlaStep::Acknowledge);
    assert_eq!(late.assignee.as_deref(), Some(worker.as_str()));
    assert_eq!(late.late_by_seconds, 45 * 60);

    // The worker finally acknowledges: a new step, a new clock, green again.
    city.worker(
        case_id,
        &worker,
        CaseCommand::Acknowledge {
            worker_id: worker.clone(),
        },
    )
    .await;
    let models = city.read_models().await;
    let case = models.case(case_id).await.unwrap().unwrap();
    assert_eq!(
        (case.sla.step, case.sla.light),
        (Some(SlaStep::Resolve), Some(Light::Green))
    );
    assert!(models
        .overdue(&OverdueQuery::default(), now)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_case_closed_within_its_limit_leaves_the_board_and_counts_as_closed_on_time() {
    let city = City::new();
    let (location, worker) = city.building(7);
    let case_id = city.dispatched_case(&location, &worker).await;
    city.later(15);
    city.handle_to_closing(case_id, &worker, true).await;
    city.later(60);
    city.run(
        case_id,
        wangge_schemas::Actor::resident("resident-1"),
        CaseCommand::Evaluate {
            satisfaction: 5,
            comment: None,
            resolved: None,
            level: None,
            channel: None,
        },
    )
    .await;
    let models = city.read_models().await;

    let case = models.case(case_id).await.unwrap().unwrap();
    assert_eq!(case.summary.status, CaseStatus::Closed);
    assert_eq!(case.sla.light, None);
    assert!(models
        .sla_board(&BoardQuery::default())
        .await
        .unwrap()
        .is_empty());
    assert!(models.inbox(&worker).await.unwrap().is_empty());

    let rows = models.indicators(&the_day()).await.unwrap();
    assert_eq!(rows.len(), 1);
    let total = &rows[0];
    assert_eq!(total.key, "total");
    assert_eq!(
        (
            total.counts.registered,
            total.counts.closed,
            total.counts.closed_on_time
        ),
        (1, 1, 1)
    );
    assert_eq!(total.closure_rate, Some(1.0));
    assert_eq!(total.on_time_closure_rate, Some(1.0));
    assert_eq!(total.response_rate, Some(1.0));
    assert_eq!(total.satisfaction_rate, Some(1.0));
    assert_eq!(total.rework_rate, Some(0.0));
    // Acknowledged 15 minutes after dispatch: reported as the upper bound of its bucket.
    let bucket = wangge_projections::fold::histogram::bucket_of(15 * 60);
    assert_eq!(
        total.time_to_acknowledge_p50_seconds,
        Some(wangge_projections::fold::histogram::upper_bound_seconds(
            bucket
        ))
    );
    assert!((15 * 60..=15 * 75).contains(&total.time_to_acknowledge_p50_seconds.unwrap()));
    // Reported at 09:00, closed at 10:45.
    let bucket = wangge_projections::fold::histogram::bucket_of(105 * 60);
    assert_eq!(
        total.time_to_close_p50_seconds,
        Some(wangge_projections::fold::histogram::upper_bound_seconds(
            bucket
        ))
    );
}

#[tokio::test]
async fn a_case_resolved_after_its_limit_is_closed_but_not_on_time_and_rework_counts() {
    let city = City::new();
    let (location, worker) = city.building(11);
    let late = city.dispatched_case(&location, &worker).await;
    let on_time = city.dispatched_case(&location, &worker).await;
    city.worker(
        late,
        &worker,
        CaseCommand::Acknowledge {
            worker_id: worker.clone(),
        },
    )
    .await;
    // High priority: one working day to resolve; two calendar days pass.
    city.later(2 * 24 * 60);
    city.worker(
        late,
        &worker,
        CaseCommand::Resolve {
            worker_id: worker.clone(),
            notes: "迟到的处理".into(),
            media: Vec::new(),
        },
    )
    .await;
    city.run(
        late,
        wangge_schemas::Actor::supervisor("inspector"),
        CaseCommand::Verify {
            verifier: "inspector".into(),
            passed: true,
            notes: None,
        },
    )
    .await;
    // The other one is sent back once, then passes.
    city.handle_to_closing(on_time, &worker, false).await;
    city.worker(
        on_time,
        &worker,
        CaseCommand::Resolve {
            worker_id: worker.clone(),
            notes: "返工完成".into(),
            media: Vec::new(),
        },
    )
    .await;
    city.run(
        on_time,
        wangge_schemas::Actor::supervisor("inspector"),
        CaseCommand::Verify {
            verifier: "inspector".into(),
            passed: true,
            notes: None,
        },
    )
    .await;
    let models = city.read_models().await;
    // Both were reported today and handled two days later. The late one fell due when it
    // closed (no timer ran here to record its breach) and still counts as late: its resolve
    // step ended past the deadline in force.
    let three_days = IndicatorQuery {
        to: day("2026-11-26"),
        ..the_day()
    };
    let total = &models.indicators(&three_days).await.unwrap()[0];
    assert_eq!(total.counts.registered, 2);
    assert_eq!(total.counts.due, 2);
    assert_eq!(total.counts.closed, 2);
    assert_eq!(
        total.counts.closed_on_time, 1,
        "the late one is not on time"
    );
    assert_eq!(total.counts.reworked, 1);
    assert_eq!(total.rework_rate, Some(0.5));
    assert_eq!(total.on_time_closure_rate, Some(0.5));
    // On the report day neither was due yet: registered, but in no closure rate.
    let today = &models.indicators(&the_day()).await.unwrap()[0];
    assert_eq!(
        (
            today.counts.registered,
            today.counts.due,
            today.counts.closed
        ),
        (2, 0, 0)
    );
    assert_eq!(today.closure_rate, None);

    // One cell is not a ranking: it is ranked, but on neither list.
    let ranking = models
        .ranking(&RankingQuery {
            from: day("2026-11-24"),
            to: day("2026-11-26"),
            district: None,
            community: None,
            tier: None,
            min_due: Some(1),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(ranking.ranked_cells, 1);
    assert!(
        ranking.red.is_empty() && ranking.black.is_empty(),
        "{ranking:?}"
    );
}

#[tokio::test]
async fn a_suspended_case_keeps_its_light_and_names_the_reason() {
    let city = City::new();
    let (location, worker) = city.building(2);
    let case_id = city.dispatched_case(&location, &worker).await;
    city.worker(
        case_id,
        &worker,
        CaseCommand::Acknowledge {
            worker_id: worker.clone(),
        },
    )
    .await;
    city.worker(
        case_id,
        &worker,
        CaseCommand::StartHandling {
            worker_id: worker.clone(),
        },
    )
    .await;
    city.worker(
        case_id,
        &worker,
        CaseCommand::Suspend {
            reason: SuspendReason::WaitingForParts,
            note: Some("等配件".into()),
        },
    )
    .await;
    let models = city.read_models().await;
    let case = models.case(case_id).await.unwrap().unwrap();
    assert_eq!(case.summary.status, CaseStatus::Suspended);
    assert_eq!(
        case.summary.suspension,
        Some(SuspendReason::WaitingForParts)
    );
    assert_eq!(case.sla.step, Some(SlaStep::Resolve));
    assert_eq!(case.sla.light, Some(Light::Green));
    assert_eq!(models.inbox(&worker).await.unwrap().len(), 1);
}

#[tokio::test]
async fn patrol_coverage_lists_every_cell_of_the_community_patrolled_or_not() {
    let city = City::new();
    let (location, worker) = city.building(0);
    city.patrol_finds(&location, &worker, true).await;
    city.later(120);
    city.patrol_finds(&location, &worker, false).await;
    let models = city.read_models().await;
    let report = models
        .patrol_coverage(&PatrolQuery {
            from: day("2026-11-24"),
            to: day("2026-11-24"),
            district: None,
            community: Some(location.community.clone()),
            patrolled: None,
        })
        .await
        .unwrap();
    let grid = city.grid();
    let buildings_in_community = grid
        .building_codes()
        .filter(|code| grid.locate_building(code).unwrap().community == location.community)
        .count();
    assert_eq!(report.cells.len(), buildings_in_community);
    assert_eq!(report.patrolled, 1);
    assert_eq!(report.not_patrolled, buildings_in_community - 1);
    let patrolled = report
        .cells
        .iter()
        .find(|c| c.cell == location.building)
        .unwrap();
    assert_eq!(
        (
            patrolled.days_patrolled,
            patrolled.findings,
            patrolled.fixed_on_spot
        ),
        (1, 2, 1)
    );
    assert_eq!(patrolled.last_worker.as_deref(), Some(worker.as_str()));
    assert_eq!(
        patrolled.last_patrol_at,
        Some(city::tuesday_morning() + Duration::minutes(120))
    );

    let not_patrolled = models
        .patrol_coverage(&PatrolQuery {
            from: day("2026-11-24"),
            to: day("2026-11-24"),
            district: None,
            community: Some(location.community.clone()),
            patrolled: Some(false),
        })
        .await
        .unwrap();
    assert!(not_patrolled.cells.iter().all(|c| c.days_patrolled == 0));
    assert_eq!(not_patrolled.cells.len(), buildings_in_community - 1);
}

#[tokio::test]
async fn the_audit_trail_chains_every_event_with_actor_time_and_what_changed() {
    let city = City::new();
    let (location, worker) = city.building(5);
    let case_id = city.dispatched_case(&location, &worker).await;
    city.handle_to_closing(case_id, &worker, true).await;
    let models = city.read_models().await;
    let trail = models.audit_trail(case_id).await.unwrap().expect("a trail");
    assert!(trail.problems.is_empty(), "{:?}", trail.problems);
    let types: Vec<&str> = trail
        .entries
        .iter()
        .map(|e| e.entry.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "case.reported",
            "case.accepted",
            "case.dispatched",
            "case.acknowledged",
            "case.handling_started",
            "case.resolved",
            "case.verified",
            "case.closed"
        ]
    );
    assert_eq!(
        trail.entries[0].prev_hash,
        wangge_projections::fold::audit::GENESIS_HASH
    );
    for pair in trail.entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let dispatched = &trail.entries[2].entry;
    assert_eq!(dispatched.actor.id, "dispatcher");
    let assignee = dispatched
        .changes
        .iter()
        .find(|c| c.field == "assignee")
        .unwrap();
    assert_eq!(
        (assignee.from.as_deref(), assignee.to.as_deref()),
        (None, Some(worker.as_str()))
    );
    let status = dispatched
        .changes
        .iter()
        .find(|c| c.field == "status")
        .unwrap();
    assert_eq!(status.to.as_deref(), Some("dispatched"));
}

fn records_of(trail: &AuditTrail) -> Vec<AuditRecord> {
    trail
        .entries
        .iter()
        .map(|e| AuditRecord {
            case_id: e.entry.case_id,
            sequence: e.entry.sequence,
            event_id: e.entry.event_id,
            event_type: e.entry.event_type.clone(),
            actor_id: e.entry.actor.id.clone(),
            occurred_at: e.entry.occurred_at,
            entry_json: serde_json::to_string(&e.entry).unwrap(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
            // The hash chain's checks alone (seals: `audit_seals` tests).
            seal: None,
        })
        .collect()
}

#[tokio::test]
async fn verification_names_every_entry_that_was_altered_removed_or_inserted() {
    let city = City::new();
    let (location, worker) = city.building(9);
    let case_id = city.dispatched_case(&location, &worker).await;
    city.handle_to_closing(case_id, &worker, true).await;
    let trail = city
        .read_models()
        .await
        .audit_trail(case_id)
        .await
        .unwrap()
        .unwrap();
    let records = records_of(&trail);
    let head = (
        records.last().unwrap().sequence,
        records.last().unwrap().hash.clone(),
    );
    let verify = |records: &[AuditRecord]| verify_trail(case_id, records, Some((head.0, &head.1)));
    assert!(verify(&records).is_empty(), "the stored trail is intact");

    // Someone changes who acted on entry 3.
    let mut altered = records.clone();
    altered[2].entry_json = altered[2]
        .entry_json
        .replace("\"dispatcher\"", "\"somebody\"");
    let problems = verify(&altered);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].kind.clone(), problems[0].sequence),
        (AuditProblemKind::Altered, 3)
    );
    assert_eq!(problems[0].event_id, Some(records[2].event_id));
    assert!(problems[0].to_string().contains(&case_id.to_string()));

    // … and covers it up by re-hashing it: the next entry still links to the original.
    altered[2].hash =
        wangge_projections::fold::audit::chain_hash(&altered[2].prev_hash, &altered[2].entry_json);
    let problems = verify(&altered);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].kind.clone(), problems[0].sequence),
        (AuditProblemKind::Altered, 3)
    );

    // Entry 4 removed.
    let mut removed = records.clone();
    removed.remove(3);
    let problems = verify(&removed);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].kind.clone(), problems[0].sequence),
        (AuditProblemKind::Removed, 4)
    );

    // The last entry removed: only the head knows.
    let mut truncated = records.clone();
    truncated.pop();
    let problems = verify(&truncated);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, AuditProblemKind::Removed);
    assert_eq!(problems[0].sequence, head.0);

    // A forged entry appended with a valid link and hash.
    let mut inserted = records.clone();
    let mut forged = inserted.last().unwrap().clone();
    forged.sequence += 1;
    let mut entry = forged.entry().unwrap();
    entry.sequence = forged.sequence;
    forged.entry_json = serde_json::to_string(&entry).unwrap();
    forged.prev_hash = inserted.last().unwrap().hash.clone();
    forged.hash =
        wangge_projections::fold::audit::chain_hash(&forged.prev_hash, &forged.entry_json);
    inserted.push(forged);
    let problems = verify(&inserted);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].kind.clone(), problems[0].sequence),
        (AuditProblemKind::Inserted, head.0 + 1)
    );
}

#[tokio::test]
async fn pages_of_cases_cover_every_match_once_newest_first() {
    let city = City::new();
    let mut reported = Vec::new();
    for n in 0..23 {
        let (location, _) = city.building(n);
        reported.push(city.resident_reports(&location, "drainage.blocked").await);
        city.later(1);
    }
    let models = city.read_models().await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = models
            .cases(&CaseQuery {
                limit: Some(5),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.summary.case_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    reported.reverse();
    assert_eq!(seen, reported);

    let open = models
        .cases(&CaseQuery {
            status: Some(CaseStatus::Reported),
            open: Some(true),
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.items.len(), 23);
    assert!(open.next_cursor.is_none());
}

#[tokio::test]
async fn folding_in_any_batch_split_gives_the_same_read_models() {
    let city = City::new();
    for n in 0..6 {
        let (location, worker) = city.building(n * 13);
        let case_id = city.dispatched_case(&location, &worker).await;
        if n % 2 == 0 {
            city.handle_to_closing(case_id, &worker, n % 4 == 0).await;
        }
        city.patrol_finds(&location, &worker, n % 3 == 0).await;
        city.later(37);
    }
    let commits = city.commits().await;
    let whole = city.read_models().await;
    for split in [1, 2, 3, 7, commits.len()] {
        let models = wangge_projections::MemoryReadModels::new(city.context.clone());
        for batch in commits.chunks(split) {
            models.fold_commits(batch).await.unwrap();
        }
        let query = CaseQuery {
            limit: Some(500),
            ..Default::default()
        };
        assert_eq!(
            models.cases(&query).await.unwrap(),
            whole.cases(&query).await.unwrap()
        );
        assert_eq!(
            models.sla_board(&BoardQuery::default()).await.unwrap(),
            whole.sla_board(&BoardQuery::default()).await.unwrap()
        );
        let by_cell = IndicatorQuery {
            group: Some(IndicatorGroup::Cell),
            ..the_day()
        };
        assert_eq!(
            models.indicators(&by_cell).await.unwrap(),
            whole.indicators(&by_cell).await.unwrap()
        );
        assert_eq!(
            models.checkpoints().await.unwrap(),
            whole.checkpoints().await.unwrap()
        );
        for commit in &commits {
            assert_eq!(
                models.audit_trail(commit.case_id).await.unwrap(),
                whole.audit_trail(commit.case_id).await.unwrap()
            );
        }
    }
}

#[tokio::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let models = City::new().read_models().await;
    let refused = |result: Result<_, ReadError>| match result {
        Err(ReadError::InvalidQuery { field, reason }) => (field, reason),
        other => panic!("expected a refusal, got {:?}", other.map(|_: ()| ())),
    };
    let (field, reason) = refused(
        models
            .cases(&CaseQuery {
                limit: Some(0),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    );
    assert_eq!((field, reason.as_str()), ("limit", "must be at least 1"));
    let (field, _) = refused(
        models
            .cases(&CaseQuery {
                limit: Some(501),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    );
    assert_eq!(field, "limit");
    let (field, _) = refused(
        models
            .cases(&CaseQuery {
                cursor: Some("not-a-cursor".into()),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    );
    assert_eq!(field, "cursor");
    let backwards = IndicatorQuery {
        from: day("2026-11-24"),
        to: day("2026-11-01"),
        ..the_day()
    };
    let (field, reason) = refused(models.indicators(&backwards).await.map(|_| ()));
    assert_eq!(field, "to");
    assert!(reason.contains("before"), "{reason}");
    let unknown = PatrolQuery {
        from: day("2026-11-24"),
        to: day("2026-11-24"),
        district: Some("999999999".into()),
        community: None,
        patrolled: None,
    };
    let (field, _) = refused(models.patrol_coverage(&unknown).await.map(|_| ()));
    assert_eq!(field, "district");
    let (field, _) = refused(
        models
            .ranking(&RankingQuery {
                from: day("2026-11-24"),
                to: day("2026-11-24"),
                district: None,
                community: None,
                tier: None,
                min_due: Some(0),
                limit: None,
            })
            .await
            .map(|_| ()),
    );
    assert_eq!(field, "min_due");
}

#[tokio::test]
async fn an_accepted_case_counts_under_its_accepted_category_and_priority() {
    let city = City::new();
    let (location, worker) = city.building(4);
    let case_id = city
        .resident_reports(&location, "lighting.stairwell_light_out")
        .await;
    city.accept(case_id, "lighting.street_light_out", Priority::Normal)
        .await;
    city.dispatch(case_id, &location, &worker).await;
    let models = city.read_models().await;
    let by_category = models
        .indicators(&IndicatorQuery {
            group: Some(IndicatorGroup::Category),
            ..the_day()
        })
        .await
        .unwrap();
    assert_eq!(by_category.len(), 1);
    assert_eq!(by_category[0].key, "lighting.street_light_out");
    let found = models
        .cases(&CaseQuery {
            category: Some("lighting.street_light_out".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].summary.priority, Some(Priority::Normal));
}
