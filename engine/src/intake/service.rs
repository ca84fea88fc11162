//! Processes one intake message end to end, whatever transport it came on.
//!
//! Either the message becomes (or, retried, already was) a case — or, for an evaluation, the
//! evaluation of its case — or it is refused and kept in the rejected store with its original
//! bytes, headers and the reason. Nothing in between: a refused message writes no event.

use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info, warn};
use wangge_schemas::intake::{EvaluationV1, IntakeReply};

use crate::app::{CaseService, CommandError};
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::intake::evaluation::{evaluate, EvaluationRefusal};
use crate::intake::identity::{may_evaluate, may_report};
use crate::intake::rejected::{RejectedStore, Rejection};
use crate::intake::validate::{
    check_intake, CheckedIntake, ClaimedTimeBounds, ReferenceData, ValidIntake,
};
use crate::intake::INTAKE_SUBJECT_PREFIX;
use crate::log::EventLog;
use crate::nats::{IdentityPolicy, IdentityRefusal};
use crate::residents::{KeyStoreError, ResidentKeys};

pub struct IntakeService<L, R> {
    cases: Arc<CaseService<L>>,
    rejected: R,
    /// The live grid; each message is checked against one snapshot of it.
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    clock_bounds: ClaimedTimeBounds,
    identity: IdentityPolicy,
    /// Seals residents' contact details before a report is written; without it, a report's
    /// contact details are left out of the event (never written in plain text).
    resident_keys: Option<Arc<ResidentKeys>>,
}

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl<L: EventLog, R: RejectedStore> IntakeService<L, R> {
    pub fn new(
        cases: Arc<CaseService<L>>,
        rejected: R,
        grid: impl Into<SharedGrid>,
        categories: Arc<CategoryCatalogue>,
    ) -> Self {
        Self {
            cases,
            rejected,
            grid: grid.into(),
            categories,
            clock_bounds: ClaimedTimeBounds::default(),
            identity: IdentityPolicy::Claimed,
            resident_keys: None,
        }
    }

    /// Where a sender's identity comes from: under [`IdentityPolicy::Proven`] the event's
    /// source is the system NATS authenticated ([`super::identity`]); by default the message
    /// names it.
    pub fn with_identity(mut self, identity: IdentityPolicy) -> Self {
        self.identity = identity;
        self
    }

    /// Seals each reporting resident's contact details under their own data key.
    pub fn with_resident_keys(mut self, keys: Arc<ResidentKeys>) -> Self {
        self.resident_keys = Some(keys);
        self
    }

    /// How far a sender's claimed time may stray (default: 5 minutes ahead refused, a day
    /// behind flagged).
    pub fn with_clock_bounds(mut self, bounds: ClaimedTimeBounds) -> Self {
        self.clock_bounds = bounds;
        self
    }

    pub fn rejected_store(&self) -> &R {
        &self.rejected
    }

    pub fn cases(&self) -> &Arc<CaseService<L>> {
        &self.cases
    }

    /// Handles one message and returns the reply for its sender.
    pub async fn process(&self, message: IncomingMessage) -> IntakeReply {
        let subject_kind = message
            .subject
            .strip_prefix(INTAKE_SUBJECT_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|kind| !kind.is_empty());
        let checked = {
            let grid = self.grid.load();
            let reference = ReferenceData {
                grid: &grid,
                categories: &self.categories,
                now: self.cases.clock().now(),
                clock_bounds: self.clock_bounds,
            };
            check_intake(subject_kind, &message.payload, reference)
        };
        let sender = match self.identity.sender(&message.headers) {
            Ok(sender) => sender,
            Err(refusal) => return self.refuse_sender(message, refusal).await,
        };
        match checked {
            Ok(CheckedIntake::Report(valid)) => match may_report(&sender, &valid.message) {
                Ok(()) => self.open_case(message, *valid).await,
                Err(refusal) => self.refuse_sender(message, refusal).await,
            },
            Ok(CheckedIntake::Evaluation(evaluation)) => match may_evaluate(&sender, &evaluation) {
                Ok(system) => {
                    self.record_evaluation(message, &evaluation, system.as_deref())
                        .await
                }
                Err(refusal) => self.refuse_sender(message, refusal).await,
            },
            Err(rejection) => {
                self.refuse(
                    message,
                    rejection.code.as_str(),
                    rejection.field,
                    rejection.reason,
                )
                .await
            }
        }
    }

    /// A report, patrol finding or service request: its case is opened (or, retried, found).
    async fn open_case(&self, message: IncomingMessage, mut valid: ValidIntake) -> IntakeReply {
        if let Err(error) = self.seal_contact(&mut valid).await {
            warn!(%error, "a reporter's contact could not be sealed");
            return self
                .refuse(message, "key_store_unavailable", None, error.to_string())
                .await;
        }
        match self.cases.handle(valid.request).await {
            Ok(outcome) => {
                info!(case_id = %outcome.case_id, sequence = outcome.sequence, duplicate = outcome.duplicate, kind = valid.message.kind().as_str(), "intake accepted");
                IntakeReply::Accepted {
                    case_id: outcome.case_id,
                    sequence: outcome.sequence,
                    duplicate: outcome.duplicate,
                }
            }
            // The domain refused (e.g. the derived case exists with another origin) or the
            // log failed: either way the message is kept so an operator can replay it.
            Err(error) => {
                let field = match &error {
                    CommandError::Domain(crate::domain::DomainError::InvalidField {
                        field,
                        ..
                    }) => Some((*field).to_owned()),
                    _ => None,
                };
                self.refuse(message, error.code(), field, error.to_string())
                    .await
            }
        }
    }

    /// The seam between the pure check and the log: the checked request holds the
    /// resident's id only, and the contact the sender gave goes in sealed, or not at all.
    async fn seal_contact(&self, valid: &mut ValidIntake) -> Result<(), KeyStoreError> {
        let Some((system, resident_id, contact)) = valid.reporter_contact() else {
            return Ok(());
        };
        let Some(keys) = &self.resident_keys else {
            debug!("no resident key store: the reporter's contact details are not kept");
            return Ok(());
        };
        let sealed = keys
            .seal_contact(system, resident_id, valid.request.case_id, &contact)
            .await?;
        valid.seal_reporter_contact(sealed);
        Ok(())
    }

    /// An evaluation: recorded on its case (or, retried, found there), or refused by the
    /// case's rules.
    async fn record_evaluation(
        &self,
        message: IncomingMessage,
        evaluation: &EvaluationV1,
        proven_system: Option<&str>,
    ) -> IntakeReply {
        match evaluate(&self.cases, evaluation, proven_system).await {
            Ok(outcome) => {
                info!(
                    case_id = %outcome.case_id,
                    sequence = outcome.sequence,
                    duplicate = outcome.duplicate,
                    kind = "evaluation",
                    satisfaction = evaluation.satisfaction.score(),
                    resolved = ?evaluation.resolved,
                    channel = ?evaluation.channel,
                    "intake accepted"
                );
                IntakeReply::Accepted {
                    case_id: outcome.case_id,
                    sequence: outcome.sequence,
                    duplicate: outcome.duplicate,
                }
            }
            Err(EvaluationRefusal::Rule(rejection)) => {
                self.refuse(
                    message,
                    rejection.code.as_str(),
                    rejection.field,
                    rejection.reason,
                )
                .await
            }
            // Kept like any refusal, so the operator can replay it once the engine is well.
            Err(EvaluationRefusal::Engine(error)) => {
                self.refuse(message, error.code(), None, error.to_string())
                    .await
            }
        }
    }

    /// A sender NATS did not prove, or one that may not send this message: refused and kept
    /// (the kept headers hold `Nats-Request-Info`, so the operator sees who it was).
    async fn refuse_sender(
        &self,
        message: IncomingMessage,
        refusal: IdentityRefusal,
    ) -> IntakeReply {
        let field = refusal.field.map(str::to_owned);
        self.refuse(message, refusal.code, field, refusal.reason)
            .await
    }

    async fn refuse(
        &self,
        message: IncomingMessage,
        code: &str,
        field: Option<String>,
        reason: String,
    ) -> IntakeReply {
        // The subject names the kind, which the body may not (it may not even be JSON).
        let subject = message.subject.clone();
        let rejection = Rejection {
            subject: message.subject,
            headers: message.headers,
            payload: message.payload,
            code: code.to_owned(),
            field: field.clone(),
            reason: reason.clone(),
            rejected_at: self.cases.clock().now(),
        };
        let rejected_id = match self.rejected.keep(rejection).await {
            Ok(id) => Some(id),
            // Over its sender's budget: counted and logged by the throttle.
            Err(crate::intake::rejected::RejectedStoreError::NotKept(_)) => None,
            Err(error) => {
                warn!(%error, code, "could not keep a rejected message");
                None
            }
        };
        info!(
            code,
            field = field.as_deref().unwrap_or(""),
            rejected_id,
            subject,
            "intake rejected"
        );
        IntakeReply::Rejected {
            code: code.to_owned(),
            field,
            reason,
            rejected_id,
        }
    }
}
