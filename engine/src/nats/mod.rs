//! NATS plumbing shared by the engine's request-reply fronts (intake, worker commands).

pub mod queue_server;

pub use queue_server::{serve_queue, QueueServer};
