//! A case's audit trail as stored: one value per case, one zstd frame holding every entry,
//! rewritten whole by each batch that adds entries (compressed as a whole a trail is far
//! smaller than entry by entry, and its bytes do not depend on how the log was cut into
//! batches). A trail part of which no longer reads is never rewritten: new entries are then
//! appended after it as a frame of their own.
//!
//! A frame holds entries two lines each: the entry's links as a
//! small JSON object (`{"s":sequence,"h":hash,"seal":…}`), then the entry's hashed text
//! exactly as it was hashed (serde_json never writes a raw newline inside it).
//!
//! An entry's `prev_hash` is the hash of the entry stored before it (the genesis hash for
//! the first), which the fold always chains to, so it is not stored again; `"p"` appears
//! only where a writer's entry links elsewhere. A hash is 32 bytes nothing compresses, and
//! an entry is stored in under a hundred. Verification reads the trail as before: an entry
//! rewritten and re-hashed now shows as the entry after it no longer matching its hash.
//!
//! The entry's event id, type, actor and time are not stored beside it: they are read from
//! the hashed text itself. A frame that no longer decodes (bytes altered in the database)
//! loses only its own entries, which verification then reports as removed; the frames after
//! it still read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wangge_schemas::CaseId;

use super::{compress, frames, CompactError};
use crate::fold::audit::{AuditRecord, EntrySeal, GENESIS_HASH};

/// The links of one entry, as the line before its text.
#[derive(Serialize, Deserialize)]
struct Links<'a> {
    #[serde(rename = "s")]
    sequence: u64,
    #[serde(rename = "p", borrow, default, skip_serializing_if = "Option::is_none")]
    prev_hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "h", borrow)]
    hash: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seal: Option<EntrySeal>,
    /// The seal's link is the one the engine's rule gives after the entry before, so it is
    /// left out of `seal` and derived again when read.
    #[serde(rename = "dl", default, skip_serializing_if = "std::ops::Not::not")]
    link_derived: bool,
}

/// The seal link the engine's rule gives an entry's commit after `previous`, the entry stored
/// before it: an entry of the same commit (the same seal) has that entry's link; otherwise
/// the link is the digest of the previous commit's signature, or the genesis link
/// (`wangge_domain::seal::next_link_after`).
fn expected_link(previous: Option<&AuditRecord>, seal: &str) -> Option<String> {
    let previous_seal = previous.and_then(|p| p.seal.as_ref());
    match previous_seal {
        Some(p) if p.seal == seal => p.link.clone(),
        _ => Some(hex::encode(wangge_domain::seal::next_link_after(
            previous_seal.map(|p| p.seal.as_str()),
        ))),
    }
}

/// The columns an entry's text gives (what a row used to hold beside it).
#[derive(Deserialize)]
struct EntryColumns {
    event_id: Uuid,
    event_type: String,
    actor: ActorId,
    occurred_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ActorId {
    id: String,
}

/// The frame to append for these entries (of one case, in sequence order) to what the
/// case's trail already holds.
pub fn encode<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<u8> {
    compress(&frame_text(records))
}

/// A whole trail (every entry of the case, in sequence order) as one frame: what an ended
/// case's trail is rewritten to, so it is compressed as a whole rather than batch by batch.
pub fn encode_whole<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<u8> {
    compress(&whole_text(records))
}

/// A batch's new entries grouped by case, each case's in log order.
pub fn by_case(records: &[AuditRecord]) -> std::collections::BTreeMap<CaseId, Vec<&AuditRecord>> {
    let mut cases: std::collections::BTreeMap<CaseId, Vec<&AuditRecord>> = Default::default();
    for record in records {
        cases.entry(record.case_id).or_default().push(record);
    }
    cases
}

/// What a batch writes to a case's stored trail.
#[derive(Debug, PartialEq, Eq)]
pub enum TrailWrite {
    /// The whole trail, one frame, in place of what is stored.
    Whole(Vec<u8>),
    /// A frame to append to what is stored.
    Append(Vec<u8>),
}

/// What to write for a case whose trail holds `stored` (nothing yet: `None`) when `new`
/// entries come: the whole trail again, or, where part of what is stored does not read
/// (somebody wrote there), only a frame appended after it, which leaves that part as it is
/// for verification to report.
pub fn write_for(case_id: CaseId, stored: Option<&[u8]>, new: &[&AuditRecord]) -> TrailWrite {
    let new = new.iter().copied();
    match stored {
        None => TrailWrite::Whole(encode_whole(new)),
        Some(stored) => match compacted(case_id, stored, new.clone()) {
            Some(whole) => TrailWrite::Whole(whole),
            None => TrailWrite::Append(encode(new)),
        },
    }
}

/// The trail `stored` holds with `new` entries after it, as one frame; `None` when some of
/// what is stored does not read (that stays as it is, for verification to report).
pub fn compacted<'a>(
    case_id: CaseId,
    stored: &[u8],
    new: impl IntoIterator<Item = &'a AuditRecord>,
) -> Option<Vec<u8>> {
    let trail = decode(case_id, stored);
    if !trail.unreadable.is_empty() {
        return None;
    }
    let mut records = trail.records;
    records.extend(new.into_iter().cloned());
    Some(encode_whole(&records))
}

/// What an appended frame holds before it is compressed.
pub fn frame_text<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<u8> {
    linked_frame_text(records, None)
}

/// What a whole trail's frame holds before it is compressed (what the dictionary is trained
/// on).
pub fn whole_text<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<u8> {
    linked_frame_text(records, Some(GENESIS_HASH))
}

/// A frame's text; its first entry's link is left out when it is `before` (or, with `None`,
/// always: the frame is appended to the entry it links to).
fn linked_frame_text<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    before: Option<&str>,
) -> Vec<u8> {
    let mut text = Vec::new();
    let mut previous: Option<&AuditRecord> = None;
    for record in records {
        // The first entry of an appended frame chains to the last one already stored (the
        // head the fold read), which the reader has just read before it.
        let derivable = match previous {
            Some(p) => p.hash == record.prev_hash,
            None => before.is_none_or(|b| b == record.prev_hash),
        };
        // So is its seal's link, where the entry before it is known here (not for the first
        // entry of an appended frame) and the link follows the engine's rule.
        let mut seal = record.seal.clone();
        let link_derived = (previous.is_some() || before.is_some())
            && seal
                .as_ref()
                .is_some_and(|s| s.link.is_some() && s.link == expected_link(previous, &s.seal));
        if link_derived {
            if let Some(seal) = &mut seal {
                seal.link = None;
            }
        }
        previous = Some(record);
        let links = Links {
            sequence: record.sequence,
            prev_hash: (!derivable).then(|| record.prev_hash.as_str().into()),
            hash: record.hash.as_str().into(),
            seal,
            link_derived,
        };
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_writer(&mut text, &links).unwrap_or_default();
        text.push(b'\n');
        text.extend_from_slice(record.entry_json.as_bytes());
        text.push(b'\n');
    }
    text
}

/// What a stored trail holds.
#[derive(Debug, Default)]
pub struct StoredTrail {
    /// The entries that read, in stored order.
    pub records: Vec<AuditRecord>,
    /// Why some of it did not read (each frame or entry that did not), if any did not.
    pub unreadable: Vec<CompactError>,
}

/// Every entry of a stored trail that reads.
pub fn decode(case_id: CaseId, stored: &[u8]) -> StoredTrail {
    let mut trail = StoredTrail::default();
    for frame in frames(stored) {
        match frame {
            Ok(text) => read_frame(case_id, &text, &mut trail),
            Err(error) => trail.unreadable.push(error),
        }
    }
    trail
}

fn read_frame(case_id: CaseId, text: &[u8], trail: &mut StoredTrail) {
    let mut lines = text.split(|b| *b == b'\n');
    while let Some(links_line) = lines.next() {
        if links_line.is_empty() {
            continue;
        }
        let Some(entry_line) = lines.next() else {
            trail.unreadable.push(CompactError::Malformed(
                "an entry's links without its text".to_owned(),
            ));
            return;
        };
        let links: Links = match serde_json::from_slice(links_line) {
            Ok(links) => links,
            Err(e) => {
                trail.unreadable.push(CompactError::Json(e.to_string()));
                continue;
            }
        };
        let mut seal = links.seal;
        if links.link_derived {
            if let Some(seal) = &mut seal {
                seal.link = expected_link(trail.records.last(), &seal.seal);
            }
        }
        // The hashed text is kept however it reads: verification compares its hash.
        let entry_json = String::from_utf8_lossy(entry_line).into_owned();
        let columns = serde_json::from_str::<EntryColumns>(&entry_json).ok();
        trail.records.push(AuditRecord {
            case_id,
            sequence: links.sequence,
            event_id: columns.as_ref().map_or(Uuid::nil(), |c| c.event_id),
            event_type: columns
                .as_ref()
                .map_or_else(String::new, |c| c.event_type.clone()),
            actor_id: columns
                .as_ref()
                .map_or_else(String::new, |c| c.actor.id.clone()),
            occurred_at: columns
                .as_ref()
                .map_or(DateTime::UNIX_EPOCH, |c| c.occurred_at),
            entry_json,
            prev_hash: links.prev_hash.map_or_else(
                || {
                    trail
                        .records
                        .last()
                        .map_or_else(|| GENESIS_HASH.to_owned(), |p| p.hash.clone())
                },
                |p| p.into_owned(),
            ),
            hash: links.hash.into_owned(),
            seal,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::audit::chain_hash;

    fn entry_text(case_id: CaseId, sequence: u64) -> String {
        serde_json::json!({
            "case_id": case_id,
            "sequence": sequence,
            "event_id": Uuid::from_u128(sequence as u128),
            "event_type": "case.dispatched",
            "actor": {"kind": "system", "id": "dispatcher"},
            "occurred_at": "2026-12-04T08:00:00Z",
        })
        .to_string()
    }

    /// A chain of `n` entries as the fold writes it, the first two of one sealed commit.
    fn chain(case_id: CaseId, n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|sequence| {
                let entry_json = entry_text(case_id, sequence);
                let hash = chain_hash(&prev, &entry_json);
                AuditRecord {
                    case_id,
                    sequence,
                    event_id: Uuid::from_u128(sequence as u128),
                    event_type: "case.dispatched".to_owned(),
                    actor_id: "dispatcher".to_owned(),
                    occurred_at: "2026-12-04T08:00:00Z".parse().unwrap(),
                    entry_json,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                    seal: (sequence <= 2).then(|| EntrySeal {
                        first_sequence: 1,
                        last_sequence: 2,
                        seal: "3f9a2c71d04b8e65:c2lnbmF0dXJl".to_owned(),
                        link: Some("ab".repeat(32)),
                        payload_sha256: "cd".repeat(32),
                    }),
                }
            })
            .collect()
    }

    #[test]
    fn a_trail_appended_batch_by_batch_reads_back_as_it_was_written() {
        let case_id = CaseId(Uuid::from_u128(7));
        let records = chain(case_id, 5);
        let mut stored = encode(&records[..2]);
        stored.extend(encode(&records[2..3]));
        stored.extend(encode(&records[3..]));
        let trail = decode(case_id, &stored);
        assert!(trail.unreadable.is_empty(), "{:?}", trail.unreadable);
        assert_eq!(trail.records, records);
    }

    #[test]
    fn an_ended_cases_trail_compacted_into_one_frame_reads_the_same_and_is_smaller() {
        let case_id = CaseId(Uuid::from_u128(11));
        let records = chain(case_id, 6);
        let stored: Vec<u8> = records
            .iter()
            .take(5)
            .flat_map(|r| encode(std::iter::once(r)))
            .collect();
        let whole = compacted(case_id, &stored, &records[5..]).unwrap();
        assert!(whole.len() < stored.len() + encode(&records[5..]).len());
        assert_eq!(decode(case_id, &whole).records, records);
        // What does not read is not compacted away.
        assert_eq!(compacted(case_id, b"garbage", &records[5..]), None);
    }

    #[test]
    fn seal_links_that_follow_the_engines_rule_are_derived_again_not_stored() {
        use base64::Engine as _;
        let case_id = CaseId(Uuid::from_u128(12));
        let mut records = chain(case_id, 5);
        // Commits of entries 1–2, 3, 4 and 5, each linked as the engine links them.
        let mut previous_seal: Option<String> = None;
        for (commit, range) in [(1_u8, 1..=2), (2, 3..=3), (3, 4..=4), (4, 5..=5)] {
            let seal = format!(
                "3f9a2c71d04b8e65:{}",
                base64::engine::general_purpose::STANDARD.encode([commit; 64])
            );
            let link = hex::encode(wangge_domain::seal::next_link_after(
                previous_seal.as_deref(),
            ));
            for sequence in range.clone() {
                records[sequence as usize - 1].seal = Some(EntrySeal {
                    first_sequence: *range.start(),
                    last_sequence: *range.end(),
                    seal: seal.clone(),
                    link: Some(link.clone()),
                    payload_sha256: "cd".repeat(32),
                });
            }
            previous_seal = Some(seal);
        }
        // A forger's link that breaks the rule is kept as written, for verification to see.
        records[4].seal.as_mut().unwrap().link = Some("ee".repeat(32));
        let text = String::from_utf8(whole_text(&records)).unwrap();
        assert_eq!(text.matches("\"dl\":true").count(), 4, "{text}");
        assert!(text.contains(&"ee".repeat(32)));
        let case_stored = decode(case_id, &encode_whole(&records));
        assert_eq!(case_stored.records, records);
    }

    #[test]
    fn a_link_to_anything_but_the_entry_before_is_kept_as_written() {
        let case_id = CaseId(Uuid::from_u128(8));
        let mut records = chain(case_id, 3);
        records[2].prev_hash = "ff".repeat(32);
        let trail = decode(case_id, &encode(&records));
        assert_eq!(trail.records[2].prev_hash, "ff".repeat(32));
        assert_eq!(trail.records, records);
    }

    #[test]
    fn a_frame_that_no_longer_decodes_loses_only_its_own_entries() {
        let case_id = CaseId(Uuid::from_u128(9));
        let records = chain(case_id, 3);
        let first = encode(&records[..1]);
        let mut second = encode(&records[1..2]);
        let third = encode(&records[2..]);
        // Flip a byte inside the second frame's compressed body.
        let middle = second.len() / 2 + 2;
        second[middle] ^= 0x5a;
        let stored = [first, second, third].concat();
        let trail = decode(case_id, &stored);
        let sequences: Vec<u64> = trail.records.iter().map(|r| r.sequence).collect();
        assert!(
            sequences.contains(&1) && sequences.contains(&3),
            "{sequences:?}"
        );
        match trail.records.iter().find(|r| r.sequence == 2) {
            // Most flips break the frame: its entry is missing and the reason is given.
            None => assert!(!trail.unreadable.is_empty()),
            // A flip the decoder cannot notice changes the entry's text, which its hash shows.
            Some(second) => {
                assert_ne!(second.entry_json, records[1].entry_json);
                assert_ne!(
                    chain_hash(&second.prev_hash, &second.entry_json),
                    second.hash
                );
            }
        }
    }

    #[test]
    fn garbage_in_place_of_a_trail_reads_as_no_entries_and_says_why() {
        let trail = decode(CaseId(Uuid::from_u128(10)), b"somebody wrote this");
        assert!(trail.records.is_empty());
        assert!(!trail.unreadable.is_empty());
    }
}
