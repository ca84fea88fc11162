//! The open cases of the timer book, by case id, in as little memory as a million of them
//! allow.
//!
//! Records sit in chunks of a fixed size, so growing wastes at most one chunk, where a
//! vector that doubles (or a hash map, whose slots double) may hold twice what it needs.
//! Beside them, a hash table of 4-byte positions finds a record by its case id. Removing a
//! record moves the last one into its place (positions stay dense); iteration follows the
//! positions, which every instance folding the same log in the same order gets alike.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use wangge_schemas::CaseId;

/// Records a chunk holds: 16,384 of some 56 bytes, under a megabyte.
const CHUNK: usize = 1 << 14;

pub(super) struct CaseTable<T> {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    chunks: Vec<Vec<(CaseId, T)>>,
    len: usize,
}

impl<T> Default for CaseTable<T> {
    fn default() -> Self {
        Self {
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            chunks: Vec::new(),
            len: 0,
        }
    }
}

fn at<T>(chunks: &[Vec<(CaseId, T)>], position: u32) -> &(CaseId, T) {
    let position = position as usize;
    &chunks[position / CHUNK][position % CHUNK]
}

impl<T> CaseTable<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash(&self, case_id: &CaseId) -> u64 {
        self.hasher.hash_one(case_id)
    }

    fn position(&self, case_id: &CaseId) -> Option<u32> {
        let chunks = &self.chunks;
        self.index
            .find(self.hash(case_id), |&p| at(chunks, p).0 == *case_id)
            .copied()
    }

    pub(super) fn get(&self, case_id: &CaseId) -> Option<&T> {
        let position = self.position(case_id)?;
        Some(&at(&self.chunks, position).1)
    }

    pub(super) fn get_mut(&mut self, case_id: &CaseId) -> Option<&mut T> {
        let position = self.position(case_id)? as usize;
        Some(&mut self.chunks[position / CHUNK][position % CHUNK].1)
    }

    /// The record of `case_id`, inserted with `make` if it has none.
    pub(super) fn get_or_insert_with(
        &mut self,
        case_id: CaseId,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        let position = match self.position(&case_id) {
            Some(position) => position as usize,
            None => self.push(case_id, make()),
        };
        &mut self.chunks[position / CHUNK][position % CHUNK].1
    }

    /// Adds a record; `false` (and nothing changed) if the case has one already.
    pub(super) fn insert_new(&mut self, case_id: CaseId, value: T) -> bool {
        if self.position(&case_id).is_some() {
            return false;
        }
        self.push(case_id, value);
        true
    }

    /// Room for `additional` more records without the index growing.
    pub(super) fn reserve(&mut self, additional: usize) {
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index
            .reserve(additional, |&p| hasher.hash_one(at(chunks, p).0));
    }

    fn push(&mut self, case_id: CaseId, value: T) -> usize {
        let position = self.len;
        let Ok(stored) = u32::try_from(position) else {
            panic!("the timer book holds at most {} open cases", u32::MAX);
        };
        if position.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[position / CHUNK].push((case_id, value));
        self.len += 1;
        let hash = self.hash(&case_id);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index
            .insert_unique(hash, stored, |&p| hasher.hash_one(at(chunks, p).0));
        position
    }

    /// Takes the record of `case_id` out; the last record moves into its place.
    pub(super) fn remove(&mut self, case_id: &CaseId) -> Option<T> {
        let hash = self.hash(case_id);
        let chunks = &self.chunks;
        let entry = self
            .index
            .find_entry(hash, |&p| at(chunks, p).0 == *case_id)
            .ok()?;
        let (position, _) = entry.remove();
        let last = self.len - 1;
        let (last_id, last_value) = self
            .chunks
            .last_mut()
            .and_then(Vec::pop)
            .expect("a table with a record has a last one");
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        if position as usize == last {
            return Some(last_value);
        }
        // The last record fills the hole; its index entry follows it.
        let last_hash = self.hash(&last_id);
        if let Some(moved) = self.index.find_mut(last_hash, |&p| p as usize == last) {
            *moved = position;
        }
        let slot = &mut self.chunks[position as usize / CHUNK][position as usize % CHUNK];
        let (_, removed) = std::mem::replace(slot, (last_id, last_value));
        Some(removed)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&CaseId, &T)> {
        self.chunks
            .iter()
            .flatten()
            .map(|(case_id, value)| (case_id, value))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_moved_and_removed_like_a_map_across_chunks() {
        let ids: Vec<CaseId> = (0..3 * CHUNK + 7).map(|_| CaseId::new_v7()).collect();
        let mut table = CaseTable::default();
        let mut map = std::collections::HashMap::new();
        for (n, id) in ids.iter().enumerate() {
            assert!(table.insert_new(*id, n));
            map.insert(*id, n);
        }
        assert!(!table.insert_new(ids[0], 0));
        // Remove every third, the last ones and the first one, in a scattered order.
        for (n, id) in ids.iter().enumerate().rev() {
            if n % 3 == 0 || n + 5 > ids.len() {
                assert_eq!(table.remove(id), map.remove(id));
                assert_eq!(table.remove(id), None);
            }
        }
        *table.get_or_insert_with(ids[1], || 0) += 1_000_000;
        *map.get_mut(&ids[1]).unwrap() += 1_000_000;
        assert_eq!(table.len(), map.len());
        for id in &ids {
            assert_eq!(table.get(id), map.get(id));
        }
        let mut listed: Vec<(CaseId, usize)> = table.iter().map(|(id, n)| (*id, *n)).collect();
        let mut expected: Vec<(CaseId, usize)> = map.into_iter().collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(table.chunks.len(), table.len().div_ceil(CHUNK));
    }
}
