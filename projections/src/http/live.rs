//! `GET /api/v1/live`: server-sent events that tell the dashboard the read models moved.
//!
//! Fed by [`ReadModels::subscribe`](crate::query::ReadModels::subscribe). The first event
//! (`ready`) carries the projections' positions at connection time; after that each
//! `progress` event carries the positions after one or more commits. Commits are coalesced:
//! one event goes out at once after a quiet spell, then at most one per
//! [`LiveSettings::coalesce`](super::state::LiveSettings) however busy the log is; a comment
//! line keeps an idle stream open. The stream ends when the server shuts down.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::error::ApiErrorBody;
use super::extract::ApiQuery;
use super::grid::NoParameters;
use super::state::ApiState;
use crate::query::Progress;

/// The data of a `ready` or `progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveUpdate {
    /// The log position each projection has committed up to.
    pub positions: BTreeMap<String, u64>,
    /// The API's clock when the event was sent.
    pub now: DateTime<Utc>,
}

/// Live updates of the read models (`text/event-stream`): `ready`, then `progress`
/// events, each with a [`LiveUpdate`] as data.
#[utoipa::path(
    get,
    path = "/api/v1/live",
    tag = "live",
    responses(
        (status = 200, description = "A stream of `ready` and `progress` events, each with a LiveUpdate as JSON data", content_type = "text/event-stream", body = LiveUpdate),
        (status = 400, description = "A parameter was given", body = ApiErrorBody),
    )
)]
pub async fn live(
    State(state): State<ApiState>,
    _: ApiQuery<NoParameters>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.read_models().subscribe();
    let keep_alive = state.live_settings().keep_alive;
    let stream = LiveStream {
        stopping: Box::pin(state.stopping()),
        state,
        receiver,
        positions: BTreeMap::new(),
        sent_ready: false,
        last_sent: None,
    };
    let events = futures::stream::unfold(stream, |mut stream| async move {
        let event = stream.next_event().await?;
        Some((Ok(event), stream))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive))
}

struct LiveStream {
    state: ApiState,
    receiver: Receiver<Progress>,
    positions: BTreeMap<String, u64>,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
    sent_ready: bool,
    last_sent: Option<Instant>,
}

impl LiveStream {
    /// The next event, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Event> {
        if !self.sent_ready {
            self.sent_ready = true;
            self.refresh().await;
            return Some(self.event("ready"));
        }
        // Wait for a change.
        tokio::select! {
            _ = &mut self.stopping => return None,
            received = self.receiver.recv() => match received {
                Ok(progress) => self.note(progress),
                Err(RecvError::Lagged(_)) => self.refresh().await,
                Err(RecvError::Closed) => return None,
            },
        }
        // Pace: no more than one event per interval; what arrives meanwhile joins it.
        if let Some(last) = self.last_sent {
            let due = last + self.state.live_settings().coalesce;
            tokio::select! {
                _ = &mut self.stopping => return None,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        loop {
            match self.receiver.try_recv() {
                Ok(progress) => self.note(progress),
                Err(TryRecvError::Lagged(_)) => self.refresh().await,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        self.last_sent = Some(Instant::now());
        Some(self.event("progress"))
    }

    fn note(&mut self, progress: Progress) {
        let position = self.positions.entry(progress.projection).or_default();
        *position = (*position).max(progress.position);
    }

    /// Positions from the checkpoints (at the start, and after missing announcements).
    async fn refresh(&mut self) {
        if let Ok(checkpoints) = self.state.read_models().checkpoints().await {
            for checkpoint in checkpoints {
                self.note(Progress {
                    projection: checkpoint.projection,
                    position: checkpoint.position,
                });
            }
        }
    }

    fn event(&self, kind: &str) -> Event {
        let update = LiveUpdate {
            positions: self.positions.clone(),
            now: self.state.now(),
        };
        let id = self.positions.values().max().copied().unwrap_or(0);
        Event::default()
            .event(kind)
            .id(id.to_string())
            .json_data(&update)
            .unwrap_or_else(|_| Event::default().event(kind))
    }
}
