//! `wangge auth`: signing keys, tokens and API keys for the HTTP API; and the
//! authentication flags `wangge serve` takes ([`HttpAuthArgs`]).
//!
//! - `wangge auth keygen --out FILE`: an Ed25519 key pair, FILE (private, mode 0600) and
//!   FILE.pub (what `wangge serve --auth-public-key` reads).
//! - `wangge auth token --as <grid id> [--role …] [--ttl 8h]`: a JWT signed with
//!   `--auth-key FILE` (env `WANGGE_AUTH_KEY_FILE`); without `--role`, the grid's role for
//!   the id; an id the grid does not know is refused for a grid role.
//! - `wangge auth key create|list|revoke`: API keys in PostgreSQL (`--postgres-url`) or a
//!   keys file (`--keys-file`, for the memory read models).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use wangge_engine::domain::grid::access::{self, AccessRole};
use wangge_projections::http::api_keys::{new_api_key, write_private, ApiKeyFile, ApiKeyStore};
use wangge_projections::http::auth::{TokenSigner, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use wangge_projections::http::{Authenticator, TokenVerifier};
use wangge_projections::postgres::api_keys::PostgresApiKeys;

use crate::ReferenceArgs;

#[derive(Debug, Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Write a new Ed25519 signing key (mode 0600) and its public key (FILE.pub).
    Keygen {
        /// Where the private key goes; the public key goes to the same path with `.pub`.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a token for a person of the grid, signed with the local key.
    Token(TokenArgs),
    /// API keys for other systems (hotlines, kiosks, BI tools).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The grid id the token names (`sub`): a worker, a supervisor, a supervision leader.
    #[arg(long = "as")]
    as_id: String,
    /// grid_worker, supervisor, district, auditor or admin; default: the grid's role for
    /// the id. auditor and admin are not grid roles: any id may be named with them.
    #[arg(long)]
    role: Option<AccessRole>,
    /// How long the token is valid: 30m, 8h, 7d (at most 30d).
    #[arg(long, default_value = "8h", value_parser = parse_ttl)]
    ttl: Duration,
    /// The private key (`wangge auth keygen`).
    #[arg(long, env = "WANGGE_AUTH_KEY_FILE")]
    auth_key: PathBuf,
    #[arg(long, env = "WANGGE_AUTH_ISSUER", default_value = DEFAULT_ISSUER)]
    issuer: String,
    #[arg(long, env = "WANGGE_AUTH_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    audience: String,
    #[command(flatten)]
    reference: ReferenceArgs,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key; it is printed once and only its hash is kept.
    Create {
        #[arg(long)]
        name: String,
        /// auditor (everything, read only), district (one district) or metrics (/metrics).
        #[arg(long)]
        role: AccessRole,
        /// Limit the key to one district (required for `district`).
        #[arg(long)]
        district: Option<String>,
        #[command(flatten)]
        store: KeyStoreArgs,
        #[command(flatten)]
        reference: ReferenceArgs,
    },
    /// List keys (names, roles, districts, prefixes, when created and revoked).
    List {
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Revoke a key by name: refused from the next request on.
    Revoke {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
}

#[derive(Debug, Args)]
struct KeyStoreArgs {
    /// The read models' PostgreSQL (table `api_keys`).
    #[arg(long, env = "WANGGE_POSTGRES_URL", conflicts_with = "keys_file")]
    postgres_url: Option<String>,
    /// A keys file (JSON, mode 0600), for servers on the memory read models.
    #[arg(long, env = "WANGGE_AUTH_API_KEYS_FILE")]
    keys_file: Option<PathBuf>,
}

impl KeyStoreArgs {
    async fn open(&self) -> anyhow::Result<Arc<dyn ApiKeyStore>> {
        match (&self.postgres_url, &self.keys_file) {
            (Some(url), _) => api_keys_in_postgres(url).await,
            (None, Some(path)) => Ok(Arc::new(ApiKeyFile::new(path))),
            (None, None) => bail!("say where the keys are: --postgres-url or --keys-file"),
        }
    }
}

async fn api_keys_in_postgres(url: &str) -> anyhow::Result<Arc<dyn ApiKeyStore>> {
    let config = wangge_projections::postgres::pool::parse_url(url)?;
    wangge_projections::postgres::pool::ensure_database(&config).await?;
    wangge_projections::postgres::schema::migrate(&config).await?;
    let pool = wangge_projections::postgres::pool::pool(&config, 2)?;
    Ok(Arc::new(PostgresApiKeys::new(pool)))
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m, 8h or 7d"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    if seconds == 0 || seconds > 30 * 86_400 {
        return Err(format!("`{text}`: a token lives 1 s to 30 days"));
    }
    Ok(Duration::from_secs(seconds))
}

pub async fn run(args: AuthArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuthCommand::Keygen { out, force } => {
            let public = public_path(&out);
            for path in [&out, &public] {
                if path.exists() && !force {
                    bail!("{} exists; pass --force to replace it", path.display());
                }
            }
            let (private_pem, public_pem) = wangge_projections::http::auth::generate_ed25519_pem()?;
            write_private(&out, private_pem.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            std::fs::write(&public, public_pem)
                .with_context(|| format!("cannot write {}", public.display()))?;
            println!(
                "wrote the signing key {} (mode 0600: keep it secret) and the public key {} (give it to `wangge serve --auth-public-key`)",
                out.display(),
                public.display()
            );
        }
        AuthCommand::Token(args) => {
            let (grid, _) = args.reference.load()?;
            let role = match args.role {
                Some(AccessRole::Metrics) => {
                    bail!("`metrics` is a role for API keys (`wangge auth key create --role metrics`)")
                }
                Some(role) => role,
                None => access::role_in_grid(&grid, &args.as_id).map_err(|e| {
                    anyhow!("--as: {e}; name a grid id or give --role auditor/admin")
                })?,
            };
            // A grid role must hold in the grid now, or the server would refuse the token.
            access::scope_of(&grid, &args.as_id, role).map_err(|e| anyhow!("--as: {e}"))?;
            let mut signer = signer_from_file(&args.auth_key)?;
            signer.issuer = args.issuer;
            signer.audience = args.audience;
            let token = signer.issue(&args.as_id, Some(role), chrono::Utc::now(), args.ttl)?;
            println!("{token}");
        }
        AuthCommand::Key(KeyCommand::Create {
            name,
            role,
            district,
            store,
            reference,
        }) => {
            if let Some(district) = &district {
                let (grid, _) = reference.load()?;
                access::district_scope(&grid, district).map_err(|e| anyhow!("--district: {e}"))?;
            }
            let (key, record) = new_api_key(&name, role, district.as_deref(), chrono::Utc::now())?;
            store.open().await?.insert(record).await?;
            eprintln!("API key `{name}` ({role}); shown once, only its hash is kept:");
            println!("{key}");
        }
        AuthCommand::Key(KeyCommand::List { store }) => {
            for key in store.open().await?.list().await? {
                println!(
                    "{}\t{}\t{}\t{}…\tcreated {}\t{}",
                    key.name,
                    key.role,
                    key.district.as_deref().unwrap_or("-"),
                    key.key_prefix,
                    key.created_at.to_rfc3339(),
                    key.revoked_at
                        .map(|at| format!("revoked {}", at.to_rfc3339()))
                        .unwrap_or_else(|| "active".to_owned())
                );
            }
        }
        AuthCommand::Key(KeyCommand::Revoke { name, store }) => {
            if store
                .open()
                .await?
                .revoke(&name, chrono::Utc::now())
                .await?
            {
                println!("revoked API key `{name}`");
            } else {
                println!("API key `{name}` was revoked already");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn signer_from_file(path: &Path) -> anyhow::Result<TokenSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    Ok(TokenSigner::from_private_key_pem(
        &text,
        &path.display().to_string(),
    )?)
}

/// How `wangge serve` checks who is asking on the HTTP API.
#[derive(Debug, Clone, Args)]
pub struct HttpAuthArgs {
    /// Public key (PEM; Ed25519 → EdDSA, P-256 → ES256) that tokens must be signed with.
    #[arg(long, env = "WANGGE_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,
    /// A JWKS document (an identity provider's public keys) read from a file; restart to
    /// take a changed file.
    #[arg(
        long,
        env = "WANGGE_AUTH_JWKS_FILE",
        conflicts_with = "auth_public_key"
    )]
    pub auth_jwks_file: Option<PathBuf>,
    /// An identity provider's JWKS URL (https, or http on loopback): fetched at start (the
    /// server does not start without it), again every `--auth-jwks-refresh-seconds`, and
    /// early (at most every 30 s) when a token names a key id the set lacks.
    #[arg(long, env = "WANGGE_AUTH_JWKS_URL", conflicts_with_all = ["auth_public_key", "auth_jwks_file"])]
    pub auth_jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again.
    #[arg(long, env = "WANGGE_AUTH_JWKS_REFRESH_SECONDS", default_value_t = 600)]
    pub auth_jwks_refresh_seconds: u64,
    /// A shared HS256 secret file (at least 32 bytes): development only, whoever can verify
    /// can sign.
    #[arg(long, env = "WANGGE_AUTH_HMAC_SECRET_FILE", conflicts_with_all = ["auth_public_key", "auth_jwks_file", "auth_jwks_url"])]
    pub auth_hmac_secret_file: Option<PathBuf>,
    /// The `iss` tokens must carry.
    #[arg(long, env = "WANGGE_AUTH_ISSUER", default_value = DEFAULT_ISSUER)]
    pub auth_issuer: String,
    /// The `aud` tokens must carry.
    #[arg(long, env = "WANGGE_AUTH_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub auth_audience: String,
    /// API keys file, for servers on the memory read models (with `--postgres-url` the keys
    /// are in its `api_keys` table).
    #[arg(long, env = "WANGGE_AUTH_API_KEYS_FILE")]
    pub auth_api_keys_file: Option<PathBuf>,
    /// Serve the API and the dashboard to anyone, unauthenticated. Never outside a
    /// developer's own machine.
    #[arg(long)]
    pub auth_disabled_for_development: bool,
}

impl HttpAuthArgs {
    /// Refuses, before anything starts, a server with no way to authenticate.
    pub fn check(&self) -> anyhow::Result<()> {
        let configured = self.auth_public_key.is_some()
            || self.auth_jwks_file.is_some()
            || self.auth_jwks_url.is_some()
            || self.auth_hmac_secret_file.is_some();
        if self.auth_disabled_for_development && configured {
            bail!("--auth-disabled-for-development cannot be combined with a token key");
        }
        if !configured && !self.auth_disabled_for_development {
            bail!(
                "the HTTP API needs authentication: give --auth-public-key FILE (`wangge auth keygen` writes one), --auth-jwks-file FILE or --auth-jwks-url URL; --auth-disabled-for-development serves everyone unauthenticated, for a developer's own machine only"
            );
        }
        Ok(())
    }

    /// The authenticator these flags describe; `postgres_keys`: the API keys of the
    /// PostgreSQL read models, when the server has them.
    pub async fn authenticator(
        &self,
        postgres_keys: Option<Arc<dyn ApiKeyStore>>,
    ) -> anyhow::Result<Authenticator> {
        self.check()?;
        if self.auth_disabled_for_development {
            tracing::warn!("AUTHENTICATION DISABLED: the HTTP API and the dashboard serve every case and every resident's data to anyone who can reach them (--auth-disabled-for-development)");
            eprintln!("WARNING: authentication is disabled (--auth-disabled-for-development): anyone who reaches the HTTP port reads everything");
            return Ok(Authenticator::disabled_for_development());
        }
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let verifier = if let Some(path) = &self.auth_public_key {
            let text = String::from_utf8(read(path)?)
                .map_err(|_| anyhow!("{} is not a PEM text file", path.display()))?;
            TokenVerifier::from_public_key_pem(&text, &path.display().to_string())?
        } else if let Some(path) = &self.auth_jwks_file {
            let text = String::from_utf8(read(path)?)
                .map_err(|_| anyhow!("{} is not a JSON text file", path.display()))?;
            TokenVerifier::from_jwks_json(&text, &path.display().to_string())?
        } else if let Some(url) = &self.auth_jwks_url {
            let client = jwks_client()?;
            let text = fetch_jwks(&client, url).await?;
            let verifier = TokenVerifier::from_jwks_json(&text, url)?;
            tokio::spawn(refresh_jwks(
                client,
                url.clone(),
                verifier.clone(),
                Duration::from_secs(self.auth_jwks_refresh_seconds.max(30)),
            ));
            verifier
        } else if let Some(path) = &self.auth_hmac_secret_file {
            tracing::warn!(file = %path.display(), "tokens checked with a shared HS256 secret: development only");
            TokenVerifier::from_hmac_secret(read(path)?.trim_ascii(), &path.display().to_string())?
        } else {
            bail!("no token key configured");
        };
        let verifier = verifier
            .with_issuer(self.auth_issuer.clone())
            .with_audience(self.auth_audience.clone());
        let api_keys = match (&self.auth_api_keys_file, postgres_keys) {
            (Some(path), _) => Some(Arc::new(ApiKeyFile::new(path)) as Arc<dyn ApiKeyStore>),
            (None, keys) => keys,
        };
        Ok(Authenticator::new(Some(verifier), api_keys))
    }
}

fn jwks_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("an HTTP client for the JWKS")
}

/// The JWKS at `url`: https, or http only to a loopback address (a key set fetched in the
/// clear could be swapped on the way).
pub async fn fetch_jwks(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--auth-jwks-url `{url}`"))?;
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        bail!("--auth-jwks-url `{url}`: must be https (http only on loopback)");
    }
    let response = client
        .get(parsed)
        .send()
        .await
        .with_context(|| format!("cannot fetch the JWKS at {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("the JWKS at {url} answered {status}");
    }
    response
        .text()
        .await
        .with_context(|| format!("cannot read the JWKS at {url}"))
}

/// Fetches the JWKS again every `every`, and early when a token names an unknown key id (at
/// most every 30 s); a failed fetch keeps the keys in hand and is logged.
async fn refresh_jwks(
    client: reqwest::Client,
    url: String,
    verifier: TokenVerifier,
    every: Duration,
) {
    let unknown_key = verifier.unknown_key_seen();
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(last + every) => {}
            _ = unknown_key.notified() => {
                let earliest = last + Duration::from_secs(30);
                tokio::time::sleep_until(earliest).await;
            }
        }
        last = tokio::time::Instant::now();
        match fetch_jwks(&client, &url).await {
            Ok(text) => match verifier.replace_keys_from_jwks(&text, &url) {
                Ok(keys) => tracing::info!(url, keys, "jwks refreshed"),
                Err(error) => {
                    tracing::warn!(url, %error, "jwks refresh refused; keeping the keys in hand")
                }
            },
            Err(error) => tracing::warn!(
                url,
                error = format!("{error:#}"),
                "jwks refresh failed; keeping the keys in hand"
            ),
        }
    }
}
