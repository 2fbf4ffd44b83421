//! casework-core: the deterministic core of casework.
//!
//! Everything that decides lives here: the [case](case) model, [events](event),
//! the [workflow] graph, the [rules] host for Rhai and its learned
//! [classifiers](classify), the [promise] ledger,
//! business [calendars](calendar), the [engine] and its [audit] trail.
//! Nothing in this crate does I/O while handling an event; time comes from
//! an injected [`Clock`](clock::Clock).

pub mod action;
pub mod audit;
pub mod calendar;
pub mod case;
pub mod classify;
pub mod clock;
pub mod config;
pub mod diagnostic;
pub mod engine;
pub mod event;
mod memo;
pub mod plugin;
pub mod promise;
pub mod rules;
pub mod store;
pub mod workflow;
pub mod yaml;

/// A moment, with the offset it was written with. Comparisons are by
/// instant, so `10:00+09:00 == 01:00Z`.
pub type Timestamp = chrono::DateTime<chrono::FixedOffset>;
