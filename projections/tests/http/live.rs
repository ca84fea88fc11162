//! `/api/v1/live`: server-sent events when the read models move, coalesced, ending on
//! shutdown.

use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use wangge_engine::domain::CaseCommand;
use wangge_projections::http::LiveSettings;
use wangge_schemas::Actor;

use crate::support::{local, Week, GREEN_BUILDINGS};

/// Reads server-sent events off a response body.
struct EventStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventStream {
    async fn open(url: &str) -> Self {
        let response = crate::support::authorized_get(url)
            .await
            .expect("the live stream answers");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (name and JSON data), skipping keep-alive comments; `None` when the
    /// stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Some((name, serde_json::from_str(&data).expect("JSON data")));
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one shows every projection at `position` or beyond; returns how many
    /// `progress` events that took.
    async fn until_all_at(&mut self, position: u64) -> usize {
        let mut progress = 0;
        let wait = async {
            loop {
                let (name, data) = self.next().await.expect("the stream goes on");
                assert_eq!(name, "progress");
                progress += 1;
                let positions = data["positions"].as_object().unwrap();
                if positions.len() == wangge_projections::PROJECTION_NAMES.len()
                    && positions.values().all(|p| p.as_u64().unwrap() >= position)
                {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("no live update reached position {position}"));
        progress
    }
}

#[tokio::test]
async fn a_breach_reaches_the_live_stream_without_asking() {
    let mut week = Week::realistic().await;
    let served = week.serve().await;
    let mut live = EventStream::open(&served.url("/api/v1/live")).await;
    let head = week.head().await;
    let (name, ready) = live.next().await.expect("a first event");
    assert_eq!(name, "ready");
    for projection in wangge_projections::PROJECTION_NAMES {
        assert_eq!(
            ready["positions"][projection].as_u64(),
            Some(head),
            "{ready}"
        );
    }
    assert_eq!(
        ready["now"],
        serde_json::to_value(local(24, 10, 50)).unwrap()
    );

    // 11:10: the tasks ignored since 09:10 run out of time.
    week.run_until(local(24, 11, 15)).await;
    let later = week.head().await;
    assert!(later > head, "the timers recorded breaches");
    live.until_all_at(later).await;
    let overdue = crate::get_ok(&served.url("/api/v1/overdue")).await;
    assert_eq!(overdue["items"].as_array().unwrap().len(), 4, "{overdue}");
}

#[tokio::test]
async fn a_burst_of_commits_is_coalesced_into_at_most_one_event_per_interval() {
    let mut week = Week::realistic().await;
    let interval = Duration::from_secs(2);
    let served = week
        .serve_with(LiveSettings {
            coalesce: interval,
            ..LiveSettings::default()
        })
        .await;
    let mut live = EventStream::open(&served.url("/api/v1/live")).await;
    live.next().await.expect("ready");
    let started = Instant::now();
    let case = crate::get_ok(&served.url(&format!(
        "/api/v1/cases?building={}&open=true",
        GREEN_BUILDINGS[0]
    )))
    .await["items"][0]["case_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for n in 0..20 {
        week.act(
            wangge_schemas::CaseId(case),
            CaseCommand::Comment {
                text: format!("居民来电催办 #{n}"),
            },
            Actor::supervisor("inspector-330106001"),
        )
        .await;
    }
    let head = week.head().await;
    let events = live.until_all_at(head).await;
    // 80 announcements (20 commits × 4 projections): one event at once, then at most one
    // per interval for as long as it took.
    let intervals = started.elapsed().as_secs_f64() / interval.as_secs_f64();
    assert!(
        events as f64 <= 1.0 + intervals.ceil(),
        "{events} events in {:?} with a {interval:?} interval",
        started.elapsed()
    );
    assert!(events < 20, "{events} events for 20 commits");
}

#[tokio::test]
async fn shutting_down_ends_the_open_live_streams() {
    let week = Week::new();
    let served = week.serve().await;
    let mut live = EventStream::open(&served.url("/api/v1/live")).await;
    assert_eq!(
        live.next().await.map(|(name, _)| name).as_deref(),
        Some("ready")
    );
    tokio::time::timeout(Duration::from_secs(10), served.shut_down())
        .await
        .expect("a graceful shutdown does not wait for the live stream forever")
        .expect("the server stops cleanly");
    assert!(live.next().await.is_none(), "the stream ended");
}
