//! What each console page shows, gathered from the engine and its store
//! into plain data for the templates. No HTML here: the templates write
//! it, escaped.

use std::collections::BTreeMap;
use std::time::Duration;

use casework_core::Timestamp;
use casework_core::audit::{Decision, DecisionKind};
use casework_core::case::{Case, CaseId, SlaStatus};
use casework_core::engine::Engine;
use casework_core::engine::explain::describe;
use casework_core::event::{Event, EventId, EventKind};
use casework_core::promise::PromiseStatus;
use casework_core::store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

use super::metrics::Snapshot;

/// The queue shows at most this many open cases (the most recently
/// updated, before sorting by what is most pressing).
pub const QUEUE_LIMIT: usize = 1000;

fn store_err(e: StoreError) -> String {
    format!("the store could not be read: {e}")
}

fn open_states(engine: &Engine) -> Vec<String> {
    engine
        .pack()
        .workflow
        .states()
        .filter(|(_, s)| !s.terminal)
        .map(|(n, _)| n.0.clone())
        .collect()
}

fn open_cases(engine: &Engine) -> Result<Vec<Case>, String> {
    let states = open_states(engine);
    let states: Vec<&str> = states.iter().map(String::as_str).collect();
    engine
        .store()
        .cases_in_states(&states, QUEUE_LIMIT)
        .map_err(store_err)
}

/// A duration for people: `2h 05m`, `3d 4h`, `12m`; negative as `-…`.
fn human(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m")
    };
    format!("{sign}{text}")
}

/// A moment in the shop's time zone, to the minute.
fn short_time(tz: chrono_tz::Tz, t: &Timestamp) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// One line of the queue.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    customer: String,
    state: String,
    team: String,
    agent: String,
    urgency: String,
    channel: String,
    /// `broken`, `at_risk` or empty.
    promise: String,
    promise_ids: Vec<String>,
    /// The SLA clock nearest to breaching: kind, status, business time
    /// left.
    sla: Option<SlaView>,
    last_contact: String,
    #[serde(skip)]
    rank: (u8, u8, i64, u8, Timestamp),
    #[serde(skip)]
    search: String,
}

#[derive(Debug, Serialize)]
struct SlaView {
    kind: String,
    status: String,
    left: String,
    due: String,
}

fn urgency_rank(level: &str) -> u8 {
    match level {
        "urgent" => 0,
        "high" => 1,
        "normal" => 2,
        _ => 3,
    }
}

fn row(engine: &Engine, case: &Case, now: Timestamp) -> Row {
    let tz = engine.pack().timezone;
    let calendar = engine.pack().calendar_for(case);
    let worst = case
        .promises
        .iter()
        .map(|p| p.status)
        .filter(|s| matches!(s, PromiseStatus::Broken | PromiseStatus::AtRisk))
        .min_by_key(|s| u8::from(*s != PromiseStatus::Broken));
    let promise_ids = case
        .promises
        .iter()
        .filter(|p| matches!(p.status, PromiseStatus::Broken | PromiseStatus::AtRisk))
        .map(|p| p.id.0.clone())
        .collect();
    // The clock closest to breaching (breached ones first).
    let sla = case
        .sla
        .iter()
        .filter(|c| !matches!(c.status, SlaStatus::Met))
        .map(|c| {
            let left = match (c.status, c.due_at) {
                (SlaStatus::Breached, Some(due)) => {
                    -calendar.business_time_between(due, now).num_seconds()
                }
                (SlaStatus::Breached, None) => -1,
                (_, Some(due)) => calendar.business_time_between(now, due).num_seconds(),
                (_, None) => c.target_secs - c.used_secs,
            };
            (c, left)
        })
        .min_by_key(|(c, left)| (u8::from(c.status != SlaStatus::Breached), *left));
    let sla_rank = match sla.map(|(c, _)| c.status) {
        Some(SlaStatus::Breached) => 0,
        Some(SlaStatus::Warned) => 1,
        Some(SlaStatus::Running) => 2,
        Some(_) => 3,
        None => 4,
    };
    let sla_left = sla.map_or(i64::MAX, |(_, l)| l);
    let last = case
        .messages
        .iter()
        .rev()
        .find(|m| m.author == casework_core::case::Author::Customer);
    let name = case
        .customer
        .name
        .clone()
        .or_else(|| case.customer.email.clone())
        .or_else(|| case.customer.phone.clone())
        .unwrap_or_default();
    let level = case.urgency.level.as_str().to_owned();
    let mut search = vec![
        case.id.0.clone(),
        name.clone(),
        case.customer.email.clone().unwrap_or_default(),
        case.customer.phone.clone().unwrap_or_default(),
    ];
    for o in &case.orders {
        search.push(o.id.0.clone());
        search.extend(o.tracking.clone());
    }
    Row {
        id: case.id.0.clone(),
        customer: name,
        state: case.state.0.clone(),
        team: case.assignment.team.clone().unwrap_or_default(),
        agent: case.assignment.agent.clone().unwrap_or_default(),
        urgency: level.clone(),
        channel: last
            .map(|m| m.channel.as_str().to_owned())
            .unwrap_or_default(),
        promise: worst.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        promise_ids,
        sla: sla.map(|(c, left)| SlaView {
            kind: c.kind.as_str().to_owned(),
            status: format!("{:?}", c.status).to_lowercase(),
            left: human(left),
            due: c
                .due_at
                .as_ref()
                .map(|t| short_time(tz, t))
                .unwrap_or_default(),
        }),
        last_contact: last.map_or_else(
            || short_time(tz, &case.updated_at),
            |m| short_time(tz, &m.at),
        ),
        rank: (
            match worst {
                Some(PromiseStatus::Broken) => 0,
                Some(_) => 1,
                None => 2,
            },
            sla_rank,
            sla_left,
            urgency_rank(&level),
            case.opened_at,
        ),
        search: search.join("\n").to_lowercase(),
    }
}

/// The queue: open cases, most pressing first (a broken promise, then one
/// at risk; then the SLA clock nearest to breaching; then urgency; then
/// the oldest), with counts per team and state and the filters applied.
pub fn queue(engine: &Engine, query: &[(String, String)]) -> Result<Value, String> {
    let tz = engine.pack().timezone;
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (team, state, urgency, channel, q) = (
        get("team"),
        get("state"),
        get("urgency"),
        get("channel"),
        get("q"),
    );
    let now = engine.now();
    let mut rows: Vec<Row> = open_cases(engine)?
        .iter()
        .map(|c| row(engine, c, now))
        .collect();
    let mut by_team: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        let t = if r.team.is_empty() { "(none)" } else { &r.team };
        *by_team.entry(t.to_owned()).or_default() += 1;
        *by_state.entry(r.state.clone()).or_default() += 1;
    }
    let total = rows.len();
    let needle = q.to_lowercase();
    rows.retain(|r| {
        (team.is_empty() || r.team == team)
            && (state.is_empty() || r.state == state)
            && (urgency.is_empty() || r.urgency == urgency)
            && (channel.is_empty() || r.channel == channel)
            && (needle.is_empty() || r.search.contains(&needle))
    });
    rows.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.id.cmp(&b.id)));
    let teams: Vec<&str> = engine.pack().team_names();
    let channels = [
        "email",
        "phone",
        "web_form",
        "chat",
        "sms",
        "letter",
        "in_person",
    ];
    Ok(json!({
        "page": "queue",
        "rows": rows,
        "total": total,
        "shown": rows.len(),
        "by_team": by_team,
        "by_state": by_state,
        "filter": { "team": team, "state": state, "urgency": urgency, "channel": channel, "q": q },
        "teams": teams,
        "states": open_states(engine),
        "urgencies": ["urgent", "high", "normal", "low"],
        "channels": channels,
        "now": short_time(tz, &now),
        "tz": tz.name(),
        "limit": QUEUE_LIMIT,
    }))
}

/// A rule reference as `file:line`, with its name and hash.
fn rule_view(d: &Decision) -> Value {
    match &d.rule {
        Some(r) => json!({
            "file": r.file,
            "at": match r.line { Some(l) => format!("{}:{l}", r.file), None => r.file.clone() },
            "name": r.name,
            "hash": r.hash,
        }),
        None => Value::Null,
    }
}

fn decision_view(tz: chrono_tz::Tz, d: &Decision) -> Value {
    json!({
        "at": short_time(tz, &d.at),
        "kind": d.kind_name(),
        "text": describe_plain(d),
        "rule": rule_view(d),
        "ruleset": d.ruleset,
        "event": d.event.as_ref().map(|e| e.0.clone()),
        "inputs": d.inputs.as_ref().map(|i| serde_json::to_string_pretty(i).unwrap_or_default()),
    })
}

/// `describe` without its trailing `[rule]`, which the page shows apart.
fn describe_plain(d: &Decision) -> String {
    let mut plain = d.clone();
    plain.rule = None;
    describe(&plain)
}

/// Scalar fields of an event worth a glance (order, ship date, ETA...).
fn event_facts(e: &Event) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    if let Some(o) = &e.order {
        facts.push(("order".to_owned(), o.0.clone()));
    }
    if let Some(t) = &e.tracking {
        facts.push(("tracking".to_owned(), t.clone()));
    }
    for (k, v) in &e.data {
        if matches!(
            k.as_str(),
            "text" | "body" | "subject" | "channel" | "from" | "customer"
        ) {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => other.to_string(),
        };
        facts.push((k.clone(), text));
    }
    facts
}

/// The unified view of one case, or None when the store has no such case.
pub fn case(engine: &Engine, id: &str) -> Result<Option<Value>, String> {
    let tz = engine.pack().timezone;
    let id = CaseId(id.to_owned());
    let store = engine.store();
    let Some(case) = store.load(&id).map_err(store_err)? else {
        return Ok(None);
    };
    let now = engine.now();
    let events = store.events(&id).map_err(store_err)?;
    let decisions = store.decisions(&id).map_err(store_err)?;
    let outbox = store.case_actions(&id).map_err(store_err)?;

    let timeline: Vec<Value> = events
        .iter()
        .map(|a| {
            let e = &a.event;
            let text = ["text", "body"]
                .iter()
                .find_map(|k| e.data.get(*k).and_then(Value::as_str))
                .unwrap_or_default();
            let channel = e
                .data
                .get("channel")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| match e.kind.namespace() {
                    "email" => "email".to_owned(),
                    ns => ns.to_owned(),
                });
            json!({
                "id": e.id.0,
                "at": short_time(tz, &e.at),
                "kind": e.kind.0,
                "source": e.kind.namespace(),
                "channel": channel,
                "from": e.data.get("from").and_then(Value::as_str),
                "subject": e.data.get("subject").and_then(Value::as_str),
                "text": text,
                "facts": event_facts(e),
            })
        })
        .collect();

    // Every promise's status history, from the decisions (settled promises
    // leave the case row); details from the row while it is open.
    let mut promises: BTreeMap<String, Value> = BTreeMap::new();
    for d in &decisions {
        if let DecisionKind::Promise {
            promise,
            status,
            reason,
            previous,
        } = &d.what
        {
            let entry = promises.entry(promise.clone()).or_insert_with(
                || json!({ "id": promise, "history": [], "status": "", "details": Value::Null }),
            );
            entry["status"] = json!(status.as_str());
            if let Some(h) = entry["history"].as_array_mut() {
                h.push(json!({
                    "at": short_time(tz, &d.at),
                    "status": status.as_str(),
                    "previous": previous.map(|p| p.as_str()),
                    "reason": reason,
                    "rule": rule_view(d),
                }));
            }
        }
    }
    for p in &case.promises {
        let entry = promises
            .entry(p.id.0.clone())
            .or_insert_with(|| json!({ "id": p.id.0, "history": [], "status": p.status.as_str() }));
        entry["status"] = json!(p.status.as_str());
        entry["details"] = json!({
            "kind": p.kind.as_str(),
            "text": casework_core::engine::promise_text(p),
            "made_by": p.made_by,
            "made_at": short_time(tz, &p.made_at),
            "order": p.order.as_ref().map(|o| o.0.clone()),
            "reason": p.reason,
        });
    }

    let outbox: Vec<Value> = outbox
        .iter()
        .map(|e| {
            json!({
                "id": e.action.id,
                "action": e.action.action,
                "status": e.status.as_str(),
                "attempts": e.attempts,
                "next": short_time(tz, &e.next_attempt_at),
                "last_error": e.last_error,
                "requested_by": e.action.requested_by,
                "params": e.action.params.to_string(),
            })
        })
        .collect();

    let calendar = engine.pack().calendar_for(&case);
    let sla: Vec<Value> = case
        .sla
        .iter()
        .map(|c| {
            let left = c.due_at.map(|due| {
                if due > now {
                    human(calendar.business_time_between(now, due).num_seconds())
                } else {
                    human(-calendar.business_time_between(due, now).num_seconds())
                }
            });
            json!({
                "kind": c.kind.as_str(),
                "status": format!("{:?}", c.status).to_lowercase(),
                "due": c.due_at.as_ref().map(|t| short_time(tz, t)),
                "left": left,
            })
        })
        .collect();
    let tasks: Vec<Value> = case
        .tasks
        .iter()
        .filter(|t| t.done_at.is_none())
        .map(|t| {
            json!({ "id": t.id, "kind": t.kind, "assignee": t.assignee,
                    "due": t.due_at.as_ref().map(|t| short_time(tz, t)), "reason": t.reason })
        })
        .collect();
    let r = &case.record;
    let record = json!({
        "contact": r.contact,
        "contacted_at": r.contacted_at.as_ref().map(|t| short_time(tz, t)),
        "channel": r.channel.map(|c| c.as_str()),
        "taken_by": r.taken_by,
        "complaint": r.complaint,
        "proposed_resolution": r.proposed_resolution,
        "landed": r.landed,
        "commitment": r.commitment,
        "handled_by": r.handled_by,
        "notes": r.notes.iter().map(|n| json!({"at": short_time(tz, &n.at), "agent": n.agent, "text": n.text})).collect::<Vec<_>>(),
    });
    let others: Vec<Value> = engine
        .customer_cases(&case.id, &case.customer)
        .map_err(|e| format!("the store could not be read: {e}"))?
        .into_iter()
        .map(|other| {
            let state = store
                .load(&other)
                .ok()
                .flatten()
                .map(|c| c.state.0)
                .unwrap_or_default();
            json!({ "id": other.0, "state": state })
        })
        .collect();
    let c = &case.customer;
    Ok(Some(json!({
        "page": "case",
        "id": case.id.0,
        "state": case.state.0,
        "state_since": short_time(tz, &case.state_since),
        "opened": short_time(tz, &case.opened_at),
        "customer": {
            "name": c.name, "email": c.email, "phone": c.phone,
            "preferred": c.preferred_channel.map(|ch| ch.as_str()),
        },
        "team": case.assignment.team,
        "agent": case.assignment.agent,
        "hops": case.assignment.hops,
        "urgency": case.urgency.level.as_str(),
        "urgency_reasons": case.urgency.reasons,
        "tags": case.tags,
        "orders": case.orders.iter().map(|o| json!({
            "id": o.id.0, "tracking": o.tracking,
            "planned_ship": o.planned_ship.map(|d| d.to_string()),
            "shipped_on": o.shipped_on.map(|d| d.to_string()),
            "carrier_eta": o.carrier_eta.map(|d| d.to_string()),
            "held_until": o.held_until.map(|d| d.to_string()),
            "problem": o.problem,
        })).collect::<Vec<_>>(),
        "timeline": timeline,
        "record": record,
        "promises": promises.into_values().collect::<Vec<_>>(),
        "tasks": tasks,
        "sla": sla,
        "outbox": outbox,
        "decisions": decisions.iter().map(|d| decision_view(tz, d)).collect::<Vec<_>>(),
        "others": others,
    })))
}

/// Every open promise at risk or broken, with why and what was asked of
/// the warehouse or carrier about it.
pub fn promises(engine: &Engine) -> Result<Value, String> {
    let mut rows = Vec::new();
    for case in open_cases(engine)? {
        let risky: Vec<_> = case
            .promises
            .iter()
            .filter(|p| matches!(p.status, PromiseStatus::AtRisk | PromiseStatus::Broken))
            .collect();
        if risky.is_empty() {
            continue;
        }
        let actions = engine.store().case_actions(&case.id).map_err(store_err)?;
        for p in risky {
            let order = p.order.as_ref().map(|o| o.0.as_str());
            let requested: Vec<Value> = actions
                .iter()
                .filter(|e| matches!(e.action.plugin(), "warehouse" | "carrier"))
                .filter(|e| {
                    let params = e.action.params.to_string();
                    params.contains(&format!("\"{}\"", p.id.0))
                        || order.is_some_and(|o| params.contains(&format!("\"{o}\"")))
                })
                .map(|e| {
                    json!({ "action": e.action.action, "status": e.status.as_str(),
                            "attempts": e.attempts, "last_error": e.last_error })
                })
                .collect();
            rows.push(json!({
                "case": case.id.0,
                "customer": case.customer.name.clone().or_else(|| case.customer.email.clone()),
                "promise": p.id.0,
                "kind": p.kind.as_str(),
                "text": casework_core::engine::promise_text(p),
                "status": p.status.as_str(),
                "reason": p.reason,
                "team": case.assignment.team,
                "requested": requested,
            }));
        }
    }
    rows.sort_by_key(|r| {
        (
            r["status"] != "broken",
            r["case"].as_str().map(str::to_owned),
        )
    });
    Ok(json!({ "page": "promises", "rows": rows }))
}

/// The workflow in force, drawn, with cases per state and the rule files.
pub fn workflow(engine: &Engine) -> Result<Value, String> {
    let counts = engine.store().state_counts().map_err(store_err)?;
    let wf = &engine.pack().workflow;
    let drawing = super::graph::layout(wf, &counts);
    let rules = engine.rules().current();
    let states: Vec<Value> = wf
        .states()
        .map(|(name, s)| {
            json!({
                "name": name.0,
                "count": counts.get(&name.0).copied().unwrap_or(0),
                "description": s.description,
                "terminal": s.terminal,
                "waiting": s.waiting,
            })
        })
        .collect();
    let files: Vec<Value> = rules
        .file_hashes()
        .map(|(file, hash)| json!({ "file": file, "hash": hash }))
        .collect();
    Ok(json!({
        "page": "workflow",
        "d": drawing,
        "states": states,
        "pack": engine.pack().name,
        "version": rules.hash(),
        "files": files,
        "transitions": wf.transitions().len(),
    }))
}

/// The "try a message" form, and when `form` is given, the dry run of the
/// message it holds.
pub fn try_form(engine: &Engine, form: Option<&[(String, String)]>) -> Result<Value, String> {
    let tz = engine.pack().timezone;
    let get = |k: &str| {
        form.and_then(|f| f.iter().find(|(n, _)| n == k))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let kinds = ["customer.message", "customer.call", "email.received"];
    let channels = [
        "web_form",
        "email",
        "phone",
        "chat",
        "sms",
        "letter",
        "in_person",
    ];
    let mut view = json!({
        "page": "try",
        "kinds": kinds,
        "channels": channels,
        "form": {
            "text": get("text"), "case": get("case"), "channel": get("channel"),
            "name": get("name"), "email": get("email"),
            "kind": if get("kind").is_empty() { "customer.message".to_owned() } else { get("kind") },
        },
        "result": Value::Null,
        "version": engine.rules().current().hash(),
    });
    let Some(_) = form else {
        return Ok(view);
    };
    let text = get("text");
    if text.is_empty() {
        view["error"] = json!("write the message to try");
        return Ok(view);
    }
    let kind = view["form"]["kind"]
        .as_str()
        .unwrap_or("customer.message")
        .to_owned();
    if !kinds.contains(&kind.as_str()) {
        view["error"] = json!(format!(
            "`{kind}` is not a message kind; pick one of the list"
        ));
        return Ok(view);
    }
    let now = engine.now();
    let case = Some(get("case")).filter(|c| !c.is_empty()).map(CaseId);
    let mut event = Event {
        // Never stored; a name no sender uses, so it cannot collide.
        id: EventId(format!("console-try-{}", now.timestamp_micros())),
        at: now,
        kind: EventKind(kind),
        case: case.clone(),
        order: None,
        tracking: None,
        in_reply_to: Vec::new(),
        data: serde_json::Map::new(),
    };
    event.data.insert("text".into(), json!(text));
    let channel = get("channel");
    if !channel.is_empty() {
        event.data.insert("channel".into(), json!(channel));
    }
    let mut customer = serde_json::Map::new();
    for k in ["name", "email"] {
        let v = get(k);
        if !v.is_empty() {
            customer.insert(k.into(), json!(v));
        }
    }
    if !customer.is_empty() {
        event
            .data
            .insert("customer".into(), Value::Object(customer));
    }
    match engine.dry_run(&event) {
        Ok(step) => {
            let c = &step.case;
            view["result"] = json!({
                "case": c.id.0,
                "existing": case.is_some(),
                "state": c.state.0,
                "team": c.assignment.team,
                "agent": c.assignment.agent,
                "urgency": c.urgency.level.as_str(),
                "score": c.urgency.score,
                "reasons": c.urgency.reasons,
                "decisions": step.decisions.iter().map(|d| decision_view(tz, d)).collect::<Vec<_>>(),
                "actions": step.actions.iter().map(|a| json!({"action": a.action, "params": a.params.to_string(), "by": a.requested_by})).collect::<Vec<_>>(),
            });
        }
        Err(e) => view["error"] = json!(e.to_string()),
    }
    Ok(view)
}

/// The store's gauges for `/metrics`.
pub fn snapshot(engine: &Engine, live_clients: usize) -> Snapshot {
    let store = engine.store();
    let now = engine.now();
    let outbox_pending = store.outbox_counts().map(|c| c.pending).unwrap_or(0);
    let oldest_pending = store
        .oldest_pending_action()
        .ok()
        .flatten()
        .map(|a| (now - a.requested_at).to_std().unwrap_or(Duration::ZERO));
    // The case row holds the open promises; settled ones left it.
    let mut open_promises: BTreeMap<String, usize> = BTreeMap::new();
    for case in open_cases(engine).unwrap_or_default() {
        for p in case.promises.iter().filter(|p| p.status.is_open()) {
            *open_promises
                .entry(p.status.as_str().to_owned())
                .or_default() += 1;
        }
    }
    Snapshot {
        open_promises: open_promises.into_iter().collect(),
        outbox_pending,
        oldest_pending,
        timers_waiting: engine.pending_timers().unwrap_or_default(),
        cases_by_state: store
            .state_counts()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        live_clients,
    }
}
