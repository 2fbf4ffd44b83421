//! The configuration an ops team writes: `casework.yaml` and the files it
//! includes.
//!
//! These types are the schema. Every one denies unknown fields (except
//! [`PluginDef`], whose extra keys are the plugin's own settings), so a
//! typo is an error with a location rather than a silently ignored setting.
//! Parsing lives in [`crate::yaml`]; cross-checks (states that exist,
//! guards that compile, actions a plugin offers) in [`crate::workflow`]
//! and here.
//!
//! # Loading
//!
//! [`load`] reads `casework.yaml` and every file it pulls in with
//! `include:` (paths relative to the including file). Each included file
//! has the same top-level schema and its sections merge in; a section
//! defined in two files is an error naming both places. The Rhai files
//! named in `rules.files` are read too (relative to the file that names
//! them), so the rules host can compile them from the [`LoadedConfig`].
//!
//! Reading goes through a [`SourceReader`], so a pack embedded in a binary
//! ([`MemoryReader`]) loads exactly like one on disk ([`DiskReader`]).
//!
//! ```
//! use std::path::Path;
//! use casework_core::config::{self, MemoryReader};
//!
//! let reader = MemoryReader::new([
//!     ("pack/casework.yaml", "name: tiny\ninclude: [workflow.yaml]\n"),
//!     ("pack/workflow.yaml", "workflow:\n  states:\n    open: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: open, to: done, on: agent.resolve }\n"),
//! ]);
//! let loaded = config::load_with(&reader, Path::new("pack/casework.yaml")).unwrap();
//! assert_eq!(loaded.workflow.initial().as_str(), "open");
//! assert_eq!(loaded.sources.len(), 2);
//!
//! // A transition to a state that does not exist, located in the file:
//! let reader = MemoryReader::new([
//!     ("c.yaml", "workflow:\n  states:\n    open: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: open, to: dne, on: agent.resolve }\n"),
//! ]);
//! let errors = config::load_with(&reader, Path::new("c.yaml")).unwrap_err();
//! let first = errors.iter().next().unwrap();
//! assert_eq!(first.code, "workflow::unknown-state");
//! assert_eq!(first.location.as_ref().unwrap().to_string(), "c.yaml:6:25");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::calendar::CalendarDef;
use crate::case::Channel;
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, SourceLocation};
use crate::plugin::{ActionCatalog, KindCatalog};
use crate::workflow::Workflow;
use crate::yaml::{self, LocationIndex};

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
    /// Classifiers trained from labeled examples at load time, by name
    /// (`classify("topic", text)` in the rules).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub classifiers: IndexMap<String, ClassifierDef>,
}

/// One classifier: its labels, the files of labeled examples it learns
/// from, and how sure it must be to answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierDef {
    /// What it tells apart; an example with any other label is an error.
    pub labels: Vec<String>,
    /// Example files (JSON Lines or YAML), relative to the file that
    /// defines `classifiers`.
    pub examples: Vec<String>,
    /// Under this probability for its best label, `classify` returns `()`
    /// (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `casework eval` fails when cross-validated accuracy is under this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy: Option<f64>,
    /// Examples each label needs at least (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_examples: Option<usize>,
    /// Folds of `casework eval`'s cross-validation (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
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

// ---------------------------------------------------------------------------
// Reading sources

/// Where configuration files come from: disk, or text embedded in a binary.
pub trait SourceReader {
    /// The text of the file at `path` (as the config names it, joined to
    /// the directory of the file that names it).
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Reads files from disk.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskReader;

impl SourceReader for DiskReader {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Files held in memory, e.g. a default pack embedded with `include_str!`.
/// Paths are compared after lexical normalisation (`a/./b/../c` is `a/c`).
#[derive(Clone, Debug, Default)]
pub struct MemoryReader {
    files: BTreeMap<PathBuf, std::borrow::Cow<'static, str>>,
}

impl MemoryReader {
    pub fn new(files: impl IntoIterator<Item = (&'static str, &'static str)>) -> Self {
        MemoryReader {
            files: files
                .into_iter()
                .map(|(p, text)| (tidy_path(Path::new(p)), text.into()))
                .collect(),
        }
    }

    /// The files of a stored pack version, to compile it again.
    pub fn from_source(source: &PackSource) -> Self {
        MemoryReader {
            files: source
                .files
                .iter()
                .map(|(p, text)| (tidy_path(Path::new(p)), text.clone().into()))
                .collect(),
        }
    }

    /// The paths held, normalised.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }
}

impl SourceReader for MemoryReader {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(&tidy_path(path))
            .map(|s| s.clone().into_owned())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is not in the embedded pack", path.display()),
                )
            })
    }
}

/// Remove `.` and resolve `..` lexically (no file-system access; a
/// leading `..` stays), so the same file reached two ways has one name:
/// `rules/tests/../route.rhai` is `rules/route.rhai`. Include cycles, the
/// memory reader, and the paths shown in diagnostics and decision records
/// all use it.
pub fn tidy_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Durations

/// Parse a duration (`30m`, `4h`, `2days`) as the engine will.
fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    crate::calendar::parse_duration(s).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Loading

/// A configuration that loaded and passed every check.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The root file's path, as shown.
    pub root: String,
    /// Every section, merged from the root file and its includes.
    pub def: ConfigDef,
    /// Every file read: the YAML files in load order, then the rule files.
    pub sources: Vec<SourceFile>,
    /// The Rhai files of `rules.files`, in the order listed.
    pub rule_files: Vec<SourceFile>,
    /// Each classifier with the text of its example files, checked.
    pub classifiers: Vec<crate::classify::ClassifierSource>,
    /// Where each path of the merged configuration is written.
    pub index: LocationIndex,
    /// The actions the configured plugins offer.
    pub actions: ActionCatalog,
    pub workflow: Workflow,
    /// Warnings found while checking (no errors, or it would not have
    /// loaded).
    pub warnings: Diagnostics,
}

/// Every file of one version of a pack, as read: what the store keeps so
/// that replay compiles the pack that decided, not the one in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackSource {
    /// The version: a content hash of the root's path and every file.
    pub hash: String,
    /// The root file's path, as shown.
    pub root: String,
    /// Each file read (YAML, rules), path and text, in load order.
    pub files: Vec<(String, String)>,
}

impl LoadedConfig {
    /// The files this configuration was read from, as a version.
    pub fn pack_source(&self) -> PackSource {
        let files: Vec<(String, String)> = self
            .sources
            .iter()
            .map(|f| (f.path.clone(), f.text.to_string()))
            .collect();
        let mut all = self.root.clone();
        for (path, text) in &files {
            all.push('\0');
            all.push_str(path);
            all.push('\0');
            all.push_str(text);
        }
        PackSource {
            hash: crate::audit::content_hash(&all),
            root: self.root.clone(),
            files,
        }
    }

    /// A file read while loading, by its shown path.
    pub fn source(&self, path: &str) -> Option<&SourceFile> {
        self.sources.iter().find(|s| s.path == path)
    }
}

/// Everything `check` learns: the files read (to show source lines), all
/// diagnostics, and the loaded configuration when there was no error.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub sources: Vec<SourceFile>,
    /// Sorted by file (in load order), line and column.
    pub diagnostics: Diagnostics,
    pub config: Option<LoadedConfig>,
}

impl CheckReport {
    pub fn into_result(self) -> Result<LoadedConfig, Diagnostics> {
        self.config.ok_or(self.diagnostics)
    }
}

/// Load and check the configuration at `path` from disk.
pub fn load(path: impl AsRef<Path>) -> Result<LoadedConfig, Diagnostics> {
    load_with(&DiskReader, path.as_ref())
}

/// Load and check the configuration at `path` through `reader`.
pub fn load_with(reader: &dyn SourceReader, path: &Path) -> Result<LoadedConfig, Diagnostics> {
    check_with(reader, path).into_result()
}

/// Load and check, keeping every diagnostic and every file read. Plugins
/// are checked against the built-in kinds ([`KindCatalog::builtin`]),
/// which know their actions but not every kind's settings; the `casework`
/// crate checks with its registry's kinds ([`check_kinds`]).
pub fn check_with(reader: &dyn SourceReader, path: &Path) -> CheckReport {
    check_kinds(reader, path, &KindCatalog::builtin())
}

/// Load and check with the plugin kinds of `kinds`: a plugin's kind must
/// be one of them, its settings pass the kind's validator, and its
/// actions are the kind's.
pub fn check_kinds(reader: &dyn SourceReader, path: &Path, kinds: &KindCatalog) -> CheckReport {
    let mut loader = Loader {
        reader,
        files: Vec::new(),
        seen: HashMap::new(),
        diags: Diagnostics::default(),
    };
    loader.visit(path, None, &mut Vec::new());
    loader.finish(path, kinds)
}

/// One YAML file as read.
struct FileLoad {
    path: PathBuf,
    source: SourceFile,
    def: Option<ConfigDef>,
    index: LocationIndex,
}

struct Loader<'r> {
    reader: &'r dyn SourceReader,
    files: Vec<FileLoad>,
    /// Normalised path -> position in `files`.
    seen: HashMap<PathBuf, usize>,
    diags: Diagnostics,
}

/// The top-level sections a file may define (besides `include`).
const SECTIONS: &[&str] = &[
    "name",
    "timezone",
    "workflow",
    "directory",
    "calendars",
    "rules",
    "plugins",
    "classifiers",
];

fn display(path: &Path) -> String {
    path.display().to_string()
}

impl Loader<'_> {
    /// Read, parse and index `path`, then the files it includes (depth
    /// first, in the order listed).
    fn visit(&mut self, path: &Path, from: Option<SourceLocation>, chain: &mut Vec<PathBuf>) {
        let norm = tidy_path(path);
        if chain.contains(&norm) {
            let cycle: Vec<String> = chain
                .iter()
                .chain(std::iter::once(&norm))
                .map(|p| display(p))
                .collect();
            self.diags.push(
                Diagnostic::error(
                    "config::include-cycle",
                    format!("files include each other: {}", cycle.join(" -> ")),
                )
                .at(from)
                .hint("remove one of these includes"),
            );
            return;
        }
        if let Some(&i) = self.seen.get(&norm) {
            self.diags.push(
                Diagnostic::error(
                    "config::duplicate-include",
                    format!("{} is included more than once", display(path)),
                )
                .at(from)
                .hint(format!(
                    "include it once; it is already included by the file at {}",
                    display(&self.files[i].path)
                )),
            );
            return;
        }
        let text = match self.reader.read(path) {
            Ok(t) => t,
            Err(e) => {
                let what = if from.is_some() {
                    "included file"
                } else {
                    "configuration"
                };
                self.diags.push(
                    Diagnostic::error(
                        "config::read-error",
                        format!("cannot read {what} {}: {e}", display(path)),
                    )
                    .at(from)
                    .hint("check the path: includes are relative to the file that names them"),
                );
                return;
            }
        };
        let source = SourceFile::new(display(path), text);
        let index = LocationIndex::build(&source);
        let (def, includes) = match yaml::parse::<ConfigDef>(&source) {
            Ok(def) => {
                let inc = def.include.clone();
                (Some(def), inc)
            }
            Err(d) => {
                self.diags.push(d);
                (None, yaml::includes_only(&source))
            }
        };
        let at: Vec<Option<SourceLocation>> = (0..includes.len())
            .map(|i| index.value(&format!("include[{i}]")))
            .collect();
        self.seen.insert(norm.clone(), self.files.len());
        self.files.push(FileLoad {
            path: path.to_path_buf(),
            source,
            def,
            index,
        });
        chain.push(norm);
        let dir = path.parent().unwrap_or(Path::new(""));
        for (inc, at) in includes.iter().zip(at) {
            self.visit(&tidy_path(&dir.join(inc)), at, chain);
        }
        chain.pop();
    }

    fn finish(mut self, root: &Path, kinds: &KindCatalog) -> CheckReport {
        let mut merged = ConfigDef::default();
        let mut index = LocationIndex::default();
        // Section -> (file position, where it is defined).
        let mut owner: HashMap<&'static str, (usize, Option<SourceLocation>)> = HashMap::new();
        // Sections we could not read (their file failed to parse): checks
        // that depend on them are skipped rather than reported twice.
        let mut unreadable: BTreeSet<&'static str> = BTreeSet::new();
        let mut file_index = Vec::new();
        for (i, file) in self.files.iter_mut().enumerate() {
            let mut defined = Vec::new();
            for key in file.index.top_level_keys(0) {
                if let Some(s) = SECTIONS.iter().find(|s| **s == key) {
                    defined.push(*s);
                }
            }
            let Some(def) = file.def.take() else {
                if file.index.is_partial(0) {
                    unreadable.extend(SECTIONS.iter().copied());
                } else {
                    unreadable.extend(defined.iter().copied());
                }
                file_index.push((i, Vec::new()));
                continue;
            };
            let mut owned = Vec::new();
            for section in defined {
                let here = file.index.key(section);
                if let Some((_, first)) = owner.get(section) {
                    let first = first
                        .as_ref()
                        .map_or_else(|| display(&file.path), ToString::to_string);
                    self.diags.push(
                        Diagnostic::error(
                            "config::duplicate-section",
                            format!("section `{section}` is defined twice: first at {first}, again here"),
                        )
                        .at(here)
                        .hint("define each top-level section in one file only; move these entries into the first one"),
                    );
                    continue;
                }
                owner.insert(section, (i, here));
                owned.push(section);
                take_section(&mut merged, &def, section);
            }
            file_index.push((i, owned));
        }
        for (i, owned) in file_index {
            let file_idx = std::mem::take(&mut self.files[i].index);
            let is_root = i == 0;
            index.merge(file_idx, |p| {
                let head = p.split(['.', '[']).next().unwrap_or("");
                owned.contains(&head) || (is_root && (head == "include" || p.is_empty()))
            });
        }

        // Rule files, relative to the file that defines `rules`.
        let mut rule_files = Vec::new();
        if let (Some(rules), Some((i, _))) = (&merged.rules, owner.get("rules")) {
            let dir = self.files[*i]
                .path
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf();
            for (j, name) in rules.files.iter().enumerate() {
                let path = tidy_path(&dir.join(name));
                match self.reader.read(&path) {
                    Ok(text) => rule_files.push(SourceFile::new(display(&path), text)),
                    Err(e) => self.diags.push(
                        Diagnostic::error(
                            "config::read-error",
                            format!("cannot read rule file {}: {e}", display(&path)),
                        )
                        .at(index.value(&format!("rules.files[{j}]")))
                        .hint("rule files are relative to the file that lists them"),
                    ),
                }
            }
        }

        let (classifiers, example_files) = self.read_classifiers(&merged, &owner, &index);

        // Cross-checks.
        validate(&merged, &index, &unreadable, &mut self.diags);
        let (actions, plugin_diags) = if unreadable.contains("plugins") {
            (ActionCatalog::open(), Diagnostics::default())
        } else {
            ActionCatalog::from_config_with(&merged.plugins, &index, kinds)
        };
        self.diags.0.extend(plugin_diags.0);
        let mut workflow = None;
        match &merged.workflow {
            Some(def) => {
                let (wf, d) = Workflow::analyze(def, &actions, &index);
                self.diags.0.extend(d.0);
                workflow = wf;
            }
            None if unreadable.contains("workflow") || self.files.is_empty() => {}
            None => self.diags.push(
                Diagnostic::error("config::missing-workflow", "no `workflow:` section")
                    .at(index.key("").or_else(|| {
                        self.files
                            .first()
                            .map(|f| SourceLocation::new(f.source.path.clone(), 1, 1))
                    }))
                    .hint("define the workflow here or in a file listed under `include:`"),
            ),
        }

        let mut sources: Vec<SourceFile> = self.files.iter().map(|f| f.source.clone()).collect();
        sources.extend(rule_files.iter().cloned());
        sources.extend(example_files);
        let mut diagnostics = self.diags;
        sort_diagnostics(&mut diagnostics, &sources);
        let config = match workflow {
            Some(workflow) if !diagnostics.has_errors() => Some(LoadedConfig {
                root: display(root),
                def: merged,
                sources: sources.clone(),
                rule_files,
                classifiers,
                index,
                actions,
                workflow,
                warnings: diagnostics.clone(),
            }),
            _ => None,
        };
        CheckReport {
            sources,
            diagnostics,
            config,
        }
    }
}

impl Loader<'_> {
    /// Read each classifier's example files (relative to the file that
    /// defines `classifiers`) and check the examples: formats, labels the
    /// classifier declares, enough examples per label.
    fn read_classifiers(
        &mut self,
        merged: &ConfigDef,
        owner: &HashMap<&'static str, (usize, Option<SourceLocation>)>,
        index: &LocationIndex,
    ) -> (Vec<crate::classify::ClassifierSource>, Vec<SourceFile>) {
        use crate::classify::{ClassifierSource, ExampleFile};
        let mut out = Vec::new();
        let mut shown = Vec::new();
        let Some((i, _)) = owner.get("classifiers") else {
            return (out, shown);
        };
        let dir = self.files[*i]
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for (name, def) in &merged.classifiers {
            let mut files = Vec::new();
            for (j, file) in def.examples.iter().enumerate() {
                let path = tidy_path(&dir.join(file));
                match self.reader.read(&path) {
                    Ok(text) => {
                        shown.push(SourceFile::new(display(&path), text.as_str()));
                        files.push(ExampleFile {
                            path: display(&path),
                            text,
                        });
                    }
                    Err(e) => self.diags.push(
                        Diagnostic::error(
                            "classify::missing-examples",
                            format!("cannot read the example file {}: {e}", display(&path)),
                        )
                        .at(index.value(&format!("classifiers.{name}.examples[{j}]")))
                        .hint("example files are relative to the file that lists them"),
                    ),
                }
            }
            let source = ClassifierSource {
                name: name.clone(),
                def: def.clone(),
                files,
            };
            let at = |sub: &str| {
                index
                    .value(&format!("classifiers.{name}.{sub}"))
                    .or_else(|| index.key(&format!("classifiers.{name}")))
            };
            let (_, diags) = source.examples(&at);
            // A missing file already explains why labels lack examples.
            let all_read = source.files.len() == def.examples.len();
            self.diags.0.extend(
                diags
                    .0
                    .into_iter()
                    .filter(|d| all_read || d.code != "classify::too-few-examples"),
            );
            out.push(source);
        }
        (out, shown)
    }
}

/// Move section `section` of `from` into `into`.
fn take_section(into: &mut ConfigDef, from: &ConfigDef, section: &str) {
    match section {
        "name" => into.name.clone_from(&from.name),
        "timezone" => into.timezone = from.timezone,
        "workflow" => into.workflow.clone_from(&from.workflow),
        "directory" => into.directory.clone_from(&from.directory),
        "calendars" => into.calendars.clone_from(&from.calendars),
        "rules" => into.rules.clone_from(&from.rules),
        "plugins" => into.plugins.clone_from(&from.plugins),
        "classifiers" => into.classifiers.clone_from(&from.classifiers),
        _ => {}
    }
}

/// Order diagnostics by file (in load order), then line and column;
/// unlocated ones last, each group in the order found.
fn sort_diagnostics(diags: &mut Diagnostics, sources: &[SourceFile]) {
    let rank = |d: &Diagnostic| match &d.location {
        Some(l) => (
            sources
                .iter()
                .position(|s| s.path == l.file)
                .unwrap_or(usize::MAX - 1),
            l.line,
            l.column,
        ),
        None => (usize::MAX, 0, 0),
    };
    diags.0.sort_by_key(rank);
}

/// Checks across sections: calendars named by the SLA and the teams exist,
/// durations parse, the fallback team and supervisors exist, calendar
/// hours and holidays are well formed.
fn validate(
    def: &ConfigDef,
    index: &LocationIndex,
    unreadable: &BTreeSet<&str>,
    diags: &mut Diagnostics,
) {
    let calendars_known = !unreadable.contains("calendars");
    let calendar_names: Vec<&str> = def.calendars.keys().map(String::as_str).collect();
    let unknown_calendar = |name: &str, what: String, at: Option<SourceLocation>| {
        let hint = match crate::diagnostic::did_you_mean(name, calendar_names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if calendar_names.is_empty() => {
                "define it under `calendars:` (timezone, hours, holidays)".to_owned()
            }
            None => format!(
                "use one of the calendars ({}) or define `{name}` under `calendars:`",
                calendar_names.join(", ")
            ),
        };
        Diagnostic::error(
            "config::unknown-calendar",
            format!("{what} calendar `{name}`, which is not defined"),
        )
        .at(at)
        .hint(hint)
    };

    for (name, cal) in &def.calendars {
        check_calendar(name, cal, index, diags);
    }

    if let Some(sla) = def.workflow.as_ref().and_then(|w| w.sla.as_ref()) {
        if calendars_known && !def.calendars.contains_key(&sla.calendar) {
            diags.push(unknown_calendar(
                &sla.calendar,
                "the SLA runs on".into(),
                index.value("workflow.sla.calendar"),
            ));
        }
        for (field, value) in [
            ("first_reply", &sla.first_reply),
            ("next_reply", &sla.next_reply),
            ("resolution", &sla.resolution),
            ("warn_before", &sla.warn_before),
        ] {
            if let Some(v) = value {
                let problem = match parse_duration(v) {
                    Ok(d) if d <= chrono::Duration::zero() => Some("it is zero".to_owned()),
                    Ok(_) => None,
                    Err(e) => Some(e),
                };
                if let Some(p) = problem {
                    diags.push(
                        Diagnostic::error(
                            "config::bad-duration",
                            format!("`workflow.sla.{field}`: `{v}` is not a usable duration: {p}"),
                        )
                        .at(index.value(&format!("workflow.sla.{field}")))
                        .hint("write a positive duration such as `4h`, `1day` or `30m`"),
                    );
                }
            }
        }
    }

    if let Some(dir) = &def.directory {
        let teams: Vec<&str> = dir.teams.keys().map(String::as_str).collect();
        if !dir.teams.contains_key(&dir.fallback) {
            let hint = match crate::diagnostic::did_you_mean(&dir.fallback, teams.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("name one of the teams: {}", teams.join(", ")),
            };
            diags.push(
                Diagnostic::error(
                    "config::unknown-team",
                    format!(
                        "the fallback team `{}` is not a team of the directory",
                        dir.fallback
                    ),
                )
                .at(index.value("directory.fallback"))
                .hint(hint),
            );
        }
        let agents: BTreeSet<&str> = dir
            .teams
            .values()
            .flat_map(|t| t.agents.keys().map(String::as_str))
            .collect();
        for (name, team) in &dir.teams {
            let path = format!("directory.teams.{name}");
            if let Some(cal) = &team.calendar
                && calendars_known
                && !def.calendars.contains_key(cal)
            {
                diags.push(unknown_calendar(
                    cal,
                    format!("team `{name}` works on"),
                    index.value(&format!("{path}.calendar")),
                ));
            }
            if let Some(sup) = &team.supervisor
                && !agents.contains(sup.as_str())
            {
                let hint = match crate::diagnostic::did_you_mean(sup, agents.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "add the supervisor as an agent of a team".to_owned(),
                };
                diags.push(
                    Diagnostic::error(
                        "config::unknown-agent",
                        format!("the supervisor of team `{name}`, `{sup}`, is not an agent in the directory"),
                    )
                    .at(index.value(&format!("{path}.supervisor")))
                    .hint(hint),
                );
            }
        }
    }
}

/// Check a calendar by compiling it, so `check` and the engine read
/// calendars the same way; each error points at the field it is about.
fn check_calendar(name: &str, cal: &CalendarDef, index: &LocationIndex, diags: &mut Diagnostics) {
    use crate::calendar::{BusinessCalendar, CalendarError};
    let Err(e) = BusinessCalendar::from_def(name, cal) else {
        return;
    };
    let path = format!("calendars.{name}");
    let at = match &e {
        CalendarError::BadWeekday { key, .. } | CalendarError::DuplicateWeekday { key, .. } => {
            index.key(&format!("{path}.hours.{key}"))
        }
        CalendarError::BadTimeRange { day, .. }
        | CalendarError::InvertedRange { day, .. }
        | CalendarError::OverlappingRanges { day, .. } => {
            index.value(&format!("{path}.hours.{day}"))
        }
        CalendarError::BadHoliday { value, .. } | CalendarError::InvertedHoliday { value, .. } => {
            cal.holidays
                .iter()
                .position(|h| h == value)
                .and_then(|i| index.value(&format!("{path}.holidays[{i}]")))
        }
        _ => None,
    }
    .or_else(|| index.key(&path));
    diags.push(
        Diagnostic::error("config::bad-calendar", e.to_string())
            .at(at)
            .hint("opening hours are `mon: \"09:00-18:00\"` (several ranges separated by commas); holidays are `2026-12-31` or `2026-12-29..2027-01-03`"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKFLOW: &str = "workflow:\n  states:\n    open: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: open, to: done, on: agent.resolve }\n";

    fn check(files: &[(&'static str, &'static str)]) -> CheckReport {
        check_with(
            &MemoryReader::new(files.iter().copied()),
            Path::new(files[0].0),
        )
    }

    fn located(r: &CheckReport) -> Vec<String> {
        r.diagnostics
            .iter()
            .map(|d| match &d.location {
                Some(l) => format!("{l} {}", d.code),
                None => format!("- {}", d.code),
            })
            .collect()
    }

    #[test]
    fn includes_merge_and_rule_files_are_read_beside_their_file() {
        let r = check(&[
            (
                "p/casework.yaml",
                "include: [wf/workflow.yaml, more.yaml]\n",
            ),
            ("p/wf/workflow.yaml", WORKFLOW),
            (
                "p/more.yaml",
                "rules:\n  files: [r/route.rhai]\n  settings: { days: 3 }\n",
            ),
            ("p/r/route.rhai", "fn route(c) { \"support\" }"),
        ]);
        assert!(r.diagnostics.is_empty(), "{}", r.diagnostics);
        let c = r.config.unwrap();
        assert_eq!(c.rule_files[0].path, "p/r/route.rhai");
        assert_eq!(c.sources.len(), 4);
        assert_eq!(c.def.rules.unwrap().settings["days"], 3);
        assert_eq!(
            c.index
                .value("workflow.transitions[0].to")
                .unwrap()
                .to_string(),
            "p/wf/workflow.yaml:6:25"
        );
    }

    #[test]
    fn a_section_defined_twice_names_both_places() {
        let r = check(&[
            ("a.yaml", "include: [b.yaml]\ncalendars: {}\n"),
            ("b.yaml", "calendars: {}\n"),
        ]);
        let d = r
            .diagnostics
            .iter()
            .find(|d| d.code == "config::duplicate-section")
            .unwrap();
        assert_eq!(d.location.as_ref().unwrap().to_string(), "b.yaml:1:1");
        assert!(d.message.contains("a.yaml:2:1"), "{}", d.message);
    }

    #[test]
    fn include_cycles_and_missing_files_are_located() {
        let r = check(&[
            ("a.yaml", "include: [b.yaml, gone.yaml]\n"),
            ("b.yaml", "include: [a.yaml]\n"),
        ]);
        // Sorted by file in load order, then line and column.
        assert_eq!(
            located(&r),
            [
                "a.yaml:1:1 config::missing-workflow",
                "a.yaml:1:19 config::read-error",
                "b.yaml:1:11 config::include-cycle",
            ]
        );
    }

    #[test]
    fn a_file_that_fails_to_parse_does_not_hide_the_others() {
        let r = check(&[
            ("a.yaml", "include: [wf.yaml, dir.yaml]\n"),
            ("wf.yaml", "workflow:\n  states: {}\n  transitons: []\n"),
            (
                "dir.yaml",
                "directory:\n  fallback: nobody\n  teams: { support: {} }\n",
            ),
        ]);
        assert_eq!(
            located(&r),
            [
                "wf.yaml:3:3 yaml::unknown-key",
                "dir.yaml:2:13 config::unknown-team"
            ]
        );
    }

    #[test]
    fn missing_rule_files_point_at_their_name() {
        let r = check(&[
            (
                "a.yaml",
                "include: [w.yaml]\nrules:\n  files: [route.rhai]\n",
            ),
            ("w.yaml", WORKFLOW),
        ]);
        assert_eq!(located(&r), ["a.yaml:3:11 config::read-error"]);
    }

    #[test]
    fn directory_and_sla_references_are_checked() {
        let r = check(&[
            (
                "a.yaml",
                "include: [w.yaml]\ncalendars:\n  tokyo: { timezone: Asia/Tokyo, hours: { mon: \"09:00-18:00\", fri: 9-5 }, holidays: [2026-13-01] }\ndirectory:\n  fallback: support\n  teams:\n    support: { calendar: tokio, supervisor: ghost, agents: { emi: {} } }\n",
            ),
            (
                "w.yaml",
                "workflow:\n  sla: { calendar: tokyo, first_reply: soon }\n  states:\n    open: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: open, to: done, on: agent.resolve }\n",
            ),
        ]);
        assert_eq!(
            located(&r),
            [
                // A calendar is compiled to be checked: its first error.
                "a.yaml:3:68 config::bad-calendar",
                "a.yaml:7:26 config::unknown-calendar",
                "a.yaml:7:45 config::unknown-agent",
                "w.yaml:2:40 config::bad-duration",
            ]
        );
    }

    #[test]
    fn durations_read_like_humantime() {
        assert_eq!(parse_duration("2days"), Ok(chrono::Duration::days(2)));
        assert_eq!(parse_duration("30m"), Ok(chrono::Duration::minutes(30)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn paths_normalise_lexically() {
        assert_eq!(
            tidy_path(Path::new("./a/b/../c.yaml")),
            PathBuf::from("a/c.yaml")
        );
        assert_eq!(tidy_path(Path::new("../x")), PathBuf::from("../x"));
    }
}
