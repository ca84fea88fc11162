//! Residents' contact details on the read side: masked in everything served, revealed in
//! full only to whoever needs them, and every reveal recorded.
//!
//! The read models hold contacts sealed (the events' ciphertext, in case states and audit
//! payloads); nothing is decrypted when folding. At read time:
//! - [`MaskedReadModels`] wraps any [`ReadModels`] and replaces each sealed (or legacy
//!   plain) contact in the audit payloads it serves by its masked form (`张*`,
//!   `138****1234`), `已删除` for an erased resident, or `[encrypted]` when this process has
//!   no key store (no KEK). The trail is verified before masking, so `problems` still
//!   speak for the stored chain.
//! - [`ContactReveals`] reveals a case's reporter contact in full when [`may_reveal`]
//!   allows it, and records every request, allowed or refused, in PostgreSQL
//!   (`contact_reveals`, migration V8). The HTTP route is wired by whoever owns HTTP
//!   authentication; this takes the requester's grid id and role as plain values.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use wangge_engine::grid::GridDirectory;
use wangge_engine::residents::{ContactOpener, MaskedContact, Opened};
use wangge_engine::tasks::commands::SupervisorDirectory;
use wangge_schemas::{CaseId, ResidentContact, SealedContact};

use crate::fold::CaseSummary;
use crate::query::{
    AuditTrail, BoardQuery, BoardRow, CaseQuery, CaseView, Checkpoint, InboxTask, IndicatorQuery,
    IndicatorRow, OverdueCase, OverdueQuery, Page, PatrolQuery, PatrolReport, Progress, Ranking,
    RankingQuery, ReadError, ReadModels,
};
use crate::PostgresReadModels;

/// Shown for a contact whose resident was erased.
pub const ERASED: &str = "已删除";
/// Shown for a sealed contact when this process cannot open it (no KEK configured).
pub const ENCRYPTED: &str = "[encrypted]";
/// Shown when the key store could not be read just now.
pub const UNREADABLE: &str = "[unreadable]";

/// A resident's contact in a served payload: masked, or why not.
async fn masked_contact(
    opener: Option<&dyn ContactOpener>,
    case_id: CaseId,
    sealed: &SealedContact,
) -> Value {
    let Some(opener) = opener else {
        return Value::from(ENCRYPTED);
    };
    match opener.open_contact(case_id, sealed).await {
        Ok(Opened::Plain(contact)) => masked_value(&contact),
        Ok(Opened::Erased | Opened::Expired) => Value::from(ERASED),
        Err(error) => {
            warn!(%error, %case_id, "a sealed contact could not be opened for masking");
            Value::from(UNREADABLE)
        }
    }
}

fn masked_value(contact: &ResidentContact) -> Value {
    serde_json::to_value(MaskedContact::from(contact)).unwrap_or(Value::Null)
}

/// Masks the resident in one event payload in place (a `case.reported`'s
/// `details.resident`); other payloads are left as they are.
pub async fn mask_payload(
    opener: Option<&dyn ContactOpener>,
    case_id: CaseId,
    payload: &mut Value,
) {
    let Some(resident) = payload
        .get_mut("details")
        .and_then(|details| details.get_mut("resident"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(sealed) = resident.get("contact") {
        let masked = match serde_json::from_value::<SealedContact>(sealed.clone()) {
            Ok(sealed) => masked_contact(opener, case_id, &sealed).await,
            Err(_) => Value::from(UNREADABLE),
        };
        resident.insert("contact".to_owned(), masked);
    }
    if let Some(legacy) = resident.get("legacy_contact") {
        let masked = match serde_json::from_value::<ResidentContact>(legacy.clone()) {
            Ok(contact) => masked_value(&contact),
            Err(_) => Value::from(UNREADABLE),
        };
        resident.insert("legacy_contact".to_owned(), masked);
    }
}

/// Any read models, with residents' contacts masked in what they serve.
pub struct MaskedReadModels {
    inner: Arc<dyn ReadModels>,
    opener: Option<Arc<dyn ContactOpener>>,
}

impl MaskedReadModels {
    /// `opener`: the key store, when this process has the KEK; without it sealed contacts
    /// show as `[encrypted]`.
    pub fn new(inner: Arc<dyn ReadModels>, opener: Option<Arc<dyn ContactOpener>>) -> Arc<Self> {
        Arc::new(Self { inner, opener })
    }
}

#[async_trait::async_trait]
impl ReadModels for MaskedReadModels {
    async fn cases(&self, query: &CaseQuery) -> Result<Page<CaseView>, ReadError> {
        self.inner.cases(query).await
    }
    async fn case(&self, case_id: CaseId) -> Result<Option<CaseView>, ReadError> {
        self.inner.case(case_id).await
    }
    async fn audit_trail(&self, case_id: CaseId) -> Result<Option<AuditTrail>, ReadError> {
        let Some(mut trail) = self.inner.audit_trail(case_id).await? else {
            return Ok(None);
        };
        for entry in &mut trail.entries {
            mask_payload(self.opener.as_deref(), case_id, &mut entry.entry.payload).await;
        }
        Ok(Some(trail))
    }
    async fn sla_board(&self, query: &BoardQuery) -> Result<Vec<BoardRow>, ReadError> {
        self.inner.sla_board(query).await
    }
    async fn overdue(
        &self,
        query: &OverdueQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<OverdueCase>, ReadError> {
        self.inner.overdue(query, now).await
    }
    async fn indicators(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorRow>, ReadError> {
        self.inner.indicators(query).await
    }
    async fn ranking(&self, query: &RankingQuery) -> Result<Ranking, ReadError> {
        self.inner.ranking(query).await
    }
    async fn patrol_coverage(&self, query: &PatrolQuery) -> Result<PatrolReport, ReadError> {
        self.inner.patrol_coverage(query).await
    }
    async fn inbox(&self, worker_id: &str) -> Result<Vec<InboxTask>, ReadError> {
        self.inner.inbox(worker_id).await
    }
    async fn provisional_open_cases(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        self.inner.provisional_open_cases().await
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        self.inner.checkpoints().await
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Progress> {
        self.inner.subscribe()
    }
}

// ---------------------------------------------------------------------------------------
// Reveal
// ---------------------------------------------------------------------------------------

/// The role a requester asks in, as the caller's authentication proved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequesterRole {
    GridWorker,
    Supervisor,
    Auditor,
    /// Anyone else (another system, a district's viewer): never allowed.
    Other,
}

impl RequesterRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GridWorker => "grid_worker",
            Self::Supervisor => "supervisor",
            Self::Auditor => "auditor",
            Self::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::GridWorker,
            Self::Supervisor,
            Self::Auditor,
            Self::Other,
        ]
        .into_iter()
        .find(|role| role.as_str() == text)
    }
}

/// Who may see a case's reporter contact in full: the case's assigned grid worker while
/// the case is open (to call the resident back); a supervisor of the case's cell or of one
/// above it; an auditor. Everyone else sees it masked. `Err` says why not.
pub fn may_reveal(
    case: &CaseSummary,
    grid: &GridDirectory,
    requester: &str,
    role: RequesterRole,
) -> Result<(), String> {
    match role {
        RequesterRole::Auditor => Ok(()),
        RequesterRole::GridWorker => {
            if case.assignee.as_deref() != Some(requester) {
                return Err(format!(
                    "`{requester}` is not the grid worker assigned to case {}",
                    case.case_id
                ));
            }
            if case.status.is_terminal() {
                return Err(format!(
                    "case {} is {}: its assigned worker no longer needs the reporter's contact",
                    case.case_id,
                    case.status.as_str()
                ));
            }
            Ok(())
        }
        RequesterRole::Supervisor => {
            let cells = [case.cell.as_str(), case.location.building.as_str()];
            if cells
                .iter()
                .any(|cell| !cell.is_empty() && grid.supervises(requester, cell))
            {
                Ok(())
            } else {
                Err(format!(
                    "`{requester}` supervises neither cell {} nor any cell above it",
                    case.cell
                ))
            }
        }
        RequesterRole::Other => Err("only the assigned worker, a supervisor of the case's cell or an auditor may see a reporter's contact".to_owned()),
    }
}

/// A request to reveal a case's reporter contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealRequest {
    pub case_id: CaseId,
    /// The requester's grid id.
    pub requester: String,
    pub role: RequesterRole,
    /// Why they need it (kept with the record).
    pub reason: String,
}

/// What a reveal gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevealAnswer {
    Revealed(ResidentContact),
    /// Written before contacts were sealed: shown in full, and named as such.
    Legacy(ResidentContact),
    Refused(String),
    /// The resident was erased: nothing can be revealed, ever.
    Erased,
    /// The case's report carries no contact.
    NoContact,
    /// This process has no key store (no KEK) to open the contact with.
    NoKeyStore,
}

impl RevealAnswer {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Revealed(_) => "revealed",
            Self::Legacy(_) => "legacy",
            Self::Refused(_) => "refused",
            Self::Erased => "erased",
            Self::NoContact => "no_contact",
            Self::NoKeyStore => "no_key_store",
        }
    }
}

/// One recorded reveal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealRecord {
    pub reveal_id: i64,
    pub requested_at: DateTime<Utc>,
    pub requester: String,
    pub role: String,
    pub case_id: CaseId,
    pub resident_key: Option<String>,
    pub reason: String,
    pub allowed: bool,
    pub outcome: String,
    pub refusal: Option<String>,
}

/// Which reveals to list (both filters optional), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevealQuery {
    pub case_id: Option<CaseId>,
    pub requester: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum RevealError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("no case {0} in the read models")]
    UnknownCase(CaseId),
}

/// Reveals reporters' contacts to those allowed, and records every request.
pub struct ContactReveals {
    models: Arc<PostgresReadModels>,
    opener: Option<Arc<dyn ContactOpener>>,
}

impl ContactReveals {
    pub fn new(models: Arc<PostgresReadModels>, opener: Option<Arc<dyn ContactOpener>>) -> Self {
        Self { models, opener }
    }

    /// Reveals the reporter contact of `request.case_id` if [`may_reveal`] allows it; the
    /// request is recorded whatever the answer.
    pub async fn reveal(
        &self,
        request: &RevealRequest,
        now: DateTime<Utc>,
    ) -> Result<RevealAnswer, RevealError> {
        if request.reason.trim().chars().count() < 4 {
            return Err(ReadError::invalid(
                "reason",
                "say why the contact is needed (at least 4 characters)",
            )
            .into());
        }
        if request.requester.trim().is_empty() {
            return Err(ReadError::invalid("requester", "must not be empty").into());
        }
        let case = self
            .models
            .case(request.case_id)
            .await?
            .ok_or(RevealError::UnknownCase(request.case_id))?;
        let (sealed, legacy) = self.reporter_contact(request.case_id).await?;
        let decision = {
            let grid = self.models.context().grid();
            may_reveal(&case.summary, &grid, &request.requester, request.role)
        };
        let answer = match decision {
            Err(refusal) => RevealAnswer::Refused(refusal),
            Ok(()) => match (&sealed, legacy) {
                (Some(sealed), _) => match &self.opener {
                    None => RevealAnswer::NoKeyStore,
                    Some(opener) => match opener
                        .open_contact(request.case_id, sealed)
                        .await
                        .map_err(|e| ReadError::Unavailable(e.to_string()))?
                    {
                        Opened::Plain(contact) => RevealAnswer::Revealed(contact),
                        Opened::Erased | Opened::Expired => RevealAnswer::Erased,
                    },
                },
                (None, Some(legacy)) => RevealAnswer::Legacy(legacy),
                (None, None) => RevealAnswer::NoContact,
            },
        };
        let refusal = match &answer {
            RevealAnswer::Refused(why) => Some(why.clone()),
            _ => None,
        };
        let resident_key = sealed.as_ref().map(|s| s.key_id.clone());
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO contact_reveals (requested_at, requester, role, case_id, resident_key, reason, allowed, outcome, refusal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &now,
                    &request.requester,
                    &request.role.as_str(),
                    &request.case_id.0,
                    &resident_key,
                    &request.reason,
                    &refusal.is_none(),
                    &answer.outcome(),
                    &refusal,
                ],
            )
            .await
            .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        info!(
            case_id = %request.case_id,
            requester = %request.requester,
            role = request.role.as_str(),
            resident_key = resident_key.as_deref().unwrap_or(""),
            outcome = answer.outcome(),
            "reporter contact reveal requested"
        );
        Ok(answer)
    }

    /// Recorded reveals, newest first.
    pub async fn reveals(&self, query: &RevealQuery) -> Result<Vec<RevealRecord>, ReadError> {
        let limit = i64::try_from(query.limit.unwrap_or(100).clamp(1, 10_000)).unwrap_or(100);
        let case = query.case_id.map(|c| c.0);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT reveal_id, requested_at, requester, role, case_id, resident_key, reason, allowed, outcome, refusal \
                 FROM contact_reveals WHERE ($1::uuid IS NULL OR case_id = $1) AND ($2::text IS NULL OR requester = $2) \
                 ORDER BY reveal_id DESC LIMIT $3",
                &[&case, &query.requester, &limit],
            )
            .await
            .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok(rows
            .iter()
            .map(|row| RevealRecord {
                reveal_id: row.get(0),
                requested_at: row.get(1),
                requester: row.get(2),
                role: row.get(3),
                case_id: CaseId(row.get(4)),
                resident_key: row.get(5),
                reason: row.get(6),
                allowed: row.get(7),
                outcome: row.get(8),
                refusal: row.get(9),
            })
            .collect())
    }

    /// How many reports in the audit trail name `resident_id` with a plain contact written
    /// before contacts were sealed: what an erasure cannot reach without rewriting the
    /// stream. (The trail does not keep the sending system, so a resident id two systems
    /// share is counted for both.)
    ///
    /// Reads every stored trail (they are compressed, so SQL cannot look inside): an
    /// operator's erasure, not a dashboard query.
    pub async fn legacy_contact_reports(&self, resident_id: &str) -> Result<i64, ReadError> {
        use futures::TryStreamExt;
        let unavailable = |e: tokio_postgres::Error| ReadError::Unavailable(e.to_string());
        let client = self.client().await?;
        let rows = client
            .query_raw(
                "SELECT case_id, entries FROM audit_trails",
                std::iter::empty::<&str>(),
            )
            .await
            .map_err(unavailable)?;
        futures::pin_mut!(rows);
        let mut count = 0;
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            let trail = crate::compact::trail::decode(CaseId(row.get(0)), row.get(1));
            count += trail
                .records
                .iter()
                .filter(|r| r.event_type == "case.reported" && r.actor_id == resident_id)
                .filter(|r| {
                    serde_json::from_str::<Value>(&r.entry_json).is_ok_and(|entry| {
                        entry
                            .pointer("/payload/details/resident/legacy_contact")
                            .is_some()
                    })
                })
                .count() as i64;
        }
        Ok(count)
    }

    /// The sealed (or legacy plain) contact of the case's report, from its audit trail.
    async fn reporter_contact(
        &self,
        case_id: CaseId,
    ) -> Result<(Option<SealedContact>, Option<ResidentContact>), ReadError> {
        let Some(trail) = self.models.audit_trail(case_id).await? else {
            return Ok((None, None));
        };
        let Some(resident) = trail
            .entries
            .iter()
            .find(|e| e.entry.event_type == "case.reported")
            .and_then(|e| e.entry.payload.get("details")?.get("resident"))
        else {
            return Ok((None, None));
        };
        let read = |field: &str| resident.get(field).cloned();
        Ok((
            read("contact").and_then(|v| serde_json::from_value(v).ok()),
            read("legacy_contact").and_then(|v| serde_json::from_value(v).ok()),
        ))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadError> {
        self.models
            .pool()
            .get()
            .await
            .map_err(|e| ReadError::Unavailable(e.to_string()))
    }
}
