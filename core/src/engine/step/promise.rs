//! Promises made, revised and cancelled by agents.
//!
//! A promise enters the case pending; whether it is kept is judged after
//! every event by the promise checks (in `step`), not here. A revision
//! never edits the old promise: it marks it revised and adds the new one,
//! so the ledger shows what the customer was told, and when.

use crate::audit::DecisionKind;
use crate::event::{CancelPromise, EventError, PromiseEvent};
use crate::promise::{Promise, PromiseId, PromiseStatus};

use super::{Stepper, promise_text};

/// The kinds that carry a new promise, typed once so that a new one must
/// be handled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PromiseEventKind {
    /// `agent.promise`: a first promise.
    Make,
    /// `agent.revise_promise`: a promise that replaces one given before.
    Revise,
}

impl PromiseEventKind {
    pub(super) fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "agent.promise" => Self::Make,
            "agent.revise_promise" => Self::Revise,
            _ => return None,
        })
    }
}

/// The promise a revision replaced: its id, its status before, and why.
type Revised = (PromiseId, PromiseStatus, String);

impl Stepper<'_> {
    /// A promise joins the case, pending, and its words go on the handoff
    /// record.
    pub(super) fn agent_promise(
        &mut self,
        kind: PromiseEventKind,
        p: &PromiseEvent,
    ) -> Result<(), EventError> {
        self.note_agent(&p.agent);
        let promise = Promise::make(
            &p.promise,
            &p.agent,
            self.now,
            p.channel,
            self.pack.timezone,
        )
        .map_err(|e| self.malformed(e.to_string()))?;
        if self.case.promise(promise.id.as_str()).is_some() {
            return Err(self.malformed(format!(
                "promise {} already exists on case {}; send `agent.revise_promise` with `revises: {}` and a new id",
                promise.id, self.case.id, promise.id
            )));
        }
        let revised = match kind {
            PromiseEventKind::Make => None,
            PromiseEventKind::Revise => Some(self.revise(&promise, p)?),
        };
        if let Some(order) = &promise.order {
            self.case.order_mut(order);
        }
        let text = promise_text(&promise);
        // The handoff record keeps the agent's own words: the promise's
        // text when given, else what the agent already recorded; the
        // machine summary only fills an empty record (or states a
        // revision, which makes older words stale).
        let record = &mut self.case.record;
        if let Some(words) = &promise.text {
            record.commitment = Some(words.clone());
        } else if record.commitment.is_none() || revised.is_some() {
            record.commitment = Some(text.clone());
        }
        if let Some((old, previous, reason)) = revised {
            self.record(
                DecisionKind::Promise {
                    promise: old.0,
                    status: PromiseStatus::Revised,
                    reason,
                    previous: Some(previous),
                },
                None,
            );
        }
        self.record(
            DecisionKind::Promise {
                promise: promise.id.0.clone(),
                status: PromiseStatus::Pending,
                reason: format!("{text}, promised by {}", p.agent),
                previous: None,
            },
            None,
        );
        self.case.promises.push(promise);
        Ok(())
    }

    /// Mark the promise that `new` revises as revised by it.
    fn revise(&mut self, new: &Promise, p: &PromiseEvent) -> Result<Revised, EventError> {
        let Some(old) = new.revises.clone() else {
            return Err(
                self.malformed("a revision needs `revises:` naming the promise it replaces".into())
            );
        };
        let reason = p
            .reason
            .clone()
            .unwrap_or_else(|| format!("revised by {}", p.agent));
        let now = self.now;
        let Some(prev) = self.case.promise_mut(old.as_str()) else {
            return Err(self.malformed(format!(
                "promise {old} to revise is not on case {}",
                self.case.id
            )));
        };
        let previous = prev.status;
        prev.revised_by = Some(new.id.clone());
        prev.set_status(PromiseStatus::Revised, &reason, now);
        Ok((old, previous, reason))
    }

    /// A promise withdrawn: cancelled, with the agent's reason.
    pub(super) fn cancel_promise(&mut self, c: &CancelPromise) -> Result<(), EventError> {
        let now = self.now;
        let reason = c
            .reason
            .clone()
            .unwrap_or_else(|| format!("cancelled by {}", c.agent));
        let Some(p) = self.case.promise_mut(&c.promise) else {
            return Err(self.malformed(format!(
                "promise {} is not on case {}",
                c.promise, self.case.id
            )));
        };
        let previous = p.status;
        if p.set_status(PromiseStatus::Cancelled, &reason, now) {
            self.record(
                DecisionKind::Promise {
                    promise: c.promise.clone(),
                    status: PromiseStatus::Cancelled,
                    reason,
                    previous: Some(previous),
                },
                None,
            );
        }
        Ok(())
    }
}
