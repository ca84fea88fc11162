//! NATS plumbing shared by the engine's request-reply fronts (intake, worker, grid and
//! SLA commands) and its streams (opening them, reading them in order).

pub mod accounts;
pub mod connect;
pub mod guard;
pub mod identity;
pub mod ordered_reader;
pub mod queue_server;
pub mod stream_rules;
pub mod streams;

pub use connect::{connect, NatsConnectOptions, Secret};
pub use guard::{StreamGuard, StreamViolation};
pub use identity::{IdentityPolicy, IdentityRefusal, Party, PartyAccounts, ProvenSender, Sender};
pub use ordered_reader::{OrderedReader, ReadMessage};
pub use queue_server::{serve_queue, QueueServer};
pub use streams::open_stream;

/// A message's headers as `(name, value)` pairs, in order (a header may repeat).
pub fn headers_of(message: &async_nats::Message) -> Vec<(String, String)> {
    message
        .headers
        .as_ref()
        .map(|headers| {
            headers
                .iter()
                .flat_map(|(name, values)| {
                    let name: &str = name.as_ref();
                    values
                        .iter()
                        .map(move |value| (name.to_owned(), value.as_str().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}
