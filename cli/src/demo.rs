//! `wangge demo`: the engine on the embedded in-memory log, no servers needed.
//!
//! Residents, grid workers and kiosks of the bundled sample city send a stream of intake
//! messages — realistic reports, patrol findings and service requests, some of them retried,
//! some of them broken — and part of the accepted cases is walked through the closed loop.
//! It ends with what the log holds and what was refused, and why.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::{Actor, CaseId, Priority, Source, Tier};

use crate::ReferenceArgs;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::intake::service::IncomingMessage;
use wangge_engine::intake::{IntakeService, MemoryRejectedStore, RejectedStore};
use wangge_engine::log::{EventLog, MemoryLog};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many intake messages to send.
    #[arg(long, default_value_t = 3000)]
    messages: usize,
    /// Seed of the simulation, for a repeatable run.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    #[command(flatten)]
    reference: ReferenceArgs,
}

/// Realistic report texts (from the domain brief) with their categories.
const RESIDENT_REPORTS: &[(&str, &str)] = &[
    ("12栋3单元1-6门口下水道堵塞", "drainage.blocked"),
    ("小区垃圾不分类,异味严重", "sanitation.garbage_unsorted"),
    ("新起点A区路灯不亮", "lighting.street_light_out"),
    ("楼道灯坏了", "lighting.stairwell_light_out"),
    ("消防通道被私家车占用", "traffic.fire_lane_parking"),
    ("路口井盖缺失,有安全隐患", "facility.manhole_cover"),
    ("市民卡丢了如何补办", "inquiry.citizen_card"),
];
const PATROL_FINDINGS: &[(&str, &str)] = &[
    ("楼道堆放杂物,堵塞消防通道", "fire_safety.corridor_blocked"),
    ("沿河步道护栏松动", "flood_safety.riverside_path"),
    ("绿化带暴露垃圾", "sanitation.garbage_exposed"),
];
const SERVICE_REQUESTS: &[(&str, &str)] = &[
    ("申请开具居住证明", "service.residence_certificate"),
    ("八十周岁高龄认证", "service.elderly_age_certification"),
    (
        "社会保险参保缴费证明",
        "service.social_insurance_certificate",
    ),
    (
        "小区广场不锈钢大圆盘夏天烫冬天凉,能否拆除换成滑梯",
        "service.micro_wish",
    ),
];

/// A small deterministic generator, so a seed replays the same day.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for picking demo data.
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
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (grid, categories) = args.reference.load()?;
    let start = Utc
        .with_ymd_and_hms(2026, 11, 24, 0, 30, 0)
        .single()
        .expect("valid start time");
    let clock = ManualClock::starting_at(start);
    let log = MemoryLog::new();
    let cases = Arc::new(CaseService::new(log.clone(), Arc::new(clock.clone())));
    let rejected = MemoryRejectedStore::default();
    let intake = IntakeService::new(cases.clone(), rejected.clone(), grid.clone(), categories);
    let mut buildings: Vec<&str> = grid.building_codes().collect();
    buildings.sort_unstable();
    let (districts, communities, building_count) = grid.counts();
    println!(
        "wangge demo: {} — {districts} districts, {communities} communities, {building_count} building cells; embedded in-memory log",
        grid.city()
    );

    let mut dice = Dice(args.seed.max(1));
    let bar = ProgressBar::new(args.messages as u64).with_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix("intake");
    let mut accepted: Vec<(CaseId, String)> = Vec::new();
    let mut replies: BTreeMap<String, usize> = BTreeMap::new();
    let mut previous: Option<(String, Bytes)> = None;
    for n in 0..args.messages {
        clock.advance(Duration::seconds(20));
        // Some senders retry (a lost ack, an impatient kiosk): the same message again.
        let (subject, payload) = match previous.take() {
            Some(message) if dice.chance(4) => message,
            _ => make_message(&mut dice, n, &buildings, clock.now()),
        };
        previous = Some((subject.clone(), payload.clone()));
        let reply = intake
            .process(IncomingMessage {
                subject,
                headers: vec![("Demo-Seq".into(), n.to_string())],
                payload,
            })
            .await;
        let key = match &reply {
            IntakeReply::Accepted {
                duplicate: true, ..
            } => "accepted (retry, nothing new written)".to_owned(),
            IntakeReply::Accepted { case_id, .. } => {
                let building = log
                    .load(*case_id)
                    .await?
                    .events
                    .first()
                    .map(|e| e.location.building.clone());
                accepted.push((*case_id, building.unwrap_or_default()));
                "accepted (new case)".to_owned()
            }
            IntakeReply::Rejected { code, .. } => format!("rejected: {code}"),
        };
        *replies.entry(key).or_default() += 1;
        bar.inc(1);
    }
    bar.finish_with_message("done");

    let loop_bar = ProgressBar::new(accepted.len() as u64).with_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    loop_bar.set_prefix("handling");
    let mut refused: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (index, (case_id, building)) in accepted.iter().enumerate() {
        clock.advance(Duration::seconds(30));
        let worker = format!("worker-{building}");
        for (step, command) in lifecycle(&mut dice, &worker, building)
            .into_iter()
            .enumerate()
        {
            let request = CommandRequest {
                case_id: *case_id,
                command,
                actor: Actor::grid_worker(&worker),
                source: Source {
                    system: "wangge-demo".into(),
                    message_id: format!("{index}-{step}"),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            };
            if let Err(error) = cases.handle(request).await {
                *refused.entry(error.code()).or_default() += 1;
            }
        }
        loop_bar.inc(1);
    }
    loop_bar.finish_with_message("done");

    print_summary(&log, &rejected, &replies, &refused).await?;
    Ok(ExitCode::SUCCESS)
}

/// One intake message: mostly valid, some broken in the ways real senders break them.
fn make_message(
    dice: &mut Dice,
    n: usize,
    buildings: &[&str],
    now: chrono::DateTime<Utc>,
) -> (String, Bytes) {
    let building = buildings[dice.below(buildings.len())];
    let message_id = format!("msg-{n:06}");
    let (kind, mut body) = match dice.below(10) {
        0..=5 => {
            let (title, category) = RESIDENT_REPORTS[dice.below(RESIDENT_REPORTS.len())];
            let channel = ["mini_program", "hotline12345", "wechat_group", "kiosk"][dice.below(4)];
            (
                "resident_report",
                json!({
                    "kind": "resident_report", "schema_version": 1,
                    "source": {"system": "miniprogram", "message_id": message_id},
                    "reported_at": now, "building": building, "channel": channel,
                    "resident": {"id": format!("resident-{}", dice.below(50_000))},
                    "title": title, "description": format!("{title}。请尽快处理。"), "category": category,
                    "media": [{"kind": "photo", "url": format!("oss://wangge-demo/{message_id}.jpg")}]
                }),
            )
        }
        6..=7 => {
            let (title, category) = PATROL_FINDINGS[dice.below(PATROL_FINDINGS.len())];
            let patrol_kind = ["fire_safety", "flood_safety", "daily"][dice.below(3)];
            (
                "patrol_finding",
                json!({
                    "kind": "patrol_finding", "schema_version": 1,
                    "source": {"system": "grid-app", "message_id": message_id},
                    "reported_at": now, "building": building, "worker_id": format!("worker-{building}"),
                    "patrol_kind": patrol_kind, "title": title, "description": title, "category": category,
                    "fixed_on_spot": dice.chance(30)
                }),
            )
        }
        _ => {
            let (title, service) = SERVICE_REQUESTS[dice.below(SERVICE_REQUESTS.len())];
            (
                "service_request",
                json!({
                    "kind": "service_request", "schema_version": 1,
                    "source": {"system": "kiosk-07", "message_id": message_id},
                    "reported_at": now, "building": building, "channel": "kiosk",
                    "resident": {"id": format!("resident-{}", dice.below(50_000)), "name": "王阿姨"},
                    "service": service, "title": title, "description": title
                }),
            )
        }
    };
    // About one message in twelve is broken, each in a different way.
    if dice.chance(8) {
        match dice.below(7) {
            0 => {
                return (
                    format!("wangge.intake.{kind}"),
                    Bytes::from_static(b"{\"kind\": \"resident_report\", "),
                )
            }
            1 => body["schema_version"] = json!(7),
            2 => {
                body.as_object_mut().map(|o| o.remove("building"));
            }
            3 => body["building"] = json!("999999999999999"),
            4 => body["title"] = json!("很长的标题".repeat(30)),
            5 => {
                if kind == "service_request" {
                    body["service"] = json!("service.unknown");
                } else {
                    body["category"] = json!("noise.unknown");
                }
            }
            _ => body["kind"] = json!("complaint"),
        }
    }
    (
        format!("wangge.intake.{kind}"),
        Bytes::from(body.to_string()),
    )
}

/// The commands a case goes through in the demo: most of the closed loop, with detours.
fn lifecycle(dice: &mut Dice, worker: &str, building: &str) -> Vec<CaseCommand> {
    let mut commands = vec![CaseCommand::Accept {
        category: String::new(),
        priority: Priority::Normal,
    }];
    if dice.chance(5) {
        return vec![CaseCommand::Reject {
            reason: "not a grid matter: referred to the hotline".into(),
        }];
    }
    commands.push(CaseCommand::Dispatch {
        tier: Tier::Building,
        cell: building.to_owned(),
        assignee: worker.to_owned(),
    });
    if dice.chance(15) {
        commands.push(CaseCommand::Decline {
            worker_id: worker.to_owned(),
            reason: "on leave today".into(),
        });
        return commands;
    }
    commands.push(CaseCommand::Acknowledge {
        worker_id: worker.to_owned(),
    });
    commands.push(CaseCommand::StartHandling {
        worker_id: worker.to_owned(),
    });
    if dice.chance(20) {
        return commands;
    }
    commands.push(CaseCommand::Resolve {
        worker_id: worker.to_owned(),
        notes: "已处理完毕".into(),
        media: Vec::new(),
    });
    let passed = dice.chance(85);
    commands.push(CaseCommand::Verify {
        verifier: "community-inspector".into(),
        passed,
        notes: Some(
            if passed {
                "现场核查通过"
            } else {
                "未彻底处理,返工"
            }
            .into(),
        ),
    });
    if passed && dice.chance(70) {
        commands.push(CaseCommand::Evaluate {
            satisfaction: 3 + dice.below(3) as u8,
            comment: None,
        });
    }
    commands
}

async fn print_summary(
    log: &MemoryLog,
    rejected: &MemoryRejectedStore,
    replies: &BTreeMap<String, usize>,
    refused: &BTreeMap<&'static str, usize>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let head = log.head().await?;
    let mut by_type: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut events = 0;
    let mut commits = log.read_from(1).take(head as usize);
    while let Some(commit) = commits.next().await {
        for event in commit?.events {
            events += 1;
            *by_type.entry(event.event_type()).or_default() += 1;
        }
    }
    println!("\nintake replies:");
    for (what, count) in replies {
        println!("  {count:>6}  {what}");
    }
    println!("\nevent log: {head} commits, {events} events");
    for (event_type, count) in &by_type {
        println!("  {count:>6}  {event_type}");
    }
    if !refused.is_empty() {
        println!("\ncommands refused by the case rules (as a real day has them):");
        for (code, count) in refused {
            println!("  {count:>6}  {code}");
        }
    }
    let kept = rejected.list(1, usize::MAX).await?;
    println!("\nrejected messages kept for operators: {}", kept.len());
    for entry in kept.iter().take(5) {
        let r = &entry.rejection;
        println!(
            "  #{:<4} {:<22} {:<14} {}",
            entry.id,
            r.code,
            r.field.as_deref().unwrap_or("-"),
            r.reason
        );
    }
    if kept.len() > 5 {
        println!(
            "  … and {} more (`wangge rejected list` shows them on a real deployment)",
            kept.len() - 5
        );
    }
    Ok(())
}
