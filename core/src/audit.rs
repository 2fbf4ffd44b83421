//! Decision records: the audit trail every output is built from.
//!
//! Each [`Decision`] says what was decided, by which rule or transition
//! (file and content hash), from which inputs, at which time. The JSON
//! form is the line format of `casework simulate --json`.

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::case::{CaseId, UrgencyLevel};
use crate::event::EventId;
use crate::promise::PromiseStatus;

/// Where a decision came from: a rule function in a file, a workflow
/// transition, or the engine itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// File the rule or transition is written in (as given in the config).
    pub file: String,
    /// Function name (`route`) or transition label (`triage -> escalated`).
    pub name: String,
    /// Line in `file`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Content hash of `file` (first 16 hex digits of SHA-256).
    pub hash: String,
}

/// What kind of decision, with its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecisionKind {
    /// An event was accepted onto the case.
    Event {
        event_kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// The case was routed to a team (and maybe an agent).
    Route {
        team: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skill: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        reason: String,
    },
    Urgency {
        level: UrgencyLevel,
        score: i64,
        reasons: Vec<String>,
    },
    Transition {
        from: String,
        to: String,
        on: String,
    },
    Promise {
        promise: String,
        status: PromiseStatus,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<PromiseStatus>,
    },
    /// An action requested of a plugin (it goes to the outbox).
    Action {
        action: String,
        id: String,
        params: serde_json::Value,
    },
    /// A timer set or fired.
    Timer {
        timer: String,
        due: Timestamp,
        fired: bool,
    },
    /// An SLA clock warned, breached, paused, resumed or was met.
    Sla {
        clock: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<Timestamp>,
    },
    /// The complaint record changed.
    Record { field: String, value: String },
    /// A task for a person (phone the customer).
    Task {
        task: String,
        task_kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<Timestamp>,
        reason: String,
    },
    /// Something went wrong and the engine fell back; says what it did.
    Error {
        error: String,
        message: String,
        fallback: String,
    },
}

/// One line of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: Timestamp,
    pub case: CaseId,
    /// The event being handled when this was decided (none for ticks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventId>,
    #[serde(flatten)]
    pub what: DecisionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// The rule set version (its hash) in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
    /// The inputs the rule saw, for explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
}

impl Decision {
    /// The `kind` tag of this decision (`route`, `promise`, ...).
    pub fn kind_name(&self) -> &'static str {
        match &self.what {
            DecisionKind::Event { .. } => "event",
            DecisionKind::Route { .. } => "route",
            DecisionKind::Urgency { .. } => "urgency",
            DecisionKind::Transition { .. } => "transition",
            DecisionKind::Promise { .. } => "promise",
            DecisionKind::Action { .. } => "action",
            DecisionKind::Timer { .. } => "timer",
            DecisionKind::Sla { .. } => "sla",
            DecisionKind::Record { .. } => "record",
            DecisionKind::Task { .. } => "task",
            DecisionKind::Error { .. } => "error",
        }
    }
}

/// First 16 hex digits of the SHA-256 of `text`: the content hash decision
/// records carry, and the version of a rule set or a pack.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
