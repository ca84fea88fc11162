//! The warning that a business calendar runs out: at start-up and once a day, while any
//! calendar's holidays are published through a date less than 45 days away (or already
//! past), a structured warning per calendar, so whoever reads the logs publishes the next
//! year's schedule before deadlines start counting holidays as working days.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use wangge_domain::sla::{calendar_coverage_at, CalendarCoverage, CALENDAR_WARNING_DAYS};

use super::shared::SharedSla;
use crate::app::Clock;

/// How often the warning is repeated while a calendar runs out.
pub const COVERAGE_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Logs one warning per calendar that runs out, as of the clock's now; returns them.
pub fn warn_expiring_calendars(sla: &SharedSla, clock: &dyn Clock) -> Vec<CalendarCoverage> {
    let expiring: Vec<CalendarCoverage> = calendar_coverage_at(sla.load().reference(), clock.now())
        .into_iter()
        .filter(|coverage| coverage.expiring)
        .collect();
    for coverage in &expiring {
        warn!(
            calendar = %coverage.id,
            name = %coverage.name,
            published_through = %coverage.published_through.map(|date| date.to_string()).unwrap_or_default(),
            days_left = coverage.days_left.unwrap_or_default(),
            warning_days = CALENDAR_WARNING_DAYS,
            "business calendar runs out; publish the next year's holidays with wangge sla publish"
        );
    }
    expiring
}

/// Warns now and then every `every` until `shutdown`. A publish that brings a calendar's
/// date further is seen at the next check (the data is read afresh each time).
pub async fn watch_calendar_coverage(
    sla: SharedSla,
    clock: Arc<dyn Clock>,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        if warn_expiring_calendars(&sla, &*clock).is_empty() {
            info!(
                warning_days = CALENDAR_WARNING_DAYS,
                "every business calendar has its holidays published far enough ahead"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut shutdown => return,
        }
    }
}
