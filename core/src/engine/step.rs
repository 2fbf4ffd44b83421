//! The pure heart of the engine: one event applied to one case.
//!
//! [`step`] is a function of (case, event, pack, rule set, time, customer
//! statistics) and nothing else: no I/O, no clock, no global state. The
//! engine around it stores and indexes; replaying a case is folding `step`
//! over its accepted events.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::Timestamp;
use crate::action::Action;
use crate::audit::{Decision, DecisionKind, RuleRef};
use crate::case::{
    Author, Case, Channel, Message, Note, SlaKind, SlaStatus, StateId, Task, UrgencyLevel,
};
use crate::config::ActionDef;
use crate::event::{Event, EventError, Payload};
use crate::promise::{Promise, PromiseStatus};
use crate::rules::{CustomerStats, RuleInput, RuleSet};

use super::Pack;
use super::sla::is_counting;

/// How many engine-raised events (`promise.at_risk`, ...) one event may
/// cascade into before the engine stops following them: a guard against a
/// workflow whose transitions raise each other forever.
const MAX_CASCADE: usize = 16;

/// What handling one event did to one case.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub case: Case,
    pub decisions: Vec<Decision>,
    pub actions: Vec<Action>,
}

/// Apply `event` to `case` (None: the event opens a new case `id`).
///
/// `others` are the statistics of the customer's *other* cases, taken
/// before this event; they are an input like the event itself, stored with
/// it, so that a replay sees what the original run saw.
pub fn step(
    pack: &Pack,
    rules: &RuleSet,
    case: Option<Case>,
    id: &crate::case::CaseId,
    event: &Event,
    now: Timestamp,
    others: &CustomerStats,
) -> Result<Step, EventError> {
    let payload = event.payload()?;
    let mut s = Stepper {
        pack,
        rules,
        event,
        now,
        case: case.unwrap_or_else(|| Case::open(id.clone(), now, pack.workflow.initial().clone())),
        decisions: Vec::new(),
        actions: Vec::new(),
        raised: Vec::new(),
    };
    let opened = s.case.events.is_empty();
    s.case.events.push(event.id.clone());
    s.case.updated_at = now;
    s.record(
        DecisionKind::Event {
            event_kind: event.kind.0.clone(),
            summary: summary(event),
        },
        None,
    );
    if opened {
        s.start_sla(SlaKind::Resolution);
    }
    s.apply(&payload)?;

    let stats = s.customer_stats(others);
    s.run_route(&stats);
    // Promises first, so urgency sees the statuses this event left them in.
    s.run_promise_checks(&stats, &payload);
    s.run_urgency(&stats);
    s.run_transitions(&payload, &stats);

    let Stepper {
        mut case,
        decisions,
        actions,
        ..
    } = s;
    case.history.extend(decisions.iter().cloned());
    Ok(Step {
        case,
        decisions,
        actions,
    })
}

struct Stepper<'a> {
    pack: &'a Pack,
    rules: &'a RuleSet,
    event: &'a Event,
    now: Timestamp,
    case: Case,
    decisions: Vec<Decision>,
    actions: Vec<Action>,
    /// Engine-raised event kinds, for the workflow to react to.
    raised: Vec<&'static str>,
}

impl Stepper<'_> {
    fn record(&mut self, what: DecisionKind, rule: Option<RuleRef>) {
        self.record_with(what, rule, None);
    }

    fn record_with(&mut self, what: DecisionKind, rule: Option<RuleRef>, inputs: Option<Value>) {
        let ruleset = rule.as_ref().map(|_| self.rules.hash().to_owned());
        self.decisions.push(Decision {
            at: self.now,
            case: self.case.id.clone(),
            event: Some(self.event.id.clone()),
            what,
            rule,
            ruleset,
            inputs,
        });
    }

    fn record_error(
        &mut self,
        error: &str,
        message: String,
        fallback: &str,
        rule: Option<RuleRef>,
    ) {
        tracing::warn!(case = %self.case.id, event = %self.event.id, "{message}; {fallback}");
        self.record(
            DecisionKind::Error {
                error: error.to_owned(),
                message,
                fallback: fallback.to_owned(),
            },
            rule,
        );
    }

    fn raise(&mut self, kind: &'static str) {
        if !self.raised.contains(&kind) {
            self.raised.push(kind);
        }
    }

    fn paused_here(&self) -> bool {
        self.pack
            .workflow
            .state(self.case.state.as_str())
            .is_some_and(|s| s.pauses_sla)
    }

    fn start_sla(&mut self, kind: SlaKind) {
        let Some(plan) = &self.pack.sla else { return };
        let paused = self.paused_here();
        if plan.start(&mut self.case, kind, self.now, paused) {
            self.record_sla(kind, "started");
        }
    }

    fn meet_sla(&mut self, kind: SlaKind) {
        let Some(plan) = &self.pack.sla else { return };
        if plan.meet(&mut self.case, kind, self.now).is_some() {
            self.record_sla(kind, "met");
        }
    }

    /// Record what happened to an SLA clock, with when it is now due.
    fn record_sla(&mut self, kind: SlaKind, status: &str) {
        let due = self
            .case
            .sla
            .iter()
            .find(|c| c.kind == kind)
            .and_then(|c| c.due_at);
        self.record(
            DecisionKind::Sla {
                clock: kind.as_str().to_owned(),
                status: status.to_owned(),
                due,
            },
            None,
        );
    }

    // ---- facts -------------------------------------------------------

    fn apply(&mut self, payload: &Payload) -> Result<(), EventError> {
        let kind = self.event.kind.as_str();
        if let Some(order) = &self.event.order {
            self.case.order_mut(order);
        }
        match payload {
            Payload::Inbound(m) => {
                if let Some(c) = &m.customer {
                    self.case.customer.merge(c);
                }
                let channel = m.channel.unwrap_or(match kind {
                    "email.received" => Channel::Email,
                    "customer.call" => Channel::Phone,
                    _ => Channel::WebForm,
                });
                let from = m.from.clone().or_else(|| {
                    m.customer
                        .as_ref()
                        .and_then(|c| c.email.clone().or(c.name.clone()))
                });
                let author =
                    if kind == "email.received" && !self.is_customer_address(from.as_deref()) {
                        Author::Colleague
                    } else {
                        Author::Customer
                    };
                self.case.messages.push(Message {
                    at: self.event.at,
                    author,
                    from: from.clone(),
                    channel,
                    subject: m.subject.clone(),
                    text: m.text.clone(),
                    message_id: m.message_id.clone(),
                    event: self.event.id.clone(),
                });
                if author == Author::Customer {
                    self.case.contacts += 1;
                    self.case.contacts_since_reply += 1;
                    let record = &mut self.case.record;
                    let mut set = Vec::new();
                    if record.contact.is_none() {
                        record.contact = self.case.customer.name.clone().or(from).or(self
                            .case
                            .customer
                            .email
                            .clone());
                        record.contacted_at = Some(self.event.at);
                        record.channel = Some(channel);
                        if let Some(c) = &record.contact {
                            set.push(("contact", c.clone()));
                        }
                    }
                    if record.complaint.is_none() && !m.text.trim().is_empty() {
                        let complaint = first_words(&m.text, 160);
                        record.complaint = Some(complaint.clone());
                        set.push(("complaint", complaint));
                    }
                    if let Some(agent) = &m.agent {
                        if record.taken_by.is_none() {
                            record.taken_by = Some(agent.clone());
                            set.push(("taken_by", agent.clone()));
                        }
                        if !record.handled_by.contains(agent) {
                            record.handled_by.push(agent.clone());
                        }
                    }
                    for (field, value) in set {
                        self.record(
                            DecisionKind::Record {
                                field: field.to_owned(),
                                value,
                            },
                            None,
                        );
                    }
                    let replied = self.case.sla.iter().any(|c| c.kind == SlaKind::FirstReply);
                    let clock = if replied {
                        SlaKind::NextReply
                    } else {
                        SlaKind::FirstReply
                    };
                    self.start_sla(clock);
                    // A call an agent took is answered as it happens: the
                    // customer is not waiting for a reply.
                    if kind == "customer.call" && m.agent.is_some() {
                        self.meet_sla(clock);
                        self.case.contacts_since_reply = 0;
                    }
                }
            }
            Payload::AgentNote(n) => {
                self.note_agent(&n.agent);
                if !n.text.is_empty() {
                    self.case.record.notes.push(Note {
                        at: self.event.at,
                        agent: n.agent.clone(),
                        text: n.text.clone(),
                    });
                }
                match kind {
                    "agent.reply" => {
                        self.case.messages.push(Message {
                            at: self.event.at,
                            author: Author::Agent,
                            from: Some(n.agent.clone()),
                            channel: n.channel.unwrap_or(Channel::Email),
                            subject: None,
                            text: n.text.clone(),
                            message_id: None,
                            event: self.event.id.clone(),
                        });
                        self.meet_sla(SlaKind::FirstReply);
                        self.meet_sla(SlaKind::NextReply);
                        self.case.contacts_since_reply = 0;
                    }
                    "agent.call" => {
                        self.meet_sla(SlaKind::FirstReply);
                        self.meet_sla(SlaKind::NextReply);
                        self.case.contacts_since_reply = 0;
                        let now = self.now;
                        let mut done = Vec::new();
                        for task in self
                            .case
                            .tasks
                            .iter_mut()
                            .filter(|t| t.kind == "call_customer" && t.done_at.is_none())
                        {
                            task.done_at = Some(now);
                            done.push(task.id.clone());
                        }
                        for id in done {
                            self.record(
                                DecisionKind::Record {
                                    field: format!("task {id}"),
                                    value: format!("done: called by {}", n.agent),
                                },
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
            Payload::Promise(p) => {
                self.note_agent(&p.agent);
                let promise = Promise::make(
                    &p.promise,
                    &p.agent,
                    self.now,
                    p.channel,
                    self.pack.timezone,
                )
                .map_err(|e| self.malformed(e.to_string()))?;
                if self.case.promise(promise.id.as_str()).is_some() {
                    return Err(self.malformed(format!(
                        "promise {} already exists on case {}; send `agent.revise_promise` with `revises: {}` and a new id",
                        promise.id, self.case.id, promise.id
                    )));
                }
                let revises = if kind == "agent.revise_promise" {
                    let Some(old) = promise.revises.clone() else {
                        return Err(self.malformed(
                            "a revision needs `revises:` naming the promise it replaces".into(),
                        ));
                    };
                    let reason = p
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("revised by {}", p.agent));
                    let now = self.now;
                    let Some(prev) = self.case.promise_mut(old.as_str()) else {
                        return Err(self.malformed(format!(
                            "promise {old} to revise is not on case {}",
                            self.case.id
                        )));
                    };
                    let previous = prev.status;
                    prev.revised_by = Some(promise.id.clone());
                    prev.set_status(PromiseStatus::Revised, &reason, now);
                    Some((old, previous, reason))
                } else {
                    None
                };
                if let Some(order) = &promise.order {
                    self.case.order_mut(order);
                }
                let text = promise_text(&promise);
                // The handoff record keeps the agent's own words: the
                // promise's text when given, else what the agent already
                // recorded; the machine summary only fills an empty record
                // (or states a revision, which makes older words stale).
                let record = &mut self.case.record;
                if let Some(words) = &promise.text {
                    record.commitment = Some(words.clone());
                } else if record.commitment.is_none() || revises.is_some() {
                    record.commitment = Some(text.clone());
                }
                if let Some((old, previous, reason)) = revises {
                    self.record(
                        DecisionKind::Promise {
                            promise: old.0,
                            status: PromiseStatus::Revised,
                            reason,
                            previous: Some(previous),
                        },
                        None,
                    );
                }
                self.record(
                    DecisionKind::Promise {
                        promise: promise.id.0.clone(),
                        status: PromiseStatus::Pending,
                        reason: format!("{text}, promised by {}", p.agent),
                        previous: None,
                    },
                    None,
                );
                self.case.promises.push(promise);
            }
            Payload::CancelPromise(c) => {
                let now = self.now;
                let reason = c
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("cancelled by {}", c.agent));
                let Some(p) = self.case.promise_mut(&c.promise) else {
                    return Err(self.malformed(format!(
                        "promise {} is not on case {}",
                        c.promise, self.case.id
                    )));
                };
                let previous = p.status;
                if p.set_status(PromiseStatus::Cancelled, &reason, now) {
                    self.record(
                        DecisionKind::Promise {
                            promise: c.promise.clone(),
                            status: PromiseStatus::Cancelled,
                            reason,
                            previous: Some(previous),
                        },
                        None,
                    );
                }
            }
            Payload::Assign(a) => {
                let by =
                    a.by.clone()
                        .or(a.agent.clone())
                        .unwrap_or_else(|| "agent".into());
                let team = a.team.clone().or(self.case.assignment.team.clone());
                let Some(team) = team else {
                    return Err(self.malformed(
                        "`agent.assign` needs a `team` (or an `agent` on an assigned case)".into(),
                    ));
                };
                if !self.pack.has_team(&team) {
                    return Err(self.malformed(format!(
                        "team `{team}` is not in the directory; known teams: {}",
                        self.pack.team_names().join(", ")
                    )));
                }
                if let Some(agent) = &a.agent {
                    self.note_agent(agent);
                }
                self.assign(
                    team,
                    None,
                    a.agent.clone(),
                    format!("assigned by {by}"),
                    by,
                    None,
                );
            }
            Payload::Record(r) => {
                self.note_agent(&r.agent);
                let fields = [
                    ("complaint", &r.complaint),
                    ("proposed_resolution", &r.proposed_resolution),
                    ("landed", &r.landed),
                    ("commitment", &r.commitment),
                ];
                for (field, value) in fields {
                    let Some(value) = value else { continue };
                    let record = &mut self.case.record;
                    let slot = match field {
                        "complaint" => &mut record.complaint,
                        "proposed_resolution" => &mut record.proposed_resolution,
                        "landed" => &mut record.landed,
                        _ => &mut record.commitment,
                    };
                    *slot = Some(value.clone());
                    self.record(
                        DecisionKind::Record {
                            field: field.to_owned(),
                            value: value.clone(),
                        },
                        None,
                    );
                }
                if let Some(note) = &r.note {
                    self.case.record.notes.push(Note {
                        at: self.event.at,
                        agent: r.agent.clone(),
                        text: note.clone(),
                    });
                }
            }
            Payload::Fulfilment(f) => {
                if let Some(c) = &f.customer {
                    self.case.customer.merge(c);
                }
                let order_id = match (&self.event.order, &self.event.tracking) {
                    (Some(o), _) => Some(o.clone()),
                    (None, Some(t)) => self
                        .case
                        .orders
                        .iter()
                        .find(|o| o.tracking.as_deref() == Some(t))
                        .map(|o| o.id.clone()),
                    _ => None,
                };
                let Some(order_id) = order_id else {
                    return Err(self.malformed(
                        "needs `order:` (or a `tracking:` number already linked to an order)"
                            .into(),
                    ));
                };
                let needs = match kind {
                    "warehouse.planned" if f.ship_date.is_none() => {
                        Some("`warehouse.planned` needs `ship_date: YYYY-MM-DD`")
                    }
                    "carrier.eta" if f.eta.is_none() => {
                        Some("`carrier.eta` needs `eta: YYYY-MM-DD`")
                    }
                    _ => None,
                };
                if let Some(needs) = needs {
                    return Err(self.malformed(needs.to_owned()));
                }
                let day = self.event.at.date_naive();
                let at = self.event.at;
                let order = self.case.order_mut(&order_id);
                if let Some(t) = &self.event.tracking {
                    order.tracking = Some(t.clone());
                }
                match kind {
                    "warehouse.planned" => {
                        order.planned_ship = f.ship_date;
                    }
                    "warehouse.delayed" => {
                        if let Some(d) = f.ship_date {
                            order.planned_ship = Some(d);
                        }
                        order.problem = Some(f.reason.clone().unwrap_or_else(|| "delayed".into()));
                    }
                    "warehouse.shipped" => {
                        order.shipped_on = Some(f.ship_date.unwrap_or(day));
                        order.held_until = None;
                    }
                    "warehouse.held" => {
                        order.held_until = f.until;
                    }
                    "warehouse.released" => order.held_until = None,
                    "warehouse.backorder" => {
                        order.backordered = true;
                        order.problem = f.reason.clone().or(Some("backordered".into()));
                    }
                    "carrier.eta" => {
                        order.carrier_eta = f.eta;
                    }
                    "carrier.delivered" => order.delivered_at = Some(at),
                    "carrier.exception" => {
                        order.problem = Some(
                            f.reason
                                .clone()
                                .unwrap_or_else(|| "carrier exception".into()),
                        );
                    }
                    _ => {}
                }
            }
            Payload::Timer(_) | Payload::Other => {}
        }
        Ok(())
    }

    fn malformed(&self, message: String) -> EventError {
        EventError::Malformed {
            event: self.event.id.clone(),
            kind: self.event.kind.0.clone(),
            message,
        }
    }

    fn is_customer_address(&self, from: Option<&str>) -> bool {
        let Some(from) = from else { return true };
        match &self.case.customer.email {
            Some(email) => from.to_lowercase().contains(&email.to_lowercase()),
            None => !self.pack.is_staff_address(from),
        }
    }

    /// Remember an agent on the handoff record.
    fn note_agent(&mut self, agent: &str) {
        let record = &mut self.case.record;
        if record.taken_by.is_none() {
            record.taken_by = Some(agent.to_owned());
        }
        if record.handled_by.last().map(String::as_str) != Some(agent) {
            record.handled_by.push(agent.to_owned());
        }
    }

    fn assign(
        &mut self,
        team: String,
        skill: Option<String>,
        agent: Option<String>,
        reason: String,
        by: String,
        rule: Option<RuleRef>,
    ) {
        let a = &mut self.case.assignment;
        let team_changed = a.team.as_deref() != Some(team.as_str());
        if !team_changed && agent.is_none() && skill == a.skill {
            return;
        }
        if team_changed && a.team.is_some() {
            a.hops += 1;
        }
        a.team = Some(team.clone());
        a.skill.clone_from(&skill);
        if agent.is_some() || team_changed {
            a.agent.clone_from(&agent);
        }
        a.since = Some(self.now);
        a.by = Some(by);
        self.record(
            DecisionKind::Route {
                team,
                skill,
                agent,
                reason,
            },
            rule,
        );
        self.raise("case.routed");
    }

    // ---- rules -------------------------------------------------------

    fn customer_stats(&self, others: &CustomerStats) -> CustomerStats {
        let mut stats = others.clone();
        stats.cases += 1;
        if !self.pack.workflow.is_terminal(self.case.state.as_str()) {
            stats.open_cases += 1;
        }
        stats.contacts += self.case.contacts;
        for m in self
            .case
            .messages
            .iter()
            .filter(|m| m.author == Author::Customer)
        {
            *stats.by_channel.entry(m.channel).or_default() += 1;
        }
        stats
    }

    fn input<'b>(&'b self, stats: &'b CustomerStats) -> RuleInput<'b> {
        RuleInput {
            case: &self.case,
            event: Some(self.event),
            now: self.now,
            customer: stats,
        }
    }

    fn run_route(&mut self, stats: &CustomerStats) {
        let inbound = matches!(
            self.event.kind.as_str(),
            "customer.message" | "customer.call" | "email.received"
        );
        let by_agent = self
            .case
            .assignment
            .by
            .as_deref()
            .is_some_and(|by| by != "rule");
        if !inbound || by_agent {
            return;
        }
        let fallback = self.pack.fallback_team().to_owned();
        match self.rules.route(&self.input(stats)) {
            Ok(Some(route)) if self.pack.has_team(&route.team) => {
                self.assign(
                    route.team,
                    route.skill,
                    route.agent,
                    route.reason,
                    "rule".into(),
                    Some(route.rule),
                );
            }
            Ok(Some(route)) => {
                let message = format!(
                    "rule `route` returned team `{}`, which is not in the directory (known: {})",
                    route.team,
                    self.pack.team_names().join(", ")
                );
                self.record_error(
                    "route",
                    message,
                    &format!("routed to the fallback team {fallback}"),
                    Some(route.rule),
                );
                self.assign(
                    fallback,
                    None,
                    None,
                    "fallback: the route rule named an unknown team".into(),
                    "rule".into(),
                    None,
                );
            }
            Ok(None) => {
                if self.case.assignment.team.is_none() {
                    self.assign(
                        fallback,
                        None,
                        None,
                        "fallback: no routing rule matched".into(),
                        "rule".into(),
                        None,
                    );
                }
            }
            Err(e) => {
                let rule = self.pack.error_ref(self.rules, &e);
                self.record_error(
                    "route",
                    e.to_string(),
                    &format!("routed to the fallback team {fallback}"),
                    rule,
                );
                if self.case.assignment.team.is_none() {
                    self.assign(
                        fallback,
                        None,
                        None,
                        "fallback: the route rule failed".into(),
                        "rule".into(),
                        None,
                    );
                }
            }
        }
    }

    fn run_urgency(&mut self, stats: &CustomerStats) {
        match self.rules.urgency(&self.input(stats)) {
            Ok(Some(v)) => {
                let u = &self.case.urgency;
                if u.level == v.level && u.score == v.score && u.reasons == v.reasons {
                    return;
                }
                let rose = v.level > u.level;
                self.case.urgency = crate::case::Urgency {
                    level: v.level,
                    score: v.score,
                    reasons: v.reasons.clone(),
                };
                self.record(
                    DecisionKind::Urgency {
                        level: v.level,
                        score: v.score,
                        reasons: v.reasons,
                    },
                    Some(v.rule),
                );
                if rose && v.level >= UrgencyLevel::High {
                    self.raise("urgency.raised");
                }
            }
            Ok(None) => {}
            Err(e) => {
                let rule = self.pack.error_ref(self.rules, &e);
                self.record_error("urgency", e.to_string(), "urgency left as it was", rule);
            }
        }
    }

    fn run_promise_checks(&mut self, stats: &CustomerStats, payload: &Payload) {
        let _ = payload;
        for i in 0..self.case.promises.len() {
            if !self.case.promises[i].status.is_open() {
                continue;
            }
            // 1. The event that fulfils the promise settles it.
            if let Some((status, reason)) = self.settle(&self.case.promises[i]) {
                self.set_promise(i, status, reason, None, Vec::new());
                continue;
            }
            // 2. The rule judges the facts.
            let promise = self.case.promises[i].clone();
            let verdict = self.rules.check_promise(&promise, &self.input(stats));
            match verdict {
                Ok(Some(check)) => {
                    let suggested = check.actions.clone();
                    self.set_promise(i, check.status, check.reason, Some(check.rule), suggested);
                }
                Ok(None) => {}
                Err(e) => {
                    let rule = self.pack.error_ref(self.rules, &e);
                    self.record_error(
                        "check_promise",
                        e.to_string(),
                        &format!("promise {} left {}", promise.id, promise.status),
                        rule,
                    );
                }
            }
            // 3. A promise past due that nothing settled is broken, never
            //    silently left open.
            let p = &self.case.promises[i];
            if p.status.is_open()
                && let Some(due) = p.due_at()
                && self.now >= due
            {
                let reason = format!("due {} passed without {}", due.to_rfc3339(), p.fulfilled_by);
                self.set_promise(i, PromiseStatus::Broken, reason, None, Vec::new());
            }
        }
    }

    /// The engine's own verdict when this event is the promise's fulfilment.
    fn settle(&self, p: &Promise) -> Option<(PromiseStatus, String)> {
        if self.event.kind.as_str() != p.fulfilled_by {
            return None;
        }
        if p.kind.is_delivery() {
            let order = p.order.as_ref()?;
            let delivered = self.case.order(order.as_str())?.delivered_at?;
            let day = delivered.with_timezone(&p.tz).date_naive();
            let window = p.delivery_window()?;
            return Some(if window.contains(day) {
                (
                    PromiseStatus::Kept,
                    format!("delivered on {day}, inside {}..{}", window.from, window.to),
                )
            } else if day < window.from {
                (
                    PromiseStatus::Broken,
                    format!("delivered early on {day}, before {}", window.from),
                )
            } else {
                (
                    PromiseStatus::Broken,
                    format!("delivered late on {day}, after {}", window.to),
                )
            });
        }
        let due = p.due_at()?;
        Some(if self.now <= due {
            (
                PromiseStatus::Kept,
                format!(
                    "{} at {} before {}",
                    self.event.kind,
                    self.now.to_rfc3339(),
                    due.to_rfc3339()
                ),
            )
        } else {
            (
                PromiseStatus::Broken,
                format!(
                    "{} at {}, after {}",
                    self.event.kind,
                    self.now.to_rfc3339(),
                    due.to_rfc3339()
                ),
            )
        })
    }

    fn set_promise(
        &mut self,
        i: usize,
        status: PromiseStatus,
        reason: String,
        rule: Option<RuleRef>,
        suggested: Vec<ActionDef>,
    ) {
        let now = self.now;
        let p = &mut self.case.promises[i];
        let previous = p.status;
        if previous == status && (p.reason == reason || status == PromiseStatus::Pending) {
            return;
        }
        if previous == status {
            // Still at risk, for a new reason: note it, keep the status.
            p.reason.clone_from(&reason);
            p.history.push(crate::promise::StatusChange {
                at: now,
                status,
                reason: reason.clone(),
            });
        } else {
            p.set_status(status, &reason, now);
        }
        let id = p.id.0.clone();
        let inputs = promise_inputs(&self.case.promises[i], &self.case);
        let by = rule
            .as_ref()
            .map_or_else(|| "engine".to_owned(), |r| format!("{}#{}", r.file, r.name));
        self.record_with(
            DecisionKind::Promise {
                promise: id.clone(),
                status,
                reason,
                previous: Some(previous),
            },
            rule.clone(),
            Some(inputs),
        );
        match status {
            PromiseStatus::AtRisk => self.raise("promise.at_risk"),
            PromiseStatus::Broken => self.raise("promise.broken"),
            PromiseStatus::Kept => self.raise("promise.kept"),
            _ => {}
        }
        for mut a in suggested {
            a.params.entry("promise").or_insert_with(|| json!(id));
            self.request(&a, &by, rule.clone());
        }
    }

    // ---- workflow ----------------------------------------------------

    fn run_transitions(&mut self, payload: &Payload, stats: &CustomerStats) {
        if let Payload::Timer(t) = payload {
            self.run_timer(&t.timer);
        }
        let mut kinds: Vec<String> = vec![self.event.kind.0.clone()];
        let mut next_raised = 0;
        let mut steps = 0;
        while let Some(kind) = kinds.pop() {
            steps += 1;
            if steps > MAX_CASCADE {
                self.record_error(
                    "workflow",
                    format!("more than {MAX_CASCADE} transitions cascaded from one event"),
                    "stopped following raised events; check transitions on engine-raised kinds for a cycle",
                    None,
                );
                break;
            }
            self.fire_first(&kind, stats);
            // Raised kinds are followed in the order they were raised.
            while next_raised < self.raised.len() {
                kinds.insert(0, self.raised[next_raised].to_owned());
                next_raised += 1;
            }
        }
    }

    fn fire_first(&mut self, kind: &str, stats: &CustomerStats) {
        let from = self.case.state.clone();
        let transitions: Vec<_> = self
            .pack
            .workflow
            .transitions_from(from.as_str(), kind)
            .cloned()
            .collect();
        for t in transitions {
            if t.guard.is_some() {
                match self.rules.guard(t.index, &self.input(stats)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let rule = self.pack.error_ref(self.rules, &e);
                        self.record_error(
                            "guard",
                            e.to_string(),
                            &format!("transition {} -> {} not taken", from, t.to),
                            rule,
                        );
                        continue;
                    }
                }
            }
            let rule = self.pack.transition_ref(&t);
            self.enter(t.to.clone(), kind, rule, &t.actions);
            return;
        }
    }

    /// A state timeout fires only if the case is still in that state and
    /// has been there long enough (a stale timer does nothing).
    fn run_timer(&mut self, timer: &str) {
        if let Some(state) = timer.strip_prefix("timeout:") {
            if self.case.state.as_str() != state {
                return;
            }
            let Some(def) = self.pack.workflow.timeout(state).cloned() else {
                return;
            };
            let Some(due) = self.pack.timeout_due(&self.case) else {
                return;
            };
            if self.now < due {
                return;
            }
            self.record(
                DecisionKind::Timer {
                    timer: timer.to_owned(),
                    due,
                    fired: true,
                },
                None,
            );
            let rule = self.pack.state_ref(state);
            self.enter(def.to.clone(), "timer.fired", rule, &def.actions);
        } else if let Some(rest) = timer.strip_prefix("sla:") {
            let Some(plan) = self.pack.sla.clone() else {
                return;
            };
            let (clock, what) = rest.split_once(':').unwrap_or((rest, ""));
            let now = self.now;
            let Some(c) = self.case.sla.iter_mut().find(|c| {
                c.kind.as_str() == clock && is_counting(c.status) && c.running_since.is_some()
            }) else {
                return;
            };
            let (status, raised) = match what {
                "warn"
                    if c.status == SlaStatus::Running
                        && plan.warn_at(c).is_some_and(|w| now >= w) =>
                {
                    c.status = SlaStatus::Warned;
                    ("warning", "sla.warning")
                }
                "breach" if plan.due_at(c).is_some_and(|d| now >= d) => {
                    let since = c.running_since.take().expect("running");
                    c.used_secs += plan
                        .calendar
                        .business_time_between(since, now)
                        .num_seconds();
                    c.status = SlaStatus::Breached;
                    c.due_at = None;
                    ("breached", "sla.breached")
                }
                _ => return,
            };
            let due = c.due_at;
            self.record(
                DecisionKind::Sla {
                    clock: clock.to_owned(),
                    status: status.to_owned(),
                    due,
                },
                None,
            );
            self.raise(raised);
        }
        // `promise:` timers need nothing here: every event re-checks the
        // open promises, and a timer event is an event.
    }

    fn enter(&mut self, to: StateId, on: &str, rule: Option<RuleRef>, actions: &[ActionDef]) {
        let from = std::mem::replace(&mut self.case.state, to.clone());
        self.case.state_since = self.now;
        self.record(
            DecisionKind::Transition {
                from: from.0.clone(),
                to: to.0.clone(),
                on: on.to_owned(),
            },
            rule.clone(),
        );
        let by = rule.as_ref().map_or_else(
            || "workflow".to_owned(),
            |r| format!("{}#{}", r.file, r.name),
        );
        if let Some(plan) = self.pack.sla.clone() {
            let was_paused = self
                .pack
                .workflow
                .state(from.as_str())
                .is_some_and(|s| s.pauses_sla);
            let paused = self.paused_here();
            let changes = match (was_paused, paused) {
                (false, true) => Some(("paused", plan.pause(&mut self.case, self.now))),
                (true, false) => Some(("resumed", plan.resume(&mut self.case, self.now))),
                _ => None,
            };
            if let Some((status, kinds)) = changes {
                for kind in kinds {
                    self.record_sla(kind, status);
                }
            }
        }
        if self.pack.workflow.is_terminal(to.as_str()) {
            for kind in [SlaKind::FirstReply, SlaKind::NextReply, SlaKind::Resolution] {
                self.meet_sla(kind);
            }
        }
        for a in actions {
            self.request(a, &by, rule.clone());
        }
        let on_enter = self
            .pack
            .workflow
            .state(to.as_str())
            .map(|s| s.on_enter.clone())
            .unwrap_or_default();
        for a in &on_enter {
            self.request(a, &by, rule.clone());
        }
    }

    /// Request an action: engine built-ins act on the case at once, the
    /// rest go to the outbox.
    fn request(&mut self, def: &ActionDef, by: &str, rule: Option<RuleRef>) {
        // Task ids count the case's tasks only: T-1, T-2, ... in order, so
        // an id is never given twice on one case.
        let n = self.case.tasks.len();
        let id = format!("{}/{}", self.event.id, self.decisions.len());
        let mut params = def.params.clone();
        match def.action.as_str() {
            "task.create" => {
                let kind = str_param(&params, "kind").unwrap_or("follow_up").to_owned();
                // One open task of a kind is enough: a second request (an
                // urgent word after a broken promise, say) adds nothing.
                if self
                    .case
                    .tasks
                    .iter()
                    .any(|t| t.kind == kind && t.done_at.is_none())
                {
                    return;
                }
                let within = str_param(&params, "due_in")
                    .and_then(|w| crate::calendar::parse_duration(w).ok());
                let task = Task {
                    id: format!("T-{}", n + 1),
                    kind: kind.clone(),
                    assignee: str_param(&params, "assignee")
                        .map(str::to_owned)
                        .or(self.case.assignment.agent.clone())
                        .or(self.case.assignment.team.clone()),
                    due_at: within.map(|w| self.now + w),
                    reason: str_param(&params, "reason").unwrap_or(by).to_owned(),
                    done_at: None,
                };
                self.record(
                    DecisionKind::Task {
                        task: task.id.clone(),
                        task_kind: kind,
                        due: task.due_at,
                        reason: task.reason.clone(),
                    },
                    rule,
                );
                self.case.tasks.push(task);
            }
            "case.tag" => {
                if let Some(tag) = str_param(&params, "tag")
                    && self.case.tags.insert(tag.to_owned())
                {
                    self.record(
                        DecisionKind::Record {
                            field: "tag".into(),
                            value: tag.to_owned(),
                        },
                        rule,
                    );
                }
            }
            _ => {
                params
                    .entry("case")
                    .or_insert_with(|| json!(self.case.id.0));
                if def.action == "team.notify"
                    && !params.contains_key("team")
                    && let Some(team) = &self.case.assignment.team
                {
                    params.insert("team".into(), json!(team));
                }
                // Mail to the customer unless the action names someone else.
                if self.pack.plugin_kind(&def.action) == Some("email")
                    && !params.contains_key("to")
                    && let Some(email) = &self.case.customer.email
                {
                    params.insert("to".into(), json!(email));
                }
                // An action its plugin could not carry out fails here, at
                // its cause, not later in the outbox.
                if let Some(schema) = self.pack.action_params(&def.action) {
                    let problems = schema.problems(&params);
                    if !problems.is_empty() {
                        let message = format!(
                            "action {} asked by {by} has bad parameters: {}",
                            def.action,
                            problems.join("; ")
                        );
                        self.record_error(
                            "action::bad-params",
                            message.clone(),
                            "not requested; a person takes it over (task action_failed)",
                            rule.clone(),
                        );
                        let task = ActionDef {
                            action: "task.create".into(),
                            params: serde_json::Map::from_iter([
                                ("kind".to_owned(), json!("action_failed")),
                                ("due_in".to_owned(), json!("1h")),
                                ("reason".to_owned(), json!(message)),
                            ]),
                        };
                        self.request(&task, by, rule);
                        return;
                    }
                }
                let params = Value::Object(params);
                self.record(
                    DecisionKind::Action {
                        action: def.action.clone(),
                        id: id.clone(),
                        params: params.clone(),
                    },
                    rule,
                );
                self.actions.push(Action {
                    id,
                    case: self.case.id.clone(),
                    action: def.action.clone(),
                    params,
                    requested_at: self.now,
                    event: self.event.id.clone(),
                    requested_by: by.to_owned(),
                });
            }
        }
    }
}

fn str_param<'m>(params: &'m Map<String, Value>, key: &str) -> Option<&'m str> {
    params.get(key).and_then(Value::as_str)
}

fn first_words(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn summary(event: &Event) -> Option<String> {
    event.text("text").map(|t| first_words(t, 80))
}

/// How a promise reads in one line: "deliver_on 2027-01-06 (window 2027-01-05..2027-01-08)".
pub fn promise_text(p: &Promise) -> String {
    let mut s = p.kind.as_str().to_owned();
    if let Some(d) = p.date {
        s.push_str(&format!(" {d}"));
    }
    if let Some(by) = p.by {
        s.push_str(&format!(" {}", by.to_rfc3339()));
    }
    if let Some(w) = p.window {
        s.push_str(&format!(" (window {}..{})", w.from, w.to));
    }
    if let Some(o) = &p.order {
        s.push_str(&format!(" for order {o}"));
    }
    s
}

/// The facts a promise check saw, kept with the decision for `explain`.
fn promise_inputs(p: &Promise, case: &Case) -> Value {
    let mut inputs = BTreeMap::new();
    if let Some(order) = p.order.as_ref().and_then(|o| case.order(o.as_str())) {
        inputs.insert("order", serde_json::to_value(order).unwrap_or(Value::Null));
    }
    if let Some(due) = p.due_at() {
        inputs.insert("due", json!(due.to_rfc3339()));
    }
    json!(inputs)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::case::{CaseId, SlaStatus};
    use crate::config::{MemoryReader, check_with};

    /// A two-state pack whose transitions request a plugin action and a
    /// task on every customer message.
    const PACK: &str = r#"
name: tasks
timezone: Asia/Tokyo
workflow:
  states:
    open: { initial: true }
    done: { terminal: true }
  transitions:
    - from: open
      on: customer.message
      to: open
      actions:
        - action: team.notify
          params: { template: news }
        - action: task.create
          params: { kind: call_customer, due_in: 1h, reason: called }
    - from: open
      on: agent.close
      to: done
directory:
  fallback: support
  teams:
    support: { email: support@example.com }
plugins:
  team: { kind: notify }
"#;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Run `events` (kind, extra fields) on one case, a minute apart.
    fn run(events: &[(&str, Value)]) -> Case {
        let (pack, rules) = pack_with_sla();
        let id = CaseId::from("C-1");
        let mut case = None;
        let mut now = at("2026-12-07T10:00:00+09:00");
        for (n, (kind, fields)) in events.iter().enumerate() {
            let mut event = Event::new(format!("e{n}"), now, kind, Some(id.clone()));
            for (k, v) in fields.as_object().unwrap() {
                event = event.with(k, v);
            }
            let s = step(
                &pack,
                &rules,
                case.take(),
                &id,
                &event,
                now,
                &CustomerStats::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            case = Some(s.case);
            now += chrono::Duration::minutes(1);
        }
        case.unwrap()
    }

    fn pack_with_sla() -> (Pack, RuleSet) {
        let text = PACK.replace(
            "workflow:\n",
            "calendars:\n  office: { timezone: Asia/Tokyo, hours: { mon: \"09:00-18:00\" } }\nworkflow:\n  sla: { calendar: office, first_reply: 4h }\n",
        );
        compile(&[("p/casework.yaml", Box::leak(text.into_boxed_str()))])
    }

    /// Check and compile a pack from in-memory files, the first being
    /// `casework.yaml`.
    fn compile(files: &[(&'static str, &'static str)]) -> (Pack, RuleSet) {
        let reader = MemoryReader::new(files.iter().copied());
        let loaded = check_with(&reader, Path::new(files[0].0))
            .into_result()
            .unwrap_or_else(|d| panic!("{d}"));
        Pack::compile(loaded).unwrap_or_else(|d| panic!("{d}"))
    }

    /// A rule asking for a hold "until soon": no such action reaches the
    /// outbox, the rule is named in an error, and a person gets a task.
    #[test]
    fn a_rule_action_with_bad_parameters_becomes_an_error_and_a_task() {
        const CONFIG: &str = r#"
name: bad-action
timezone: Asia/Tokyo
workflow:
  states:
    open: { initial: true }
    done: { terminal: true }
  transitions:
    - { from: open, on: agent.close, to: done }
plugins:
  warehouse: { kind: warehouse }
rules:
  files: [promise.rhai]
"#;
        const RULE: &str = r#"
fn check_promise(p, c, now) {
    #{ status: "at_risk", reason: "the warehouse ships early",
       actions: [#{ action: "warehouse.hold", params: #{ order: "O-1", "until": "soon" } }] }
}
"#;
        let (pack, rules) = compile(&[("p/casework.yaml", CONFIG), ("p/promise.rhai", RULE)]);
        let id = CaseId::from("C-1");
        let now = at("2026-12-07T10:00:00+09:00");
        let promise = Event::new("e1", now, "agent.promise", Some(id.clone()))
            .with("agent", "emi")
            .with(
                "promise",
                json!({"id": "P-1", "kind": "deliver_on", "date": "2027-01-06", "order": "O-1"}),
            );
        let s = step(
            &pack,
            &rules,
            None,
            &id,
            &promise,
            now,
            &CustomerStats::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.actions.is_empty(), "{:?}", s.actions);
        let error = s
            .decisions
            .iter()
            .find(|d| d.kind_name() == "error")
            .expect("an error decision");
        let DecisionKind::Error {
            error: code,
            message,
            ..
        } = &error.what
        else {
            unreachable!()
        };
        assert_eq!(code, "action::bad-params");
        assert!(
            message.contains("`until` must be a date like 2027-01-05, not \"soon\""),
            "{message}"
        );
        assert_eq!(error.rule.as_ref().unwrap().name, "check_promise");
        let task = s.case.tasks.last().expect("a task for a person");
        assert_eq!(task.kind, "action_failed");
        assert!(task.reason.contains("warehouse.hold"), "{}", task.reason);
    }

    #[test]
    fn a_call_taken_by_an_agent_is_its_own_first_reply() {
        let taken = run(&[(
            "customer.call",
            json!({"text": "about my table", "agent": "emi"}),
        )]);
        let clock = taken.sla.iter().find(|c| c.kind == SlaKind::FirstReply);
        assert_eq!(clock.map(|c| c.status), Some(SlaStatus::Met), "{clock:?}");
        // A message (or a call nobody took, e.g. voicemail) waits for one.
        let waiting = run(&[("customer.call", json!({"text": "about my table"}))]);
        let clock = waiting.sla.iter().find(|c| c.kind == SlaKind::FirstReply);
        assert_eq!(
            clock.map(|c| c.status),
            Some(SlaStatus::Running),
            "{clock:?}"
        );
    }

    #[test]
    fn a_promise_keeps_the_agents_words_on_the_record() {
        let record = json!({"agent": "emi", "commitment": "we call back by the 14th"});
        let callback = |id: &str, text: Option<&str>| {
            let mut p = json!({"id": id, "kind": "callback_by", "by": "2026-12-14T18:00:00+09:00"});
            if let Some(t) = text {
                p["text"] = json!(t);
            }
            json!({"agent": "emi", "promise": p})
        };
        // The agent's recorded words survive a promise without text.
        let case = run(&[
            ("customer.message", json!({"text": "hello"})),
            ("agent.record", record.clone()),
            ("agent.promise", callback("P-1", None)),
        ]);
        assert_eq!(
            case.record.commitment.as_deref(),
            Some("we call back by the 14th")
        );
        // The promise's own words replace them.
        let case = run(&[
            ("customer.message", json!({"text": "hello"})),
            ("agent.record", record),
            (
                "agent.promise",
                callback("P-1", Some("we call you on Monday")),
            ),
        ]);
        assert_eq!(
            case.record.commitment.as_deref(),
            Some("we call you on Monday")
        );
        // With no words at all, the summary fills the record.
        let case = run(&[
            ("customer.message", json!({"text": "hello"})),
            ("agent.promise", callback("P-1", None)),
        ]);
        assert_eq!(
            case.record.commitment.as_deref(),
            Some("callback_by 2026-12-14T18:00:00+09:00")
        );
    }

    fn pack() -> (Pack, RuleSet) {
        compile(&[("p/casework.yaml", PACK)])
    }

    #[test]
    fn task_ids_count_tasks_and_never_repeat() {
        let (pack, rules) = pack();
        let id = CaseId::from("C-1");
        let at: Timestamp = "2026-12-07T10:00:00+09:00".parse().unwrap();
        let mut case = None;
        let mut feed = |event: Event| {
            let s = step(
                &pack,
                &rules,
                case.take(),
                &id,
                &event,
                at,
                &CustomerStats::default(),
            )
            .unwrap();
            case = Some(s.case);
            s.actions
        };
        for n in 1..=3 {
            let message = Event::new(format!("m{n}"), at, "customer.message", Some(id.clone()))
                .with("text", "hello");
            // Each message also requested a plugin action; it must not
            // shift the task numbers.
            let actions = feed(message);
            assert!(actions.iter().any(|a| a.action == "team.notify"));
            // Asked again while the call is still open: no second task.
            let again = Event::new(
                format!("again{n}"),
                at,
                "customer.message",
                Some(id.clone()),
            )
            .with("text", "hello?");
            feed(again);
            let call = Event::new(format!("c{n}"), at, "agent.call", Some(id.clone()))
                .with("agent", "ken");
            feed(call);
        }
        let ids: Vec<&str> = case
            .as_ref()
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["T-1", "T-2", "T-3"]);
    }
}
