//! The configuration an ops team writes: `casework.yaml` and the files it
//! includes.
//!
//! These types are the schema. Every one denies unknown fields, so a typo
//! is an error with a location rather than a silently ignored setting.
//! Parsing lives in [`crate::yaml`]; cross-checks (states that exist,
//! guards that compile, actions a plugin offers) in [`crate::workflow`]
//! and [`validate`].

use std::collections::BTreeMap;

use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::calendar::CalendarDef;
use crate::case::Channel;

/// The whole configuration, after includes are merged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDef {
    /// A name for this pack, shown in outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The shop's time zone: dates without one (promise days, ship dates)
    /// are read in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Tz>,
    /// Other files (relative to this one) whose sections are merged in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryDef>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub calendars: IndexMap<String, CalendarDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesDef>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub plugins: IndexMap<String, PluginDef>,
}

/// States and transitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// States by name, in the order written.
    pub states: IndexMap<String, StateDef>,
    pub transitions: Vec<TransitionDef>,
    /// Event kinds this workflow adds to the engine's known kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Service-level targets for every case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaDef>,
}

/// One workflow state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New cases start here. Exactly one state is initial.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initial: bool,
    /// The case is finished here; nothing leaves a terminal state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    /// The case waits on someone outside the team (customer, warehouse).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
    /// SLA clocks stop while the case is here (waiting on the customer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pauses_sla: bool,
    /// Leave the state by itself after a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutDef>,
    /// Actions requested whenever a case enters the state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_enter: Vec<ActionDef>,
}

/// A state timeout: after `after` in the state, fire `timer.fired` with
/// the timer name `timeout:<state>` and move to `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutDef {
    /// A duration: `30m`, `4h`, `2days`.
    pub after: String,
    pub to: String,
    /// Count the duration in business time (the case team's calendar).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub business: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionDef>,
}

/// `from` may be one state, several, or `"*"` for every non-terminal state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateSet {
    One(String),
    Many(Vec<String>),
}

impl StateSet {
    pub fn names(&self) -> &[String] {
        match self {
            StateSet::One(s) => std::slice::from_ref(s),
            StateSet::Many(v) => v,
        }
    }
}

/// One transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    pub from: StateSet,
    pub to: String,
    /// The event kind that fires it.
    pub on: String,
    /// A Rhai expression over `c` (the case), `event` and the helpers;
    /// the transition fires only when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionDef>,
}

/// An action requested of a plugin (or of the engine: `task.create`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// `plugin.action`, e.g. `team.notify`, `warehouse.hold`.
    pub action: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Service-level targets, counted in business time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaDef {
    /// The calendar the clocks run on (a key of `calendars`).
    pub calendar: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reply: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reply: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Warn this long (business time) before a breach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<String>,
}

/// Who works here: teams (departments) and their agents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryDef {
    /// The team that gets a case no rule could route.
    pub fallback: String,
    pub teams: IndexMap<String, TeamDef>,
}

/// A department or team.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the team handles (`shipping`, `sizing`): rules route by these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// How the team prefers to be told about a case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A chat incoming-webhook URL, for `channel: chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Business hours (a key of `calendars`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// The agent cases are escalated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub agents: IndexMap<String, AgentDef>,
}

/// A person on a team.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The rule files and what they may read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesDef {
    /// Rhai files, relative to the config file, compiled into one rule set.
    pub files: Vec<String>,
    /// Values rules read as `settings` (lead times, thresholds), so ops
    /// can tune them without editing a script.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Sandbox limits; the defaults suit the default pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsDef>,
}

/// Sandbox limits for rule scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_operations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_call_depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_string_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_array_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_map_size: Option<usize>,
}

/// One configured plugin: its kind picks the implementation, the rest are
/// the kind's own settings (checked by the plugin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginDef {
    pub kind: String,
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_json::Value>,
}
