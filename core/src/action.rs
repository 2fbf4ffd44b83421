//! Actions: side effects the engine asks the outside world for.
//!
//! The engine never performs an action itself. It records an [`Action`]
//! in the outbox, stored in the same transaction as the event that caused
//! it; an outbox runner hands it to the plugin later, with [`Action::id`]
//! as the idempotency key, so a retry after a crash is recognisable.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::case::CaseId;
use crate::event::EventId;

/// A requested side effect (`warehouse.hold`, `email.send`, `team.notify`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Unique and stable: derived from the event and the position of the
    /// request, so replaying an event requests the same ids.
    pub id: String,
    pub case: CaseId,
    /// `plugin.action`.
    pub action: String,
    pub params: serde_json::Value,
    pub requested_at: Timestamp,
    /// The event whose handling requested it.
    pub event: EventId,
    /// The rule or transition that asked for it (`promise.rhai#check_promise`).
    pub requested_by: String,
}

impl Action {
    /// The plugin name: `warehouse` in `warehouse.hold`.
    pub fn plugin(&self) -> &str {
        self.action.split_once('.').map_or(&self.action, |(p, _)| p)
    }
}
