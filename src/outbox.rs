//! The outbox runner: hands requested actions to their plugins, retries
//! what failed for a while, and raises the case when an action cannot be
//! carried out.
//!
//! One pass ([`OutboxRunner::run_once`]):
//! 1. claim due actions of the plugins that can run, under a lease (an
//!    action of an unavailable plugin is left pending, untouched);
//! 2. execute each with its plugin, `action.id` being the idempotency key;
//! 3. on success: feed the plugin's events to the engine (committed), then
//!    mark the action done;
//! 4. on a transient failure with attempts left: schedule the next attempt
//!    with exponential backoff;
//! 5. on a permanent failure or after the last attempt: feed an
//!    `action.failed` event to the engine (so the case records it and the
//!    workflow raises it to a person), then mark the action gave-up.
//!
//! Events are fed *before* the action is completed: a crash in between
//! executes the action again once its lease runs out (the plugin
//! recognises the key) and the events come again with the same ids, which
//! the engine drops as duplicates. So nothing is lost and nothing is
//! applied twice. Every attempt is counted in the outbox row (`attempts`,
//! `last_error`).

use casework_core::Timestamp;
use casework_core::action::Action;
use casework_core::engine::{Engine, EngineError, Outcome};
use casework_core::event::{Event, EventError};
use std::sync::Arc;

use casework_core::clock::{Clock, SystemClock};
use casework_core::plugin::{Done, ENGINE_ACTIONS, PluginError};
use casework_core::store::{ActionOutcome, ClaimRequest, OutboxEntry, Store, StoreError};
use chrono::Duration;

use crate::plugins::Plugins;

/// How failed attempts are retried: the n-th failure waits
/// `base * factor^(n-1)`, at most `max_delay`; after `max_attempts`
/// attempts the action is given up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub factor: f64,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, 1 min, 2 min, 4 min, then give up (5 attempts in ~8 min):
    /// long enough to ride out a restart of the system behind a plugin,
    /// short enough that a person hears of a failure the same hour.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::seconds(30),
            factor: 2.0,
            max_delay: Duration::hours(1),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt.
    ///
    /// ```
    /// use casework::outbox::RetryPolicy;
    /// use chrono::Duration;
    /// let p = RetryPolicy { base: Duration::seconds(10), factor: 3.0, max_delay: Duration::minutes(2), max_attempts: 9 };
    /// assert_eq!(p.delay(1), Duration::seconds(10));
    /// assert_eq!(p.delay(2), Duration::seconds(30));
    /// assert_eq!(p.delay(3), Duration::seconds(90));
    /// assert_eq!(p.delay(4), Duration::minutes(2));
    /// ```
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(64) as i32;
        let ms = self.base.num_milliseconds() as f64 * self.factor.max(1.0).powi(exp);
        let max = self.max_delay.num_milliseconds() as f64;
        Duration::milliseconds(ms.min(max).max(0.0) as i64)
    }
}

/// Why a pass of the runner stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What one or more passes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerReport {
    /// Attempts made.
    pub attempts: usize,
    pub done: usize,
    /// Transient failures scheduled for another attempt.
    pub retried: usize,
    pub gave_up: usize,
    /// Events the plugins answered with, fed to the engine.
    pub events: usize,
    /// Plugin events the engine refused (recorded as rejected).
    pub rejected_events: usize,
    /// Outcomes not recorded because another worker took the action over.
    pub lease_lost: usize,
    /// One line per failed attempt, for the log.
    pub failures: Vec<String>,
}

/// Where a pass's events go: the engine, reached however the caller
/// holds it (`casework serve` takes its lock only when an attempt has
/// events).
pub type Feed<'a> =
    dyn FnMut(Vec<Event>) -> Result<Vec<Result<Outcome, EventError>>, EngineError> + 'a;

/// Attempts whose events went to the engine, waiting to be completed.
#[derive(Debug, Default)]
pub struct Settled {
    outcomes: Vec<(String, ActionOutcome)>,
}

/// What became of one recorded attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Done,
    Retried,
    GaveUp,
    /// Another worker took the action over; this outcome was not kept.
    LeaseLost,
}

impl Recorded {
    /// What an outcome becomes once recorded.
    fn of(outcome: &ActionOutcome) -> Recorded {
        match outcome {
            ActionOutcome::Done { .. } => Recorded::Done,
            ActionOutcome::Retry { .. } => Recorded::Retried,
            ActionOutcome::GaveUp { .. } => Recorded::GaveUp,
        }
    }

    /// As the console's metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Recorded::Done => "done",
            Recorded::Retried => "retried",
            Recorded::GaveUp => "gave_up",
            Recorded::LeaseLost => "lease_lost",
        }
    }
}

impl RunnerReport {
    pub fn add(&mut self, other: RunnerReport) {
        self.attempts += other.attempts;
        self.done += other.done;
        self.retried += other.retried;
        self.gave_up += other.gave_up;
        self.events += other.events;
        self.rejected_events += other.rejected_events;
        self.lease_lost += other.lease_lost;
        self.failures.extend(other.failures);
    }
}

/// Executes the outbox through the plugins.
pub struct OutboxRunner {
    plugins: Plugins,
    runnable: Vec<String>,
    worker: String,
    lease: Duration,
    batch: usize,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OutboxRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRunner")
            .field("plugins", &self.plugins)
            .field("worker", &self.worker)
            .field("lease", &self.lease)
            .field("policy", &self.policy)
            .finish()
    }
}

impl OutboxRunner {
    /// A runner for `plugins`, named `worker` (unique among the workers
    /// sharing a store). Leases last 60 s, 32 actions a pass, the default
    /// [`RetryPolicy`].
    pub fn new(plugins: Plugins, worker: impl Into<String>) -> Self {
        // Engine built-ins never reach the outbox; if an old store holds
        // one, no plugin may take it.
        let runnable = plugins
            .ready()
            .into_iter()
            .filter(|n| {
                !ENGINE_ACTIONS
                    .iter()
                    .any(|a| a.split('.').next() == Some(n))
            })
            .collect();
        OutboxRunner {
            plugins,
            runnable,
            worker: worker.into(),
            lease: Duration::seconds(60),
            batch: 32,
            policy: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock retries are scheduled by (the wall clock by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a claimed action stays this worker's. Make it longer than
    /// the slowest plugin's timeout: past it another worker may start the
    /// same action.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The plugin names this runner executes.
    pub fn runnable(&self) -> &[String] {
        &self.runnable
    }

    /// One pass: claim up to the batch size of what is due and carry
    /// each out.
    pub fn run_once(&self, engine: &mut Engine) -> Result<RunnerReport, OutboxError> {
        let now = self.clock.now();
        let mut report = RunnerReport::default();
        if self.runnable.is_empty() {
            return Ok(report);
        }
        let attempts: Vec<_> = (self.claim_at(engine.store_mut(), now)?.into_iter())
            .map(|entry| {
                let result = self.execute(&entry);
                (entry, result)
            })
            .collect();
        self.record_all(engine, attempts, &mut report)?;
        Ok(report)
    }

    /// Step 1 of a pass on its own: lease up to the batch size of what is
    /// due. With [`execute`](Self::execute) and
    /// [`record_all`](Self::record_all) a caller sharing the engine
    /// (`casework serve`) can let go of it while the plugins work.
    pub fn claim(&self, engine: &mut Engine) -> Result<Vec<OutboxEntry>, OutboxError> {
        self.claim_from(engine.store_mut())
    }

    /// [`claim`](Self::claim) on a store connection of the caller's own
    /// (a worker on PostgreSQL claims without holding the engine).
    pub fn claim_from(&self, store: &mut dyn Store) -> Result<Vec<OutboxEntry>, OutboxError> {
        if self.runnable.is_empty() {
            return Ok(Vec::new());
        }
        self.claim_at(store, self.clock.now())
    }

    fn claim_at(
        &self,
        store: &mut dyn Store,
        now: Timestamp,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        Ok(store.claim_actions(&ClaimRequest {
            worker: &self.worker,
            now,
            lease: self.lease,
            limit: self.batch,
            plugins: Some(&self.runnable),
        })?)
    }

    /// Step 2: carry out one claimed action with its plugin. Needs no
    /// engine.
    pub fn execute(&self, entry: &OutboxEntry) -> Result<Done, PluginError> {
        let action = &entry.action;
        match self.plugins.get(action.plugin()) {
            Some(plugin) => plugin.execute(action),
            None => Err(PluginError::Permanent {
                plugin: action.plugin().to_owned(),
                message: "no such plugin".into(),
            }),
        }
    }

    /// Passes until nothing is due at the clock's time (actions waiting
    /// for a retry or a lease later are left).
    pub fn run_until_idle(&self, engine: &mut Engine) -> Result<RunnerReport, OutboxError> {
        let mut report = RunnerReport::default();
        loop {
            let pass = self.run_once(engine)?;
            let idle = pass.attempts == 0;
            report.add(pass);
            if idle {
                return Ok(report);
            }
        }
    }

    /// When the next action this runner could execute becomes due (its
    /// retry time or the end of someone's lease), if any is pending.
    pub fn next_due(&self, engine: &Engine) -> Result<Option<Timestamp>, StoreError> {
        engine.store().next_action_due(Some(&self.runnable))
    }

    /// Step 3: record how the attempts of a pass ended: each attempt's
    /// events (what the plugin answered, or `action.failed`) go to the
    /// engine, then every action is completed (done, retry later, or given
    /// up) and its lease released, in one store transaction. One answer
    /// per attempt, in order.
    pub fn record_all(
        &self,
        engine: &mut Engine,
        attempts: Vec<(OutboxEntry, Result<Done, PluginError>)>,
        report: &mut RunnerReport,
    ) -> Result<Vec<Recorded>, OutboxError> {
        let settled = self.settle(&mut |events| engine.handle_batch(events), attempts, report)?;
        self.complete(engine.store_mut(), settled, report)
    }

    /// Step 3a: the events of each attempt (what the plugin answered, or
    /// `action.failed`) go to `feed`, which hands them to the engine; the
    /// outcomes wait for [`complete`](Self::complete).
    pub fn settle(
        &self,
        feed: &mut Feed<'_>,
        attempts: Vec<(OutboxEntry, Result<Done, PluginError>)>,
        report: &mut RunnerReport,
    ) -> Result<Settled, OutboxError> {
        let mut settled = Settled::default();
        for (entry, result) in attempts {
            let outcome = self.outcome(feed, &entry, result, report)?;
            settled.outcomes.push((entry.action.id, outcome));
        }
        Ok(settled)
    }

    /// Step 3b: complete the settled actions in one transaction of
    /// `store`. One answer per attempt, in order.
    pub fn complete(
        &self,
        store: &mut dyn Store,
        settled: Settled,
        report: &mut RunnerReport,
    ) -> Result<Vec<Recorded>, OutboxError> {
        if settled.outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<Recorded> = (settled.outcomes.iter())
            .map(|(_, outcome)| Recorded::of(outcome))
            .collect();
        let answers = store.complete_actions(&self.worker, settled.outcomes)?;
        Ok((kinds.into_iter())
            .zip(answers)
            .map(|(kind, answer)| match answer {
                Ok(()) => kind,
                Err(_) => {
                    report.lease_lost += 1;
                    Recorded::LeaseLost
                }
            })
            .collect())
    }

    /// How an attempt ended, for the store, after feeding the engine what
    /// the plugin answered (or `action.failed`).
    fn outcome(
        &self,
        feed: &mut Feed<'_>,
        entry: &OutboxEntry,
        result: Result<Done, PluginError>,
        report: &mut RunnerReport,
    ) -> Result<ActionOutcome, OutboxError> {
        let action = &entry.action;
        report.attempts += 1;
        let now = self.clock.now();
        Ok(match result {
            Ok(done) => {
                let events: Vec<Event> = done
                    .events
                    .into_iter()
                    .enumerate()
                    .map(|(n, e)| fill_event(action, n, e))
                    .collect();
                if !events.is_empty() {
                    report.events += events.len();
                    for r in feed(events)? {
                        if let Err(e) = r {
                            report.rejected_events += 1;
                            report.failures.push(format!(
                                "{}: the plugin's event was refused: {e}",
                                action.id
                            ));
                        }
                    }
                }
                report.done += 1;
                ActionOutcome::Done {
                    result: done.result,
                }
            }
            Err(e) if e.is_transient() && entry.attempts < self.policy.max_attempts => {
                let at = now + self.policy.delay(entry.attempts);
                report.retried += 1;
                report.failures.push(format!(
                    "{} ({}) attempt {}: {e}; next attempt at {}",
                    action.id,
                    action.action,
                    entry.attempts,
                    at.to_rfc3339()
                ));
                ActionOutcome::Retry {
                    at,
                    error: e.to_string(),
                }
            }
            Err(e) => {
                let why = if e.is_transient() {
                    format!("gave up after {} attempts: {e}", entry.attempts)
                } else {
                    format!("failed permanently on attempt {}: {e}", entry.attempts)
                };
                report.gave_up += 1;
                report
                    .failures
                    .push(format!("{} ({}) {why}", action.id, action.action));
                let event = failed_event(action, entry, &why, now);
                if let Some(Err(e)) = feed(vec![event])?.pop() {
                    report.failures.push(format!(
                        "{}: the action.failed event was refused: {e}",
                        action.id
                    ));
                }
                ActionOutcome::GaveUp { error: why }
            }
        })
    }
}

/// A plugin's event with its defaults: an id derived from the action (so
/// a repeated execution repeats it), and the action's case when it names
/// no case or correlation key.
fn fill_event(action: &Action, n: usize, mut event: Event) -> Event {
    if event.id.is_unset() {
        event.id = format!("{}:{n}", action.id).into();
    }
    if event.case.is_none()
        && event.order.is_none()
        && event.tracking.is_none()
        && event.in_reply_to.is_empty()
    {
        event.case = Some(action.case.clone());
    }
    event
}

/// The `action.failed` event for an action given up. Its id is derived
/// from the action, so feeding it twice (after a crash) counts once.
fn failed_event(action: &Action, entry: &OutboxEntry, why: &str, now: Timestamp) -> Event {
    Event::new(
        format!("action.failed:{}", action.id),
        now,
        "action.failed",
        Some(action.case.clone()),
    )
    .with("action", &action.action)
    .with("action_id", &action.id)
    .with("attempts", entry.attempts)
    .with("error", why)
    .with("text", format!("{} {why}", action.action))
}
