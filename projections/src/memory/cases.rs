//! The memory store's case rows: each kept compressed, as PostgreSQL keeps `cases.state`,
//! beside a small key of what the case list filters on (the columns PostgreSQL indexes), so
//! a query decodes only the cases it returns.
//!
//! Codes (cells, categories, workers) are interned: a key holds a 4-byte symbol for each,
//! the names once per store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use wangge_schemas::{CaseId, IntakeKind, Tier};

use crate::compact;
use crate::fold::cases::{CaseRow, CasesProjection, Light};
use crate::query::{CaseCursor, CaseFilter, CaseQuery, CaseView, ReadError};
use crate::runner::StoreError;
use wangge_engine::domain::CaseStatus;

/// A code, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Sym(u32);

impl Sym {
    /// The smallest symbol, for the lower bound of a range.
    pub(super) const FIRST: Sym = Sym(0);
}

/// The names behind the symbols, each kept once.
#[derive(Default)]
pub(super) struct Symbols {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl Symbols {
    pub(super) fn intern(&mut self, name: &str) -> Sym {
        if let Some(&id) = self.ids.get(name) {
            return Sym(id);
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 4 billion codes");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        Sym(id)
    }

    /// The symbol of a name already interned; `None` when no row ever named it.
    pub(super) fn find(&self, name: &str) -> Option<Sym> {
        self.ids.get(name).copied().map(Sym)
    }

    pub(super) fn name(&self, sym: Sym) -> &str {
        &self.names[sym.0 as usize]
    }
}

/// What the case list, the overdue list, the inbox and the provisional count filter on.
struct CaseKey {
    district: Sym,
    community: Sym,
    building: Sym,
    cell: Sym,
    /// The category, or while there is none the reported one (as the filter reads them).
    category: Sym,
    assignee: Option<Sym>,
    reported_at: Option<DateTime<Utc>>,
    tier: Option<Tier>,
    status: CaseStatus,
    intake: Option<IntakeKind>,
    open: bool,
    provisional: bool,
    supervised: bool,
    red: bool,
}

struct StoredCase {
    key: CaseKey,
    row: Box<[u8]>,
}

/// The cases, by id and in list order.
#[derive(Default)]
pub(super) struct CaseTable {
    /// Boxed: a hash map keeps up to twice the slots it holds (a million cases: two
    /// million), and an empty slot costs the whole entry.
    rows: HashMap<CaseId, Box<StoredCase>>,
    /// The list order (newest report first when walked backwards).
    order: BTreeMap<CaseCursor, ()>,
    symbols: Symbols,
}

fn unreadable(case_id: CaseId, error: compact::CompactError) -> ReadError {
    ReadError::Unavailable(format!("case {case_id} does not read back: {error}"))
}

impl CaseTable {
    /// Keeps `row` in place of what the case had.
    pub(super) fn insert(&mut self, case_id: CaseId, row: &CaseRow) {
        let s = &row.summary;
        if let Some(old) = self.rows.get(&case_id) {
            self.order
                .remove(&CaseCursor::of(old.key.reported_at, case_id));
        }
        self.order
            .insert(CaseCursor::of(s.reported_at, s.case_id), ());
        let symbols = &mut self.symbols;
        let key = CaseKey {
            district: symbols.intern(&s.location.district),
            community: symbols.intern(&s.location.community),
            building: symbols.intern(&s.location.building),
            cell: symbols.intern(&s.cell),
            category: symbols.intern(s.category.as_deref().unwrap_or(&s.reported_category)),
            assignee: s.assignee.as_deref().map(|a| symbols.intern(a)),
            reported_at: s.reported_at,
            tier: s.tier,
            status: s.status,
            intake: s.intake,
            open: s.is_open(),
            provisional: row.sla.provisional,
            supervised: s.is_supervised(),
            red: row.sla.light == Some(Light::Red),
        };
        let row = compact::encode_json(row).into_boxed_slice();
        self.rows.insert(case_id, Box::new(StoredCase { key, row }));
    }

    /// The fold's row of a case, read back.
    pub(super) fn row(&self, case_id: CaseId) -> Result<Option<CaseRow>, StoreError> {
        self.rows
            .get(&case_id)
            .map(|stored| compact::decode_state(CasesProjection::NAME, case_id, &stored.row))
            .transpose()
    }

    /// A case as the API serves it.
    pub(super) fn view(&self, case_id: CaseId) -> Result<Option<CaseView>, ReadError> {
        self.rows
            .get(&case_id)
            .map(|stored| view_of(case_id, stored))
            .transpose()
    }

    /// The cases `filter` lets through, newest report first, after its cursor: at most
    /// `filter.limit`, and whether more follow.
    pub(super) fn page(&self, filter: &CaseFilter) -> Result<(Vec<CaseView>, bool), ReadError> {
        let upper = match filter.after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut items = Vec::new();
        for (cursor, ()) in self.order.range((Bound::Unbounded, upper)).rev() {
            let Some(stored) = self.rows.get(&cursor.case_id) else {
                continue;
            };
            if !self.admits(&stored.key, &filter.query) {
                continue;
            }
            let view = view_of(cursor.case_id, stored)?;
            // The key is what the filter reads; the whole filter on the view is the rule.
            if !filter.matches(&view) {
                continue;
            }
            if items.len() == filter.limit {
                return Ok((items, true));
            }
            items.push(view);
        }
        Ok((items, false))
    }

    /// The cases whose running step is past its deadline.
    pub(super) fn red(&self) -> Result<Vec<CaseView>, ReadError> {
        self.views_where(|key| key.red)
    }

    /// The open cases `worker_id` holds.
    pub(super) fn held_by(&self, worker_id: &str) -> Result<Vec<CaseView>, ReadError> {
        let Some(worker) = self.symbols.find(worker_id) else {
            return Ok(Vec::new());
        };
        self.views_where(|key| key.open && key.assignee == Some(worker))
    }

    /// Open cases with a provisional deadline, per district.
    pub(super) fn provisional_open_by_district(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for stored in self.rows.values() {
            if stored.key.provisional && stored.key.open {
                *counts
                    .entry(self.symbols.name(stored.key.district).to_owned())
                    .or_default() += 1;
            }
        }
        counts
    }

    fn views_where(&self, wanted: impl Fn(&CaseKey) -> bool) -> Result<Vec<CaseView>, ReadError> {
        self.rows
            .iter()
            .filter(|(_, stored)| wanted(&stored.key))
            .map(|(case_id, stored)| view_of(*case_id, stored))
            .collect()
    }

    /// Whether a case with `key` can pass `query` ([`CaseFilter::matches`] on the key's
    /// columns; a name no row ever had matches nothing).
    fn admits(&self, key: &CaseKey, query: &CaseQuery) -> bool {
        let eq = |want: &Option<String>, have: Sym| {
            want.as_deref()
                .is_none_or(|w| self.symbols.find(w) == Some(have))
        };
        eq(&query.district, key.district)
            && eq(&query.community, key.community)
            && eq(&query.building, key.building)
            && eq(&query.cell, key.cell)
            && eq(&query.category, key.category)
            && query.tier.is_none_or(|t| key.tier == Some(t))
            && query.status.is_none_or(|status| key.status == status)
            && query.open.is_none_or(|open| key.open == open)
            && query.intake.is_none_or(|i| key.intake == Some(i))
            && query.provisional.is_none_or(|p| key.provisional == p)
            && query.assignee.as_deref().is_none_or(|a| {
                key.assignee
                    .is_some_and(|have| self.symbols.find(a) == Some(have))
            })
            && query.supervised.is_none_or(|s| key.supervised == s)
            && query
                .reported_from
                .is_none_or(|from| key.reported_at.is_some_and(|at| at >= from))
            && query
                .reported_to
                .is_none_or(|to| key.reported_at.is_some_and(|at| at < to))
    }
}

fn view_of(case_id: CaseId, stored: &StoredCase) -> Result<CaseView, ReadError> {
    let row: CaseRow = compact::decode_json(&stored.row).map_err(|e| unreadable(case_id, e))?;
    Ok(CaseView {
        summary: row.summary,
        sla: row.sla,
    })
}
