//! The log defends itself: the streams the engine owns keep the settings it gave them.
//!
//! A client with stream-administration rights could shrink the event log to its last five
//! messages (`max_msgs` with discard-old), purge it, or delete it, and an engine that never
//! looked would go on serving cases from memory and read models that no longer match the
//! system of record. So after opening its streams the engine takes their settings as its
//! baseline ([`StreamGuard::baseline`]) and checks them at start and then periodically
//! ([`StreamGuard::watch`]): a stream that is gone, a setting the engine owns that changed,
//! or an append-only stream whose first messages are gone is a [`StreamViolation`], and
//! `wangge serve` stops, loudly, rather than serve stale data. Permissions that stop other
//! clients from doing any of this are the first defence; this is the second.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, stream};
use tracing::{error, info, warn};

/// A stream the engine owns and the settings it expects of it.
#[derive(Debug, Clone)]
pub struct OwnedStream {
    pub name: String,
    /// Nothing is ever removed from it (the event log, the grid and SLA streams): its first
    /// message must stay sequence 1.
    pub append_only: bool,
    pub settings: OwnedSettings,
}

/// The settings the engine owns, with "no limit" spelled one way (the server writes −1, a
/// client may have sent 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSettings {
    pub subjects: Vec<String>,
    pub replicas: usize,
    pub max_age: Duration,
    pub max_msgs: i64,
    pub max_bytes: i64,
    pub max_msgs_per_subject: i64,
    pub max_message_size: i64,
    pub duplicate_window: Duration,
    pub discard: String,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub allow_rollup: bool,
    pub sealed: bool,
    pub storage: String,
}

impl OwnedSettings {
    pub fn of(config: &stream::Config) -> Self {
        let limit = |value: i64| if value <= 0 { -1 } else { value };
        Self {
            subjects: config.subjects.clone(),
            replicas: config.num_replicas.max(1),
            max_age: config.max_age,
            max_msgs: limit(config.max_messages),
            max_bytes: limit(config.max_bytes),
            max_msgs_per_subject: limit(config.max_messages_per_subject),
            max_message_size: limit(i64::from(config.max_message_size)),
            duplicate_window: config.duplicate_window,
            discard: format!("{:?}", config.discard),
            deny_delete: config.deny_delete,
            deny_purge: config.deny_purge,
            allow_rollup: config.allow_rollup,
            sealed: config.sealed,
            storage: format!("{:?}", config.storage),
        }
    }

    /// Each owned setting by the name the server's config uses, as text.
    fn named(&self) -> [(&'static str, String); 14] {
        [
            ("subjects", format!("{:?}", self.subjects)),
            ("num_replicas", self.replicas.to_string()),
            ("max_age", format!("{:?}", self.max_age)),
            ("max_msgs", self.max_msgs.to_string()),
            ("max_bytes", self.max_bytes.to_string()),
            (
                "max_msgs_per_subject",
                self.max_msgs_per_subject.to_string(),
            ),
            ("max_msg_size", self.max_message_size.to_string()),
            ("duplicate_window", format!("{:?}", self.duplicate_window)),
            ("discard", self.discard.clone()),
            ("deny_delete", self.deny_delete.to_string()),
            ("deny_purge", self.deny_purge.to_string()),
            ("allow_rollup_hdrs", self.allow_rollup.to_string()),
            ("sealed", self.sealed.to_string()),
            ("storage", self.storage.clone()),
        ]
    }

    /// Every owned setting that differs from `other`: `(name, here, there)`.
    pub fn differences_from(&self, other: &Self) -> Vec<(&'static str, String, String)> {
        self.named()
            .into_iter()
            .zip(other.named())
            .filter(|((_, here), (_, there))| here != there)
            .map(|((name, here), (_, there))| (name, here, there))
            .collect()
    }

    /// Each owned setting that changed for the worse since `self` (the baseline):
    /// `(name, expected, found)`. A weakening by the rule of [`super::stream_rules`], or any
    /// change of storage or the sealed flag (the engine could no longer write or find its
    /// messages). Strengthening changes — an operator's `wangge streams set … --replicas 3`,
    /// a limit raised — are not violations: the engine keeps serving.
    fn differences(&self, found: &Self) -> Vec<(&'static str, String, String)> {
        let weakened = super::stream_rules::weakenings(self, found);
        self.differences_from(found)
            .into_iter()
            .filter(|(name, _, _)| {
                matches!(*name, "storage" | "sealed") || weakened.iter().any(|w| w.setting == *name)
            })
            .collect()
    }
}

/// What was found wrong with an owned stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamViolation {
    /// The stream is gone (or cannot be looked up: the server says why).
    Missing { stream: String, reason: String },
    /// A setting the engine owns was changed by someone else.
    Changed {
        stream: String,
        setting: &'static str,
        expected: String,
        found: String,
    },
    /// Messages were removed from the start of an append-only stream (purged, trimmed or
    /// deleted): its first message is no longer sequence 1.
    Trimmed { stream: String, first_sequence: u64 },
}

impl fmt::Display for StreamViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { stream, reason } => {
                write!(f, "stream {stream} is missing ({reason})")
            }
            Self::Changed {
                stream,
                setting,
                expected,
                found,
            } => write!(
                f,
                "stream {stream}: {setting} was changed outside the engine: expected {expected}, found {found}"
            ),
            Self::Trimmed {
                stream,
                first_sequence,
            } => write!(
                f,
                "stream {stream} lost messages from its start: its first message is now {first_sequence}, not 1"
            ),
        }
    }
}

fn is_not_found(error: &GetStreamError) -> bool {
    matches!(error.kind(), GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The owned streams and the check of them.
#[derive(Debug, Clone)]
pub struct StreamGuard {
    context: jetstream::Context,
    streams: Vec<OwnedStream>,
}

impl StreamGuard {
    /// How often `wangge serve` checks.
    pub const EVERY: Duration = Duration::from_secs(10);

    /// Takes the streams' settings as they are now — right after the engine opened them
    /// and put its settings in place — as what they must stay. `streams`: each stream's
    /// name and whether it is append-only.
    pub async fn baseline(
        context: jetstream::Context,
        streams: &[(&str, bool)],
    ) -> Result<Self, Vec<StreamViolation>> {
        let mut owned = Vec::new();
        let mut violations = Vec::new();
        for &(name, append_only) in streams {
            match context.get_stream(name).await {
                // Looking a stream up answers with its info: one request per stream.
                Ok(stream) => owned.push(OwnedStream {
                    name: name.to_owned(),
                    append_only,
                    settings: OwnedSettings::of(&stream.cached_info().config),
                }),
                Err(e) => violations.push(StreamViolation::Missing {
                    stream: name.to_owned(),
                    reason: e.to_string(),
                }),
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let guard = Self {
            context,
            streams: owned,
        };
        // An append-only stream trimmed before this start is caught now.
        guard.check().await.map(|()| guard)
    }

    /// Checks every owned stream once: all the violations found.
    pub async fn check(&self) -> Result<(), Vec<StreamViolation>> {
        let mut violations = Vec::new();
        for owned in &self.streams {
            let info = match self.context.get_stream(&owned.name).await {
                Ok(stream) => stream.cached_info().clone(),
                Err(e) if is_not_found(&e) => {
                    violations.push(StreamViolation::Missing {
                        stream: owned.name.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => {
                    // The server did not answer (a leader election, a moment's outage): not
                    // evidence of anything; the next round looks again.
                    warn!(stream = %owned.name, error = %e, "stream check skipped this round");
                    continue;
                }
            };
            for (setting, expected, found) in
                owned.settings.differences(&OwnedSettings::of(&info.config))
            {
                violations.push(StreamViolation::Changed {
                    stream: owned.name.clone(),
                    setting,
                    expected,
                    found,
                });
            }
            // With messages, the first is 1; an emptied stream reports first = last + 1.
            let first = info.state.first_sequence;
            let removed_from_start = if info.state.messages > 0 {
                first > 1
            } else {
                info.state.last_sequence > 0
            };
            if owned.append_only && removed_from_start {
                violations.push(StreamViolation::Trimmed {
                    stream: owned.name.clone(),
                    first_sequence: first,
                });
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Checks every `every` until `until` completes (`Ok`) or something is wrong (`Err`
    /// with what was found, each logged as an error).
    pub async fn watch(
        &self,
        every: Duration,
        until: impl std::future::Future<Output = ()>,
    ) -> Result<(), Vec<StreamViolation>> {
        info!(
            streams = self.streams.len(),
            every_s = every.as_secs(),
            "watching the engine's streams"
        );
        tokio::pin!(until);
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = &mut until => return Ok(()),
                _ = ticks.tick() => {
                    if let Err(violations) = self.check().await {
                        for violation in &violations {
                            error!(%violation, "a stream the engine owns was changed outside it");
                        }
                        return Err(violations);
                    }
                }
            }
        }
    }
}
