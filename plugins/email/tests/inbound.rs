//! Inbound mail: real RFC 5322 fixtures, stdin, Maildir, and the events
//! they become.

use std::io::{self, Read};

use casework_core::Timestamp;
use casework_core::case::Channel;
use casework_core::event::{Event, Payload};
use casework_email::inbound::{self, InboundError};

use crate::util::{TempDir, fixture};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn plain_quoted_printable_message() {
    let m = inbound::parse(&fixture("plain.eml")).unwrap();
    assert_eq!(m.from.as_deref(), Some("jo@example.com"));
    assert_eq!(m.from_name.as_deref(), Some("Jo Tanaka"));
    assert_eq!(m.to, vec!["support@shop.example".to_owned()]);
    assert_eq!(m.subject.as_deref(), Some("Where is my table?"));
    assert_eq!(
        m.message_id.as_deref(),
        Some("<CAJo.1234@mail.example.com>")
    );
    assert_eq!(
        m.text,
        "Hello,\n\nI ordered the oak table (order O-77) — can you tell me when it will arrive? The rental house is free Jan 5–8 only.\n\nThanks,\nJo"
    );
    assert_eq!(m.date, Some(at("2026-11-25T10:00:00+09:00")));
    assert!(m.in_reply_to.is_empty() && m.references.is_empty());
    assert!(!m.auto_submitted);
    assert_eq!(m.case_tag(), None);
}

#[test]
fn multipart_alternative_prefers_the_plain_part() {
    let m = inbound::parse(&fixture("multipart_html.eml")).unwrap();
    assert_eq!(m.from.as_deref(), Some("mika@example.net"));
    assert_eq!(m.from_name.as_deref(), Some("Mika Sato"));
    assert_eq!(
        m.text,
        "The jacket I received is size M, I ordered L (order O-81).\nPlease exchange it."
    );
    assert!(!m.text.contains('<'), "{}", m.text);
}

#[test]
fn html_only_message_is_stripped_to_text() {
    let m = inbound::parse(&fixture("html_only.eml")).unwrap();
    assert!(
        !m.text.contains('<') && !m.text.contains("color"),
        "{:?}",
        m.text
    );
    assert!(
        m.text.contains("My card was charged twice for order O-90."),
        "{:?}",
        m.text
    );
    assert!(
        m.text.contains("Please refund one charge & confirm."),
        "{:?}",
        m.text
    );
    assert_eq!(m.date, Some(at("2026-11-27T11:00:00+00:00")));
}

#[test]
fn warehouse_reply_threads_back_to_the_case() {
    let m = inbound::parse(&fixture("warehouse_reply.eml")).unwrap();
    assert_eq!(m.from.as_deref(), Some("dispatch@warehouse.shop.example"));
    assert_eq!(
        m.in_reply_to,
        vec!["<E-3=2F0@cases.shop.example>".to_owned()]
    );
    assert_eq!(
        m.references,
        vec![
            "<CAJo.1234@mail.example.com>".to_owned(),
            "<E-3=2F0@cases.shop.example>".to_owned()
        ]
    );
    // Most specific first, no repeats.
    assert_eq!(
        m.thread(),
        vec![
            "<E-3=2F0@cases.shop.example>".to_owned(),
            "<CAJo.1234@mail.example.com>".to_owned()
        ]
    );

    let e = m.to_event(at("2026-12-10T08:31:00+09:00"));
    assert_eq!(e.kind.as_str(), "email.received");
    assert_eq!(e.id.as_str(), "email:wh-5521@warehouse.shop.example");
    assert_eq!(e.at, at("2026-12-10T08:31:00+09:00"));
    assert_eq!(e.case.as_ref().map(|c| c.as_str()), Some("C-1"));
    assert_eq!(e.in_reply_to, m.thread());
    assert_eq!(e.text("channel"), Some("email"));
    assert_eq!(e.text("from"), Some("dispatch@warehouse.shop.example"));
    assert_eq!(
        e.text("subject"),
        Some("Re: [C-1] Hold order O-77 until Jan 5")
    );
    assert_eq!(
        e.text("message_id"),
        Some("<wh-5521@warehouse.shop.example>")
    );
    assert_eq!(e.text("date"), Some("2026-12-10T08:30:00+09:00"));
    assert!(
        e.text("text")
            .unwrap()
            .starts_with("Held. The table will ship on Jan 4")
    );

    // The core reads it as an inbound message on the e-mail channel.
    match e.payload().unwrap() {
        Payload::Inbound(i) => {
            assert_eq!(i.channel, Some(Channel::Email));
            assert_eq!(i.from.as_deref(), Some("dispatch@warehouse.shop.example"));
            assert_eq!(
                i.message_id.as_deref(),
                Some("<wh-5521@warehouse.shop.example>")
            );
            assert!(i.customer.is_none(), "a colleague is not made the customer");
        }
        other => panic!("{other:?}"),
    }
    // And it survives the JSON Lines form events travel in.
    let line = serde_json::to_string(&e).unwrap();
    assert_eq!(Event::from_json(&line).unwrap(), e);
}

#[test]
fn japanese_iso_2022_jp() {
    let m = inbound::parse(&fixture("japanese_iso2022jp.eml")).unwrap();
    assert_eq!(m.subject.as_deref(), Some("ご注文の件 [C-12]"));
    assert_eq!(m.from_name.as_deref(), Some("田中 ジョー"));
    assert_eq!(m.text, "至急の納期を希望します。\n注文番号は O-77 です。");
    let e = m.to_event(at("2026-11-25T10:06:00+09:00"));
    assert_eq!(e.case.as_ref().map(|c| c.as_str()), Some("C-12"));
}

#[test]
fn japanese_utf8_encoded_words_and_base64_body() {
    let m = inbound::parse(&fixture("japanese_utf8.eml")).unwrap();
    assert_eq!(m.subject.as_deref(), Some("配送日の変更について"));
    assert_eq!(m.from_name.as_deref(), Some("佐藤 美香"));
    assert_eq!(m.text, "1月6日に届けてください。\nよろしくお願いします。");
    let e = m.to_event(at("2026-11-25T11:01:00+09:00"));
    assert_eq!(
        e.case, None,
        "no tag, no case: the engine correlates by other keys"
    );
}

#[test]
fn auto_replies_are_marked() {
    let m = inbound::parse(&fixture("auto_reply.eml")).unwrap();
    assert!(m.auto_submitted);
    let e = m.to_event(at("2026-12-10T08:02:00+09:00"));
    assert_eq!(
        e.data.get("auto_submitted"),
        Some(&serde_json::Value::Bool(true))
    );
}

#[test]
fn a_message_without_message_id_gets_a_content_id() {
    let raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
    let m = inbound::parse(raw).unwrap();
    assert_eq!(m.message_id, None);
    let id = m.to_event(at("2026-12-01T00:00:00Z")).id;
    assert!(id.as_str().starts_with("email:sha256:"), "{id}");
    // Same bytes, same id: a redelivery is recognisable.
    assert_eq!(inbound::parse(raw).unwrap().event_id(), id.as_str());
    let other = inbound::parse(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody 2\r\n").unwrap();
    assert_ne!(other.event_id(), id.as_str());
}

#[test]
fn reading_one_message_from_a_pipe() {
    let m = inbound::read_from(io::Cursor::new(fixture("warehouse_reply.eml"))).unwrap();
    assert_eq!(
        m.message_id.as_deref(),
        Some("<wh-5521@warehouse.shop.example>")
    );

    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
        }
    }
    let e = inbound::read_from(Broken).unwrap_err();
    assert!(matches!(e, InboundError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("pipe closed"));

    let e = inbound::read_from(io::empty()).unwrap_err();
    assert!(matches!(e, InboundError::NotAMessage { .. }), "{e:?}");

    let huge = io::repeat(b'a').take(inbound::MAX_MESSAGE_BYTES + 10);
    let e = inbound::read_from(huge).unwrap_err();
    assert!(matches!(e, InboundError::TooLarge { .. }), "{e:?}");
}

#[test]
fn a_maildir_is_read_from_new_and_cur() {
    let dir = TempDir::new("maildir");
    let md = &dir.0;
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir(md.join(sub)).unwrap();
    }
    let put = |sub: &str, name: &str, bytes: &[u8]| {
        std::fs::write(md.join(sub).join(name), bytes).unwrap()
    };
    put("new", "1764032400.M1P1.host", &fixture("plain.eml"));
    put(
        "new",
        "1764032500.M2P1.host",
        &fixture("japanese_iso2022jp.eml"),
    );
    put("new", "1764032600.M3P1.host", b"");
    put("new", ".hidden", &fixture("plain.eml"));
    put(
        "cur",
        "1764000000.M0P1.host:2,S",
        &fixture("warehouse_reply.eml"),
    );
    put("tmp", "1764032700.M4P1.host", &fixture("plain.eml"));

    let results = inbound::read_maildir(md);
    assert_eq!(results.len(), 4, "{results:?}");
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let subjects: Vec<_> = ok.iter().map(|(_, m)| m.subject.clone().unwrap()).collect();
    assert_eq!(
        subjects,
        vec![
            "Re: [C-1] Hold order O-77 until Jan 5".to_owned(),
            "Where is my table?".to_owned(),
            "ご注文の件 [C-12]".to_owned(),
        ]
    );
    let bad: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].to_string().contains("1764032600.M3P1.host"),
        "{}",
        bad[0]
    );

    // Once handled, a message moves to cur/ and is not read from new/ again.
    let (first, _) = ok[1];
    let moved = inbound::mark_seen(first).unwrap();
    assert_eq!(moved, md.join("cur").join("1764032400.M1P1.host:2,S"));
    assert!(!first.exists());
    let again = inbound::read_maildir(md);
    assert_eq!(again.len(), 4);
    assert!(again.iter().flatten().any(|(p, _)| *p == moved));

    // The unseen ones only: new/ and cur/ entries without the S flag.
    put("cur", "1764032800.M5P1.host:2,", &fixture("plain.eml"));
    let unseen = inbound::read_maildir_unseen(md);
    let names: Vec<String> = unseen
        .iter()
        .map(|r| match r {
            Ok((p, _)) => p.file_name().unwrap().to_string_lossy().into_owned(),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "1764032500.M2P1.host");
    assert!(names[1].contains("1764032600.M3P1.host"), "{names:?}");
    assert_eq!(names[2], "1764032800.M5P1.host:2,");
    assert!(inbound::is_seen(&moved));
    assert!(!inbound::is_seen(
        &md.join("new").join("1764032500.M2P1.host")
    ));
}

#[test]
fn a_directory_that_is_not_a_maildir_says_so() {
    let dir = TempDir::new("notmaildir");
    let results = inbound::read_maildir(&dir.0);
    assert_eq!(results.len(), 1);
    let e = results[0].as_ref().unwrap_err();
    assert!(matches!(e, InboundError::NotMaildir { .. }), "{e:?}");
}
