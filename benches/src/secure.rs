//! A private nats-server for a benchmark, open (no users) or started from the shipped
//! accounts (`deploy/nats/accounts.conf`) with an engine user and intake systems of its own,
//! so figures can be taken with authentication on and off in the same run.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use tempfile::TempDir;
use wangge_engine::nats::accounts::{write_user, UserKind};
use wangge_testkit::NatsServer;

/// The engine's user in the secured mode.
pub const ENGINE_USER: &str = "wangge-engine";

pub struct BenchServer {
    pub server: NatsServer,
    _dir: TempDir,
    /// user → password; empty when open.
    passwords: HashMap<String, String>,
}

impl BenchServer {
    /// `intake_systems` get users of the intake account (secured only).
    pub fn start(secured: bool, intake_systems: &[&str]) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        if !secured {
            return Ok(Self {
                server: NatsServer::start(),
                _dir: dir,
                passwords: HashMap::new(),
            });
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::copy(
            repo.join("deploy/nats/accounts.conf"),
            dir.path().join("accounts.conf"),
        )
        .context("copy the shipped accounts")?;
        let users = dir.path().join("users");
        std::fs::create_dir(&users)?;
        let mut passwords = HashMap::new();
        let password = || uuid::Uuid::now_v7().simple().to_string();
        passwords.insert(ENGINE_USER.to_owned(), password());
        for system in intake_systems {
            passwords.insert((*system).to_owned(), password());
        }
        for kind in [
            UserKind::Engine,
            UserKind::Intake,
            UserKind::Worker,
            UserKind::GridAdmin,
        ] {
            let mut list = String::new();
            for (name, password) in &passwords {
                let is_engine = name == ENGINE_USER;
                let belongs = match kind {
                    UserKind::Engine => is_engine,
                    UserKind::Intake => !is_engine,
                    UserKind::Worker | UserKind::GridAdmin => false,
                };
                if belongs {
                    // The server takes plain passwords as well as bcrypt hashes; a bench does
                    // not need the login cost of a hash.
                    write_user(&mut list, name, password, kind.permissions(name));
                }
            }
            std::fs::write(users.join(kind.file()), format!("users: [\n{list}]\n"))?;
        }
        let config = dir.path().join("server.conf");
        std::fs::write(&config, "include \"accounts.conf\"\n")?;
        let server = NatsServer::start_with_args(&["-c", config.to_str().context("utf-8")?]);
        Ok(Self {
            server,
            _dir: dir,
            passwords,
        })
    }

    pub async fn connect_engine(&self) -> anyhow::Result<async_nats::Client> {
        if self.passwords.is_empty() {
            return Ok(async_nats::connect(self.server.url()).await?);
        }
        self.connect_as(ENGINE_USER).await
    }

    /// A connection as `user` (with its own reply prefix), or an anonymous one when open.
    pub async fn connect_as(&self, user: &str) -> anyhow::Result<async_nats::Client> {
        let Some(password) = self.passwords.get(user) else {
            return Ok(async_nats::connect(self.server.url()).await?);
        };
        Ok(
            async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password.clone())
                .custom_inbox_prefix(format!("_INBOX_{user}"))
                .connect(self.server.url())
                .await?,
        )
    }
}
