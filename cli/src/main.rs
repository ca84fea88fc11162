//! The `wangge` command line: one binary, a subcommand per job.
//!
//! The command is the outermost shell: it reads flags and files, connects to NATS (and
//! PostgreSQL), and starts the engine's actors and the read side. Everything it runs lives in
//! the `wangge-engine` and `wangge-projections` libraries.

mod audit;
mod auth;
mod case;
mod demo;
mod grid;
mod nats_users;
mod projections;
mod publish;
mod rejected;
mod request;
mod residents;
mod seal;
mod serve;
mod sla;
mod streams;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wangge_engine::grid::{CategoryCatalogue, GridDirectory, GridStream, GridStreamConfig};
use wangge_engine::log::{JetStreamLog, JetStreamLogConfig};
use wangge_engine::nats::connect::redact_url;
use wangge_engine::nats::{NatsConnectOptions, Secret};
use wangge_engine::sla::{load_sla_dir, SlaReference, SlaStream, SlaStreamConfig};
use wangge_projections::{FoldContext, PostgresReadModels};

#[derive(Debug, Parser)]
#[command(
    name = "wangge",
    version,
    about = "Wangge (网格): an event-sourced work-order engine for grid governance"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "WANGGE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a demonstration on the embedded in-memory log (no servers needed).
    Demo(demo::DemoArgs),
    /// Run the engine: intake on NATS, events on JetStream.
    Serve(serve::ServeArgs),
    /// Send one intake message (a report, a service request, a patrol finding or an
    /// evaluation; from a file or stdin) and print the engine's answer.
    Publish(publish::PublishArgs),
    /// Inspect and replay messages the engine refused.
    Rejected(rejected::RejectedArgs),
    /// Show one case: its events and current state.
    Case(case::CaseArgs),
    /// A grid worker's view: the task inbox, and acting on a task.
    Worker(worker::WorkerArgs),
    /// Change the grid of the running engines, and show the live grid.
    Grid(grid::GridArgs),
    /// Publish business calendars and SLA policies to the running engines, show them, and
    /// see which calendar runs out.
    Sla(sla::SlaArgs),
    /// The read models in PostgreSQL: run the projections, their status and lag, rebuild one.
    Projections(projections::ProjectionsArgs),
    /// The audit trail in PostgreSQL: verify its hash chains and the engine's seals.
    Audit(audit::AuditArgs),
    /// The NATS server's side: the users of the shipped accounts (deploy/nats/).
    Nats(nats_users::NatsAdminArgs),
    /// Residents' personal data: erase a resident, reveal a reporter's contact (recorded),
    /// list reveals, rotate the key-encryption key.
    Residents(residents::ResidentsArgs),
    /// The engine's seal keys: make one, show a key's public half for the keyring.
    Seal(seal::SealArgs),
    /// The HTTP API's credentials: signing keys, tokens for people of the grid, API keys
    /// for other systems.
    Auth(auth::AuthArgs),
    /// The streams as the server has them; lowering a stream's replicas or limits on
    /// purpose (`set … --confirm`): no other command ever weakens a stream.
    Streams(streams::StreamsArgs),
}

/// Where NATS is, how to prove who we are, and how the event stream is set up.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URLs, comma-separated (nats://host:4222, tls://host:4222). A URL may carry
    /// credentials (nats://user:password@host, nats://token@host); they are never shown.
    #[arg(
        long,
        env = "WANGGE_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub nats_url: Vec<String>,
    #[command(flatten)]
    pub auth: NatsAuthArgs,
    /// Replicas of the streams and buckets this command creates: 1 on one server, 3 on a
    /// cluster. Left out, an existing stream keeps its own (a new one gets 1); a number lower
    /// than a stream has is refused (`wangge streams set … --confirm` lowers deliberately).
    #[arg(long, env = "WANGGE_STREAM_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: Option<u8>,
}

/// How to prove who we are to NATS (one way at most) and how to trust its TLS certificate.
/// Every subcommand that talks to NATS takes these; secrets are never printed.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsAuthArgs {
    /// A NATS credentials file (.creds: user JWT and nkey seed).
    #[arg(long, env = "WANGGE_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// A file holding the user's nkey seed (SU...), for nkey users.
    #[arg(long, env = "WANGGE_NATS_NKEY", value_name = "SEED_FILE")]
    pub nats_nkey: Option<PathBuf>,
    /// User name, with --nats-password.
    #[arg(long, env = "WANGGE_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,
    /// Password, with --nats-user (prefer the environment variable: a flag shows in `ps`).
    #[arg(
        long,
        env = "WANGGE_NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<Secret>,
    /// Authentication token (prefer the environment variable: a flag shows in `ps`).
    #[arg(long, env = "WANGGE_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<Secret>,
    /// PEM file of the CA that signed the server's certificate; connects with TLS.
    #[arg(long, env = "WANGGE_NATS_TLS_CA", value_name = "PEM")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), with --nats-tls-key, for servers that verify clients.
    #[arg(
        long,
        env = "WANGGE_NATS_TLS_CERT",
        value_name = "PEM",
        requires = "nats_tls_key"
    )]
    pub nats_tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "WANGGE_NATS_TLS_KEY",
        value_name = "PEM",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
    /// The prefix of this connection's reply subjects: `_INBOX_<user>` with `--nats-user`
    /// (users made by `wangge nats users` may subscribe only to `_INBOX_<user>.>`), else
    /// `_INBOX`.
    #[arg(long, env = "WANGGE_NATS_INBOX_PREFIX", value_name = "PREFIX")]
    pub nats_inbox_prefix: Option<String>,
}

impl NatsAuthArgs {
    /// The connection options for these servers.
    pub fn options(&self, servers: &[String]) -> NatsConnectOptions {
        NatsConnectOptions {
            servers: servers.to_vec(),
            credentials_file: self.nats_creds.clone(),
            nkey_seed_file: self.nats_nkey.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            tls_ca_file: self.nats_tls_ca.clone(),
            tls_cert_file: self.nats_tls_cert.clone(),
            tls_key_file: self.nats_tls_key.clone(),
            name: Some("wangge".to_owned()),
            // Users made by `wangge nats users` read only their own replies.
            inbox_prefix: self
                .nats_inbox_prefix
                .clone()
                .or_else(|| self.nats_user.as_ref().map(|user| format!("_INBOX_{user}"))),
        }
    }

    /// Connects (and refuses a server older than the engine needs).
    pub async fn connect(&self, servers: &[String]) -> anyhow::Result<async_nats::Client> {
        Ok(wangge_engine::nats::connect(&self.options(servers)).await?)
    }
}

impl NatsArgs {
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        self.auth.connect(&self.nats_url).await
    }

    /// The replicas for the engine's stream configs: 0 when not given, which opening a
    /// stream reads as "as the stream has it" (1 for a new one).
    pub fn replicas(&self) -> usize {
        self.replicas.map_or(0, usize::from)
    }

    /// The servers as they may be shown (credentials in URLs replaced).
    pub fn shown_servers(&self) -> String {
        self.nats_url
            .iter()
            .map(|url| redact_url(url))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub async fn open_log(&self, client: async_nats::Client) -> anyhow::Result<JetStreamLog> {
        let config = JetStreamLogConfig {
            replicas: self.replicas(),
            ..Default::default()
        };
        Ok(JetStreamLog::open(client, config).await?)
    }

    pub async fn open_grid_stream(&self, client: async_nats::Client) -> anyhow::Result<GridStream> {
        let config = GridStreamConfig {
            replicas: self.replicas(),
            ..Default::default()
        };
        Ok(GridStream::open(client, config).await?)
    }

    pub async fn open_sla_stream(&self, client: async_nats::Client) -> anyhow::Result<SlaStream> {
        let config = SlaStreamConfig {
            replicas: self.replicas(),
            ..Default::default()
        };
        Ok(SlaStream::open(client, config).await?)
    }
}

/// Where the SLA calendars and policies come from before the SLA stream adds to them.
#[derive(Debug, Clone, Args)]
pub struct SlaDirArgs {
    /// Directory with `calendars.json` and/or `policies.json`; what it lacks (or all, when
    /// not given) is the bundled data. Every engine instance must be given the same.
    #[arg(long, env = "WANGGE_SLA_DIR", value_name = "DIR")]
    pub sla_dir: Option<PathBuf>,
}

impl SlaDirArgs {
    /// The files' data, refused with the file, the JSON path and the reason when invalid.
    pub fn load(&self) -> anyhow::Result<SlaReference> {
        let (reference, calendars, policies) = load_sla_dir(self.sla_dir.as_deref())?;
        tracing::info!(%calendars, %policies, "sla files loaded");
        Ok(reference)
    }

    /// Where the files come from, for people.
    pub fn describe(&self) -> String {
        match &self.sla_dir {
            Some(dir) => dir.display().to_string(),
            None => "bundled".to_owned(),
        }
    }
}

/// The grid and category files (the bundled sample city when not given).
#[derive(Debug, Clone, Args)]
pub struct ReferenceArgs {
    /// Grid file (districts → communities → buildings); default: the bundled sample city.
    #[arg(long, env = "WANGGE_GRID")]
    pub grid: Option<PathBuf>,
    /// Category catalogue file; default: the bundled catalogue.
    #[arg(long, env = "WANGGE_CATEGORIES")]
    pub categories: Option<PathBuf>,
    #[command(flatten)]
    pub sla: SlaDirArgs,
}

impl ReferenceArgs {
    pub fn load(&self) -> anyhow::Result<(Arc<GridDirectory>, Arc<CategoryCatalogue>)> {
        let grid = match &self.grid {
            Some(path) => wangge_engine::grid::load_grid_file(path)?,
            None => GridDirectory::sample_city(),
        };
        let categories = match &self.categories {
            Some(path) => wangge_engine::grid::load_categories(path)?,
            None => CategoryCatalogue::sample(),
        };
        Ok((Arc::new(grid), Arc::new(categories)))
    }
}

impl ReferenceArgs {
    /// The bundled grid and categories, for commands that need the read models but no
    /// answer that depends on the grid.
    pub fn bundled_context() -> anyhow::Result<FoldContext> {
        Ok(FoldContext::new(
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
        ))
    }

    /// What the read side answers with: the grid and the categories.
    pub fn fold_context(&self) -> anyhow::Result<FoldContext> {
        let (grid, categories) = self.load()?;
        Ok(FoldContext::new(grid, categories))
    }
}

/// Where the read models live in PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct PostgresArgs {
    /// PostgreSQL URL of the read-model database (created if the server lacks it).
    #[arg(
        long,
        env = "WANGGE_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/wangge"
    )]
    pub postgres_url: String,
}

impl PostgresArgs {
    pub async fn connect(&self, context: FoldContext) -> anyhow::Result<Arc<PostgresReadModels>> {
        connect_read_models(&self.postgres_url, context).await
    }

    /// The URL without a password, for messages.
    pub fn display(&self) -> String {
        redact(&self.postgres_url)
    }
}

pub async fn connect_read_models(
    url: &str,
    context: FoldContext,
) -> anyhow::Result<Arc<PostgresReadModels>> {
    PostgresReadModels::connect(url, context)
        .await
        .map_err(|e| anyhow::anyhow!("read models at {}: {e}", redact(url)))
}

/// A URL with its password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// mimalloc instead of glibc malloc: the engine allocates many small buffers per command on
/// many threads, and profiles showed glibc's allocator as its largest single cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Rejected(args) => rejected::run(args).await,
        Command::Case(args) => case::run(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::Grid(args) => grid::run(args).await,
        Command::Sla(args) => sla::run(args).await,
        Command::Projections(args) => projections::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Nats(args) => nats_users::run(args).await,
        Command::Residents(args) => residents::run(args).await,
        Command::Seal(args) => seal::run(args),
        Command::Auth(args) => auth::run(args).await,
        Command::Streams(args) => streams::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_env("WANGGE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
