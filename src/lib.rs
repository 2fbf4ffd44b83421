//! casework: a workflow engine for customer-service operations.
//!
//! This crate is the facade: it re-exports [`casework_core`] and carries
//! the default rule [`pack`], embedded so the CLI works out of the box.
//!
//! An embedding in a dozen lines: the default pack, a virtual clock (the
//! engine never reads the wall clock while it decides), one customer
//! message, and what the rules made of it, each decision with its rule.
//!
//! ```
//! use std::sync::Arc;
//! use casework::case::{CaseId, UrgencyLevel};
//! use casework::clock::ManualClock;
//! use casework::engine::Engine;
//! use casework::event::Event;
//!
//! let (pack, rules) = casework::load(None)?; // the embedded default pack
//! let clock = Arc::new(ManualClock::new("2026-11-25T10:00:00+09:00".parse()?));
//! let mut engine = Engine::builder(pack, rules).clock(clock).build()?;
//!
//! engine.handle(Event::from_json(
//!     r#"{"id":"m1","at":"2026-11-25T10:00:00+09:00","kind":"customer.message",
//!         "case":"C-1","text":"I was charged twice, please refund ASAP"}"#,
//! )?)?;
//!
//! let case = engine.case(&CaseId::from("C-1"))?.expect("the message opened C-1");
//! assert_eq!(case.assignment.team.as_deref(), Some("billing"));
//! assert!(case.urgency.level >= UrgencyLevel::High);
//! // Every decision names the rule that made it: file, line, content hash.
//! // The case row holds the present; its story adds the past and decisions.
//! let story = engine.story(&case.id)?;
//! assert!(story.history.iter().any(|d| d.rule.is_some()));
//! // Replaying the stored events reproduces the case exactly.
//! assert_eq!(engine.replay(&case.id)?, case);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The default pack is embedded, so the CLI and this example work with
//! no files on disk:
//!
//! ```
//! let loaded = casework::pack::load().expect("the default pack is valid");
//! assert_eq!(loaded.workflow.initial().as_str(), "new");
//! ```
pub use casework_core::*;

/// The README's Rust examples compile (`cargo test --doc`), so the page a
/// newcomer starts from cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod cluster;
pub mod console;
pub mod outbox;
pub mod pack;
pub mod plugins;
pub mod scenario;
pub mod serve;

use std::path::Path;

use casework_core::config::{CheckReport, LoadedConfig};
use casework_core::diagnostic::Diagnostics;
use casework_core::engine::Pack;
use casework_core::rules::RuleSet;

/// Load and check a configuration: the file at `config`, or the embedded
/// default pack when `None`, with the built-in plugin kinds.
pub fn load_config(config: Option<&Path>) -> Result<LoadedConfig, Diagnostics> {
    load_config_with(config, &plugins::Registry::builtin())
}

/// [`load_config`] with the plugin kinds of `registry`: the kinds an
/// embedding program registered in Rust are accepted, and every kind's
/// settings are checked by the kind.
pub fn load_config_with(
    config: Option<&Path>,
    registry: &plugins::Registry,
) -> Result<LoadedConfig, Diagnostics> {
    check_config(config, registry).into_result()
}

/// What `casework check` does, for a program with its own plugin kinds:
/// load and check the file at `config` (or the embedded default pack)
/// with the kinds of `registry`, keeping every diagnostic (warnings too)
/// and every file read. See [`plugins`] for a kind registered in Rust.
///
/// ```
/// let report = casework::check_config(None, &casework::plugins::Registry::builtin());
/// assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
/// // The default pack declares a warehouse without its API's `url`.
/// let loaded = report.config.unwrap();
/// assert!(loaded.actions.not_configured().any(|(name, _)| name == "warehouse"));
/// ```
pub fn check_config(config: Option<&Path>, registry: &plugins::Registry) -> CheckReport {
    match config {
        Some(path) => registry.check(&casework_core::config::DiskReader, path),
        None => registry.check(&pack::reader(), Path::new(pack::ROOT)),
    }
}

/// Load a configuration (or the embedded default pack) and compile it into
/// the [`Pack`] and [`RuleSet`] an [`Engine`](casework_core::engine::Engine)
/// is built from.
///
/// ```
/// use casework::engine::Engine;
/// let (pack, rules) = casework::load(None).expect("the default pack compiles");
/// let engine = Engine::builder(pack, rules).build().unwrap();
/// assert_eq!(engine.pack().workflow.initial().as_str(), "new");
/// ```
pub fn load(config: Option<&Path>) -> Result<(Pack, RuleSet), Diagnostics> {
    Pack::compile(load_config(config)?)
}

/// What [`reload_rules`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// No rule file changed on disk.
    Unchanged,
    /// The changed files compiled and are in force: the new rule-set hash.
    Swapped(String),
}

/// Hot reload: read the engine's rule files again from disk and, if any
/// changed, compile and swap them in atomically. A file that does not
/// compile is refused with its diagnostics and the old rule set keeps
/// running; events being handled finish on the version they started with.
///
/// The embedded default pack has no files on disk: use a configuration
/// path to get reloadable rules.
pub fn reload_rules(engine: &casework_core::engine::Engine) -> Result<Reload, Diagnostics> {
    use casework_core::diagnostic::{Diagnostic, SourceFile};
    let current = engine.rules().current();
    let mut files = Vec::new();
    for old in current.files() {
        let text = std::fs::read_to_string(&old.path).map_err(|e| {
            Diagnostics(vec![
                Diagnostic::error(
                    "rules::read-error",
                    format!("cannot read {}: {e}", old.path),
                )
                .hint("the rule set in force is kept; restore the file or fix its permissions"),
            ])
        })?;
        files.push(SourceFile::new(old.path.clone(), text));
    }
    if files == current.files() {
        return Ok(Reload::Unchanged);
    }
    engine.rules().reload(&files)?;
    Ok(Reload::Swapped(engine.rules().current().hash().to_owned()))
}
