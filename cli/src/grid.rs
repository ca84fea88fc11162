//! `wangge grid publish | show`: change the grid of the running engines, and look at the
//! grid as the grid file and the grid stream make it.
//!
//! `publish` sends grid commands by request-reply to `wangge.grid.commands` — one command, or
//! each element of a JSON array in order — and prints each reply as one JSON line. Exit
//! status 0 when every command was accepted, 2 when one was refused (the rest are still
//! sent: each is checked on its own).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;
use wangge_engine::grid::{tier_name, GridFollower, GridState, SharedGrid, GRID_COMMAND_SUBJECT};
use wangge_schemas::grid::GridReply;

use crate::request::{ask, read_message};
use crate::{NatsArgs, ReferenceArgs};

#[derive(Debug, Args)]
pub struct GridArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Send grid commands (one JSON object, or an array of them) and print each reply.
    Publish {
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// The command file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// The live grid: a summary, or one cell or worker.
    Show {
        #[command(flatten)]
        reference: ReferenceArgs,
        /// A cell code or a worker id; nothing for a summary.
        id: Option<String>,
    },
}

pub async fn run(args: GridArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Publish { timeout, file } => publish(&args.nats, timeout, file).await,
        Action::Show { reference, id } => show(&args.nats, &reference, id.as_deref()).await,
    }
}

async fn publish(nats: &NatsArgs, timeout: u64, file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let body = read_message(file.as_deref())?;
    // An array is sent element by element; anything else (an object, or bytes that are not
    // JSON at all) is sent as it is, and the engine says what is wrong with it.
    let messages: Vec<Vec<u8>> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|item| serde_json::to_vec(item).expect("a JSON value serializes"))
            .collect(),
        _ => vec![body],
    };
    let client = nats.connect().await?;
    let mut all_accepted = true;
    for message in messages {
        let reply: GridReply = ask(&client, GRID_COMMAND_SUBJECT, message, timeout).await?;
        all_accepted &= matches!(reply, GridReply::Accepted { .. });
        println!("{}", serde_json::to_string(&reply)?);
    }
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn show(
    nats: &NatsArgs,
    reference: &ReferenceArgs,
    id: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (grid_file, _) = reference.load()?;
    let client = nats.connect().await?;
    let stream = nats.open_grid_stream(client).await?;
    let live = SharedGrid::from(grid_file);
    GridFollower::new(stream, live.clone()).catch_up().await?;
    let live = live.snapshot();
    let grid = live.grid();
    let Some(id) = id else {
        let (districts, communities, buildings) = grid.counts();
        println!("city:        {}", grid.city());
        println!(
            "grid stream: position {} ({} events, {} refused)",
            live.position(),
            live.events(),
            live.refused()
        );
        println!(
            "cells:       {districts} districts, {communities} communities, {buildings} buildings"
        );
        println!(
            "workers:     {} ({} on duty)",
            grid.worker_count(),
            grid.on_duty_count()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if grid.cell(id).is_some() {
        print_cell(grid, id);
        return Ok(ExitCode::SUCCESS);
    }
    if grid.worker(id).is_some() {
        print_worker(grid, id);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("no cell or worker `{id}` in the grid of {}", grid.city());
    Ok(ExitCode::from(2))
}

fn print_cell(grid: &GridState, code: &str) {
    let Some(cell) = grid.cell(code) else { return };
    println!("cell:       {} ({})", cell.code, tier_name(&cell.tier));
    println!("name:       {}", cell.name);
    match grid.parent(code) {
        Some(parent) => println!(
            "parent:     {} {} ({})",
            parent.code,
            parent.name,
            tier_name(&parent.tier)
        ),
        None => println!("parent:     -"),
    }
    println!("supervisor: {}", cell.supervisor);
    println!("calendar:   {}", grid.calendar_of(code).unwrap_or("-"));
    let children = grid.children(code);
    println!("cells inside: {}", children.len());
    for child in children {
        println!("  {}  {}", child.code, child.name);
    }
    let workers: Vec<_> = grid.workers_of(code).collect();
    println!("workers: {}", workers.len());
    for worker in workers {
        println!(
            "  {}  {}  {}  skills: {}",
            worker.id,
            worker.name,
            if worker.on_duty {
                "on duty"
            } else {
                "off duty"
            },
            worker.skills.join(", ")
        );
    }
}

fn print_worker(grid: &GridState, id: &str) {
    let Some(worker) = grid.worker(id) else {
        return;
    };
    println!("worker:     {}", worker.id);
    println!("name:       {}", worker.name);
    println!(
        "department: {}",
        worker.department.as_deref().unwrap_or("-")
    );
    println!("on duty:    {}", if worker.on_duty { "yes" } else { "no" });
    println!("skills:     {}", worker.skills.join(", "));
    println!("cells:");
    for code in &worker.cells {
        let name = grid.cell(code).map_or("?", |cell| cell.name.as_str());
        println!("  {code}  {name}");
    }
}
