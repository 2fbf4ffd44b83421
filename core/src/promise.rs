//! Promises: commitments made to a customer, and the ledger of their status.
//!
//! A promise is never silently dropped: every change of status is appended
//! to its `history` with the reason, and a revision keeps the promise it
//! replaces (status `revised`, pointing at the new one).

use std::fmt;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::case::{Channel, OrderId, string_id};

string_id!(
    /// The id of a promise (`P-1`), unique within its case.
    PromiseId
);

/// What was promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseKind {
    /// Delivered on one day (possibly with an acceptable window around it).
    DeliverOn,
    /// Delivered no later than a day.
    DeliverBy,
    /// Delivered inside a window of days.
    DeliverWithin,
    /// We call the customer back by a time.
    CallbackBy,
    /// We reply (by any channel) by a time.
    ReplyBy,
    /// The refund is made by a time.
    RefundBy,
}

impl PromiseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseKind::DeliverOn => "deliver_on",
            PromiseKind::DeliverBy => "deliver_by",
            PromiseKind::DeliverWithin => "deliver_within",
            PromiseKind::CallbackBy => "callback_by",
            PromiseKind::ReplyBy => "reply_by",
            PromiseKind::RefundBy => "refund_by",
        }
    }

    /// Delivery promises are kept by the carrier, the rest by us.
    pub fn is_delivery(self) -> bool {
        matches!(
            self,
            PromiseKind::DeliverOn | PromiseKind::DeliverBy | PromiseKind::DeliverWithin
        )
    }

    /// The event kind that fulfils a promise of this kind.
    pub fn fulfilled_by(self) -> &'static str {
        match self {
            PromiseKind::DeliverOn | PromiseKind::DeliverBy | PromiseKind::DeliverWithin => {
                "carrier.delivered"
            }
            PromiseKind::CallbackBy => "agent.call",
            PromiseKind::ReplyBy => "agent.reply",
            PromiseKind::RefundBy => "billing.refunded",
        }
    }
}

impl fmt::Display for PromiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a promise stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseStatus {
    Pending,
    AtRisk,
    Kept,
    Broken,
    Revised,
    Cancelled,
}

impl PromiseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseStatus::Pending => "pending",
            PromiseStatus::AtRisk => "at_risk",
            PromiseStatus::Kept => "kept",
            PromiseStatus::Broken => "broken",
            PromiseStatus::Revised => "revised",
            PromiseStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => PromiseStatus::Pending,
            "at_risk" => PromiseStatus::AtRisk,
            "kept" => PromiseStatus::Kept,
            "broken" => PromiseStatus::Broken,
            "revised" => PromiseStatus::Revised,
            "cancelled" => PromiseStatus::Cancelled,
            _ => return None,
        })
    }

    /// Open promises are still watched; the others are settled.
    pub fn is_open(self) -> bool {
        matches!(self, PromiseStatus::Pending | PromiseStatus::AtRisk)
    }
}

impl fmt::Display for PromiseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A window of calendar days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// A promise as an agent states it (the `promise:` field of an
/// `agent.promise` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromiseSpec {
    pub id: PromiseId,
    pub kind: PromiseKind,
    /// The promised day (deliver_on, deliver_by, refund_by as a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    /// The acceptable window (deliver_within; or around a deliver_on day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// An exact deadline (callback_by, reply_by, refund_by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Timestamp>,
    /// The order a delivery promise is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    /// Time zone of the dates; the config's time zone when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<Tz>,
    /// What the customer was told, in the agent's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The promise this one replaces (for `agent.revise_promise`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revises: Option<PromiseId>,
}

/// One change of a promise's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at: Timestamp,
    pub status: PromiseStatus,
    pub reason: String,
}

/// A commitment to the customer, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub id: PromiseId,
    pub kind: PromiseKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    pub tz: Tz,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub made_by: String,
    pub made_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The event kind that fulfils it.
    pub fulfilled_by: String,
    pub status: PromiseStatus,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revises: Option<PromiseId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_by: Option<PromiseId>,
    /// Every status it has had, oldest first (the first is `pending`).
    pub history: Vec<StatusChange>,
}

/// Why a promise spec is not a promise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum PromiseError {
    #[error("promise {id} ({kind}) needs {needs}")]
    Incomplete {
        id: String,
        kind: &'static str,
        needs: &'static str,
    },
    #[error("promise {id}: window ends ({to}) before it starts ({from})")]
    EmptyWindow {
        id: String,
        from: NaiveDate,
        to: NaiveDate,
    },
    #[error("promise {id} already exists on this case; revise it with `agent.revise_promise`")]
    Duplicate { id: String },
    #[error("promise {id} is not on this case")]
    Unknown { id: String },
}

impl Promise {
    /// Make a promise from an agent's spec, checking that it says enough.
    ///
    /// ```
    /// use casework_core::promise::{Promise, PromiseSpec, PromiseStatus};
    ///
    /// let spec: PromiseSpec = serde_json::from_str(r#"{"id": "P-1", "kind": "deliver_on",
    ///     "date": "2027-01-06", "window": {"from": "2027-01-05", "to": "2027-01-08"},
    ///     "order": "O-77"}"#)?;
    /// let at = "2026-11-25T10:00:00+09:00".parse()?;
    /// let p = Promise::make(&spec, "agent:ito", at, None, chrono_tz::Asia::Tokyo)?;
    /// assert_eq!(p.status, PromiseStatus::Pending);
    /// let window = p.delivery_window().unwrap();
    /// assert!(window.contains("2027-01-07".parse()?));
    /// assert!(!window.contains("2027-01-04".parse()?), "too early breaks it too");
    ///
    /// // A deliver_on promise without a date is refused, saying what it needs.
    /// let vague: PromiseSpec = serde_json::from_str(r#"{"id": "P-2", "kind": "deliver_on"}"#)?;
    /// let err = Promise::make(&vague, "agent:ito", at, None, chrono_tz::Asia::Tokyo).unwrap_err();
    /// assert!(err.to_string().contains("`date`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn make(
        spec: &PromiseSpec,
        made_by: &str,
        made_at: Timestamp,
        channel: Option<Channel>,
        default_tz: Tz,
    ) -> Result<Promise, PromiseError> {
        let id = spec.id.0.clone();
        let kind = spec.kind;
        let incomplete = |needs| PromiseError::Incomplete {
            id: id.clone(),
            kind: kind.as_str(),
            needs,
        };
        match kind {
            PromiseKind::DeliverOn | PromiseKind::DeliverBy if spec.date.is_none() => {
                return Err(incomplete("a `date`"));
            }
            PromiseKind::DeliverWithin if spec.window.is_none() => {
                return Err(incomplete("a `window: { from, to }`"));
            }
            PromiseKind::CallbackBy | PromiseKind::ReplyBy if spec.by.is_none() => {
                return Err(incomplete("a `by` time (RFC 3339)"));
            }
            PromiseKind::RefundBy if spec.by.is_none() && spec.date.is_none() => {
                return Err(incomplete("a `by` time or a `date`"));
            }
            _ => {}
        }
        if let Some(w) = spec.window
            && w.to < w.from
        {
            return Err(PromiseError::EmptyWindow {
                id,
                from: w.from,
                to: w.to,
            });
        }
        let reason = format!("promised by {made_by}");
        Ok(Promise {
            id: spec.id.clone(),
            kind,
            date: spec.date,
            window: spec.window,
            by: spec.by,
            order: spec.order.clone(),
            tz: spec.tz.unwrap_or(default_tz),
            text: spec.text.clone(),
            made_by: made_by.to_owned(),
            made_at,
            channel,
            fulfilled_by: kind.fulfilled_by().to_owned(),
            status: PromiseStatus::Pending,
            reason: reason.clone(),
            revises: spec.revises.clone(),
            revised_by: None,
            history: vec![StatusChange {
                at: made_at,
                status: PromiseStatus::Pending,
                reason,
            }],
        })
    }

    /// The first and last acceptable delivery day, when it is a delivery
    /// promise: the window if one was given, else the day (deliver_on) or
    /// any day up to it (deliver_by, from the day it was made).
    pub fn delivery_window(&self) -> Option<Window> {
        if !self.kind.is_delivery() {
            return None;
        }
        if let Some(w) = self.window {
            return Some(w);
        }
        let day = self.date?;
        Some(match self.kind {
            PromiseKind::DeliverOn => Window { from: day, to: day },
            _ => Window {
                from: self.made_at.with_timezone(&self.tz).date_naive(),
                to: day,
            },
        })
    }

    /// The moment the promise is due: the end of the last acceptable day,
    /// or the `by` time.
    pub fn due_at(&self) -> Option<Timestamp> {
        if let Some(by) = self.by {
            return Some(by);
        }
        let last = self
            .delivery_window()
            .map(|w| w.to)
            .or(self.date)?
            .succ_opt()?;
        let midnight = last.and_hms_opt(0, 0, 0)?;
        let local = self.tz.from_local_datetime(&midnight).earliest()?;
        Some(local.fixed_offset())
    }

    /// Record a status change with its reason. Setting the status it
    /// already has records nothing and returns false.
    pub fn set_status(&mut self, status: PromiseStatus, reason: &str, at: Timestamp) -> bool {
        if self.status == status {
            return false;
        }
        self.status = status;
        self.reason = reason.to_owned();
        self.history.push(StatusChange {
            at,
            status,
            reason: reason.to_owned(),
        });
        true
    }
}

impl Promise {
    /// Keep the first status change and the latest `n - 1`: a promise
    /// open for long, checked again and again, would otherwise grow with
    /// every change. The decision records keep them all.
    pub fn trim_history(&mut self, n: usize) {
        if self.history.len() > n && n >= 2 {
            let cut = self.history.len() - (n - 1);
            self.history.drain(1..cut);
        }
    }
}
