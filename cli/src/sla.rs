//! `wangge sla publish | show | status`: publish business calendars and SLA policies to the
//! running engines, look at the data they hold, and see which calendar runs out.
//!
//! `publish FILE` sends a calendars file or a policies file (told apart by its top-level
//! `calendars` or `policies` key) as one SLA command to `wangge.sla.commands` and prints the
//! engine's reply as one JSON line; on refusal a second line says the code, the JSON path
//! and the reason, and the exit status is 2. `show` and `status` read the SLA files
//! (`--sla-dir`, else the bundled data) and then the SLA stream, as an engine does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use wangge_engine::sla::{
    calendar_coverage, calendar_coverage_at, CalendarCoverage, LiveSla, SharedSla, SlaFollower,
    SlaReply, StoredSlaEvent, CALENDAR_WARNING_DAYS, SLA_COMMAND_SUBJECT,
};
use wangge_schemas::sla::SlaEvent;

use crate::request::{ask, read_message};
use crate::{NatsArgs, SlaDirArgs};

#[derive(Debug, Args)]
pub struct SlaArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Publish a calendars file or a policies file to the running engines (an upsert: what
    /// the file names is replaced or added, the rest stays).
    Publish {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// The idempotency key: the same id sent again publishes once. Default: a new id
        /// per run.
        #[arg(long)]
        message_id: Option<String>,
        /// The sending system, with `--message-id` the idempotency key.
        #[arg(long, default_value = "wangge-cli")]
        system: String,
        /// Who publishes (recorded in the event and shown by `show --history`).
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
        /// The file: `calendars.json` or `policies.json` format; `-` reads stdin.
        file: PathBuf,
    },
    /// The calendars and policies in use, with the SLA stream position.
    Show {
        #[command(flatten)]
        sla: SlaDirArgs,
        /// Also list every published revision with its time, actor and source.
        #[arg(long)]
        history: bool,
    },
    /// Per calendar: through when its holidays are published, the days left, and a warning
    /// when that is within 45 days or past.
    Status {
        #[command(flatten)]
        sla: SlaDirArgs,
        /// Judge coverage on this day instead of today (each calendar's local date).
        #[arg(long, value_name = "YYYY-MM-DD")]
        today: Option<NaiveDate>,
    },
}

pub async fn run(args: SlaArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Publish {
            timeout,
            message_id,
            system,
            actor,
            file,
        } => {
            let message_id =
                message_id.unwrap_or_else(|| format!("sla-publish-{}", uuid::Uuid::now_v7()));
            publish(&args.nats, timeout, &file, &system, &message_id, &actor).await
        }
        Action::Show { sla, history } => show(&args.nats, &sla, history).await,
        Action::Status { sla, today } => status(&args.nats, &sla, today).await,
    }
}

// ---------------------------------------------------------------------------------------
// publish
// ---------------------------------------------------------------------------------------

async fn publish(
    nats: &NatsArgs,
    timeout: u64,
    file: &Path,
    system: &str,
    message_id: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let body = read_message(Some(file))?;
    let payload: Value =
        serde_json::from_slice(&body).with_context(|| format!("{} is not JSON", file.display()))?;
    let Some(event_type) = event_type_of(&payload) else {
        eprintln!(
            "{} is neither a calendars file (top-level `calendars`) nor a policies file (top-level `policies`)",
            file.display()
        );
        return Ok(ExitCode::from(2));
    };
    let command = json!({
        "event_type": event_type,
        "schema_version": 1,
        "source": {"system": system, "message_id": message_id},
        "actor": {"kind": "supervisor", "id": actor},
        "payload": payload,
    });
    let client = nats.connect().await?;
    let reply: SlaReply = ask(
        &client,
        SLA_COMMAND_SUBJECT,
        serde_json::to_vec(&command)?,
        timeout,
    )
    .await?;
    println!("{}", serde_json::to_string(&reply)?);
    Ok(match reply {
        SlaReply::Accepted {
            position,
            duplicate,
            published,
            ..
        } => {
            println!(
                "published {} at sla stream position {position}{}",
                published.join(", "),
                if duplicate {
                    " (sent before: nothing new written)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        SlaReply::Rejected {
            code,
            field,
            reason,
            rejected_id,
        } => {
            println!(
                "refused: {code} at {}: {reason}",
                field.as_deref().unwrap_or("(the whole message)")
            );
            if let Some(id) = rejected_id {
                println!("kept as rejected message {id} (wangge rejected show {id})");
            }
            ExitCode::from(2)
        }
    })
}

/// Which event a file asks for, by its top-level keys; `None` when it has both or neither.
fn event_type_of(payload: &Value) -> Option<&'static str> {
    let object = payload.as_object()?;
    match (
        object.contains_key("calendars"),
        object.contains_key("policies"),
    ) {
        (true, false) => Some("sla.calendars_published"),
        (false, true) => Some("sla.policies_published"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// show and status
// ---------------------------------------------------------------------------------------

/// The SLA data as an engine starting now would hold it: the files, then the SLA stream.
async fn live_data(
    nats: &NatsArgs,
    sla: &SlaDirArgs,
) -> anyhow::Result<(LiveSla, Vec<StoredSlaEvent>)> {
    let reference = sla.load()?;
    let client = nats.connect().await?;
    let stream = nats.open_sla_stream(client).await?;
    let shared = SharedSla::new(reference);
    SlaFollower::new(stream.clone(), shared.clone())
        .catch_up()
        .await?;
    let history = stream.history().await?;
    Ok((LiveSla::clone(&shared.snapshot()), history))
}

async fn show(nats: &NatsArgs, sla: &SlaDirArgs, history: bool) -> anyhow::Result<ExitCode> {
    let (live, revisions) = live_data(nats, sla).await?;
    println!(
        "sla stream:  position {} ({} events, {} refused); files: {}",
        live.position(),
        live.events(),
        live.refused(),
        sla.describe()
    );
    let calendars = live.calendars();
    println!("calendars:   default {}", calendars.default_id());
    for id in calendars.ids() {
        let Some(calendar) = calendars.get(id) else {
            continue;
        };
        let spec = calendar.spec();
        println!(
            "  {id}  {}  ({} {}; {} holidays, {} make-up days; published through {})",
            calendar.name(),
            calendar.utc_offset(),
            calendar.time_zone(),
            spec.holidays.len(),
            spec.make_up_working_days.len(),
            calendar
                .holidays_published_through()
                .map_or_else(|| "-".to_owned(), |date| date.to_string())
        );
    }
    let policies = live.policies();
    println!("policies:    default {}", policies.default_name());
    for policy in policies.policies() {
        let steps: Vec<String> = policy
            .targets
            .keys()
            .map(|step| wangge_engine::domain::sla::policy::step_name(*step).to_owned())
            .collect();
        println!(
            "  {}  warning at {} %, timed steps: {}{}",
            policy.name,
            policy.warning_percent,
            steps.join(", "),
            policy
                .description
                .as_deref()
                .map(|text| format!("  — {text}"))
                .unwrap_or_default()
        );
    }
    if history {
        println!("published revisions: {}", revisions.len());
        for revision in &revisions {
            println!("{}", revision_line(revision));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One published revision: position, when, what, who, from where.
fn revision_line(stored: &StoredSlaEvent) -> String {
    let envelope = match &stored.envelope {
        Ok(envelope) => envelope,
        Err(reason) => return format!("  #{}  unreadable: {reason}", stored.position),
    };
    let (what, defaults, removed) = match &envelope.event {
        SlaEvent::CalendarsPublished(published) => (
            "calendars",
            published.default_calendar.as_deref(),
            &published.removed,
        ),
        SlaEvent::PoliciesPublished(published) => (
            "policies",
            published.default_policy.as_deref(),
            &published.removed,
        ),
    };
    let mut line = format!(
        "  #{}  {}  {what} {}",
        stored.position,
        envelope.recorded_at.to_rfc3339(),
        envelope.event.published().join(", "),
    );
    if let Some(default) = defaults {
        line.push_str(&format!("; default {default}"));
    }
    if !removed.is_empty() {
        line.push_str(&format!("; removed {}", removed.join(", ")));
    }
    line.push_str(&format!(
        "  by {} ({:?})  source {}/{}",
        envelope.actor.id, envelope.actor.kind, envelope.source.system, envelope.source.message_id
    ));
    line
}

async fn status(
    nats: &NatsArgs,
    sla: &SlaDirArgs,
    today: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let (live, _) = live_data(nats, sla).await?;
    let coverage = match today {
        Some(today) => calendar_coverage(live.reference(), today),
        None => calendar_coverage_at(live.reference(), chrono::Utc::now()),
    };
    for calendar in &coverage {
        println!("{}", coverage_line(calendar));
    }
    let expiring: Vec<&CalendarCoverage> = coverage.iter().filter(|c| c.expiring).collect();
    for calendar in &expiring {
        println!("{}", warning_line(calendar));
    }
    if expiring.is_empty() {
        println!(
            "ok: every calendar has its holidays published more than {CALENDAR_WARNING_DAYS} days ahead"
        );
    }
    // A warning is news for an operator, not a failure of the command.
    Ok(ExitCode::SUCCESS)
}

fn coverage_line(calendar: &CalendarCoverage) -> String {
    match (calendar.published_through, calendar.days_left) {
        (Some(through), Some(days)) => format!(
            "{}  {}  holidays published through {through}, {}",
            calendar.id,
            calendar.name,
            days_phrase(days)
        ),
        _ => format!(
            "{}  {}  does not say through when its holidays are published",
            calendar.id, calendar.name
        ),
    }
}

fn warning_line(calendar: &CalendarCoverage) -> String {
    let through = calendar
        .published_through
        .map_or_else(|| "-".to_owned(), |date| date.to_string());
    let when = match calendar.days_left {
        Some(days) if days < 0 => format!("ran out {} days ago", -days),
        Some(0) => "runs out today".to_owned(),
        Some(days) => format!("runs out in {days} days"),
        None => "has no published-through date".to_owned(),
    };
    format!(
        "WARNING: calendar {} ({}) {when} (holidays published through {through}); publish next year's holidays with `wangge sla publish calendars.json`",
        calendar.id, calendar.name
    )
}

fn days_phrase(days: i64) -> String {
    match days {
        days if days < 0 => format!("{} days past", -days),
        1 => "1 day left".to_owned(),
        days => format!("{days} days left"),
    }
}
