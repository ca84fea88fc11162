//! The engine's own actors, which read the event log and write commands back: the dispatcher
//! (routes accepted cases to workers) and the SLA timers (warn, breach, escalate), sharing
//! the cases between instances by partition.

pub mod dispatch_snapshot;
pub mod dispatcher;
pub use wangge_domain::loads;
pub mod partitions;
pub mod revisions;
pub mod timers;

pub use partitions::{partition_of, LeaseConfig, Ownership, PartitionLeases, PARTITIONS};
