//! Scenario files: the shared test format of ops teams, developers and the
//! examples (see the README). A scenario names a configuration, a virtual
//! clock start, events and expectations; [`Scenario::run`] plays it on an
//! in-memory engine and [`Run::check`] says which expectations held.
//!
//! ```
//! use std::path::Path;
//! use casework::scenario::Scenario;
//!
//! let scenario = Scenario::parse(Path::new("invoice.yaml"), r#"
//! description: Invoice questions go to billing.
//! start: 2026-11-25T10:00:00+09:00
//! events:
//!   - { at: 2026-11-25T10:00:00+09:00, kind: customer.message, case: C-1, text: "請求書が届きません" }
//! expect:
//!   - { case: C-1, team: billing }
//!   - { case: C-1, team: sales }
//! "#)?;
//! let run = scenario.run()?; // the embedded default pack: no `config:`
//! let failures = run.check(&scenario.def.expect);
//! assert_eq!(failures.len(), 1, "C-1 went to billing, not sales");
//! assert_eq!(failures[0].index, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use casework_core::Timestamp;
use casework_core::audit::{Decision, DecisionKind};
use casework_core::case::{CaseId, CaseStory, UrgencyLevel};
use casework_core::clock::ManualClock;
use casework_core::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use casework_core::engine::{Engine, EngineError, Outcome, Pack};
use casework_core::event::{Event, EventError, EventId};
use casework_core::promise::PromiseStatus;
use serde::{Deserialize, Serialize};

/// A scenario file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioDef {
    /// What the scenario shows, for people reading the output.
    #[serde(default)]
    pub description: Option<String>,
    /// The configuration, relative to the scenario file; the embedded
    /// default pack when left out.
    #[serde(default)]
    pub config: Option<String>,
    /// Where the virtual clock starts.
    pub start: Timestamp,
    /// Keep firing timers up to here after the last event.
    #[serde(default)]
    pub until: Option<Timestamp>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// One expectation: every field given must hold for `case` at `by`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub case: CaseId,
    /// When it must hold (default: the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<UrgencyLevel>,
    /// With `status`: the promise's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromiseStatus>,
    /// An action of this name was requested (with these params, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// No action of this name was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_action: Option<String>,
    /// How many actions of `action`'s name were requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// A task of this kind exists (`call_customer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The case's team changed this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<u32>,
    /// Fields of the handoff record that must contain these texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<BTreeMap<String, String>>,
    /// An error decision (a rule failed and the engine fell back) whose
    /// message contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reasons of the latest route or urgency decision contain this
    /// text (`topic classifier`, `asks for a supervisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `true`: replaying the case's stored events (each with the rule
    /// set version, classifiers included, that handled it) gives the case
    /// as the run left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replays: Option<bool>,
}

/// A loaded scenario, ready to run.
pub struct Scenario {
    pub path: PathBuf,
    pub def: ScenarioDef,
}

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("scenario {path}: the configuration has errors:\n{diagnostics}")]
    Config {
        path: String,
        diagnostics: Diagnostics,
    },
    #[error("scenario {path}: {source}")]
    Engine {
        path: String,
        #[source]
        source: EngineError,
    },
}

impl Scenario {
    /// Read and parse a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            message: format!("cannot read the scenario: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parse scenario text; `path` names it in errors and resolves `config`.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let file = SourceFile::new(path.display().to_string(), text);
        let mut def: ScenarioDef = casework_core::yaml::parse(&file)
            .map_err(|d| ScenarioError::Invalid(Diagnostics(vec![d])))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "event".into());
        for (i, e) in def.events.iter_mut().enumerate() {
            if e.id.is_unset() {
                e.id = EventId(format!("{stem}-{}", i + 1));
            }
        }
        Ok(Scenario {
            path: path.to_owned(),
            def,
        })
    }

    /// The configuration file this scenario runs on (None: embedded pack).
    pub fn config_path(&self) -> Option<PathBuf> {
        let config = self.def.config.as_ref()?;
        let base = self.path.parent().unwrap_or(Path::new("."));
        Some(base.join(config))
    }

    /// Play the scenario on a fresh in-memory engine with a virtual clock.
    pub fn run(&self) -> Result<Run, ScenarioError> {
        let name = self.path.display().to_string();
        let loaded = crate::load_config(self.config_path().as_deref()).map_err(|diagnostics| {
            ScenarioError::Config {
                path: name.clone(),
                diagnostics,
            }
        })?;
        let (pack, rules) = Pack::compile(loaded).map_err(|diagnostics| ScenarioError::Config {
            path: name.clone(),
            diagnostics,
        })?;
        let clock = Arc::new(ManualClock::new(self.def.start));
        let mut engine = Engine::builder(pack, rules)
            .clock(clock.clone())
            .build()
            .map_err(|e| ScenarioError::Engine {
                path: name.clone(),
                source: e.into(),
            })?;

        let mut events = self.def.events.clone();
        events.sort_by_key(|e| e.at);
        let end = self
            .def
            .until
            .into_iter()
            .chain(events.last().map(|e| e.at))
            .chain(self.def.expect.iter().filter_map(|x| x.by))
            .max()
            .unwrap_or(self.def.start);
        let mut checkpoints: Vec<Timestamp> = self
            .def
            .expect
            .iter()
            .map(|x| x.by.unwrap_or(end))
            .collect();
        checkpoints.sort();
        checkpoints.dedup();

        let mut run = Run {
            timeline: Vec::new(),
            snapshots: BTreeMap::new(),
            end,
            engine: None,
        };
        let engine_err = |e: EngineError| ScenarioError::Engine {
            path: name.clone(),
            source: e,
        };
        let mut next_checkpoint = 0;
        for event in events {
            while next_checkpoint < checkpoints.len() && checkpoints[next_checkpoint] < event.at {
                let at = checkpoints[next_checkpoint];
                run.advance(&mut engine, &clock, at).map_err(engine_err)?;
                run.snapshot(&engine, at, &self.def.expect)
                    .map_err(engine_err)?;
                next_checkpoint += 1;
            }
            run.advance(&mut engine, &clock, event.at)
                .map_err(engine_err)?;
            let at = event.at;
            match engine.handle(event.clone()) {
                Ok(outcome) => run.collect(outcome),
                Err(EngineError::Rejected(error)) => {
                    run.timeline
                        .push(Entry::Rejected(RejectedEvent { at, event, error }));
                }
                Err(e) => return Err(engine_err(e)),
            }
        }
        for &at in &checkpoints[next_checkpoint..] {
            run.advance(&mut engine, &clock, at).map_err(engine_err)?;
            run.snapshot(&engine, at, &self.def.expect)
                .map_err(engine_err)?;
        }
        run.advance(&mut engine, &clock, end).map_err(engine_err)?;
        run.engine = Some(engine);
        Ok(run)
    }
}

/// An event the engine refused during a run.
#[derive(Clone, Debug)]
pub struct RejectedEvent {
    pub at: Timestamp,
    pub event: Event,
    pub error: EventError,
}

/// One line of a run's timeline.
#[derive(Clone, Debug)]
pub enum Entry {
    Decision(Decision),
    Rejected(RejectedEvent),
}

impl Entry {
    /// The JSON line of `simulate --json`: a decision record, or for a
    /// refused event a record of kind `rejected`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Entry::Decision(d) => serde_json::to_value(d).unwrap_or_default(),
            Entry::Rejected(r) => serde_json::json!({
                "at": r.at.to_rfc3339(),
                "case": r.event.case.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
                "kind": "rejected",
                "event": r.event.id.0,
                "event_kind": r.event.kind.0,
                "error": serde_json::to_value(&r.error).ok().and_then(|v| v.get("error").cloned()),
                "message": r.error.to_string(),
            }),
        }
    }
}

/// What happened in a scenario run.
pub struct Run {
    /// Every decision and refused event, in order.
    pub timeline: Vec<Entry>,
    /// The cases named by expectations, as they were at each checkpoint.
    snapshots: BTreeMap<(Timestamp, CaseId), CaseStory>,
    pub end: Timestamp,
    /// The engine as the run left it (for `explain`).
    engine: Option<Engine>,
}

/// One expectation that did not hold.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Position in the `expect` list (1-based).
    pub index: usize,
    pub expectation: Expectation,
    pub at: Timestamp,
    pub problems: Vec<String>,
}

impl Run {
    fn advance(
        &mut self,
        engine: &mut Engine,
        clock: &ManualClock,
        to: Timestamp,
    ) -> Result<(), EngineError> {
        for outcome in engine.tick(to)? {
            self.collect(outcome);
        }
        clock.set(to);
        Ok(())
    }

    fn collect(&mut self, outcome: Outcome) {
        if let Outcome::Handled { decisions, .. } = outcome {
            self.timeline
                .extend(decisions.into_iter().map(Entry::Decision));
        }
    }

    /// The engine as the run left it.
    pub fn engine(&self) -> &Engine {
        self.engine
            .as_ref()
            .expect("a finished run keeps its engine")
    }

    fn snapshot(
        &mut self,
        engine: &Engine,
        at: Timestamp,
        expect: &[Expectation],
    ) -> Result<(), EngineError> {
        for x in expect.iter().filter(|x| x.by.unwrap_or(self.end) == at) {
            if engine.case(&x.case)?.is_some() {
                self.snapshots
                    .insert((at, x.case.clone()), engine.story(&x.case)?);
            }
        }
        Ok(())
    }

    /// Check every expectation; the failures, each with what was expected
    /// and what was found.
    pub fn check(&self, expect: &[Expectation]) -> Vec<Failure> {
        let mut failures = Vec::new();
        for (i, x) in expect.iter().enumerate() {
            let at = x.by.unwrap_or(self.end);
            let problems = match self.snapshots.get(&(at, x.case.clone())) {
                None => vec![format!(
                    "case {} does not exist at {}",
                    x.case,
                    at.to_rfc3339()
                )],
                Some(case) => {
                    let mut problems = check_case(x, case);
                    if x.replays == Some(true) {
                        problems.extend(self.check_replay(&x.case));
                    }
                    problems
                }
            };
            if !problems.is_empty() {
                failures.push(Failure {
                    index: i + 1,
                    expectation: x.clone(),
                    at,
                    problems,
                });
            }
        }
        failures
    }
}

impl Run {
    /// Replay `id` from its stored events and compare with the case the
    /// run left.
    fn check_replay(&self, id: &CaseId) -> Option<String> {
        let engine = self.engine.as_ref()?;
        let stored = match engine.case(id) {
            Ok(Some(c)) => c,
            Ok(None) => return Some(format!("replay: case {id} is not stored")),
            Err(e) => return Some(format!("replay: {e}")),
        };
        match engine.replay(id) {
            Ok(replayed) if replayed == stored => None,
            Ok(replayed) => {
                let (a, b) = (replayed.event_count, stored.event_count);
                Some(format!(
                    "replay: the replayed case differs from the stored one ({a} events replayed, {b} stored)"
                ))
            }
            Err(e) => Some(format!("replay: {e}")),
        }
    }
}

fn check_case(x: &Expectation, story: &CaseStory) -> Vec<String> {
    let case = &story.case;
    let mut problems = Vec::new();
    let mut expect_eq = |what: &str, expected: Option<&str>, found: Option<&str>, why: String| {
        if let Some(expected) = expected
            && found != Some(expected)
        {
            problems.push(format!(
                "{what}: expected {expected}, found {}{why}",
                found.unwrap_or("none")
            ));
        }
    };
    let last_route = last(story, |d| matches!(d.what, DecisionKind::Route { .. }));
    expect_eq(
        "state",
        x.state.as_deref(),
        Some(case.state.as_str()),
        String::new(),
    );
    expect_eq(
        "team",
        x.team.as_deref(),
        case.assignment.team.as_deref(),
        because(last_route),
    );
    expect_eq(
        "agent",
        x.agent.as_deref(),
        case.assignment.agent.as_deref(),
        because(last_route),
    );
    let last_urgency = last(story, |d| matches!(d.what, DecisionKind::Urgency { .. }));
    expect_eq(
        "urgency",
        x.urgency.map(|u| u.as_str()),
        Some(case.urgency.level.as_str()),
        because(last_urgency),
    );
    if let Some(id) = &x.promise {
        match case.promise(id) {
            None => problems.push(format!("promise {id}: not on the case")),
            Some(p) => {
                if let Some(status) = x.status
                    && p.status != status
                {
                    problems.push(format!(
                        "promise {id}: expected status {status}, found {} ({})",
                        p.status, p.reason
                    ));
                }
            }
        }
    }
    let actions: Vec<(&str, &serde_json::Value)> = story
        .history
        .iter()
        .filter_map(|d| match &d.what {
            DecisionKind::Action { action, params, .. } => Some((action.as_str(), params)),
            _ => None,
        })
        .collect();
    if let Some(name) = &x.action {
        let matching: Vec<_> = actions
            .iter()
            .filter(|(a, params)| {
                a == name
                    && x.params
                        .as_ref()
                        .is_none_or(|want| want.iter().all(|(k, v)| params.get(k) == Some(v)))
            })
            .collect();
        let requested: Vec<&str> = actions.iter().map(|(a, _)| *a).collect();
        match x.count {
            Some(n) if matching.len() != n => problems.push(format!(
                "action {name}: expected {n} requests, found {}",
                matching.len()
            )),
            None if matching.is_empty() => problems.push(format!(
                "action {name}{}: not requested (requested: {})",
                x.params
                    .as_ref()
                    .map(|p| format!(" with {}", serde_json::Value::Object(p.clone())))
                    .unwrap_or_default(),
                if requested.is_empty() {
                    "none".to_owned()
                } else {
                    requested.join(", ")
                }
            )),
            _ => {}
        }
    }
    if let Some(name) = &x.no_action
        && actions.iter().any(|(a, _)| a == name)
    {
        problems.push(format!("no_action {name}: it was requested"));
    }
    if let Some(kind) = &x.task
        && !case.tasks.iter().any(|t| &t.kind == kind)
    {
        let found: Vec<&str> = case.tasks.iter().map(|t| t.kind.as_str()).collect();
        problems.push(format!("task {kind}: none (tasks: {})", list(&found)));
    }
    if let Some(tag) = &x.tag
        && !case.tags.contains(tag)
    {
        let found: Vec<&str> = case.tags.iter().map(String::as_str).collect();
        problems.push(format!("tag {tag}: missing (tags: {})", list(&found)));
    }
    if let Some(h) = x.hops
        && case.assignment.hops != h
    {
        problems.push(format!(
            "hops: expected {h}, found {}",
            case.assignment.hops
        ));
    }
    if let Some(n) = x.contacts
        && case.contacts != n
    {
        problems.push(format!("contacts: expected {n}, found {}", case.contacts));
    }
    if let Some(fields) = &x.record {
        let record = serde_json::to_value(&case.record).unwrap_or_default();
        for (field, want) in fields {
            let found = match record.get(field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .or_else(|| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
                _ => String::new(),
            };
            if !found.contains(want.as_str()) {
                problems.push(format!(
                    "record.{field}: expected it to contain \"{want}\", found \"{found}\""
                ));
            }
        }
    }
    if let Some(text) = &x.reason {
        let reasons: Vec<String> = [
            last(story, |d| matches!(d.what, DecisionKind::Route { .. })),
            last(story, |d| matches!(d.what, DecisionKind::Urgency { .. })),
        ]
        .into_iter()
        .flatten()
        .map(|d| match &d.what {
            DecisionKind::Route { reason, .. } => reason.clone(),
            DecisionKind::Urgency { reasons, .. } => reasons.join("; "),
            _ => String::new(),
        })
        .collect();
        if !reasons.iter().any(|r| r.contains(text.as_str())) {
            problems.push(format!(
                "reason containing \"{text}\": none (latest reasons: {})",
                if reasons.is_empty() {
                    "none".into()
                } else {
                    reasons.join(" | ")
                }
            ));
        }
    }
    if let Some(text) = &x.error {
        let errors: Vec<String> = story
            .history
            .iter()
            .filter_map(|d| match &d.what {
                DecisionKind::Error { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect();
        if !errors.iter().any(|m| m.contains(text.as_str())) {
            problems.push(format!(
                "error containing \"{text}\": none (errors: {})",
                if errors.is_empty() {
                    "none".into()
                } else {
                    errors.join(" | ")
                }
            ));
        }
    }
    problems
}

fn last(story: &CaseStory, pred: impl Fn(&Decision) -> bool) -> Option<&Decision> {
    story.history.iter().rev().find(|d| pred(d))
}

/// ", decided by rules/route.rhai:12 route: reason" for a failure message.
fn because(d: Option<&Decision>) -> String {
    let Some(d) = d else { return String::new() };
    let reason = match &d.what {
        DecisionKind::Route { reason, .. } => reason.clone(),
        DecisionKind::Urgency { reasons, .. } => reasons.join("; "),
        _ => String::new(),
    };
    match &d.rule {
        Some(r) => format!(
            " (decided by {}{} `{}`: {reason})",
            r.file,
            r.line.map(|l| format!(":{l}")).unwrap_or_default(),
            r.name
        ),
        None if !reason.is_empty() => format!(" ({reason})"),
        None => String::new(),
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Turn a parse failure into the one diagnostic it is, for callers that
/// report diagnostics uniformly.
pub fn as_diagnostics(e: &ScenarioError) -> Diagnostics {
    match e {
        ScenarioError::Invalid(d) | ScenarioError::Config { diagnostics: d, .. } => d.clone(),
        other => Diagnostics(vec![Diagnostic::error("scenario::run", other.to_string())]),
    }
}
