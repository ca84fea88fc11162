//! Creating a JetStream stream, or bringing an existing one's settings up to date: what
//! every engine instance (and the CLI) does at start-up for each stream it uses, so any of
//! them can be the first to start.

use async_nats::jetstream::{self, stream};
use tracing::info;

/// The stream `wanted.name` with the settings `wanted` gives: created if missing, updated
/// when one of the settings the engine cares about differs (subjects, replicas, message
/// limits, the duplicate window, deny delete and purge, direct gets, description) — but
/// only when the update weakens nothing (`super::stream_rules`): a weakening is refused
/// with a message that names it and the deliberate command. `wanted.num_replicas` of 0
/// means "as the stream has it" (1 for a new stream): what every command gets when
/// `--replicas` is not given. `what` names it in logs ("event", "grid", "task"). Errors are
/// the server's, or the refusal, as text.
pub async fn open_stream(
    context: &jetstream::Context,
    mut wanted: stream::Config,
    what: &str,
) -> Result<stream::Stream, String> {
    let name = wanted.name.clone();
    match context.get_stream(&name).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .map_err(|e| e.to_string())?
                .config
                .clone();
            if wanted.num_replicas == 0 {
                wanted.num_replicas = current.num_replicas.max(1);
            }
            refuse_weakening(&current, &wanted)?;
            if needs_update(&current, &wanted) {
                info!(stream = %name, "updating {what} stream settings");
                context
                    .update_stream(wanted)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            context.get_stream(&name).await.map_err(|e| e.to_string())
        }
        Err(_) => {
            wanted.num_replicas = wanted.num_replicas.max(1);
            info!(stream = %name, replicas = wanted.num_replicas, "creating {what} stream");
            context
                .get_or_create_stream(wanted)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// For the buckets made through the client's key-value and object-store helpers (their
/// stream is `KV_<bucket>` or `OBJ_<bucket>`): replicas raised to `wanted` when it is
/// higher, a lower `wanted` refused as a weakening, 0 keeping the stream's. `Ok(false)` when
/// the bucket does not exist yet (the caller creates it with `wanted.max(1)` replicas).
pub async fn settle_bucket_replicas(
    context: &jetstream::Context,
    stream_name: &str,
    wanted: usize,
) -> Result<bool, String> {
    let Ok(mut existing) = context.get_stream(stream_name).await else {
        return Ok(false);
    };
    let current = existing
        .info()
        .await
        .map_err(|e| e.to_string())?
        .config
        .clone();
    if wanted == 0 || wanted == current.num_replicas {
        return Ok(true);
    }
    let mut raised = current.clone();
    raised.num_replicas = wanted;
    refuse_weakening(&current, &raised)?;
    info!(stream = %stream_name, replicas = wanted, "raising the bucket's replicas");
    context
        .update_stream(raised)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// `Err` with the operator's message when going from `current` to `wanted` would weaken
/// the stream.
pub fn refuse_weakening(current: &stream::Config, wanted: &stream::Config) -> Result<(), String> {
    use super::guard::OwnedSettings;
    use super::stream_rules::{refusal, weakenings};
    let weakened = weakenings(&OwnedSettings::of(current), &OwnedSettings::of(wanted));
    if weakened.is_empty() {
        Ok(())
    } else {
        Err(refusal(&wanted.name, &weakened))
    }
}

/// Only the settings we own are compared; the server fills in others we leave alone.
fn needs_update(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects != wanted.subjects
        || current.num_replicas != wanted.num_replicas
        || current.max_age != wanted.max_age
        || !same_limit(current.max_messages, wanted.max_messages)
        || !same_limit(current.max_bytes, wanted.max_bytes)
        || !same_limit(
            current.max_messages_per_subject,
            wanted.max_messages_per_subject,
        )
        || current.discard != wanted.discard
        || current.allow_rollup != wanted.allow_rollup
        || current.duplicate_window != wanted.duplicate_window
        || current.max_message_size != wanted.max_message_size
        || current.deny_delete != wanted.deny_delete
        || current.deny_purge != wanted.deny_purge
        || current.allow_direct != wanted.allow_direct
        || current.allow_atomic_publish != wanted.allow_atomic_publish
        || current.description != wanted.description
}

/// "No limit" is −1 from the server and may be 0 from a client.
fn same_limit(a: i64, b: i64) -> bool {
    a == b || (a <= 0 && b <= 0)
}

/// Whether a publish was refused because its `Nats-Expected-Last-Subject-Sequence` no longer
/// holds, and if so where the subject really is when the server says so.
///
/// A single server answers `wrong last sequence: N` (error code 10071). A clustered stream
/// also refuses with the constant `wrong last sequence` (10164) while another append to the
/// same subject is still in flight, without a position: the subject moved on, to where the
/// caller must read. Both are a lost race, never an outage.
pub fn subject_moved_on(error: &jetstream::context::PublishError) -> Option<Option<u64>> {
    use async_nats::jetstream::ErrorCode;
    use jetstream::context::PublishErrorKind;
    if error.kind() == PublishErrorKind::WrongLastSequence {
        return Some(Some(actual_last_sequence(error)));
    }
    let code = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .map(|error| error.error_code())?;
    (code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT).then_some(None)
}

/// Where a stream's subject really is after a conditional append was refused: the server
/// says `wrong last sequence: N (code 400, error code 10071)`. 0 when it does not say.
pub fn actual_last_sequence(error: &jetstream::context::PublishError) -> u64 {
    use std::error::Error;
    let text = error.source().map(|s| s.to_string()).unwrap_or_default();
    let description = text.split(" (code").next().unwrap_or_default();
    description
        .rsplit(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}
