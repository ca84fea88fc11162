//! A per-sender limit on what the rejected store keeps, so one sender's flood of garbage can
//! neither fill the store nor push out everyone else's refused messages.
//!
//! Each sender — the account and user NATS proved (`Nats-Request-Info`), or one shared
//! "unproven" sender when there is none — has a budget of kept rejections per minute (a token
//! bucket: the full budget may be spent at once, then it refills evenly). Beyond it, one
//! rejection in `sample_one_in` is still kept, so the operator sees what the flood looks like,
//! and the others are counted: the next kept message of that sender carries the count in the
//! header [`HEADER_NOT_KEPT`], and a warning is logged once per sender and minute. A message
//! not kept is still refused with its code; only the copy for replay is missing.
//!
//! The store's own size and age limits stay in force underneath
//! ([`super::rejected::RejectedLimits`]); this keeps one sender from reaching them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use tracing::warn;

use super::rejected::{RejectedEntry, RejectedStore, RejectedStoreError, Rejection, ReplayRecord};
use crate::nats::ProvenSender;

/// On a kept rejection: how many rejections of the same sender were counted and not kept
/// since the sender's previous kept one.
pub const HEADER_NOT_KEPT: &str = "Wangge-Rejections-Not-Kept";

/// How many senders are remembered; the least recently seen are forgotten first.
const MAX_SENDERS: usize = 10_000;

/// How much each sender may have kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Rejections kept per sender per minute (and at once, after a quiet minute).
    pub per_minute: u32,
    /// Beyond the budget, one rejection in this many is kept anyway.
    pub sample_one_in: u32,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            per_minute: 600,
            sample_one_in: 100,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    /// Rejections over budget since the last kept one (sampled or not).
    over_budget: u64,
    not_kept_since_last_kept: u64,
    last_warning: Option<Instant>,
}

/// A [`RejectedStore`] that keeps at most its limits per sender; reads go straight through.
#[derive(Clone)]
pub struct ThrottledRejectedStore<R> {
    inner: R,
    limits: ThrottleLimits,
    senders: Arc<Cache<String, Arc<Mutex<Bucket>>>>,
    not_kept_total: Arc<AtomicU64>,
}

/// What to do with one rejection.
enum Decision {
    /// Keep it, noting how many before it were not kept.
    Keep { not_kept_before: u64 },
    /// Count it only.
    Drop,
}

impl<R: RejectedStore> ThrottledRejectedStore<R> {
    pub fn new(inner: R, limits: ThrottleLimits) -> Self {
        Self {
            inner,
            limits: ThrottleLimits {
                per_minute: limits.per_minute.max(1),
                sample_one_in: limits.sample_one_in.max(1),
            },
            senders: Arc::new(Cache::new(MAX_SENDERS)),
            not_kept_total: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Rejections counted and not kept since start, all senders.
    pub fn not_kept_total(&self) -> u64 {
        self.not_kept_total.load(Ordering::Relaxed)
    }

    fn decide(&self, sender: &str, now: Instant) -> Decision {
        let bucket = self
            .senders
            .get_or_insert_with(sender, || {
                Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Bucket {
                    tokens: f64::from(self.limits.per_minute),
                    refilled_at: now,
                    over_budget: 0,
                    not_kept_since_last_kept: 0,
                    last_warning: None,
                })))
            })
            .expect("infallible");
        let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let budget = f64::from(self.limits.per_minute);
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * budget / 60.0).min(budget);
        bucket.refilled_at = now;
        let keep = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            bucket.over_budget += 1;
            bucket
                .over_budget
                .is_multiple_of(u64::from(self.limits.sample_one_in))
        };
        if keep {
            let not_kept_before = std::mem::take(&mut bucket.not_kept_since_last_kept);
            Decision::Keep { not_kept_before }
        } else {
            bucket.not_kept_since_last_kept += 1;
            self.not_kept_total.fetch_add(1, Ordering::Relaxed);
            let due = bucket
                .last_warning
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(60));
            if due {
                bucket.last_warning = Some(now);
                warn!(
                    sender,
                    per_minute = self.limits.per_minute,
                    sample_one_in = self.limits.sample_one_in,
                    not_kept = bucket.not_kept_since_last_kept,
                    "a sender's rejections exceed its budget: counting them, keeping a sample"
                );
            }
            Decision::Drop
        }
    }
}

/// The sender a rejection is charged to.
fn sender_of(rejection: &Rejection) -> String {
    match ProvenSender::from_headers(&rejection.headers) {
        Some(proven) => format!("{}/{}", proven.account, proven.user),
        None => "unproven".to_owned(),
    }
}

impl<R: RejectedStore> RejectedStore for ThrottledRejectedStore<R> {
    async fn keep(&self, mut rejection: Rejection) -> Result<u64, RejectedStoreError> {
        let sender = sender_of(&rejection);
        match self.decide(&sender, Instant::now()) {
            Decision::Keep { not_kept_before } => {
                if not_kept_before > 0 {
                    rejection
                        .headers
                        .push((HEADER_NOT_KEPT.to_owned(), not_kept_before.to_string()));
                }
                self.inner.keep(rejection).await
            }
            Decision::Drop => Err(RejectedStoreError::NotKept(format!(
                "`{sender}` is over its budget of {} kept rejections a minute; one in {} is kept",
                self.limits.per_minute, self.limits.sample_one_in
            ))),
        }
    }

    async fn list(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RejectedEntry>, RejectedStoreError> {
        self.inner.list(from, limit).await
    }

    async fn get(&self, id: u64) -> Result<RejectedEntry, RejectedStoreError> {
        self.inner.get(id).await
    }

    async fn record_replay(&self, id: u64, record: ReplayRecord) -> Result<(), RejectedStoreError> {
        self.inner.record_replay(id, record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::rejected::MemoryRejectedStore;
    use crate::nats::identity::REQUEST_INFO_HEADER;

    fn rejection(user: Option<&str>) -> Rejection {
        Rejection {
            subject: "wangge.intake.resident_report".into(),
            headers: user
                .map(|user| {
                    vec![(
                        REQUEST_INFO_HEADER.to_owned(),
                        format!(r#"{{"acc":"INTAKE","user":"{user}"}}"#),
                    )]
                })
                .unwrap_or_default(),
            payload: bytes::Bytes::from_static(b"garbage"),
            code: "malformed_json".into(),
            field: None,
            reason: "not JSON".into(),
            rejected_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn a_flooding_sender_is_sampled_and_counted_while_others_keep_their_budget() {
        let store = ThrottledRejectedStore::new(
            MemoryRejectedStore::default(),
            ThrottleLimits {
                per_minute: 10,
                sample_one_in: 50,
            },
        );
        let mut kept = 0;
        for _ in 0..1_010 {
            if store.keep(rejection(Some("flooder"))).await.is_ok() {
                kept += 1;
            }
        }
        // The budget, then one in 50 of the 1,000 beyond it.
        assert_eq!(kept, 10 + 20);
        assert_eq!(store.not_kept_total(), 980);
        // A quiet sender is not affected by the flood.
        for _ in 0..10 {
            store.keep(rejection(Some("hotline"))).await.expect("kept");
        }
        // The sampled messages say how many were not kept before them.
        let entries = store.list(0, 100).await.expect("list");
        let counted: u64 = entries
            .iter()
            .filter_map(|entry| {
                entry
                    .rejection
                    .headers
                    .iter()
                    .find(|(name, _)| name == HEADER_NOT_KEPT)
                    .map(|(_, value)| value.parse::<u64>().expect("a count"))
            })
            .sum();
        assert_eq!(counted, 49 * 20);
    }

    #[test]
    fn the_budget_refills_over_a_minute() {
        let store = ThrottledRejectedStore::new(
            MemoryRejectedStore::default(),
            ThrottleLimits {
                per_minute: 60,
                sample_one_in: 1_000,
            },
        );
        let start = Instant::now();
        for _ in 0..60 {
            assert!(matches!(store.decide("s", start), Decision::Keep { .. }));
        }
        assert!(matches!(store.decide("s", start), Decision::Drop));
        let later = start + Duration::from_secs(2);
        assert!(matches!(store.decide("s", later), Decision::Keep { .. }));
        assert!(matches!(store.decide("s", later), Decision::Keep { .. }));
        assert!(matches!(store.decide("s", later), Decision::Drop));
    }
}
