//! The workflow graph: states, the transitions between them, and the
//! checks that make a workflow safe to run.
//!
//! A [`Workflow`] is built from the YAML [`WorkflowDef`] and validated
//! before any case sees it, so ops teams can trust that:
//!
//! - there is exactly one initial state, and every state is reachable
//!   from it;
//! - from every non-terminal state some terminal state is reachable (a
//!   case can never get stuck), counting state timeouts as edges;
//! - terminal states have no way out;
//! - every transition names existing states, a known event kind, a guard
//!   that compiles and actions a configured plugin offers; durations parse.
//!
//! Problems come back as [`Diagnostics`], every one at the place in the
//! YAML it is about. Guards are not evaluated here (they may be false
//! forever), so "can reach" means "along some edge, whatever the guards".
//!
//! ```
//! use casework_core::config::WorkflowDef;
//! use casework_core::plugin::ActionCatalog;
//! use casework_core::workflow::Workflow;
//! use casework_core::yaml::LocationIndex;
//!
//! let def: WorkflowDef = serde_json::from_value(serde_json::json!({
//!     "states": { "open": { "initial": true }, "done": { "terminal": true } },
//!     "transitions": [
//!         { "from": "open", "to": "done", "on": "agent.resolve" },
//!         { "from": "*", "to": "open", "on": "customer.message",
//!           "guard": "c.tags.contains(\"vip\")" }
//!     ]
//! })).unwrap();
//! let wf = Workflow::build(&def, &ActionCatalog::default(), &LocationIndex::default()).unwrap();
//! assert_eq!(wf.initial().as_str(), "open");
//! assert_eq!(wf.transitions_from("open", "customer.message").count(), 1);
//! assert_eq!(wf.transitions_from("done", "customer.message").count(), 0);
//! assert!(wf.to_dot().contains("\"open\" -> \"done\""));
//! ```

use chrono::Duration;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use indexmap::IndexMap;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::case::StateId;
use crate::config::{ActionDef, StateDef, StateSet, WorkflowDef};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceLocation, did_you_mean};
use crate::event::KNOWN_KINDS;
use crate::plugin::ActionCatalog;
use crate::yaml::LocationIndex;

/// One transition, as the engine uses it: `from` is expanded (`"*"` is
/// every non-terminal state), names are checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Position in `workflow.transitions`: the first matching transition
    /// in declared order wins, and decision records name it by index.
    pub index: usize,
    pub from: Vec<StateId>,
    /// Written as `from: "*"`.
    pub from_any: bool,
    pub to: StateId,
    /// The event kind that fires it.
    pub on: String,
    /// A Rhai expression; the transition fires only when it is true.
    pub guard: Option<String>,
    pub actions: Vec<ActionDef>,
    /// Where the transition is written.
    pub location: Option<SourceLocation>,
    /// Where the guard is written (for errors while evaluating it).
    pub guard_location: Option<SourceLocation>,
}

/// A state's timeout with its duration parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTimeout {
    pub after: Duration,
    pub to: StateId,
    /// Count `after` in business time.
    pub business: bool,
    pub actions: Vec<ActionDef>,
}

/// An edge of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// `workflow.transitions[i]`.
    Transition(usize),
    /// The source state's timeout.
    Timeout,
}

/// A validated workflow.
#[derive(Clone, Debug)]
pub struct Workflow {
    def: WorkflowDef,
    states: IndexMap<StateId, StateDef>,
    initial: StateId,
    transitions: Vec<Transition>,
    timeouts: HashMap<StateId, StateTimeout>,
    extra_kinds: BTreeSet<String>,
    locations: HashMap<StateId, SourceLocation>,
    graph: DiGraph<StateId, Edge>,
}

fn state_path(name: &str) -> String {
    format!("workflow.states.{name}")
}

/// Which nodes can be reached from `starts` following edges in `dir`
/// (`Incoming`: which nodes can reach `starts`).
fn reach(
    graph: &DiGraph<StateId, Edge>,
    starts: impl IntoIterator<Item = NodeIndex>,
    dir: Direction,
) -> Vec<bool> {
    let mut seen = vec![false; graph.node_count()];
    let mut todo: Vec<NodeIndex> = starts.into_iter().collect();
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut seen[n.index()], true) {
            continue;
        }
        todo.extend(
            graph
                .neighbors_directed(n, dir)
                .filter(|m| !seen[m.index()]),
        );
    }
    seen
}

/// Checks shared by every place an action list appears.
fn check_actions(
    actions: &[ActionDef],
    path: &str,
    catalog: &ActionCatalog,
    index: &LocationIndex,
    diags: &mut Diagnostics,
) {
    for (j, action) in actions.iter().enumerate() {
        if !catalog.contains(&action.action) {
            let p = format!("{path}[{j}].action");
            diags.push(
                Diagnostic::error(
                    "workflow::unknown-action",
                    format!("no configured plugin offers action `{}`", action.action),
                )
                .at(index.value(&p).or_else(|| index.nearest(&p)))
                .hint(catalog.hint_for(&action.action)),
            );
        } else if let Some(schema) = catalog.params(&action.action) {
            for problem in schema.problems(&action.params) {
                let p = format!("{path}[{j}].params");
                let at = action
                    .params
                    .keys()
                    .find(|k| problem.starts_with(&format!("`{k}` ")))
                    .and_then(|k| index.value(&format!("{p}.{k}")))
                    .or_else(|| index.value(&p))
                    .or_else(|| index.value(&format!("{path}[{j}].action")));
                diags.push(
                    Diagnostic::error(
                        "workflow::bad-action-params",
                        format!("action `{}`: {problem}", action.action),
                    )
                    .at(at)
                    .hint(schema_hint(schema)),
                );
            }
        }
    }
}

/// What an action takes, for a hint.
fn schema_hint(schema: &crate::plugin::ActionParams) -> String {
    let list: Vec<String> = schema
        .params
        .iter()
        .map(|p| {
            format!(
                "`{}` ({}{})",
                p.name,
                p.kind,
                if p.required { ", required" } else { "" }
            )
        })
        .collect();
    let mut hint = format!("it takes {}", list.join(", "));
    if schema.open {
        hint.push_str(", and any other parameter as a template variable");
    }
    hint
}

impl Workflow {
    /// Build and validate; every problem is reported, warnings are
    /// dropped on success (use [`Workflow::analyze`] to see them).
    pub fn build(
        def: &WorkflowDef,
        actions: &ActionCatalog,
        index: &LocationIndex,
    ) -> Result<Workflow, Diagnostics> {
        match Workflow::analyze(def, actions, index) {
            (Some(wf), _) => Ok(wf),
            (None, diags) => Err(diags),
        }
    }

    /// Build and validate, returning every diagnostic (errors and
    /// warnings) and the workflow when there was no error.
    pub fn analyze(
        def: &WorkflowDef,
        catalog: &ActionCatalog,
        index: &LocationIndex,
    ) -> (Option<Workflow>, Diagnostics) {
        let mut diags = Diagnostics::default();
        // The workflow's own kinds and those its plugins produce.
        let extra_kinds: BTreeSet<String> = def
            .events
            .iter()
            .cloned()
            .chain(catalog.events().map(str::to_owned))
            .collect();
        let known = |k: &str| KNOWN_KINDS.contains(&k) || extra_kinds.contains(k);
        let state_names: Vec<&str> = def.states.keys().map(String::as_str).collect();
        let unknown_state = |name: &str, what: &str, at: Option<SourceLocation>| {
            let mut hint = format!("use one of the states: {}", state_names.join(", "));
            if let Some(s) = did_you_mean(name, state_names.iter().copied()) {
                hint = format!("did you mean `{s}`?");
            }
            Diagnostic::error(
                "workflow::unknown-state",
                format!("{what} `{name}`, which is not a state of the workflow"),
            )
            .at(at)
            .hint(hint)
        };

        // States: initial, terminal, timeouts, on_enter actions.
        let initials: Vec<&String> = def
            .states
            .iter()
            .filter(|(_, s)| s.initial)
            .map(|(n, _)| n)
            .collect();
        match initials.as_slice() {
            [] => diags.push(
                Diagnostic::error("workflow::no-initial", "no state is marked `initial: true`")
                    .at(index
                        .key("workflow.states")
                        .or_else(|| index.nearest("workflow")))
                    .hint("mark the state new cases start in with `initial: true`"),
            ),
            [_] => {}
            [first, rest @ ..] => {
                let first_at = index
                    .value(&format!("{}.initial", state_path(first)))
                    .map(|l| format!(" (at {l})"))
                    .unwrap_or_default();
                for other in rest {
                    diags.push(
                        Diagnostic::error(
                            "workflow::multiple-initial",
                            format!(
                                "state `{other}` is marked initial, but so is `{first}`{first_at}"
                            ),
                        )
                        .at(index.value(&format!("{}.initial", state_path(other))))
                        .hint("exactly one state may be initial: remove `initial: true` from all but one"),
                    );
                }
            }
        }
        if !def.states.values().any(|s| s.terminal) {
            diags.push(
                Diagnostic::error(
                    "workflow::no-terminal",
                    "no state is marked `terminal: true`",
                )
                .at(index
                    .key("workflow.states")
                    .or_else(|| index.nearest("workflow")))
                .hint("mark the state(s) where a case is finished with `terminal: true`"),
            );
        }
        let mut timeouts = HashMap::new();
        // Timeouts to draw as edges in the analysis even when the duration
        // is bad, so one mistake is not reported twice.
        let mut timeout_edges: Vec<(&str, &str)> = Vec::new();
        // Edges with a missing end: assume the fix will connect them, and do
        // not report the states around them as stuck or unreachable too.
        let mut maybe_exits: Vec<&str> = Vec::new();
        let mut maybe_entries: Vec<&str> = Vec::new();
        for (name, state) in &def.states {
            let path = state_path(name);
            if state.initial && state.terminal {
                diags.push(
                    Diagnostic::error(
                        "workflow::initial-terminal",
                        format!("state `{name}` is both initial and terminal: every case would start finished"),
                    )
                    .at(index.key(&path))
                    .hint("remove `terminal: true` or `initial: true`"),
                );
            }
            check_actions(
                &state.on_enter,
                &format!("{path}.on_enter"),
                catalog,
                index,
                &mut diags,
            );
            let Some(timeout) = &state.timeout else {
                if state.waiting && !state.terminal {
                    diags.push(
                        Diagnostic::warning(
                            "workflow::waiting-without-timeout",
                            format!("waiting state `{name}` has no timeout: a case may wait here forever if nobody answers"),
                        )
                        .at(index.key(&path))
                        .hint("add `timeout: { after: 2days, to: triage }` so someone looks again"),
                    );
                }
                continue;
            };
            let tpath = format!("{path}.timeout");
            if state.terminal {
                diags.push(
                    Diagnostic::error(
                        "workflow::terminal-exit",
                        format!("terminal state `{name}` has a timeout, but nothing may leave a terminal state"),
                    )
                    .at(index.key(&tpath))
                    .hint("remove the timeout, or make the state non-terminal"),
                );
            }
            let to_ok = def.states.contains_key(&timeout.to);
            if !to_ok {
                diags.push(unknown_state(
                    &timeout.to,
                    &format!("the timeout of `{name}` goes to"),
                    index.value(&format!("{tpath}.to")),
                ));
            }
            let after = match crate::calendar::parse_duration(&timeout.after) {
                Ok(d) if d.is_zero() => {
                    diags.push(
                        Diagnostic::error(
                            "workflow::bad-duration",
                            format!("timeout of `{name}` is zero"),
                        )
                        .at(index.value(&format!("{tpath}.after")))
                        .hint("use a positive duration such as `30m`, `4h` or `2days`"),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            "workflow::bad-duration",
                            format!(
                                "timeout of `{name}`: `{}` is not a duration: {e}",
                                timeout.after
                            ),
                        )
                        .at(index.value(&format!("{tpath}.after")))
                        .hint("write a duration such as `30m`, `4h` or `2days`"),
                    );
                    None
                }
            };
            check_actions(
                &timeout.actions,
                &format!("{tpath}.actions"),
                catalog,
                index,
                &mut diags,
            );
            if to_ok {
                timeout_edges.push((name, &timeout.to));
            } else {
                maybe_exits.push(name);
                maybe_entries.extend(did_you_mean(&timeout.to, state_names.iter().copied()));
            }
            if let (Some(after), true) = (after, to_ok) {
                timeouts.insert(
                    StateId::from(name.as_str()),
                    StateTimeout {
                        after,
                        to: StateId::from(timeout.to.as_str()),
                        business: timeout.business,
                        actions: timeout.actions.clone(),
                    },
                );
            }
        }

        // Transitions.
        let engine = rhai::Engine::new_raw();
        let open_states: Vec<StateId> = def
            .states
            .iter()
            .filter(|(_, s)| !s.terminal)
            .map(|(n, _)| StateId::from(n.as_str()))
            .collect();
        let mut transitions = Vec::new();
        for (i, t) in def.transitions.iter().enumerate() {
            let path = format!("workflow.transitions[{i}]");
            let names = t.from.names();
            let from_any = names.iter().any(|n| n == "*");
            let mut from: Vec<StateId> = Vec::new();
            if names.is_empty() {
                diags.push(
                    Diagnostic::error(
                        "workflow::empty-from",
                        format!("transitions[{i}] has an empty `from` list"),
                    )
                    .at(index.value(&format!("{path}.from")))
                    .hint("name the state(s) it leaves, or `\"*\"` for every non-terminal state"),
                );
            }
            for (j, name) in names.iter().enumerate() {
                let at = match &t.from {
                    StateSet::One(_) => index.value(&format!("{path}.from")),
                    StateSet::Many(_) => index.value(&format!("{path}.from[{j}]")),
                };
                if name == "*" {
                    continue;
                }
                match def.states.get(name) {
                    None => {
                        maybe_entries.push(&t.to);
                        maybe_exits.extend(did_you_mean(name, state_names.iter().copied()));
                        diags.push(unknown_state(name, &format!("transitions[{i}] leaves"), at));
                    }
                    Some(s) if s.terminal => diags.push(
                        Diagnostic::error(
                            "workflow::terminal-exit",
                            format!("transitions[{i}] leaves terminal state `{name}`; nothing may leave a terminal state"),
                        )
                        .at(at)
                        .hint("remove this state from `from`, or make it non-terminal (to reopen a case, use a non-terminal `resolved` state)"),
                    ),
                    Some(_) => {
                        let id = StateId::from(name.as_str());
                        if !from.contains(&id) {
                            from.push(id);
                        }
                    }
                }
            }
            if from_any {
                from = open_states.clone();
            }
            let to_ok = def.states.contains_key(&t.to);
            if names.is_empty() {
                maybe_entries.push(&t.to);
            }
            if !to_ok {
                maybe_entries.extend(did_you_mean(&t.to, state_names.iter().copied()));
                maybe_exits.extend(from.iter().map(|f| {
                    def.states
                        .get_key_value(f.as_str())
                        .map_or("", |(k, _)| k.as_str())
                }));
                diags.push(unknown_state(
                    &t.to,
                    &format!("transitions[{i}] goes to"),
                    index.value(&format!("{path}.to")),
                ));
            }
            if !known(&t.on) {
                let all: Vec<&str> = KNOWN_KINDS
                    .iter()
                    .copied()
                    .chain(extra_kinds.iter().map(String::as_str))
                    .collect();
                let hint = match did_you_mean(&t.on, all.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? A new kind must be declared under `workflow.events`"),
                    None => "use a kind the engine knows (see event.rs) or declare it under `workflow.events`".to_owned(),
                };
                diags.push(
                    Diagnostic::error(
                        "workflow::unknown-event",
                        format!(
                            "transitions[{i}] fires on `{}`, which is not a known event kind",
                            t.on
                        ),
                    )
                    .at(index.value(&format!("{path}.on")))
                    .hint(hint),
                );
            }
            let guard_path = format!("{path}.guard");
            if let Some(guard) = &t.guard
                && let Err(err) = engine.compile_expression(guard)
            {
                let pos = err.1;
                let at = match (pos.line(), pos.position()) {
                    (Some(l), Some(c)) => index.within_value(&guard_path, l, c),
                    (Some(l), None) => index.within_value(&guard_path, l, 1),
                    _ => index.value(&guard_path),
                }
                .or_else(|| index.value(&guard_path));
                let hint = match &*err.0 {
                    rhai::ParseErrorType::Reserved(w) if w == "case" => {
                        "`case` is a reserved word in Rhai: the case is `c` in guards".to_owned()
                    }
                    _ => "a guard is one Rhai expression over `c` (the case) and `event`, e.g. `c.urgency.level == \"urgent\"`".to_owned(),
                };
                diags.push(
                    Diagnostic::error(
                        "workflow::guard-syntax",
                        format!("guard of transitions[{i}] does not compile: {}", err.0),
                    )
                    .at(at)
                    .hint(hint),
                );
            }
            check_actions(
                &t.actions,
                &format!("{path}.actions"),
                catalog,
                index,
                &mut diags,
            );
            if to_ok {
                transitions.push(Transition {
                    index: i,
                    from,
                    from_any,
                    to: StateId::from(t.to.as_str()),
                    on: t.on.clone(),
                    guard: t.guard.clone(),
                    actions: t.actions.clone(),
                    location: index.key(&path),
                    guard_location: t.guard.as_ref().and_then(|_| index.value(&guard_path)),
                });
            }
        }

        // The graph, with timeouts as edges.
        let mut graph = DiGraph::new();
        let nodes: HashMap<&str, NodeIndex> = def
            .states
            .keys()
            .map(|n| (n.as_str(), graph.add_node(StateId::from(n.as_str()))))
            .collect();
        for t in &transitions {
            for f in &t.from {
                graph.add_edge(
                    nodes[f.as_str()],
                    nodes[t.to.as_str()],
                    Edge::Transition(t.index),
                );
            }
        }
        for (from, to) in &timeout_edges {
            graph.add_edge(nodes[from], nodes[to], Edge::Timeout);
        }

        if let [initial] = initials.as_slice() {
            let starts = std::iter::once(initial.as_str())
                .chain(maybe_entries.iter().copied())
                .filter_map(|n| nodes.get(n).copied());
            let reached = reach(&graph, starts, Direction::Outgoing);
            for name in def.states.keys() {
                if !reached[nodes[name.as_str()].index()] {
                    diags.push(
                        Diagnostic::error(
                            "workflow::unreachable-state",
                            format!("state `{name}` cannot be reached from the initial state `{initial}`"),
                        )
                        .at(index.key(&state_path(name)))
                        .hint(format!("add a transition (or timeout) into `{name}`, or remove the state")),
                    );
                }
            }
        }
        if def.states.values().any(|s| s.terminal) {
            let starts = def
                .states
                .iter()
                .filter(|(_, s)| s.terminal)
                .map(|(n, _)| n.as_str())
                .chain(maybe_exits.iter().copied())
                .filter_map(|n| nodes.get(n).copied());
            let can_end = reach(&graph, starts, Direction::Incoming);
            for (name, _) in def.states.iter().filter(|(_, s)| !s.terminal) {
                if !can_end[nodes[name.as_str()].index()] {
                    diags.push(
                        Diagnostic::error(
                            "workflow::stuck-state",
                            format!("a case in state `{name}` can never reach a terminal state"),
                        )
                        .at(index.key(&state_path(name)))
                        .hint(format!(
                            "add a transition from `{name}` toward a terminal state, or a `timeout:` that moves it on"
                        )),
                    );
                }
            }
        }

        if diags.has_errors() {
            return (None, diags);
        }
        let Some(initial) = initials.first() else {
            return (None, diags);
        };
        let locations = def
            .states
            .keys()
            .filter_map(|n| Some((StateId::from(n.as_str()), index.key(&state_path(n))?)))
            .collect();
        let wf = Workflow {
            states: def
                .states
                .iter()
                .map(|(n, s)| (StateId::from(n.as_str()), s.clone()))
                .collect(),
            initial: StateId::from(initial.as_str()),
            transitions,
            timeouts,
            extra_kinds,
            locations,
            graph,
            def: def.clone(),
        };
        (Some(wf), diags)
    }

    /// The state new cases start in.
    pub fn initial(&self) -> &StateId {
        &self.initial
    }

    pub fn state(&self, name: &str) -> Option<&StateDef> {
        self.states.get(name)
    }

    /// Every state, in the order written.
    pub fn states(&self) -> impl Iterator<Item = (&StateId, &StateDef)> {
        self.states.iter()
    }

    /// True for a terminal state; false for any other name.
    pub fn is_terminal(&self, name: &str) -> bool {
        self.state(name).is_some_and(|s| s.terminal)
    }

    /// Every transition, in declared order.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The transitions that may fire for an event of `event_kind` in
    /// `state`, in declared order (those written `from: "*"` included).
    /// The engine takes the first whose guard holds.
    pub fn transitions_from<'a>(
        &'a self,
        state: &'a str,
        event_kind: &'a str,
    ) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions
            .iter()
            .filter(move |t| t.on == event_kind && t.from.iter().any(|f| f.as_str() == state))
    }

    /// The timeout of `state`, with its duration parsed.
    pub fn timeout(&self, state: &str) -> Option<&StateTimeout> {
        self.timeouts.get(state)
    }

    /// True when a case can leave `state` at all (a transition or a
    /// timeout); false for terminal and unknown states.
    pub fn has_exit(&self, state: &str) -> bool {
        self.timeouts.contains_key(state)
            || self
                .transitions
                .iter()
                .any(|t| t.from.iter().any(|f| f.as_str() == state))
    }

    /// True for an event kind the engine knows or the workflow declares.
    pub fn known_kind(&self, kind: &str) -> bool {
        KNOWN_KINDS.contains(&kind) || self.extra_kinds.contains(kind)
    }

    /// The workflow as written.
    pub fn def(&self) -> &WorkflowDef {
        &self.def
    }

    /// Where state `name` is written.
    pub fn state_location(&self, name: &str) -> Option<&SourceLocation> {
        self.locations.get(name)
    }

    /// The graph: one node per state, one edge per (from state, transition)
    /// and per timeout.
    pub fn graph(&self) -> &DiGraph<StateId, Edge> {
        &self.graph
    }

    /// Edges to draw: `*` transitions once, from a pseudo-state.
    fn drawn_edges(&self) -> Vec<(Option<&StateId>, &StateId, String, bool)> {
        let mut out = Vec::new();
        for t in &self.transitions {
            let mut label = t.on.clone();
            if let Some(g) = &t.guard {
                let g: String = g.split_whitespace().collect::<Vec<_>>().join(" ");
                label = format!("{label} [{g}]");
            }
            if t.from_any {
                out.push((None, &t.to, label, false));
            } else {
                for f in &t.from {
                    out.push((Some(f), &t.to, label.clone(), false));
                }
            }
        }
        for (name, _) in self.states.iter() {
            if let Some(to) = self.timeouts.get(name) {
                let after =
                    humantime::format_duration(to.after.to_std().unwrap_or_default()).to_string();
                let biz = if to.business { " business" } else { "" };
                out.push((Some(name), &to.to, format!("after {after}{biz}"), true));
            }
        }
        out
    }

    /// Graphviz DOT: initial state marked by an arrow from a dot, terminal
    /// states double-bordered, waiting states dashed and shaded, timeouts
    /// dashed, edges labelled with the event kind and `[guard]`.
    pub fn to_dot(&self) -> String {
        fn q(s: &str) -> String {
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        }
        let mut out = String::from(
            "digraph workflow {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
        );
        out.push_str("  __start [shape=point, width=0.15, label=\"\"];\n");
        let _ = writeln!(out, "  __start -> {};", q(self.initial.as_str()));
        for (name, s) in &self.states {
            let mut attrs = Vec::new();
            if s.terminal {
                attrs.push("peripheries=2".to_owned());
                attrs.push("style=\"rounded,filled\"".to_owned());
                attrs.push("fillcolor=\"#e0e0e0\"".to_owned());
            } else if s.waiting {
                attrs.push("style=\"rounded,dashed,filled\"".to_owned());
                attrs.push("fillcolor=\"#fff3cd\"".to_owned());
            }
            if s.initial {
                attrs.push("penwidth=2".to_owned());
            }
            let mut label = name.to_string();
            if s.pauses_sla {
                label.push_str("\\n(SLA paused)");
            }
            attrs.push(format!("label=\"{}\"", label.replace('"', "\\\"")));
            let _ = writeln!(out, "  {} [{}];", q(name.as_str()), attrs.join(", "));
        }
        if self.transitions.iter().any(|t| t.from_any) {
            out.push_str("  __any [label=\"any open state\", shape=note, style=dashed];\n");
        }
        for (from, to, label, timeout) in self.drawn_edges() {
            let from = from.map_or("__any".to_owned(), |f| q(f.as_str()));
            let style = if timeout { ", style=dashed" } else { "" };
            let _ = writeln!(
                out,
                "  {from} -> {} [label={}{style}];",
                q(to.as_str()),
                q(&label)
            );
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid `stateDiagram-v2`: `[*] -->` marks the initial state,
    /// terminal states lead to `[*]`; waiting and terminal states get their
    /// own classes.
    pub fn to_mermaid(&self) -> String {
        // Mermaid treats `:` `;` `#` and braces specially in labels.
        fn label(s: &str) -> String {
            s.chars()
                .map(|c| match c {
                    ';' => ',',
                    '#' => '♯',
                    ':' => '∶',
                    '{' => '(',
                    '}' => ')',
                    c => c,
                })
                .collect()
        }
        let mut out = String::from("stateDiagram-v2\n");
        let _ = writeln!(out, "    [*] --> {}", self.initial);
        if self.transitions.iter().any(|t| t.from_any) {
            out.push_str("    state \"any open state\" as __any\n");
        }
        for (from, to, l, _) in self.drawn_edges() {
            let from = from.map_or("__any", |f| f.as_str());
            let _ = writeln!(out, "    {from} --> {to} : {}", label(&l));
        }
        for (name, s) in &self.states {
            if s.terminal {
                let _ = writeln!(out, "    {name} --> [*]");
            }
        }
        out.push_str("    classDef waiting fill:#fff3cd,stroke-dasharray:5 5\n");
        out.push_str("    classDef terminal fill:#e0e0e0,stroke-width:3px\n");
        out.push_str("    classDef initial stroke-width:3px\n");
        for (class, pick) in [
            (
                "initial",
                &(|s: &StateDef| s.initial) as &dyn Fn(&StateDef) -> bool,
            ),
            ("waiting", &|s: &StateDef| s.waiting && !s.terminal),
            ("terminal", &|s: &StateDef| s.terminal),
        ] {
            let names: Vec<&str> = self
                .states
                .iter()
                .filter(|(_, s)| pick(s))
                .map(|(n, _)| n.as_str())
                .collect();
            if !names.is_empty() {
                let _ = writeln!(out, "    class {} {class}", names.join(","));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(json: serde_json::Value) -> (Option<Workflow>, Diagnostics) {
        let def: WorkflowDef = serde_json::from_value(json).unwrap();
        Workflow::analyze(&def, &ActionCatalog::default(), &LocationIndex::default())
    }

    fn codes(d: &Diagnostics) -> Vec<&'static str> {
        d.iter().map(|d| d.code).collect()
    }

    #[test]
    fn star_transitions_apply_to_open_states_in_declared_order() {
        let (w, d) = wf(serde_json::json!({
            "states": { "a": { "initial": true }, "b": {}, "z": { "terminal": true } },
            "transitions": [
                { "from": "a", "to": "b", "on": "agent.note" },
                { "from": "*", "to": "z", "on": "agent.close" },
                { "from": ["a", "b"], "to": "z", "on": "agent.close", "guard": "true" },
            ]
        }));
        let w = w.unwrap_or_else(|| panic!("{d}"));
        let idx: Vec<usize> = w
            .transitions_from("a", "agent.close")
            .map(|t| t.index)
            .collect();
        assert_eq!(idx, [1, 2]);
        assert_eq!(w.transitions_from("z", "agent.close").count(), 0);
        assert!(w.has_exit("b"));
        assert!(!w.has_exit("z"));
        assert!(w.is_terminal("z"));
        assert!(w.known_kind("sla.breached"));
        assert!(!w.known_kind("sla.breeched"));
        let m = w.to_mermaid();
        assert!(m.contains("[*] --> a"), "{m}");
        assert!(m.contains("__any --> z : agent.close"), "{m}");
        assert!(m.contains("a --> z : agent.close [true]"), "{m}");
    }

    #[test]
    fn timeouts_count_as_exits() {
        let (w, d) = wf(serde_json::json!({
            "states": {
                "a": { "initial": true, "timeout": { "after": "2days", "to": "z" } },
                "z": { "terminal": true }
            },
            "transitions": []
        }));
        let w = w.unwrap_or_else(|| panic!("{d}"));
        assert_eq!(w.timeout("a").unwrap().after, Duration::days(2));
        assert!(w.to_dot().contains("style=dashed"));
    }

    #[test]
    fn reports_every_problem() {
        let (w, d) = wf(serde_json::json!({
            "states": {
                "a": { "initial": true },
                "b": { "initial": true },
                "stuck": {},
                "z": { "terminal": true, "timeout": { "after": "soon", "to": "nowhere" } }
            },
            "transitions": [
                { "from": "a", "to": "z", "on": "agent.resolv", "guard": "c.x >" },
                { "from": ["b", "z"], "to": "stuck", "on": "agent.note",
                  "actions": [{ "action": "mail.send" }] },
            ]
        }));
        assert!(w.is_none());
        let mut c = codes(&d);
        c.sort_unstable();
        assert_eq!(
            c,
            [
                "workflow::bad-duration",
                "workflow::guard-syntax",
                "workflow::multiple-initial",
                "workflow::stuck-state",
                "workflow::stuck-state",
                "workflow::terminal-exit",
                "workflow::terminal-exit",
                "workflow::unknown-action",
                "workflow::unknown-event",
                "workflow::unknown-state",
            ],
            "{d}"
        );
        let ev = d
            .iter()
            .find(|d| d.code == "workflow::unknown-event")
            .unwrap();
        assert!(ev.hint.as_deref().unwrap().contains("agent.resolve"));
    }
}
