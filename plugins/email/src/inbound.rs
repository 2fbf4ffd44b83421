//! Inbound mail: raw RFC 5322 messages turned into `email.received`
//! events.
//!
//! Mail arrives three ways, all ending in [`parse`]:
//!
//! - piped by the MTA, one message on standard input ([`read_from`],
//!   e.g. a Postfix `pipe` transport or a `.forward` with `|casework ...`);
//! - dropped in a Maildir, read with [`read_maildir`] (then
//!   [`mark_seen`] moves a message from `new/` to `cur/`;
//!   [`read_maildir_unseen`] skips what was marked);
//! - any other way that yields bytes.
//!
//! The event's id comes from the Message-ID (or, without one, from a hash
//! of the message), so a message delivered twice is handled once.
//! Threading comes from In-Reply-To and References, and from a `[C-…]`
//! tag in the subject, which casework puts in every message it sends.

use std::io::Read;
use std::path::{Path, PathBuf};

use mail_parser::MessageParser;
use serde::Serialize;
use sha2::{Digest, Sha256};

use casework_core::Timestamp;
use casework_core::case::CaseId;
use casework_core::event::Event;

/// The largest message [`read_from`] and [`read_maildir`] accept.
pub const MAX_MESSAGE_BYTES: u64 = 32 * 1024 * 1024;

/// The longest body text kept in an event, in characters; the rest is
/// cut (and the event says so), so one pasted log file cannot bloat a case.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboundError {
    /// The bytes are not an e-mail message.
    #[error("not an e-mail message: {reason}")]
    NotAMessage { reason: String },
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message larger than {limit} bytes; refused")]
    TooLarge { limit: u64 },
    /// Reading failed.
    #[error("cannot read {what}: {message}")]
    Io { what: String, message: String },
    /// The directory has neither `new/` nor `cur/`.
    #[error(
        "{path} is not a Maildir (it has no `new/` or `cur/` directory); point at the Maildir itself"
    )]
    NotMaildir { path: String },
    /// A problem with one file of a Maildir.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<InboundError>,
    },
}

/// One received message, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundEmail {
    /// The sender's address (`jo@example.com`), as written.
    pub from: Option<String>,
    /// The sender's display name (`Jo Tanaka`), if given.
    pub from_name: Option<String>,
    /// The `To` addresses.
    pub to: Vec<String>,
    /// The decoded subject (RFC 2047 encoded words, any charset).
    pub subject: Option<String>,
    /// The text: the text/plain body, else the HTML body as text; line
    /// endings are `\n`.
    pub text: String,
    /// True when the text was cut at [`MAX_TEXT_CHARS`].
    pub truncated: bool,
    /// `<id@host>`, angle brackets included.
    pub message_id: Option<String>,
    /// The In-Reply-To ids, `<...>` form.
    pub in_reply_to: Vec<String>,
    /// The References ids, oldest first, `<...>` form.
    pub references: Vec<String>,
    /// The Date header.
    pub date: Option<Timestamp>,
    /// Sent by a machine (RFC 3834 `Auto-Submitted` other than `no`):
    /// out-of-office replies, bounces. Rules may want to ignore these.
    pub auto_submitted: bool,
    /// SHA-256 of the raw bytes, hex: the event id when there is no
    /// Message-ID.
    pub digest: String,
}

/// Parse one raw message.
///
/// A leading mbox `From ` line (added by some MTA pipes) is skipped. Only
/// bytes with no header at all are refused; a message without `From` or
/// `Message-ID` still parses, with those fields empty.
pub fn parse(raw: &[u8]) -> Result<InboundEmail, InboundError> {
    let raw = skip_mbox_from_line(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(InboundError::NotAMessage {
            reason: "it is empty".to_owned(),
        });
    }
    if !starts_with_header_line(raw) {
        return Err(InboundError::NotAMessage {
            reason: "it does not begin with a header line (`Name: value`, e.g. `From: ...`)"
                .to_owned(),
        });
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| InboundError::NotAMessage {
            reason: "no headers could be parsed".to_owned(),
        })?;
    if msg.headers().is_empty() {
        return Err(InboundError::NotAMessage {
            reason: "it has no header lines".to_owned(),
        });
    }

    let sender = msg.from().and_then(|a| a.first());
    let from = sender
        .and_then(|a| a.address())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let from_name = sender
        .and_then(|a| a.name())
        .map(clean_line)
        .filter(|s| !s.is_empty());
    let to = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let subject = msg.subject().map(clean_line);

    let mut text = String::new();
    for part in msg.text_bodies() {
        let piece = match &part.body {
            mail_parser::PartType::Text(t) => t.to_string(),
            mail_parser::PartType::Html(h) => mail_parser::decoders::html::html_to_text(h),
            _ => continue,
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    let text = normalize_newlines(&text);
    let (text, truncated) = cut(text.trim_end().to_owned(), MAX_TEXT_CHARS);

    let message_id = msg.message_id().and_then(bracket);
    let in_reply_to = id_list(msg.in_reply_to());
    let references = id_list(msg.references());
    let date = msg
        .date()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok());
    let auto_submitted = msg
        .header_raw("Auto-Submitted")
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| !v.is_empty() && !v.starts_with("no"));

    let digest = Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    Ok(InboundEmail {
        from,
        from_name,
        to,
        subject,
        text,
        truncated,
        message_id,
        in_reply_to,
        references,
        date,
        auto_submitted,
        digest,
    })
}

/// Read one message from `input` (standard input, as an MTA pipe delivers
/// it) and parse it.
pub fn read_from(input: impl Read) -> Result<InboundEmail, InboundError> {
    let raw = read_limited(input, "the input")?;
    parse(&raw)
}

/// Read every message in a Maildir's `new/` and `cur/` (not `tmp/`, where
/// messages are still being written), in arrival order (Maildir file
/// names start with the delivery time). Each result names its file, so one
/// bad message does not hide the others.
pub fn read_maildir(dir: impl AsRef<Path>) -> Vec<Result<(PathBuf, InboundEmail), InboundError>> {
    read_maildir_where(dir.as_ref(), |_| true)
}

/// Like [`read_maildir`], but only the messages not yet handled: all of
/// `new/`, and the entries of `cur/` without the seen (`S`) flag (a mail
/// client may have moved a message to `cur/` without reading it). With
/// [`mark_seen`] after each commit this is the intake loop: a crash
/// between the two reads a message again, and its event id (from the
/// Message-ID) makes the second delivery a duplicate.
pub fn read_maildir_unseen(
    dir: impl AsRef<Path>,
) -> Vec<Result<(PathBuf, InboundEmail), InboundError>> {
    read_maildir_where(dir.as_ref(), |path| !is_seen(path))
}

/// True for a Maildir file name whose flags (after `:2,`) include `S`.
pub fn is_seen(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once(":2,"))
        .is_some_and(|(_, flags)| flags.contains('S'))
}

fn read_maildir_where(
    dir: &Path,
    keep: impl Fn(&Path) -> bool,
) -> Vec<Result<(PathBuf, InboundEmail), InboundError>> {
    let subdirs: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .map(|s| dir.join(s))
        .filter(|p| p.is_dir())
        .collect();
    if subdirs.is_empty() {
        return vec![Err(InboundError::NotMaildir {
            path: dir.display().to_string(),
        })];
    }
    let mut out = Vec::new();
    let mut files: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
    for sub in subdirs {
        match std::fs::read_dir(&sub) {
            Ok(entries) => files.extend(
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| (e.file_name(), e.path())),
            ),
            Err(e) => out.push(Err(InboundError::Io {
                what: sub.display().to_string(),
                message: e.to_string(),
            })),
        }
    }
    // Maildir names start with the delivery time, so name order across
    // new/ and cur/ is arrival order.
    files.sort();
    for (_, path) in files.into_iter().filter(|(_, p)| keep(p)) {
        let result = std::fs::File::open(&path)
            .map_err(|e| InboundError::Io {
                what: "the file".to_owned(),
                message: e.to_string(),
            })
            .and_then(|f| read_limited(f, "the file"))
            .and_then(|raw| parse(&raw));
        out.push(match result {
            Ok(mail) => Ok((path, mail)),
            Err(e) => Err(InboundError::File {
                path: path.display().to_string(),
                source: Box::new(e),
            }),
        });
    }
    out
}

/// Move a message from a Maildir's `new/` to `cur/`, flagged seen
/// (`:2,S`), once its event was accepted. A message already in `cur/`
/// gets the `S` flag added. Returns the new path.
pub fn mark_seen(path: impl AsRef<Path>) -> std::io::Result<PathBuf> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("not a Maildir message file name"))?;
    let maildir = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| std::io::Error::other("not inside a Maildir's new/ or cur/"))?;
    let (base, flags) = match name.split_once(":2,") {
        Some((b, f)) => (b, f.to_owned()),
        None => (name, String::new()),
    };
    let mut flags: Vec<char> = flags.chars().collect();
    if !flags.contains(&'S') {
        flags.push('S');
    }
    flags.sort_unstable();
    let flags: String = flags.into_iter().collect();
    let target = maildir.join("cur").join(format!("{base}:2,{flags}"));
    std::fs::rename(path, &target)?;
    Ok(target)
}

impl InboundEmail {
    /// The case named by a `[C-…]` tag in the subject, if any.
    pub fn case_tag(&self) -> Option<CaseId> {
        self.subject.as_deref().and_then(case_tag)
    }

    /// The ids this message answers, most specific first: In-Reply-To,
    /// then References newest to oldest, without repeats.
    pub fn thread(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    /// The id of the event for this message: from the Message-ID, else
    /// from the content, so the same message read twice is one event.
    pub fn event_id(&self) -> String {
        match &self.message_id {
            Some(mid) => format!(
                "email:{}",
                mid.trim_start_matches('<').trim_end_matches('>')
            ),
            None => format!("email:sha256:{}", &self.digest[..self.digest.len().min(32)]),
        }
    }

    /// The `email.received` event for this message, received at
    /// `received_at` (the shell's clock, not the sender's Date header,
    /// which is kept as `date`).
    pub fn to_event(&self, received_at: Timestamp) -> Event {
        let mut event = Event::new(
            self.event_id(),
            received_at,
            "email.received",
            self.case_tag(),
        );
        event.in_reply_to = self.thread();
        let data = &mut event.data;
        let text = |s: &str| serde_json::Value::String(s.to_owned());
        data.insert("channel".into(), text("email"));
        if let Some(from) = self.from.as_deref().or(self.from_name.as_deref()) {
            data.insert("from".into(), text(from));
        }
        if let Some(name) = &self.from_name {
            data.insert("from_name".into(), text(name));
        }
        if !self.to.is_empty() {
            data.insert("to".into(), serde_json::json!(self.to));
        }
        if let Some(s) = &self.subject {
            data.insert("subject".into(), text(s));
        }
        data.insert("text".into(), text(&self.text));
        if self.truncated {
            data.insert("truncated".into(), serde_json::Value::Bool(true));
        }
        if let Some(mid) = &self.message_id {
            data.insert("message_id".into(), text(mid));
        }
        if let Some(d) = &self.date {
            data.insert("date".into(), text(&d.to_rfc3339()));
        }
        if self.auto_submitted {
            data.insert("auto_submitted".into(), serde_json::Value::Bool(true));
        }
        event
    }
}

/// The first `[C-…]` tag in a subject: `C-` followed by letters, digits,
/// `-`, `_` or `.`, then `]`.
pub fn case_tag(subject: &str) -> Option<CaseId> {
    let mut rest = subject;
    while let Some(start) = rest.find("[C-") {
        let after = &rest[start + 1..];
        let end = after
            .char_indices()
            .skip(2)
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        if let Some((i, ']')) = end
            && i > 2
        {
            return Some(CaseId::from(&after[..i]));
        }
        rest = &rest[start + 1..];
    }
    None
}

/// RFC 5322 2.2: a message begins with a header field, a name of
/// printable US-ASCII other than `:`, then `:`. (mail-parser accepts
/// nearly anything; binary junk piped by mistake must be refused.)
fn starts_with_header_line(raw: &[u8]) -> bool {
    let name_len = raw
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && b != b':')
        .count();
    name_len > 0 && raw.get(name_len) == Some(&b':')
}

fn skip_mbox_from_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => &[],
        }
    } else {
        raw
    }
}

fn read_limited(input: impl Read, what: &str) -> Result<Vec<u8>, InboundError> {
    let mut raw = Vec::new();
    input
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| InboundError::Io {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if raw.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(InboundError::TooLarge {
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(raw)
}

/// `<id>` form of a parsed id (mail-parser strips the brackets).
fn bracket(id: &str) -> Option<String> {
    let inner = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!inner.is_empty() && !inner.chars().any(|c| c.is_control() || c.is_whitespace()))
        .then(|| format!("<{inner}>"))
}

fn id_list(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .map(|l| l.iter().filter_map(|s| bracket(s)).collect())
        .unwrap_or_default()
}

/// Header text on one line: folded whitespace and stray control
/// characters become single spaces.
fn clean_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn cut(s: String, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_owned(), true),
        None => (s, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_tags() {
        assert_eq!(case_tag("Re: [C-1] Your order"), Some(CaseId::from("C-1")));
        assert_eq!(
            case_tag("AW: Re: [C-2026-001]"),
            Some(CaseId::from("C-2026-001"))
        );
        assert_eq!(case_tag("[C-] x [C-7]"), Some(CaseId::from("C-7")));
        assert_eq!(case_tag("[C-1 x]"), None);
        assert_eq!(case_tag("C-1"), None);
        assert_eq!(case_tag("[C-"), None);
        assert_eq!(case_tag("[C-é]"), None);
        assert_eq!(case_tag("【注文】[C-9]"), Some(CaseId::from("C-9")));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"").is_err());
        assert!(parse(b"   \r\n").is_err());
        for raw in [
            &b"\xff\xfe\x00"[..],
            b"From x\n",
            b"Subject",
            b":::\r\n\r\n",
            b"\r\n\r\nbody",
        ] {
            let _ = parse(raw);
        }
    }

    #[test]
    fn bytes_that_do_not_begin_with_a_header_are_refused() {
        for raw in [
            &b"\x00\x01garbage"[..],
            b"hello world\n\nbody",
            b": no name\n",
            b"\r\n\r\nbody",
            b"Subject",
        ] {
            let e = parse(raw).unwrap_err();
            assert!(e.to_string().contains("header line"), "{raw:?}: {e}");
        }
        assert!(parse(b"X-Anything: 1\n\nbody").is_ok());
    }

    #[test]
    fn mbox_from_line_is_skipped() {
        let m = parse(b"From jo@example.com Mon Nov 23 10:00:00 2026\nFrom: jo@example.com\nSubject: hi\n\nbody\n").unwrap();
        assert_eq!(m.from.as_deref(), Some("jo@example.com"));
        assert_eq!(m.text, "body");
    }

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        let (s, cut_) = cut("日本語テキスト".to_owned(), 3);
        assert_eq!((s.as_str(), cut_), ("日本語", true));
        let (s, cut_) = cut("abc".to_owned(), 3);
        assert_eq!((s.as_str(), cut_), ("abc", false));
    }
}
