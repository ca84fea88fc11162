//! `wangge residents erase | reveal | reveals | rewrap | new-kek`: residents' personal data —
//! erasing a resident (PIPL Art. 47: their data key is destroyed, every event stays), seeing
//! a reporter's contact in full when allowed (recorded), the record of who saw what, and
//! rotating the key-encryption key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use wangge_engine::residents::{ContactOpener, Kek, KeyRing, ResidentKeys};
use wangge_projections::residents::{
    ContactReveals, RequesterRole, RevealAnswer, RevealQuery, RevealRequest,
};
use wangge_schemas::CaseId;

use crate::{NatsArgs, PostgresArgs, ReferenceArgs};

/// Where the key-encryption key comes from: a file (mode 600), else `WANGGE_KEK` (base64).
#[derive(Debug, Clone, Default, Args)]
pub struct KekArgs {
    /// File holding the key-encryption key (32 random bytes, base64; readable by its owner
    /// only). Without it, `WANGGE_KEK` holds the key itself.
    #[arg(long, env = "WANGGE_KEK_FILE", value_name = "FILE")]
    pub kek_file: Option<PathBuf>,
    /// The KEK being rotated away from, while `wangge residents rewrap` has not finished:
    /// data keys it wrapped can still be opened.
    #[arg(long, env = "WANGGE_PREVIOUS_KEK_FILE", value_name = "FILE")]
    pub previous_kek_file: Option<PathBuf>,
}

impl KekArgs {
    /// Whether a KEK was given at all.
    pub fn given(&self) -> bool {
        self.kek_file.is_some() || std::env::var("WANGGE_KEK").is_ok_and(|k| !k.trim().is_empty())
    }

    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        let mut ring = KeyRing::new(Kek::configured(self.kek_file.as_deref())?);
        if let Some(previous) = &self.previous_kek_file {
            ring = ring.with_previous(Kek::from_file(previous)?);
        }
        Ok(ring)
    }

    /// The resident key store on NATS.
    pub async fn open(
        &self,
        client: async_nats::Client,
        replicas: usize,
    ) -> anyhow::Result<Arc<ResidentKeys>> {
        Ok(Arc::new(
            ResidentKeys::open(client, replicas, self.key_ring()?).await?,
        ))
    }
}

#[derive(Debug, Args)]
pub struct ResidentsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Erase a resident (PIPL Art. 47): destroy their data key, so their contact details in
    /// every event, read model and refused message can never be read again.
    Erase {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        kek: KekArgs,
        /// The sending system the resident's id belongs to (the report's `source.system`).
        system: String,
        /// The resident's id as that system gives it.
        resident_id: String,
        /// Who ordered the erasure (recorded, with the time).
        #[arg(long)]
        by: String,
        /// Read models to count the resident's reports written before contacts were sealed
        /// (which the erasure cannot reach).
        #[arg(long, env = "WANGGE_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Reveal a case's reporter contact in full, if you may; every request is recorded.
    Reveal {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        kek: KekArgs,
        #[command(flatten)]
        postgres: PostgresArgs,
        #[command(flatten)]
        reference: ReferenceArgs,
        case_id: CaseId,
        /// Your grid id (a worker's or a supervisor's id in the grid, or an auditor's).
        #[arg(long = "as", value_name = "GRID_ID")]
        requester: String,
        /// The role you ask in: grid_worker, supervisor or auditor. Default: grid_worker if
        /// the grid has a worker of that id, else supervisor.
        #[arg(long)]
        role: Option<String>,
        /// Why you need it (recorded).
        #[arg(long)]
        reason: String,
    },
    /// Who asked to see which reporter's contact, when, why, and the answer; newest first.
    Reveals {
        #[command(flatten)]
        postgres: PostgresArgs,
        #[command(flatten)]
        reference: ReferenceArgs,
        #[arg(long = "case")]
        case_id: Option<CaseId>,
        /// Only requests by this grid id.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Rewrap every data key under the current KEK (--kek-file), opening them with the old
    /// one (--previous-kek-file). Keep the old KEK until this has finished.
    Rewrap {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Write a fresh random KEK to a new file, readable by its owner only.
    NewKek { path: PathBuf },
}

pub async fn run(args: ResidentsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Erase {
            nats,
            kek,
            system,
            resident_id,
            by,
            postgres_url,
        } => {
            let client = nats.connect().await?;
            let keys = kek.open(client, nats.replicas()).await?;
            let erasure = keys
                .erase(&system, &resident_id, &by, chrono::Utc::now())
                .await?;
            println!(
                "resident erased: {} (data key revisions destroyed: {}), ordered by {} at {}",
                erasure.resident_key,
                erasure.key_revisions_destroyed,
                erasure.ordered_by,
                erasure.erased_at.to_rfc3339()
            );
            if let Some(url) = postgres_url {
                let models =
                    crate::connect_read_models(&url, ReferenceArgs::bundled_context()?).await?;
                let legacy = ContactReveals::new(models, None)
                    .legacy_contact_reports(&resident_id)
                    .await?;
                if legacy > 0 {
                    println!(
                        "warning: {legacy} report(s) written before contacts were sealed name this resident in plain text; \
                         erasing those needs the event stream rewritten (see docs/design/personal-data.md)"
                    );
                } else {
                    println!("no report written before contacts were sealed names this resident");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Reveal {
            nats,
            kek,
            postgres,
            reference,
            case_id,
            requester,
            role,
            reason,
        } => {
            let grid = reference.load()?.0;
            let role = match role {
                Some(text) => RequesterRole::parse(&text).with_context(|| {
                    format!("--role `{text}`: expected grid_worker, supervisor or auditor")
                })?,
                None if grid.worker(&requester).is_some() => RequesterRole::GridWorker,
                None => RequesterRole::Supervisor,
            };
            let models = postgres.connect(reference.fold_context()?).await?;
            let opener: Option<Arc<dyn ContactOpener>> = if kek.given() {
                let client = nats.connect().await?;
                Some(kek.open(client, nats.replicas()).await?)
            } else {
                None
            };
            let reveals = ContactReveals::new(models, opener);
            let request = RevealRequest {
                case_id,
                requester,
                role,
                reason,
            };
            let answer = reveals.reveal(&request, chrono::Utc::now()).await?;
            Ok(match answer {
                RevealAnswer::Revealed(contact) | RevealAnswer::Legacy(contact) => {
                    println!("{}", serde_json::to_string_pretty(&contact)?);
                    ExitCode::SUCCESS
                }
                RevealAnswer::Refused(why) => {
                    eprintln!("refused: {why}");
                    ExitCode::from(3)
                }
                RevealAnswer::Erased => {
                    eprintln!("erased: the reporter of case {case_id} was erased; their contact can no longer be read");
                    ExitCode::from(4)
                }
                RevealAnswer::NoContact => {
                    eprintln!("case {case_id} has no reporter contact");
                    ExitCode::from(2)
                }
                RevealAnswer::NoKeyStore => {
                    eprintln!("no key-encryption key: give --kek-file (or WANGGE_KEK_FILE / WANGGE_KEK) to open contacts");
                    ExitCode::from(2)
                }
            })
        }
        Action::Reveals {
            postgres,
            reference,
            case_id,
            by,
            limit,
        } => {
            let models = postgres.connect(reference.fold_context()?).await?;
            let records = ContactReveals::new(models, None)
                .reveals(&RevealQuery {
                    case_id,
                    requester: by,
                    limit: Some(limit),
                })
                .await?;
            if records.is_empty() {
                println!("no reveals recorded");
            }
            for r in records {
                println!(
                    "{:>6}  {}  {:<20} {:<12} case {}  {:<36} {:<12} {}{}",
                    r.reveal_id,
                    r.requested_at.format("%Y-%m-%d %H:%M:%S"),
                    r.requester,
                    r.role,
                    r.case_id,
                    r.resident_key.as_deref().unwrap_or("-"),
                    r.outcome,
                    r.reason,
                    r.refusal
                        .map(|why| format!("  ({why})"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Rewrap { nats, kek } => {
            let client = nats.connect().await?;
            let keys = kek.open(client, nats.replicas()).await?;
            let report = keys.rewrap().await?;
            println!(
                "{} data keys rewrapped under {}, {} already were; the previous KEK may now be retired",
                report.rewrapped,
                keys.kek_id(),
                report.already_current
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::NewKek { path } => {
            use std::io::Write;
            #[cfg(unix)]
            use std::os::unix::fs::OpenOptionsExt;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            options.mode(0o600);
            let mut file = options
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let kek = Kek::generate();
            writeln!(file, "{}", kek.to_base64())?;
            println!(
                "new key-encryption key {} written to {}",
                kek.id(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
