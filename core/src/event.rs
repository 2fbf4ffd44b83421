//! Events: something that happened, in the world or in the engine.
//!
//! An [`Event`] is kept in the loose shape it arrives in (JSON Lines,
//! scenario YAML, a webhook): common fields plus a map of the rest. The
//! engine reads the known kinds through [`Event::payload`], which is where a
//! malformed event is caught, with the event id and the field named.

use std::fmt;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::case::{CaseId, Channel, Customer, OrderId, string_id};
use crate::promise::PromiseSpec;

string_id!(
    /// The unique id of an event; handling the same id twice changes nothing.
    EventId
);
string_id!(
    /// A namespaced event kind: `customer.message`, `carrier.eta`.
    EventKind
);

/// Event kinds the engine understands. A workflow may declare more under
/// `workflow.events`; `check` rejects a transition on any other kind.
pub const KNOWN_KINDS: &[&str] = &[
    "customer.message",
    "customer.call",
    "agent.note",
    "agent.reply",
    "agent.call",
    "agent.promise",
    "agent.revise_promise",
    "agent.cancel_promise",
    "agent.assign",
    "agent.resolve",
    "agent.close",
    "agent.reopen",
    "agent.escalate",
    "agent.record",
    "order.placed",
    "warehouse.planned",
    "warehouse.shipped",
    "warehouse.delayed",
    "warehouse.held",
    "warehouse.released",
    "warehouse.backorder",
    "carrier.eta",
    "carrier.delivered",
    "carrier.exception",
    "email.received",
    "timer.fired",
    // Raised by the engine itself, so workflows can react to decisions.
    "case.routed",
    "urgency.raised",
    "promise.at_risk",
    "promise.broken",
    "promise.kept",
    "sla.warning",
    "sla.breached",
    "action.failed",
];

/// Something that happened, addressed to a case directly or through a
/// correlation key (order id, tracking number, e-mail Message-ID).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; scenario files may leave it out and get one from their
    /// position.
    #[serde(default = "EventId::unset")]
    pub id: EventId,
    pub at: Timestamp,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<CaseId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<String>,
    /// For e-mail: the Message-IDs this message answers (In-Reply-To and
    /// References), used to find the case it belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_reply_to: Vec<String>,
    /// Every other field, read per kind by [`Event::payload`].
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl EventId {
    fn unset() -> Self {
        EventId(String::new())
    }

    /// True when the event came without an id.
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

impl EventKind {
    /// The namespace: `carrier` in `carrier.eta`.
    pub fn namespace(&self) -> &str {
        self.0.split_once('.').map_or(self.0.as_str(), |(ns, _)| ns)
    }

    pub fn is_known(&self) -> bool {
        KNOWN_KINDS.contains(&self.0.as_str())
    }
}

/// Why an event cannot be handled.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventError {
    #[error(
        "event {event}: kind `{kind}` is not one the engine or the workflow knows; check the spelling or declare it under `workflow.events`"
    )]
    UnknownKind { event: EventId, kind: String },
    #[error(
        "event {event} ({kind}): {message}; see the scenario format in the README for the fields of this kind"
    )]
    Malformed {
        event: EventId,
        kind: String,
        message: String,
    },
    #[error(
        "event {event} ({kind}) names no case, order, tracking number or Message-ID, so it cannot be matched to a case; add `case:` or a correlation key"
    )]
    NoSubject { event: EventId, kind: String },
    #[error(
        "event {event} ({kind}) refers to {key}, which matches no case; send it with `case:` or after the event that links {key}"
    )]
    UnknownCase {
        event: EventId,
        kind: String,
        key: String,
    },
    #[error("event {event} is not valid JSON for an event: {message}")]
    Syntax { event: EventId, message: String },
}

impl Event {
    /// A bare event of `kind` at `at` for `case`; fill `data` as needed.
    pub fn new(id: impl Into<EventId>, at: Timestamp, kind: &str, case: Option<CaseId>) -> Self {
        Event {
            id: id.into(),
            at,
            kind: EventKind(kind.to_owned()),
            case,
            order: None,
            tracking: None,
            in_reply_to: Vec::new(),
            data: serde_json::Map::new(),
        }
    }

    /// Add a field (builder style).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).expect("event fields serialize");
        match key {
            "order" => self.order = value.as_str().map(OrderId::from),
            "tracking" => self.tracking = value.as_str().map(str::to_owned),
            _ => {
                self.data.insert(key.to_owned(), value);
            }
        }
        self
    }

    /// Parse one event from a JSON line (the format of `casework run`'s
    /// input and `POST /events`), then read its kind's fields.
    ///
    /// ```
    /// use casework_core::event::{Event, Payload};
    ///
    /// let e = Event::from_json(r#"{"id": "w1", "at": "2026-12-10T08:00:00+09:00",
    ///     "kind": "warehouse.planned", "order": "O-77", "ship_date": "2026-12-11"}"#)?;
    /// assert!(e.case.is_none(), "found through its order, no case id needed");
    /// assert!(matches!(e.payload()?, Payload::Fulfilment(_)));
    ///
    /// // A malformed line says what is wrong with it.
    /// let err = Event::from_json(r#"{"id": "w2", "kind": "warehouse.planned"}"#).unwrap_err();
    /// assert!(err.to_string().contains("missing field `at`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_json(line: &str) -> Result<Event, EventError> {
        serde_json::from_str(line).map_err(|e| EventError::Syntax {
            event: EventId::from("?"),
            message: e.to_string(),
        })
    }

    /// A field of `data` as text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(|v| v.as_str())
    }

    /// Read the known fields of this event's kind.
    pub fn payload(&self) -> Result<Payload, EventError> {
        let kind = self.kind.as_str();
        Ok(match kind {
            "customer.message" | "customer.call" | "email.received" => {
                Payload::Inbound(self.decode()?)
            }
            "agent.note" | "agent.reply" | "agent.call" => Payload::AgentNote(self.decode()?),
            "agent.promise" | "agent.revise_promise" => Payload::Promise(self.decode()?),
            "agent.cancel_promise" => Payload::CancelPromise(self.decode()?),
            "agent.assign" => Payload::Assign(self.decode()?),
            "agent.record" => Payload::Record(self.decode()?),
            "warehouse.planned"
            | "warehouse.shipped"
            | "warehouse.delayed"
            | "warehouse.held"
            | "warehouse.released"
            | "warehouse.backorder"
            | "carrier.eta"
            | "carrier.delivered"
            | "carrier.exception"
            | "order.placed" => Payload::Fulfilment(self.decode()?),
            "timer.fired" => Payload::Timer(self.decode()?),
            _ => Payload::Other,
        })
    }

    fn decode<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        T::deserialize(serde_json::Value::Object(self.data.clone())).map_err(|e| {
            EventError::Malformed {
                event: self.id.clone(),
                kind: self.kind.0.clone(),
                message: e.to_string(),
            }
        })
    }
}

/// The known fields of an event, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A customer message, call or e-mail.
    Inbound(Inbound),
    /// An agent's note, reply or call.
    AgentNote(AgentNote),
    /// A promise made or revised by an agent.
    Promise(PromiseEvent),
    CancelPromise(CancelPromise),
    Assign(Assign),
    /// Fields of the complaint record set by an agent.
    Record(RecordUpdate),
    /// News from the warehouse or the carrier about an order.
    Fulfilment(Fulfilment),
    Timer(TimerFired),
    /// A kind without fields of its own (`agent.resolve`, a custom kind).
    Other,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Inbound {
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub message_id: Option<String>,
    /// An agent who took the call or message, if any.
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AgentNote {
    pub agent: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub channel: Option<Channel>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PromiseEvent {
    pub agent: String,
    pub promise: PromiseSpec,
    #[serde(default)]
    pub channel: Option<Channel>,
    /// For a revision: why the promise changed.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CancelPromise {
    pub agent: String,
    pub promise: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Assign {
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordUpdate {
    pub agent: String,
    #[serde(default)]
    pub complaint: Option<String>,
    #[serde(default)]
    pub proposed_resolution: Option<String>,
    #[serde(default)]
    pub landed: Option<String>,
    #[serde(default)]
    pub commitment: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Warehouse and carrier news. Which fields matter depends on the kind:
/// `ship_date` for `warehouse.planned`, `eta` for `carrier.eta`, ...
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Fulfilment {
    #[serde(default)]
    pub ship_date: Option<NaiveDate>,
    #[serde(default)]
    pub eta: Option<NaiveDate>,
    #[serde(default)]
    pub until: Option<NaiveDate>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub customer: Option<Customer>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TimerFired {
    pub timer: String,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at {}", self.id, self.kind, self.at.to_rfc3339())
    }
}
