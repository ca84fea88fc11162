//! API keys for other systems (a hotline, a kiosk, a BI tool reading indicators): opaque,
//! random, shown once, stored as their SHA-256, each with a read-only role and optionally
//! one district.
//!
//! A key is `wk_` and 43 base64url characters (256 random bits from the OS), presented as
//! `Authorization: Bearer wk_…` — the one header tokens use too, so a client (Prometheus's
//! `authorization.credentials_file`, say) needs nothing else. Keys live in PostgreSQL
//! (table `api_keys`, migration V7) beside the PostgreSQL read models, or in a keys file
//! (JSON, mode 0600) beside the memory read models; both read the store on every lookup, so
//! a revoked key stops working at once.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_engine::domain::grid::access::AccessRole;

use super::auth::hash_api_key;

/// What every API key starts with, so the server can tell a key from a JWT.
pub const API_KEY_PREFIX: &str = "wk_";

/// The roles an API key may have: read-only, never a person's.
pub const API_KEY_ROLES: [AccessRole; 3] = [
    AccessRole::Auditor,
    AccessRole::District,
    AccessRole::Metrics,
];

/// An API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Unique; how the key is listed and revoked.
    pub name: String,
    pub role: AccessRole,
    /// The only district the key reads (required for `district`).
    pub district: Option<String>,
    /// The hex SHA-256 of the key.
    pub key_hash: String,
    /// The key's first characters, to recognise it in a list.
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("an API key named `{0}` exists already")]
    NameTaken(String),
    #[error("no API key named `{0}`")]
    UnknownName(String),
    #[error("api key store: {0}")]
    Store(String),
}

/// Where API keys are kept.
#[async_trait::async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    async fn insert(&self, record: ApiKeyRecord) -> Result<(), ApiKeyError>;
    async fn list(&self) -> Result<Vec<ApiKeyRecord>, ApiKeyError>;
    /// Marks the key revoked; `false` when it was revoked already.
    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool, ApiKeyError>;
    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyError>;
}

/// A new key and its record: the key is shown once and never stored.
pub fn new_api_key(
    name: &str,
    role: AccessRole,
    district: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, ApiKeyRecord), ApiKeyError> {
    use base64::Engine as _;
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiKeyError::Invalid {
            field: "name",
            reason: "must be 1 to 100 characters, no control characters".to_owned(),
        });
    }
    if !API_KEY_ROLES.contains(&role) {
        return Err(ApiKeyError::Invalid {
            field: "role",
            reason: format!("an API key is auditor, district or metrics, not {role}"),
        });
    }
    match (role, district) {
        (AccessRole::District, None) => {
            return Err(ApiKeyError::Invalid {
                field: "district",
                reason: "a district key needs `--district <code>`".to_owned(),
            })
        }
        (AccessRole::Metrics, Some(_)) => {
            return Err(ApiKeyError::Invalid {
                field: "district",
                reason: "a metrics key reads /metrics only; it has no district".to_owned(),
            })
        }
        _ => {}
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| ApiKeyError::Store(format!("no randomness: {error}")))?;
    let key = format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let record = ApiKeyRecord {
        name: name.to_owned(),
        role,
        district: district.map(str::to_owned),
        key_hash: hash_api_key(&key),
        key_prefix: key.chars().take(10).collect(),
        created_at: now,
        revoked_at: None,
    };
    Ok((key, record))
}

/// API keys in a JSON file (the memory read models' store; the demo's).
#[derive(Debug, Clone)]
pub struct ApiKeyFile {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<ApiKeyRecord>,
}

impl ApiKeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<KeysFile, ApiKeyError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| {
                ApiKeyError::Store(format!(
                    "{} is not a keys file: {error}",
                    self.path.display()
                ))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
            Err(error) => Err(ApiKeyError::Store(format!(
                "cannot read {}: {error}",
                self.path.display()
            ))),
        }
    }

    /// Writes the whole file anew (a temporary file renamed over it, so a reader never
    /// sees half of it), readable by its owner only.
    fn write(&self, file: &KeysFile) -> Result<(), ApiKeyError> {
        let store = |error: std::io::Error| {
            ApiKeyError::Store(format!("cannot write {}: {error}", self.path.display()))
        };
        let text = serde_json::to_string_pretty(file)
            .map_err(|error| ApiKeyError::Store(error.to_string()))?;
        let temporary = self.path.with_extension("tmp");
        write_private(&temporary, text.as_bytes()).map_err(store)?;
        std::fs::rename(&temporary, &self.path).map_err(store)
    }
}

/// Writes `bytes` to a new file only its owner can read (mode 0600 on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[async_trait::async_trait]
impl ApiKeyStore for ApiKeyFile {
    async fn insert(&self, record: ApiKeyRecord) -> Result<(), ApiKeyError> {
        let mut file = self.read()?;
        if file.keys.iter().any(|k| k.name == record.name) {
            return Err(ApiKeyError::NameTaken(record.name));
        }
        file.keys.push(record);
        self.write(&file)
    }

    async fn list(&self) -> Result<Vec<ApiKeyRecord>, ApiKeyError> {
        Ok(self.read()?.keys)
    }

    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool, ApiKeyError> {
        let mut file = self.read()?;
        let key = file
            .keys
            .iter_mut()
            .find(|k| k.name == name)
            .ok_or_else(|| ApiKeyError::UnknownName(name.to_owned()))?;
        if key.revoked_at.is_some() {
            return Ok(false);
        }
        key.revoked_at = Some(at);
        self.write(&file)?;
        Ok(true)
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyError> {
        Ok(self
            .read()?
            .keys
            .into_iter()
            .find(|k| k.key_hash == key_hash))
    }
}
