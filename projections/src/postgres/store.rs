//! The projection stores in PostgreSQL: the states of the cases in a batch, and each batch's
//! changes written with the checkpoint in one transaction.
//!
//! Every commit starts by moving the projection's checkpoint row from the position the batch
//! started at (`UPDATE … WHERE position = from`). That row lock orders concurrent committers
//! of one projection; the second finds the position moved and gets
//! [`StoreError::CheckpointMoved`] with nothing written. Rows go in as arrays, one
//! multi-row statement per table (`INSERT … SELECT FROM UNNEST(…) ON CONFLICT …`), so a
//! batch of thousands of commits costs a handful of round trips. Counters are upserted as
//! deltas, and rows whose counters all came to zero are deleted, so the tables hold exactly
//! what the memory store holds, however the log was cut into batches.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wangge_engine::log::LogPosition;
use wangge_schemas::{CaseId, Tier};

use super::pool::describe;
use super::rollup::{self, IndicatorLevel};
use super::text::{pg_text, pg_text_opt};
use crate::compact;
use crate::compact::trail::TrailWrite;
use crate::fold::audit::{AuditChanges, AuditHead, AuditProjection};
use crate::fold::cases::{to_micros, CaseRow, CasesChanges, CasesProjection};
use crate::fold::indicators::{IndicatorCase, IndicatorChanges, IndicatorsProjection};
use crate::fold::patrols::{PatrolChanges, PatrolsProjection};
use crate::fold::summary::name_of;
use crate::fold::Projection;
use crate::query::Progress;
use crate::runner::{ProjectionStore, StoreError};
use std::borrow::Cow;

/// The channel every commit of a live table notifies (payload: a [`Progress`] as JSON).
pub const NOTIFY_CHANNEL: &str = "wangge_projections";

/// One set of read-model tables: the live ones, or a projection's shadow tables while it is
/// rebuilt.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Appended to every table name (`""` for the live tables).
    suffix: &'static str,
    /// The checkpoint row's name, for each projection: the projection's name for the live
    /// tables.
    checkpoint_suffix: &'static str,
    /// Whether commits are announced on [`NOTIFY_CHANNEL`] (live tables only).
    announce: bool,
}

impl PostgresStore {
    pub(crate) fn live(pool: Pool) -> Self {
        Self {
            pool,
            suffix: "",
            checkpoint_suffix: "",
            announce: true,
        }
    }

    pub(crate) fn shadow(pool: Pool) -> Self {
        Self {
            pool,
            suffix: super::schema::SHADOW_SUFFIX,
            checkpoint_suffix: super::schema::SHADOW_SUFFIX,
            announce: false,
        }
    }

    fn table(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    fn checkpoint_name(&self, projection: &str) -> String {
        format!("{projection}{}", self.checkpoint_suffix)
    }

    async fn read_checkpoint(&self, projection: &'static str) -> Result<LogPosition, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT position FROM projection_checkpoints WHERE projection = $1",
                &[&self.checkpoint_name(projection)],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.map_or(0, |row| position_of(row.get(0))))
    }

    /// The compressed `state` column of these cases in `table`, read back.
    async fn read_states<T: serde::de::DeserializeOwned>(
        &self,
        projection: &'static str,
        table: &str,
        column: &str,
        cases: &[CaseId],
    ) -> Result<HashMap<CaseId, T>, StoreError> {
        if cases.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = cases.iter().map(|c| c.0).collect();
        let client = self.pool.get().await.map_err(pool_error)?;
        let sql = format!(
            "SELECT case_id, {column} FROM {} WHERE case_id = ANY($1)",
            self.table(table)
        );
        let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
        let rows = client
            .query(&statement, &[&ids])
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|row| {
                let case_id = CaseId(row.get(0));
                Ok((
                    case_id,
                    compact::decode_state(projection, case_id, row.get(1))?,
                ))
            })
            .collect()
    }

    /// Starts a commit: the transaction, with the checkpoint moved from `from` to `to`.
    async fn begin<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
        projection: &'static str,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<Transaction<'c>, StoreError> {
        let name = self.checkpoint_name(projection);
        let transaction = client.transaction().await.map_err(unavailable)?;
        let statement = transaction
            .prepare_cached(
                "UPDATE projection_checkpoints SET position = $1, recorded_at = $2, updated_at = now() \
                 WHERE projection = $3 AND position = $4",
            )
            .await
            .map_err(unavailable)?;
        let moved = transaction
            .execute(
                &statement,
                &[
                    &db_position(to),
                    &recorded_at.map(to_micros),
                    &name,
                    &db_position(from),
                ],
            )
            .await
            .map_err(unavailable)?;
        if moved == 1 {
            return Ok(transaction);
        }
        let actual = transaction
            .query_opt(
                "SELECT position FROM projection_checkpoints WHERE projection = $1",
                &[&name],
            )
            .await
            .map_err(unavailable)?
            .map_or(0, |row| position_of(row.get(0)));
        Err(StoreError::CheckpointMoved {
            projection,
            expected: from,
            actual,
        })
    }

    /// Announces the commit (delivered when the transaction commits) and commits.
    async fn finish(
        &self,
        transaction: Transaction<'_>,
        projection: &'static str,
        to: LogPosition,
    ) -> Result<(), StoreError> {
        if self.announce {
            let payload = serde_json::to_string(&Progress {
                projection: projection.to_owned(),
                position: to,
            })
            .unwrap_or_default();
            transaction
                .execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &payload])
                .await
                .map_err(unavailable)?;
        }
        transaction.commit().await.map_err(unavailable)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

pub(crate) fn unavailable(error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&error))
}

pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

pub(crate) fn db_position(position: LogPosition) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

pub(crate) fn position_of(value: i64) -> LogPosition {
    u64::try_from(value).unwrap_or(0)
}

/// Runs one statement with array parameters.
async fn execute(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = transaction.prepare_cached(sql).await.map_err(unavailable)?;
    transaction
        .execute(&statement, params)
        .await
        .map_err(unavailable)
}

// ---------------------------------------------------------------------------------------
// cases
// ---------------------------------------------------------------------------------------

/// The columns of a case row besides its state.
struct CaseColumns {
    case_id: Vec<Uuid>,
    reported_at: Vec<Option<DateTime<Utc>>>,
    list_at: Vec<DateTime<Utc>>,
    district: Vec<String>,
    community: Vec<String>,
    building: Vec<String>,
    cell: Vec<String>,
    tier: Vec<Option<String>>,
    status: Vec<&'static str>,
    open: Vec<bool>,
    supervised: Vec<bool>,
    category: Vec<String>,
    intake: Vec<Option<String>>,
    assignee: Vec<Option<String>>,
    light: Vec<Option<&'static str>>,
    step: Vec<Option<String>>,
    deadline: Vec<Option<DateTime<Utc>>>,
    provisional: Vec<bool>,
    state: Vec<Vec<u8>>,
}

impl CaseColumns {
    fn of<'a>(rows: impl ExactSizeIterator<Item = &'a CaseRow>) -> Self {
        let n = rows.len();
        let mut columns = Self {
            case_id: Vec::with_capacity(n),
            reported_at: Vec::with_capacity(n),
            list_at: Vec::with_capacity(n),
            district: Vec::with_capacity(n),
            community: Vec::with_capacity(n),
            building: Vec::with_capacity(n),
            cell: Vec::with_capacity(n),
            tier: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            supervised: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            intake: Vec::with_capacity(n),
            assignee: Vec::with_capacity(n),
            light: Vec::with_capacity(n),
            step: Vec::with_capacity(n),
            deadline: Vec::with_capacity(n),
            provisional: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
        };
        for row in rows {
            let s = &row.summary;
            columns.case_id.push(s.case_id.0);
            columns.reported_at.push(s.reported_at);
            columns
                .list_at
                .push(s.reported_at.unwrap_or(DateTime::UNIX_EPOCH));
            columns
                .district
                .push(pg_text(&s.location.district).into_owned());
            columns
                .community
                .push(pg_text(&s.location.community).into_owned());
            columns
                .building
                .push(pg_text(&s.location.building).into_owned());
            columns.cell.push(pg_text(&s.cell).into_owned());
            columns.tier.push(s.tier.map(|t| name_of(&t)));
            columns.status.push(s.status.as_str());
            columns.open.push(s.is_open());
            columns.supervised.push(s.is_supervised());
            columns
                .category
                .push(pg_text(s.category.as_deref().unwrap_or(&s.reported_category)).into_owned());
            columns.intake.push(s.intake.map(|i| name_of(&i)));
            columns
                .assignee
                .push(pg_text_opt(s.assignee.as_deref()).map(Cow::into_owned));
            columns.light.push(row.sla.light.map(|l| l.as_str()));
            columns.step.push(row.sla.step.map(|step| name_of(&step)));
            columns.deadline.push(row.sla.deadline);
            columns.provisional.push(row.sla.provisional);
            columns.state.push(compact::encode_json(row));
        }
        columns
    }
}

#[async_trait::async_trait]
impl ProjectionStore<CasesProjection> for PostgresStore {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        self.read_checkpoint(CasesProjection::NAME).await
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, CaseRow>, StoreError> {
        self.read_states(CasesProjection::NAME, "cases", "state", cases)
            .await
    }

    async fn commit(
        &self,
        changes: CasesChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        const NAME: &str = CasesProjection::NAME;
        let mut client = self.client().await?;
        let transaction = self.begin(&mut client, NAME, from, to, recorded_at).await?;
        if !changes.rows.is_empty() {
            let c = CaseColumns::of(changes.rows.values());
            let sql = format!(
                "INSERT INTO {} (case_id, reported_at, list_at, district, community, building, cell, \
                 tier, status, open, category, intake, assignee, light, step, deadline, provisional, state, \
                 supervised) \
                 SELECT u.case_id, u.reported_at, u.list_at, u.district, u.community, u.building, \
                 u.cell, u.tier, u.status, u.open, u.category, u.intake, u.assignee, u.light, u.step, \
                 u.deadline, u.provisional, u.state, u.supervised \
                 FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[], $11::text[], $12::text[], \
                 $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::bool[], $18::bytea[], $19::bool[]) \
                 AS u(case_id, reported_at, list_at, district, community, building, cell, tier, status, \
                 open, category, intake, assignee, light, step, deadline, provisional, state, supervised) \
                 ON CONFLICT (case_id) DO UPDATE SET reported_at = EXCLUDED.reported_at, \
                 list_at = EXCLUDED.list_at, district = EXCLUDED.district, \
                 community = EXCLUDED.community, building = EXCLUDED.building, cell = EXCLUDED.cell, \
                 tier = EXCLUDED.tier, status = EXCLUDED.status, open = EXCLUDED.open, \
                 category = EXCLUDED.category, intake = EXCLUDED.intake, \
                 assignee = EXCLUDED.assignee, light = EXCLUDED.light, step = EXCLUDED.step, \
                 deadline = EXCLUDED.deadline, provisional = EXCLUDED.provisional, \
                 state = EXCLUDED.state, supervised = EXCLUDED.supervised",
                self.table("cases")
            );
            execute(
                &transaction,
                &sql,
                &[
                    &c.case_id,
                    &c.reported_at,
                    &c.list_at,
                    &c.district,
                    &c.community,
                    &c.building,
                    &c.cell,
                    &c.tier,
                    &c.status,
                    &c.open,
                    &c.category,
                    &c.intake,
                    &c.assignee,
                    &c.light,
                    &c.step,
                    &c.deadline,
                    &c.provisional,
                    &c.state,
                    &c.supervised,
                ],
            )
            .await?;
        }
        if !changes.board.is_empty() {
            let n = changes.board.len();
            let (mut district, mut community, mut cell, mut tier, mut supervised) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut green, mut yellow, mut red) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (key, delta) in &changes.board {
                district.push(pg_text(&key.district));
                community.push(pg_text(key.community.as_deref().unwrap_or("")));
                cell.push(pg_text(&key.cell));
                tier.push(tier_name(key.tier));
                supervised.push(key.supervised);
                green.push(delta.green);
                yellow.push(delta.yellow);
                red.push(delta.red);
            }
            let board = self.table("sla_board");
            let sql = format!(
                "INSERT INTO {board} AS b (district, community, cell, tier, green, yellow, red, \
                 supervised) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
                 $6::bigint[], $7::bigint[], $8::bool[]) \
                 ON CONFLICT (district, community, cell, tier, supervised) DO UPDATE SET \
                 green = b.green + EXCLUDED.green, yellow = b.yellow + EXCLUDED.yellow, \
                 red = b.red + EXCLUDED.red"
            );
            execute(
                &transaction,
                &sql,
                &[
                    &district,
                    &community,
                    &cell,
                    &tier,
                    &green,
                    &yellow,
                    &red,
                    &supervised,
                ],
            )
            .await?;
            let sql = format!(
                "DELETE FROM {board} b USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::bool[]) AS k(district, community, cell, tier, supervised) \
                 WHERE b.district = k.district AND b.community = k.community AND b.cell = k.cell \
                 AND b.tier = k.tier AND b.supervised = k.supervised \
                 AND b.green = 0 AND b.yellow = 0 AND b.red = 0"
            );
            execute(
                &transaction,
                &sql,
                &[&district, &community, &cell, &tier, &supervised],
            )
            .await?;
        }
        self.finish(transaction, NAME, to).await
    }
}

/// A tier as the tables spell it.
pub(crate) fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Building => "building",
        Tier::Community => "community",
        Tier::District => "district",
    }
}

// ---------------------------------------------------------------------------------------
// audit
// ---------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl ProjectionStore<AuditProjection> for PostgresStore {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        self.read_checkpoint(AuditProjection::NAME).await
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, AuditHead>, StoreError> {
        if cases.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = cases.iter().map(|c| c.0).collect();
        let client = self.client().await?;
        let sql = format!(
            "SELECT case_id, sequence, hash, summary FROM {} WHERE case_id = ANY($1)",
            self.table("audit_heads")
        );
        let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
        let rows = client
            .query(&statement, &[&ids])
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|row| {
                let case_id = CaseId(row.get(0));
                let summary = compact::decode_state(AuditProjection::NAME, case_id, row.get(3))?;
                let head = AuditHead {
                    sequence: position_of(row.get(1)),
                    hash: row.get(2),
                    summary,
                };
                Ok((case_id, head))
            })
            .collect()
    }

    async fn commit(
        &self,
        changes: AuditChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        const NAME: &str = AuditProjection::NAME;
        let mut client = self.client().await?;
        let transaction = self.begin(&mut client, NAME, from, to, recorded_at).await?;
        if !changes.records.is_empty() {
            // A frame per case of the batch's new entries, appended to what the case's trail
            // holds: the chain is written once and never rewritten. The fold enters an event
            // only past the head it read, so a frame never repeats an entry.
            let by_case = compact::trail::by_case(&changes.records);
            let table = self.table("audit_trails");
            // Each case's trail is rewritten whole, one frame holding every entry: compressed
            // as a whole it is far smaller than batch by batch, and the stored bytes are the
            // same however the log was cut into batches (a rebuild writes the same rows).
            let ids: Vec<Uuid> = by_case.keys().map(|case| case.0).collect();
            let sql =
                format!("SELECT case_id, entries FROM {table} WHERE case_id = ANY($1) FOR UPDATE");
            let statement = transaction
                .prepare_cached(&sql)
                .await
                .map_err(unavailable)?;
            let stored: HashMap<CaseId, Vec<u8>> = transaction
                .query(&statement, &[&ids])
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|row| (CaseId(row.get(0)), row.get(1)))
                .collect();
            let (mut whole_case_id, mut whole_trail) = (Vec::new(), Vec::new());
            let (mut append_case_id, mut append_frame) = (Vec::new(), Vec::new());
            for (case, new) in &by_case {
                match compact::trail::write_for(*case, stored.get(case).map(Vec::as_slice), new) {
                    TrailWrite::Whole(trail) => {
                        whole_case_id.push(case.0);
                        whole_trail.push(trail);
                    }
                    TrailWrite::Append(frame) => {
                        append_case_id.push(case.0);
                        append_frame.push(frame);
                    }
                }
            }
            if !whole_case_id.is_empty() {
                let sql = format!(
                    "INSERT INTO {table} (case_id, entries) \
                     SELECT * FROM UNNEST($1::uuid[], $2::bytea[]) \
                     ON CONFLICT (case_id) DO UPDATE SET entries = EXCLUDED.entries"
                );
                execute(&transaction, &sql, &[&whole_case_id, &whole_trail]).await?;
            }
            if !append_case_id.is_empty() {
                let sql = format!(
                    "UPDATE {table} AS t SET entries = t.entries || u.entries \
                     FROM UNNEST($1::uuid[], $2::bytea[]) AS u(case_id, entries) \
                     WHERE t.case_id = u.case_id"
                );
                execute(&transaction, &sql, &[&append_case_id, &append_frame]).await?;
            }
        }
        if !changes.heads.is_empty() {
            let heads = &changes.heads;
            let case_id: Vec<Uuid> = heads.keys().map(|c| c.0).collect();
            let sequence: Vec<i64> = heads.values().map(|h| db_position(h.sequence)).collect();
            let hash: Vec<&str> = heads.values().map(|h| h.hash.as_str()).collect();
            let summary: Vec<Vec<u8>> = heads
                .values()
                .map(|h| compact::encode_json(&h.summary))
                .collect();
            let sql = format!(
                "INSERT INTO {} (case_id, sequence, hash, summary) \
                 SELECT u.case_id, u.sequence, u.hash, u.summary \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::bytea[]) \
                 AS u(case_id, sequence, hash, summary) \
                 ON CONFLICT (case_id) DO UPDATE SET sequence = EXCLUDED.sequence, \
                 hash = EXCLUDED.hash, summary = EXCLUDED.summary",
                self.table("audit_heads")
            );
            execute(&transaction, &sql, &[&case_id, &sequence, &hash, &summary]).await?;
        }
        self.finish(transaction, NAME, to).await
    }
}

// ---------------------------------------------------------------------------------------
// indicators
// ---------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl ProjectionStore<IndicatorsProjection> for PostgresStore {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        self.read_checkpoint(IndicatorsProjection::NAME).await
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, IndicatorCase>, StoreError> {
        self.read_states(
            IndicatorsProjection::NAME,
            "indicator_cases",
            "state",
            cases,
        )
        .await
    }

    async fn commit(
        &self,
        changes: IndicatorChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        const NAME: &str = IndicatorsProjection::NAME;
        let mut client = self.client().await?;
        let transaction = self.begin(&mut client, NAME, from, to, recorded_at).await?;
        if !changes.cases.is_empty() {
            let case_id: Vec<Uuid> = changes.cases.keys().map(|c| c.0).collect();
            let state: Vec<Vec<u8>> = changes.cases.values().map(compact::encode_json).collect();
            let sql = format!(
                "INSERT INTO {} (case_id, state) \
                 SELECT u.case_id, u.state FROM UNNEST($1::uuid[], $2::bytea[]) AS u(case_id, state) \
                 ON CONFLICT (case_id) DO UPDATE SET state = EXCLUDED.state",
                self.table("indicator_cases")
            );
            execute(&transaction, &sql, &[&case_id, &state]).await?;
        }
        if !changes.counts.is_empty() {
            let keys: Vec<_> = changes.counts.keys().collect();
            let day: Vec<_> = keys.iter().map(|k| k.day).collect();
            let district: Vec<Cow<'_, str>> = keys.iter().map(|k| pg_text(&k.district)).collect();
            let community: Vec<Cow<'_, str>> = keys.iter().map(|k| pg_text(&k.community)).collect();
            let cell: Vec<Cow<'_, str>> = keys.iter().map(|k| pg_text(&k.cell)).collect();
            let category: Vec<Cow<'_, str>> = keys.iter().map(|k| pg_text(&k.category)).collect();
            let values: Vec<[i64; rollup::COUNTERS.len()]> =
                changes.counts.values().map(|c| c.values()).collect();
            // One array per counter, in table order.
            let columns: Vec<Vec<i64>> = (0..rollup::COUNTERS.len())
                .map(|n| values.iter().map(|row| row[n]).collect())
                .collect();
            let mut rows: Vec<&(dyn ToSql + Sync)> =
                vec![&day, &district, &community, &cell, &category];
            rows.extend(columns.iter().map(|column| column as &(dyn ToSql + Sync)));
            execute(
                &transaction,
                &rollup::upsert_daily(IndicatorLevel::Cell, &self.table("indicator_daily")),
                &rows,
            )
            .await?;
            for level in IndicatorLevel::ROLLUPS {
                let table = self.table(level.daily_table());
                execute(&transaction, &rollup::upsert_daily(level, &table), &rows).await?;
            }
            for level in IndicatorLevel::ALL {
                let table = self.table(level.monthly_table());
                execute(&transaction, &rollup::upsert_monthly(level, &table), &rows).await?;
            }
            // A row can only come to (or start at) zero where a delta took something away
            // or added nothing.
            let took_away = values
                .iter()
                .any(|deltas| deltas.iter().any(|d| *d < 0) || deltas.iter().all(|d| *d == 0));
            if took_away {
                for level in IndicatorLevel::ALL {
                    let sql = rollup::delete_empty_daily(level, &self.table(level.daily_table()));
                    execute(&transaction, &sql, &rows[..5]).await?;
                    let sql =
                        rollup::delete_empty_monthly(level, &self.table(level.monthly_table()));
                    execute(&transaction, &sql, &rows[..5]).await?;
                }
            }
        }
        if !changes.durations.is_empty() {
            let n = changes.durations.len();
            let mut day = Vec::with_capacity(n);
            let (mut district, mut community, mut cell, mut category, mut metric) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut bucket, mut count) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for ((key, which, b), delta) in &changes.durations {
                day.push(key.day);
                district.push(pg_text(&key.district));
                community.push(pg_text(&key.community));
                cell.push(pg_text(&key.cell));
                category.push(pg_text(&key.category));
                metric.push(which.as_str());
                bucket.push(i16::try_from(*b).unwrap_or(i16::MAX));
                count.push(*delta);
            }
            let durations = self.table("indicator_durations");
            let sql = format!(
                "INSERT INTO {durations} AS d (day, district, community, cell, category, metric, bucket, count) \
                 SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::smallint[], $8::bigint[]) \
                 ON CONFLICT (day, district, community, cell, category, metric, bucket) DO UPDATE SET \
                 count = d.count + EXCLUDED.count"
            );
            let rows: [&(dyn ToSql + Sync); 8] = [
                &day, &district, &community, &cell, &category, &metric, &bucket, &count,
            ];
            execute(&transaction, &sql, &rows).await?;
            for level in IndicatorLevel::ROLLUPS
                .into_iter()
                .filter(|level| level.keeps_daily_histograms())
            {
                let table = self.table(level.durations_table());
                execute(
                    &transaction,
                    &rollup::upsert_durations(level, &table),
                    &rows,
                )
                .await?;
            }
            for (level, table) in monthly_histograms() {
                let table = self.table(table);
                let sql = rollup::upsert_monthly_durations(level, &table);
                execute(&transaction, &sql, &rows).await?;
            }
            if count.iter().any(|d| *d <= 0) {
                for level in IndicatorLevel::ALL
                    .into_iter()
                    .filter(|level| level.keeps_daily_histograms())
                {
                    let table = self.table(level.durations_table());
                    let sql = rollup::delete_empty_durations(level, &table);
                    execute(&transaction, &sql, &rows[..7]).await?;
                }
                for (level, table) in monthly_histograms() {
                    let table = self.table(table);
                    let sql = rollup::delete_empty_monthly_durations(level, &table);
                    execute(&transaction, &sql, &rows[..7]).await?;
                }
            }
        }
        self.finish(transaction, NAME, to).await
    }
}

/// The levels that keep monthly duration histograms, with their tables.
fn monthly_histograms() -> impl Iterator<Item = (IndicatorLevel, &'static str)> {
    IndicatorLevel::ALL
        .into_iter()
        .filter_map(|level| Some((level, level.monthly_durations_table()?)))
}

// ---------------------------------------------------------------------------------------
// patrols
// ---------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl ProjectionStore<PatrolsProjection> for PostgresStore {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        self.read_checkpoint(PatrolsProjection::NAME).await
    }

    async fn states(&self, _cases: &[CaseId]) -> Result<HashMap<CaseId, ()>, StoreError> {
        Ok(HashMap::new())
    }

    async fn commit(
        &self,
        changes: PatrolChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        const NAME: &str = PatrolsProjection::NAME;
        let mut client = self.client().await?;
        let transaction = self.begin(&mut client, NAME, from, to, recorded_at).await?;
        if !changes.days.is_empty() {
            let keys: Vec<_> = changes.days.keys().collect();
            let days: Vec<_> = changes.days.values().collect();
            let cell: Vec<Cow<'_, str>> = keys.iter().map(|k| pg_text(&k.cell)).collect();
            let day: Vec<_> = keys.iter().map(|k| k.day).collect();
            let district: Vec<Cow<'_, str>> = days.iter().map(|d| pg_text(&d.district)).collect();
            let community: Vec<Cow<'_, str>> = days.iter().map(|d| pg_text(&d.community)).collect();
            let findings: Vec<i64> = days.iter().map(|d| d.findings).collect();
            let fixed: Vec<i64> = days.iter().map(|d| d.fixed_on_spot).collect();
            let first_at: Vec<DateTime<Utc>> = days.iter().map(|d| d.first_at).collect();
            let last_at: Vec<DateTime<Utc>> = days.iter().map(|d| d.last_at).collect();
            let last_worker: Vec<Cow<'_, str>> =
                days.iter().map(|d| pg_text(&d.last_worker)).collect();
            // The latest patrol wins; at the same instant, the smallest worker id
            // (`PatrolDay::merge`).
            let sql = format!(
                "INSERT INTO {} AS p (cell, day, district, community, findings, fixed_on_spot, first_at, \
                 last_at, last_worker) \
                 SELECT * FROM UNNEST($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[], \
                 $6::bigint[], $7::timestamptz[], $8::timestamptz[], $9::text[]) \
                 ON CONFLICT (cell, day) DO UPDATE SET findings = p.findings + EXCLUDED.findings, \
                 fixed_on_spot = p.fixed_on_spot + EXCLUDED.fixed_on_spot, \
                 first_at = LEAST(p.first_at, EXCLUDED.first_at), \
                 last_worker = CASE WHEN EXCLUDED.last_at > p.last_at \
                 OR (EXCLUDED.last_at = p.last_at AND EXCLUDED.last_worker < p.last_worker) \
                 THEN EXCLUDED.last_worker ELSE p.last_worker END, \
                 last_at = GREATEST(p.last_at, EXCLUDED.last_at)",
                self.table("patrol_coverage")
            );
            execute(
                &transaction,
                &sql,
                &[
                    &cell,
                    &day,
                    &district,
                    &community,
                    &findings,
                    &fixed,
                    &first_at,
                    &last_at,
                    &last_worker,
                ],
            )
            .await?;
        }
        self.finish(transaction, NAME, to).await
    }
}

/// The live store is the read models' own: [`super::PostgresReadModels`] hands each
/// projection's calls to it.
#[async_trait::async_trait]
impl<P: Projection> ProjectionStore<P> for super::PostgresReadModels
where
    PostgresStore: ProjectionStore<P>,
{
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        ProjectionStore::<P>::checkpoint(self.store()).await
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, P::State>, StoreError> {
        ProjectionStore::<P>::states(self.store(), cases).await
    }

    async fn commit(
        &self,
        changes: P::Changes,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        ProjectionStore::<P>::commit(self.store(), changes, from, to, recorded_at).await
    }
}
