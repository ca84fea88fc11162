//! How the read models keep a case's states and its audit trail small: the folds' own JSON,
//! compressed with zstd against a dictionary trained on that JSON (issue 11, item 5).
//!
//! A case row's state is about 1.5 kB of JSON, most of it field names, enum values, cell
//! codes and timestamps every case shares. Compressed alone such a value barely halves
//! (about 680 B), because the compressor has nothing to learn from; against a dictionary of
//! what such values look like it falls to about 150 B. The PostgreSQL tables (`bytea`
//! columns) and the in-memory store hold the same compressed bytes.
//!
//! **Versions.** Every zstd frame names the dictionary it was made with (its dictionary id
//! in the frame header). Frames are decoded with the dictionary they name, so a later
//! release may train a new dictionary (a new id, added to [`DICTIONARIES`]) and still read
//! every value written before; a frame made without a dictionary (id 0) reads too. A value
//! may be several frames one after another (an audit trail grows by a frame per batch).
//!
//! **Bounds.** Stored bytes are outside input as far as the reader is concerned (anyone with
//! write access to the database can put bytes there), so decoding never trusts them: each
//! frame must declare its decoded size and the whole value may not decode to more than
//! [`MAX_DECODED_BYTES`]; anything else is a [`CompactError`], never a panic or an
//! allocation the bytes chose.

pub mod trail;

use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe;

/// The dictionary values are written with: trained by `wangge-bench dictionary` on the folds'
/// states and trails of the sample city's year of history (see `benches/RESULTS.md`).
const CURRENT: &[u8] = include_bytes!("dictionary-v1.zdict");

/// Every dictionary a stored value may name, current first.
const DICTIONARIES: &[&[u8]] = &[CURRENT];

/// The zstd level values are written at: the default, a few hundred MB/s per core here.
const LEVEL: i32 = 3;

/// The most bytes one stored value may decode to (a case's whole audit trail included).
pub const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

/// Stored bytes that cannot be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("not a compressed value: {0}")]
    Malformed(String),
    #[error("compressed with dictionary {0}, which this release does not have")]
    UnknownDictionary(u32),
    #[error("decodes to more than {MAX_DECODED_BYTES} bytes")]
    TooLarge,
    #[error("the decoded JSON does not read: {0}")]
    Json(String),
}

struct Dictionaries {
    encoder: EncoderDictionary<'static>,
    /// The id of the current dictionary (what new frames name).
    current_id: u32,
    /// Every known dictionary by id.
    decoders: Vec<(u32, DecoderDictionary<'static>)>,
}

fn dictionaries() -> &'static Dictionaries {
    static DICTIONARIES_READY: OnceLock<Dictionaries> = OnceLock::new();
    DICTIONARIES_READY.get_or_init(|| Dictionaries {
        encoder: EncoderDictionary::copy(CURRENT, LEVEL),
        current_id: dictionary_id(CURRENT),
        decoders: DICTIONARIES
            .iter()
            .map(|d| (dictionary_id(d), DecoderDictionary::copy(d)))
            .collect(),
    })
}

fn dictionary_id(dictionary: &[u8]) -> u32 {
    zstd_safe::get_dict_id_from_dict(dictionary).map_or(0, |id| id.get())
}

/// The id of the dictionary new values are compressed with.
pub fn current_dictionary_id() -> u32 {
    dictionaries().current_id
}

thread_local! {
    // A compression context per thread, with the dictionary already loaded: making one per
    // value would cost more than compressing it.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` compressed: one zstd frame naming the current dictionary.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(compressor) => compressor,
            None => slot.insert(
                Compressor::with_prepared_dictionary(&dictionaries().encoder)
                    .expect("a zstd compression context (out of memory?)"),
            ),
        };
        compressor
            .compress(bytes)
            .expect("zstd compresses any input into a buffer of its own sizing")
    })
}

/// The bytes a stored value holds: every frame decoded with the dictionary it names, in order.
pub fn decompress(stored: &[u8]) -> Result<Vec<u8>, CompactError> {
    if stored.is_empty() {
        return Err(CompactError::Malformed("no bytes".to_owned()));
    }
    let mut decoded = Vec::new();
    for frame in frames(stored) {
        decoded.extend_from_slice(&frame?);
    }
    Ok(decoded)
}

/// Each frame of a stored value decoded on its own, in order: a frame that does not decode
/// is an error in its place, and the frames after it still read. Ends after the first frame
/// whose end cannot be found, and once the frames decoded so far reach
/// [`MAX_DECODED_BYTES`].
pub fn frames(stored: &[u8]) -> impl Iterator<Item = Result<Vec<u8>, CompactError>> + '_ {
    let mut rest = stored;
    let mut decoded_so_far = 0_usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let frame_len = match zstd_safe::find_frame_compressed_size(rest) {
            Ok(len) if len > 0 && len <= rest.len() => len,
            Ok(_) => {
                rest = &[];
                return Some(Err(CompactError::Malformed(
                    "a frame of no length".to_owned(),
                )));
            }
            Err(code) => {
                rest = &[];
                return Some(Err(CompactError::Malformed(
                    zstd_safe::get_error_name(code).to_owned(),
                )));
            }
        };
        let (frame, after) = rest.split_at(frame_len);
        rest = after;
        let decoded = decode_frame(frame, MAX_DECODED_BYTES.saturating_sub(decoded_so_far));
        match &decoded {
            Ok(bytes) => decoded_so_far += bytes.len(),
            Err(CompactError::TooLarge) => rest = &[],
            Err(_) => {}
        }
        Some(decoded)
    })
}

/// One frame decoded, if it declares its size and that is at most `room`.
fn decode_frame(frame: &[u8], room: usize) -> Result<Vec<u8>, CompactError> {
    let size = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => {
            return Err(CompactError::Malformed(
                "a frame without its decoded size".to_owned(),
            ))
        }
        Err(_) => return Err(CompactError::Malformed("a broken frame header".to_owned())),
    };
    let size = usize::try_from(size).map_err(|_| CompactError::TooLarge)?;
    if size > room {
        return Err(CompactError::TooLarge);
    }
    let id = zstd_safe::get_dict_id_from_frame(frame).map_or(0, |id| id.get());
    let mut decompressor = if id == 0 {
        Decompressor::new()
    } else {
        let dictionary = dictionaries()
            .decoders
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, dictionary)| dictionary)
            .ok_or(CompactError::UnknownDictionary(id))?;
        Decompressor::with_prepared_dictionary(dictionary)
    }
    .map_err(|e| CompactError::Malformed(e.to_string()))?;
    let bytes = decompressor
        .decompress(frame, size)
        .map_err(|e| CompactError::Malformed(e.to_string()))?;
    if bytes.len() != size {
        return Err(CompactError::Malformed(format!(
            "a frame declaring {size} bytes decoded to {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A value as stored: its JSON, compressed.
pub fn encode_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing the folds' own types to JSON cannot fail (string keys, no foreign types).
    compress(&serde_json::to_vec(value).unwrap_or_default())
}

/// A stored value read back.
pub fn decode_json<T: serde::de::DeserializeOwned>(stored: &[u8]) -> Result<T, CompactError> {
    let bytes = decompress(stored)?;
    serde_json::from_slice(&bytes).map_err(|e| CompactError::Json(e.to_string()))
}

/// A projection's stored state of a case read back, or the store error naming the case.
pub fn decode_state<S: serde::de::DeserializeOwned>(
    projection: &'static str,
    case_id: wangge_schemas::CaseId,
    stored: &[u8],
) -> Result<S, crate::runner::StoreError> {
    decode_json(stored).map_err(|e| crate::runner::StoreError::Corrupt {
        projection,
        case_id,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_comes_back_byte_for_byte() {
        let text = br#"{"case_id":"0193","status":"dispatched","cell":"330106001001001"}"#;
        let stored = compress(text);
        assert_eq!(decompress(&stored).unwrap(), text);
    }

    #[test]
    fn frames_one_after_another_read_as_their_concatenation() {
        let mut stored = compress(b"first\n");
        stored.extend(compress(b"second\n"));
        assert_eq!(decompress(&stored).unwrap(), b"first\nsecond\n");
    }

    #[test]
    fn new_values_name_the_current_dictionary() {
        let stored = compress(b"{}");
        let id = zstd_safe::get_dict_id_from_frame(&stored).map(|id| id.get());
        assert_eq!(id, Some(current_dictionary_id()));
        assert_ne!(current_dictionary_id(), 0);
    }

    #[test]
    fn a_frame_made_without_a_dictionary_still_reads() {
        let stored = zstd::bulk::compress(b"plain", 3).unwrap();
        assert_eq!(decompress(&stored).unwrap(), b"plain");
    }

    #[test]
    fn a_frame_naming_an_unknown_dictionary_is_refused_by_name() {
        let foreign = zstd::dict::from_samples(
            &(0..200)
                .map(|n| format!("{{\"other\":{n},\"text\":\"sample {n}\"}}"))
                .collect::<Vec<_>>(),
            2048,
        );
        // Training may find too little to learn from; a raw-content dictionary then.
        let dictionary = foreign.unwrap_or_else(|_| vec![b'x'; 1024]);
        let mut compressor = Compressor::with_dictionary(3, &dictionary).unwrap();
        let stored = compressor.compress(b"{\"other\":1}").unwrap();
        match zstd_safe::get_dict_id_from_frame(&stored) {
            Some(id) => assert_eq!(
                decompress(&stored),
                Err(CompactError::UnknownDictionary(id.get()))
            ),
            // A raw-content dictionary has no id: the frame then fails to decode instead.
            None => assert!(decompress(&stored).is_err()),
        }
    }

    #[test]
    fn bytes_that_are_no_frame_are_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x00",
            b"not zstd at all",
            &[0x28, 0xb5, 0x2f, 0xfd, 0xff],
        ] {
            assert!(decompress(bytes).is_err(), "{bytes:?}");
        }
        let mut cut = compress(b"a value long enough to be cut in the middle of its frame");
        cut.truncate(cut.len() - 3);
        assert!(decompress(&cut).is_err());
    }

    #[test]
    fn a_frame_claiming_more_than_the_bound_is_refused_before_decoding() {
        let big = vec![b'a'; MAX_DECODED_BYTES + 1];
        let stored = compress(&big);
        assert_eq!(decompress(&stored), Err(CompactError::TooLarge));
    }

    #[test]
    fn json_round_trips_and_bad_json_is_named() {
        let value = serde_json::json!({"status": "closed", "breaches": 2});
        let back: serde_json::Value = decode_json(&encode_json(&value)).unwrap();
        assert_eq!(back, value);
        let err = decode_json::<serde_json::Value>(&compress(b"{not json")).unwrap_err();
        assert!(matches!(err, CompactError::Json(_)), "{err}");
    }
}
