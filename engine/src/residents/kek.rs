//! The key-encryption key (KEK): the one secret that unlocks every resident's data key.
//!
//! It is 32 random bytes, base64 encoded, read from a file (`--kek-file`, `WANGGE_KEK_FILE`)
//! or from `WANGGE_KEK`. A file others may read is refused. The key is never printed: its
//! `Debug` shows only its id, a hash of the key (`kek-` and 12 hex digits), which every
//! wrapped data key records so the KEK can be rotated (`wangge residents rewrap`).

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Bytes of a KEK (and of every data key).
pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("key-encryption key {source_name}: cannot read it: {reason}")]
    Unreadable { source_name: String, reason: String },
    #[error(
        "key-encryption key {source_name}: others may read it (mode {mode:o}); make it readable \
         by the engine's user only (chmod 600)"
    )]
    WorldReadable { source_name: String, mode: u32 },
    #[error(
        "key-encryption key {source_name}: {reason}; it must be 32 random bytes in base64 \
         (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    Malformed { source_name: String, reason: String },
    #[error(
        "no key-encryption key: give --kek-file (or WANGGE_KEK_FILE) or WANGGE_KEK; residents' \
         contact details cannot be sealed or read without one"
    )]
    Missing,
}

/// A key-encryption key. Cloning copies the key; nothing prints it.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its base64 text; `source_name` names where it came from in errors.
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, KekError> {
        let malformed = |reason: String| KekError::Malformed {
            source_name: source_name.to_owned(),
            reason,
        };
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| malformed("it is not valid base64".to_owned()))?;
        let key: [u8; KEY_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| malformed(format!("it is {} bytes, not {KEY_BYTES}", bytes.len())))?;
        if key.iter().all(|b| *b == key[0]) {
            return Err(malformed("all its bytes are the same".to_owned()));
        }
        Ok(Self::from_bytes(key))
    }

    /// A KEK from a file that only its owner may read.
    pub fn from_file(path: &Path) -> Result<Self, KekError> {
        let source_name = format!("file {}", path.display());
        let unreadable = |reason: String| KekError::Unreadable {
            source_name: source_name.clone(),
            reason,
        };
        let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(KekError::WorldReadable {
                    source_name: source_name.clone(),
                    mode,
                });
            }
        }
        if !metadata.is_file() {
            return Err(unreadable("not a regular file".to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        Self::from_base64(&text, &source_name)
    }

    /// The KEK a process is configured with: a file, else `WANGGE_KEK`'s base64.
    pub fn configured(file: Option<&Path>) -> Result<Self, KekError> {
        if let Some(path) = file {
            return Self::from_file(path);
        }
        match std::env::var("WANGGE_KEK") {
            Ok(text) if !text.trim().is_empty() => {
                Self::from_base64(&text, "in environment variable WANGGE_KEK")
            }
            _ => Err(KekError::Missing),
        }
    }

    /// A fresh random KEK, for the demo (whose log lives as long as the process) and tests.
    pub fn generate() -> Self {
        Self::from_bytes(super::sealing::random_key())
    }

    /// Its base64 text, for writing a new key file (`wangge residents new-kek`).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    fn from_bytes(key: [u8; KEY_BYTES]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"wangge kek id\0")
            .chain_update(key)
            .finalize();
        Self {
            id: format!("kek-{}", &hex::encode(digest)[..12]),
            key,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn key(&self) -> &[u8; KEY_BYTES] {
        &self.key
    }
}

/// The KEK that wraps new data keys, and older ones still able to unwrap keys they wrapped
/// while a rotation is under way.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: Kek,
    previous: Vec<Kek>,
}

impl KeyRing {
    pub fn new(current: Kek) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Also unwraps data keys wrapped by `previous` (during a rotation).
    pub fn with_previous(mut self, previous: Kek) -> Self {
        if previous.id != self.current.id {
            self.previous.push(previous);
        }
        self
    }

    pub fn current(&self) -> &Kek {
        &self.current
    }

    /// The KEK with this id, if the ring holds it.
    pub fn by_id(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|kek| kek.id == id)
    }
}
