//! casework: a workflow engine for customer-service operations.
//!
//! This crate is the facade: it re-exports [`casework_core`] and carries
//! the default rule [`pack`], embedded so the CLI works out of the box.
//!
//! ```
//! let loaded = casework::pack::load().expect("the default pack is valid");
//! assert_eq!(loaded.workflow.initial().as_str(), "new");
//! ```
pub use casework_core::*;

pub mod outbox;
pub mod pack;
pub mod plugins;
pub mod scenario;

use std::path::Path;

use casework_core::config::LoadedConfig;
use casework_core::diagnostic::Diagnostics;
use casework_core::engine::Pack;
use casework_core::rules::RuleSet;

/// Load and check a configuration: the file at `config`, or the embedded
/// default pack when `None`.
pub fn load_config(config: Option<&Path>) -> Result<LoadedConfig, Diagnostics> {
    match config {
        Some(path) => casework_core::config::load(path),
        None => pack::load(),
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
