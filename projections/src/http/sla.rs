//! `GET /api/v1/sla/status`: how far ahead each business calendar knows its holidays, and
//! which run out within 45 days (the dashboard's banner, and whoever polls for it). Read
//! from the instance's live SLA data, so a calendar published with `wangge sla publish`
//! shows at once.

use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wangge_engine::sla::{
    calendar_coverage, calendar_coverage_at, CalendarCoverage, CALENDAR_WARNING_DAYS,
};

use super::error::{ApiError, ApiErrorBody};
use super::extract::ApiQuery;
use super::state::ApiState;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaStatusQuery {
    /// The day to judge coverage on (`YYYY-MM-DD`); default: today in each calendar's own
    /// time zone, at the API's clock.
    pub today: Option<NaiveDate>,
}

/// The SLA reference data in use, as far as supervisors need to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlaStatus {
    /// Position on the SLA stream of the data answered from (0: the files alone).
    pub position: u64,
    /// A calendar is `expiring` from this many days before its holidays run out.
    pub warning_days: i64,
    /// Every calendar, in id order.
    pub calendars: Vec<CalendarStatus>,
}

/// One calendar's coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CalendarStatus {
    pub id: String,
    pub name: String,
    /// Whether districts that name no calendar use this one.
    pub default: bool,
    /// The last date whose holidays are known; absent when the calendar does not say.
    pub published_through: Option<NaiveDate>,
    /// Days from today to `published_through` (negative once past it).
    pub days_left: Option<i64>,
    /// Within `warning_days` of running out, or past it: publish the next year's holidays.
    pub expiring: bool,
}

/// Each business calendar's coverage: through when its holidays are published, the days
/// left, and whether it runs out within 45 days.
#[utoipa::path(
    get,
    path = "/api/v1/sla/status",
    tag = "sla",
    params(SlaStatusQuery),
    responses(
        (status = 200, description = "Every calendar's coverage, in id order", body = SlaStatus),
        (status = 400, description = "A parameter is unknown or malformed", body = ApiErrorBody),
    )
)]
pub async fn sla_status(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SlaStatusQuery>,
) -> Result<Json<SlaStatus>, ApiError> {
    let live = state.sla();
    let coverage = match query.today {
        Some(today) => calendar_coverage(live.reference(), today),
        None => calendar_coverage_at(live.reference(), state.now()),
    };
    let default = live.calendars().default_id();
    Ok(Json(SlaStatus {
        position: live.position(),
        warning_days: CALENDAR_WARNING_DAYS,
        calendars: coverage
            .into_iter()
            .map(|coverage| CalendarStatus::of(coverage, default))
            .collect(),
    }))
}

impl CalendarStatus {
    fn of(coverage: CalendarCoverage, default: &str) -> Self {
        Self {
            default: coverage.id == default,
            id: coverage.id,
            name: coverage.name,
            published_through: coverage.published_through,
            days_left: coverage.days_left,
            expiring: coverage.expiring,
        }
    }
}
