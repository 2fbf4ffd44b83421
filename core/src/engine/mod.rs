//! The engine: events in, cases stepped through the workflow, decisions
//! and actions out.
//!
//! [`Engine`] is the imperative shell around the pure [`step`] function:
//! it resolves which case an event is for (by case id, order id, tracking
//! number or e-mail Message-ID), drops duplicates, commits each result to
//! the [`Store`], keeps the due-time index for [`Engine::tick`], and
//! explains a case from its decisions.

mod due;
pub mod explain;
pub mod sla;
mod step;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::action::Action;
use crate::audit::{Decision, RuleRef};
use crate::calendar::{BusinessCalendar, Calendars, parse_duration};
use crate::case::{Case, CaseId, Channel};
use crate::clock::{Clock, SystemClock};
use crate::config::{DirectoryDef, LoadedConfig};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::event::{Event, EventError, EventId};
use crate::plugin::ActionParams;
use crate::rules::{CustomerStats, RuleSet, Rules};
use crate::store::{Accepted, Batch, Commit, MemoryStore, Rejected, Store, StoreError};
use crate::workflow::{Transition, Workflow};

pub use due::{DueIndex, PROMISE_CHECKS_BEFORE};
pub use explain::Explanation;
pub use sla::SlaPlan;
pub use step::{Step, promise_text, step};

/// Everything loaded from a configuration and compiled, except the rules
/// (which can be reloaded on their own): immutable, shared.
#[derive(Debug)]
pub struct Pack {
    pub name: String,
    /// The shop's time zone, for dates given without one.
    pub timezone: Tz,
    pub workflow: Workflow,
    pub directory: DirectoryDef,
    pub calendars: Calendars,
    pub sla: Option<SlaPlan>,
    /// The Rhai files the rule set was compiled from.
    pub rule_files: Vec<SourceFile>,
    /// Content hash of every file read, by path.
    hashes: HashMap<String, String>,
    staff: HashSet<String>,
    /// Plugin name -> kind (`email` -> `email`, `mailer` -> `email`).
    plugin_kinds: HashMap<String, String>,
    /// What each plugin action's parameters must be, where its kind says.
    action_params: BTreeMap<String, ActionParams>,
}

/// First 16 hex digits of the SHA-256 of `text`: the content hash decision
/// records carry.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Pack {
    /// Compile a loaded configuration: calendars, SLA plan, rule set.
    pub fn compile(loaded: LoadedConfig) -> Result<(Pack, RuleSet), Diagnostics> {
        let LoadedConfig {
            def,
            sources,
            rule_files,
            workflow,
            actions,
            classifiers,
            ..
        } = loaded;
        let mut diags = Diagnostics::default();
        let timezone = def.timezone.unwrap_or(chrono_tz::UTC);
        let calendars = match Calendars::from_defs(&def.calendars) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors {
                    diags.push(Diagnostic::error("calendar::invalid", e.to_string()));
                }
                Calendars::default()
            }
        };
        let directory = def.directory.clone().unwrap_or_default();
        let sla = def
            .workflow
            .as_ref()
            .and_then(|w| w.sla.as_ref())
            .and_then(|s| {
                let calendar = calendars.get(&s.calendar).cloned()?;
                let dur = |d: &Option<String>| d.as_deref().and_then(|d| parse_duration(d).ok());
                Some(SlaPlan {
                    calendar,
                    first_reply: dur(&s.first_reply),
                    next_reply: dur(&s.next_reply),
                    resolution: dur(&s.resolution),
                    warn_before: dur(&s.warn_before).unwrap_or_else(|| chrono::Duration::hours(1)),
                })
            });
        let rules_def = def.rules.clone().unwrap_or_default();
        let rule_calendars: crate::rules::Calendars = calendars
            .names()
            .filter_map(|n| {
                let cal: Arc<dyn crate::rules::BusinessDays> = calendars.get(n)?.clone();
                Some((n.to_owned(), cal))
            })
            .collect();
        let guards: Vec<_> = workflow
            .transitions()
            .iter()
            .filter_map(|t| {
                t.guard
                    .clone()
                    .map(|g| (t.index, g, t.guard_location.clone().or(t.location.clone())))
            })
            .collect();
        let rules = match RuleSet::compile(
            &rule_files,
            &rules_def,
            &guards,
            &directory,
            &rule_calendars,
        ) {
            Ok(r) => Some(r),
            Err(d) => {
                diags.0.extend(d.0);
                None
            }
        };
        // Classifiers train here, at load, so every event is decided by
        // models fixed for the rule set's version.
        let rules = match crate::classify::ClassifierSet::train(&classifiers) {
            Ok(set) => rules.map(|r| r.with_classifiers(Arc::new(set))),
            Err(d) => {
                diags.0.extend(d.0);
                None
            }
        };
        if diags.has_errors() {
            return Err(diags);
        }
        let hashes = sources
            .iter()
            .map(|f| (f.path.clone(), content_hash(&f.text)))
            .collect();
        let staff = directory
            .teams
            .values()
            .flat_map(|t| {
                t.email
                    .iter()
                    .chain(t.agents.values().filter_map(|a| a.email.as_ref()))
            })
            .map(|e| e.to_lowercase())
            .collect();
        let plugin_kinds = def
            .plugins
            .iter()
            .map(|(name, p)| (name.clone(), p.kind.clone()))
            .collect();
        let pack = Pack {
            name: def.name.clone().unwrap_or_else(|| "casework".into()),
            timezone,
            workflow,
            directory,
            calendars,
            sla,
            rule_files,
            hashes,
            staff,
            plugin_kinds,
            action_params: actions.all_params().clone(),
        };
        Ok((pack, rules.expect("no errors, so rules compiled")))
    }

    /// What the parameters of `action` (`warehouse.hold`) must be, when
    /// its plugin's kind says.
    pub fn action_params(&self, action: &str) -> Option<&ActionParams> {
        self.action_params.get(action)
    }

    /// The kind of the plugin an action (`mailer.send`) goes to.
    pub fn plugin_kind(&self, action: &str) -> Option<&str> {
        let plugin = action.split_once('.').map_or(action, |(p, _)| p);
        self.plugin_kinds.get(plugin).map(String::as_str)
    }

    pub fn has_team(&self, team: &str) -> bool {
        self.directory.teams.contains_key(team)
    }

    pub fn team_names(&self) -> Vec<&str> {
        self.directory.teams.keys().map(String::as_str).collect()
    }

    pub fn fallback_team(&self) -> &str {
        &self.directory.fallback
    }

    /// Whether an e-mail address belongs to a team or an agent.
    pub fn is_staff_address(&self, from: &str) -> bool {
        let from = from.to_lowercase();
        self.staff.iter().any(|s| from.contains(s.as_str()))
    }

    /// The calendar a case's business time runs on: its team's, else the
    /// SLA calendar, else always open in the shop's time zone.
    pub fn calendar_for(&self, case: &Case) -> Arc<BusinessCalendar> {
        case.assignment
            .team
            .as_ref()
            .and_then(|t| self.directory.teams.get(t))
            .and_then(|t| t.calendar.as_ref())
            .and_then(|c| self.calendars.get(c))
            .cloned()
            .or_else(|| self.sla.as_ref().map(|s| s.calendar.clone()))
            .unwrap_or_else(|| Arc::new(BusinessCalendar::always_open(self.timezone)))
    }

    /// When the timeout of the case's current state fires, if it has one.
    pub fn timeout_due(&self, case: &Case) -> Option<Timestamp> {
        let t = self.workflow.timeout(case.state.as_str())?;
        Some(if t.business {
            self.calendar_for(case)
                .add_business_time(case.state_since, t.after)
        } else {
            case.state_since + t.after
        })
    }

    /// The decision-record reference of a rule that failed.
    pub fn error_ref(&self, rules: &RuleSet, e: &crate::rules::RuleError) -> Option<RuleRef> {
        rules
            .rule_ref(e.rule())
            .cloned()
            .or_else(|| Some(self.file_ref(e.file(), e.rule().to_owned(), e.line())))
    }

    fn file_ref(&self, file: &str, name: String, line: Option<usize>) -> RuleRef {
        RuleRef {
            file: file.to_owned(),
            name,
            line,
            hash: self.hashes.get(file).cloned().unwrap_or_default(),
        }
    }

    /// The decision-record reference of a transition.
    pub fn transition_ref(&self, t: &Transition) -> Option<RuleRef> {
        let loc = t.location.as_ref()?;
        let from = if t.from_any {
            "*".to_owned()
        } else {
            let names: Vec<&str> = t.from.iter().map(|s| s.as_str()).collect();
            names.join("|")
        };
        Some(self.file_ref(
            &loc.file,
            format!("{from} -> {} on {}", t.to, t.on),
            Some(loc.line),
        ))
    }

    /// The decision-record reference of a state's timeout.
    pub fn state_ref(&self, state: &str) -> Option<RuleRef> {
        let loc = self.workflow.state_location(state)?;
        Some(self.file_ref(&loc.file, format!("{state}.timeout"), Some(loc.line)))
    }
}

/// Why the engine did not handle an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The event was refused (and recorded as rejected): fix and resend.
    #[error(transparent)]
    Rejected(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("case {0} is not known to this engine")]
    UnknownCase(CaseId),
    /// Replay needs a rule set version it cannot have again.
    #[error("rule set version {version} handled events of this case, but {problem}")]
    RuleSetVersion { version: String, problem: String },
}

/// What handling one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Handled {
        case: CaseId,
        decisions: Vec<Decision>,
        actions: Vec<Action>,
    },
    /// The event id was seen before; nothing changed.
    Duplicate,
}

/// Builds an [`Engine`] from its parts.
pub struct EngineBuilder {
    pack: Arc<Pack>,
    rules: RuleSet,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
}

impl EngineBuilder {
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn store(mut self, store: Box<dyn Store>) -> Self {
        self.store = store;
        self
    }

    /// Build, rebuilding the correlation and due-time indexes from the store.
    pub fn build(self) -> Result<Engine, StoreError> {
        let mut engine = Engine {
            pack: self.pack,
            rules: Rules::new(self.rules),
            clock: self.clock,
            store: self.store,
            index: Index::default(),
            due: DueIndex::default(),
            kept_versions: HashSet::new(),
            versions: Mutex::new(HashMap::new()),
        };
        engine.rebuild()?;
        Ok(engine)
    }
}

/// The correlation indexes: which case an order, tracking number or
/// Message-ID belongs to, and which cases are one customer's.
#[derive(Debug, Default)]
struct Index {
    orders: HashMap<String, CaseId>,
    tracking: HashMap<String, CaseId>,
    messages: HashMap<String, CaseId>,
    customers: HashMap<String, Vec<CaseId>>,
    summaries: HashMap<CaseId, Summary>,
}

/// What other cases of the same customer contribute to the rules' view.
#[derive(Debug, Default, Clone)]
struct Summary {
    contacts: u32,
    by_channel: BTreeMap<Channel, u32>,
    open: bool,
}

impl Index {
    fn add(&mut self, case: &Case, pack: &Pack) {
        for o in &case.orders {
            self.orders.insert(o.id.0.clone(), case.id.clone());
            if let Some(t) = &o.tracking {
                self.tracking.insert(t.clone(), case.id.clone());
            }
        }
        for m in &case.messages {
            if let Some(mid) = &m.message_id {
                self.messages
                    .insert(normalize_message_id(mid), case.id.clone());
            }
        }
        let mut by_channel = BTreeMap::new();
        for m in case
            .messages
            .iter()
            .filter(|m| m.author == crate::case::Author::Customer)
        {
            *by_channel.entry(m.channel).or_default() += 1;
        }
        if let Some(key) = &case.customer.key() {
            let cases = self.customers.entry(key.clone()).or_default();
            if !cases.contains(&case.id) {
                cases.push(case.id.clone());
            }
        }
        self.summaries.insert(
            case.id.clone(),
            Summary {
                contacts: case.contacts,
                by_channel,
                open: !pack.workflow.is_terminal(case.state.as_str()),
            },
        );
    }

    /// The customer's other cases, as the rules see them.
    fn others(&self, case: &CaseId, key: Option<&str>) -> CustomerStats {
        let mut stats = CustomerStats::default();
        let Some(cases) = key.and_then(|k| self.customers.get(k)) else {
            return stats;
        };
        for id in cases.iter().filter(|id| *id != case) {
            let Some(s) = self.summaries.get(id) else {
                continue;
            };
            stats.cases += 1;
            stats.open_cases += u32::from(s.open);
            stats.contacts += s.contacts;
            for (ch, n) in &s.by_channel {
                *stats.by_channel.entry(*ch).or_default() += n;
            }
        }
        stats
    }

    fn resolve(&self, event: &Event) -> Option<CaseId> {
        if let Some(c) = &event.case {
            return Some(c.clone());
        }
        if let Some(o) = &event.order
            && let Some(c) = self.orders.get(o.as_str())
        {
            return Some(c.clone());
        }
        if let Some(t) = &event.tracking
            && let Some(c) = self.tracking.get(t)
        {
            return Some(c.clone());
        }
        event
            .in_reply_to
            .iter()
            .find_map(|m| self.messages.get(&normalize_message_id(m)).cloned())
    }
}

/// `<abc@x>` and `abc@x` name the same message.
fn normalize_message_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// The id of the case an event opens: `C-` and the event id when that is
/// short and plain (`C-m1`), else `C-` and 12 hex digits of its SHA-256
/// (an e-mail's event id holds its Message-ID), so that every case id
/// fits a subject tag like `[C-1a2b3c4d5e6f]` that threads replies.
/// Derived from the event alone, so replay opens the same case.
fn new_case_id(event: &EventId) -> CaseId {
    let id = event.0.as_str();
    let plain = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        return CaseId(format!("C-{id}"));
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    CaseId(format!("C-{hex}"))
}

/// Inbound kinds that open a new case when they match none.
const OPENING_KINDS: &[&str] = &["customer.message", "customer.call", "email.received"];

/// The workflow engine.
///
/// ```no_run
/// use casework_core::engine::Engine;
/// # fn demo(pack: casework_core::engine::Pack, rules: casework_core::rules::RuleSet) {
/// let mut engine = Engine::builder(pack, rules).build().unwrap();
/// let event = casework_core::event::Event::from_json(
///     r#"{"id":"e1","at":"2026-11-25T10:00:00+09:00","kind":"customer.message","case":"C-1","text":"hello"}"#,
/// ).unwrap();
/// engine.handle(event).unwrap();
/// # }
/// ```
pub struct Engine {
    pack: Arc<Pack>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
    index: Index,
    due: DueIndex,
    /// Rule set versions known to be in the store.
    kept_versions: HashSet<String>,
    /// Older rule set versions compiled again for replay.
    versions: Mutex<HashMap<String, Arc<RuleSet>>>,
}

impl Engine {
    /// An engine on the wall clock and an in-memory store; change either
    /// on the builder.
    pub fn builder(pack: Pack, rules: RuleSet) -> EngineBuilder {
        EngineBuilder {
            pack: Arc::new(pack),
            rules,
            clock: Arc::new(SystemClock),
            store: Box::new(MemoryStore::new()),
        }
    }

    pub fn pack(&self) -> &Pack {
        &self.pack
    }

    /// The rule set holder, for hot reload.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The time on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The store, for the outbox runner (claiming and completing actions).
    ///
    /// Write cases and events only through the engine: its correlation and
    /// due-time indexes follow what it commits, not what others write.
    pub fn store_mut(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Rebuild the correlation and due-time indexes from the store: at
    /// start, and after a commit failed (the indexes had moved ahead of
    /// what the store kept).
    fn rebuild(&mut self) -> Result<(), StoreError> {
        self.index = Index::default();
        self.due = DueIndex::default();
        let now = self.clock.now();
        for id in self.store.case_ids()? {
            if let Some(case) = self.store.load(&id)? {
                self.index.add(&case, &self.pack);
                // Moments after the case's last change: a timer that came
                // due while casework was down fires at the next tick.
                let items = due::due_items(&self.pack, &case, now.min(case.updated_at));
                self.due.set(&case.id, items);
            }
        }
        Ok(())
    }

    /// Handle one event at the clock's time.
    pub fn handle(&mut self, event: Event) -> Result<Outcome, EngineError> {
        let now = self.clock.now();
        self.handle_at(event, now)
    }

    /// Handle one event at `now` (the clock's time, or a timer's due time).
    pub fn handle_at(&mut self, event: Event, now: Timestamp) -> Result<Outcome, EngineError> {
        let mut pending = Pending::default();
        let result = self.step_into(&mut pending, event, now);
        let result = self.abandon_on_error(result)?;
        self.finish(pending)?;
        result.map_err(EngineError::Rejected)
    }

    /// Handle events that arrived together, in order, at the clock's time,
    /// and commit all their results in ONE store transaction (group
    /// commit: one disk sync for the lot).
    ///
    /// Each event sees the cases as the events before it in the batch left
    /// them. The outer error is a store failure: then nothing of the batch
    /// was kept and it can be sent again as it was. Otherwise there is one
    /// result per event: its outcome, or why it was refused (refusals are
    /// recorded in the same transaction).
    pub fn handle_batch(
        &mut self,
        events: Vec<Event>,
    ) -> Result<Vec<Result<Outcome, EventError>>, EngineError> {
        let now = self.clock.now();
        let mut pending = Pending::default();
        let mut results = Vec::with_capacity(events.len());
        for e in events {
            let result = self.step_into(&mut pending, e, now);
            results.push(self.abandon_on_error(result)?);
        }
        self.finish(pending)?;
        Ok(results)
    }

    /// Step one event into the batch being built; a refusal is added to
    /// the batch's rejected list. The outer error is a failed store read.
    fn step_into(
        &mut self,
        pending: &mut Pending,
        event: Event,
        now: Timestamp,
    ) -> Result<Result<Outcome, EventError>, StoreError> {
        match self.try_handle(pending, &event, now) {
            Ok(outcome) => Ok(Ok(outcome)),
            Err(EngineError::Rejected(error)) => {
                pending.batch.rejected.push(Rejected {
                    event,
                    at: now,
                    error: error.clone(),
                });
                Ok(Err(error))
            }
            Err(EngineError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        }
    }

    /// A store read failed mid-batch: drop the batch, and bring the
    /// indexes (which followed the batch so far) back to the store's truth.
    fn abandon_on_error<T>(&mut self, result: Result<T, StoreError>) -> Result<T, EngineError> {
        result.map_err(|e| {
            if let Err(again) = self.rebuild() {
                tracing::error!("rebuilding the indexes after a failed read: {again}");
            }
            EngineError::Store(e)
        })
    }

    /// Commit what a batch produced. On failure the indexes, which already
    /// followed the batch, are rebuilt from what the store actually kept.
    fn finish(&mut self, pending: Pending) -> Result<(), EngineError> {
        if pending.batch.is_empty() {
            return Ok(());
        }
        let versions: Vec<String> = pending
            .batch
            .rulesets
            .iter()
            .map(|s| s.hash.clone())
            .collect();
        if let Err(e) = self.store.commit_batch(pending.batch) {
            if let Err(again) = self.rebuild() {
                tracing::error!("rebuilding the indexes after a failed commit: {again}");
            }
            return Err(e.into());
        }
        self.kept_versions.extend(versions);
        Ok(())
    }

    fn try_handle(
        &mut self,
        pending: &mut Pending,
        event: &Event,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        if event.id.is_unset() {
            return Err(EventError::Malformed {
                event: event.id.clone(),
                kind: event.kind.0.clone(),
                message: "the event has no `id`; every event needs a unique id".into(),
            }
            .into());
        }
        if pending.seen.contains(&event.id) || self.store.has_event(&event.id)? {
            return Ok(Outcome::Duplicate);
        }
        if !self.pack.workflow.known_kind(event.kind.as_str()) {
            return Err(EventError::UnknownKind {
                event: event.id.clone(),
                kind: event.kind.0.clone(),
            }
            .into());
        }
        let id = match self.index.resolve(event) {
            Some(id) => id,
            None if OPENING_KINDS.contains(&event.kind.as_str()) => new_case_id(&event.id),
            None => {
                let key = event
                    .order
                    .as_ref()
                    .map(|o| format!("order {o}"))
                    .or(event
                        .tracking
                        .as_ref()
                        .map(|t| format!("tracking number {t}")))
                    .or(event.in_reply_to.first().map(|m| format!("Message-ID {m}")));
                return Err(match key {
                    Some(key) => EventError::UnknownCase {
                        event: event.id.clone(),
                        kind: event.kind.0.clone(),
                        key,
                    },
                    None => EventError::NoSubject {
                        event: event.id.clone(),
                        kind: event.kind.0.clone(),
                    },
                }
                .into());
            }
        };
        let case = match pending.cases.get(&id) {
            Some(c) => Some(c.clone()),
            None => self.store.load(&id)?,
        };
        let key = case
            .as_ref()
            .and_then(|c| c.customer.key())
            .or_else(|| event_customer_key(event));
        let others = self.index.others(&id, key.as_deref());
        let rules = self.rules.current();
        self.keep_version(pending, &rules)?;
        let Step {
            case,
            decisions,
            actions,
        } = step(&self.pack, &rules, case, &id, event, now, &others)?;
        self.index.add(&case, &self.pack);
        let items = due::due_items(&self.pack, &case, now);
        self.due.set(&case.id, items);
        pending.seen.insert(event.id.clone());
        pending.cases.insert(id.clone(), case.clone());
        pending.batch.commits.push(Commit {
            accepted: Accepted {
                event: event.clone(),
                case: id.clone(),
                handled_at: now,
                customer: others,
                ruleset: Some(rules.hash().to_owned()),
            },
            case,
            decisions: decisions.clone(),
            actions: actions.clone(),
        });
        Ok(Outcome::Handled {
            case: id,
            decisions,
            actions,
        })
    }

    /// Fire everything due at or before `now`, in time order, each at its
    /// own due time, and commit them in one transaction. Returns the
    /// outcomes of the timer events.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Outcome>, EngineError> {
        let mut out = Vec::new();
        let mut pending = Pending::default();
        while let Some((due, case, timer)) = self.due.pop_due(now) {
            let event = Event::new(
                format!("timer:{case}:{timer}:{}", due.timestamp()),
                due,
                "timer.fired",
                Some(case),
            )
            .with("timer", &timer);
            let result = self.step_into(&mut pending, event, due);
            match self.abandon_on_error(result)? {
                Ok(o) => out.push(o),
                Err(e) => tracing::warn!("timer {timer} rejected: {e}"),
            }
        }
        self.finish(pending)?;
        Ok(out)
    }

    /// The next moment a timer is due, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due.next()
    }

    /// How many timers are waiting.
    pub fn pending_timers(&self) -> usize {
        self.due.len()
    }

    pub fn case(&self, id: &CaseId) -> Result<Option<Case>, EngineError> {
        Ok(self.store.load(id)?)
    }

    /// Make sure the store keeps the source of the rule set version about
    /// to decide, in the same transaction as the first event it handles.
    fn keep_version(&mut self, pending: &mut Pending, rules: &RuleSet) -> Result<(), StoreError> {
        let version = rules.hash();
        if self.kept_versions.contains(version)
            || pending.batch.rulesets.iter().any(|s| s.hash == version)
        {
            return Ok(());
        }
        if self.store.ruleset(version)?.is_some() {
            self.kept_versions.insert(version.to_owned());
        } else {
            pending.batch.rulesets.push(rules.source());
        }
        Ok(())
    }

    /// The rule set version that handled an event: the one in force, or
    /// an older one compiled again from the source the store kept.
    fn version(
        &self,
        version: Option<&str>,
        current: &Arc<RuleSet>,
    ) -> Result<Arc<RuleSet>, EngineError> {
        // Events stored before versions were kept replay with the rules in force.
        let Some(version) = version.filter(|v| *v != current.hash()) else {
            return Ok(current.clone());
        };
        let mut cache = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = cache.get(version) {
            return Ok(set.clone());
        }
        let problem = |problem: String| EngineError::RuleSetVersion {
            version: version.to_owned(),
            problem,
        };
        let source = self
            .store
            .ruleset(version)?
            .ok_or_else(|| problem("the store does not have its source".into()))?;
        let set = current.recompile(&source).map_err(|d| {
            problem(format!(
                "it no longer compiles against the current directory, calendars and workflow:\n{d}"
            ))
        })?;
        if set.hash() != version {
            return Err(problem(format!(
                "its stored source compiles to version {}",
                set.hash()
            )));
        }
        let set = Arc::new(set);
        cache.insert(version.to_owned(), set.clone());
        Ok(set)
    }

    /// Rebuild a case from its stored events alone, each with the rule set
    /// version that handled it: the result must equal the stored case (a
    /// property test checks it), across hot reloads too.
    pub fn replay(&self, id: &CaseId) -> Result<Case, EngineError> {
        let current = self.rules.current();
        let mut case = None;
        for a in self.store.events(id)? {
            let rules = self.version(a.ruleset.as_deref(), &current)?;
            let s = step(
                &self.pack,
                &rules,
                case,
                id,
                &a.event,
                a.handled_at,
                &a.customer,
            )?;
            case = Some(s.case);
        }
        case.ok_or_else(|| EngineError::UnknownCase(id.clone()))
    }

    /// The case's story for the next agent.
    pub fn explain(&self, id: &CaseId) -> Result<Explanation, EngineError> {
        let case = self
            .store
            .load(id)?
            .ok_or_else(|| EngineError::UnknownCase(id.clone()))?;
        Ok(Explanation::new(case))
    }

    /// Actions requested and not yet done.
    pub fn outbox(&self) -> Result<Vec<Action>, EngineError> {
        Ok(self.store.pending_actions()?)
    }

    pub fn event_seen(&self, id: &EventId) -> Result<bool, EngineError> {
        Ok(self.store.has_event(id)?)
    }
}

/// A batch being built: the commits so far, and the cases as they left
/// them (later events of the batch must see those, not the store's).
#[derive(Default)]
struct Pending {
    batch: Batch,
    cases: HashMap<CaseId, Case>,
    seen: HashSet<EventId>,
}

fn event_customer_key(event: &Event) -> Option<String> {
    let customer: crate::case::Customer =
        serde_json::from_value(event.data.get("customer")?.clone()).ok()?;
    customer.key()
}
