//! The engine's seal on a commit: what is signed, how the seal travels, and how a verifier
//! holding only public keys checks it.
//!
//! The engine signs every commit it appends with an Ed25519 key it holds apart from its NATS
//! credentials. A writer that holds those credentials (or the stream's storage) can append a
//! message to a case's subject, but cannot make a seal a verifier accepts: it lacks the
//! private key. Verifiers (auditors, `wangge audit verify`) hold a [`Keyring`] of public keys,
//! old ones included, so keys can rotate.
//!
//! What a seal covers ([`seal_message`]): the case, the commit's first and last event
//! sequence, its event ids in order, the SHA-256 of the payload exactly as appended, and the
//! link to the case's previous commit: the SHA-256 of that commit's signature
//! ([`next_link_after`]), or [`GENESIS_LINK`] for a case's first commit and after a commit
//! without a valid seal header (a log written before sealing). The seals of a case therefore
//! form a chain: a sealed commit cannot be moved, dropped or replayed elsewhere in the case
//! without a verifier noticing.
//!
//! Pure: signing happens in the engine (the key is the shell's); this module only builds the
//! message, parses headers and verifies.

use std::collections::BTreeMap;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wangge_schemas::CaseId;

/// NATS header carrying a commit's seal: `<key id>:<base64 signature>`.
pub const HEADER_SEAL: &str = "Wangge-Seal";
/// NATS header carrying the link the seal signs, hex: SHA-256 of the previous commit's
/// signature, or 64 zeros for the first.
pub const HEADER_SEAL_LINK: &str = "Wangge-Seal-Link";

/// The link a commit's seal signs to the commit before it.
pub type SealLink = [u8; 32];

/// The link of a case's first sealed commit (and of one following an unsealed commit).
pub const GENESIS_LINK: SealLink = [0; 32];

/// Distinguishes a seal from any other Ed25519 signature the key might ever make.
const SEAL_DOMAIN: &[u8] = b"wangge-commit-seal/v1\0";

/// What a commit's seal signs.
#[derive(Debug, Clone, Copy)]
pub struct SealedFacts<'a> {
    pub case_id: CaseId,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub event_ids: &'a [Uuid],
    /// SHA-256 of the payload bytes as appended (never re-encoded).
    pub payload_sha256: &'a [u8; 32],
    pub link: &'a SealLink,
}

/// The bytes an Ed25519 seal signs: fixed-width fields after a domain tag, so that no two
/// different facts give the same message.
pub fn seal_message(facts: &SealedFacts<'_>) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(SEAL_DOMAIN.len() + 16 + 8 + 8 + 4 + 16 * facts.event_ids.len() + 64);
    message.extend_from_slice(SEAL_DOMAIN);
    message.extend_from_slice(facts.case_id.0.as_bytes());
    message.extend_from_slice(&facts.first_sequence.to_be_bytes());
    message.extend_from_slice(&facts.last_sequence.to_be_bytes());
    message.extend_from_slice(&(facts.event_ids.len() as u32).to_be_bytes());
    for event_id in facts.event_ids {
        message.extend_from_slice(event_id.as_bytes());
    }
    message.extend_from_slice(facts.payload_sha256);
    message.extend_from_slice(facts.link);
    message
}

/// SHA-256 of a payload, for [`SealedFacts::payload_sha256`].
pub fn payload_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, hex. Derived, so a keyring
/// line whose id does not match its key is caught, and two keys never share an id by mistake.
pub fn key_id_of(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A public key as keyrings and `wangge seal keygen` write it: standard base64.
pub fn public_key_text(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// A commit's seal as it travels in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSeal {
    pub key_id: String,
    pub signature: Signature,
    pub link: SealLink,
}

impl CommitSeal {
    /// The [`HEADER_SEAL`] value.
    pub fn header_value(&self) -> String {
        format!(
            "{}:{}",
            self.key_id,
            base64::engine::general_purpose::STANDARD.encode(self.signature.to_bytes())
        )
    }

    /// The [`HEADER_SEAL_LINK`] value.
    pub fn link_value(&self) -> String {
        hex::encode(self.link)
    }

    /// Reads a seal back from its two header values; the reason names what is wrong.
    pub fn parse(seal: &str, link: Option<&str>) -> Result<Self, String> {
        let (key_id, signature) = parse_seal_header(seal)?;
        let link = link.ok_or_else(|| format!("{HEADER_SEAL_LINK} is missing"))?;
        let link = parse_link(link)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            signature,
            link,
        })
    }

    /// The link the case's next commit signs: SHA-256 of this seal's signature.
    pub fn next_link(&self) -> SealLink {
        Sha256::digest(self.signature.to_bytes()).into()
    }
}

/// Parses a [`HEADER_SEAL`] value: the key id and the signature.
fn parse_seal_header(seal: &str) -> Result<(&str, Signature), String> {
    let (key_id, signature) = seal
        .split_once(':')
        .ok_or_else(|| format!("{HEADER_SEAL} is not `<key id>:<signature>`"))?;
    if key_id.is_empty() {
        return Err(format!("{HEADER_SEAL} names no key id"));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|e| format!("{HEADER_SEAL} signature is not base64: {e}"))?;
    let signature: [u8; SIGNATURE_LENGTH] = signature.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "{HEADER_SEAL} signature has {} bytes, not {SIGNATURE_LENGTH}",
            bytes.len()
        )
    })?;
    Ok((key_id, Signature::from_bytes(&signature)))
}

/// Parses a [`HEADER_SEAL_LINK`] value (64 hex digits).
pub fn parse_link(text: &str) -> Result<SealLink, String> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| format!("{HEADER_SEAL_LINK} is not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("{HEADER_SEAL_LINK} has {} bytes, not 32", bytes.len()))
}

/// The link the commit after one with this [`HEADER_SEAL`] value signs: its signature's digest
/// when the header parses, otherwise [`GENESIS_LINK`]. The engine (appending) and verifiers
/// (checking) both follow this one rule, so they agree on every chain, forged links included.
pub fn next_link_after(seal_header: Option<&str>) -> SealLink {
    seal_header
        .and_then(|seal| parse_seal_header(seal).ok())
        .map_or(GENESIS_LINK, |(_, signature)| {
            Sha256::digest(signature.to_bytes()).into()
        })
}

/// Why a seal does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealFault {
    #[error("seal by unknown key {key_id} (not in the keyring)")]
    UnknownKey { key_id: String },
    #[error(
        "broken link: the seal links to {found}, but the case's previous commit gives {expected}"
    )]
    BrokenLink { found: String, expected: String },
    #[error("bad signature: key {key_id} did not seal these events and payload")]
    BadSignature { key_id: String },
}

/// Why a keyring file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("keyring holds no public key")]
    Empty,
}

/// The public keys a verifier accepts seals from, by key id. Keys are never removed on
/// rotation: commits sealed by an old key must keep verifying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<String, VerifyingKey>,
}

impl Keyring {
    /// Reads a keyring: one `<key id> <base64 public key>` per line; blank lines and lines
    /// starting with `#` are skipped. The id must be the key's own ([`key_id_of`]).
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keyring = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let refuse = |reason: String| KeyringError::Line { line, reason };
            let mut fields = content.split_whitespace();
            let (Some(key_id), Some(public), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(refuse("expected `<key id> <base64 public key>`".to_owned()));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(public)
                .map_err(|e| refuse(format!("public key is not base64: {e}")))?;
            let bytes: [u8; PUBLIC_KEY_LENGTH] = bytes.try_into().map_err(|b: Vec<u8>| {
                refuse(format!(
                    "public key has {} bytes, not {PUBLIC_KEY_LENGTH}",
                    b.len()
                ))
            })?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| refuse("public key is not an Ed25519 point".to_owned()))?;
            let derived = key_id_of(&key);
            if derived != key_id {
                return Err(refuse(format!(
                    "key id {key_id} does not belong to this public key (its id is {derived})"
                )));
            }
            keyring.keys.insert(derived, key);
        }
        if keyring.keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(keyring)
    }

    /// Adds a key; returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> String {
        let key_id = key_id_of(&key);
        self.keys.insert(key_id.clone(), key);
        key_id
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks a seal against the facts of the commit it is on and the link the case's
    /// previous commit gives (`expected_link`).
    pub fn verify(
        &self,
        seal: &CommitSeal,
        facts: &SealedFacts<'_>,
        expected_link: &SealLink,
    ) -> Result<(), SealFault> {
        let key = self
            .keys
            .get(&seal.key_id)
            .ok_or_else(|| SealFault::UnknownKey {
                key_id: seal.key_id.clone(),
            })?;
        if seal.link != *expected_link {
            return Err(SealFault::BrokenLink {
                found: hex::encode(seal.link),
                expected: hex::encode(expected_link),
            });
        }
        let facts = SealedFacts {
            link: &seal.link,
            ..*facts
        };
        key.verify(&seal_message(&facts), &seal.signature)
            .map_err(|_| SealFault::BadSignature {
                key_id: seal.key_id.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_seal_header_is_refused_with_what_is_wrong() {
        let signature = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        let link = hex::encode([1u8; 32]);
        let refused = |seal: &str, link: Option<&str>| CommitSeal::parse(seal, link).unwrap_err();
        assert!(refused("no-colon", Some(&link)).contains("is not `<key id>:<signature>`"));
        assert!(refused(&format!(":{signature}"), Some(&link)).contains("names no key id"));
        assert!(refused("k:***", Some(&link)).contains("not base64"));
        assert!(refused("k:AAAA", Some(&link)).contains("has 3 bytes, not 64"));
        assert!(refused(&format!("k:{signature}"), None).contains("Wangge-Seal-Link is missing"));
        assert!(refused(&format!("k:{signature}"), Some("abcd")).contains("has 2 bytes, not 32"));
        let seal = CommitSeal::parse(&format!("k:{signature}"), Some(&link)).unwrap();
        assert_eq!((seal.key_id.as_str(), seal.link), ("k", [1u8; 32]));
    }

    #[test]
    fn the_link_after_a_commit_is_its_signatures_digest_or_genesis_when_it_has_none() {
        let signature = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        let header = format!("k:{signature}");
        let expected: SealLink = Sha256::digest([7u8; 64]).into();
        assert_eq!(next_link_after(Some(&header)), expected);
        assert_eq!(next_link_after(None), GENESIS_LINK);
        assert_eq!(next_link_after(Some("damaged")), GENESIS_LINK);
    }
}
