//! Grid commands end to end: how operators and other systems change the grid of a running
//! engine.
//!
//! A command arrives by request-reply on `wangge.grid.commands` (queue group `wangge-grid`:
//! each command is handled by one engine instance). [`GridCommandService::process`] parses
//! it, checks it against the instance's live grid, and appends the grid event to the grid
//! stream conditional on the position of the grid it checked against. If another change got
//! there first, it waits until its live grid has folded that change in and checks again, so
//! two racing changes are never both checked against the same stale grid. It replies once
//! its own live grid holds the event.
//!
//! A command already turned into an event (the same `source`) is answered with that event
//! and writes nothing: inside the stream's duplicate window the server drops the repeat
//! (`Nats-Msg-Id`), beyond it the live grid remembers every source it folded in.
//!
//! A refused command changes nothing and is kept in the rejected-message store (original
//! bytes, headers, code, field, reason), where `wangge rejected list | show | replay` find it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};
use wangge_schemas::grid::{
    grid_event_id, GridEventEnvelope, GridEventMeta, GridReply, GRID_COMMAND_SUBJECT,
};

use super::commands::{check_against, parse_grid_command, GridRejection};
use super::shared::SharedGrid;
use super::stream::{GridStream, GridStreamError};
use crate::app::Clock;
use crate::intake::rejected::{RejectedStore, Rejection};
use crate::intake::service::IncomingMessage;
use crate::nats::identity::may_change_reference_data;
use crate::nats::{serve_queue, IdentityPolicy, QueueServer};

/// The queue group all engine instances share.
pub const GRID_QUEUE_GROUP: &str = "wangge-grid";

/// Commands handled at once per instance. Every command contends for the one grid subject,
/// so more at once would only mean more conflicts.
const MAX_IN_FLIGHT: usize = 16;

/// How often one command is checked again after losing a race.
const MAX_ATTEMPTS: usize = 8;

/// How long a command waits for the live grid to fold in a change it raced with, or its own.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

pub struct GridCommandService<R> {
    stream: GridStream,
    grid: SharedGrid,
    rejected: R,
    clock: Arc<dyn Clock>,
    identity: IdentityPolicy,
}

impl<R: RejectedStore> GridCommandService<R> {
    /// `grid` must be followed by a [`super::GridFollower`] on the same `stream`: the
    /// service waits for it to fold in what it writes.
    pub fn new(stream: GridStream, grid: SharedGrid, rejected: R, clock: Arc<dyn Clock>) -> Self {
        Self {
            stream,
            grid,
            rejected,
            clock,
            identity: IdentityPolicy::Claimed,
        }
    }

    /// Where the sender's identity comes from: under [`IdentityPolicy::Proven`] only a grid
    /// administrator NATS authenticated may send commands, and only as themselves.
    pub fn with_identity(mut self, identity: IdentityPolicy) -> Self {
        self.identity = identity;
        self
    }

    pub fn rejected_store(&self) -> &R {
        &self.rejected
    }

    /// Handles one message and returns the reply for its sender.
    pub async fn process(&self, message: IncomingMessage) -> GridReply {
        let command = match parse_grid_command(&message.payload) {
            Ok(command) => command,
            Err(rejection) => return self.refuse(message, rejection).await,
        };
        if let Err(refusal) = self
            .identity
            .sender(&message.headers)
            .and_then(|sender| may_change_reference_data(&sender, &command.actor.id))
        {
            return self.refuse(message, refusal.into()).await;
        }
        let event_id = grid_event_id(&command.source);
        let event_type = command.event.event_type();
        for attempt in 1..=MAX_ATTEMPTS {
            let live = self.grid.snapshot();
            if let Some(earlier) = self.grid.processed(&command.source) {
                info!(event_id = %earlier.event_id, position = earlier.position, "grid command seen before");
                return GridReply::Accepted {
                    event_id: earlier.event_id,
                    event_type: earlier.event_type.to_owned(),
                    position: earlier.position,
                    duplicate: true,
                };
            }
            if let Err(rejection) = check_against(&command, live.grid()) {
                return self.refuse(message, rejection).await;
            }
            let now = self.clock.now();
            let envelope = GridEventEnvelope::new(
                event_id,
                command.event.clone(),
                GridEventMeta {
                    occurred_at: command.occurred_at.unwrap_or(now),
                    recorded_at: now,
                    actor: command.actor.clone(),
                    source: command.source.clone(),
                },
            );
            match self.stream.append(&envelope, live.position()).await {
                Ok(appended) => {
                    if !self.grid.wait_for(appended.position, FOLLOW_WAIT).await {
                        warn!(
                            position = appended.position,
                            "grid event written but not yet folded in by this instance"
                        );
                    }
                    info!(%event_id, event_type, position = appended.position, duplicate = appended.duplicate, "grid command accepted");
                    return GridReply::Accepted {
                        event_id,
                        event_type: event_type.to_owned(),
                        position: appended.position,
                        duplicate: appended.duplicate,
                    };
                }
                Err(GridStreamError::Conflict { expected, actual }) => {
                    debug!(
                        expected,
                        actual, attempt, "grid changed while checking a command; checking again"
                    );
                    self.grid.wait_for(actual, FOLLOW_WAIT).await;
                }
                Err(error @ GridStreamError::Unavailable(_)) => {
                    let rejection = GridRejection {
                        code: "unavailable",
                        field: None,
                        reason: format!("{error}; retry later"),
                    };
                    return self.refuse(message, rejection).await;
                }
            }
        }
        let rejection = GridRejection {
            code: "contended",
            field: None,
            reason: format!(
                "the grid kept changing while the command was checked ({MAX_ATTEMPTS} attempts); retry"
            ),
        };
        self.refuse(message, rejection).await
    }

    async fn refuse(&self, message: IncomingMessage, rejection: GridRejection) -> GridReply {
        let GridRejection {
            code,
            field,
            reason,
        } = rejection;
        let kept = Rejection {
            subject: message.subject,
            headers: message.headers,
            payload: message.payload,
            code: code.to_owned(),
            field: field.clone(),
            reason: reason.clone(),
            rejected_at: self.clock.now(),
        };
        let rejected_id = match self.rejected.keep(kept).await {
            Ok(id) => Some(id),
            // Over its sender's budget: counted and logged by the throttle.
            Err(crate::intake::rejected::RejectedStoreError::NotKept(_)) => None,
            Err(error) => {
                warn!(%error, code, "could not keep a refused grid command");
                None
            }
        };
        info!(
            code,
            field = field.as_deref().unwrap_or(""),
            rejected_id,
            "grid command refused"
        );
        GridReply::Rejected {
            code: code.to_owned(),
            field,
            reason,
            rejected_id,
        }
    }
}

/// Serves grid commands on `wangge.grid.commands` until `shutdown` completes (or the
/// connection closes); see [`serve_queue`] for the draining on shutdown.
pub async fn serve_grid_commands<R: RejectedStore>(
    client: async_nats::Client,
    service: Arc<GridCommandService<R>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let server = QueueServer {
        name: "grid commands",
        subject: GRID_COMMAND_SUBJECT.to_owned(),
        queue_group: GRID_QUEUE_GROUP.to_owned(),
        max_in_flight: MAX_IN_FLIGHT,
    };
    serve_queue(
        client,
        server,
        move |message| {
            let service = service.clone();
            async move {
                let headers = crate::nats::headers_of(&message);
                service
                    .process(IncomingMessage {
                        subject: message.subject.to_string(),
                        headers,
                        payload: message.payload.clone(),
                    })
                    .await
            }
        },
        shutdown,
    )
    .await
}
