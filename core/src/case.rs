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
use crate::promise::{Promise, PromiseStatus};

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
    /// Agents who have held the case, in order: the last
    /// [`RECENT_HANDLERS`] hand-offs.
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
    /// Customer contacts by channel, for the customer's other cases' view.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contacts_by_channel: BTreeMap<Channel, u32>,
    /// Events applied to this case.
    #[serde(default)]
    pub event_count: u32,
    /// Messages on this case, all of them (the row keeps only the recent ones).
    #[serde(default)]
    pub message_count: u32,
    /// Messages from the customer, all of them.
    #[serde(default)]
    pub inbound_count: u32,
    /// When an agent last wrote to the customer, on any channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<Timestamp>,
    /// When an agent last spoke to the customer on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call_at: Option<Timestamp>,
    /// Tasks ever opened on this case: the next task's number.
    #[serde(default)]
    pub task_count: u32,
}

/// How many messages the case row keeps, newest last: what the rules read
/// (`c.messages`, `c.latest_text`). Older ones live in the store's history.
pub const RECENT_MESSAGES: usize = 10;

/// How many agent notes the handoff record keeps in the case row.
pub const RECENT_NOTES: usize = 10;

/// How many hand-offs (`handled_by`, agent after agent) the handoff
/// record keeps; each agent's events stay in the event log.
pub const RECENT_HANDLERS: usize = 20;

/// How many broken promises (not yet revised or cancelled) the case row
/// keeps; older ones leave for the past.
pub const RECENT_BROKEN: usize = 5;

/// How many status changes a promise in the case row keeps: its first and
/// the latest ones. Every change is also a decision record.
pub const PROMISE_CHANGES: usize = 16;

/// Something that left the case row: appended to the store's history, read
/// where a case's story is told ([`CaseStory`]), never on the hot path.
///
/// Every message and note is appended when it is written (the row keeps
/// only the last [`RECENT_MESSAGES`] and [`RECENT_NOTES`]); a promise when
/// it is settled (kept, revised, cancelled: a broken one stays until it is
/// revised or cancelled); a task when it is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "item", rename_all = "snake_case")]
pub enum Past {
    Message(Message),
    Note(Note),
    Promise(Promise),
    Task(Task),
}

/// Where a case's lists stood before a step, so the step's end can tell
/// what it added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    messages: usize,
    notes: usize,
}

/// A case with its whole past: every message, note, promise and task, and
/// every decision. What `explain`, `show` and the scenario checks read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseStory {
    #[serde(flatten)]
    pub case: Case,
    /// The events applied to the case, in order.
    pub events: Vec<EventId>,
    /// Every decision made on the case, in order.
    pub history: Vec<Decision>,
}

impl CaseStory {
    /// The story of `case`, from its past (in the order it was appended),
    /// its events and its decisions.
    pub fn new(
        mut case: Case,
        past: Vec<Past>,
        events: Vec<EventId>,
        history: Vec<Decision>,
    ) -> Self {
        let (mut messages, mut notes, mut promises, mut tasks) = (vec![], vec![], vec![], vec![]);
        for p in past {
            match p {
                Past::Message(m) => messages.push(m),
                Past::Note(n) => notes.push(n),
                Past::Promise(p) => promises.push(p),
                Past::Task(t) => tasks.push(t),
            }
        }
        case.messages = messages;
        case.record.notes = notes;
        promises.append(&mut case.promises);
        promises.sort_by_key(|p| p.made_at);
        case.promises = promises;
        tasks.append(&mut case.tasks);
        case.tasks = tasks;
        CaseStory {
            case,
            events,
            history,
        }
    }
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
            contacts_by_channel: BTreeMap::new(),
            event_count: 0,
            message_count: 0,
            inbound_count: 0,
            last_reply_at: None,
            last_call_at: None,
            task_count: 0,
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

    /// Add a message, counting it (the row keeps only the recent ones;
    /// the counts and the last reply and call times are for all).
    pub fn add_message(&mut self, m: Message) {
        self.message_count += 1;
        match m.author {
            Author::Customer => {
                self.inbound_count += 1;
                *self.contacts_by_channel.entry(m.channel).or_default() += 1;
            }
            Author::Agent => {
                self.last_reply_at = self.last_reply_at.max(Some(m.at));
                if m.channel == Channel::Phone {
                    self.last_call_at = self.last_call_at.max(Some(m.at));
                }
            }
            Author::Colleague | Author::System => {}
        }
        self.messages.push(m);
    }

    /// Where the case's lists stand, before a step adds to them.
    pub fn marks(&self) -> Marks {
        Marks {
            messages: self.messages.len(),
            notes: self.record.notes.len(),
        }
    }

    /// End a step: count what it added since `marks`, and move out of the
    /// row what belongs to the past (see [`Past`]), so the row keeps a
    /// bounded size whatever the case's age.
    pub fn close_step(&mut self, marks: Marks) -> Vec<Past> {
        let mut past = Vec::new();
        for m in &self.messages[marks.messages.min(self.messages.len())..] {
            past.push(Past::Message(m.clone()));
        }
        for n in &self.record.notes[marks.notes.min(self.record.notes.len())..] {
            past.push(Past::Note(n.clone()));
        }
        trim_front(&mut self.messages, RECENT_MESSAGES);
        trim_front(&mut self.record.notes, RECENT_NOTES);
        trim_front(&mut self.record.handled_by, RECENT_HANDLERS);
        // A broken promise stays until it is revised or cancelled (the
        // customer is owed a repair, and the rules weigh it), the last
        // RECENT_BROKEN of them; the rest of the settled ones leave.
        let (mut settled, mut kept): (Vec<Promise>, Vec<Promise>) =
            std::mem::take(&mut self.promises)
                .into_iter()
                .partition(|p| !p.status.is_open() && p.status != PromiseStatus::Broken);
        let broken = kept.iter().filter(|p| !p.status.is_open()).count();
        let mut extra = broken.saturating_sub(RECENT_BROKEN);
        kept.retain(|p| {
            let leaves = extra > 0 && !p.status.is_open();
            if leaves {
                settled.push(p.clone());
                extra -= 1;
            }
            !leaves
        });
        for p in &mut kept {
            p.trim_history(PROMISE_CHANGES);
        }
        self.promises = kept;
        past.extend(settled.into_iter().map(Past::Promise));
        let (done, open) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|t: &Task| t.done_at.is_some());
        self.tasks = open;
        past.extend(done.into_iter().map(Past::Task));
        past
    }
}

/// Keep the last `n` items.
fn trim_front<T>(items: &mut Vec<T>, n: usize) {
    if items.len() > n {
        items.drain(..items.len() - n);
    }
}
