//! An agent's work on a case: notes, replies and calls, assignment, and
//! the lines of the handoff record.
//!
//! Each of these also names the agent on the handoff record, so the next
//! agent sees who has handled the case.

use crate::audit::DecisionKind;
use crate::case::{Author, Channel, Message, Note, SlaKind};
use crate::event::{AgentNote, Assign, EventError, RecordUpdate};

use super::Stepper;

/// The kinds that carry an agent's note, typed once so that a new one must
/// be handled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NoteKind {
    /// `agent.note`: words for colleagues only.
    Note,
    /// `agent.reply`: an answer sent to the customer.
    Reply,
    /// `agent.call`: the agent phoned the customer.
    Call,
}

impl NoteKind {
    pub(super) fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "agent.note" => Self::Note,
            "agent.reply" => Self::Reply,
            "agent.call" => Self::Call,
            _ => return None,
        })
    }
}

impl Stepper<'_> {
    /// A note, reply or call: its words go on the handoff record; a reply
    /// or a call answers the customer.
    pub(super) fn agent_note(&mut self, kind: NoteKind, n: &AgentNote) {
        self.note_agent(&n.agent);
        if !n.text.is_empty() {
            self.case.record.notes.push(Note {
                at: self.event.at,
                agent: n.agent.clone(),
                text: n.text.clone(),
            });
        }
        match kind {
            NoteKind::Note => {}
            NoteKind::Reply => self.agent_reply(n),
            NoteKind::Call => self.agent_call(n),
        }
    }

    /// A reply joins the thread and meets the reply clocks.
    fn agent_reply(&mut self, n: &AgentNote) {
        self.case.add_message(Message {
            at: self.event.at,
            author: Author::Agent,
            from: Some(n.agent.clone()),
            channel: n.channel.unwrap_or(Channel::Email),
            subject: None,
            text: n.text.clone(),
            message_id: None,
            event: self.event.id.clone(),
        });
        self.meet_sla(SlaKind::FirstReply);
        self.meet_sla(SlaKind::NextReply);
        self.case.contacts_since_reply = 0;
    }

    /// A call meets the reply clocks and does the open "call the customer"
    /// tasks.
    fn agent_call(&mut self, n: &AgentNote) {
        self.meet_sla(SlaKind::FirstReply);
        self.meet_sla(SlaKind::NextReply);
        self.case.contacts_since_reply = 0;
        let now = self.now;
        let mut done = Vec::new();
        for task in self
            .case
            .tasks
            .iter_mut()
            .filter(|t| t.kind == "call_customer" && t.done_at.is_none())
        {
            task.done_at = Some(now);
            done.push(task.id.clone());
        }
        for id in done {
            self.record(
                DecisionKind::Record {
                    field: format!("task {id}"),
                    value: format!("done: called by {}", n.agent),
                },
                None,
            );
        }
    }

    /// An agent's assignment, to a team from the directory (which the
    /// route rule then no longer overrides).
    pub(super) fn agent_assign(&mut self, a: &Assign) -> Result<(), EventError> {
        let by =
            a.by.clone()
                .or(a.agent.clone())
                .unwrap_or_else(|| "agent".into());
        let team = a.team.clone().or(self.case.assignment.team.clone());
        let Some(team) = team else {
            return Err(self.malformed(
                "`agent.assign` needs a `team` (or an `agent` on an assigned case)".into(),
            ));
        };
        if !self.pack.has_team(&team) {
            return Err(self.malformed(format!(
                "team `{team}` is not in the directory; known teams: {}",
                self.pack.team_names().join(", ")
            )));
        }
        if let Some(agent) = &a.agent {
            self.note_agent(agent);
        }
        self.assign(
            team,
            None,
            a.agent.clone(),
            format!("assigned by {by}"),
            by,
            None,
        );
        Ok(())
    }

    /// Lines of the handoff record written by an agent replace what was
    /// there (the agent knows better than the first message did).
    pub(super) fn agent_record(&mut self, r: &RecordUpdate) {
        self.note_agent(&r.agent);
        let record = &mut self.case.record;
        let mut set = Vec::new();
        for (field, value, slot) in [
            ("complaint", &r.complaint, &mut record.complaint),
            (
                "proposed_resolution",
                &r.proposed_resolution,
                &mut record.proposed_resolution,
            ),
            ("landed", &r.landed, &mut record.landed),
            ("commitment", &r.commitment, &mut record.commitment),
        ] {
            if let Some(value) = value {
                *slot = Some(value.clone());
                set.push((field, value.clone()));
            }
        }
        self.record_fields(set);
        if let Some(note) = &r.note {
            self.case.record.notes.push(Note {
                at: self.event.at,
                agent: r.agent.clone(),
                text: note.clone(),
            });
        }
    }

    /// Remember an agent on the handoff record: the first one took the
    /// case, and each change of hands is listed.
    pub(super) fn note_agent(&mut self, agent: &str) {
        let record = &mut self.case.record;
        if record.taken_by.is_none() {
            record.taken_by = Some(agent.to_owned());
        }
        if record.handled_by.last().map(String::as_str) != Some(agent) {
            record.handled_by.push(agent.to_owned());
        }
    }
}
