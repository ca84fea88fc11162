//! How far each projection is behind the log: for the HTTP API (`/lag`), metrics, and
//! `wangge projections status`.
//!
//! A projection's lag is the log's head minus its checkpoint (in log positions, which count
//! commits), and, while it is behind, the seconds since the last commit it folded was
//! recorded: a projection that is not behind has no time lag, however long ago its last
//! commit came.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wangge_engine::log::{EventLog, LogError, LogPosition};

use crate::query::{Checkpoint, ReadError, ReadModels};

#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    ReadModels(#[from] ReadError),
}

/// One projection's lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectionLag {
    pub projection: String,
    /// The log position of the last commit folded.
    pub checkpoint: LogPosition,
    /// When that commit's last event was recorded.
    pub checkpoint_recorded_at: Option<DateTime<Utc>>,
    /// Log positions between the checkpoint and the head.
    pub behind: u64,
    /// While behind: seconds since the checkpoint's commit was recorded (`None` before the
    /// first commit is folded); 0 when caught up.
    pub seconds_behind: Option<f64>,
}

/// Every projection's lag against the log's head at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LagReport {
    /// The position of the newest commit in the log.
    pub head: LogPosition,
    pub measured_at: DateTime<Utc>,
    pub projections: Vec<ProjectionLag>,
}

impl LagReport {
    /// The lag of `checkpoints` against `head` at `now`.
    pub fn new(head: LogPosition, checkpoints: Vec<Checkpoint>, now: DateTime<Utc>) -> Self {
        let projections = checkpoints
            .into_iter()
            .map(|checkpoint| {
                let behind = head.saturating_sub(checkpoint.position);
                let seconds_behind = if behind == 0 {
                    Some(0.0)
                } else {
                    checkpoint
                        .recorded_at
                        .map(|at| ((now - at).num_milliseconds().max(0) as f64) / 1000.0)
                };
                ProjectionLag {
                    projection: checkpoint.projection,
                    checkpoint: checkpoint.position,
                    checkpoint_recorded_at: checkpoint.recorded_at,
                    behind,
                    seconds_behind,
                }
            })
            .collect();
        Self {
            head,
            measured_at: now,
            projections,
        }
    }

    /// Whether every projection has folded the whole log.
    pub fn caught_up(&self) -> bool {
        self.projections.iter().all(|p| p.behind == 0)
    }

    /// The report in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP wangge_log_head_position Position of the newest commit in the event log.\n",
        );
        out.push_str("# TYPE wangge_log_head_position gauge\n");
        out.push_str(&format!("wangge_log_head_position {}\n", self.head));
        let series = |out: &mut String,
                      name: &str,
                      help: &str,
                      value: &dyn Fn(&ProjectionLag) -> Option<String>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for lag in &self.projections {
                if let Some(value) = value(lag) {
                    out.push_str(&format!(
                        "{name}{{projection=\"{}\"}} {value}\n",
                        lag.projection
                    ));
                }
            }
        };
        series(
            &mut out,
            "wangge_projection_checkpoint_position",
            "Log position of the last commit a projection folded.",
            &|lag| Some(lag.checkpoint.to_string()),
        );
        series(
            &mut out,
            "wangge_projection_lag_positions",
            "Log positions between a projection's checkpoint and the log head.",
            &|lag| Some(lag.behind.to_string()),
        );
        series(
            &mut out,
            "wangge_projection_lag_seconds",
            "While behind, seconds since the last commit a projection folded was recorded.",
            &|lag| lag.seconds_behind.map(|s| s.to_string()),
        );
        out
    }
}

/// Measures every projection's lag: the log's head, then the read models' checkpoints.
pub async fn measure<L: EventLog>(
    read_models: &dyn ReadModels,
    log: &L,
    now: DateTime<Utc>,
) -> Result<LagReport, LagError> {
    let head = log.head().await?;
    let checkpoints = read_models.checkpoints().await?;
    Ok(LagReport::new(head, checkpoints, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn checkpoint(name: &str, position: u64, at: Option<DateTime<Utc>>) -> Checkpoint {
        Checkpoint {
            projection: name.to_owned(),
            position,
            recorded_at: at,
        }
    }

    #[test]
    fn a_projection_behind_the_head_lags_by_positions_and_by_the_age_of_its_checkpoint() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let now = at + chrono::Duration::milliseconds(2_500);
        let report = LagReport::new(
            10,
            vec![
                checkpoint("cases", 10, Some(at)),
                checkpoint("audit", 7, Some(at)),
                checkpoint("patrols", 0, None),
            ],
            now,
        );
        let lags: Vec<_> = report
            .projections
            .iter()
            .map(|p| (p.projection.as_str(), p.behind, p.seconds_behind))
            .collect();
        assert_eq!(
            lags,
            vec![
                ("cases", 0, Some(0.0)),
                ("audit", 3, Some(2.5)),
                ("patrols", 10, None)
            ]
        );
        assert!(!report.caught_up());
        let metrics = report.to_prometheus();
        assert!(metrics.contains("wangge_projection_lag_positions{projection=\"audit\"} 3\n"));
        assert!(metrics.contains("wangge_projection_lag_seconds{projection=\"audit\"} 2.5\n"));
        assert!(!metrics.contains("wangge_projection_lag_seconds{projection=\"patrols\"}"));
    }
}
