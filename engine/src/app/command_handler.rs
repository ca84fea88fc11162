//! Handles one command against one case: load → decide → stamp → append, retried on conflict.
//!
//! Idempotency has two layers. Inside the stream's duplicate window the log itself drops a
//! repeated commit (same `Nats-Msg-Id`). Beyond it, the case remembers which source messages
//! it has already turned into events (`CaseState::processed_sources`), so a command carrying
//! an already-processed `(system, message_id)` returns the earlier result and writes nothing.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use uuid::Uuid;
use wangge_schemas::{Actor, CaseId, EventEnvelope, Source, StepDeadlines};

use crate::app::clock::Clock;
use quick_cache::sync::Cache;

use crate::app::sla_terms::{FixedSlaTerms, SlaTermsSource, TermsKey};
use crate::domain::sla::{clock_for_commit, deadline_revision};
use crate::domain::{
    apply, decide, location_for, replay, stamp, CaseCommand, CaseState, DomainError, EventMeta,
};
use crate::log::{Appended, CaseHistory, Commit, EventLog, LogError, LogPosition};

/// How often a command is decided again after losing a race before we give up. Every round
/// of a race has one winner, so this must exceed the number of senders that may write to
/// one case at the same moment (ten people commenting at once must all get through).
const MAX_ATTEMPTS: usize = 24;

pub use wangge_domain::request::CommandRequest;

use super::outage::OutagePolicy;

/// What a handled command produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome {
    pub case_id: CaseId,
    /// The events this command wrote (or, for a duplicate, had written the first time).
    pub events: Vec<EventEnvelope>,
    /// The case's sequence number after the command.
    pub sequence: u64,
    /// True when the command had been handled before and nothing new was written.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command is not allowed; tell the sender why. Nothing was written.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Lost the race on the case this many times in a row; the sender may retry.
    #[error("case {case_id} is too busy: gave up after {attempts} conflicting attempts")]
    Contended { case_id: CaseId, attempts: usize },
    /// The case moved on since the caller looked at it (a conditional command): look again.
    /// `actual` is the version the case was found at, when it was read (a command after a
    /// known history learns only that the log holds something newer).
    #[error("case {case_id} moved on: the command was meant for version {expected}, {}", describe_actual(*.actual))]
    Stale {
        case_id: CaseId,
        expected: u64,
        actual: Option<u64>,
    },
    /// The log failed; back off and retry.
    #[error(transparent)]
    Log(#[from] LogError),
}

fn describe_actual(actual: Option<u64>) -> String {
    match actual {
        Some(version) => format!("the case is at {version}"),
        None => "the log holds a newer commit".to_owned(),
    }
}

impl CommandError {
    /// A stable snake_case code for replies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(error) => error.code(),
            Self::Contended { .. } => "contended",
            Self::Stale { .. } => "case_moved_on",
            Self::Log(LogError::Unavailable(_)) => "unavailable",
            Self::Log(LogError::Conflict { .. }) => "contended",
            Self::Log(LogError::Corrupt { .. }) => "corrupt_history",
        }
    }
}

/// The idempotency key of a source message acting on one case, used as `Nats-Msg-Id`.
///
/// The case is part of the key: one message may act on several cases, and the stream's
/// duplicate window is shared by all cases, so a key of the message alone would make the
/// second case's commit look like a duplicate of the first's.
pub fn idempotency_key(case_id: CaseId, source: &Source) -> String {
    let mut hasher = Sha256::new();
    hasher.update(case_id.0.as_bytes());
    hasher.update(source.system.as_bytes());
    hasher.update(b"\0");
    hasher.update(source.message_id.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// How many case states a [`CaseService`] keeps in memory by default.
pub const DEFAULT_CACHED_CASES: usize = 50_000;

/// A bounded cache that keeps recently written cases: half of it is a first-in first-out
/// probation queue for new entries (the cases being opened and worked on now), half for
/// cases used again. The library's default (3 % probation) drops a new case before its
/// second command arrives.
fn case_cache(cached_cases: usize) -> Cache<CaseId, CachedCase> {
    let capacity = cached_cases.max(1);
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .hot_allocation(0.5)
        .build()
        .expect("valid cache options");
    Cache::with_options(
        options,
        Default::default(),
        Default::default(),
        Default::default(),
    )
}

/// What the service remembers of a case between commands: enough to decide and to append
/// conditionally, without its events. A stale entry costs one conflict and a reload.
#[derive(Debug, Clone)]
struct CachedCase {
    state: CaseState,
    /// Where the case's commits are (`events` left empty: the state stands for them).
    positions: CaseHistory,
}

impl CachedCase {
    fn from_history(history: CaseHistory) -> Self {
        Self {
            state: replay(&history.events),
            positions: CaseHistory {
                events: Vec::new(),
                ..history
            },
        }
    }
}

/// Runs commands against cases stored in a log.
pub struct CaseService<L> {
    log: L,
    clock: Arc<dyn Clock>,
    /// The policy and calendar each commit's clock is computed under.
    terms: Arc<dyn SlaTermsSource>,
    /// Case states between commands. A command takes its case out and puts the new state
    /// back after its commit, so the state is never copied; a concurrent command on the same
    /// case meanwhile finds nothing cached and reads the log.
    cache: Cache<CaseId, CachedCase>,
    /// How long a command keeps trying while the log is unavailable ([`super::outage`]).
    outage: OutagePolicy,
}

impl<L: EventLog> CaseService<L> {
    pub fn new(log: L, clock: Arc<dyn Clock>) -> Self {
        Self::with_cache_capacity(log, clock, DEFAULT_CACHED_CASES)
    }

    /// `cached_cases` bounds the memory spent on case states (0 disables the cache).
    pub fn with_cache_capacity(log: L, clock: Arc<dyn Clock>, cached_cases: usize) -> Self {
        Self {
            log,
            clock,
            terms: Arc::new(FixedSlaTerms::bundled()),
            cache: case_cache(cached_cases),
            outage: OutagePolicy::NONE,
        }
    }

    /// Rides out an unavailable log for as long as `policy` says before answering
    /// `unavailable` (none by default; `wangge serve` uses [`OutagePolicy::SERVE`]).
    pub fn with_outage_policy(mut self, policy: OutagePolicy) -> Self {
        self.outage = policy;
        self
    }

    /// Computes clocks under `terms` (the bundled policies and calendars, every district on
    /// the default calendar, unless given).
    pub fn with_sla_terms(mut self, terms: Arc<dyn SlaTermsSource>) -> Self {
        self.terms = terms;
        self
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Loads a case and folds it into its current state.
    pub async fn state_of(&self, case_id: CaseId) -> Result<(CaseState, LogPosition), LogError> {
        let history = self.log.load(case_id).await?;
        Ok((replay(&history.events), history.last_position))
    }

    /// The case as the command should see it: from the cache on a first attempt, assumed new
    /// for a create (the conditional append proves it), otherwise from the log.
    async fn current(
        &self,
        request: &CommandRequest,
        first_attempt: bool,
    ) -> Result<CachedCase, LogError> {
        if first_attempt {
            if let Some((_, cached)) = self.cache.remove(&request.case_id) {
                return Ok(cached);
            }
            if matches!(request.command, CaseCommand::Report { .. }) {
                return Ok(CachedCase::from_history(CaseHistory::default()));
            }
        }
        let history = self.log.load(request.case_id).await?;
        Ok(CachedCase::from_history(history))
    }

    pub async fn handle(&self, request: CommandRequest) -> Result<CommandOutcome, CommandError> {
        self.riding_out(request, None).await
    }

    /// Runs a command only if the case is still at `expected_version` — the version the
    /// caller based its decision on (a timer that computed a deadline from the history, a
    /// dispatcher that routed the case). If the case moved on, nothing is written and the
    /// caller gets [`CommandError::Stale`] and looks again. Together with the conditional
    /// append this makes "the case did not change since I looked" hold at the commit.
    pub async fn handle_if_unchanged(
        &self,
        request: CommandRequest,
        expected_version: u64,
    ) -> Result<CommandOutcome, CommandError> {
        self.riding_out(request, Some(expected_version)).await
    }

    /// [`Self::handle_at`], again after a pause while the log is unavailable, until the
    /// outage policy's time is spent. Each attempt decides afresh from the log, so a commit
    /// whose ack was lost in the outage is found as processed, never written twice.
    async fn riding_out(
        &self,
        request: CommandRequest,
        expected_version: Option<u64>,
    ) -> Result<CommandOutcome, CommandError> {
        let deadline = tokio::time::Instant::now() + self.outage.ride_out;
        let mut pauses = self.outage.pauses().into_iter();
        loop {
            match self.handle_at(request.clone(), expected_version).await {
                Err(CommandError::Log(LogError::Unavailable(reason))) => {
                    let now = tokio::time::Instant::now();
                    match pauses.next() {
                        Some(pause) if now < deadline => {
                            warn!(case_id = %request.case_id, %reason, "log unavailable; trying again");
                            tokio::time::sleep(pause.min(deadline - now)).await;
                        }
                        _ => return Err(CommandError::Log(LogError::Unavailable(reason))),
                    }
                }
                answered => return answered,
            }
        }
    }

    /// Runs a command decided on a case history the caller holds, events and positions,
    /// exactly as it loaded or wrote them (the dispatcher, routing a case it has just
    /// accepted). Nothing is read from the log first: the append is conditional on the
    /// history's last position, and that proves the history is still the whole case. If the
    /// case moved on, nothing is written and the caller gets [`CommandError::Stale`].
    ///
    /// On success `history` is extended with the commit just written (its events and
    /// position), so the caller can go on from it. When the command's source had already
    /// been handled, the outcome is the earlier one (`duplicate`) and `history` is the case as
    /// read to find it. On an error `history` is left as it was.
    pub async fn handle_after(
        &self,
        request: CommandRequest,
        history: &mut CaseHistory,
    ) -> Result<CommandOutcome, CommandError> {
        let case_id = request.case_id;
        debug_assert!(
            history.events.iter().all(|e| e.case_id == case_id),
            "the history belongs to the command's case"
        );
        let state = replay(&history.events);
        if let Some(outcome) = already_processed(&state, &history.events, &request.source, case_id)
        {
            debug!(%case_id, source = ?request.source, "command already processed");
            return Ok(outcome);
        }
        let events = self.stamp_command(&state, &request)?;
        let commit = Commit {
            case_id,
            events: events.clone(),
            idempotency_key: idempotency_key(case_id, &request.source),
        };
        match self.log.append_after(commit, history).await {
            Ok(appended) if !appended.duplicate => {
                let sequence = events.last().map_or(state.version, |e| e.sequence);
                let positions = CaseHistory {
                    events: Vec::new(),
                    last_position: history.last_position,
                    commit_positions: history.commit_positions.clone(),
                    next_seal_link: history.next_seal_link,
                };
                self.remember(CachedCase { state, positions }, &events, &appended);
                history.events.extend(events.iter().cloned());
                history.last_position = appended.position;
                history.commit_positions.push(appended.position);
                history.next_seal_link = appended.next_seal_link;
                Ok(CommandOutcome {
                    case_id,
                    events,
                    sequence,
                    duplicate: false,
                })
            }
            Ok(_) => {
                let (outcome, loaded) = self.earlier_outcome_with_history(&request).await?;
                *history = loaded;
                Ok(outcome)
            }
            Err(LogError::Conflict { .. }) => Err(CommandError::Stale {
                case_id,
                expected: state.version,
                actual: None,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Decides a command on a state and stamps its events into envelopes.
    fn stamp_command(
        &self,
        state: &CaseState,
        request: &CommandRequest,
    ) -> Result<Vec<EventEnvelope>, CommandError> {
        let now = self.clock.now();
        let decided = decide(state, &request.command, now)?;
        let location = location_for(state, &request.command).ok_or(DomainError::CaseNotFound)?;
        let meta = EventMeta {
            actor: request.actor.clone(),
            source: request.source.clone(),
            correlation_id: request.correlation_id.unwrap_or_else(Uuid::now_v7),
            causation_id: request.causation_id,
            occurred_at: request.occurred_at.unwrap_or(now),
            recorded_at: now,
        };
        let mut events = stamp(
            state,
            request.case_id,
            &location,
            decided,
            &meta,
            Uuid::now_v7,
        );
        let clock = self.clock_for(state, &events);
        if let Some(last) = events.last_mut() {
            last.sla_clock = clock;
        }
        Ok(events)
    }

    /// The clock a commit of `events` records (a step started, the clock changed),
    /// computed under the case's terms now.
    fn clock_for(&self, state: &CaseState, events: &[EventEnvelope]) -> Option<StepDeadlines> {
        let key = TermsKey::after(state, events)?;
        let mut clock = None;
        self.terms.with_terms(&key, &mut |terms| {
            clock = clock_for_commit(&state.sla, events, terms);
        });
        clock
    }

    /// Computes the running step's clock of a case again under the terms as they are now
    /// (the next year's holidays published, a calendar corrected) and, if its deadlines
    /// moved, records a `case.deadline_revised` naming the old, the new and `reason`.
    /// `source` names this revision (so it is written once); `None` when nothing moved.
    pub async fn revise_deadlines(
        &self,
        case_id: CaseId,
        reason: &str,
        actor: Actor,
        source: Source,
    ) -> Result<Option<CommandOutcome>, CommandError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let history = self.log.load(case_id).await?;
            let state = replay(&history.events);
            if !state.exists() {
                return Err(DomainError::CaseNotFound.into());
            }
            if state.processed_sources.contains_key(&source) {
                return Ok(already_processed(&state, &history.events, &source, case_id));
            }
            let Some(key) = TermsKey::after(&state, &[]) else {
                return Ok(None);
            };
            let mut revision = None;
            self.terms.with_terms(&key, &mut |terms| {
                revision = deadline_revision(&state.sla, terms, reason);
            });
            let Some(revision) = revision else {
                return Ok(None);
            };
            let now = self.clock.now();
            let meta = EventMeta {
                actor: actor.clone(),
                source: source.clone(),
                correlation_id: Uuid::now_v7(),
                causation_id: history.events.last().map(|e| e.event_id),
                occurred_at: now,
                recorded_at: now,
            };
            let location = state.location.clone().ok_or(DomainError::CaseNotFound)?;
            let events = stamp(
                &state,
                case_id,
                &location,
                vec![revision],
                &meta,
                Uuid::now_v7,
            );
            let commit = Commit {
                case_id,
                events: events.clone(),
                idempotency_key: idempotency_key(case_id, &source),
            };
            let positions = CaseHistory {
                events: Vec::new(),
                ..history
            };
            match self.log.append_after(commit, &positions).await {
                Ok(appended) => {
                    self.cache.remove(&case_id);
                    let sequence = events.last().map_or(state.version, |e| e.sequence);
                    return Ok(Some(CommandOutcome {
                        case_id,
                        events,
                        sequence,
                        duplicate: appended.duplicate,
                    }));
                }
                Err(LogError::Conflict { .. }) => {
                    back_off(attempt).await;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contended {
            case_id,
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn handle_at(
        &self,
        request: CommandRequest,
        expected_version: Option<u64>,
    ) -> Result<CommandOutcome, CommandError> {
        let case_id = request.case_id;
        for attempt in 1..=MAX_ATTEMPTS {
            // A conditional command always reads the log: a cached state may lag behind it.
            let trust_cache = attempt == 1 && expected_version.is_none();
            let case = self.current(&request, trust_cache).await?;
            if case.state.processed_sources.contains_key(&request.source) {
                debug!(%case_id, source = ?request.source, "command already processed");
                return self.earlier_outcome(&request).await;
            }
            if let Some(expected) = expected_version {
                if case.state.version != expected {
                    return Err(CommandError::Stale {
                        case_id,
                        expected,
                        actual: Some(case.state.version),
                    });
                }
            }
            let events = self.stamp_command(&case.state, &request)?;
            let commit = Commit {
                case_id,
                events: events.clone(),
                idempotency_key: idempotency_key(case_id, &request.source),
            };
            match self.log.append_after(commit, &case.positions).await {
                Ok(appended) if !appended.duplicate => {
                    let sequence = events.last().map_or(case.state.version, |e| e.sequence);
                    self.remember(case, &events, &appended);
                    return Ok(CommandOutcome {
                        case_id,
                        events,
                        sequence,
                        duplicate: false,
                    });
                }
                // The log had this commit already (a retry inside the duplicate window that
                // raced its own original): report what the original wrote.
                Ok(_) => {
                    return self.earlier_outcome(&request).await;
                }
                Err(LogError::Conflict {
                    expected, actual, ..
                }) => {
                    debug!(%case_id, attempt, expected, actual, "lost the race, deciding again");
                    back_off(attempt).await;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contended {
            case_id,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Folds a successful commit into the cached case.
    fn remember(&self, mut case: CachedCase, events: &[EventEnvelope], appended: &Appended) {
        for event in events {
            case.state = apply(case.state, event);
        }
        case.positions.last_position = appended.position;
        case.positions.commit_positions.push(appended.position);
        // The seal link the case's next commit signs (unknown: the log reads it back).
        case.positions.next_seal_link = appended.next_seal_link;
        if let Some(case_id) = case.state.case_id {
            self.cache.insert(case_id, case);
        }
    }

    /// The result a source message produced the first time, read from the log.
    async fn earlier_outcome(
        &self,
        request: &CommandRequest,
    ) -> Result<CommandOutcome, CommandError> {
        Ok(self.earlier_outcome_with_history(request).await?.0)
    }

    /// [`Self::earlier_outcome`], with the history it was read from.
    async fn earlier_outcome_with_history(
        &self,
        request: &CommandRequest,
    ) -> Result<(CommandOutcome, CaseHistory), CommandError> {
        let history = self.log.load(request.case_id).await?;
        let state = replay(&history.events);
        if let Some(outcome) =
            already_processed(&state, &history.events, &request.source, request.case_id)
        {
            return Ok((outcome, history));
        }
        warn!(case_id = %request.case_id, "log reported a duplicate the case history does not show yet");
        Err(LogError::Unavailable("duplicate commit not visible yet".into()).into())
    }
}

/// A short random pause after losing a race (up to `attempt` ms), so that the losers of one
/// round do not all come back at the same instant and collide again.
async fn back_off(attempt: usize) {
    // The low bits of a UUIDv7 are random; no other random source is needed for jitter.
    let random = Uuid::now_v7().as_u128() as u64;
    let pause = random % (attempt as u64 * 1000 + 1);
    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
}

/// The earlier result of a source message this case has already processed, if any.
fn already_processed(
    state: &CaseState,
    events: &[EventEnvelope],
    source: &Source,
    case_id: CaseId,
) -> Option<CommandOutcome> {
    let &(first, last) = state.processed_sources.get(source)?;
    let written = events
        .iter()
        .filter(|e| e.sequence >= first && e.sequence <= last)
        .cloned()
        .collect();
    Some(CommandOutcome {
        case_id,
        events: written,
        sequence: last,
        duplicate: true,
    })
}
