//! A snapshot of what the dispatcher folds from the whole log — the open load of every
//! worker that routing balances on, who resolved each case awaiting verification, and the
//! cases waiting for the dispatcher — as of one log position, so a restart reads only the
//! log after it instead of the whole history.
//!
//! Every instance's dispatcher folds every commit of every partition, so a snapshot taken by
//! any of them at position P is what any of them would hold at P: one object serves them
//! all, and the holder of partition 0 replaces it. It lives in its own object store bucket
//! (`wangge_dispatcher`) through the timers' [`SnapshotStore`]; a snapshot of another format,
//! or ahead of the log's head (another log, begun again), is ignored and the whole log read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wangge_schemas::CaseId;

use crate::log::LogPosition;
use crate::runtime::loads::WorkerLoads;
use crate::runtime::timers::{SnapshotError, SnapshotStoreConfig};

/// The layout version; a snapshot of another is ignored.
pub const DISPATCH_SNAPSHOT_FORMAT: u32 = 1;

/// What a dispatcher carries on from.
#[derive(Debug)]
pub struct DispatchSnapshot {
    /// The position of the last commit folded in.
    pub position: LogPosition,
    pub loads: WorkerLoads,
    /// Every case (of every partition) waiting for the dispatcher at that position.
    pub waiting: Vec<CaseId>,
}

/// The stored form (postcard).
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    position: LogPosition,
    /// Worker ids, each once; the pairs below index into it.
    workers: Vec<String>,
    holders: Vec<(Uuid, u32)>,
    resolvers: Vec<(Uuid, u32)>,
    waiting: Vec<Uuid>,
}

impl DispatchSnapshot {
    /// The bytes of a snapshot at `position`.
    pub fn encode(
        position: LogPosition,
        loads: &WorkerLoads,
        waiting: impl IntoIterator<Item = CaseId>,
    ) -> Vec<u8> {
        let (holders, resolvers) = loads.parts();
        let mut workers: Vec<String> = Vec::new();
        let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut pairs = |parts: &[(CaseId, &str)]| -> Vec<(Uuid, u32)> {
            parts
                .iter()
                .map(|(case_id, worker)| {
                    let at = match index.get(*worker) {
                        Some(at) => *at,
                        None => {
                            let at = workers.len() as u32;
                            workers.push((*worker).to_owned());
                            index.insert((*worker).to_owned(), at);
                            at
                        }
                    };
                    (case_id.0, at)
                })
                .collect()
        };
        let holders = pairs(&holders);
        let resolvers = pairs(&resolvers);
        let stored = Stored {
            format: DISPATCH_SNAPSHOT_FORMAT,
            position,
            workers,
            holders,
            resolvers,
            waiting: waiting.into_iter().map(|c| c.0).collect(),
        };
        postcard::to_allocvec(&stored).expect("a dispatcher snapshot always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let stored: Stored =
            postcard::from_bytes(bytes).map_err(|error| SnapshotError::Unreadable {
                field: "dispatcher snapshot".into(),
                reason: error.to_string(),
            })?;
        if stored.format != DISPATCH_SNAPSHOT_FORMAT {
            return Err(SnapshotError::Mismatch {
                reason: format!(
                    "dispatcher snapshot format {} (this engine writes {DISPATCH_SNAPSHOT_FORMAT})",
                    stored.format
                ),
            });
        }
        let name = |at: u32| -> Result<&str, SnapshotError> {
            stored
                .workers
                .get(at as usize)
                .map(String::as_str)
                .ok_or_else(|| SnapshotError::Unreadable {
                    field: "dispatcher snapshot workers".into(),
                    reason: format!("no worker {at}"),
                })
        };
        let named = |pairs: &[(Uuid, u32)]| -> Result<Vec<(CaseId, &str)>, SnapshotError> {
            pairs
                .iter()
                .map(|(case_id, at)| Ok((CaseId(*case_id), name(*at)?)))
                .collect()
        };
        let loads = WorkerLoads::from_parts(named(&stored.holders)?, named(&stored.resolvers)?);
        Ok(Self {
            position: stored.position,
            loads,
            waiting: stored.waiting.iter().map(|c| CaseId(*c)).collect(),
        })
    }
}

/// Where the dispatcher's snapshot lives (`replicas`: 1 on one server, 3 on a cluster).
pub fn dispatch_snapshot_store(replicas: usize) -> SnapshotStoreConfig {
    SnapshotStoreConfig {
        bucket: "wangge_dispatcher".to_owned(),
        object: "dispatcher".to_owned(),
        replicas,
        what: "dispatcher's worker loads and waiting cases".to_owned(),
        ..SnapshotStoreConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(n: u64) -> CaseId {
        CaseId(Uuid::from_u64_pair(1, n))
    }

    #[test]
    fn a_restored_snapshot_holds_the_same_loads_and_waiting_cases() {
        let loads = WorkerLoads::from_parts(
            [(case(1), "w-a"), (case(2), "w-a"), (case(3), "w-b")],
            [(case(4), "w-b")],
        );
        let waiting = vec![case(9)];
        let bytes = DispatchSnapshot::encode(42, &loads, waiting.clone());
        let restored = DispatchSnapshot::decode(&bytes).expect("decodes");
        assert_eq!(restored.position, 42);
        assert_eq!(restored.waiting, waiting);
        assert_eq!(restored.loads.open_cases("w-a"), 2);
        assert_eq!(restored.loads.open_cases("w-b"), 1);
        assert_eq!(restored.loads.holder_of(case(3)), Some("w-b"));
        let (_, resolvers) = restored.loads.parts();
        assert_eq!(resolvers, vec![(case(4), "w-b")]);
    }

    #[test]
    fn a_damaged_snapshot_is_refused_not_half_read() {
        let loads = WorkerLoads::from_parts([(case(1), "w-a")], []);
        let bytes = DispatchSnapshot::encode(7, &loads, vec![case(2)]);
        assert!(matches!(
            DispatchSnapshot::decode(&bytes[..bytes.len() - 3]),
            Err(SnapshotError::Unreadable { .. })
        ));
        let mut other = bytes.clone();
        other[0] = 9; // another format
        assert!(matches!(
            DispatchSnapshot::decode(&other),
            Err(SnapshotError::Mismatch { .. })
        ));
    }
}
