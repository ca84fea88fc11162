//! What the day came to: the intake, the timers, the people, and the indicators supervisors
//! are judged by, read back from the read models the dashboard shows.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::GridDirectory;
use wangge_engine::intake::{MemoryRejectedStore, RejectedStore};
use wangge_engine::log::EventLog;
use wangge_engine::runtime::timers::Fired;
use wangge_projections::query::{
    IndicatorGroup, IndicatorQuery, IndicatorRow, OverdueQuery, PatrolQuery, RankingQuery,
};
use wangge_projections::ReadModels;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::worker::WorkerReply;

/// Counts kept while the day runs.
#[derive(Debug, Default)]
pub struct Tally {
    new_cases: u64,
    retries: u64,
    refused_intake: BTreeMap<String, u64>,
    done: BTreeMap<&'static str, u64>,
    refused_commands: BTreeMap<String, u64>,
    evaluations: u64,
    refused_evaluations: BTreeMap<String, u64>,
    timers: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub fn intake(&mut self, reply: &IntakeReply) {
        match reply {
            IntakeReply::Accepted {
                duplicate: true, ..
            } => self.retries += 1,
            IntakeReply::Accepted { .. } => self.new_cases += 1,
            IntakeReply::Rejected { code, .. } => {
                *self.refused_intake.entry(code.clone()).or_default() += 1
            }
        }
    }

    pub fn worker(&mut self, command: &'static str, reply: &WorkerReply) {
        match reply {
            WorkerReply::Accepted { .. } => *self.done.entry(command).or_default() += 1,
            WorkerReply::Rejected { code, .. } => {
                *self.refused_commands.entry(code.clone()).or_default() += 1
            }
        }
    }

    /// A resident's evaluation, answered by intake like any message from another system.
    pub fn evaluation(&mut self, reply: &IntakeReply) {
        match reply {
            IntakeReply::Accepted { .. } => self.evaluations += 1,
            IntakeReply::Rejected { code, .. } => {
                *self.refused_evaluations.entry(code.clone()).or_default() += 1
            }
        }
    }

    pub fn timer(&mut self, fired: &Fired) {
        let name = match fired {
            Fired::Written(command) => match command.as_ref() {
                CaseCommand::RecordSlaWarning { .. } => "warnings",
                CaseCommand::RecordSlaBreach { .. } => "breaches",
                CaseCommand::Reassign { .. } => "reassigned in the cell",
                CaseCommand::Escalate { .. } => "escalated a tier",
                other => other.name(),
            },
            Fired::Skipped(_) => return,
        };
        *self.timers.entry(name).or_default() += 1;
    }

    pub fn cases_opened(&self) -> u64 {
        self.new_cases
    }

    pub fn escalations(&self) -> u64 {
        self.timers.get("escalated a tier").copied().unwrap_or(0)
    }

    pub fn timers_fired(&self) -> u64 {
        self.timers.values().sum()
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn minutes(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), |s| format!("{}m", (s + 30) / 60))
}

fn row(name: &str, r: &IndicatorRow) {
    println!(
        "  {name:<14} {:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8}",
        r.counts.registered,
        r.counts.due,
        r.counts.closed,
        percent(r.closure_rate),
        percent(r.on_time_closure_rate),
        percent(r.rework_rate),
        percent(r.response_rate),
        percent(r.resolution_rate),
        percent(r.satisfaction_rate),
        minutes(r.time_to_acknowledge_p50_seconds),
        minutes(r.time_to_close_p50_seconds),
    );
}

#[allow(clippy::too_many_arguments)]
pub async fn print<L: EventLog>(
    day: &NaiveDate,
    grid: &GridDirectory,
    log: &L,
    models: &dyn ReadModels,
    rejected: &MemoryRejectedStore,
    tally: &Tally,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    println!("\nintake");
    println!("  {:>6}  new cases", tally.new_cases);
    println!(
        "  {:>6}  retries answered with the case they had opened",
        tally.retries
    );
    for (code, count) in &tally.refused_intake {
        println!("  {count:>6}  refused: {code}");
    }
    let kept = rejected.list(1, usize::MAX).await?;
    println!(
        "          {} refused messages kept for operators (`wangge rejected list` on a deployment)",
        kept.len()
    );

    println!("\nSLA timers");
    for (what, count) in &tally.timers {
        println!("  {count:>6}  {what}");
    }
    println!("\npeople (through the same commands their apps send)");
    for (command, count) in &tally.done {
        println!("  {count:>6}  {command}");
    }
    for (code, count) in &tally.refused_commands {
        println!(
            "  {count:>6}  refused: {code} (the task had moved on, or the worker may not act)"
        );
    }
    println!("\nresidents' evaluations (intake messages on wangge.intake.evaluation)");
    println!(
        "  {:>6}  recorded, from the 12345 hotline's call-backs and the mini-program",
        tally.evaluations
    );
    for (code, count) in &tally.refused_evaluations {
        println!("  {count:>6}  not recorded ({code})");
    }

    let query = IndicatorQuery {
        from: *day,
        to: *day,
        district: None,
        community: None,
        cell: None,
        category: None,
        group: Some(IndicatorGroup::District),
    };
    println!(
        "\nindicators of the day, by district ({day}: 立案, 返工率, 响应率, 解决率, 满意率 of the \
         cases reported; 应结案, 结案, 结案率, 按期结案率 and 结案p50 of the cases that fell due \
         — closed, or past their handling limit — charged to the cell holding them then)"
    );
    println!(
        "  {:<14} {:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8}",
        "district",
        "立案",
        "应结案",
        "结案",
        "结案率",
        "按期结案率",
        "返工率",
        "响应率",
        "解决率",
        "满意率",
        "响应p50",
        "结案p50"
    );
    for r in models.indicators(&query).await? {
        let name = grid
            .cell(&r.key)
            .map_or_else(|| r.key.clone(), |c| c.name.clone());
        row(&name, &r);
    }
    let total = models
        .indicators(&IndicatorQuery {
            group: Some(IndicatorGroup::Total),
            ..query.clone()
        })
        .await?;
    if let Some(total) = total.first() {
        row("city", total);
    }

    let ranking = models
        .ranking(&RankingQuery {
            from: *day,
            to: *day,
            district: None,
            community: None,
            tier: None,
            // One simulated day spreads its cases over a thousand buildings: a far lower bar
            // than the API's default of 10.
            min_due: Some(2),
            limit: Some(3),
        })
        .await?;
    println!(
        "\n红黑榜 (building cells by 按期结案率 of the cases due, {} with at least {} due ranked)",
        ranking.ranked_cells, ranking.min_due
    );
    if ranking.red.is_empty() && ranking.black.is_empty() {
        println!("  (too few cells with enough due cases to rank)");
    }
    for (board, cells) in [("红榜", &ranking.red), ("黑榜", &ranking.black)] {
        for cell in cells {
            println!(
                "  {board}  {} {} — {} of {} due closed on time ({})",
                cell.cell,
                cell.name,
                cell.closed_on_time,
                cell.due,
                percent(Some(cell.on_time_closure_rate))
            );
        }
    }

    let overdue = models
        .overdue(
            &OverdueQuery {
                limit: Some(5),
                ..Default::default()
            },
            now,
        )
        .await?;
    let board = models.sla_board(&Default::default()).await?;
    let (green, yellow, red) = board.iter().fold((0, 0, 0), |(g, y, r), row| {
        (
            g + row.counts.green,
            y + row.counts.yellow,
            r + row.counts.red,
        )
    });
    println!("\nopen at the end of the day: {green} green, {yellow} yellow, {red} red");
    for case in &overdue.items {
        println!(
            "  late {:>4} min  {:?} {}  held by {} in {}",
            case.late_by_seconds / 60,
            case.step,
            case.title,
            case.assignee.as_deref().unwrap_or("(waiting for dispatch)"),
            case.cell
        );
    }

    let coverage = models
        .patrol_coverage(&PatrolQuery {
            from: *day,
            to: *day,
            district: None,
            community: None,
            patrolled: None,
        })
        .await?;
    println!(
        "\npatrol coverage: {} building cells patrolled, {} not",
        coverage.patrolled, coverage.not_patrolled
    );

    let head = log.head().await?;
    let mut events = 0u64;
    let mut commits = log.read_from(1);
    let mut count = 0u64;
    let mut sealed = 0u64;
    let mut cases = std::collections::BTreeSet::new();
    while let Some(commit) = commits.next().await {
        let commit = commit?;
        events += commit.events.len() as u64;
        count += 1;
        sealed += u64::from(commit.seal.is_some());
        cases.insert(commit.case_id);
        if commit.position >= head {
            break;
        }
    }
    println!("\nevent log: {count} commits ({sealed} sealed), {events} events");
    // Every case's audit trail, its hash chain and its seals checked against the run's key.
    let mut problems = 0usize;
    for case_id in &cases {
        if let Some(trail) = models.audit_trail(*case_id).await? {
            for problem in &trail.problems {
                println!("  audit: {problem}");
            }
            problems += trail.problems.len();
        }
    }
    println!(
        "audit trails: {} cases verified against the run's seal key, {problems} problems",
        cases.len()
    );
    Ok(())
}
