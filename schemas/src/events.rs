//! The event catalogue: every fact the closed loop of a case can record.
//!
//! 信息采集 collection → 立案 acceptance → 派遣 dispatch → 处置 handling → 反馈 feedback →
//! 核查结案 verification and closing → 综合评价 evaluation, plus the side flows (rejection,
//! merging, decline, reassignment, suspension, parking, extension, rework, reopening,
//! escalation, voiding) and the SLA facts.
//!
//! Each variant's `event_type` string and schema version are part of the public contract:
//! never rename one, never change a payload incompatibly without bumping its version and
//! adding an upcaster in [`crate::upcast`].

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::CaseId;
use crate::sla::{EscalationAction, SlaClock, UtcOffset};

/// An event's type and payload. Serialized adjacently: `{"event_type": "...", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum CaseEvent {
    #[serde(rename = "case.reported")]
    Reported(CaseReported),
    #[serde(rename = "case.accepted")]
    Accepted(CaseAccepted),
    #[serde(rename = "case.rejected")]
    Rejected(CaseRejected),
    #[serde(rename = "case.merged")]
    Merged(CaseMerged),
    #[serde(rename = "case.dispatched")]
    Dispatched(CaseDispatched),
    #[serde(rename = "case.acknowledged")]
    Acknowledged(CaseAcknowledged),
    #[serde(rename = "case.declined")]
    Declined(CaseDeclined),
    #[serde(rename = "case.reassigned")]
    Reassigned(CaseReassigned),
    #[serde(rename = "case.handling_started")]
    HandlingStarted(HandlingStarted),
    #[serde(rename = "case.suspended")]
    Suspended(CaseSuspended),
    #[serde(rename = "case.resumed")]
    Resumed(CaseResumed),
    #[serde(rename = "case.extension_granted")]
    ExtensionGranted(ExtensionGranted),
    #[serde(rename = "case.resolved")]
    Resolved(CaseResolved),
    #[serde(rename = "case.verified")]
    Verified(CaseVerified),
    #[serde(rename = "case.rework_requested")]
    ReworkRequested(ReworkRequested),
    #[serde(rename = "case.closed")]
    Closed(CaseClosed),
    #[serde(rename = "case.reopened")]
    Reopened(CaseReopened),
    #[serde(rename = "case.evaluated")]
    Evaluated(CaseEvaluated),
    #[serde(rename = "case.comment_added")]
    CommentAdded(CommentAdded),
    #[serde(rename = "case.escalated")]
    Escalated(CaseEscalated),
    #[serde(rename = "case.sla_warning")]
    SlaWarning(SlaWarning),
    #[serde(rename = "case.sla_breached")]
    SlaBreached(SlaBreached),
    #[serde(rename = "case.voided")]
    Voided(CaseVoided),
    #[serde(rename = "case.deadline_revised")]
    /// Boxed: a recorded clock is the largest payload, and rare.
    DeadlineRevised(Box<DeadlineRevised>),
    #[serde(rename = "case.supervision_requested")]
    SupervisionRequested(SupervisionRequested),
}

/// `(event_type, current schema version)` for every event in the catalogue.
pub const EVENT_CATALOGUE: &[(&str, u16)] = &[
    // v2: the resident's name and phone are sealed in `contact` (v1 held them in plain
    // text; they are upcast into `legacy_contact`).
    ("case.reported", 2),
    ("case.accepted", 1),
    ("case.rejected", 1),
    ("case.merged", 1),
    ("case.dispatched", 1),
    ("case.acknowledged", 1),
    ("case.declined", 1),
    ("case.reassigned", 1),
    ("case.handling_started", 1),
    ("case.suspended", 1),
    ("case.resumed", 1),
    // v2: the units of `extension` mean one thing each (v1's `minutes` became
    // `working_minutes`, what it meant on the steps extensions are granted on).
    ("case.extension_granted", 2),
    // v2 replaced the single `photo_url` with a list of media references.
    ("case.resolved", 2),
    ("case.verified", 1),
    ("case.rework_requested", 1),
    ("case.closed", 1),
    ("case.reopened", 1),
    ("case.evaluated", 1),
    ("case.comment_added", 1),
    ("case.escalated", 1),
    ("case.sla_warning", 1),
    ("case.sla_breached", 1),
    ("case.voided", 1),
    ("case.deadline_revised", 1),
    ("case.supervision_requested", 1),
];

/// The schema version a freshly written event of this type carries.
pub fn current_schema_version(event_type: &str) -> Option<u16> {
    EVENT_CATALOGUE
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, version)| *version)
}

impl CaseEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Reported(_) => "case.reported",
            Self::Accepted(_) => "case.accepted",
            Self::Rejected(_) => "case.rejected",
            Self::Merged(_) => "case.merged",
            Self::Dispatched(_) => "case.dispatched",
            Self::Acknowledged(_) => "case.acknowledged",
            Self::Declined(_) => "case.declined",
            Self::Reassigned(_) => "case.reassigned",
            Self::HandlingStarted(_) => "case.handling_started",
            Self::Suspended(_) => "case.suspended",
            Self::Resumed(_) => "case.resumed",
            Self::ExtensionGranted(_) => "case.extension_granted",
            Self::Resolved(_) => "case.resolved",
            Self::Verified(_) => "case.verified",
            Self::ReworkRequested(_) => "case.rework_requested",
            Self::Closed(_) => "case.closed",
            Self::Reopened(_) => "case.reopened",
            Self::Evaluated(_) => "case.evaluated",
            Self::CommentAdded(_) => "case.comment_added",
            Self::Escalated(_) => "case.escalated",
            Self::SlaWarning(_) => "case.sla_warning",
            Self::SlaBreached(_) => "case.sla_breached",
            Self::Voided(_) => "case.voided",
            Self::DeadlineRevised(_) => "case.deadline_revised",
            Self::SupervisionRequested(_) => "case.supervision_requested",
        }
    }

    /// The version this crate writes for this event's type.
    pub fn schema_version(&self) -> u16 {
        current_schema_version(self.event_type())
            .expect("every CaseEvent variant is listed in EVENT_CATALOGUE")
    }
}

// ---------------------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------------------

/// The three ways a case enters the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IntakeKind {
    /// A resident's report (随手拍, hotline 12345, WeChat group, kiosk).
    ResidentReport,
    /// A grid worker's finding on patrol (巡查).
    PatrolFinding,
    /// A resident asking for a service (residence certificate, 高龄认证, 微心愿, …).
    ServiceRequest,
}

impl IntakeKind {
    pub const ALL: [IntakeKind; 3] = [
        Self::ResidentReport,
        Self::PatrolFinding,
        Self::ServiceRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResidentReport => "resident_report",
            Self::PatrolFinding => "patrol_finding",
            Self::ServiceRequest => "service_request",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// The tiers of the grid, smallest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Tier {
    Building,
    Community,
    District,
}

impl Tier {
    /// The tier above, or `None` at the top (the district takes what nobody else can: 兜底).
    pub fn parent(self) -> Option<Tier> {
        match self {
            Self::Building => Some(Self::Community),
            Self::Community => Some(Self::District),
            Self::District => None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

/// The timed steps of the closed loop.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SlaStep {
    Accept,
    Dispatch,
    Acknowledge,
    Resolve,
    Verify,
}

/// A length of time as a policy, an extension or a worker states it. The unit says both how
/// long and on which clock: working units count only the working hours of the district's
/// business calendar (holidays and make-up days included), clock units count every minute,
/// day and night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeLimit {
    #[schemars(range(min = 1))]
    pub amount: u32,
    pub unit: TimeUnit,
}

impl TimeLimit {
    pub fn new(amount: u32, unit: TimeUnit) -> Self {
        Self { amount, unit }
    }
}

/// The unit of a [`TimeLimit`]; each means one thing wherever it appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TimeUnit {
    /// Minutes of working time in the district's business calendar.
    WorkingMinutes,
    /// Hours of working time in the district's business calendar: the earliest instant at
    /// which that much working time has passed.
    WorkingHours,
    /// Working days: the limit ends when business stops on the Nth working day after the
    /// day the clock starts (the start day never counts; Civil Code art. 201 and 203).
    WorkingDays,
    /// Minutes on the plain clock (emergencies).
    ClockMinutes,
    /// Hours on the plain clock, day and night, holidays included.
    ClockHours,
    /// Calendar days: the limit ends at 24:00 local time on the Nth day after the day the
    /// clock starts, weekends and holidays included (Civil Code art. 201 and 203).
    CalendarDays,
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 6] = [
        Self::WorkingMinutes,
        Self::WorkingHours,
        Self::WorkingDays,
        Self::ClockMinutes,
        Self::ClockHours,
        Self::CalendarDays,
    ];

    /// Whether the unit counts working time of a business calendar (else the plain clock).
    pub fn is_working_time(self) -> bool {
        matches!(
            self,
            Self::WorkingMinutes | Self::WorkingHours | Self::WorkingDays
        )
    }

    /// The unit's name as it is written (`working_hours`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkingMinutes => "working_minutes",
            Self::WorkingHours => "working_hours",
            Self::WorkingDays => "working_days",
            Self::ClockMinutes => "clock_minutes",
            Self::ClockHours => "clock_hours",
            Self::CalendarDays => "calendar_days",
        }
    }
}

/// A photo, video, recording or document attached to a report or a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    pub kind: MediaKind,
    /// Where the media object is stored (object store key or URL).
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Hex SHA-256 of the object, when the uploader computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MediaKind {
    Photo,
    Video,
    Audio,
    Document,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coordinates {
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: f64,
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: f64,
}

/// How a resident reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Channel {
    /// 随手拍 in a WeChat mini-program.
    MiniProgram,
    /// The 12345 citizen hotline.
    Hotline12345,
    WechatGroup,
    Kiosk,
    /// A sensor or camera platform.
    Sensor,
    /// Walked in or phoned the community office.
    InPerson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PatrolKind {
    FireSafety,
    FloodSafety,
    Daily,
}

/// A resident as a case's events hold them: the pseudonymous account id the sending system
/// gave (never a phone number: senders must not use one as the id, since the id stays in
/// the log when the contact is erased), and the contact details sealed under the resident's
/// own data key, so that destroying the key erases them (crypto-shredding, PIPL Art. 47).
///
/// Since version 2 of `case.reported`. Version 1 held `name` and `phone` in plain text; they
/// are upcast into `legacy_contact`, which the engine never writes and erasure cannot reach
/// without rewriting the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resident {
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// Name, phone and ID number, sealed; absent when the sender gave none.
    // Boxed (both): every cached event pays for the width of the largest payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<SealedContact>>,
    /// Plain contact details from an event written before contacts were sealed (version 1);
    /// never written now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_contact: Option<Box<ResidentContact>>,
}

impl Resident {
    /// A resident known by id only.
    pub fn pseudonymous(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            contact: None,
            legacy_contact: None,
        }
    }
}

/// A resident's contact details in plain text: what a sender publishes and what a sealed
/// contact holds inside. Only ever in intake messages, in memory, and (sealed) in events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidentContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub phone: Option<String>,
    /// 居民身份证号码: 18 characters, 17 digits and a check digit (0-9 or X).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 18, max = 18))]
    pub id_number: Option<String>,
}

impl ResidentContact {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.phone.is_none() && self.id_number.is_none()
    }
}

/// Contact details sealed with XChaCha20-Poly1305 under the resident's data key. The
/// associated data binds the ciphertext to the key and the case, so it cannot be moved to
/// another resident or case. Opening it needs the engine's key store (and so its key-
/// encryption key); once the resident is erased, nothing can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SealedContact {
    /// The resident's data key: a keyed hash of the sending system and the resident id,
    /// which reveals neither.
    #[schemars(length(min = 1, max = 128))]
    pub key_id: String,
    /// 24 bytes, base64 (standard alphabet, padded).
    pub nonce: String,
    /// The JSON of a `ResidentContact`, sealed, base64 (standard alphabet, padded).
    pub ciphertext: String,
}

// ---------------------------------------------------------------------------------------
// Payloads, in the order of the closed loop
// ---------------------------------------------------------------------------------------

/// 信息采集: a case enters the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseReported {
    pub title: String,
    pub description: String,
    /// The category code as reported; acceptance may correct it.
    pub reported_category: String,
    #[serde(default)]
    pub media: Vec<MediaRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
    /// What kind of intake this was, with the fields only that kind has.
    pub details: ReportDetails,
    /// The sender's own time of the report, as it claimed it, beside the engine's: the
    /// event's `occurred_at` is when intake accepted the report, and every SLA clock and
    /// indicator cohort runs from that. `None` for reports made by the engine's own users
    /// and in events written before intake kept the claim.
    // Boxed: most reports in memory have none, and every event of every cached case pays
    // for the width of the largest variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake_clock: Option<Box<IntakeClock>>,
}

/// The time a sender claimed for its report, and whether intake flagged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IntakeClock {
    /// The message's `reported_at`.
    pub claimed_reported_at: DateTime<Utc>,
    /// The claim lies further before acceptance than the intake's bound (24 hours unless
    /// configured): a report entered late, or a sender whose clock is wrong.
    #[serde(default)]
    pub backdated: bool,
}

/// The part of a report that depends on how it came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "intake", rename_all = "snake_case")]
pub enum ReportDetails {
    ResidentReport {
        channel: Channel,
        resident: Resident,
    },
    PatrolFinding {
        worker_id: String,
        patrol_kind: PatrolKind,
        /// The worker fixed it on the spot and will close it by self-handling (自处理).
        fixed_on_spot: bool,
    },
    ServiceRequest {
        channel: Channel,
        resident: Resident,
    },
}

impl ReportDetails {
    /// The reporting resident, for the kinds a resident reports.
    pub fn resident(&self) -> Option<&Resident> {
        match self {
            Self::ResidentReport { resident, .. } | Self::ServiceRequest { resident, .. } => {
                Some(resident)
            }
            Self::PatrolFinding { .. } => None,
        }
    }

    pub fn resident_mut(&mut self) -> Option<&mut Resident> {
        match self {
            Self::ResidentReport { resident, .. } | Self::ServiceRequest { resident, .. } => {
                Some(resident)
            }
            Self::PatrolFinding { .. } => None,
        }
    }

    pub fn intake_kind(&self) -> IntakeKind {
        match self {
            Self::ResidentReport { .. } => IntakeKind::ResidentReport,
            Self::PatrolFinding { .. } => IntakeKind::PatrolFinding,
            Self::ServiceRequest { .. } => IntakeKind::ServiceRequest,
        }
    }
}

/// 立案: the case is registered with its category and priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseAccepted {
    pub category: String,
    pub priority: Priority,
}

/// The case is refused at acceptance (not a valid case). Terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseRejected {
    pub reason: String,
}

/// The case duplicates another and is folded into it. Terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseMerged {
    pub into_case_id: CaseId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// 派遣: the case is sent to a worker in a cell of some tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseDispatched {
    pub tier: Tier,
    /// The grid cell (building, community or district code) now responsible.
    pub cell: String,
    pub assignee: String,
}

/// The assignee took the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseAcknowledged {
    pub worker_id: String,
}

/// The assignee refused the task; it goes back for dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseDeclined {
    pub worker_id: String,
    pub reason: String,
}

/// The task moved from one worker to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseReassigned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_worker: Option<String>,
    pub to_worker: String,
    pub tier: Tier,
    pub cell: String,
    pub reason: String,
}

/// 处置: the assignee started work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HandlingStarted {
    pub worker_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SuspendReason {
    /// Waiting for the resident (access, information); the clock stops.
    WaitingForResident,
    /// Waiting for parts or another unit.
    WaitingForParts,
    /// 挂账: parked because it cannot be solved now.
    Parked,
}

/// The clock stops until the case is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseSuspended {
    pub reason: SuspendReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseResumed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// 延期: the limit of a step is extended (schema version 2), counted on from where the limit
/// (or the previous extension) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtensionGranted {
    pub step: SlaStep,
    pub extension: TimeLimit,
    pub reason: String,
}

/// 反馈: the handler reports the result (schema version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseResolved {
    pub worker_id: String,
    pub notes: String,
    /// Photos and documents of the result. Version 1 had a single optional `photo_url`.
    #[serde(default)]
    pub media: Vec<MediaRef>,
}

/// 核查: someone checked on site and the result holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseVerified {
    pub verifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// 返工: the check failed and the case goes back to its handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReworkRequested {
    pub verifier: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ClosureKind {
    /// Closed after verification of the handler's result.
    Verified,
    /// 自处理: closed by the grid worker who fixed it on the spot.
    SelfHandled,
}

/// 结案: the case is closed. Terminal until reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseClosed {
    pub closure: ClosureKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseReopened {
    pub reason: String,
}

/// 综合评价: the reporter's satisfaction.
///
/// `resolved`, `level` and `channel` were added without a version bump (optional fields):
/// events written before them, and evaluations that do not carry them, simply lack them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseEvaluated {
    /// 1 (very dissatisfied) to 5 (very satisfied). An answer on the hotlines' three-level
    /// scale is stored as its score: 满意 5, 基本满意 4, 不满意 1 (see [`SatisfactionLevel`]).
    #[schemars(range(min = 1, max = 5))]
    pub satisfaction: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The resident's answer to "was the problem solved?" (问题是否解决), when they were asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
    /// The word the resident chose when they answered on the three-level scale; absent when
    /// they gave a score of 1 to 5. `satisfaction` is always its score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<SatisfactionLevel>,
    /// How the evaluation reached the engine (the 12345 hotline calls residents back on their
    /// behalf: `hotline12345`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

/// The three-level satisfaction scale of the citizen hotlines (满意 / 基本满意 / 不满意).
///
/// Each level is stored as a score on the 1–5 scale, chosen so that the satisfaction rate
/// (满意率: a score of 4 or more) counts 满意 and 基本满意 as the hotlines do, and the
/// resolution rate's fallback (a score of 3 or more, when the resident was not asked whether
/// the problem was solved) counts 不满意 as unsolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SatisfactionLevel {
    /// 满意, stored as 5.
    Satisfied,
    /// 基本满意, stored as 4.
    BasicallySatisfied,
    /// 不满意, stored as 1.
    Dissatisfied,
}

impl SatisfactionLevel {
    pub const ALL: [SatisfactionLevel; 3] = [
        Self::Satisfied,
        Self::BasicallySatisfied,
        Self::Dissatisfied,
    ];

    /// The level's score on the 1–5 scale.
    pub fn score(self) -> u8 {
        match self {
            Self::Satisfied => 5,
            Self::BasicallySatisfied => 4,
            Self::Dissatisfied => 1,
        }
    }

    /// The level's name as it is written (`basically_satisfied`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Satisfied => "satisfied",
            Self::BasicallySatisfied => "basically_satisfied",
            Self::Dissatisfied => "dissatisfied",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommentAdded {
    pub text: String,
}

/// The case moves up the grid (小事网格解决、大事全网联动).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseEscalated {
    pub from_tier: Tier,
    pub to_tier: Tier,
    /// The cell of the new tier that now answers for the case.
    pub cell: String,
    pub reason: String,
}

/// A step passed the warning fraction of its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlaWarning {
    pub step: SlaStep,
    pub deadline: DateTime<Utc>,
    /// The fraction of the limit at which the warning fires, in percent (default 80).
    #[schemars(range(min = 1, max = 99))]
    pub threshold_percent: u8,
}

/// A step ran past its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlaBreached {
    pub step: SlaStep,
    pub deadline: DateTime<Utc>,
}

/// 督办: the district let a step run past its own limit, so the case is referred to the
/// district's leadership for supervision. Oversight, not a transfer: the case stays with
/// whoever holds it in the district, its status and its SLA clock are unchanged. Recorded
/// once per breached step and deadline. The supervision unit and leaders are as the grid
/// named them when the event was written, so a later change of leadership never rewrites
/// who was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SupervisionRequested {
    /// The district whose limit was breached.
    #[schemars(length(min = 1))]
    pub district: String,
    /// The cell that holds the case (the district cell).
    #[schemars(length(min = 1))]
    pub cell: String,
    /// The supervision unit the grid names for the district (`区委督查室`); absent when the
    /// district names none and its duty leader (`leaders`) is asked instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Person ids of the leaders asked to supervise, as the grid named them; at least one.
    #[schemars(length(min = 1))]
    pub leaders: Vec<String>,
    /// How to reach the unit, as the grid named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The worker who holds the case and goes on handling it; absent while it waits for
    /// dispatch in the district.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The step whose limit was breached.
    pub step: SlaStep,
    /// The breached deadline: overdue since then. With `step`, the identity of the request.
    pub overdue_since: DateTime<Utc>,
    pub reason: String,
}

/// 作废: the case is void (a test, a prank, entered by mistake). Terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseVoided {
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// Deadlines as the engine computed them
// ---------------------------------------------------------------------------------------

/// The business calendar a clock was computed in, as it stood then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockCalendar {
    /// The calendar's id (`cn`).
    pub id: String,
    /// Its offset from UTC, which also fixes the local day a case counts on.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "+08:00"))]
    pub utc_offset: UtcOffset,
    /// The last date whose holidays were published when the clock was computed; working
    /// time after it was counted on the weekly hours alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holidays_published_through: Option<NaiveDate>,
}

/// One rung of a step's escalation ladder and when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationRung {
    /// 1 for the first rung.
    pub level: u32,
    pub action: EscalationAction,
    /// How long after the previous rung (the first: after the deadline) it falls due.
    pub after: TimeLimit,
    /// `None` while the case is suspended before then.
    pub due_at: Option<DateTime<Utc>>,
}

/// The clock of a case's running step, as the engine computed it from the step's limit, the
/// case's business calendar and its suspensions and extensions: recorded on the envelope of
/// the event that started the step or changed its clock (`sla_clock`), and in a
/// `case.deadline_revised`. Every reader — the SLA timers, the board, the indicators — takes
/// its deadlines from here, so a deadline never changes because reference data changed
/// after it was written: it changes only by another recorded clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepDeadlines {
    pub step: SlaStep,
    /// When the step's clock started.
    pub started_at: DateTime<Utc>,
    /// The policy the limit comes from.
    pub policy: String,
    /// The limit of this run of the step, fixed when it started; `None` when the policy
    /// does not time the step (then there is no deadline).
    pub limit: Option<TimeLimit>,
    /// Extensions granted to this run, in order, each counted on from where the one before
    /// ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<TimeLimit>,
    /// How the step's time is counted (its limit's unit decides).
    pub measure: SlaClock,
    /// The share of the limit at which the warning falls due, in percent.
    #[schemars(range(min = 1, max = 99))]
    pub warning_percent: u8,
    /// When the warning falls due; `None` while suspended before then, or when untimed.
    pub warning_at: Option<DateTime<Utc>>,
    /// When the limit runs out; `None` while suspended before then, or when untimed.
    pub deadline: Option<DateTime<Utc>>,
    /// The rungs of the step's escalation ladder, lowest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationRung>,
    /// While the case is suspended: since when (the clock stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_since: Option<DateTime<Utc>>,
    /// The time allowed, limit and extensions together, in the step's measure, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_seconds: Option<i64>,
    /// While suspended: the budget left, in seconds of the step's measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<i64>,
    /// Whether an instant of this clock lies past the calendar's published holidays, so it
    /// was counted on the weekly hours alone and will be revised when the next schedule is
    /// published.
    pub provisional: bool,
    pub calendar: ClockCalendar,
}

/// The running step's deadlines computed again under newer reference data (the next
/// year's holiday schedule published, a calendar corrected): the old and the new, and why.
/// History is never rewritten: the earlier clock stays in the log, this one is in force
/// from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineRevised {
    pub reason: String,
    pub previous_deadline: Option<DateTime<Utc>>,
    pub previous_warning_at: Option<DateTime<Utc>>,
    pub clock: StepDeadlines,
}
