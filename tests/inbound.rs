//! Inbound e-mail lands on the case it belongs to: a warehouse colleague's
//! reply, threaded by the case tag in the subject or by In-Reply-To.

use std::sync::Arc;

use casework::case::{Author, CaseId};
use casework::clock::ManualClock;
use casework::engine::{Engine, Outcome};
use casework::event::Event;
use casework_email::inbound;

fn engine() -> Engine {
    let (pack, rules) = casework::load(None).expect("default pack");
    let at = "2026-12-10T09:00:00+09:00".parse().unwrap();
    Engine::builder(pack, rules)
        .clock(Arc::new(ManualClock::new(at)))
        .build()
        .unwrap()
}

/// The case a customer's first e-mail opens.
fn customer_email(engine: &mut Engine) -> CaseId {
    let raw = b"From: Jo Tanaka <jo@example.com>\r\n\
To: support@shop.example\r\n\
Subject: Shuffleboard table\r\n\
Message-ID: <first@mail.example.com>\r\n\
Date: Thu, 10 Dec 2026 08:00:00 +0900\r\n\
\r\n\
We are only at the rental house from January 5 to 8.\r\n";
    let mail = inbound::parse(raw).unwrap();
    let event = mail.to_event("2026-12-10T08:00:00+09:00".parse().unwrap());
    let Outcome::Handled { case, .. } = engine.handle_at(event.clone(), event.at).unwrap() else {
        panic!("a new e-mail is handled");
    };
    case
}

fn colleague_reply(subject: &str, in_reply_to: &str) -> Event {
    let raw = format!(
        "From: Warehouse <warehouse@example.com>\r\n\
To: support@shop.example\r\n\
Subject: {subject}\r\n\
Message-ID: <reply-{subject_len}@wms.example.com>\r\n\
In-Reply-To: {in_reply_to}\r\n\
References: {in_reply_to}\r\n\
Date: Thu, 10 Dec 2026 09:00:00 +0900\r\n\
\r\n\
The table is held until January 4th.\r\n",
        subject_len = subject.len()
    );
    let mail = inbound::parse(raw.as_bytes()).unwrap();
    mail.to_event("2026-12-10T09:00:00+09:00".parse().unwrap())
}

#[test]
fn a_reply_threaded_by_in_reply_to_lands_on_its_case() {
    let mut engine = engine();
    let opened = customer_email(&mut engine);
    let reply = colleague_reply("Re: Shuffleboard table", "<first@mail.example.com>");
    assert!(
        reply.case.is_none(),
        "no case tag: found by In-Reply-To alone"
    );
    let Outcome::Handled { case, .. } = engine.handle_at(reply.clone(), reply.at).unwrap() else {
        panic!("the reply is handled");
    };
    assert_eq!(case, opened);
    let case = engine.case(&case).unwrap().unwrap();
    let last = case.messages.last().unwrap();
    assert_eq!(
        last.author,
        Author::Colleague,
        "the warehouse is not the customer"
    );
    assert!(last.text.contains("held until January 4th"));
    assert_eq!(
        case.contacts, 1,
        "a colleague's reply is not a customer contact"
    );
}

#[test]
fn a_reply_with_the_case_tag_lands_on_that_case() {
    let mut engine = engine();
    let open = Event::new(
        "m1",
        "2026-12-10T08:00:00+09:00".parse().unwrap(),
        "customer.message",
        Some(CaseId::from("C-100")),
    )
    .with("text", "Please hold my table")
    .with(
        "customer",
        serde_json::json!({"name": "Jo Tanaka", "email": "jo@example.com"}),
    );
    engine.handle_at(open.clone(), open.at).unwrap();
    let reply = colleague_reply("Re: [C-100] Hold order O-77", "<unknown@elsewhere.example>");
    assert_eq!(reply.case, Some(CaseId::from("C-100")));
    let Outcome::Handled { case, .. } = engine.handle_at(reply.clone(), reply.at).unwrap() else {
        panic!("the reply is handled");
    };
    assert_eq!(case, CaseId::from("C-100"));
    let case = engine.case(&case).unwrap().unwrap();
    assert!(case.messages.iter().any(
        |m| m.author == Author::Colleague && m.from.as_deref() == Some("warehouse@example.com")
    ));
}

/// A case opened by an e-mail gets a short id (its event id holds the
/// whole Message-ID), so the tag our outgoing mail carries in its subject
/// threads a reply that lost its In-Reply-To.
#[test]
fn a_case_opened_by_email_has_an_id_that_fits_a_subject_tag() {
    let mut engine = engine();
    let opened = customer_email(&mut engine);
    let id = opened.as_str();
    assert!(
        id.len() == 14 && id.starts_with("C-") && id[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let reply = colleague_reply(
        &format!("Re: [{id}] Shuffleboard table"),
        "<lost@elsewhere.example>",
    );
    assert_eq!(reply.case.as_ref(), Some(&opened), "the tag is read back");
    let Outcome::Handled { case, .. } = engine.handle_at(reply.clone(), reply.at).unwrap() else {
        panic!("the reply is handled");
    };
    assert_eq!(case, opened);
}
