//! A case's story, for the next agent: who, what, where it landed, what
//! we promised, and every decision with the rule that made it.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::audit::{Decision, DecisionKind};
use crate::case::CaseStory;

use super::promise_text;

/// The explanation of one case, printable (`Display`) or as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The case with its whole past and every decision.
    pub case: CaseStory,
}

impl Explanation {
    pub fn new(case: CaseStory) -> Self {
        Explanation { case }
    }
}

/// One decision in one line, for timelines.
pub fn describe(d: &Decision) -> String {
    let mut s = match &d.what {
        DecisionKind::Event {
            event_kind,
            summary,
        } => match summary {
            Some(text) => format!("event {event_kind}: \"{text}\""),
            None => format!("event {event_kind}"),
        },
        DecisionKind::Route {
            team,
            agent,
            reason,
            ..
        } => match agent {
            Some(a) => format!("route → {team} ({a}): {reason}"),
            None => format!("route → {team}: {reason}"),
        },
        DecisionKind::Urgency {
            level,
            score,
            reasons,
        } if reasons.is_empty() => format!("urgency {level} (score {score})"),
        DecisionKind::Urgency {
            level,
            score,
            reasons,
        } => format!("urgency {level} (score {score}): {}", reasons.join("; ")),
        DecisionKind::Transition { from, to, on } => format!("state {from} → {to} on {on}"),
        DecisionKind::Promise {
            promise,
            status,
            reason,
            previous,
        } => match previous {
            Some(p) if p != status => format!("promise {promise} {p} → {status}: {reason}"),
            _ => format!("promise {promise} {status}: {reason}"),
        },
        DecisionKind::Action {
            action, id, params, ..
        } => format!("action {action} [{id}] {params}"),
        DecisionKind::Timer { timer, .. } => format!("timer {timer} fired"),
        DecisionKind::Sla { clock, status, due } => match due {
            Some(due) => format!("sla {clock} {status} (due {})", due.to_rfc3339()),
            None => format!("sla {clock} {status}"),
        },
        DecisionKind::Record { field, value } => format!("record {field}: {value}"),
        DecisionKind::Task {
            task,
            task_kind,
            due,
            reason,
        } => match due {
            Some(due) => format!("task {task} {task_kind} due {}: {reason}", due.to_rfc3339()),
            None => format!("task {task} {task_kind}: {reason}"),
        },
        DecisionKind::Error {
            error,
            message,
            fallback,
        } => format!("ERROR in {error}: {message} → {fallback}"),
    };
    if let Some(rule) = &d.rule {
        let line = rule.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = write!(s, "  [{}{line} {} @{}]", rule.file, rule.name, rule.hash);
    }
    s
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.case.case;
        writeln!(f, "Case {} — {}", c.id, c.state)?;
        let who = [&c.customer.name, &c.customer.email, &c.customer.phone]
            .iter()
            .filter_map(|s| s.as_deref())
            .collect::<Vec<_>>()
            .join(", ");
        if !who.is_empty() {
            let pref = c
                .customer
                .preferred_channel
                .map(|ch| format!(" (prefers {ch})"))
                .unwrap_or_default();
            writeln!(f, "  customer: {who}{pref}")?;
        }
        let a = &c.assignment;
        writeln!(
            f,
            "  assigned: {}{}{}",
            a.team.as_deref().unwrap_or("nobody"),
            a.agent
                .as_deref()
                .map(|x| format!(" / {x}"))
                .unwrap_or_default(),
            if a.hops > 0 {
                let s = if a.hops == 1 { "" } else { "s" };
                format!(" (after {} hop{s})", a.hops)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "  urgency: {} (score {}){}",
            c.urgency.level,
            c.urgency.score,
            if c.urgency.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", c.urgency.reasons.join("; "))
            }
        )?;
        writeln!(f, "  contacts: {}", c.contacts)?;

        let r = &c.record;
        writeln!(f, "\nRecord")?;
        let contact = match (&r.contact, r.contacted_at, r.channel) {
            (Some(who), Some(at), Some(ch)) => format!("{who}, {} by {ch}", at.to_rfc3339()),
            (Some(who), _, _) => who.clone(),
            _ => "—".into(),
        };
        writeln!(f, "  contact: {contact}")?;
        let fields = [
            ("taken by", &r.taken_by),
            ("complaint", &r.complaint),
            ("proposed resolution", &r.proposed_resolution),
            ("landed", &r.landed),
            ("commitment", &r.commitment),
        ];
        for (name, value) in fields {
            writeln!(f, "  {name}: {}", value.as_deref().unwrap_or("—"))?;
        }
        if !r.handled_by.is_empty() {
            writeln!(f, "  handled by: {}", r.handled_by.join(" → "))?;
        }
        for n in &r.notes {
            writeln!(f, "  note {} {}: {}", n.at.to_rfc3339(), n.agent, n.text)?;
        }

        if !c.promises.is_empty() {
            writeln!(f, "\nPromises")?;
            for p in &c.promises {
                writeln!(
                    f,
                    "  {} {} — {}: {} (made by {} {})",
                    p.id,
                    promise_text(p),
                    p.status,
                    p.reason,
                    p.made_by,
                    p.made_at.to_rfc3339()
                )?;
            }
        }
        let open: Vec<_> = c.tasks.iter().filter(|t| t.done_at.is_none()).collect();
        if !open.is_empty() {
            writeln!(f, "\nOpen tasks")?;
            for t in open {
                let due = t
                    .due_at
                    .map(|d| format!(" due {}", d.to_rfc3339()))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  {} {}{} for {}: {}",
                    t.id,
                    t.kind,
                    due,
                    t.assignee.as_deref().unwrap_or("anyone"),
                    t.reason
                )?;
            }
        }
        writeln!(f, "\nHistory")?;
        for d in &self.case.history {
            writeln!(f, "  {}  {}", d.at.to_rfc3339(), describe(d))?;
        }
        Ok(())
    }
}
