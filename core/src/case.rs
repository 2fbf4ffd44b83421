//! The case: one customer matter and everything known about it.
//!
//! A [`Case`] is plain data. It is changed only by the engine while it
//! handles an event, which is what makes a case equal to the replay of its
//! events. Everything here serializes, so a case can be stored, shown and
//! compared as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::audit::Decision;
use crate::event::EventId;
use crate::promise::Promise;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_id;

string_id!(
    /// The id of a case, as the shop's tools know it (`C-1`).
    CaseId
);
string_id!(
    /// The id of an order in the shop (`O-77`).
    OrderId
);
string_id!(
    /// The name of a workflow state (`triage`).
    StateId
);

/// How a customer reaches us, or prefers to be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Phone,
    WebForm,
    Chat,
    Sms,
    Letter,
    InPerson,
}

impl Channel {
    /// The name used in YAML, JSON and Rhai.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Phone => "phone",
            Channel::WebForm => "web_form",
            Channel::Chat => "chat",
            Channel::Sms => "sms",
            Channel::Letter => "letter",
            Channel::InPerson => "in_person",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the case is for and how to reach them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The shop's customer id, when known; it links the customer's cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_channel: Option<Channel>,
}

impl Customer {
    /// The key that links one customer's cases: the customer id, else the
    /// e-mail address (lower-cased), else the phone number.
    pub fn key(&self) -> Option<String> {
        self.id
            .clone()
            .or_else(|| self.email.as_ref().map(|e| e.trim().to_lowercase()))
            .or_else(|| self.phone.clone())
    }

    /// Fill the fields this customer does not have yet from `other`;
    /// known fields are kept, so a later message cannot rename a customer.
    pub fn merge(&mut self, other: &Customer) {
        fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.id, &other.id);
        fill(&mut self.name, &other.name);
        fill(&mut self.email, &other.email);
        fill(&mut self.phone, &other.phone);
        fill(&mut self.preferred_channel, &other.preferred_channel);
    }
}

/// An order linked to the case, with what the warehouse and the carrier
/// have told us about it. Dates are calendar days in the shop's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<String>,
    /// The day the warehouse plans to ship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_ship: Option<NaiveDate>,
    /// The day it left the warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_on: Option<NaiveDate>,
    /// The carrier's latest estimate of the delivery day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_eta: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    /// Held at the warehouse until this day (a hold we asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backordered: bool,
    /// The last delay or carrier exception, in the sender's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Order {
    pub fn new(id: OrderId) -> Self {
        Order {
            id,
            tracking: None,
            planned_ship: None,
            shipped_on: None,
            carrier_eta: None,
            delivered_at: None,
            held_until: None,
            backordered: false,
            problem: None,
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    Customer,
    Agent,
    /// A colleague in another department, or a partner (warehouse, carrier).
    Colleague,
    System,
}

/// One message on the case, inbound or outbound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub at: Timestamp,
    pub author: Author,
    /// Name or address of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    /// RFC 5322 Message-ID, for e-mail threading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub event: EventId,
}

/// The handoff record of one complaint: enough for the next agent to
/// carry on without asking the customer again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRecord {
    /// Who contacted us (name or address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// When they first contacted us about this complaint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacted_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The agent who took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<String>,
    /// What the complaint is, in one or two sentences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaint: Option<String>,
    /// The resolution proposed to the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_resolution: Option<String>,
    /// Where it landed: "billing will confirm".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<String>,
    /// What we committed to: "we call back by the 14th".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<String>,
    /// Agents who have held the case, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handled_by: Vec<String>,
    /// Free-form notes from agents, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// An agent's note on the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: Timestamp,
    pub agent: String,
    pub text: String,
}

/// Which team and agent hold the case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Who decided it: an agent's name, or `rule` when a routing rule did.
    /// A rule never overrides an agent's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How many times the case changed team: every hop costs the customer.
    #[serde(default)]
    pub hops: u32,
}

/// How urgent a case is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum UrgencyLevel {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl UrgencyLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            UrgencyLevel::Low => "low",
            UrgencyLevel::Normal => "normal",
            UrgencyLevel::High => "high",
            UrgencyLevel::Urgent => "urgent",
        }
    }

    /// Parse the name a rule returns.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "low" => UrgencyLevel::Low,
            "normal" => UrgencyLevel::Normal,
            "high" => UrgencyLevel::High,
            "urgent" => UrgencyLevel::Urgent,
            _ => return None,
        })
    }
}

impl fmt::Display for UrgencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The urgency decided by the last `urgency` rule run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Urgency {
    pub level: UrgencyLevel,
    pub score: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The service-level clocks a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    FirstReply,
    NextReply,
    Resolution,
}

impl SlaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::FirstReply => "first_reply",
            SlaKind::NextReply => "next_reply",
            SlaKind::Resolution => "resolution",
        }
    }
}

/// Where an SLA clock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaStatus {
    Running,
    Paused,
    Warned,
    Met,
    Breached,
}

/// One SLA clock, counted in business time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClock {
    pub kind: SlaKind,
    pub started_at: Timestamp,
    /// Business seconds allowed.
    pub target_secs: i64,
    /// Business seconds already used before the current running stretch.
    pub used_secs: i64,
    /// Start of the current running stretch (None while paused or done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Timestamp>,
    /// When the clock breaches if it keeps running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    pub status: SlaStatus,
}

/// Work for a person: phone the customer, check the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Timestamp>,
}

/// One customer matter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub customer: Customer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<Order>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// The complaint record; one per case, filled as the case goes on.
    #[serde(default)]
    pub record: ComplaintRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promises: Vec<Promise>,
    pub state: StateId,
    /// When the case entered its current state (state timeouts count from here).
    pub state_since: Timestamp,
    #[serde(default)]
    pub assignment: Assignment,
    #[serde(default)]
    pub urgency: Urgency,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<SlaClock>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Customer contacts on this case (messages, calls, e-mails).
    #[serde(default)]
    pub contacts: u32,
    /// Customer contacts since our last reply or call: a customer asking
    /// again and again with no answer is more pressing than one who got
    /// replies. A colleague's e-mail (the warehouse answering us) does not
    /// count.
    #[serde(default)]
    pub contacts_since_reply: u32,
    /// The events applied to this case, in order: the input of a replay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventId>,
    /// Every decision made on this case, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Decision>,
}

impl Case {
    /// A new case in `state`, opened at `at`.
    pub fn open(id: CaseId, at: Timestamp, state: StateId) -> Self {
        Case {
            id,
            opened_at: at,
            updated_at: at,
            customer: Customer::default(),
            orders: Vec::new(),
            messages: Vec::new(),
            record: ComplaintRecord::default(),
            promises: Vec::new(),
            state,
            state_since: at,
            assignment: Assignment::default(),
            urgency: Urgency::default(),
            sla: Vec::new(),
            tasks: Vec::new(),
            tags: BTreeSet::new(),
            fields: BTreeMap::new(),
            contacts: 0,
            contacts_since_reply: 0,
            events: Vec::new(),
            history: Vec::new(),
        }
    }

    pub fn order(&self, id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.id.as_str() == id)
    }

    /// The order with this id, linked to the case if it was not yet.
    pub fn order_mut(&mut self, id: &OrderId) -> &mut Order {
        match self.orders.iter().position(|o| &o.id == id) {
            Some(i) => &mut self.orders[i],
            None => {
                self.orders.push(Order::new(id.clone()));
                self.orders.last_mut().expect("just pushed")
            }
        }
    }

    pub fn promise(&self, id: &str) -> Option<&Promise> {
        self.promises.iter().find(|p| p.id.as_str() == id)
    }

    pub fn promise_mut(&mut self, id: &str) -> Option<&mut Promise> {
        self.promises.iter_mut().find(|p| p.id.as_str() == id)
    }
}
