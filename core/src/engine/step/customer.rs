//! Inbound contact: a customer's message, call or e-mail.
//!
//! Every inbound message joins the case's thread. Only the customer's own
//! (not a colleague's mail about the case) counts as a contact, fills the
//! empty lines of the handoff record and starts a reply clock.

use crate::case::{Author, Channel, Message, SlaKind};
use crate::event::Inbound;

use super::{Stepper, first_words};

/// The inbound kinds, typed once so that a new one must be handled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InboundKind {
    /// `customer.message`: the web form or a chat.
    Message,
    /// `customer.call`: a phone call, taken by an agent or left as voicemail.
    Call,
    /// `email.received`: mail from the customer, or from a colleague.
    Email,
}

impl InboundKind {
    pub(super) fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "customer.message" => Self::Message,
            "customer.call" => Self::Call,
            "email.received" => Self::Email,
            _ => return None,
        })
    }

    /// The channel of a message that names none.
    fn channel(self) -> Channel {
        match self {
            Self::Message => Channel::WebForm,
            Self::Call => Channel::Phone,
            Self::Email => Channel::Email,
        }
    }
}

impl Stepper<'_> {
    /// A message joins the thread; the customer's own is a contact.
    pub(super) fn inbound(&mut self, kind: InboundKind, m: &Inbound) {
        if let Some(c) = &m.customer {
            self.case.customer.merge(c);
        }
        let channel = m.channel.unwrap_or(kind.channel());
        let from = m.from.clone().or_else(|| {
            m.customer
                .as_ref()
                .and_then(|c| c.email.clone().or(c.name.clone()))
        });
        // Only mail arrives from colleagues (a forward, a copy); a form or
        // a call is the customer.
        let author = if kind == InboundKind::Email && !self.is_customer_address(from.as_deref()) {
            Author::Colleague
        } else {
            Author::Customer
        };
        self.case.add_message(Message {
            at: self.event.at,
            author,
            from: from.clone(),
            channel,
            subject: m.subject.clone(),
            text: m.text.clone(),
            message_id: m.message_id.clone(),
            event: self.event.id.clone(),
        });
        if author == Author::Customer {
            self.customer_contact(kind, m, channel, from);
        }
    }

    /// The customer got in touch: count it, complete the handoff record
    /// and start the clock for the reply they now wait for.
    fn customer_contact(
        &mut self,
        kind: InboundKind,
        m: &Inbound,
        channel: Channel,
        from: Option<String>,
    ) {
        self.case.contacts += 1;
        self.case.contacts_since_reply += 1;
        self.record_contact(m, channel, from);
        let replied = self.case.sla.iter().any(|c| c.kind == SlaKind::FirstReply);
        let clock = if replied {
            SlaKind::NextReply
        } else {
            SlaKind::FirstReply
        };
        self.start_sla(clock);
        // A call an agent took is answered as it happens: the customer is
        // not waiting for a reply.
        if kind == InboundKind::Call && m.agent.is_some() {
            self.meet_sla(clock);
            self.case.contacts_since_reply = 0;
        }
    }

    /// Fill the handoff record's empty lines (who called, when, through
    /// which channel, about what, taken by whom) from this contact; lines
    /// already filled keep the first contact's words.
    fn record_contact(&mut self, m: &Inbound, channel: Channel, from: Option<String>) {
        let record = &mut self.case.record;
        let mut set = Vec::new();
        if record.contact.is_none() {
            record.contact = self.case.customer.name.clone().or(from).or(self
                .case
                .customer
                .email
                .clone());
            record.contacted_at = Some(self.event.at);
            record.channel = Some(channel);
            if let Some(c) = &record.contact {
                set.push(("contact", c.clone()));
            }
        }
        if record.complaint.is_none() && !m.text.trim().is_empty() {
            let complaint = first_words(&m.text, 160);
            record.complaint = Some(complaint.clone());
            set.push(("complaint", complaint));
        }
        if let Some(agent) = &m.agent {
            if record.taken_by.is_none() {
                record.taken_by = Some(agent.clone());
                set.push(("taken_by", agent.clone()));
            }
            if !record.handled_by.contains(agent) {
                record.handled_by.push(agent.clone());
            }
        }
        self.record_fields(set);
    }

    /// Whether mail from `from` is the customer's (no sender at all is
    /// taken as the customer): their own address when the case knows it,
    /// else anyone who is not staff.
    fn is_customer_address(&self, from: Option<&str>) -> bool {
        let Some(from) = from else { return true };
        match &self.case.customer.email {
            Some(email) => from.to_lowercase().contains(&email.to_lowercase()),
            None => !self.pack.is_staff_address(from),
        }
    }
}
