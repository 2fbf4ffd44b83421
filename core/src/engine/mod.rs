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
use crate::case::{Case, CaseId, CaseStory};
use crate::clock::{Clock, SystemClock};
use crate::config::{DirectoryDef, LoadedConfig, PackSource};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::event::{Event, EventError, EventId};
use crate::plugin::ActionParams;
use crate::rules::{CustomerStats, RuleSet, Rules};
use crate::store::{
    Accepted, Batch, CaseSummary, Commit, Link, MemoryStore, Rejected, Store, StoreError, Timer,
    TimerQueue, message_links, order_links,
};
use crate::workflow::{Transition, Workflow};

pub use due::PROMISE_CHECKS_BEFORE;
pub use explain::Explanation;
pub use sla::SlaPlan;
pub use step::{Step, event_time, promise_text, step};

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
    /// Every file the pack was read from: its version, kept by the store
    /// so replay compiles the pack that decided.
    source: PackSource,
}

pub use crate::audit::content_hash;

impl Pack {
    /// Compile a loaded configuration: calendars, SLA plan, rule set.
    pub fn compile(loaded: LoadedConfig) -> Result<(Pack, RuleSet), Diagnostics> {
        let source = loaded.pack_source();
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
            source,
        };
        Ok((pack, rules.expect("no errors, so rules compiled")))
    }

    /// The pack's version: a content hash of every file it was read from.
    pub fn version(&self) -> &str {
        &self.source.hash
    }

    /// The files of this version.
    pub fn source(&self) -> &PackSource {
        &self.source
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
    /// Replay needs a pack version it cannot have again.
    #[error("pack version {version} handled events of this case, but {problem}")]
    PackVersion { version: String, problem: String },
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

/// Compiles a stored pack version again, for replay: the files as they
/// were, checked with the plugin kinds the embedding program knows.
pub type PackLoader = dyn Fn(&PackSource) -> Result<(Pack, RuleSet), Diagnostics> + Send + Sync;

/// The loader for packs that use the built-in plugin kinds only.
pub fn builtin_pack_loader(source: &PackSource) -> Result<(Pack, RuleSet), Diagnostics> {
    let reader = crate::config::MemoryReader::from_source(source);
    let loaded = crate::config::load_with(&reader, std::path::Path::new(&source.root))?;
    Pack::compile(loaded)
}

/// Builds an [`Engine`] from its parts.
pub struct EngineBuilder {
    pack: Arc<Pack>,
    rules: RuleSet,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
    loader: Arc<PackLoader>,
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

    /// How replay compiles an older pack version (default: with the
    /// built-in plugin kinds).
    pub fn pack_loader(mut self, loader: Arc<PackLoader>) -> Self {
        self.loader = loader;
        self
    }

    /// Build. Nothing is read into memory but what a store migrated from
    /// an older release needs once (its timers, which it kept in memory).
    pub fn build(self) -> Result<Engine, StoreError> {
        let mut engine = Engine {
            pack: self.pack,
            rules: Rules::new(self.rules),
            clock: self.clock,
            store: self.store,
            loader: self.loader,
            kept: HashSet::new(),
            versions: Mutex::new(HashMap::new()),
            timers_fired: 0,
        };
        if engine.store.timers_stale()? {
            engine.rebuild_timers()?;
        }
        Ok(engine)
    }
}

/// What one round of timers did ([`Engine::tick_round`]).
#[derive(Debug, Default)]
pub struct TickRound {
    /// The outcomes of the timer events fired, in time order.
    pub outcomes: Vec<Outcome>,
    /// Whether the round was full, so more may be due.
    pub more: bool,
}

/// The id of the case an event opens: `C-` and the event id when that is
/// short and plain (`C-m1`), else `C-` and 12 hex digits of its SHA-256
/// (an e-mail's event id holds its Message-ID), so that every case id
/// fits a subject tag like `[C-1a2b3c4d5e6f]` that threads replies.
/// Derived from the event alone, so replay opens the same case.
pub fn opening_case_id(event: &EventId) -> CaseId {
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

/// The timers of `case` as of `now` (its last change): what a commit
/// stores beside the case (see [`due::due_items`]).
pub fn case_timers(pack: &Pack, case: &Case, now: Timestamp) -> Vec<Timer> {
    due::due_items(pack, case, now)
        .into_iter()
        .map(|(due, name)| Timer {
            due,
            case: case.id.clone(),
            name,
        })
        .collect()
}

/// Where [`admit`] sends an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// For this case (new when the event opens one). `claims` are the
    /// correlation keys an opening event names, to be claimed for it (a
    /// key claimed first by another case sends the event there); `links`
    /// the keys an event joining a case adds to it (its own Message-ID).
    Case {
        case: CaseId,
        claims: Vec<String>,
        links: Vec<String>,
    },
}

/// Inbound kinds that open a new case when they match none.
const OPENING_KINDS: &[&str] = &["customer.message", "customer.call", "email.received"];

/// How many due timers `tick` takes from the store at a time.
const TICK_ROUND: usize = 512;

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
///
/// The engine holds no per-case state: every case, link and timer is
/// asked of the store when needed, so its memory does not grow with the
/// number of cases and it starts at once on a store of any size.
pub struct Engine {
    pack: Arc<Pack>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
    loader: Arc<PackLoader>,
    /// Rule set and pack versions known to be in the store.
    kept: HashSet<String>,
    /// Older (pack, rule set) versions compiled again for replay.
    versions: Mutex<HashMap<(String, String), Version>>,
    /// Timer events handled since the engine was built.
    timers_fired: usize,
}

/// A pack and a rule set that decided together.
type Version = (Arc<Pack>, Arc<RuleSet>);

impl Engine {
    /// An engine on the wall clock and an in-memory store; change either
    /// on the builder.
    pub fn builder(pack: Pack, rules: RuleSet) -> EngineBuilder {
        EngineBuilder {
            pack: Arc::new(pack),
            rules,
            clock: Arc::new(SystemClock),
            store: Box::new(MemoryStore::new()),
            loader: Arc::new(builtin_pack_loader),
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
    /// Write cases and events only through the engine.
    pub fn store_mut(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Derive every case's timers once, for a store migrated from a
    /// release that kept them in memory; also settles which cases are open.
    fn rebuild_timers(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        for id in self.store.case_ids()? {
            if let Some(case) = self.store.load(&id)? {
                // Moments after the case's last change: a timer that came
                // due while casework was down fires at the next tick.
                let timers = self.timers_of(&case, now.min(case.updated_at));
                let open = !self.pack.workflow.is_terminal(case.state.as_str());
                self.store.refresh_case(&case, &timers, open)?;
            }
        }
        self.store.timers_rebuilt()
    }

    fn timers_of(&self, case: &Case, now: Timestamp) -> Vec<Timer> {
        case_timers(&self.pack, case, now)
    }

    /// Handle one event at the clock's time.
    pub fn handle(&mut self, event: Event) -> Result<Outcome, EngineError> {
        let now = self.clock.now();
        self.handle_at(event, now)
    }

    /// Handle one event at `now` (the clock's time, or a timer's due time).
    pub fn handle_at(&mut self, event: Event, now: Timestamp) -> Result<Outcome, EngineError> {
        let mut pending = Pending::default();
        self.fire_due(&mut pending, event.at.min(now), TICK_ROUND, &mut Vec::new())?;
        let result = self.step_into(&mut pending, event, now)?;
        self.finish(pending)?;
        result.map_err(EngineError::Rejected)
    }

    /// Handle events that arrived together, in order, at the clock's time,
    /// and commit all their results in ONE store transaction (group
    /// commit: one disk sync for the lot). Timers due before an event
    /// happened fire before it, in the same transaction: a catch-up after
    /// an outage sees its timers and events in the order they happened.
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
        self.ask_ahead(&mut pending, &events, now)?;
        let mut results = Vec::with_capacity(events.len());
        let mut fired = Vec::new();
        for e in events {
            self.fire_due(&mut pending, e.at.min(now), TICK_ROUND, &mut fired)?;
            results.push(self.step_into(&mut pending, e, now)?);
        }
        self.finish(pending)?;
        Ok(results)
    }

    /// Ask the store once for a whole batch what each event would ask on
    /// its own: which ids are stored, and which timers are due before the
    /// last of them. For a store across a network, round trips per batch
    /// instead of per event.
    fn ask_ahead(
        &self,
        pending: &mut Pending,
        events: &[Event],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if events.len() < 2 {
            return Ok(());
        }
        let ids: Vec<&EventId> = events.iter().map(|e| &e.id).collect();
        let stored = self.store.stored_events(&ids)?;
        pending.asked = Some((ids.into_iter().cloned().collect(), stored));
        let mut cases: Vec<&CaseId> = events.iter().filter_map(|e| e.case.as_ref()).collect();
        cases.sort_unstable();
        cases.dedup();
        let mut loaded: HashMap<CaseId, Option<Case>> =
            cases.iter().map(|c| ((*c).clone(), None)).collect();
        for case in self.store.load_cases(&cases)? {
            loaded.insert(case.id.clone(), Some(case));
        }
        let mut keys: Vec<String> = (loaded.values().flatten())
            .filter_map(|c| c.customer.key())
            .chain(events.iter().filter_map(event_customer_key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        pending.customers = Some(self.store.customers_cases(&keys)?);
        pending.loaded = Some(loaded);
        if let Some(until) = events.iter().map(|e| e.at.min(now)).max() {
            let timers = self.store.due_timers(until, TICK_ROUND)?;
            pending.due = Some(DueAhead {
                until,
                complete: timers.len() < TICK_ROUND,
                timers,
            });
        }
        Ok(())
    }

    /// Step one event into the batch being built; a refusal is added to
    /// the batch's rejected list. The outer error is a failed store read.
    fn step_into(
        &mut self,
        pending: &mut Pending,
        event: Event,
        now: Timestamp,
    ) -> Result<Result<Outcome, EventError>, EngineError> {
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
            Err(e) => Err(e),
        }
    }

    /// Commit what a batch produced.
    fn finish(&mut self, pending: Pending) -> Result<(), EngineError> {
        let batch = pending.batch;
        if batch.is_empty() && batch.fired.is_empty() {
            return Ok(());
        }
        let versions: Vec<String> = (batch.rulesets.iter().map(|s| s.hash.clone()))
            .chain(batch.packs.iter().map(|s| s.hash.clone()))
            .collect();
        self.store.commit_batch(batch)?;
        self.kept.extend(versions);
        Ok(())
    }

    /// The customer's other cases, as the rules see them.
    fn others(
        &self,
        pending: &Pending,
        case: &CaseId,
        key: Option<&str>,
    ) -> Result<CustomerStats, StoreError> {
        let mut stats = CustomerStats::default();
        let Some(key) = key else { return Ok(stats) };
        let stored = match pending.customers.as_ref().and_then(|c| c.get(key)) {
            Some(asked) => asked.clone(),
            None => self.store.customer_cases(key)?,
        };
        let mut summaries: BTreeMap<CaseId, CaseSummary> =
            stored.into_iter().map(|s| (s.case.clone(), s)).collect();
        for (id, (k, s)) in &pending.summaries {
            if k.as_deref() == Some(key) {
                summaries.insert(id.clone(), s.clone());
            } else {
                summaries.remove(id);
            }
        }
        for s in summaries.values().filter(|s| &s.case != case) {
            stats.cases += 1;
            stats.open_cases += u32::from(s.open);
            stats.contacts += s.contacts;
            for (ch, n) in &s.by_channel {
                *stats.by_channel.entry(*ch).or_default() += n;
            }
        }
        Ok(stats)
    }

    /// The case an event is about (refused when there is none and the
    /// kind opens none), as the batch so far left it, and the customer's
    /// other cases as the rules see them.
    fn subject(
        &self,
        pending: &mut Pending,
        event: &Event,
    ) -> Result<(CaseId, Option<Case>, CustomerStats), EngineError> {
        if !self.pack.workflow.known_kind(event.kind.as_str()) {
            return Err(EventError::UnknownKind {
                event: event.id.clone(),
                kind: event.kind.0.clone(),
            }
            .into());
        }
        let id = match resolve(&*self.store, &pending.links, event)? {
            Some(id) => id,
            None if OPENING_KINDS.contains(&event.kind.as_str()) => opening_case_id(&event.id),
            None => return Err(unresolved(event).into()),
        };
        // A case loaded ahead is taken, not copied: once stepped, the
        // batch's commit holds it (and should the event be refused, the
        // store still has it).
        let case = if let Some(&commit) = pending.cases.get(&id) {
            Some(pending.batch.commits[commit].case.clone())
        } else if let Some(ahead) = pending.loaded.as_mut().and_then(|l| l.remove(&id)) {
            ahead
        } else {
            self.store.load(&id)?
        };
        let key = case
            .as_ref()
            .and_then(|c| c.customer.key())
            .or_else(|| event_customer_key(event));
        let others = self.others(pending, &id, key.as_deref())?;
        Ok((id, case, others))
    }

    fn try_handle(
        &mut self,
        pending: &mut Pending,
        event: &Event,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        require_id(event)?;
        let stored = match &pending.asked {
            Some((asked, stored)) if asked.contains(&event.id) => stored.contains(&event.id),
            _ => self.store.has_event(&event.id)?,
        };
        if pending.seen.contains(&event.id) || stored {
            return Ok(Outcome::Duplicate);
        }
        let (id, case, others) = self.subject(pending, event)?;
        let rules = self.rules.current();
        self.keep_versions(pending, &rules)?;
        let before = case.as_ref().map(order_links).unwrap_or_default();
        let counts_from = event_time(event.at, now, case.as_ref().map(|c| c.updated_at));
        let Step {
            case,
            decisions,
            actions,
            past,
        } = step(&self.pack, &rules, case, &id, event, counts_from, &others)?;
        let mut links: Vec<String> = order_links(&case)
            .into_iter()
            .filter(|k| !before.contains(k))
            .collect();
        links.extend(message_links(&past));
        let open = !self.pack.workflow.is_terminal(case.state.as_str());
        let timers = self.timers_of(&case, case.updated_at);
        pending.timers.set(&id, &timers);
        for k in &links {
            pending.links.insert(k.clone(), id.clone());
        }
        pending.summaries.insert(
            id.clone(),
            (case.customer.key(), CaseSummary::of(&case, open)),
        );
        pending.seen.insert(event.id.clone());
        pending
            .cases
            .insert(id.clone(), pending.batch.commits.len());
        pending.batch.commits.push(Commit {
            accepted: Accepted {
                event: event.clone(),
                case: id.clone(),
                handled_at: now,
                customer: others,
                ruleset: Some(rules.hash().to_owned()),
                pack: Some(self.pack.version().to_owned()),
            },
            case,
            decisions: decisions.clone(),
            actions: actions.clone(),
            past,
            timers,
            links,
            open,
        });
        Ok(Outcome::Handled {
            case: id,
            decisions,
            actions,
        })
    }

    /// Fire everything due at or before `now`, in time order, each at its
    /// own due time, committing a round of at most `TICK_ROUND` timers at
    /// a time. Returns the outcomes of the timer events: all of them, so
    /// a loop that may meet a large backlog (a server started after an
    /// outage) takes [`tick_round`](Self::tick_round) instead.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Outcome>, EngineError> {
        let mut out = Vec::new();
        loop {
            let round = self.tick_round(now)?;
            out.extend(round.outcomes);
            if !round.more {
                return Ok(out);
            }
        }
    }

    /// One round of [`tick`](Self::tick): at most `TICK_ROUND` timers due
    /// at or before `now`, committed together. Memory and time per call
    /// stay bounded however many timers are overdue; `more` says whether
    /// another round may find some.
    pub fn tick_round(&mut self, now: Timestamp) -> Result<TickRound, EngineError> {
        let mut pending = Pending::default();
        let mut outcomes = Vec::new();
        let more = self.fire_due(&mut pending, now, TICK_ROUND, &mut outcomes)?;
        self.finish(pending)?;
        Ok(TickRound { outcomes, more })
    }

    /// Fire, into `pending`, the timers due at or before `until`, earliest
    /// first, each at its own due time: the store's, except those of cases
    /// this batch already changed, whose timers are the batch's. At most
    /// `limit`; true when more may be due.
    fn fire_due(
        &mut self,
        pending: &mut Pending,
        until: Timestamp,
        limit: usize,
        out: &mut Vec<Outcome>,
    ) -> Result<bool, EngineError> {
        let stored = match &pending.due {
            // The batch's timers, asked once (nothing is committed before
            // the batch ends, so the store's answer cannot change).
            Some(due) if due.complete && until <= due.until => due
                .timers
                .iter()
                .filter(|t| t.due <= until && !pending.fired.contains(t))
                .take(limit)
                .cloned()
                .collect(),
            _ => self.store.due_timers(until, limit)?,
        };
        let maybe_more = stored.len() == limit;
        let mut stored = stored.into_iter().peekable();
        for _ in 0..limit {
            while stored
                .peek()
                .is_some_and(|t| pending.timers.has_case(&t.case) || pending.fired.contains(t))
            {
                stored.next();
            }
            let from_batch = pending
                .timers
                .first_due(until, |t| pending.fired.contains(t));
            let timer = match (stored.peek(), from_batch) {
                (Some(s), Some(b)) if b < *s => b,
                (Some(_), _) => stored.next().expect("peeked"),
                (None, Some(b)) => b,
                (None, None) => return Ok(maybe_more),
            };
            let event = Event::new(
                format!(
                    "timer:{}:{}:{}",
                    timer.case,
                    timer.name,
                    timer.due.timestamp()
                ),
                timer.due,
                "timer.fired",
                Some(timer.case.clone()),
            )
            .with("timer", &timer.name);
            let due = timer.due;
            // A fired timer leaves the store with the batch; a case that
            // stepped stores its new timers with its commit.
            pending.fired.insert(timer.clone());
            // Out of the batch's queue too, so the next search does not
            // step over every timer the batch fired so far.
            pending.timers.remove(&timer);
            pending.batch.fired.push(timer);
            match self.step_into(pending, event, due)? {
                Ok(o) => {
                    self.timers_fired += 1;
                    out.push(o);
                }
                Err(e) => tracing::warn!("timer rejected: {e}"),
            }
        }
        Ok(true)
    }

    /// How many timer events this engine has handled (by `tick`, and
    /// before the events of a batch that came after them).
    pub fn timers_fired(&self) -> usize {
        self.timers_fired
    }

    /// The next moment a timer is due, if any.
    pub fn next_due(&self) -> Result<Option<Timestamp>, EngineError> {
        Ok(self.store.next_timer()?)
    }

    /// How many timers are waiting.
    pub fn pending_timers(&self) -> Result<usize, EngineError> {
        Ok(self.store.timer_count()?)
    }

    /// What handling `event` now would decide, and keep nothing: the same
    /// resolution of its case and the same [`step`] as [`handle`](Engine::handle),
    /// with the rules in force, but no commit. The console's "try a
    /// message" is this; an unknown kind or an event that names no case it
    /// can find is refused as `handle` would refuse it.
    pub fn dry_run(&self, event: &Event) -> Result<Step, EngineError> {
        let mut pending = Pending::default();
        let (id, case, others) = self.subject(&mut pending, event)?;
        let rules = self.rules.current();
        let counts_from = event_time(
            event.at,
            self.clock.now(),
            case.as_ref().map(|c| c.updated_at),
        );
        Ok(step(
            &self.pack,
            &rules,
            case,
            &id,
            event,
            counts_from,
            &others,
        )?)
    }

    /// The pack in force, to share with a thread that admits events
    /// without the engine ([`admit`]).
    pub fn shared_pack(&self) -> Arc<Pack> {
        self.pack.clone()
    }

    /// The engine's clock, for the same thread.
    pub fn shared_clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The other cases of the customer of case `id` (by the customer's key:
    /// id, e-mail or phone), from the store's index.
    pub fn customer_cases(
        &self,
        id: &CaseId,
        customer: &crate::case::Customer,
    ) -> Result<Vec<CaseId>, EngineError> {
        let Some(key) = customer.key() else {
            return Ok(Vec::new());
        };
        Ok(self
            .store
            .customer_cases(&key)?
            .into_iter()
            .map(|s| s.case)
            .filter(|c| c != id)
            .collect())
    }

    /// A case's present.
    pub fn case(&self, id: &CaseId) -> Result<Option<Case>, EngineError> {
        Ok(self.store.load(id)?)
    }

    /// A case with its whole past and every decision: what is shown.
    pub fn story(&self, id: &CaseId) -> Result<CaseStory, EngineError> {
        let case = self
            .store
            .load(id)?
            .ok_or_else(|| EngineError::UnknownCase(id.clone()))?;
        let events = self.store.events(id)?;
        Ok(CaseStory::new(
            case,
            self.store.past(id)?,
            events.into_iter().map(|a| a.event.id).collect(),
            self.store.decisions(id)?,
        ))
    }

    /// Make sure the store keeps the sources of the rule set and pack
    /// versions about to decide, in the same transaction as the first
    /// event they handle.
    fn keep_versions(&mut self, pending: &mut Pending, rules: &RuleSet) -> Result<(), StoreError> {
        let version = rules.hash();
        if !self.kept.contains(version) && !pending.batch.rulesets.iter().any(|s| s.hash == version)
        {
            if self.store.ruleset(version)?.is_some() {
                self.kept.insert(version.to_owned());
            } else {
                pending.batch.rulesets.push(rules.source());
            }
        }
        let pack = self.pack.version();
        if !self.kept.contains(pack) && !pending.batch.packs.iter().any(|s| s.hash == pack) {
            if self.store.pack(pack)?.is_some() {
                self.kept.insert(pack.to_owned());
            } else {
                pending.batch.packs.push(self.pack.source().clone());
            }
        }
        Ok(())
    }

    /// The pack and rule set that handled an event: the ones in force, or
    /// older ones compiled again from the sources the store kept.
    fn version(&self, accepted: &Accepted, current: &Arc<RuleSet>) -> Result<Version, EngineError> {
        // Events stored before versions were kept replay with the ones in force.
        let pack_hash = accepted.pack.as_deref().unwrap_or(self.pack.version());
        let base_rules = current.hash().to_owned();
        let rule_hash = accepted.ruleset.as_deref().unwrap_or(&base_rules);
        if pack_hash == self.pack.version() && rule_hash == current.hash() {
            return Ok((self.pack.clone(), current.clone()));
        }
        let key = (pack_hash.to_owned(), rule_hash.to_owned());
        let mut cache = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        let (pack, rules) = if pack_hash == self.pack.version() {
            (self.pack.clone(), current.clone())
        } else {
            let problem = |problem: String| EngineError::PackVersion {
                version: pack_hash.to_owned(),
                problem,
            };
            let source = self
                .store
                .pack(pack_hash)?
                .ok_or_else(|| problem("the store does not have its files".into()))?;
            let (pack, rules) = (self.loader)(&source)
                .map_err(|d| problem(format!("its stored files no longer load:\n{d}")))?;
            (Arc::new(pack), Arc::new(rules))
        };
        let rules = if rule_hash == rules.hash() {
            rules
        } else {
            Arc::new(recompile(self.store.as_ref(), rule_hash, &rules)?)
        };
        let v = (pack, rules);
        cache.insert(key, v.clone());
        Ok(v)
    }

    /// Rebuild a case from its stored events alone, each with the pack and
    /// rule set versions that handled it: the result must equal the stored
    /// case (a property test checks it), across reloads and upgrades too.
    pub fn replay(&self, id: &CaseId) -> Result<Case, EngineError> {
        let current = self.rules.current();
        let mut case = None;
        for a in self.store.events(id)? {
            let (pack, rules) = self.version(&a, &current)?;
            // Events stored before packs were versioned counted from when
            // they were handled; since then, from when they happened.
            let counts_from = match a.pack {
                Some(_) => event_time(
                    a.event.at,
                    a.handled_at,
                    case.as_ref().map(|c: &Case| c.updated_at),
                ),
                None => a.handled_at,
            };
            let s = step(&pack, &rules, case, id, &a.event, counts_from, &a.customer)?;
            case = Some(s.case);
        }
        case.ok_or_else(|| EngineError::UnknownCase(id.clone()))
    }

    /// The case's story for the next agent.
    pub fn explain(&self, id: &CaseId) -> Result<Explanation, EngineError> {
        Ok(Explanation::new(self.story(id)?))
    }

    /// Actions requested and not yet done.
    pub fn outbox(&self) -> Result<Vec<Action>, EngineError> {
        Ok(self.store.pending_actions()?)
    }

    pub fn event_seen(&self, id: &EventId) -> Result<bool, EngineError> {
        Ok(self.store.has_event(id)?)
    }
}

/// Compile a stored rule set version against `base` (its pack's rules).
fn recompile(store: &dyn Store, version: &str, base: &RuleSet) -> Result<RuleSet, EngineError> {
    let problem = |problem: String| EngineError::RuleSetVersion {
        version: version.to_owned(),
        problem,
    };
    let source = store
        .ruleset(version)?
        .ok_or_else(|| problem("the store does not have its source".into()))?;
    let set = base.recompile(&source).map_err(|d| {
        problem(format!(
            "it no longer compiles against its pack's directory, calendars and workflow:\n{d}"
        ))
    })?;
    if set.hash() != version {
        return Err(problem(format!(
            "its stored source compiles to version {}",
            set.hash()
        )));
    }
    Ok(set)
}

/// Where an event goes, decided without handling it: for a worker
/// that acknowledges events into a shared inbox for their case's owner
/// (`casework serve` on PostgreSQL), on a store connection of its own so
/// that acknowledging never waits for the engine. The refusals that
/// depend on the event alone (no id, an unknown kind, fields that do not
/// parse, no case to match) come at once, as `handle` would give them (a
/// duplicate is found where the event is stored, in one question for the
/// request: [`Inbox::enqueue`](crate::store::Inbox::enqueue)). `claimed`
/// holds the keys claimed by the events admitted before in the same
/// request (they are not stored yet); an opening event adds its own.
pub fn admit(
    pack: &Pack,
    store: &dyn Store,
    event: &Event,
    claimed: &mut HashMap<String, CaseId>,
) -> Result<Admission, EngineError> {
    require_id(event)?;
    if !pack.workflow.known_kind(event.kind.as_str()) {
        return Err(EventError::UnknownKind {
            event: event.id.clone(),
            kind: event.kind.0.clone(),
        }
        .into());
    }
    // A message's own Message-ID is linked as it is acknowledged, so a
    // reply acknowledged before this message is handled finds its case.
    let message = match event.payload()? {
        crate::event::Payload::Inbound(m) => {
            m.message_id.as_deref().map(|id| Link::MessageId(id).key())
        }
        _ => None,
    };
    match resolve(store, claimed, event)? {
        Some(case) => {
            let links: Vec<String> = message.into_iter().collect();
            for key in &links {
                claimed.entry(key.clone()).or_insert_with(|| case.clone());
            }
            Ok(Admission::Case {
                case,
                claims: Vec::new(),
                links,
            })
        }
        None if OPENING_KINDS.contains(&event.kind.as_str()) => {
            let case = opening_case_id(&event.id);
            let claims: Vec<String> = (event.order.iter().map(|o| Link::Order(o.as_str())))
                .chain(event.tracking.iter().map(|t| Link::Tracking(t)))
                .map(|l| l.key())
                .chain(message)
                .collect();
            for key in &claims {
                claimed.insert(key.clone(), case.clone());
            }
            Ok(Admission::Case {
                case,
                claims,
                links: Vec::new(),
            })
        }
        None => Err(unresolved(event).into()),
    }
}

/// The case an event is for: its case id, else the case its order,
/// tracking number or Message-ID is linked to (in `known` first: the
/// links of the batch or request so far).
fn resolve(
    store: &dyn Store,
    known: &HashMap<String, CaseId>,
    event: &Event,
) -> Result<Option<CaseId>, StoreError> {
    if let Some(c) = &event.case {
        return Ok(Some(c.clone()));
    }
    let links = (event.order.iter().map(|o| Link::Order(o.as_str())))
        .chain(event.tracking.iter().map(|t| Link::Tracking(t)))
        .chain(event.in_reply_to.iter().map(|m| Link::MessageId(m)));
    for link in links {
        if let Some(c) = known.get(&link.key()) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = store.linked_case(&link)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Every event needs an id: duplicates are found by it.
fn require_id(event: &Event) -> Result<(), EventError> {
    if event.id.is_unset() {
        return Err(EventError::Malformed {
            event: event.id.clone(),
            kind: event.kind.0.clone(),
            message: "the event has no `id`; every event needs a unique id".into(),
        });
    }
    Ok(())
}

/// Why an event that opens no case found none.
fn unresolved(event: &Event) -> EventError {
    let key = event
        .order
        .as_ref()
        .map(|o| format!("order {o}"))
        .or(event
            .tracking
            .as_ref()
            .map(|t| format!("tracking number {t}")))
        .or(event.in_reply_to.first().map(|m| format!("Message-ID {m}")));
    match key {
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
}

/// A batch being built: the commits so far, and what they changed that
/// later events of the batch must see before the store does.
#[derive(Default)]
struct Pending {
    batch: Batch,
    /// The cases the batch changed: the index of each one's last commit
    /// in `batch`, which holds the case as it now is.
    cases: HashMap<CaseId, usize>,
    links: HashMap<String, CaseId>,
    summaries: HashMap<CaseId, (Option<String>, CaseSummary)>,
    seen: HashSet<EventId>,
    /// The timers of the cases this batch changed (they replace the
    /// store's), and the timers it fired.
    timers: TimerQueue,
    fired: HashSet<Timer>,
    /// Event ids asked of the store ahead, and those it has.
    asked: Option<(HashSet<EventId>, HashSet<EventId>)>,
    /// The cases the batch's events name, as the store had them before
    /// the batch (`None`: not stored), each taken out when the batch
    /// reaches it; `cases` has what the batch changed.
    loaded: Option<HashMap<CaseId, Option<Case>>>,
    /// The cases of the batch's customers, as the store had them.
    customers: Option<HashMap<String, Vec<CaseSummary>>>,
    /// The store's timers due before the batch's last event, asked ahead.
    due: Option<DueAhead>,
}

/// Due timers asked of the store once for a batch.
struct DueAhead {
    until: Timestamp,
    timers: Vec<Timer>,
    /// Fewer than asked for: every timer due by `until` is here.
    complete: bool,
}

fn event_customer_key(event: &Event) -> Option<String> {
    let customer: crate::case::Customer =
        serde_json::from_value(event.data.get("customer")?.clone()).ok()?;
    customer.key()
}
