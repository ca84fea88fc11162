//! Open tasks per worker, folded from the event log: the "least open load" that routing
//! balances on.
//!
//! A case counts against its assignee from dispatch (or reassignment) until it leaves the
//! assignee's hands: declined, reassigned away, escalated, resolved, or ended.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wangge_schemas::{CaseEvent, CaseId, EventEnvelope};

/// Cases with a worker each (the holder, or the resolver).
pub type CaseWorkers<'a> = Vec<(CaseId, &'a str)>;

#[derive(Debug, Default, Clone)]
pub struct WorkerLoads {
    /// Who holds each open case. Worker ids are shared (`names`): there are a million open
    /// cases and a few thousand workers.
    holder: HashMap<CaseId, Arc<str>>,
    /// How many open cases each worker holds.
    open: HashMap<String, u32>,
    /// Who resolved a case awaiting verification: a failed check sends it back to them.
    resolved_by: HashMap<CaseId, Arc<str>>,
    /// Every worker id seen, once.
    names: HashSet<Arc<str>>,
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
        *self.open.entry(worker.to_owned()).or_default() += 1;
        let name = self.name(worker);
        self.holder.insert(case_id, name);
    }

    fn name(&mut self, worker: &str) -> Arc<str> {
        if let Some(name) = self.names.get(worker) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(worker);
        self.names.insert(name.clone());
        name
    }

    /// Takes the case out of its holder's count; returns who held it.
    fn release(&mut self, case_id: CaseId) -> Option<Arc<str>> {
        let worker = self.holder.remove(&case_id)?;
        if let Some(count) = self.open.get_mut(&*worker) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.open.remove(&*worker);
            }
        }
        Some(worker)
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
        self.holder.get(&case_id).map(|name| &**name)
    }

    /// Everything the fold keeps, to store it: who holds each open case, and who resolved
    /// each case awaiting verification (the counts follow from the holders).
    pub fn parts(&self) -> (CaseWorkers<'_>, CaseWorkers<'_>) {
        fn list(map: &HashMap<CaseId, Arc<str>>) -> Vec<(CaseId, &str)> {
            map.iter()
                .map(|(case_id, name)| (*case_id, &**name))
                .collect()
        }
        (list(&self.holder), list(&self.resolved_by))
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
