//! `wangge nats users`: the user files the shipped NATS accounts include
//! (`deploy/nats/accounts.conf`), one user per grid worker and supervisor, intake system and
//! grid administrator, each with a random password stored only as a bcrypt
//! hash and permissions that let it publish exactly the engine subjects of its kind and
//! read only its own replies (`_INBOX_<user>.>`).
//!
//! The passwords are written once, to `passwords.tsv` beside the user files (mode 0600):
//! hand each to its owner and delete the file. Running it again keeps the passwords of the
//! users already listed there (so adding a worker does not change everyone's password).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use wangge_engine::grid::GridDirectory;
use wangge_engine::nats::accounts::{write_user, UserKind as Kind};

use crate::ReferenceArgs;

#[derive(Debug, Args)]
pub struct NatsAdminArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Write the user files of the shipped NATS accounts (deploy/nats/users/) and their
    /// passwords.
    Users(UsersArgs),
}

#[derive(Debug, Args)]
struct UsersArgs {
    #[command(flatten)]
    reference: ReferenceArgs,
    /// Where to write `engine.conf`, `workers.conf`, `intake.conf`, `grid-admins.conf` and
    /// `passwords.tsv` (the directory the accounts file includes: deploy/nats/users/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Do not make users for the grid's workers and supervisors (only those named with
    /// `--worker`).
    #[arg(long)]
    no_grid_workers: bool,
    /// A grid worker or supervisor to add (repeatable).
    #[arg(long = "worker", value_name = "GRID_ID")]
    workers: Vec<String>,
    /// An intake system (hotline, mini-program back end, kiosk, sensor platform); its name is
    /// the `source.system` of its messages (repeatable).
    #[arg(long = "intake", value_name = "SYSTEM")]
    intake: Vec<String>,
    /// A grid and SLA administrator (repeatable).
    #[arg(long = "grid-admin", value_name = "ID")]
    grid_admins: Vec<String>,
    /// The engine's own user name.
    #[arg(long, default_value = "wangge-engine")]
    engine_user: String,
    /// bcrypt cost (NATS checks each login against it: 11 is the nats tool's default).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(4..=16))]
    bcrypt_cost: u32,
}

pub async fn run(args: NatsAdminArgs) -> anyhow::Result<ExitCode> {
    let Action::Users(args) = args.action;
    let (grid, _) = args.reference.load()?;
    write_users(&args, &grid)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `name` can be a NATS user name here: it appears in subjects (`_INBOX_<name>`)
/// and in the config file unquoted-safe.
fn check_name(kind: Kind, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("{kind:?} user `{name}`: use 1 to 64 ASCII letters, digits, `-` or `_` (it becomes a subject token)");
    }
    Ok(())
}

fn write_users(args: &UsersArgs, grid: &GridDirectory) -> anyhow::Result<()> {
    let mut users: BTreeMap<String, Kind> = BTreeMap::new();
    let mut add = |kind: Kind, name: &str| -> anyhow::Result<()> {
        check_name(kind, name)?;
        match users.insert(name.to_owned(), kind) {
            Some(earlier) if earlier != kind => {
                bail!("`{name}` is named both as {earlier:?} and as {kind:?}: a NATS user has one account")
            }
            _ => Ok(()),
        }
    };
    add(Kind::Engine, &args.engine_user)?;
    if !args.no_grid_workers {
        for worker in grid.workers() {
            add(Kind::Worker, &worker.id)?;
        }
        for cell in grid.cells() {
            add(Kind::Worker, &cell.supervisor)?;
        }
    }
    for name in &args.workers {
        add(Kind::Worker, name)?;
    }
    for name in &args.intake {
        add(Kind::Intake, name)?;
    }
    for name in &args.grid_admins {
        add(Kind::GridAdmin, name)?;
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let passwords_path = args.out.join("passwords.tsv");
    let mut passwords = read_passwords(&passwords_path)?;
    let progress = ProgressBar::new(users.len() as u64).with_style(
        ProgressStyle::with_template("hashing passwords {bar:40} {pos}/{len} ({eta})")
            .expect("template"),
    );
    let mut files: BTreeMap<&'static str, String> = BTreeMap::new();
    for kind in [Kind::Engine, Kind::Worker, Kind::Intake, Kind::GridAdmin] {
        files.insert(kind.file(), String::new());
    }
    for (name, kind) in &users {
        let entry = passwords
            .entry(name.clone())
            .or_insert_with(|| (String::new(), new_password()));
        entry.0 = kind.account().to_owned();
        let password = entry.1.clone();
        let hash = bcrypt::hash_with_result(&password, args.bcrypt_cost)
            .context("bcrypt")?
            .format_for_version(bcrypt::Version::TwoA);
        let entry = files.get_mut(kind.file()).expect("every kind has a file");
        write_user(entry, name, &hash, kind.permissions(name));
        progress.inc(1);
    }
    progress.finish_and_clear();
    for (file, entries) in &files {
        let text = format!(
            "# Generated by `wangge nats users`; included by deploy/nats/accounts.conf.\n\
             # Passwords are bcrypt hashes; the passwords themselves are in passwords.tsv.\n\
             users: [\n{entries}]\n"
        );
        write_private(&args.out.join(file), text.as_bytes())?;
    }
    let mut listing =
        String::from("# account\tuser\tpassword — hand each to its owner, then delete this file\n");
    for (name, (account, password)) in &passwords {
        if users.contains_key(name) {
            writeln!(listing, "{account}\t{name}\t{password}").expect("string");
        }
    }
    write_private(&passwords_path, listing.as_bytes())?;
    eprintln!(
        "wrote {} users to {} (passwords in {}; mode 0600)",
        users.len(),
        args.out.display(),
        passwords_path.display()
    );
    Ok(())
}

/// 24 random letters and digits (≈ 143 bits).
fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// user → (account, password) from an earlier run.
fn read_passwords(path: &Path) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut found = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [account, user, password] = fields[..] else {
            bail!(
                "{} line {}: expected `account<TAB>user<TAB>password`",
                path.display(),
                number + 1
            );
        };
        found.insert(user.to_owned(), (account.to_owned(), password.to_owned()));
    }
    Ok(found)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
