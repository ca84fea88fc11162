//! The `audit` projection: every event of a case with actor, time and what changed, in a
//! hash chain nobody can quietly rewrite.
//!
//! Each entry is stored as the exact JSON text that was hashed ([`AuditRecord::entry_json`])
//! with the hash of the entry before it: `hash = SHA-256(prev_hash "\n" entry_json)`, hex,
//! the first entry of a case chained to [`GENESIS_HASH`]. The projection's state of a case is
//! its chain head (sequence and hash) and a summary to diff the next event against.
//!
//! [`verify_trail`] walks a stored trail and names every entry that was altered, removed or
//! inserted: an altered entry no longer matches its own hash (or, re-hashed, no longer
//! matches the link the next entry holds); a removed one leaves a gap in the sequences or
//! ends the trail before the head the projection recorded; an inserted one lies beyond it.
//!
//! The hash chain is computed here, when the projection reads the log, so by itself it
//! vouches only for what happened after: an event another writer slipped into the log is
//! chained in like any other. Each entry therefore also keeps its commit's seal, made by the
//! engine when it appended ([`crate::seal`]), and [`verify_seals`] checks every entry's seal
//! against a keyring of public keys: an event without a seal, with a seal by an unknown key,
//! a bad signature or a broken link is named as forged (or, before any sealed commit of its
//! case, as unsealed: a log written before sealing, accepted only below a log position the
//! verifier names).

use crate::commit::StoredCommit;
use crate::seal::{next_link_after, CommitSeal, Keyring, SealLink, SealedFacts, GENESIS_LINK};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wangge_schemas::{Actor, CaseId};

use super::cases::{summary_to_micros, to_micros};
use super::summary::FieldChange;
use super::{CaseSummary, Projection};

/// Whether a text column holds `text` as a store can keep it. The hashed entry is exact;
/// a column may hold U+FFFD where the text had U+0000, which PostgreSQL cannot store
/// (`projections::postgres::text`), and that is not an alteration.
fn same_column_text(text: &str, column: &str) -> bool {
    text == column || (text.contains('\u{0}') && text.replace('\u{0}', "\u{FFFD}") == column)
}

/// The `prev_hash` of a case's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of a case's audit trail: what is hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub case_id: CaseId,
    /// The event's sequence within its case: 1, 2, 3, …
    pub sequence: u64,
    /// Where the event's commit sits in the log.
    pub position: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// What the event changed in the case, field by field.
    pub changes: Vec<FieldChange>,
    /// The event's payload as it was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// An entry as stored: the hashed text and the chain links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub case_id: CaseId,
    pub sequence: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub actor_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The entry as hashed: `serde_json` text of an [`AuditEntry`].
    pub entry_json: String,
    pub prev_hash: String,
    pub hash: String,
    /// The seal of the commit the event came in; `None` when the commit had none.
    pub seal: Option<EntrySeal>,
}

/// An entry's commit seal as stored beside it (not hashed: the seal vouches for itself).
/// The same on every entry of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySeal {
    /// The commit's events: sequences `first_sequence..=last_sequence` of the case.
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// The `Wangge-Seal` header as read: `<key id>:<base64 signature>`.
    pub seal: String,
    /// The `Wangge-Seal-Link` header as read, hex.
    pub link: Option<String>,
    /// SHA-256 of the commit's payload bytes as the projection read them, hex.
    pub payload_sha256: String,
}

impl AuditRecord {
    /// The entry, parsed from its stored text.
    pub fn entry(&self) -> Result<AuditEntry, serde_json::Error> {
        serde_json::from_str(&self.entry_json)
    }
}

/// The hash of an entry's text chained to the hash before it.
pub fn chain_hash(prev_hash: &str, entry_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(entry_json.as_bytes());
    hex::encode(hasher.finalize())
}

/// The projection's state of a case: the head of its chain and what the case looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub sequence: u64,
    pub hash: String,
    pub summary: CaseSummary,
}

#[derive(Debug, Default)]
pub struct AuditChanges {
    /// New entries, in log order.
    pub records: Vec<AuditRecord>,
    /// The new heads of the cases the batch touched.
    pub heads: std::collections::BTreeMap<CaseId, AuditHead>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditProjection;

impl AuditProjection {
    pub const NAME: &'static str = "audit";
}

impl Projection for AuditProjection {
    const NAME: &'static str = Self::NAME;
    type State = AuditHead;
    type Changes = AuditChanges;

    fn apply(
        &self,
        state: &mut Option<AuditHead>,
        commit: &StoredCommit,
        changes: &mut AuditChanges,
    ) {
        let (Some(first), Some(last)) = (commit.events.first(), commit.events.last()) else {
            return;
        };
        let seal = commit.seal.as_ref().map(|seal| EntrySeal {
            first_sequence: first.sequence,
            last_sequence: last.sequence,
            seal: seal.seal.clone(),
            link: seal.link.clone(),
            payload_sha256: hex::encode(seal.payload_sha256),
        });
        let head = state.get_or_insert_with(|| AuditHead {
            sequence: 0,
            hash: GENESIS_HASH.to_owned(),
            summary: CaseSummary::new(commit.case_id, first.location.clone()),
        });
        for event in &commit.events {
            // An event already in the chain (a log that repeats itself) is not entered twice.
            if event.sequence <= head.sequence {
                continue;
            }
            let before = head.summary.clone();
            head.summary.apply(event, commit.position);
            summary_to_micros(&mut head.summary);
            let payload = match serde_json::to_value(&event.event) {
                Ok(serde_json::Value::Object(mut tagged)) => {
                    tagged.remove("payload").unwrap_or(serde_json::Value::Null)
                }
                _ => serde_json::Value::Null,
            };
            let entry = AuditEntry {
                case_id: commit.case_id,
                sequence: event.sequence,
                position: commit.position,
                event_id: event.event_id,
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version,
                actor: event.actor.clone(),
                occurred_at: to_micros(event.occurred_at),
                recorded_at: to_micros(event.recorded_at),
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                changes: head.summary.changes_from(&before),
                payload,
            };
            let entry_json = serde_json::to_string(&entry).unwrap_or_default();
            let hash = chain_hash(&head.hash, &entry_json);
            changes.records.push(AuditRecord {
                case_id: commit.case_id,
                sequence: event.sequence,
                event_id: event.event_id,
                event_type: entry.event_type,
                actor_id: entry.actor.id,
                occurred_at: entry.occurred_at,
                entry_json,
                prev_hash: std::mem::replace(&mut head.hash, hash.clone()),
                hash,
                seal: seal.clone(),
            });
            head.sequence = event.sequence;
        }
    }

    fn keep_state(&self, case_id: CaseId, state: &AuditHead, changes: &mut AuditChanges) {
        changes.heads.insert(case_id, state.clone());
    }
}

/// What is wrong with one entry of a stored trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditProblemKind {
    /// The entry's contents no longer match its hash.
    Altered,
    /// Entries that should be there are not.
    Removed,
    /// An entry that is not part of the chain the projection wrote.
    Inserted,
    /// The event's commit has no seal, before any sealed commit of its case: written before
    /// sealing existed (or forged); accepted below the position the verifier allows.
    Unsealed,
    /// The event's commit was not sealed by the engine: no seal after a sealed commit, a seal
    /// by an unknown key, a bad signature or a broken link. Slipped into the log.
    Forged,
}

/// One finding of [`verify_trail`], naming the case and the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditProblem {
    pub case_id: CaseId,
    pub kind: AuditProblemKind,
    /// The entry (for a removal: the first missing sequence).
    pub sequence: u64,
    /// For a removal of several entries: the last missing sequence.
    pub through_sequence: Option<u64>,
    pub event_id: Option<Uuid>,
    pub detail: String,
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            AuditProblemKind::Altered => "altered",
            AuditProblemKind::Removed => "removed",
            AuditProblemKind::Inserted => "inserted",
            AuditProblemKind::Unsealed => "unsealed",
            AuditProblemKind::Forged => "forged",
        };
        write!(f, "case {} entry {}", self.case_id, self.sequence)?;
        if let Some(through) = self.through_sequence {
            write!(f, "..={through}")?;
        }
        if let Some(event_id) = self.event_id {
            write!(f, " (event {event_id})")?;
        }
        write!(f, ": {kind}: {}", self.detail)
    }
}

/// Checks a case's stored trail (`records` in any order) against its chain and against the
/// head the projection recorded (`head`: sequence and hash of the last entry it wrote).
/// Entries are stored under their sequence, so an entry can only be inserted beyond the
/// head, or in place of another (which shows as that entry altered).
/// Returns every problem found, in sequence order; an empty list means the trail is intact.
pub fn verify_trail(
    case_id: CaseId,
    records: &[AuditRecord],
    head: Option<(u64, &str)>,
) -> Vec<AuditProblem> {
    let mut records: Vec<&AuditRecord> = records.iter().collect();
    records.sort_by_key(|r| r.sequence);
    let mut problems = Vec::new();
    let problem = |kind, sequence, through: Option<u64>, event_id, detail: String| AuditProblem {
        case_id,
        kind,
        sequence,
        through_sequence: through.filter(|t| *t != sequence),
        event_id,
        detail,
    };
    let mut previous: Option<&AuditRecord> = None;
    for record in &records {
        let expected_sequence = previous.map_or(1, |p| p.sequence + 1);
        let expected_prev = previous.map_or(GENESIS_HASH, |p| p.hash.as_str());
        let parsed = record.entry();
        let consistent = chain_hash(&record.prev_hash, &record.entry_json) == record.hash;
        let matches_columns = parsed.as_ref().is_ok_and(|entry| {
            entry.case_id == case_id
                && entry.sequence == record.sequence
                && entry.event_id == record.event_id
                && entry.event_type == record.event_type
                && same_column_text(&entry.actor.id, &record.actor_id)
                && entry.occurred_at == record.occurred_at
        });
        if !consistent || !matches_columns {
            let detail = if !consistent {
                "its contents do not match its hash".to_owned()
            } else {
                "its columns disagree with the hashed entry".to_owned()
            };
            problems.push(problem(
                AuditProblemKind::Altered,
                record.sequence,
                None,
                Some(record.event_id),
                detail,
            ));
        } else if record.sequence > expected_sequence {
            problems.push(problem(
                AuditProblemKind::Removed,
                expected_sequence,
                Some(record.sequence - 1),
                None,
                format!(
                    "entries missing before entry {} (its link points to a hash the trail no longer holds)",
                    record.sequence
                ),
            ));
        } else if record.prev_hash != expected_prev
            && !problems.last().is_some_and(|p: &AuditProblem| {
                previous.is_some_and(|prev| p.sequence == prev.sequence)
            })
        {
            // This entry is intact and links to a hash the entry before it no longer has:
            // that one was rewritten and its hash recomputed to hide it.
            let (sequence, event_id) = previous.map_or((record.sequence, record.event_id), |p| {
                (p.sequence, p.event_id)
            });
            problems.push(problem(
                AuditProblemKind::Altered,
                sequence,
                None,
                Some(event_id),
                format!(
                    "it was rewritten and re-hashed: entry {} still links to its original hash",
                    record.sequence
                ),
            ));
        }
        previous = Some(record);
    }
    match (head, previous) {
        (Some((head_sequence, _)), None) if head_sequence > 0 => problems.push(problem(
            AuditProblemKind::Removed,
            1,
            Some(head_sequence),
            None,
            format!("the trail is empty but the projection wrote {head_sequence} entries"),
        )),
        (Some((head_sequence, head_hash)), Some(last)) => {
            if last.sequence < head_sequence {
                problems.push(problem(
                    AuditProblemKind::Removed,
                    last.sequence + 1,
                    Some(head_sequence),
                    None,
                    format!(
                        "the trail ends at entry {} but the projection wrote {head_sequence}",
                        last.sequence
                    ),
                ));
            } else if last.sequence > head_sequence {
                let first_extra = records
                    .iter()
                    .find(|r| r.sequence > head_sequence)
                    .map_or(last.sequence, |r| r.sequence);
                let extra = records.iter().find(|r| r.sequence == first_extra);
                problems.push(problem(
                    AuditProblemKind::Inserted,
                    first_extra,
                    Some(last.sequence),
                    extra.map(|r| r.event_id),
                    format!("beyond the last entry the projection wrote ({head_sequence})"),
                ));
            } else if last.hash != head_hash
                && !problems.iter().any(|p| p.sequence == last.sequence)
            {
                problems.push(problem(
                    AuditProblemKind::Altered,
                    last.sequence,
                    None,
                    Some(last.event_id),
                    "its hash is not the one the projection recorded as the head".to_owned(),
                ));
            }
        }
        _ => {}
    }
    problems
}

/// How seals are checked: the public keys seals are accepted from, and the log position
/// below which commits written before sealing are accepted without a seal.
#[derive(Debug, Clone, Default)]
pub struct SealPolicy {
    pub keyring: Keyring,
    /// Unsealed commits at positions below this, before any sealed commit of their case,
    /// are accepted (a log written before sealing); `None` accepts none.
    pub allow_unsealed_before: Option<u64>,
}

/// Checks every entry's commit seal of a case's trail (`records` in any order) against the
/// policy's keyring and the chain of seal links. Returns one problem per entry whose commit
/// is forged or unsealed, in sequence order; entries missing from the trail are
/// [`verify_trail`]'s to report.
pub fn verify_seals(
    case_id: CaseId,
    records: &[AuditRecord],
    policy: &SealPolicy,
) -> Vec<AuditProblem> {
    let mut records: Vec<&AuditRecord> = records.iter().collect();
    records.sort_by_key(|r| r.sequence);
    let mut problems = Vec::new();
    let mut report = |record: &AuditRecord, kind, detail: String| {
        problems.push(AuditProblem {
            case_id,
            kind,
            sequence: record.sequence,
            through_sequence: None,
            event_id: Some(record.event_id),
            detail,
        });
    };
    // The link the next sealed commit must sign, and whether the case has had a sealed
    // commit (after one, an unsealed commit is always a forgery: the engine seals them all).
    let mut expected_link: SealLink = GENESIS_LINK;
    let mut sealed_before = false;
    let mut index = 0;
    while index < records.len() {
        let record = records[index];
        let Some(seal) = &record.seal else {
            index += 1;
            let position = record.entry().map(|entry| entry.position).ok();
            if sealed_before {
                report(
                    record,
                    AuditProblemKind::Forged,
                    "no seal after a sealed commit of the case: the engine seals every commit"
                        .to_owned(),
                );
            } else if !matches!(
                (policy.allow_unsealed_before, position),
                (Some(allowed), Some(position)) if position < allowed
            ) {
                report(
                    record,
                    AuditProblemKind::Unsealed,
                    format!(
                        "no seal at log position {}: written before sealing, or forged (a log written before sealing is accepted with --allow-unsealed-before <first sealed position>)",
                        position.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
                    ),
                );
            }
            expected_link = GENESIS_LINK;
            continue;
        };
        // The commit's entries: those stored with this same seal.
        let commit: Vec<&AuditRecord> = records[index..]
            .iter()
            .take_while(|r| r.seal.as_ref() == Some(seal))
            .copied()
            .collect();
        index += commit.len();
        sealed_before = true;
        let link_expected =
            std::mem::replace(&mut expected_link, next_link_after(Some(&seal.seal)));
        let complete = commit.first().map(|r| r.sequence) == Some(seal.first_sequence)
            && commit.len() as u64 == seal.last_sequence.saturating_sub(seal.first_sequence) + 1
            && commit
                .windows(2)
                .all(|w| w[1].sequence == w[0].sequence + 1);
        if !complete {
            // The seal covers events the trail does not hold all of: entries were removed
            // (the hash chain check names them too), or the commit repeated events the case
            // already had, which the engine never writes. Either way the seal cannot vouch
            // for these entries, and staying silent would let an overlapping commit through.
            let held: Vec<String> = commit.iter().map(|r| r.sequence.to_string()).collect();
            for record in &commit {
                report(
                    record,
                    AuditProblemKind::Forged,
                    format!(
                        "its commit's seal covers events {}..={}, but the trail holds only {} of them (a commit repeating events of the case, or entries removed)",
                        seal.first_sequence,
                        seal.last_sequence,
                        held.join(",")
                    ),
                );
            }
            continue;
        }
        let fault = check_entry_seal(case_id, seal, &commit, &policy.keyring, &link_expected);
        if let Err(reason) = fault {
            for record in &commit {
                report(record, AuditProblemKind::Forged, reason.clone());
            }
        }
    }
    problems
}

/// Checks one commit's seal against its entries; the reason names what does not hold.
fn check_entry_seal(
    case_id: CaseId,
    seal: &EntrySeal,
    commit: &[&AuditRecord],
    keyring: &Keyring,
    expected_link: &SealLink,
) -> Result<(), String> {
    let parsed = CommitSeal::parse(&seal.seal, seal.link.as_deref())
        .map_err(|reason| format!("malformed seal: {reason}"))?;
    let payload_sha256: [u8; 32] = hex::decode(&seal.payload_sha256)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            "malformed seal: the stored payload digest is not 32 bytes of hex".to_owned()
        })?;
    let event_ids: Vec<Uuid> = commit.iter().map(|r| r.event_id).collect();
    let facts = SealedFacts {
        case_id,
        first_sequence: seal.first_sequence,
        last_sequence: seal.last_sequence,
        event_ids: &event_ids,
        payload_sha256: &payload_sha256,
        link: expected_link,
    };
    keyring
        .verify(&parsed, &facts, expected_link)
        .map_err(|fault| fault.to_string())
}
