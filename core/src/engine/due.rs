//! The due-time index: which case needs attention when.
//!
//! `tick(now)` must not scan every open case, so each case's next moments
//! (state timeout, SLA warning and breach, promise checks) are kept in one
//! ordered set. After every step the case's entries are replaced by the
//! ones derived from its new state; `tick` pops what is due.

use std::collections::{BTreeSet, HashMap};

use chrono::Duration;

use crate::Timestamp;
use crate::case::{Case, CaseId, SlaStatus};

use super::Pack;

/// How long before a promise is due the engine checks it again (besides
/// every event on the case and the due moment itself).
pub const PROMISE_CHECKS_BEFORE: [Duration; 3] =
    [Duration::days(2), Duration::days(1), Duration::hours(2)];

/// One moment a case needs attention, and the timer name to fire then.
pub type DueItem = (Timestamp, String);

#[derive(Debug, Default)]
pub struct DueIndex {
    queue: BTreeSet<(Timestamp, CaseId, String)>,
    by_case: HashMap<CaseId, Vec<DueItem>>,
}

impl DueIndex {
    /// Replace the case's entries.
    pub fn set(&mut self, case: &CaseId, items: Vec<DueItem>) {
        if let Some(old) = self.by_case.remove(case) {
            for (t, name) in old {
                self.queue.remove(&(t, case.clone(), name));
            }
        }
        if items.is_empty() {
            return;
        }
        for (t, name) in &items {
            self.queue.insert((*t, case.clone(), name.clone()));
        }
        self.by_case.insert(case.clone(), items);
    }

    /// Take the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, CaseId, String)> {
        let first = self.queue.first()?;
        if first.0 > now {
            return None;
        }
        let entry = self.queue.pop_first()?;
        if let Some(items) = self.by_case.get_mut(&entry.1) {
            items.retain(|(t, n)| !(*t == entry.0 && *n == entry.2));
        }
        Some(entry)
    }

    /// The next moment anything is due.
    pub fn next(&self) -> Option<Timestamp> {
        self.queue.first().map(|e| e.0)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The moments after `now` at which `case` needs attention.
pub fn due_items(pack: &Pack, case: &Case, now: Timestamp) -> Vec<DueItem> {
    let mut items = Vec::new();
    if let Some(t) = pack.timeout_due(case) {
        items.push((t, format!("timeout:{}", case.state)));
    }
    if let Some(plan) = &pack.sla {
        for clock in &case.sla {
            if clock.status == SlaStatus::Running
                && let Some(t) = plan.warn_at(clock)
            {
                items.push((t, format!("sla:{}:warn", clock.kind.as_str())));
            }
            if matches!(clock.status, SlaStatus::Running | SlaStatus::Warned)
                && let Some(t) = plan.due_at(clock)
            {
                items.push((t, format!("sla:{}:breach", clock.kind.as_str())));
            }
        }
    }
    for p in case.promises.iter().filter(|p| p.status.is_open()) {
        let Some(due) = p.due_at() else { continue };
        items.push((due, format!("promise:{}", p.id)));
        for before in PROMISE_CHECKS_BEFORE {
            items.push((due - before, format!("promise:{}", p.id)));
        }
    }
    items.retain(|(t, _)| *t > now);
    items.sort();
    items.dedup();
    items
}
