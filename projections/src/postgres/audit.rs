//! Reading stored audit trails back to verify them (`wangge audit verify`): which cases have
//! a trail or a chain head, and what the hash chain and the seals show of each.

use wangge_schemas::CaseId;

use super::PostgresReadModels;
use crate::answer::verify_case_trail;
use crate::fold::audit::{AuditProblem, SealPolicy};
use crate::query::ReadError;

impl PostgresReadModels {
    /// Every case with a stored trail entry or a chain head, in case id order.
    pub async fn audited_cases(&self) -> Result<Vec<CaseId>, ReadError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT case_id FROM audit_heads UNION SELECT case_id FROM audit_trails \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| ReadError::Unavailable(super::pool::describe(&e)))?;
        Ok(rows.iter().map(|row| CaseId(row.get(0))).collect())
    }

    /// Verifies the stored trails of these cases against their chains and heads, and every
    /// entry's seal against `seals`: every problem found, by case and sequence. A case with
    /// neither a trail nor a head has no problem (and nothing to verify).
    pub async fn verify_audit(
        &self,
        cases: &[CaseId],
        seals: &SealPolicy,
    ) -> Result<Vec<AuditProblem>, ReadError> {
        let trails = self.audit_records(cases).await?;
        Ok(trails
            .into_iter()
            .flat_map(|(case_id, (records, head))| {
                verify_case_trail(case_id, &records, head.as_ref(), Some(seals))
            })
            .collect())
    }
}
