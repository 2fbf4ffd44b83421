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

pub mod pack;
