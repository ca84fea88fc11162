//! `wangge audit verify [CASE]`: reads the stored audit trails back from PostgreSQL and
//! checks every hash chain and every entry's seal against the keyring of the engines' public
//! keys (`--seal-public-keys`); prints each entry found altered, removed, inserted, forged
//! (no seal after a sealed commit, an unknown key, a bad signature, a broken link) or
//! unsealed (before any sealed commit of its case: written before sealing, accepted below
//! `--allow-unsealed-before`), naming the case, the sequence and the event, and exits
//! non-zero when there is any.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use wangge_schemas::CaseId;

use crate::seal::KeyringArgs;
use crate::{PostgresArgs, ReferenceArgs};
use wangge_engine::domain::fold::audit::AuditProblemKind;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    postgres: PostgresArgs,
    #[command(flatten)]
    reference: ReferenceArgs,
    #[command(flatten)]
    seals: KeyringArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Verify one case's trail, or every case's.
    Verify { case_id: Option<CaseId> },
}

/// Cases verified per query.
const CHUNK: usize = 500;

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    // The keyring first: without it no seal can be checked, and nothing is verified.
    let policy = args.seals.policy()?;
    tracing::info!(keys = policy.keyring.len(), "seal keyring read");
    let models = args
        .postgres
        .connect(args.reference.fold_context()?)
        .await?;
    let Action::Verify { case_id } = args.action;
    let (cases, problems) = match case_id {
        Some(case_id) => {
            let problems = models.verify_audit(&[case_id], &policy).await?;
            if problems.is_empty() && models.audit_records(&[case_id]).await?.is_empty() {
                eprintln!("no audit trail for case {case_id}");
                return Ok(ExitCode::from(2));
            }
            (1, problems)
        }
        None => {
            let cases = models.audited_cases().await?;
            let bar = ProgressBar::new(cases.len() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "verifying audit trails [{elapsed_precise}] {wide_bar} {pos}/{len} cases, {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut problems = Vec::new();
            for chunk in cases.chunks(CHUNK) {
                let found = models.verify_audit(chunk, &policy).await?;
                for problem in &found {
                    bar.suspend(|| println!("{problem}"));
                }
                problems.extend(found);
                bar.inc(chunk.len() as u64);
                bar.set_message(format!("{} problems", problems.len()));
            }
            bar.finish_and_clear();
            (cases.len(), problems)
        }
    };
    if case_id.is_some() {
        for problem in &problems {
            println!("{problem}");
        }
    }
    if problems.is_empty() {
        eprintln!("{cases} audit trails verified: intact");
        Ok(ExitCode::SUCCESS)
    } else {
        let count = |kind: AuditProblemKind| problems.iter().filter(|p| p.kind == kind).count();
        eprintln!(
            "{cases} audit trails verified: {} problems found ({} forged, {} unsealed (written before sealing?))",
            problems.len(),
            count(AuditProblemKind::Forged),
            count(AuditProblemKind::Unsealed),
        );
        Ok(ExitCode::FAILURE)
    }
}
