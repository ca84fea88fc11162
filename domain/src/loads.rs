//! Open tasks per worker, folded from the event log: the "least open load" that routing
//! balances on.
//!
//! A case counts against its assignee from dispatch (or reassignment) until it leaves the
//! assignee's hands: declined, reassigned away, escalated, resolved, or ended.

use std::collections::HashMap;

use wangge_schemas::{CaseEvent, CaseId, EventEnvelope};

/// Cases with a worker each (the holder, or the resolver).
pub type CaseWorkers<'a> = Vec<(CaseId, &'a str)>;

#[derive(Debug, Default, Clone)]
pub struct WorkerLoads {
    /// Who holds each open case, as an index into `names`: there may be a million open
    /// cases and a few thousand workers.
    holder: HashMap<CaseId, u32>,
    /// How many open cases each worker holds.
    open: HashMap<String, u32>,
    /// Who resolved a case awaiting verification: a failed check sends it back to them.
    resolved_by: HashMap<CaseId, u32>,
    /// Every worker id seen, once, and where it is in `names`.
    names: Vec<String>,
    name_index: HashMap<String, u32>,
}

impl WorkerLoads {
    /// Folds one event in. Events of any case, in log order.
    pub fn apply(&mut self, event: &EventEnvelope) {
        match &event.event {
            CaseEvent::Dispatched(dispatched) => self.assign(event.case_id, &dispatched.assignee),
            CaseEvent::Reassigned(reassigned) => self.assign(event.case_id, &reassigned.to_worker),
            CaseEvent::Declined(_) | CaseEvent::Escalated(_) => {
                self.release(event.case_id);
            }
            CaseEvent::Resolved(_) => {
                if let Some(worker) = self.release(event.case_id) {
                    self.resolved_by.insert(event.case_id, worker);
                }
            }
            // Rework sends the case back to the worker who resolved it.
            CaseEvent::ReworkRequested(_) => {
                if let Some(worker) = self.resolved_by.remove(&event.case_id) {
                    let worker = self.names[worker as usize].clone();
                    self.assign(event.case_id, &worker);
                }
            }
            CaseEvent::Closed(_)
            | CaseEvent::Rejected(_)
            | CaseEvent::Merged(_)
            | CaseEvent::Voided(_) => {
                self.release(event.case_id);
                self.resolved_by.remove(&event.case_id);
            }
            _ => {}
        }
    }

    fn assign(&mut self, case_id: CaseId, worker: &str) {
        self.release(case_id);
        match self.open.get_mut(worker) {
            Some(count) => *count += 1,
            None => {
                self.open.insert(worker.to_owned(), 1);
            }
        }
        let name = self.name(worker);
        self.holder.insert(case_id, name);
    }

    fn name(&mut self, worker: &str) -> u32 {
        if let Some(&index) = self.name_index.get(worker) {
            return index;
        }
        let index = u32::try_from(self.names.len()).expect("fewer than 4 billion workers");
        self.names.push(worker.to_owned());
        self.name_index.insert(worker.to_owned(), index);
        index
    }

    /// Takes the case out of its holder's count; returns who held it.
    fn release(&mut self, case_id: CaseId) -> Option<u32> {
        let index = self.holder.remove(&case_id)?;
        let worker = &self.names[index as usize];
        if let Some(count) = self.open.get_mut(worker) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.open.remove(worker);
            }
        }
        Some(index)
    }

    /// Open cases held by a worker.
    pub fn open_cases(&self, worker: &str) -> u32 {
        self.open.get(worker).copied().unwrap_or(0)
    }

    /// The whole map, for routing.
    pub fn by_worker(&self) -> &HashMap<String, u32> {
        &self.open
    }

    pub fn holder_of(&self, case_id: CaseId) -> Option<&str> {
        let index = *self.holder.get(&case_id)?;
        Some(&self.names[index as usize])
    }

    /// Everything the fold keeps, to store it: who holds each open case, and who resolved
    /// each case awaiting verification (the counts follow from the holders).
    pub fn parts(&self) -> (CaseWorkers<'_>, CaseWorkers<'_>) {
        fn named<'a>(map: &HashMap<CaseId, u32>, names: &'a [String]) -> CaseWorkers<'a> {
            map.iter()
                .map(|(case_id, index)| (*case_id, names[*index as usize].as_str()))
                .collect()
        }
        (
            named(&self.holder, &self.names),
            named(&self.resolved_by, &self.names),
        )
    }

    /// The fold carried on from its stored [`parts`](Self::parts).
    pub fn from_parts<'a>(
        holders: impl IntoIterator<Item = (CaseId, &'a str)>,
        resolvers: impl IntoIterator<Item = (CaseId, &'a str)>,
    ) -> Self {
        let mut loads = Self::default();
        for (case_id, worker) in holders {
            loads.assign(case_id, worker);
        }
        for (case_id, worker) in resolvers {
            let name = loads.name(worker);
            loads.resolved_by.insert(case_id, name);
        }
        loads
    }
}
