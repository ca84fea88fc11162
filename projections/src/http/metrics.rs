//! `GET /metrics` in Prometheus text: HTTP request counts and durations per route, each
//! projection's lag (checkpoint, log head, positions behind), and each business calendar's
//! coverage (days until its published holidays run out, and whether that is within 45).
//!
//! Each API state owns its recorder ([`metrics::with_local_recorder`]) instead of
//! installing a process-wide one: two servers in one process (tests, or the demo beside a
//! library user) keep their figures apart, and nothing global has to be set up first. The
//! lag gauges are set from the read models' checkpoints and the log's head at each scrape,
//! so they are never stale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::state::ApiState;
use wangge_engine::sla::calendar_coverage_at;

const REQUESTS: &str = "wangge_http_requests_total";
const DURATION: &str = "wangge_http_request_duration_seconds";
const CHECKPOINT: &str = "wangge_projection_checkpoint";
const HEAD: &str = "wangge_log_head";
const BEHIND: &str = "wangge_projection_behind";
const CALENDAR_DAYS_LEFT: &str = "wangge_sla_calendar_days_left";
const CALENDAR_EXPIRING: &str = "wangge_sla_calendar_expiring";
const PROVISIONAL_OPEN: &str = "wangge_sla_provisional_open_cases";

/// Request durations, in seconds: from well under a millisecond to a slow scan.
const DURATION_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The API's own Prometheus recorder.
#[derive(Clone)]
pub struct HttpMetrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), DURATION_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // The buckets above are a non-empty constant, which is all the builder checks.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let metrics = Self {
            recorder: Arc::new(recorder),
            handle,
        };
        metrics.with(|| {
            metrics::describe_counter!(
                REQUESTS,
                "HTTP requests answered, by method, route and status"
            );
            metrics::describe_histogram!(
                DURATION,
                metrics::Unit::Seconds,
                "time to answer an HTTP request (to the response head), by method and route"
            );
            metrics::describe_gauge!(CHECKPOINT, "log position a projection has committed up to");
            metrics::describe_gauge!(HEAD, "position of the newest commit in the event log");
            metrics::describe_gauge!(
                BEHIND,
                "log positions between a projection's checkpoint and the head"
            );
            metrics::describe_gauge!(
                CALENDAR_DAYS_LEFT,
                "days until a business calendar's published holidays run out (negative: past)"
            );
            metrics::describe_gauge!(
                CALENDAR_EXPIRING,
                "1 while a business calendar runs out within 45 days or has run out, else 0"
            );
            metrics::describe_gauge!(
                PROVISIONAL_OPEN,
                "open cases whose running step's deadline is provisional (counted past the \
                 published calendar), by district"
            );
        });
        metrics
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    fn record_request(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.as_u16().to_string()),
        ];
        self.with(|| {
            metrics::counter!(REQUESTS, &labels).increment(1);
            metrics::histogram!(DURATION, &labels[..2]).record(took.as_secs_f64());
        });
    }

    /// The Prometheus text of everything recorded.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Middleware: counts and times every request by method, route (the matched pattern, so
/// case ids do not make a label each) and status.
pub async fn track(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics()
        .record_request(&method, &route, response.status(), started.elapsed());
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<ApiState>) -> Response {
    match state.projection_status().await {
        Ok(status) => state.metrics().with(|| {
            if let Some(head) = status.head {
                metrics::gauge!(HEAD).set(head as f64);
            }
            for lag in &status.projections {
                let labels = [("projection", lag.projection.clone())];
                metrics::gauge!(CHECKPOINT, &labels).set(lag.position as f64);
                if let Some(behind) = lag.behind {
                    metrics::gauge!(BEHIND, &labels).set(behind as f64);
                }
            }
        }),
        Err(error) => tracing::warn!(%error, "projection lag left out of the metrics"),
    }
    record_calendar_coverage(&state);
    record_provisional_cases(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

/// Sets the provisional-deadline gauge of every district from the read models: 0 for a
/// district with none (so a district whose deadlines were all revised drops back to 0
/// instead of keeping its last count).
async fn record_provisional_cases(state: &ApiState) {
    let counts = match state.read_models().provisional_open_cases().await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "provisional deadlines left out of the metrics");
            return;
        }
    };
    let districts: Vec<String> = state
        .grid()
        .grid()
        .districts()
        .map(|district| district.code.clone())
        .collect();
    state.metrics().with(|| {
        for district in districts.iter().chain(counts.keys()) {
            let count = counts.get(district).copied().unwrap_or(0);
            let labels = [("district", district.clone())];
            metrics::gauge!(PROVISIONAL_OPEN, &labels).set(count as f64);
        }
    });
}

/// Sets the calendar gauges from the live SLA data at the API's clock: set at each scrape,
/// so a calendar published a moment ago shows at once.
fn record_calendar_coverage(state: &ApiState) {
    let live = state.sla();
    let coverage = calendar_coverage_at(live.reference(), state.now());
    state.metrics().with(|| {
        for calendar in coverage {
            let labels = [("calendar", calendar.id)];
            if let Some(days_left) = calendar.days_left {
                metrics::gauge!(CALENDAR_DAYS_LEFT, &labels).set(days_left as f64);
            }
            metrics::gauge!(CALENDAR_EXPIRING, &labels).set(if calendar.expiring {
                1.0
            } else {
                0.0
            });
        }
    });
}
