//! Where cases, events, decisions and the outbox are kept.
//!
//! The [`Store`] trait is the engine's only door to persistence. One
//! [`Commit`] holds everything that handling one event produced (the
//! accepted event, the new case, its decisions, the requested actions); a
//! [`Batch`] holds the commits (and refusals) of several events and is
//! written in ONE transaction, so a crash never keeps a case change without
//! the event that caused it, nor an event without its actions, and events
//! arriving together cost one disk sync, not one each (group commit).
//!
//! The outbox is a work queue with leases, shaped so that several workers
//! (processes, machines) can share one database: a worker
//! [claims](Store::claim_actions) due entries for a while (its lease),
//! executes them, and [completes](Store::complete_action) each as done,
//! retry-at or gave-up. An entry whose worker died is claimed again when
//! its lease runs out. Every claim counts an attempt, so an attempt cut
//! short by a crash is counted too.
//!
//! Two stores ship: [`MemoryStore`] (simulations, tests, benchmarks) and
//! [`sqlite::SqliteStore`] (durable, one file). The trait asks nothing a
//! PostgreSQL store could not do with `INSERT ... ON CONFLICT`, one
//! transaction per batch and `SELECT ... FOR UPDATE SKIP LOCKED` for claims.

pub mod sqlite;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Case, CaseId};
use crate::event::{Event, EventError, EventId};
use crate::rules::{CustomerStats, RuleSetSource};

pub use sqlite::SqliteStore;

/// An event as the engine accepted it, with the inputs a replay needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub event: Event,
    pub case: CaseId,
    /// The engine's time when it handled the event.
    pub handled_at: Timestamp,
    /// The customer's other cases as the rules saw them.
    pub customer: CustomerStats,
    /// The version ([`RuleSet::hash`](crate::rules::RuleSet::hash)) of the
    /// rules that handled it, so replay uses the same rules; `None` in
    /// stores written before versions were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
}

/// Everything one event produced, written at once.
#[derive(Clone, Debug)]
pub struct Commit {
    pub accepted: Accepted,
    pub case: Case,
    pub decisions: Vec<Decision>,
    /// Actions for plugins; they enter the outbox as pending. Engine
    /// built-ins (`task.create`, `case.tag`) never appear here: the engine
    /// carries them out on the case itself.
    pub actions: Vec<Action>,
}

/// An event the engine refused, kept so nothing sent to it is lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub event: Event,
    pub at: Timestamp,
    pub error: EventError,
}

/// The results of several events, written in one transaction: all of it
/// or none of it.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// In the order the events were handled.
    pub commits: Vec<Commit>,
    pub rejected: Vec<Rejected>,
    /// Rule set versions first used by this batch's events, kept so that
    /// replay can compile them again ([`Store::ruleset`]).
    pub rulesets: Vec<RuleSetSource>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.commits.is_empty() && self.rejected.is_empty()
    }
}

impl From<Vec<Commit>> for Batch {
    fn from(commits: Vec<Commit>) -> Self {
        Batch {
            commits,
            ..Batch::default()
        }
    }
}

/// Where an outbox entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting for its next attempt (or being attempted under a lease).
    Pending,
    /// The plugin carried it out.
    Done,
    /// Failed permanently or ran out of attempts; the case was told
    /// through an `action.failed` event.
    GaveUp,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Done => "done",
            ActionStatus::GaveUp => "gave_up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ActionStatus::Pending),
            "done" => Some(ActionStatus::Done),
            "gave_up" => Some(ActionStatus::GaveUp),
            _ => None,
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the outbox: an action and how its execution is going.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub action: Action,
    pub status: ActionStatus,
    /// Claims so far (each claim is one attempt, finished or not).
    pub attempts: u32,
    /// Not to be attempted before this moment.
    pub next_attempt_at: Timestamp,
    /// The worker holding it, while its lease runs.
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// What went wrong the last time, if anything did.
    pub last_error: Option<String>,
    /// The plugin's account of a done action (a Message-ID, ...).
    pub result: Option<serde_json::Value>,
}

impl OutboxEntry {
    /// A new entry, due at once.
    pub fn new(action: Action) -> Self {
        let next_attempt_at = action.requested_at;
        OutboxEntry {
            action,
            status: ActionStatus::Pending,
            attempts: 0,
            next_attempt_at,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            result: None,
        }
    }

    /// Whether a worker may claim it at `now`.
    pub fn claimable(&self, now: Timestamp) -> bool {
        self.status == ActionStatus::Pending
            && self.next_attempt_at <= now
            && self.lease_until.is_none_or(|t| t <= now)
    }
}

/// How one attempt at an action ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionOutcome {
    Done {
        #[serde(default)]
        result: serde_json::Value,
    },
    /// A transient failure: try again at `at`.
    Retry { at: Timestamp, error: String },
    /// A permanent failure or the last attempt failed: stop trying.
    GaveUp { error: String },
}

/// What a worker asks of the outbox: up to `limit` entries due at `now`,
/// for the plugins it can run, held for `lease`.
#[derive(Clone, Debug)]
pub struct ClaimRequest<'a> {
    /// A name unique among live workers (`host:pid:start`).
    pub worker: &'a str,
    pub now: Timestamp,
    pub lease: chrono::Duration,
    pub limit: usize,
    /// Plugin names (`warehouse` in `warehouse.hold`) whose actions this
    /// worker can execute; the others are left pending for a worker that
    /// can. `None`: every plugin.
    pub plugins: Option<&'a [String]>,
}

/// Counts of outbox entries by status, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: usize,
    pub done: usize,
    pub gave_up: usize,
}

/// Why the store could not do what was asked, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("event {0} is already stored")]
    Duplicate(EventId),
    #[error(
        "the database {path} is locked by another process; stop the other `casework` using it or wait and try again"
    )]
    Locked { path: String },
    #[error(
        "the disk holding {path} is full; free space and run again (nothing was lost: the last batch was not committed and will be handled again)"
    )]
    DiskFull { path: String },
    #[error(
        "the database {path} has schema version {found}, made by a newer casework (this one knows up to {supported}); upgrade casework or use another --db"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("cannot open the database {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "the database {path} is damaged ({message}); restore it from a backup or move it aside to start afresh"
    )]
    Corrupt { path: String, message: String },
    #[error(
        "action {action} is no longer leased to worker {worker} (its lease ran out and another worker took it); its result was not recorded and it will be attempted again"
    )]
    LeaseLost { action: String, worker: String },
    #[error("action {0} is not in the outbox")]
    UnknownAction(String),
    #[error("store failure: {0}")]
    Backend(String),
}

/// Persistence for the engine.
///
/// Reads take `&self`; writes take `&mut self`. Every write method is one
/// transaction.
pub trait Store: Send {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError>;
    fn has_event(&self, id: &EventId) -> Result<bool, StoreError>;

    /// Write one event's results atomically; refuses an event id it has.
    fn commit(&mut self, commit: Commit) -> Result<(), StoreError> {
        self.commit_batch(Batch::from(vec![commit]))
    }

    /// Write every commit and refusal of `batch` in one transaction, in
    /// order. All or nothing: an event id already stored (or twice in the
    /// batch) refuses the whole batch with [`StoreError::Duplicate`].
    fn commit_batch(&mut self, batch: Batch) -> Result<(), StoreError>;

    fn reject(&mut self, rejected: Rejected) -> Result<(), StoreError> {
        self.commit_batch(Batch {
            rejected: vec![rejected],
            ..Batch::default()
        })
    }

    /// Every case id, sorted.
    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError>;
    /// The accepted events of a case, in the order they were handled.
    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError>;
    /// The decisions recorded for a case, in order.
    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError>;
    /// How many events are stored.
    fn event_count(&self) -> Result<usize, StoreError>;
    /// A rule set version kept by [`commit_batch`](Store::commit_batch).
    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError>;

    /// Actions requested and not yet done or given up, oldest first.
    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        Ok(self
            .outbox()?
            .into_iter()
            .filter(|e| e.status == ActionStatus::Pending)
            .map(|e| e.action)
            .collect())
    }
    /// The whole outbox, in the order actions were requested.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    /// One outbox entry.
    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError>;
    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut counts = OutboxCounts::default();
        for e in self.outbox()? {
            match e.status {
                ActionStatus::Pending => counts.pending += 1,
                ActionStatus::Done => counts.done += 1,
                ActionStatus::GaveUp => counts.gave_up += 1,
            }
        }
        Ok(counts)
    }

    /// Lease up to `req.limit` pending entries that are due (next attempt
    /// at or before `req.now`) and not leased (or whose lease ran out), to
    /// `req.worker` until `req.now + req.lease`, counting one attempt each.
    /// Oldest due first.
    fn claim_actions(&mut self, req: &ClaimRequest<'_>) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Record how an attempt ended and release the lease. Refused with
    /// [`StoreError::LeaseLost`] if `worker` no longer holds the entry, so
    /// two workers never both record an outcome.
    fn complete_action(
        &mut self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
    ) -> Result<(), StoreError>;

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError>;

    // Narrow reads for the console (`casework serve`): each answers one
    // page's question from an index, so a page costs what it shows, not
    // what the store holds. The defaults go through the dumps above, for
    // stores that have no index for them yet.

    /// Up to `limit` cases whose state is one of `states` (the queue asks
    /// for the open states), most recently updated first.
    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError> {
        let mut out = Vec::new();
        for id in self.case_ids()? {
            if let Some(case) = self.load(&id)?
                && states.contains(&case.state.as_str())
            {
                out.push(case);
            }
        }
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// How many cases are in each state (states with none are left out).
    fn state_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for id in self.case_ids()? {
            if let Some(case) = self.load(&id)? {
                *counts.entry(case.state.0).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// The outbox entries of one case, in the order they were requested.
    fn actions_for_case(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .outbox()?
            .into_iter()
            .filter(|e| &e.action.case == case)
            .collect())
    }

    /// The pending action requested longest ago (for the backlog's age).
    fn oldest_pending_action(&self) -> Result<Option<Action>, StoreError> {
        Ok(self.pending_actions()?.into_iter().next())
    }
}

/// A store in memory: tests, simulations, benchmarks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    cases: HashMap<CaseId, Case>,
    seen: HashSet<EventId>,
    events: HashMap<CaseId, Vec<Accepted>>,
    decisions: HashMap<CaseId, Vec<Decision>>,
    outbox: Vec<OutboxEntry>,
    outbox_index: HashMap<String, usize>,
    rejected: Vec<Rejected>,
    rulesets: HashMap<String, RuleSetSource>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Check a batch for event ids already stored or repeated in it.
fn check_new(
    batch: &Batch,
    stored: impl Fn(&EventId) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut ids = HashSet::new();
    for c in &batch.commits {
        let id = &c.accepted.event.id;
        if !ids.insert(id) || stored(id)? {
            return Err(StoreError::Duplicate(id.clone()));
        }
    }
    Ok(())
}

impl Store for MemoryStore {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        Ok(self.cases.get(id).cloned())
    }

    fn has_event(&self, id: &EventId) -> Result<bool, StoreError> {
        Ok(self.seen.contains(id))
    }

    fn commit_batch(&mut self, batch: Batch) -> Result<(), StoreError> {
        check_new(&batch, |id| Ok(self.seen.contains(id)))?;
        for commit in batch.commits {
            self.seen.insert(commit.accepted.event.id.clone());
            self.events
                .entry(commit.case.id.clone())
                .or_default()
                .push(commit.accepted);
            self.decisions
                .entry(commit.case.id.clone())
                .or_default()
                .extend(commit.decisions);
            for action in commit.actions {
                if self.outbox_index.contains_key(&action.id) {
                    continue;
                }
                self.outbox_index
                    .insert(action.id.clone(), self.outbox.len());
                self.outbox.push(OutboxEntry::new(action));
            }
            self.cases.insert(commit.case.id.clone(), commit.case);
        }
        self.rejected.extend(batch.rejected);
        for source in batch.rulesets {
            self.rulesets.entry(source.hash.clone()).or_insert(source);
        }
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

    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError> {
        Ok(self.decisions.get(case).cloned().unwrap_or_default())
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.seen.len())
    }

    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError> {
        Ok(self.rulesets.get(hash).cloned())
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.outbox.clone())
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.outbox_index.get(id).map(|&i| self.outbox[i].clone()))
    }

    fn claim_actions(&mut self, req: &ClaimRequest<'_>) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<usize> = (0..self.outbox.len())
            .filter(|&i| {
                let e = &self.outbox[i];
                e.claimable(req.now)
                    && req
                        .plugins
                        .is_none_or(|ps| ps.iter().any(|p| p == e.action.plugin()))
            })
            .collect();
        due.sort_by_key(|&i| (self.outbox[i].next_attempt_at, i));
        due.truncate(req.limit);
        let until = req.now + req.lease;
        Ok(due
            .into_iter()
            .map(|i| {
                let e = &mut self.outbox[i];
                e.attempts += 1;
                e.lease_owner = Some(req.worker.to_owned());
                e.lease_until = Some(until);
                e.clone()
            })
            .collect())
    }

    fn complete_action(
        &mut self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
    ) -> Result<(), StoreError> {
        let &i = self
            .outbox_index
            .get(id)
            .ok_or_else(|| StoreError::UnknownAction(id.to_owned()))?;
        let e = &mut self.outbox[i];
        if e.status != ActionStatus::Pending || e.lease_owner.as_deref() != Some(worker) {
            return Err(StoreError::LeaseLost {
                action: id.to_owned(),
                worker: worker.to_owned(),
            });
        }
        e.lease_owner = None;
        e.lease_until = None;
        match outcome {
            ActionOutcome::Done { result } => {
                e.status = ActionStatus::Done;
                e.result = Some(result);
            }
            ActionOutcome::Retry { at, error } => {
                e.next_attempt_at = at;
                e.last_error = Some(error);
            }
            ActionOutcome::GaveUp { error } => {
                e.status = ActionStatus::GaveUp;
                e.last_error = Some(error);
            }
        }
        Ok(())
    }

    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError> {
        let mut out: Vec<Case> = self
            .cases
            .values()
            .filter(|c| states.contains(&c.state.as_str()))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    fn state_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for case in self.cases.values() {
            *counts.entry(case.state.0.clone()).or_default() += 1;
        }
        Ok(counts)
    }

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        Ok(self.rejected.clone())
    }
}

/// The contract every [`Store`] must keep, as one test to run against
/// each implementation (the SQLite store runs it too).
#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use crate::case::Case;
    use crate::case::StateId;
    use chrono::Duration;

    pub fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn commit(event: &str, case: &str, actions: &[&str]) -> Commit {
        let at = t("2026-11-25T10:00:00+09:00");
        let id = CaseId(case.into());
        let mut c = Case::open(id.clone(), at, StateId("new".into()));
        c.events.push(EventId(event.into()));
        let ev = Event::new(event, at, "customer.message", Some(id.clone())).with("text", "hi");
        Commit {
            accepted: Accepted {
                event: ev,
                case: id.clone(),
                handled_at: at,
                customer: CustomerStats::default(),
                ruleset: None,
            },
            decisions: vec![Decision {
                at,
                case: id.clone(),
                event: Some(EventId(event.into())),
                what: crate::audit::DecisionKind::Event {
                    event_kind: "customer.message".into(),
                    summary: None,
                },
                rule: None,
                ruleset: None,
                inputs: None,
            }],
            case: c,
            actions: actions
                .iter()
                .enumerate()
                .map(|(i, a)| Action {
                    id: format!("{event}/{i}"),
                    case: id.clone(),
                    action: (*a).to_owned(),
                    params: serde_json::json!({"case": case}),
                    requested_at: at,
                    event: EventId(event.into()),
                    requested_by: "test".into(),
                })
                .collect(),
        }
    }

    /// Run the contract against a fresh, empty store.
    pub fn check(store: &mut dyn Store) {
        let now = t("2026-11-25T10:00:00+09:00");
        // Group commit: all or nothing.
        store
            .commit_batch(Batch::from(vec![
                commit("e1", "C-1", &["team.notify", "warehouse.hold"]),
                commit("e2", "C-2", &["email.send"]),
            ]))
            .unwrap();
        let err = store
            .commit_batch(Batch::from(vec![
                commit("e3", "C-3", &[]),
                commit("e1", "C-1", &[]),
            ]))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate(ref id) if id.0 == "e1"),
            "{err}"
        );
        assert!(!store.has_event(&EventId("e3".into())).unwrap());
        assert!(store.load(&CaseId("C-3".into())).unwrap().is_none());
        assert!(matches!(
            store.commit(commit("e1", "C-1", &[])),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(store.event_count().unwrap(), 2);
        assert_eq!(
            store.case_ids().unwrap(),
            vec![CaseId("C-1".into()), CaseId("C-2".into())]
        );
        let c1 = store.load(&CaseId("C-1".into())).unwrap().unwrap();
        assert_eq!(c1, commit("e1", "C-1", &[]).case);
        assert_eq!(store.events(&CaseId("C-1".into())).unwrap().len(), 1);
        assert_eq!(store.decisions(&CaseId("C-1".into())).unwrap().len(), 1);
        assert_eq!(store.pending_actions().unwrap().len(), 3);

        // Claims: only the plugins asked for, a lease, attempts counted.
        let plugins = vec!["team".to_owned(), "email".to_owned()];
        let req = ClaimRequest {
            worker: "w1",
            now,
            lease: Duration::seconds(30),
            limit: 10,
            plugins: Some(&plugins),
        };
        let claimed = store.claim_actions(&req).unwrap();
        let ids: Vec<_> = claimed.iter().map(|e| e.action.id.as_str()).collect();
        assert_eq!(ids, ["e1/0", "e2/0"]);
        assert!(claimed.iter().all(|e| e.attempts == 1));
        // Leased: a second worker gets nothing until the lease runs out.
        let w2 = ClaimRequest {
            worker: "w2",
            ..req.clone()
        };
        assert!(store.claim_actions(&w2).unwrap().is_empty());
        let later = ClaimRequest {
            now: now + Duration::seconds(31),
            ..w2.clone()
        };
        let stolen = store.claim_actions(&later).unwrap();
        assert_eq!(stolen.len(), 2);
        assert!(stolen.iter().all(|e| e.attempts == 2));
        // w1 lost its lease: its outcome is refused.
        assert!(matches!(
            store.complete_action(
                "e1/0",
                "w1",
                ActionOutcome::Done {
                    result: serde_json::Value::Null
                }
            ),
            Err(StoreError::LeaseLost { .. })
        ));
        store
            .complete_action(
                "e1/0",
                "w2",
                ActionOutcome::Done {
                    result: serde_json::json!({"ok": 1}),
                },
            )
            .unwrap();
        let retry_at = now + Duration::minutes(5);
        store
            .complete_action(
                "e2/0",
                "w2",
                ActionOutcome::Retry {
                    at: retry_at,
                    error: "timeout".into(),
                },
            )
            .unwrap();
        // Not due before its retry time.
        let soon = ClaimRequest {
            now: now + Duration::minutes(1),
            ..w2.clone()
        };
        assert!(store.claim_actions(&soon).unwrap().is_empty());
        let due = ClaimRequest {
            now: retry_at,
            limit: 1,
            plugins: None,
            ..w2.clone()
        };
        let again = store.claim_actions(&due).unwrap();
        // `warehouse.hold` was due first (never attempted, requested earlier).
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].action.id, "e1/1");
        let again = store.claim_actions(&due).unwrap();
        assert_eq!(again[0].action.id, "e2/0");
        assert_eq!(again[0].attempts, 3);
        assert_eq!(again[0].last_error.as_deref(), Some("timeout"));
        store
            .complete_action(
                "e2/0",
                "w2",
                ActionOutcome::GaveUp {
                    error: "bad address".into(),
                },
            )
            .unwrap();
        assert!(matches!(
            store.complete_action("e2/0", "w2", ActionOutcome::GaveUp { error: "x".into() }),
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.complete_action("nope", "w2", ActionOutcome::GaveUp { error: "x".into() }),
            Err(StoreError::UnknownAction(_))
        ));
        let e = store.outbox_entry("e1/0").unwrap().unwrap();
        assert_eq!(e.status, ActionStatus::Done);
        assert_eq!(e.result, Some(serde_json::json!({"ok": 1})));
        assert_eq!(e.lease_owner, None);
        assert_eq!(
            store.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 1,
                done: 1,
                gave_up: 1
            }
        );
        let ids: Vec<_> = store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|e| e.action.id)
            .collect();
        assert_eq!(ids, ["e1/0", "e1/1", "e2/0"]);

        // The console's narrow reads.
        let c1 = CaseId("C-1".into());
        let ids: Vec<_> = store
            .actions_for_case(&c1)
            .unwrap()
            .into_iter()
            .map(|e| (e.action.id, e.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("e1/0".to_owned(), ActionStatus::Done),
                ("e1/1".to_owned(), ActionStatus::Pending)
            ]
        );
        assert!(
            store
                .actions_for_case(&CaseId("C-9".into()))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.oldest_pending_action().unwrap().map(|a| a.id),
            Some("e1/1".to_owned())
        );
        let mut later = commit("e4", "C-4", &[]);
        later.case.state = crate::case::StateId("triage".into());
        later.case.updated_at = now + Duration::minutes(1);
        store.commit(later).unwrap();
        let open: Vec<_> = store
            .cases_in_states(&["new", "triage"], 10)
            .unwrap()
            .into_iter()
            .map(|c| c.id.0)
            .collect();
        assert_eq!(open, ["C-4", "C-1", "C-2"], "most recently updated first");
        let open = store.cases_in_states(&["triage"], 10).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(store.cases_in_states(&["new"], 1).unwrap().len(), 1);
        assert!(store.cases_in_states(&[], 10).unwrap().is_empty());
        let counts = store.state_counts().unwrap();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [("new".to_owned(), 2), ("triage".to_owned(), 1)]
        );

        // Refusals are kept.
        let ev = Event::new("bad", now, "nope.kind", None);
        store
            .reject(Rejected {
                event: ev.clone(),
                at: now,
                error: EventError::UnknownKind {
                    event: ev.id.clone(),
                    kind: "nope.kind".into(),
                },
            })
            .unwrap();
        assert_eq!(store.rejected().unwrap().len(), 1);
        assert_eq!(store.rejected().unwrap()[0].event, ev);
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        check(&mut MemoryStore::new());
    }
}
