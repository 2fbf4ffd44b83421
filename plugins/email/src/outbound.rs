//! Outbound mail: from an `email.send` action to a message on the wire.
//!
//! Three properties matter more than anything else here:
//!
//! - **A retried send is recognisable.** The Message-ID is a pure function
//!   of the action id and `reply_domain`, so the same action sent twice
//!   (after a crash between "sent" and "recorded as sent", or a timeout
//!   after the server accepted the data) carries the same Message-ID, and
//!   mail clients and the shop's archive show it once.
//! - **Replies find their case.** The case id goes in an `X-Casework-Case`
//!   header and as a `[C-1]` tag in the subject; the Message-ID is
//!   remembered by the engine, so an answer's In-Reply-To leads back too.
//! - **Customer text cannot forge headers.** Values from an action's
//!   params reach headers only through lettre's typed headers, after
//!   line breaks are removed (subject) or refused (addresses, ids).

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::{FileTransport, Transport};
use serde::Serialize;

use casework_core::action::Action;
use casework_core::case::CaseId;

use crate::error::EmailError;
use crate::template::RenderError;
use crate::{EmailPlugin, Outgoing};

/// The actions this plugin performs.
pub const ACTIONS: &[&str] = &["email.send"];

/// Params with a meaning of their own; every param (these included) is
/// also a template variable.
pub mod params {
    /// The recipient: `jo@example.com` or `Jo Tanaka <jo@example.com>`.
    pub const TO: &str = "to";
    /// The template name, a key of `templates` in the settings.
    pub const TEMPLATE: &str = "template";
    /// The case id; filled from the action when absent.
    pub const CASE: &str = "case";
    /// Optional: the Message-ID (or a list, oldest first) this mail
    /// answers, so it threads under the customer's own message.
    pub const IN_REPLY_TO: &str = "in_reply_to";
}

/// A message ready to send, with the parts worth recording.
#[derive(Clone, Debug)]
pub struct Composed {
    /// `<action-id@reply-domain>`, angle brackets included.
    pub message_id: String,
    pub case: CaseId,
    /// The recipient as it appears in the `To` header.
    pub to: String,
    /// The final subject, with the case tag.
    pub subject: String,
    /// The rendered plain-text body.
    pub body: String,
    message: Message,
}

impl Composed {
    /// The message as lettre built it.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The RFC 5322 bytes that will go over SMTP.
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }
}

/// What the runner records for a message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub action: String,
    pub case: CaseId,
    pub message_id: String,
    pub to: String,
    pub subject: String,
    /// The server's final reply, e.g. `250 OK queued as 4ABC`; empty
    /// with `transport: file`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub smtp_reply: String,
    /// With `transport: file`: the `.eml` file written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `X-Casework-Case: C-1`: which case a message belongs to, for mail
/// filters, the archive and replies whose subject tag was edited away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseHeader(pub String);

impl Header for CaseHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Casework-Case")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(CaseHeader(s.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): tells out-of-office
/// responders not to answer, so casework and an autoresponder cannot
/// e-mail each other in a loop.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The local part of a Message-ID made from an action id: ASCII letters,
/// digits, `-` and `_` are kept, every other byte becomes `=XX` (its hex
/// value). The mapping is one-to-one, so two actions never share an id,
/// and the result is a valid RFC 5322 `dot-atom-text`.
pub fn sanitize_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The Message-ID for an action: `<{sanitized action id}@{reply_domain}>`.
pub fn message_id(action_id: &str, reply_domain: &str) -> String {
    format!("<{}@{}>", sanitize_id(action_id), reply_domain)
}

/// Characters that end a header line or otherwise have no place in one.
fn is_breaking(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Fold a rendered subject onto one line: every run of line breaks, tabs
/// and other control characters becomes one space. Customer text that
/// tries `"\r\nBcc: ..."` ends up as harmless words in the subject.
pub fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if is_breaking(c) || c.is_whitespace() {
            gap = true;
        } else {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        }
    }
    out
}

/// Put `[C-1]` in front of the subject unless it already carries it.
pub fn tag_subject(subject: &str, case: &CaseId) -> String {
    let tag = format!("[{case}]");
    if subject.contains(&tag) {
        subject.to_owned()
    } else if subject.is_empty() {
        tag
    } else {
        format!("{tag} {subject}")
    }
}

/// A case id fit for a header and a subject tag.
fn check_case(action_id: &str, case: &CaseId) -> Result<(), EmailError> {
    let s = case.as_str();
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| !is_breaking(c) && !c.is_whitespace() && c != '[' && c != ']');
    if ok {
        Ok(())
    } else {
        Err(param_error(
            action_id,
            params::CASE,
            "(the action's case id) must be non-empty, at most 128 characters, without spaces, brackets or line breaks",
        ))
    }
}

fn param_error(action_id: &str, param: &str, problem: impl Into<String>) -> EmailError {
    EmailError::Param {
        action_id: action_id.to_owned(),
        param: param.to_owned(),
        problem: problem.into(),
    }
}

/// The recipient from the params: exactly one mailbox, no line breaks.
pub(crate) fn recipient(
    action_id: &str,
    value: Option<&serde_json::Value>,
) -> Result<Mailbox, EmailError> {
    let text = match value {
        None | Some(serde_json::Value::Null) => {
            return Err(param_error(
                action_id,
                params::TO,
                "is missing; pass the recipient's address",
            ));
        }
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return Err(param_error(
                action_id,
                params::TO,
                "must be text: an e-mail address",
            ));
        }
    };
    if text.chars().any(is_breaking) {
        return Err(param_error(
            action_id,
            params::TO,
            "contains a line break or control character, which could inject headers; refused",
        ));
    }
    text.trim().parse::<Mailbox>().map_err(|e| {
        param_error(
            action_id,
            params::TO,
            format!("`{text}` is not one e-mail address ({e})"),
        )
    })
}

/// Message-IDs this mail answers, brackets added; ids that could not be
/// a Message-ID are dropped (threading is a nicety; a reply must not fail
/// for it) and logged.
fn thread_ids(action_id: &str, value: Option<&serde_json::Value>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .filter_map(|s| {
            let inner = s.trim().trim_start_matches('<').trim_end_matches('>');
            let valid = inner
                .split_once('@')
                .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains('@'))
                && inner.len() <= 250
                && inner
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c));
            if valid {
                Some(format!("<{inner}>"))
            } else {
                tracing::warn!(
                    action = action_id,
                    id = s,
                    "ignoring in_reply_to value that is not a Message-ID"
                );
                None
            }
        })
        .collect()
}

impl EmailPlugin {
    /// Build the message an `email.send` action asks for, without sending
    /// it: render the template, tag the subject, set the deterministic
    /// Message-ID and the case header.
    pub fn compose(&self, action: &Action) -> Result<Composed, EmailError> {
        let id = action.id.as_str();
        if !ACTIONS.contains(&action.action.as_str()) {
            return Err(EmailError::UnsupportedAction {
                action_id: id.to_owned(),
                action: action.action.clone(),
                offered: ACTIONS.join(", "),
            });
        }
        if id.is_empty() {
            return Err(param_error(
                id,
                "id",
                "(the action id) is empty; it is what makes the Message-ID",
            ));
        }
        check_case(id, &action.case)?;
        let params = action.params.as_object().ok_or_else(|| {
            param_error(
                id,
                "params",
                "must be a map of `to`, `template` and template variables",
            )
        })?;
        let to = recipient(id, params.get(params::TO))?;
        let template = match params.get(params::TEMPLATE) {
            Some(serde_json::Value::String(t)) => t.as_str(),
            Some(_) => return Err(param_error(id, params::TEMPLATE, "must be a template name")),
            None => {
                return Err(param_error(
                    id,
                    params::TEMPLATE,
                    "is missing; name one of the configured templates",
                ));
            }
        };

        let mut ctx = params.clone();
        ctx.entry(params::CASE)
            .or_insert_with(|| serde_json::Value::String(action.case.to_string()));
        let rendered = self
            .templates
            .render(template, &serde_json::Value::Object(ctx))
            .map_err(|e| match e {
                RenderError::Unknown { known } => EmailError::UnknownTemplate {
                    action_id: id.to_owned(),
                    template: template.to_owned(),
                    known: if known.is_empty() {
                        "(none)".to_owned()
                    } else {
                        known.join(", ")
                    },
                },
                RenderError::Failed { part, message } => EmailError::Template {
                    action_id: id.to_owned(),
                    template: template.to_owned(),
                    part: part.as_str().to_owned(),
                    message,
                },
            })?;

        let subject = tag_subject(&single_line(&rendered.subject), &action.case);
        let message_id = message_id(id, &self.config.reply_domain);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject.clone())
            .message_id(Some(message_id.clone()))
            .header(CaseHeader(action.case.to_string()))
            .header(AutoSubmitted)
            .header(ContentType::TEXT_PLAIN);
        let thread = thread_ids(id, params.get(params::IN_REPLY_TO));
        if let Some(last) = thread.last() {
            builder = builder
                .in_reply_to(last.clone())
                .references(thread.join(" "));
        }
        let message = builder
            .body(rendered.body.clone())
            .map_err(|e| EmailError::Build {
                action_id: id.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Composed {
            message_id,
            case: action.case.clone(),
            to: to.to_string(),
            subject,
            body: rendered.body,
            message,
        })
    }

    /// Compose and send the message for an `email.send` action, once:
    /// over SMTP, or as a file with `transport: file`.
    ///
    /// The plugin does not retry: the outbox runner owns retries and asks
    /// [`EmailError::is_transient`] whether one is worth it. Sending the
    /// same action again produces the same Message-ID.
    pub fn send(&self, action: &Action) -> Result<Sent, EmailError> {
        let composed = self.compose(action)?;
        let (reply, file) = match &self.transport {
            Outgoing::Smtp(smtp) => {
                let response = smtp
                    .send(&composed.message)
                    .map_err(|e| EmailError::from_smtp(&action.id, &e, self.config.timeout))?;
                let reply = std::iter::once(response.code().to_string())
                    .chain(response.message().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" ");
                (reply, None)
            }
            Outgoing::File {
                dir,
                staging,
                transport,
            } => {
                let path = write_file(&action.id, dir, staging, transport, &composed.message)?;
                (String::new(), Some(path.display().to_string()))
            }
        };
        tracing::info!(
            action = %action.id,
            case = %action.case,
            message_id = %composed.message_id,
            reply = %reply,
            file = file.as_deref().unwrap_or(""),
            "e-mail sent"
        );
        Ok(Sent {
            action: action.id.clone(),
            case: composed.case,
            message_id: composed.message_id,
            to: composed.to,
            subject: composed.subject,
            smtp_reply: reply,
            file,
        })
    }
}

/// The file name of the message of action `action_id`: the Message-ID's
/// local part (one-to-one with the action id) and `.eml`.
pub fn file_name(action_id: &str) -> String {
    format!("{}.eml", sanitize_id(action_id))
}

/// Write `message` with lettre's file transport into `staging`, then
/// rename it to `dir/{file_name}`. The rename is atomic and replaces the
/// file of an earlier attempt of the same action, so a retry leaves one
/// file, with the same Message-ID, never two.
fn write_file(
    action_id: &str,
    dir: &Path,
    staging: &Path,
    transport: &FileTransport,
    message: &Message,
) -> Result<PathBuf, EmailError> {
    let fail = |message: String| EmailError::File {
        action_id: action_id.to_owned(),
        dir: dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(staging).map_err(|e| fail(e.to_string()))?;
    let id = transport.send(message).map_err(|e| fail(e.to_string()))?;
    let written = staging.join(format!("{id}.eml"));
    let target = dir.join(file_name(action_id));
    if let Err(e) = std::fs::rename(&written, &target) {
        let _ = std::fs::remove_file(&written);
        return Err(fail(e.to_string()));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_is_injective_on_tricky_ids() {
        let ids = [
            "a.b", "a=2Eb", "a/b", "a b", "a\r\nb", "évt-1", "a_b", "a-b", "<x@y>",
        ];
        let out: Vec<String> = ids.iter().map(|i| sanitize_id(i)).collect();
        let unique: std::collections::BTreeSet<&String> = out.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{out:?}");
        for o in &out {
            assert!(
                o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{o}"
            );
        }
        assert_eq!(
            message_id("E-12:0", "cases.example"),
            "<E-12=3A0@cases.example>"
        );
    }

    #[test]
    fn subject_is_folded_and_tagged_once() {
        assert_eq!(
            single_line(" Hello\r\nBcc: evil@x.example\n\tthere "),
            "Hello Bcc: evil@x.example there"
        );
        assert_eq!(single_line("a\u{2028}b\u{0}c"), "a b c");
        let c = CaseId::from("C-1");
        assert_eq!(tag_subject("Your order", &c), "[C-1] Your order");
        assert_eq!(
            tag_subject("Re: [C-1] Your order", &c),
            "Re: [C-1] Your order"
        );
        assert_eq!(tag_subject("", &c), "[C-1]");
        // A different case's tag is not ours.
        assert_eq!(tag_subject("[C-12] x", &c), "[C-1] [C-12] x");
    }

    #[test]
    fn recipient_must_be_one_clean_address() {
        let ok = |s: &str| recipient("a", Some(&serde_json::json!(s)));
        assert_eq!(
            ok("jo@example.com").unwrap().email.to_string(),
            "jo@example.com"
        );
        assert_eq!(
            ok("Jo Tanaka <jo@example.com>").unwrap().name.as_deref(),
            Some("Jo Tanaka")
        );
        for bad in [
            "jo@example.com\r\nBcc: evil@x.example",
            "jo@example.com\nBcc: evil@x.example",
            "Jo\r\n <jo@example.com>",
            "jo@example.com, evil@x.example",
            "jo@example.com evil@x.example",
            "not an address",
            "",
        ] {
            assert!(ok(bad).is_err(), "accepted {bad:?}");
        }
        assert!(recipient("a", None).is_err());
        assert!(recipient("a", Some(&serde_json::json!(["jo@example.com"]))).is_err());
    }

    #[test]
    fn thread_ids_keep_only_message_ids() {
        let v = serde_json::json!(["<a@x>", "b@y", "c@z>\r\nBcc: evil@x", "no-at", "<d@e@f>"]);
        assert_eq!(thread_ids("a", Some(&v)), vec!["<a@x>", "<b@y>"]);
    }
}
