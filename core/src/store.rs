//! Where cases, events, decisions and the outbox are kept.
//!
//! The [`Store`] trait is the engine's only door to persistence. One
//! [`Commit`] holds everything that handling one event produced (the
//! accepted event, the new case, its decisions, the requested actions) and
//! is written atomically, so a crash never keeps a case change without the
//! event that caused it, nor an event without its actions.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Case, CaseId};
use crate::event::{Event, EventError, EventId};
use crate::rules::CustomerStats;

/// An event as the engine accepted it, with the inputs a replay needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub event: Event,
    pub case: CaseId,
    /// The engine's time when it handled the event.
    pub handled_at: Timestamp,
    /// The customer's other cases as the rules saw them.
    pub customer: CustomerStats,
}

/// Everything one event produced, written at once.
#[derive(Clone, Debug)]
pub struct Commit {
    pub accepted: Accepted,
    pub case: Case,
    pub decisions: Vec<Decision>,
    pub actions: Vec<Action>,
}

/// An event the engine refused, kept so nothing sent to it is lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub event: Event,
    pub at: Timestamp,
    pub error: EventError,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("event {0} is already stored")]
    Duplicate(EventId),
    #[error("store failure: {0}")]
    Backend(String),
}

/// Persistence for the engine.
pub trait Store: Send {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError>;
    fn has_event(&self, id: &EventId) -> Result<bool, StoreError>;
    /// Write one event's results atomically; refuses an event id it has.
    fn commit(&mut self, commit: Commit) -> Result<(), StoreError>;
    fn reject(&mut self, rejected: Rejected) -> Result<(), StoreError>;
    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError>;
    /// The accepted events of a case, in the order they were handled.
    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError>;
    /// Actions requested and not yet completed.
    fn pending_actions(&self) -> Result<Vec<Action>, StoreError>;
    fn rejected(&self) -> Result<Vec<Rejected>, StoreError>;
}

/// A store in memory: tests, simulations, benchmarks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    cases: HashMap<CaseId, Case>,
    seen: HashSet<EventId>,
    events: HashMap<CaseId, Vec<Accepted>>,
    outbox: Vec<Action>,
    rejected: Vec<Rejected>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        Ok(self.cases.get(id).cloned())
    }

    fn has_event(&self, id: &EventId) -> Result<bool, StoreError> {
        Ok(self.seen.contains(id))
    }

    fn commit(&mut self, commit: Commit) -> Result<(), StoreError> {
        let id = commit.accepted.event.id.clone();
        if !self.seen.insert(id.clone()) {
            return Err(StoreError::Duplicate(id));
        }
        self.events
            .entry(commit.case.id.clone())
            .or_default()
            .push(commit.accepted);
        self.outbox.extend(commit.actions);
        self.cases.insert(commit.case.id.clone(), commit.case);
        Ok(())
    }

    fn reject(&mut self, rejected: Rejected) -> Result<(), StoreError> {
        self.rejected.push(rejected);
        Ok(())
    }

    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError> {
        let mut ids: Vec<_> = self.cases.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError> {
        Ok(self.events.get(case).cloned().unwrap_or_default())
    }

    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        Ok(self.outbox.clone())
    }

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        Ok(self.rejected.clone())
    }
}
