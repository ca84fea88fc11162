//! The read models in memory: the embedded default, for the demo and for tests.
//!
//! The same folds feed it as feed PostgreSQL ([`ProjectionStore`] for each projection), and
//! it answers the same [`ReadModels`] queries; the differential test holds the two to it.
//! Nothing survives the process: on start the runners fold the log from the beginning.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use wangge_engine::log::{EventLog, LogPosition, StoredCommit};
use wangge_schemas::{CaseId, Tier};

use crate::answer;
use crate::compact;
use crate::compact::trail::{self, TrailWrite};
use crate::fold::audit::{AuditChanges, AuditHead, AuditProjection};
use crate::fold::cases::{BoardKey, CaseRow, CasesChanges, CasesProjection, LightCounts};
use crate::fold::indicators::{
    DurationMetric, IndicatorCase, IndicatorChanges, IndicatorCounts, IndicatorsProjection,
};
use crate::fold::patrols::{PatrolChanges, PatrolDay, PatrolKey, PatrolsProjection};
use crate::fold::{FoldContext, Projection};
use crate::query::*;
use crate::runner::{project_batch, ProjectionRunner, ProjectionStore, RunnerConfig, StoreError};

mod cases;
mod indicators;

use cases::CaseTable;
use indicators::{IndicatorTable, KeyNames, Scope};

/// A case's chain head, compressed ([`compact`]), which the runner reads back only when the
/// case's next event comes, and its audit trail as PostgreSQL keeps it (compressed frames:
/// [`compact::trail`]) — in one allocation: the head's length (4 bytes), the head, the
/// trail. (A million cases: one allocation and 16 map bytes a case fewer than two boxes.)
#[derive(Default)]
struct AuditKept(Box<[u8]>);

impl AuditKept {
    fn split(&self) -> (&[u8], &[u8]) {
        let Some((length, rest)) = self.0.split_first_chunk::<4>() else {
            return (&[], &[]);
        };
        let length = (u32::from_le_bytes(*length) as usize).min(rest.len());
        rest.split_at(length)
    }

    fn head(&self) -> &[u8] {
        self.split().0
    }

    fn trail(&self) -> &[u8] {
        self.split().1
    }

    fn kept(head: &[u8], trail: &[u8]) -> Self {
        let length = u32::try_from(head.len()).expect("a compressed head under 4 GiB");
        let mut bytes = Vec::with_capacity(4 + head.len() + trail.len());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(trail);
        Self(bytes.into_boxed_slice())
    }

    fn with_trail(&self, write: TrailWrite) -> Self {
        match write {
            TrailWrite::Whole(frame) => Self::kept(self.head(), &frame),
            TrailWrite::Append(frame) => Self::kept(self.head(), &[self.trail(), &frame].concat()),
        }
    }

    fn with_head(&self, head: &[u8]) -> Self {
        Self::kept(head, self.trail())
    }
}

#[derive(Default)]
struct Tables {
    /// The case rows, compressed, with what the lists filter on ([`cases`]).
    cases: CaseTable,
    board: BTreeMap<BoardKey, LightCounts>,
    /// Each case's audit trail and chain head, in one entry ([`AuditKept`]).
    audit: HashMap<CaseId, AuditKept>,
    /// Indicator states, compressed ([`compact`]): the runner reads them back only when
    /// the case's next event comes.
    indicator_cases: HashMap<CaseId, Box<[u8]>>,
    /// Daily counters and duration buckets, codes interned ([`indicators`]).
    indicators: IndicatorTable,
    patrols: BTreeMap<PatrolKey, PatrolDay>,
    checkpoints: BTreeMap<&'static str, (LogPosition, Option<DateTime<Utc>>)>,
}

/// The four read models in memory, behind the one query interface.
pub struct MemoryReadModels {
    context: FoldContext,
    tables: RwLock<Tables>,
    progress: tokio::sync::broadcast::Sender<Progress>,
}

impl MemoryReadModels {
    pub fn new(context: FoldContext) -> Arc<Self> {
        Arc::new(Self {
            context,
            tables: RwLock::new(Tables::default()),
            progress: tokio::sync::broadcast::channel(1024).0,
        })
    }

    pub fn context(&self) -> &FoldContext {
        &self.context
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds commits (in log order, after what was folded already) into all four read
    /// models at once: for tests and benchmarks that hold a history in hand.
    pub async fn fold_commits(&self, commits: &[StoredCommit]) -> Result<(), StoreError> {
        self.fold_one(&CasesProjection, commits).await?;
        self.fold_one(&AuditProjection, commits).await?;
        self.fold_one(&IndicatorsProjection, commits).await?;
        self.fold_one(&PatrolsProjection, commits).await?;
        Ok(())
    }

    async fn fold_one<P: Projection>(
        &self,
        projection: &P,
        commits: &[StoredCommit],
    ) -> Result<(), StoreError>
    where
        Self: ProjectionStore<P>,
    {
        let from = ProjectionStore::<P>::checkpoint(self).await?;
        project_batch(projection, self, from, commits).await?;
        Ok(())
    }

    /// Runs the four projections' runners on `log` until `shutdown` resolves.
    pub async fn follow<L: EventLog + Clone>(
        self: Arc<Self>,
        log: L,
        config: RunnerConfig,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until = || {
            let mut stopped = stopped.clone();
            async move {
                stopped.wait_for(|stop| *stop).await.ok();
            }
        };
        let mut runners = tokio::task::JoinSet::new();
        runners.spawn(
            ProjectionRunner::new(CasesProjection, self.clone(), log.clone())
                .with_config(config.clone())
                .run(until()),
        );
        runners.spawn(
            ProjectionRunner::new(AuditProjection, self.clone(), log.clone())
                .with_config(config.clone())
                .run(until()),
        );
        runners.spawn(
            ProjectionRunner::new(IndicatorsProjection, self.clone(), log.clone())
                .with_config(config.clone())
                .run(until()),
        );
        runners.spawn(
            ProjectionRunner::new(PatrolsProjection, self.clone(), log)
                .with_config(config)
                .run(until()),
        );
        shutdown.await;
        stop.send(true).ok();
        while runners.join_next().await.is_some() {}
    }

    /// Moves a checkpoint (inside the write lock of a commit) and announces it.
    fn advance(
        &self,
        tables: &mut Tables,
        projection: &'static str,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let actual = tables.checkpoints.get(projection).map_or(0, |(p, _)| *p);
        if actual != from {
            return Err(StoreError::CheckpointMoved {
                projection,
                expected: from,
                actual,
            });
        }
        // Whole microseconds, as every instant of the read models (and PostgreSQL) keeps it.
        tables.checkpoints.insert(
            projection,
            (to, recorded_at.map(crate::fold::cases::to_micros)),
        );
        Ok(())
    }

    fn announce(&self, projection: &'static str, position: LogPosition) {
        // Nobody listening is fine.
        let _ = self.progress.send(Progress {
            projection: projection.to_owned(),
            position,
        });
    }

    fn checkpoint_of(&self, projection: &'static str) -> LogPosition {
        self.read()
            .checkpoints
            .get(projection)
            .map_or(0, |(p, _)| *p)
    }
}

// ---------------------------------------------------------------------------------------
// Stores of the four projections
// ---------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl ProjectionStore<CasesProjection> for MemoryReadModels {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        Ok(self.checkpoint_of(CasesProjection::NAME))
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, CaseRow>, StoreError> {
        let tables = self.read();
        let mut rows = HashMap::new();
        for &case_id in cases {
            if let Some(row) = tables.cases.row(case_id)? {
                rows.insert(case_id, row);
            }
        }
        Ok(rows)
    }

    async fn commit(
        &self,
        changes: CasesChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        {
            let mut tables = self.write();
            self.advance(&mut tables, CasesProjection::NAME, from, to, recorded_at)?;
            for (case_id, row) in &changes.rows {
                tables.cases.insert(*case_id, row);
            }
            for (key, delta) in changes.board {
                let counts = tables.board.entry(key.clone()).or_default();
                counts.merge(&delta);
                if counts.is_zero() {
                    tables.board.remove(&key);
                }
            }
        }
        self.announce(CasesProjection::NAME, to);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProjectionStore<AuditProjection> for MemoryReadModels {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        Ok(self.checkpoint_of(AuditProjection::NAME))
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, AuditHead>, StoreError> {
        let tables = self.read();
        cases
            .iter()
            .filter_map(|id| tables.audit.get(id).map(|kept| (*id, kept)))
            .filter(|(_, kept)| !kept.head().is_empty())
            .map(|(case_id, kept)| {
                Ok((
                    case_id,
                    compact::decode_state(AuditProjection::NAME, case_id, kept.head())?,
                ))
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
        // Compressed before the lock is taken: queries wait only for the inserts.
        // Each case's trail rewritten whole, as in PostgreSQL: read under the read lock,
        // written under the write lock, which only this projection's runner takes for them.
        let writes: Vec<(CaseId, TrailWrite)> = {
            let tables = self.read();
            trail::by_case(&changes.records)
                .into_iter()
                .map(|(case_id, new)| {
                    let stored = tables.audit.get(&case_id).map(AuditKept::trail);
                    (case_id, trail::write_for(case_id, stored, &new))
                })
                .collect()
        };
        let heads = encode_states(changes.heads);
        {
            let mut tables = self.write();
            self.advance(&mut tables, AuditProjection::NAME, from, to, recorded_at)?;
            for (case_id, write) in writes {
                let kept = tables.audit.entry(case_id).or_default();
                *kept = kept.with_trail(write);
            }
            for (case_id, head) in heads {
                let kept = tables.audit.entry(case_id).or_default();
                *kept = kept.with_head(&head);
            }
        }
        self.announce(AuditProjection::NAME, to);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProjectionStore<IndicatorsProjection> for MemoryReadModels {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        Ok(self.checkpoint_of(IndicatorsProjection::NAME))
    }

    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, IndicatorCase>, StoreError> {
        let tables = self.read();
        decode_states(IndicatorsProjection::NAME, &tables.indicator_cases, cases)
    }

    async fn commit(
        &self,
        changes: IndicatorChanges,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let states = encode_states(changes.cases);
        {
            let mut tables = self.write();
            self.advance(
                &mut tables,
                IndicatorsProjection::NAME,
                from,
                to,
                recorded_at,
            )?;
            tables.indicator_cases.extend(states);
            for (key, delta) in &changes.counts {
                tables.indicators.add_counts(key, delta);
            }
            for ((key, metric, bucket), delta) in &changes.durations {
                tables
                    .indicators
                    .add_duration(key, *metric, *bucket, *delta);
            }
        }
        self.announce(IndicatorsProjection::NAME, to);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProjectionStore<PatrolsProjection> for MemoryReadModels {
    async fn checkpoint(&self) -> Result<LogPosition, StoreError> {
        Ok(self.checkpoint_of(PatrolsProjection::NAME))
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
        {
            let mut tables = self.write();
            self.advance(&mut tables, PatrolsProjection::NAME, from, to, recorded_at)?;
            for (key, day) in changes.days {
                match tables.patrols.get_mut(&key) {
                    Some(existing) => existing.merge(&day),
                    None => {
                        tables.patrols.insert(key, day);
                    }
                }
            }
        }
        self.announce(PatrolsProjection::NAME, to);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

fn scope_of(query: &IndicatorQuery) -> Scope<'_> {
    Scope {
        district: query.district.as_deref(),
        community: query.community.as_deref(),
        cell: query.cell.as_deref(),
        category: query.category.as_deref(),
    }
}

fn group_key(group: IndicatorGroup, key: &KeyNames<'_>) -> String {
    answer::indicator_group_key_of(
        group,
        key.day,
        [key.district, key.community, key.cell, key.category],
    )
}

impl MemoryReadModels {
    /// Indicator counters and duration buckets summed per group over the query's scope.
    #[allow(clippy::type_complexity)]
    fn indicator_sums(
        &self,
        query: &IndicatorQuery,
        group: IndicatorGroup,
    ) -> BTreeMap<String, (IndicatorCounts, BTreeMap<u16, i64>, BTreeMap<u16, i64>)> {
        let tables = self.read();
        let scope = scope_of(query);
        let mut sums: BTreeMap<String, (IndicatorCounts, BTreeMap<u16, i64>, BTreeMap<u16, i64>)> =
            BTreeMap::new();
        tables
            .indicators
            .counts_in(query.from, query.to, &scope, |key, counts| {
                sums.entry(group_key(group, &key))
                    .or_default()
                    .0
                    .add(&counts, 1);
            });
        tables.indicators.durations_in(
            query.from,
            query.to,
            &scope,
            |key, metric, bucket, count| {
                let entry = sums.entry(group_key(group, &key)).or_default();
                let buckets = match metric {
                    DurationMetric::TimeToAcknowledge => &mut entry.1,
                    DurationMetric::TimeToClose => &mut entry.2,
                };
                *buckets.entry(bucket).or_default() += count;
            },
        );
        sums
    }
}

#[async_trait::async_trait]
impl ReadModels for MemoryReadModels {
    async fn cases(&self, query: &CaseQuery) -> Result<Page<CaseView>, ReadError> {
        let filter = query.validate()?;
        let (items, more) = self.read().cases.page(&filter)?;
        let next_cursor = if more {
            items.last().map(|last: &CaseView| last.cursor().encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn case(&self, case_id: CaseId) -> Result<Option<CaseView>, ReadError> {
        self.read().cases.view(case_id)
    }

    async fn audit_trail(&self, case_id: CaseId) -> Result<Option<AuditTrail>, ReadError> {
        let tables = self.read();
        let kept = tables.audit.get(&case_id);
        let mut records = kept
            .map(|kept| compact::trail::decode(case_id, kept.trail()).records)
            .unwrap_or_default();
        records.sort_by_key(|r| r.sequence);
        let head: Option<AuditHead> = kept
            .filter(|kept| !kept.head().is_empty())
            .map(|kept| compact::decode_json(kept.head()))
            .transpose()
            .map_err(|e| {
                ReadError::Unavailable(format!("a stored audit head is unreadable: {e}"))
            })?;
        if records.is_empty() && head.is_none() {
            return Ok(None);
        }
        Ok(Some(answer::audit_trail(
            case_id,
            records,
            head.as_ref(),
            self.context.seal_policy(),
        )))
    }

    async fn sla_board(&self, query: &BoardQuery) -> Result<Vec<BoardRow>, ReadError> {
        let group = query.group.unwrap_or_default();
        let tables = self.read();
        let mut sums: BTreeMap<(String, Option<Tier>), answer::BoardSums> = BTreeMap::new();
        for (key, counts) in &tables.board {
            let community = key.community.as_deref();
            if !answer::in_board_scope(query, &key.district, community, key.tier, key.supervised) {
                continue;
            }
            if let Some(group_key) =
                answer::board_group(group, &key.district, community, &key.cell, key.tier)
            {
                sums.entry(group_key)
                    .or_default()
                    .add(counts, key.supervised);
            }
        }
        Ok(answer::board_rows(&self.context, sums))
    }

    async fn overdue(
        &self,
        query: &OverdueQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<OverdueCase>, ReadError> {
        let (limit, after) = query.validate()?;
        let tables = self.read();
        let mut overdue: Vec<OverdueCase> = tables
            .cases
            .red()?
            .iter()
            .filter_map(|view| answer::overdue_case(view, now))
            .filter(|case| {
                query.district.as_deref().is_none_or(|d| d == case.district)
                    && query
                        .community
                        .as_deref()
                        .is_none_or(|c| c == case.community)
                    && query.cell.as_deref().is_none_or(|c| c == case.cell)
                    && query.tier.is_none_or(|t| case.tier == Some(t))
            })
            .filter(|case| {
                after.is_none_or(|after| {
                    (case.deadline, case.case_id) > (after.deadline, after.case_id)
                })
            })
            .collect();
        overdue.sort_by_key(|case| (case.deadline, case.case_id));
        let more = overdue.len() > limit;
        overdue.truncate(limit);
        let next_cursor = more.then(|| overdue.last()).flatten().map(|last| {
            OverdueCursor {
                deadline: last.deadline,
                case_id: last.case_id,
            }
            .encode()
        });
        Ok(Page {
            items: overdue,
            next_cursor,
        })
    }

    async fn indicators(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorRow>, ReadError> {
        let group = query.validate()?;
        let sums = self.indicator_sums(query, group);
        Ok(sums
            .into_iter()
            .map(|(key, (counts, acknowledge, close))| {
                IndicatorRow::from_sums(key, counts, &acknowledge, &close)
            })
            .collect())
    }

    async fn ranking(&self, query: &RankingQuery) -> Result<Ranking, ReadError> {
        let rules = query.validate()?;
        let tables = self.read();
        let scope = Scope {
            district: query.district.as_deref(),
            community: query.community.as_deref(),
            ..Scope::default()
        };
        let mut cells: BTreeMap<String, answer::CellSums> = BTreeMap::new();
        tables
            .indicators
            .counts_in(query.from, query.to, &scope, |key, counts| {
                // Rows of report-day counters alone have nothing to rank by.
                if counts.due == 0 || key.tier() != rules.tier {
                    return;
                }
                let sums = cells
                    .entry(key.cell.to_owned())
                    .or_insert_with(|| answer::CellSums {
                        cell: key.cell.to_owned(),
                        community: key.community.to_owned(),
                        ..Default::default()
                    });
                sums.due += counts.due;
                sums.closed += counts.closed;
                sums.closed_on_time += counts.closed_on_time;
            });
        Ok(answer::ranking(
            &self.context,
            cells.into_values().collect(),
            rules,
        ))
    }

    async fn patrol_coverage(&self, query: &PatrolQuery) -> Result<PatrolReport, ReadError> {
        query.validate()?;
        let tables = self.read();
        let mut sums: BTreeMap<String, answer::PatrolSums> = BTreeMap::new();
        for (key, day) in &tables.patrols {
            if key.day < query.from || key.day > query.to {
                continue;
            }
            let sum = sums.entry(key.cell.clone()).or_default();
            sum.days_patrolled += 1;
            sum.findings += day.findings;
            sum.fixed_on_spot += day.fixed_on_spot;
            let candidate = (day.last_at, day.last_worker.clone());
            let newer = sum.last.as_ref().is_none_or(|(at, worker)| {
                (candidate.0, std::cmp::Reverse(&candidate.1)) > (*at, std::cmp::Reverse(worker))
            });
            if newer {
                sum.last = Some(candidate);
            }
        }
        answer::patrol_report(&self.context, query, &sums)
    }

    async fn inbox(&self, worker_id: &str) -> Result<Vec<InboxTask>, ReadError> {
        let tables = self.read();
        let mut tasks: Vec<InboxTask> = tables
            .cases
            .held_by(worker_id)?
            .into_iter()
            .filter(|case| answer::is_in_inbox(case, worker_id))
            .map(|case| answer::inbox_task(&case))
            .collect();
        answer::sort_inbox(&mut tasks);
        Ok(tasks)
    }

    async fn provisional_open_cases(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        Ok(self.read().cases.provisional_open_by_district())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        let tables = self.read();
        Ok(crate::fold::PROJECTION_NAMES
            .iter()
            .map(|name| {
                let (position, recorded_at) =
                    tables.checkpoints.get(name).copied().unwrap_or((0, None));
                Checkpoint {
                    projection: (*name).to_owned(),
                    position,
                    recorded_at,
                }
            })
            .collect())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// States as the store keeps them: compressed.
fn encode_states<S: serde::Serialize>(
    states: impl IntoIterator<Item = (CaseId, S)>,
) -> Vec<(CaseId, Box<[u8]>)> {
    states
        .into_iter()
        .map(|(case_id, state)| (case_id, compact::encode_json(&state).into_boxed_slice()))
        .collect()
}

/// The kept states of these cases, read back.
fn decode_states<S: serde::de::DeserializeOwned>(
    projection: &'static str,
    kept: &HashMap<CaseId, Box<[u8]>>,
    cases: &[CaseId],
) -> Result<HashMap<CaseId, S>, StoreError> {
    cases
        .iter()
        .filter_map(|id| kept.get(id).map(|stored| (*id, stored)))
        .map(|(case_id, stored)| Ok((case_id, compact::decode_state(projection, case_id, stored)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_trail_and_head_read_back_as_written_whichever_changes() {
        let kept = AuditKept::default();
        assert_eq!((kept.head(), kept.trail()), (&[][..], &[][..]));
        let kept = kept.with_trail(TrailWrite::Whole(b"frame-1".to_vec()));
        let kept = kept.with_head(b"head-1");
        assert_eq!(
            (kept.head(), kept.trail()),
            (&b"head-1"[..], &b"frame-1"[..])
        );
        let kept = kept.with_trail(TrailWrite::Append(b"+frame-2".to_vec()));
        let kept = kept.with_head(b"h2");
        assert_eq!(
            (kept.head(), kept.trail()),
            (&b"h2"[..], &b"frame-1+frame-2"[..])
        );
        // A length past the end reads as far as there are bytes, never panics.
        let odd = AuditKept(vec![200, 0, 0, 0, 1, 2].into_boxed_slice());
        assert_eq!((odd.head(), odd.trail()), (&[1, 2][..], &[][..]));
    }
}
