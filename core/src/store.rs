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

pub mod postgres;
pub mod sqlite;

mod rows;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Case, CaseId, Channel, Past};
use crate::config::PackSource;
use crate::event::{Event, EventError, EventId};
use crate::rules::{CustomerStats, RuleSetSource};

pub use sqlite::SqliteStore;
pub use timers::{Timer, TimerQueue};

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
    /// The version ([`Pack::hash`](crate::engine::Pack::hash)) of the
    /// workflow, directory, calendars and plugin settings that handled it;
    /// `None` in stores written before packs were versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
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
    /// What left the case row with this event, appended to its history.
    pub past: Vec<Past>,
    /// The case's timers after this event; they replace the ones it had.
    pub timers: Vec<Timer>,
    /// Orders, tracking numbers and Message-IDs this event tied to the
    /// case, as [`Link::key`]s.
    pub links: Vec<String>,
    /// Whether the case is still open (not in a terminal state).
    pub open: bool,
}

/// How an event names its case when it has no case id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link<'a> {
    Order(&'a str),
    Tracking(&'a str),
    /// An e-mail's Message-ID, with or without its angle brackets.
    MessageId(&'a str),
}

impl Link<'_> {
    /// The key the store indexes it by: `order:O-77`, `tracking:JP123`,
    /// `message:abc@x` (`<abc@x>` and `abc@x` name the same message).
    pub fn key(&self) -> String {
        match self {
            Link::Order(o) => format!("order:{o}"),
            Link::Tracking(t) => format!("tracking:{t}"),
            Link::MessageId(m) => format!(
                "message:{}",
                m.trim().trim_start_matches('<').trim_end_matches('>')
            ),
        }
    }
}

/// The order and tracking-number links a case makes, as [`Link::key`]s.
pub fn order_links(case: &Case) -> Vec<String> {
    let mut keys = Vec::new();
    for o in &case.orders {
        keys.push(Link::Order(o.id.as_str()).key());
        if let Some(t) = &o.tracking {
            keys.push(Link::Tracking(t).key());
        }
    }
    keys
}

/// The Message-ID links of the messages among `past`.
pub fn message_links(past: &[Past]) -> impl Iterator<Item = String> + '_ {
    past.iter().filter_map(|p| match p {
        Past::Message(m) => m.message_id.as_deref().map(|m| Link::MessageId(m).key()),
        _ => None,
    })
}

/// What one of a customer's cases contributes to the rules' view of the
/// customer's other cases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSummary {
    pub case: CaseId,
    pub contacts: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_channel: BTreeMap<Channel, u32>,
    pub open: bool,
}

impl CaseSummary {
    pub fn of(case: &Case, open: bool) -> Self {
        CaseSummary {
            case: case.id.clone(),
            contacts: case.contacts,
            by_channel: case.contacts_by_channel.clone(),
            open,
        }
    }
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
    /// Pack versions first used by this batch's events.
    pub packs: Vec<PackSource>,
    /// Timers fired by this batch: they leave the store (a case that
    /// stepped gets its new timers from its commit).
    pub fired: Vec<Timer>,
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

    /// The first moment a worker may claim it: its next attempt, or the
    /// end of its lease if that is later.
    pub fn claimable_at(&self) -> Timestamp {
        match self.lease_until {
            Some(l) if l > self.next_attempt_at => l,
            _ => self.next_attempt_at,
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
    #[error(
        "partition {partition} is no longer leased to this worker ({worker}): its lease ran out or another worker took it over; nothing of this batch was kept, and the partition's owner handles its events"
    )]
    Fenced { partition: u32, worker: String },
    #[error("action {0} is not in the outbox")]
    UnknownAction(String),
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// Why an outcome for action `id` was not recorded: it is someone
    /// else's now ([`LeaseLost`](Self::LeaseLost)) or, when the store has
    /// no such action, [`UnknownAction`](Self::UnknownAction).
    pub fn not_recorded(id: &str, worker: &str, exists: bool) -> StoreError {
        if exists {
            StoreError::LeaseLost {
                action: id.to_owned(),
                worker: worker.to_owned(),
            }
        } else {
            StoreError::UnknownAction(id.to_owned())
        }
    }
}

/// An event acknowledged by a worker, for the owner of its case's
/// partition ([`Inbox`]).
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The event, its `case` set to the case it was resolved to.
    pub event: Event,
    /// Correlation keys ([`Link::key`]) the event claims for its case
    /// when it opens one: the first event naming an order wins it, so two
    /// workers acknowledging events of one new order at once agree on the
    /// case.
    pub claims: Vec<String>,
    /// Keys linked to the event's case as it is acknowledged (a message's
    /// own Message-ID, so that a reply acknowledged before the message is
    /// handled finds its case); a key already linked keeps its case.
    pub links: Vec<String>,
}

/// What became of an [`Arrival`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Stored in the inbox for this case's owner.
    Queued(CaseId),
    /// Its id is already stored or waiting: nothing was added.
    Duplicate,
}

/// How much waits in an [`Inbox`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Backlog {
    pub waiting: usize,
    /// Age of the oldest waiting event.
    pub oldest_seconds: Option<f64>,
}

/// The inbox of a store shared by several workers (PostgreSQL): events
/// any worker acknowledged, waiting for their partition's owner, which
/// handles them in the order they were acknowledged. Handling an event
/// removes it from the inbox in the commit that stores it.
pub trait Inbox {
    /// Store `arrivals` durably, in one transaction; after it returns,
    /// every `Queued` one is acknowledged.
    fn enqueue(&mut self, arrivals: Vec<Arrival>) -> Result<Vec<Queued>, StoreError>;
    /// The oldest waiting events of each partition this worker holds (at
    /// most `per_partition` each), in acknowledgement order per partition.
    fn next_arrivals(&mut self, per_partition: usize) -> Result<Vec<Event>, StoreError>;
    /// Drop waiting events that turned out to be stored already.
    fn forget(&mut self, ids: &[EventId]) -> Result<(), StoreError>;
    /// How many events wait, over all partitions.
    fn backlog(&mut self) -> Result<Backlog, StoreError>;
    /// The partitions this worker holds, with their epochs.
    fn leases(&mut self) -> Vec<postgres::PartitionLease>;
}

/// Persistence for the engine.
///
/// The trait is shaped by what the engine asks on its hot path (a case by
/// id, the case an order belongs to, the timers due before a moment, the
/// actions due now), each answered from an index, so the cost of handling
/// an event, of `tick` and of claiming work follows what is asked and
/// what is due, never what the store holds. Reads that walk a case's
/// whole past (`events`, `decisions`, `past`) serve replay and the
/// places that show a case; listings of everything (`case_ids`,
/// `outbox_page`) serve tools.
///
/// Reads take `&self`; writes take `&mut self`. Every write method is one
/// transaction.
pub trait Store: Send {
    /// A case's present: its row, of bounded size.
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError>;
    fn has_event(&self, id: &EventId) -> Result<bool, StoreError>;
    /// The stored ones of `ids`: one question for a batch.
    fn load_cases(&self, ids: &[&CaseId]) -> Result<Vec<Case>, StoreError> {
        let mut cases = Vec::new();
        for id in ids {
            cases.extend(self.load(id)?);
        }
        Ok(cases)
    }
    /// Which of `ids` are stored: one question for a batch (a store
    /// across a network answers it in one round trip).
    fn stored_events(&self, ids: &[&EventId]) -> Result<HashSet<EventId>, StoreError> {
        let mut stored = HashSet::new();
        for id in ids {
            if self.has_event(id)? {
                stored.insert((*id).clone());
            }
        }
        Ok(stored)
    }

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

    // ---- correlation -------------------------------------------------

    /// The case an order, a tracking number or a Message-ID belongs to
    /// (the last case that named it).
    fn linked_case(&self, link: &Link) -> Result<Option<CaseId>, StoreError>;
    /// One customer's cases (by [`Customer::key`](crate::case::Customer::key)), summarised.
    fn customer_cases(&self, key: &str) -> Result<Vec<CaseSummary>, StoreError>;
    /// Several customers' cases: one question for a batch.
    fn customers_cases(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<CaseSummary>>, StoreError> {
        keys.iter()
            .map(|k| Ok((k.clone(), self.customer_cases(k)?)))
            .collect()
    }

    // ---- timers ------------------------------------------------------

    /// Timers due at or before `until`, earliest first, at most `limit`.
    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError>;
    /// When the earliest timer is due.
    fn next_timer(&self) -> Result<Option<Timestamp>, StoreError>;
    /// How many timers wait.
    fn timer_count(&self) -> Result<usize, StoreError>;
    /// A case's timers, earliest first.
    fn case_timers(&self, case: &CaseId) -> Result<Vec<Timer>, StoreError>;
    /// Replace a case's timers and say whether it is open, outside a
    /// commit: only for [`Store::timers_stale`] stores, rebuilt once.
    fn refresh_case(&mut self, case: &Case, timers: &[Timer], open: bool)
    -> Result<(), StoreError>;
    /// Whether the timers must be rebuilt from the cases once (a store
    /// migrated from a release that kept them in memory).
    fn timers_stale(&self) -> Result<bool, StoreError>;
    /// The rebuild is done.
    fn timers_rebuilt(&mut self) -> Result<(), StoreError>;

    // ---- a case's past: replay and the places that show a case --------

    /// Every case id, sorted: for tools.
    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError>;
    /// Up to `limit` case ids after `after` (from the first with `None`),
    /// sorted: a walk over every case, a page at a time, for tools that
    /// must not hold every id of a large store (`casework verify`).
    fn case_ids_after(
        &self,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<CaseId>, StoreError>;
    /// How many cases are stored.
    fn case_count(&self) -> Result<usize, StoreError>;
    /// The accepted events of a case, in the order they were handled.
    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError>;
    /// The decisions recorded for a case, in order.
    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError>;
    /// What left the case row, in the order it left (see [`Past`]).
    fn past(&self, case: &CaseId) -> Result<Vec<Past>, StoreError>;
    /// How many events are stored.
    fn event_count(&self) -> Result<usize, StoreError>;
    /// A rule set version kept by [`commit_batch`](Store::commit_batch).
    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError>;
    /// A pack version kept by [`commit_batch`](Store::commit_batch).
    fn pack(&self, hash: &str) -> Result<Option<PackSource>, StoreError>;

    // ---- the outbox --------------------------------------------------

    /// Actions requested and not yet done or given up, oldest first.
    fn pending_actions(&self) -> Result<Vec<Action>, StoreError>;
    /// Pending actions per plugin name (`warehouse` of `warehouse.hold`).
    fn pending_by_plugin(&self) -> Result<BTreeMap<String, usize>, StoreError>;
    /// A case's actions, in the order they were requested.
    fn case_actions(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Up to `limit` outbox entries from position `offset`, in the order
    /// actions were requested: for tools.
    fn outbox_page(&self, offset: usize, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;
    /// The whole outbox, page by page: for tools and tests, never a hot path.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        const PAGE: usize = 1000;
        let mut all = Vec::new();
        loop {
            let page = self.outbox_page(all.len(), PAGE)?;
            let last = page.len() < PAGE;
            all.extend(page);
            if last {
                return Ok(all);
            }
        }
    }
    /// One outbox entry.
    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError>;
    /// Entries by status, kept as counters (never counted by a scan).
    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    /// When the next pending action of one of `plugins` (all: `None`)
    /// can be claimed: its next attempt, or the end of its lease.
    fn next_action_due(&self, plugins: Option<&[String]>) -> Result<Option<Timestamp>, StoreError>;

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
    ) -> Result<(), StoreError> {
        let mut answers = self.complete_actions(worker, vec![(id.to_owned(), outcome)])?;
        answers.pop().unwrap_or(Ok(()))
    }

    /// [`complete_action`](Self::complete_action) for several actions in
    /// one transaction (an outbox pass records its batch at once): one
    /// answer per action, in order ([`StoreError::not_recorded`] for one
    /// not recorded); the outer error is a failed transaction, which
    /// recorded none of them.
    fn complete_actions(
        &mut self,
        worker: &str,
        outcomes: Vec<(String, ActionOutcome)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError>;
    /// How many events were refused.
    fn rejected_count(&self) -> Result<usize, StoreError>;

    // Reads for the console (`casework serve`): each answers one page's
    // question from an index, so a page costs what it shows, not what
    // the store holds.

    /// Up to `limit` cases whose state is one of `states` (the queue asks
    /// for the open states), most recently updated first.
    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError>;
    /// How many cases are in each state (states with none are left out).
    fn state_counts(&self) -> Result<BTreeMap<String, usize>, StoreError>;
    /// The pending action requested longest ago (for the backlog's age).
    fn oldest_pending_action(&self) -> Result<Option<Action>, StoreError>;

    /// The shared inbox, for a store that several workers use; `None`
    /// for a store one process owns.
    fn inbox(&mut self) -> Option<&mut dyn Inbox> {
        None
    }
}

/// A store in memory: tests, simulations, benchmarks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    cases: HashMap<CaseId, Case>,
    summaries: HashMap<CaseId, (Option<String>, CaseSummary)>,
    customers: HashMap<String, BTreeSet<CaseId>>,
    links: HashMap<String, CaseId>,
    timers: TimerQueue,
    timers_stale: bool,
    seen: HashSet<EventId>,
    events: HashMap<CaseId, Vec<Accepted>>,
    decisions: HashMap<CaseId, Vec<Decision>>,
    past: HashMap<CaseId, Vec<Past>>,
    outbox: Vec<OutboxEntry>,
    outbox_index: HashMap<String, usize>,
    /// Positions of pending entries, so claims look at what is pending only.
    pending: BTreeSet<usize>,
    by_case: HashMap<CaseId, Vec<usize>>,
    counts: OutboxCounts,
    rejected: Vec<Rejected>,
    rulesets: HashMap<String, RuleSetSource>,
    packs: HashMap<String, PackSource>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(&mut self, commit: Commit) {
        let id = commit.case.id.clone();
        self.seen.insert(commit.accepted.event.id.clone());
        for link in &commit.links {
            self.links.insert(link.clone(), id.clone());
        }
        let key = commit.case.customer.key();
        if let Some((Some(old), _)) = self.summaries.get(&id)
            && Some(old) != key.as_ref()
            && let Some(set) = self.customers.get_mut(old)
        {
            set.remove(&id);
        }
        if let Some(k) = &key {
            self.customers
                .entry(k.clone())
                .or_default()
                .insert(id.clone());
        }
        self.summaries.insert(
            id.clone(),
            (key, CaseSummary::of(&commit.case, commit.open)),
        );
        self.timers.set(&id, &commit.timers);
        self.events
            .entry(id.clone())
            .or_default()
            .push(commit.accepted);
        self.decisions
            .entry(id.clone())
            .or_default()
            .extend(commit.decisions);
        if !commit.past.is_empty() {
            self.past.entry(id.clone()).or_default().extend(commit.past);
        }
        for action in commit.actions {
            if self.outbox_index.contains_key(&action.id) {
                continue;
            }
            let i = self.outbox.len();
            self.outbox_index.insert(action.id.clone(), i);
            self.by_case.entry(action.case.clone()).or_default().push(i);
            self.pending.insert(i);
            self.counts.pending += 1;
            self.outbox.push(OutboxEntry::new(action));
        }
        self.cases.insert(id, commit.case);
    }

    /// One outcome of [`Store::complete_actions`].
    fn complete_one(
        &mut self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
    ) -> Result<(), StoreError> {
        let mine = |e: &OutboxEntry| {
            e.status == ActionStatus::Pending && e.lease_owner.as_deref() == Some(worker)
        };
        let i = match self.outbox_index.get(id) {
            Some(&i) if mine(&self.outbox[i]) => i,
            found => return Err(StoreError::not_recorded(id, worker, found.is_some())),
        };
        let e = &mut self.outbox[i];
        e.lease_owner = None;
        e.lease_until = None;
        match outcome {
            ActionOutcome::Done { result } => {
                e.status = ActionStatus::Done;
                e.result = Some(result);
                self.counts.done += 1;
            }
            ActionOutcome::Retry { at, error } => {
                e.next_attempt_at = at;
                e.last_error = Some(error);
                return Ok(());
            }
            ActionOutcome::GaveUp { error } => {
                e.status = ActionStatus::GaveUp;
                e.last_error = Some(error);
                self.counts.gave_up += 1;
            }
        }
        self.pending.remove(&i);
        self.counts.pending -= 1;
        Ok(())
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
        for t in &batch.fired {
            self.timers.remove(t);
        }
        for commit in batch.commits {
            self.apply(commit);
        }
        self.rejected.extend(batch.rejected);
        for source in batch.rulesets {
            self.rulesets.entry(source.hash.clone()).or_insert(source);
        }
        for source in batch.packs {
            self.packs.entry(source.hash.clone()).or_insert(source);
        }
        Ok(())
    }

    fn linked_case(&self, link: &Link) -> Result<Option<CaseId>, StoreError> {
        Ok(self.links.get(&link.key()).cloned())
    }

    fn customer_cases(&self, key: &str) -> Result<Vec<CaseSummary>, StoreError> {
        let Some(ids) = self.customers.get(key) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| self.summaries.get(id).map(|(_, s)| s.clone()))
            .collect())
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError> {
        Ok(self.timers.due(until, limit))
    }

    fn next_timer(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.timers.next())
    }

    fn timer_count(&self) -> Result<usize, StoreError> {
        Ok(self.timers.len())
    }

    fn case_timers(&self, case: &CaseId) -> Result<Vec<Timer>, StoreError> {
        Ok(self.timers.of(case))
    }

    fn refresh_case(
        &mut self,
        case: &Case,
        timers: &[Timer],
        open: bool,
    ) -> Result<(), StoreError> {
        self.timers.set(&case.id, timers);
        if let Some((_, s)) = self.summaries.get_mut(&case.id) {
            s.open = open;
        }
        Ok(())
    }

    fn timers_stale(&self) -> Result<bool, StoreError> {
        Ok(self.timers_stale)
    }

    fn timers_rebuilt(&mut self) -> Result<(), StoreError> {
        self.timers_stale = false;
        Ok(())
    }

    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError> {
        let mut ids: Vec<_> = self.cases.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    /// Sorts what is left after `after` on each page: the cases are
    /// hashed for the engine's lookups, and this store holds them all in
    /// memory anyway.
    fn case_ids_after(
        &self,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<CaseId>, StoreError> {
        let mut ids: Vec<_> = self
            .cases
            .keys()
            .filter(|id| after.is_none_or(|a| *id > a))
            .collect();
        if ids.len() > limit {
            ids.select_nth_unstable(limit);
            ids.truncate(limit);
        }
        ids.sort();
        Ok(ids.into_iter().cloned().collect())
    }

    fn case_count(&self) -> Result<usize, StoreError> {
        Ok(self.cases.len())
    }

    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError> {
        Ok(self.events.get(case).cloned().unwrap_or_default())
    }

    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError> {
        Ok(self.decisions.get(case).cloned().unwrap_or_default())
    }

    fn past(&self, case: &CaseId) -> Result<Vec<Past>, StoreError> {
        Ok(self.past.get(case).cloned().unwrap_or_default())
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.seen.len())
    }

    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError> {
        Ok(self.rulesets.get(hash).cloned())
    }

    fn pack(&self, hash: &str) -> Result<Option<PackSource>, StoreError> {
        Ok(self.packs.get(hash).cloned())
    }

    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        Ok(self
            .pending
            .iter()
            .map(|&i| self.outbox[i].action.clone())
            .collect())
    }

    fn pending_by_plugin(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut by = BTreeMap::new();
        for &i in &self.pending {
            *by.entry(self.outbox[i].action.plugin().to_owned())
                .or_default() += 1;
        }
        Ok(by)
    }

    fn case_actions(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .by_case
            .get(case)
            .map(|ix| ix.iter().map(|&i| self.outbox[i].clone()).collect())
            .unwrap_or_default())
    }

    fn outbox_page(&self, offset: usize, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .outbox
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect())
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.outbox_index.get(id).map(|&i| self.outbox[i].clone()))
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        Ok(self.counts)
    }

    fn next_action_due(&self, plugins: Option<&[String]>) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .pending
            .iter()
            .map(|&i| &self.outbox[i])
            .filter(|e| plugins.is_none_or(|ps| ps.iter().any(|p| p == e.action.plugin())))
            .map(OutboxEntry::claimable_at)
            .min())
    }

    fn claim_actions(&mut self, req: &ClaimRequest<'_>) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<usize> = self
            .pending
            .iter()
            .copied()
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

    fn complete_actions(
        &mut self,
        worker: &str,
        outcomes: Vec<(String, ActionOutcome)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        Ok((outcomes.into_iter())
            .map(|(id, outcome)| self.complete_one(&id, worker, outcome))
            .collect())
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

    fn oldest_pending_action(&self) -> Result<Option<Action>, StoreError> {
        Ok(self.pending.first().map(|&i| self.outbox[i].action.clone()))
    }

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        Ok(self.rejected.clone())
    }

    fn rejected_count(&self) -> Result<usize, StoreError> {
        Ok(self.rejected.len())
    }
}

/// The contract every [`Store`] must keep, as one test to run against
/// each implementation (the SQLite store runs it too).
#[doc(hidden)]
pub mod contract {
    use super::*;
    use crate::case::Case;
    use crate::case::StateId;
    use crate::store::Timer;
    use chrono::Duration;

    pub fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn commit(event: &str, case: &str, actions: &[&str]) -> Commit {
        let at = t("2026-11-25T10:00:00+09:00");
        let id = CaseId(case.into());
        let mut c = Case::open(id.clone(), at, StateId("new".into()));
        c.event_count = 1;
        let ev = Event::new(event, at, "customer.message", Some(id.clone())).with("text", "hi");
        Commit {
            accepted: Accepted {
                event: ev,
                case: id.clone(),
                handled_at: at,
                customer: CustomerStats::default(),
                ruleset: None,
                pack: None,
            },
            past: Vec::new(),
            timers: Vec::new(),
            links: Vec::new(),
            open: true,
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
            .case_actions(&c1)
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
                .case_actions(&CaseId("C-9".into()))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.oldest_pending_action().unwrap().map(|a| a.id),
            Some("e1/1".to_owned())
        );
        let mut later = commit("e3b", "C-4", &[]);
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
        assert_eq!(store.rejected_count().unwrap(), 1);
        assert_eq!(store.case_count().unwrap(), 3);
        check_case_pages(store);
        check_present_and_past(store);
        check_timers(store);
        check_completions(store);
    }

    /// Outcomes recorded together: each answered on its own (one not this
    /// worker's is refused without refusing the rest), counters moved only
    /// for those recorded.
    fn check_completions(store: &mut dyn Store) {
        let now = t("2026-11-25T10:00:00+09:00");
        let names = ["team.notify", "team.notify", "team.notify", "team.notify"];
        store.commit(commit("e8", "C-8", &names)).unwrap();
        let before = store.outbox_counts().unwrap();
        let claim = |worker, limit| ClaimRequest {
            worker,
            now: now + Duration::hours(1),
            lease: Duration::seconds(30),
            limit,
            plugins: None,
        };
        let mine = store.claim_actions(&claim("w8", 3)).unwrap();
        let ids: Vec<_> = mine.iter().map(|e| e.action.id.as_str()).collect();
        assert!(ids.starts_with(&["e1/1"]), "{ids:?}");
        let theirs = store.claim_actions(&claim("w9", 1)).unwrap();
        let done = |result| ActionOutcome::Done { result };
        let answers = store
            .complete_actions(
                "w8",
                vec![
                    (mine[0].action.id.clone(), done(serde_json::json!(1))),
                    (theirs[0].action.id.clone(), done(serde_json::Value::Null)),
                    ("e8/404".into(), done(serde_json::Value::Null)),
                    (
                        mine[1].action.id.clone(),
                        ActionOutcome::GaveUp { error: "no".into() },
                    ),
                    (
                        mine[2].action.id.clone(),
                        ActionOutcome::Retry {
                            at: now + Duration::hours(2),
                            error: "later".into(),
                        },
                    ),
                ],
            )
            .unwrap();
        assert!(answers[0].is_ok());
        assert!(matches!(answers[1], Err(StoreError::LeaseLost { .. })));
        assert!(matches!(answers[2], Err(StoreError::UnknownAction(_))));
        assert!(answers[3].is_ok() && answers[4].is_ok());
        let first = store.outbox_entry(&mine[0].action.id).unwrap().unwrap();
        assert_eq!(first.status, ActionStatus::Done);
        assert_eq!(first.result, Some(serde_json::json!(1)));
        assert_eq!(
            store.outbox_counts().unwrap(),
            OutboxCounts {
                pending: before.pending - 2,
                done: before.done + 1,
                gave_up: before.gave_up + 1,
            }
        );
        // The other worker's outcome is still its own to record.
        let answers = store
            .complete_actions(
                "w9",
                vec![(theirs[0].action.id.clone(), done(serde_json::Value::Null))],
            )
            .unwrap();
        assert!(answers[0].is_ok());
    }

    /// The paged walk over case ids gives every id once, in order.
    fn check_case_pages(store: &dyn Store) {
        let all = store.case_ids().unwrap();
        assert_eq!(all.len(), 3);
        let first = store.case_ids_after(None, 2).unwrap();
        assert_eq!(first, all[..2]);
        let rest = store.case_ids_after(first.last(), 2).unwrap();
        assert_eq!(rest, all[2..]);
        assert!(store.case_ids_after(rest.last(), 2).unwrap().is_empty());
        assert_eq!(store.case_ids_after(None, 10).unwrap(), all);
        // After an id that is not stored: from the next one up.
        let between = CaseId("C-1a".into());
        assert_eq!(store.case_ids_after(Some(&between), 10).unwrap(), all[1..]);
        assert!(store.case_ids_after(None, 0).unwrap().is_empty());
    }

    /// Links, customers, the past, per-case actions and pack versions.
    fn check_present_and_past(store: &mut dyn Store) {
        let c1 = CaseId("C-1".into());
        let mut next = commit("e4", "C-1", &["team.notify"]);
        next.case.event_count = 2;
        next.case.customer.email = Some("Jo@Example.com".into());
        next.case.contacts = 3;
        next.links = vec![Link::Order("O-1").key(), Link::MessageId("<m1@x>").key()];
        let note = crate::case::Note {
            at: t("2026-11-25T10:00:00+09:00"),
            agent: "ken".into(),
            text: "called".into(),
        };
        next.past = vec![Past::Note(note.clone())];
        let mut other = commit("e5", "C-9", &[]);
        other.case.customer.email = Some("jo@example.com".into());
        other.open = false;
        let mut batch = Batch::from(vec![next, other]);
        let pack = PackSource {
            hash: "p1".into(),
            root: "casework.yaml".into(),
            files: vec![("casework.yaml".into(), "name: x".into())],
        };
        batch.packs.push(pack.clone());
        store.commit_batch(batch).unwrap();
        assert_eq!(store.pack("p1").unwrap(), Some(pack));
        assert_eq!(store.pack("p2").unwrap(), None);
        assert_eq!(
            store.linked_case(&Link::Order("O-1")).unwrap(),
            Some(c1.clone())
        );
        assert_eq!(
            store.linked_case(&Link::MessageId("m1@x")).unwrap(),
            Some(c1.clone())
        );
        assert_eq!(store.linked_case(&Link::Tracking("O-1")).unwrap(), None);
        let cases = store.customer_cases("jo@example.com").unwrap();
        let found: Vec<_> = cases
            .iter()
            .map(|s| (s.case.0.as_str(), s.contacts, s.open))
            .collect();
        assert_eq!(found, [("C-1", 3, true), ("C-9", 0, false)]);
        assert_eq!(store.past(&c1).unwrap(), vec![Past::Note(note)]);
        assert!(store.past(&CaseId("C-2".into())).unwrap().is_empty());
        let ids: Vec<_> = store
            .case_actions(&c1)
            .unwrap()
            .into_iter()
            .map(|e| e.action.id)
            .collect();
        assert_eq!(ids, ["e1/0", "e1/1", "e4/0"]);
        assert_eq!(store.case_count().unwrap(), 4);
        assert_eq!(store.event_count().unwrap(), 5);
        let by: Vec<_> = store.pending_by_plugin().unwrap().into_iter().collect();
        assert_eq!(by, [("team".to_owned(), 1), ("warehouse".to_owned(), 1)]);
        let page = store.outbox_page(1, 2).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].action.id, "e1/1");
        assert_eq!(
            store.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 2,
                done: 1,
                gave_up: 1
            }
        );
        let now = t("2026-11-25T10:00:00+09:00");
        let team = vec!["team".to_owned()];
        assert_eq!(store.next_action_due(Some(&team)).unwrap(), Some(now));
        assert_eq!(store.next_action_due(Some(&[])).unwrap(), None);
    }

    /// Timers: replaced per case, due in time order, removed when fired.
    fn check_timers(store: &mut dyn Store) {
        let at = |h: u32| t(&format!("2026-11-26T{h:02}:00:00+09:00"));
        let timer = |case: &str, h: u32, name: &str| Timer {
            due: at(h),
            case: CaseId(case.into()),
            name: name.into(),
        };
        let mut a = commit("t1", "C-20", &[]);
        a.timers = vec![
            timer("C-20", 9, "sla:first_reply:breach"),
            timer("C-20", 12, "promise:P-1"),
        ];
        let mut b = commit("t2", "C-21", &[]);
        b.timers = vec![timer("C-21", 10, "timeout:triage")];
        store.commit_batch(Batch::from(vec![a, b])).unwrap();
        assert_eq!(store.timer_count().unwrap(), 3);
        assert_eq!(store.next_timer().unwrap(), Some(at(9)));
        let due = store.due_timers(at(10), 10).unwrap();
        assert_eq!(
            due,
            [
                timer("C-20", 9, "sla:first_reply:breach"),
                timer("C-21", 10, "timeout:triage")
            ]
        );
        assert_eq!(store.due_timers(at(23), 1).unwrap().len(), 1);
        // A commit replaces the case's timers; a fired timer leaves.
        let mut again = commit("t3", "C-20", &[]);
        again.case.event_count = 2;
        again.timers = vec![timer("C-20", 11, "timeout:new")];
        let mut batch = Batch::from(vec![again]);
        batch.fired = vec![timer("C-21", 10, "timeout:triage")];
        store.commit_batch(batch).unwrap();
        assert_eq!(store.timer_count().unwrap(), 1);
        assert_eq!(
            store.case_timers(&CaseId("C-20".into())).unwrap(),
            [timer("C-20", 11, "timeout:new")]
        );
        assert!(
            store
                .case_timers(&CaseId("C-21".into()))
                .unwrap()
                .is_empty()
        );
        let c20 = store.load(&CaseId("C-20".into())).unwrap().unwrap();
        store.refresh_case(&c20, &[], false).unwrap();
        assert_eq!(store.timer_count().unwrap(), 0);
        assert_eq!(store.next_timer().unwrap(), None);
        assert!(!store.timers_stale().unwrap());
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        check(&mut MemoryStore::new());
    }
}
