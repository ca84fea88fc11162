//! SLA commands end to end: how operators publish calendars and policies to running engines.
//!
//! A command arrives by request-reply on `wangge.sla.commands` (queue group `wangge-sla`:
//! each command is handled by one engine instance). [`SlaCommandService::process`] parses
//! it, checks it against the instance's live SLA data, grid and category catalogue, and
//! appends the SLA event to the SLA stream conditional on the position of the data it
//! checked against. If another publish got there first, it waits until its live data has
//! folded that one in and checks again, so two racing publishes are never both checked
//! against the same stale data. It replies once its own live data holds the event.
//!
//! A command already turned into an event (the same `source`) is answered with that event
//! and writes nothing: inside the stream's duplicate window the server drops the repeat
//! (`Nats-Msg-Id`), beyond it the live data remembers every source it folded in.
//!
//! A refused command changes nothing and is kept in the rejected-message store (original
//! bytes, headers, code, JSON path, reason), where `wangge rejected list | show | replay`
//! find it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};
use wangge_domain::sla::{check_sla_against, parse_sla_command, SlaRejection};
use wangge_schemas::sla::{
    sla_event_id, SlaEventEnvelope, SlaEventMeta, SlaReply, SLA_COMMAND_SUBJECT,
};

use super::shared::SharedSla;
use super::stream::{SlaStream, SlaStreamError};
use crate::app::Clock;
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::intake::rejected::{RejectedStore, Rejection};
use crate::intake::service::IncomingMessage;
use crate::nats::identity::may_change_reference_data;
use crate::nats::{serve_queue, IdentityPolicy, QueueServer};

/// The queue group all engine instances share.
pub const SLA_QUEUE_GROUP: &str = "wangge-sla";

/// Commands handled at once per instance. Every command contends for the one SLA subject,
/// and publishes are rare (a few a year), so a few at once is plenty.
const MAX_IN_FLIGHT: usize = 4;

/// How often one command is checked again after losing a race.
const MAX_ATTEMPTS: usize = 8;

/// How long a command waits for the live data to fold in a publish it raced with, or its own.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

pub struct SlaCommandService<R> {
    stream: SlaStream,
    sla: SharedSla,
    /// The live grid: which calendars its districts name.
    grid: SharedGrid,
    /// Which policies the categories name.
    categories: Arc<CategoryCatalogue>,
    rejected: R,
    clock: Arc<dyn Clock>,
    identity: IdentityPolicy,
}

impl<R: RejectedStore> SlaCommandService<R> {
    /// `sla` must be followed by a [`super::SlaFollower`] on the same `stream`: the service
    /// waits for it to fold in what it writes.
    pub fn new(
        stream: SlaStream,
        sla: SharedSla,
        grid: SharedGrid,
        categories: Arc<CategoryCatalogue>,
        rejected: R,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            stream,
            sla,
            grid,
            categories,
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
    pub async fn process(&self, message: IncomingMessage) -> SlaReply {
        let command = match parse_sla_command(&message.payload) {
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
        let event_id = sla_event_id(&command.source);
        let event_type = command.event.event_type();
        let published = command.event.published();
        for attempt in 1..=MAX_ATTEMPTS {
            let live = self.sla.snapshot();
            if let Some(earlier) = self.sla.processed(&command.source) {
                info!(event_id = %earlier.event_id, position = earlier.position, "sla command seen before");
                return SlaReply::Accepted {
                    event_id: earlier.event_id,
                    event_type: earlier.event_type.to_owned(),
                    position: earlier.position,
                    duplicate: true,
                    published: earlier.published,
                };
            }
            let grid = self.grid.snapshot();
            if let Err(rejection) =
                check_sla_against(&command, live.reference(), grid.grid(), &self.categories)
            {
                return self.refuse(message, rejection).await;
            }
            let now = self.clock.now();
            let envelope = SlaEventEnvelope::new(
                event_id,
                command.event.clone(),
                SlaEventMeta {
                    occurred_at: command.occurred_at.unwrap_or(now),
                    recorded_at: now,
                    actor: command.actor.clone(),
                    source: command.source.clone(),
                },
            );
            match self.stream.append(&envelope, live.position()).await {
                Ok(appended) => {
                    if !self.sla.wait_for(appended.position, FOLLOW_WAIT).await {
                        warn!(
                            position = appended.position,
                            "sla event written but not yet folded in by this instance"
                        );
                    }
                    info!(%event_id, event_type, position = appended.position, duplicate = appended.duplicate, ?published, actor = %command.actor.id, "sla command accepted");
                    return SlaReply::Accepted {
                        event_id,
                        event_type: event_type.to_owned(),
                        position: appended.position,
                        duplicate: appended.duplicate,
                        published,
                    };
                }
                Err(SlaStreamError::Conflict { expected, actual }) => {
                    debug!(
                        expected,
                        actual,
                        attempt,
                        "sla data changed while checking a command; checking again"
                    );
                    self.sla.wait_for(actual, FOLLOW_WAIT).await;
                }
                Err(error @ SlaStreamError::Unavailable(_)) => {
                    let rejection =
                        SlaRejection::new("unavailable", None, format!("{error}; retry later"));
                    return self.refuse(message, rejection).await;
                }
            }
        }
        let rejection = SlaRejection::new(
            "contended",
            None,
            format!(
                "the sla data kept changing while the command was checked ({MAX_ATTEMPTS} attempts); retry"
            ),
        );
        self.refuse(message, rejection).await
    }

    async fn refuse(&self, message: IncomingMessage, rejection: SlaRejection) -> SlaReply {
        let SlaRejection {
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
                warn!(%error, code, "could not keep a refused sla command");
                None
            }
        };
        info!(
            code,
            field = field.as_deref().unwrap_or(""),
            rejected_id,
            %reason,
            "sla command refused"
        );
        SlaReply::Rejected {
            code: code.to_owned(),
            field,
            reason,
            rejected_id,
        }
    }
}

/// Serves SLA commands on `wangge.sla.commands` until `shutdown` completes (or the
/// connection closes); see [`serve_queue`] for the draining on shutdown.
pub async fn serve_sla_commands<R: RejectedStore>(
    client: async_nats::Client,
    service: Arc<SlaCommandService<R>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let server = QueueServer {
        name: "sla commands",
        subject: SLA_COMMAND_SUBJECT.to_owned(),
        queue_group: SLA_QUEUE_GROUP.to_owned(),
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
