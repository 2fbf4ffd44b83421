//! `/metrics`: what the server did, in the Prometheus text format.
//!
//! Counters move where the work happens (the request that handled events,
//! the background pass that fired timers and ran the outbox); gauges that
//! describe the store (outbox backlog, timers waiting) are read from it
//! when Prometheus scrapes, so they can never drift from the truth.
//! Names follow Prometheus conventions: a `casework_` prefix, base units
//! (seconds), `_total` on counters (added by the encoder).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use casework_core::audit::{Decision, DecisionKind};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label pairs, in the order written.
type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The server's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    latency: Histogram,
    decisions: Family<Labels, Counter>,
    rule_errors: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    promises: Family<Labels, Counter>,
    sla_breaches: Family<Labels, Counter>,
    timers_fired: Counter,
    outbox_backlog: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    timers_waiting: Gauge,
    cases: Family<Labels, Gauge>,
    open_promises: Family<Labels, Gauge>,
    live_clients: Gauge,
}

/// What the store says when scraped.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub outbox_pending: usize,
    /// Age of the oldest pending action.
    pub oldest_pending: Option<Duration>,
    pub timers_waiting: usize,
    /// Cases by workflow state.
    pub cases_by_state: Vec<(String, usize)>,
    /// Open promises of open cases by status (pending, at_risk).
    pub open_promises: Vec<(String, usize)>,
    pub live_clients: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("casework");
        let m = Metrics {
            events: Family::default(),
            // 0.5 ms to ~8 s: a batch is one SQLite commit and its sync.
            latency: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 15,
            )),
            decisions: Family::default(),
            rule_errors: Family::default(),
            actions: Family::default(),
            promises: Family::default(),
            sla_breaches: Family::default(),
            timers_fired: Counter::default(),
            outbox_backlog: Gauge::default(),
            outbox_oldest: Gauge::default(),
            timers_waiting: Gauge::default(),
            cases: Family::default(),
            open_promises: Family::default(),
            live_clients: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events",
            "Events received, by kind and outcome (accepted, duplicate, rejected)",
            m.events.clone(),
        );
        registry.register_with_unit(
            "event_handling",
            "Time from a request's events reaching the engine to their commit",
            prometheus_client::registry::Unit::Seconds,
            m.latency.clone(),
        );
        registry.register(
            "decisions",
            "Decision records written, by kind",
            m.decisions.clone(),
        );
        registry.register(
            "rule_errors",
            "Rule failures the engine fell back from, by rule",
            m.rule_errors.clone(),
        );
        registry.register(
            "actions",
            "Outbox attempts, by plugin and outcome (done, retried, gave_up)",
            m.actions.clone(),
        );
        registry.register(
            "promise_changes",
            "Promise status changes, by new status",
            m.promises.clone(),
        );
        registry.register(
            "sla_breaches",
            "SLA clocks that breached, by clock",
            m.sla_breaches.clone(),
        );
        registry.register(
            "timers_fired",
            "Timers fired by the background pass",
            m.timers_fired.clone(),
        );
        registry.register(
            "outbox_pending",
            "Actions waiting in the outbox",
            m.outbox_backlog.clone(),
        );
        registry.register_with_unit(
            "outbox_oldest_pending_age",
            "Age of the oldest pending action (0 when none)",
            prometheus_client::registry::Unit::Seconds,
            m.outbox_oldest.clone(),
        );
        registry.register(
            "timers_waiting",
            "Timers, SLA warnings and promise checks waiting to come due",
            m.timers_waiting.clone(),
        );
        registry.register("cases", "Cases by workflow state", m.cases.clone());
        registry.register(
            "open_promises",
            "Open promises of open cases, by status (pending, at_risk)",
            m.open_promises.clone(),
        );
        registry.register(
            "console_live_clients",
            "Browsers following live updates",
            m.live_clients.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One event's outcome: `accepted`, `duplicate` or `rejected`.
    pub fn event(&self, kind: &str, outcome: &str) {
        self.events
            .get_or_create(&labels(&[("kind", kind), ("outcome", outcome)]))
            .inc();
    }

    /// How long a request's events took to handle and commit.
    pub fn handled_in(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    /// The decisions of one handled event or timer.
    pub fn decisions(&self, decisions: &[Decision]) {
        for d in decisions {
            self.decisions
                .get_or_create(&labels(&[("kind", d.kind_name())]))
                .inc();
            match &d.what {
                DecisionKind::Error { error, .. } => {
                    let rule = d
                        .rule
                        .as_ref()
                        .map_or_else(|| error.clone(), |r| format!("{}#{}", r.file, r.name));
                    self.rule_errors
                        .get_or_create(&labels(&[("rule", &rule)]))
                        .inc();
                }
                DecisionKind::Promise { status, .. } => {
                    self.promises
                        .get_or_create(&labels(&[("status", status.as_str())]))
                        .inc();
                }
                DecisionKind::Sla { clock, status, .. } if status == "breached" => {
                    self.sla_breaches
                        .get_or_create(&labels(&[("clock", clock)]))
                        .inc();
                }
                _ => {}
            }
        }
    }

    /// One outbox attempt's outcome for a plugin.
    pub fn action(&self, plugin: &str, outcome: &str) {
        self.actions
            .get_or_create(&labels(&[("plugin", plugin), ("outcome", outcome)]))
            .inc();
    }

    pub fn timers_fired(&self, n: usize) {
        self.timers_fired.inc_by(n as u64);
    }

    /// The text Prometheus scrapes, with the store's gauges as of now.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.outbox_backlog.set(snapshot.outbox_pending as i64);
        self.outbox_oldest
            .set(snapshot.oldest_pending.map_or(0.0, |d| d.as_secs_f64()));
        self.timers_waiting.set(snapshot.timers_waiting as i64);
        self.live_clients.set(snapshot.live_clients as i64);
        self.cases.clear();
        for (state, n) in &snapshot.cases_by_state {
            self.cases
                .get_or_create(&labels(&[("state", state)]))
                .set(*n as i64);
        }
        self.open_promises.clear();
        for status in ["pending", "at_risk"] {
            let n = snapshot
                .open_promises
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.open_promises
                .get_or_create(&labels(&[("status", status)]))
                .set(n as i64);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
