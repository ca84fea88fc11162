//! The engine's seal key: the Ed25519 private key every commit is signed with at append
//! (what is signed and how it is checked: [`crate::domain::seal`]).
//!
//! The key is held apart from the NATS credentials: a file readable by the engine's user
//! only (`--seal-key`, `WANGGE_SEAL_KEY_FILE`), never in NATS or PostgreSQL, never printed.
//! Whoever holds the engine's NATS credentials can append to a case subject, but without this
//! key cannot make a seal that verifies. Rotation: a new key, its public key added to the
//! verifiers' keyring first, then the engines restarted with it; old public keys stay in the
//! keyring so old commits keep verifying (`deploy/README.md`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey, SECRET_KEY_LENGTH};
use uuid::Uuid;
use wangge_schemas::{CaseId, EventEnvelope};

use crate::domain::seal::{
    key_id_of, payload_digest, public_key_text, seal_message, CommitSeal, Keyring, SealLink,
    SealedFacts,
};

/// Why a seal key file was refused. Never holds any byte of the key.
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error("seal key file {path}: missing (create one with `wangge seal keygen --out FILE`)")]
    Missing { path: PathBuf },
    #[error("seal key file {path}: unreadable: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("seal key file {path}: mode {mode:04o} lets group or others read or write it; only the engine's user may (chmod 600)")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("seal key file {path}: malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("seal key file {path}: already exists; a new key is never written over an old one")]
    Exists { path: PathBuf },
    #[error("seal key file {path}: cannot write: {reason}")]
    Unwritable { path: PathBuf, reason: String },
}

/// The engine's private seal key, with its id. `Debug` shows the id only.
#[derive(Clone)]
pub struct SealKey {
    signing: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    fn from_signing(signing: SigningKey) -> Self {
        let key_id = key_id_of(&signing.verifying_key());
        Self { signing, key_id }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed (tests, and seed files).
    pub fn from_seed(seed: &[u8; SECRET_KEY_LENGTH]) -> Self {
        Self::from_signing(SigningKey::from_bytes(seed))
    }

    /// Reads a key file: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `wangge seal
    /// keygen` and `openssl genpkey -algorithm ed25519` write) or exactly 32 bytes of seed.
    /// Refused when missing, unreadable, open to group or others, or malformed.
    pub fn load(path: &Path) -> Result<Self, SealKeyError> {
        let owned = || path.to_path_buf();
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SealKeyError::Missing { path: owned() })
            }
            Err(error) => {
                return Err(SealKeyError::Unreadable {
                    path: owned(),
                    reason: error.to_string(),
                })
            }
        };
        if !metadata.is_file() {
            return Err(SealKeyError::Unreadable {
                path: owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        check_private_mode(path, &metadata)?;
        let bytes = std::fs::read(path).map_err(|error| SealKeyError::Unreadable {
            path: owned(),
            reason: error.to_string(),
        })?;
        let malformed = |reason: String| SealKeyError::Malformed {
            path: owned(),
            reason,
        };
        if bytes.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| malformed("PEM file is not UTF-8".to_owned()))?;
            // The pkcs8 error says what failed to parse, never the key's bytes.
            let signing = SigningKey::from_pkcs8_pem(text).map_err(|error| {
                malformed(format!("not an Ed25519 PKCS#8 private key: {error}"))
            })?;
            return Ok(Self::from_signing(signing));
        }
        let seed: [u8; SECRET_KEY_LENGTH] = bytes.as_slice().try_into().map_err(|_| {
            malformed(format!(
                "{} bytes: expected a PKCS#8 PEM or exactly {SECRET_KEY_LENGTH} bytes of seed",
                bytes.len()
            ))
        })?;
        Ok(Self::from_seed(&seed))
    }

    /// Writes this key as PKCS#8 PEM to a new file, mode 0600. Never overwrites a file.
    pub fn write_new(&self, path: &Path) -> Result<(), SealKeyError> {
        let pem = self.signing.to_pkcs8_pem(LineEnding::LF).map_err(|error| {
            SealKeyError::Unwritable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }
        })?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::AlreadyExists {
                SealKeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                SealKeyError::Unwritable {
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                }
            }
        })?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| SealKeyError::Unwritable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key, base64, as keyrings hold it.
    pub fn public_key_text(&self) -> String {
        public_key_text(&self.signing.verifying_key())
    }

    /// This key's keyring line: `<key id> <base64 public key>`.
    pub fn keyring_line(&self) -> String {
        format!("{} {}", self.key_id, self.public_key_text())
    }

    /// A keyring holding this key's public key alone.
    pub fn keyring(&self) -> Keyring {
        let mut keyring = Keyring::default();
        keyring.insert(self.verifying_key());
        keyring
    }

    /// Seals a commit: its events, its payload exactly as it will be appended, and the link
    /// to the case's previous commit. One SHA-256 of the payload and one signature.
    pub fn seal_commit(
        &self,
        case_id: CaseId,
        events: &[EventEnvelope],
        payload: &[u8],
        link: SealLink,
    ) -> CommitSeal {
        let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let digest = payload_digest(payload);
        let facts = SealedFacts {
            case_id,
            first_sequence: events.first().map_or(0, |e| e.sequence),
            last_sequence: events.last().map_or(0, |e| e.sequence),
            event_ids: &event_ids,
            payload_sha256: &digest,
            link: &link,
        };
        CommitSeal {
            key_id: self.key_id.clone(),
            signature: self.signing.sign(&seal_message(&facts)),
            link,
        }
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<(), SealKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SealKeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), SealKeyError> {
    Ok(())
}
