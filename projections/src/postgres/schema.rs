//! The schema of the read models: migrations (refinery, SQL files under
//! `projections/migrations/`, embedded in the binary) and which tables belong to which
//! projection.

use tokio_postgres::Config;
use tracing::info;

use super::pool::{dedicated, query_error};
use super::PostgresError;
use crate::fold::audit::AuditProjection;
use crate::fold::cases::CasesProjection;
use crate::fold::indicators::IndicatorsProjection;
use crate::fold::patrols::PatrolsProjection;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory-lock class of the schema migrations (one holder at a time across instances).
const MIGRATION_LOCK: (i32, i32) = (0x5747_0000, 0);

/// Waits until a read replica has replayed the latest schema this build knows (the primary
/// is migrated by the engine that runs the projections; the replica follows within its
/// lag). A replica still behind after `wait` is an error that says which versions.
pub async fn wait_for_replica_schema(
    config: &Config,
    wait: std::time::Duration,
) -> Result<(), PostgresError> {
    let wanted = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|migration| migration.version())
        .max()
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + wait;
    loop {
        // The replica may not have replayed the database's creation yet: no connection is
        // no schema, for as long as we wait.
        let (found, unreachable) = match dedicated(config).await {
            Ok((client, driver)) => {
                let found: Option<i32> = client
                    .query_opt(
                        // Fails while the table is not there yet: version 0.
                        "SELECT max(version) FROM read_model_migrations",
                        &[],
                    )
                    .await
                    .ok()
                    .flatten()
                    .and_then(|row| row.get(0));
                drop(client);
                driver.await.ok();
                (found.unwrap_or(0), None)
            }
            Err(error) => (0, Some(error)),
        };
        if i64::from(found) >= i64::from(wanted) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let unreachable = unreachable
                .map(|error| format!(" (the replica refused a connection: {error})"))
                .unwrap_or_default();
            return Err(PostgresError::Migration(format!(
                "the read replica's schema is at version {found}, this build needs {wanted}: \
                 start an engine with --postgres-url on the primary first (it migrates), and \
                 check that the replica is replaying the primary{unreachable}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Brings the schema up to date. Instances starting together take turns: the migrations
/// run under an advisory lock.
pub async fn migrate(config: &Config) -> Result<(), PostgresError> {
    migrate_to(config, None).await
}

/// Brings the schema up to migration `version` (`None`: the latest). Tests use it to build
/// the read models of an earlier release and upgrade them.
pub async fn migrate_to(config: &Config, version: Option<u16>) -> Result<(), PostgresError> {
    let target = version.map_or(refinery::Target::Latest, |version| {
        refinery::Target::Version(version.into())
    });
    let (mut client, driver) = dedicated(config).await?;
    client
        .execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
        )
        .await
        .map_err(query_error)?;
    let report = embedded::migrations::runner()
        .set_target(target)
        .set_migration_table_name("read_model_migrations")
        .run_async(&mut client)
        .await
        .map_err(|e| PostgresError::Migration(e.to_string()));
    client
        .execute(
            "SELECT pg_advisory_unlock($1, $2)",
            &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
        )
        .await
        .ok();
    drop(client);
    driver.await.ok();
    let report = report?;
    for migration in report.applied_migrations() {
        info!(migration = %migration, "read-model migration applied");
    }
    Ok(())
}

/// The tables a projection owns (all written in its transactions, all swapped by its
/// rebuild).
pub fn tables_of(projection: &str) -> Option<&'static [&'static str]> {
    match projection {
        CasesProjection::NAME => Some(&["cases", "sla_board"]),
        AuditProjection::NAME => Some(&["audit_trails", "audit_heads"]),
        IndicatorsProjection::NAME => Some(&[
            "indicator_cases",
            "indicator_daily",
            "indicator_durations",
            "indicator_daily_by_community",
            "indicator_daily_by_district",
            "indicator_durations_by_district",
            "indicator_monthly_by_cell",
            "indicator_monthly_by_community",
            "indicator_durations_monthly_by_community",
            "indicator_monthly_by_district",
            "indicator_durations_monthly_by_district",
        ]),
        PatrolsProjection::NAME => Some(&["patrol_coverage"]),
        _ => None,
    }
}

/// Every read-model table, in the order of the projections.
pub fn all_tables() -> Vec<&'static str> {
    crate::fold::PROJECTION_NAMES
        .iter()
        .flat_map(|name| tables_of(name).unwrap_or(&[]).iter().copied())
        .collect()
}

/// The suffix of a table being rebuilt beside the live one.
pub const SHADOW_SUFFIX: &str = "_rebuild";

/// The checkpoint row of a projection's rebuild.
pub fn shadow_checkpoint(projection: &str) -> String {
    format!("{projection}{SHADOW_SUFFIX}")
}
