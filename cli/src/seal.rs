//! `wangge seal keygen --out FILE`: a new seal key (the Ed25519 key the engine signs every
//! commit with), written mode 0600; prints its key id and its keyring line, never the key.
//! Also the flags that other subcommands share: the engine's key (`--seal-key`) and the
//! verifiers' keyring of public keys (`--seal-public-keys`).
//!
//! Keyring format: one `<key id> <base64 public key>` per line, `#` comments and blank
//! lines allowed; the id is derived from the key (`wangge_domain::seal::key_id_of`) and a
//! line whose id does not match its key is refused. Keys stay in the keyring after rotation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use wangge_engine::domain::fold::audit::SealPolicy;
use wangge_engine::domain::seal::Keyring;
use wangge_engine::log::SealKey;

#[derive(Debug, Args)]
pub struct SealArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Write a new seal key (PKCS#8 PEM, mode 0600) and print its key id and keyring line.
    /// Add the line to the verifiers' keyring before an engine starts signing with the key.
    Keygen {
        /// Where the new key goes; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the key id and keyring line of an existing seal key (never the key itself).
    Public {
        #[command(flatten)]
        key: SealKeyArgs,
    },
}

pub fn run(args: SealArgs) -> anyhow::Result<ExitCode> {
    let key = match args.action {
        Action::Keygen { out } => {
            let key = SealKey::generate();
            key.write_new(&out)?;
            eprintln!(
                "seal key {} written to {} (mode 0600)",
                key.key_id(),
                out.display()
            );
            key
        }
        Action::Public { key } => key.load()?,
    };
    eprintln!("key id: {}", key.key_id());
    eprintln!("public key: {}", key.public_key_text());
    eprintln!("keyring line (append it to the file given as --seal-public-keys):");
    println!("{}", key.keyring_line());
    Ok(ExitCode::SUCCESS)
}

/// The engine's seal key: every commit this process appends is signed with it.
#[derive(Debug, Clone, Args)]
pub struct SealKeyArgs {
    /// The engine's private seal key: a PKCS#8 PEM or a 32-byte seed file, readable by the
    /// engine's user only (`wangge seal keygen` writes one). Never printed.
    #[arg(long = "seal-key", env = "WANGGE_SEAL_KEY_FILE", value_name = "FILE")]
    pub seal_key: PathBuf,
}

impl SealKeyArgs {
    pub fn load(&self) -> anyhow::Result<SealKey> {
        Ok(SealKey::load(&self.seal_key)?)
    }
}

/// The public keys seals are checked against.
#[derive(Debug, Clone, Args)]
pub struct KeyringArgs {
    /// The keyring of the engines' public seal keys, old ones included: one `<key id>
    /// <base64 public key>` per line (what `wangge seal keygen` prints).
    #[arg(long, env = "WANGGE_SEAL_PUBLIC_KEYS_FILE", value_name = "FILE")]
    pub seal_public_keys: PathBuf,
    /// Accept commits without a seal at log positions below this one, before any sealed
    /// commit of their case: a log written before sealing existed (the position of the
    /// first sealed commit). Unsealed commits at or after it, or after a sealed commit of
    /// their case, are always reported.
    #[arg(long, env = "WANGGE_ALLOW_UNSEALED_BEFORE", value_name = "POSITION")]
    pub allow_unsealed_before: Option<u64>,
}

impl KeyringArgs {
    pub fn policy(&self) -> anyhow::Result<SealPolicy> {
        Ok(SealPolicy {
            keyring: read_keyring(&self.seal_public_keys)?,
            allow_unsealed_before: self.allow_unsealed_before,
        })
    }
}

/// Reads a keyring file; errors name the file and the line.
pub fn read_keyring(path: &Path) -> anyhow::Result<Keyring> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("seal public keys file {}: unreadable", path.display()))?;
    Keyring::parse(&text).with_context(|| format!("seal public keys file {}", path.display()))
}

/// The policy an engine's read side checks served audit trails with: its own key and, when
/// given, the keyring's (old keys after a rotation).
pub fn engine_policy(
    key: &SealKey,
    keyring: Option<&Path>,
    allow_unsealed_before: Option<u64>,
) -> anyhow::Result<Arc<SealPolicy>> {
    let mut policy = SealPolicy {
        keyring: match keyring {
            Some(path) => read_keyring(path)?,
            None => Keyring::default(),
        },
        allow_unsealed_before,
    };
    policy.keyring.insert(key.verifying_key());
    Ok(Arc::new(policy))
}
