//! The memory store's indicator rows: the daily counters and duration buckets keyed by day
//! and interned codes (four 4-byte symbols instead of four strings a row), in day order so a
//! range of days is a range of the map.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::{Days, NaiveDate};
use wangge_schemas::Tier;

use super::cases::{Sym, Symbols};
use crate::fold::indicators::{DurationMetric, IndicatorCounts, IndicatorKey};

/// An indicator row's key with its codes interned. Ordered by day first; within a day by
/// symbol, which no query depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CodedKey {
    day: NaiveDate,
    district: Sym,
    community: Sym,
    cell: Sym,
    category: Sym,
}

impl CodedKey {
    /// The smallest key of a day (symbols start at 0).
    fn first_of(day: NaiveDate) -> Self {
        let zero = Sym::FIRST;
        Self {
            day,
            district: zero,
            community: zero,
            cell: zero,
            category: zero,
        }
    }
}

/// A row's key with its names, as a query reads it.
pub(super) struct KeyNames<'a> {
    pub day: NaiveDate,
    pub district: &'a str,
    pub community: &'a str,
    pub cell: &'a str,
    pub category: &'a str,
}

impl KeyNames<'_> {
    /// The tier of the row's cell: [`IndicatorKey::tier`]'s rule (a district's cases have no
    /// community, a community's cell is its community).
    pub fn tier(&self) -> Tier {
        if self.community.is_empty() {
            Tier::District
        } else if self.community == self.cell {
            Tier::Community
        } else {
            Tier::Building
        }
    }
}

/// The scope of a query: the names it is limited to.
#[derive(Default)]
pub(super) struct Scope<'q> {
    pub district: Option<&'q str>,
    pub community: Option<&'q str>,
    pub cell: Option<&'q str>,
    pub category: Option<&'q str>,
}

/// The scope in symbols; `None` when it names something no row has (nothing matches).
struct CodedScope {
    district: Option<Sym>,
    community: Option<Sym>,
    cell: Option<Sym>,
    category: Option<Sym>,
}

impl CodedScope {
    fn admits(&self, key: &CodedKey) -> bool {
        self.district.is_none_or(|d| d == key.district)
            && self.community.is_none_or(|c| c == key.community)
            && self.cell.is_none_or(|c| c == key.cell)
            && self.category.is_none_or(|c| c == key.category)
    }
}

/// A day's counters as the store keeps them: 32 bits each, half of [`IndicatorCounts`]'s.
/// A counter of one cell, category and day cannot come near 2^31 (that would be 25,000
/// cases a second all day in one building); past it the stored value saturates.
#[derive(Debug, Clone, Copy, Default)]
struct StoredCounts([i32; COUNTERS]);

const COUNTERS: usize = 11;

impl StoredCounts {
    fn add(&mut self, delta: &IndicatorCounts) {
        for (stored, delta) in self.0.iter_mut().zip(delta.values()) {
            let sum = i64::from(*stored) + delta;
            *stored = i32::try_from(sum).unwrap_or(if sum < 0 { i32::MIN } else { i32::MAX });
        }
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|c| *c == 0)
    }

    fn counts(&self) -> IndicatorCounts {
        IndicatorCounts::from_values(self.0.map(i64::from))
    }
}

#[derive(Default)]
pub(super) struct IndicatorTable {
    counts: BTreeMap<CodedKey, StoredCounts>,
    durations: BTreeMap<(CodedKey, DurationMetric, u16), i64>,
    symbols: Symbols,
}

impl IndicatorTable {
    fn code(&mut self, key: &IndicatorKey) -> CodedKey {
        CodedKey {
            day: key.day,
            district: self.symbols.intern(&key.district),
            community: self.symbols.intern(&key.community),
            cell: self.symbols.intern(&key.cell),
            category: self.symbols.intern(&key.category),
        }
    }

    fn names(&self, key: &CodedKey) -> KeyNames<'_> {
        KeyNames {
            day: key.day,
            district: self.symbols.name(key.district),
            community: self.symbols.name(key.community),
            cell: self.symbols.name(key.cell),
            category: self.symbols.name(key.category),
        }
    }

    /// Adds a batch's delta to a day's counters; a row that comes to zero goes.
    pub fn add_counts(&mut self, key: &IndicatorKey, delta: &IndicatorCounts) {
        let key = self.code(key);
        let counts = self.counts.entry(key).or_default();
        counts.add(delta);
        if counts.is_zero() {
            self.counts.remove(&key);
        }
    }

    /// Adds a batch's delta to a duration bucket; a bucket that comes to zero goes.
    pub fn add_duration(
        &mut self,
        key: &IndicatorKey,
        metric: DurationMetric,
        bucket: u16,
        delta: i64,
    ) {
        let key = (self.code(key), metric, bucket);
        let count = self.durations.entry(key).or_default();
        *count += delta;
        if *count == 0 {
            self.durations.remove(&key);
        }
    }

    fn coded(&self, scope: &Scope<'_>) -> Option<CodedScope> {
        let find = |name: Option<&str>| match name {
            None => Some(None),
            Some(name) => self.symbols.find(name).map(Some),
        };
        Some(CodedScope {
            district: find(scope.district)?,
            community: find(scope.community)?,
            cell: find(scope.cell)?,
            category: find(scope.category)?,
        })
    }

    /// The range of keys of the days `from..=to`.
    fn days(from: NaiveDate, to: NaiveDate) -> (Bound<CodedKey>, Bound<CodedKey>) {
        let upper = match to.checked_add_days(Days::new(1)) {
            Some(after) => Bound::Excluded(CodedKey::first_of(after)),
            None => Bound::Unbounded,
        };
        (Bound::Included(CodedKey::first_of(from)), upper)
    }

    /// Each day's counters in `from..=to` within `scope`, with their key's names.
    pub fn counts_in(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        scope: &Scope<'_>,
        mut each: impl FnMut(KeyNames<'_>, IndicatorCounts),
    ) {
        let Some(scope) = self.coded(scope) else {
            return;
        };
        if from > to {
            return;
        }
        for (key, counts) in self.counts.range(Self::days(from, to)) {
            if scope.admits(key) {
                each(self.names(key), counts.counts());
            }
        }
    }

    /// Each duration bucket in `from..=to` within `scope`, with its key's names.
    pub fn durations_in(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        scope: &Scope<'_>,
        mut each: impl FnMut(KeyNames<'_>, DurationMetric, u16, i64),
    ) {
        let Some(scope) = self.coded(scope) else {
            return;
        };
        if from > to {
            return;
        }
        let (lower, upper) = Self::days(from, to);
        let first = DurationMetric::TimeToAcknowledge;
        let bound = |b: Bound<CodedKey>| match b {
            Bound::Included(key) => Bound::Included((key, first, 0)),
            Bound::Excluded(key) => Bound::Excluded((key, first, 0)),
            Bound::Unbounded => Bound::Unbounded,
        };
        for ((key, metric, bucket), count) in self.durations.range((bound(lower), bound(upper))) {
            if scope.admits(key) {
                each(self.names(key), *metric, *bucket, *count);
            }
        }
    }
}
