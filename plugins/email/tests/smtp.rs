//! Outbound mail through a real SMTP server on loopback.

use std::time::{Duration, Instant};

use casework_email::{EmailConfig, EmailError, EmailPlugin, inbound};

use crate::util::{
    Refuse, TestServer, action, closed_port, plugin, promise_params, settings, silent_server,
};

#[test]
fn sends_the_rendered_template_with_threading_headers() {
    let server = TestServer::start();
    let plugin = plugin(server.port);
    let sent = plugin.send(&action("E-3/0", promise_params())).unwrap();

    assert_eq!(sent.message_id, "<E-3=2F0@cases.shop.example>");
    assert_eq!(sent.subject, "[C-1] About your order O-77");
    assert_eq!(sent.case.as_str(), "C-1");
    assert!(sent.smtp_reply.starts_with("250"), "{}", sent.smtp_reply);

    let got = server.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, "support@shop.example");
    assert_eq!(m.rcpt_to, vec!["jo@example.com".to_owned()]);
    let head = m.header_block();
    for line in [
        "Message-ID: <E-3=2F0@cases.shop.example>",
        "X-Casework-Case: C-1",
        "Subject: [C-1] About your order O-77",
        "From: \"Shop Support\" <support@shop.example>",
        "To: \"Jo Tanaka\" <jo@example.com>",
        "Auto-Submitted: auto-generated",
        "Content-Type: text/plain; charset=utf-8",
    ] {
        assert!(
            head.lines().any(|l| l == line),
            "missing `{line}` in:\n{head}"
        );
    }
    assert!(head.lines().any(|l| l.starts_with("Date: ")), "{head}");

    // Read back the way a reply would be read: the body is the template.
    let parsed = inbound::parse(&m.data).unwrap();
    assert_eq!(
        parsed.message_id.as_deref(),
        Some("<E-3=2F0@cases.shop.example>")
    );
    assert_eq!(
        parsed.text,
        "Dear Jo,\n\nyour order O-77 is planned to ship before the date we promised\n(2027-01-06). We have asked the warehouse to hold it.\n\nShop Support"
    );
    assert_eq!(parsed.case_tag().map(|c| c.0), Some("C-1".to_owned()));
}

#[test]
fn subject_tag_is_not_doubled_and_in_reply_to_threads() {
    let server = TestServer::start();
    let plugin = plugin(server.port);
    let params = serde_json::json!({
        "to": "jo@example.com",
        "template": "tagged",
        "text": "we called the carrier",
        "in_reply_to": ["CAJo.1234@mail.example.com", "<wh-5521@warehouse.shop.example>"],
    });
    let sent = plugin.send(&action("E-9/1", params)).unwrap();
    assert_eq!(sent.subject, "[C-1] Your question");
    let head = server.received()[0].header_block();
    assert!(head.contains("Subject: [C-1] Your question\r\n"), "{head}");
    assert!(
        head.contains("In-Reply-To: <wh-5521@warehouse.shop.example>\r\n"),
        "{head}"
    );
    let parsed = inbound::parse(&server.received()[0].data).unwrap();
    assert_eq!(
        parsed.references,
        vec![
            "<CAJo.1234@mail.example.com>".to_owned(),
            "<wh-5521@warehouse.shop.example>".to_owned()
        ]
    );
    assert_eq!(parsed.text, "Case C-1: we called the carrier");
}

#[test]
fn a_retried_action_keeps_its_message_id() {
    let server = TestServer::start();
    let plugin = plugin(server.port);
    let a = action("E-3/0", promise_params());
    let first = plugin.send(&a).unwrap();
    let second = plugin.send(&a).unwrap();
    assert_eq!(first.message_id, second.message_id);
    let ids: Vec<_> = server
        .received()
        .iter()
        .map(|m| inbound::parse(&m.data).unwrap().message_id)
        .collect();
    assert_eq!(ids[0], ids[1]);
    // Another action gets another id.
    let other = plugin.send(&action("E-3/1", promise_params())).unwrap();
    assert_ne!(other.message_id, first.message_id);
}

#[test]
fn a_server_that_is_down_is_a_transient_error() {
    let plugin = plugin(closed_port());
    let e = plugin.send(&action("E-1/0", promise_params())).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.smtp_code(), None);
    assert_eq!(e.action_id(), "E-1/0");
}

#[test]
fn a_server_that_never_answers_times_out_transiently() {
    let port = silent_server(Duration::from_secs(5));
    let mut s = settings(port);
    s["timeout"] = "500ms".into();
    let plugin = EmailPlugin::new(EmailConfig::from_value(s).unwrap()).unwrap();
    let started = Instant::now();
    let e = plugin.send(&action("E-1/0", promise_params())).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("no answer within 500ms"), "{e}");
    // The configured timeout is what bounds the wait, not the server.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// The outbox runner's loop in miniature: retry while transient.
fn send_with_retries(
    plugin: &EmailPlugin,
    a: &casework_core::action::Action,
    max: u32,
) -> (Vec<EmailError>, Option<casework_email::Sent>) {
    let mut errors = Vec::new();
    for _ in 0..max {
        match plugin.send(a) {
            Ok(sent) => return (errors, Some(sent)),
            Err(e) => {
                let again = e.is_transient();
                errors.push(e);
                if !again {
                    break;
                }
            }
        }
    }
    (errors, None)
}

#[test]
fn refused_twice_at_end_of_data_then_delivered_exactly_once() {
    // 421 ("closing channel") rather than 451: after a 4xx at the end of
    // DATA, mailin stays in its data state and never answers lettre's
    // QUIT, so each 451 attempt would sit out the client timeout.
    let server = TestServer::start_refusing(Some((Refuse::DataEnd(421), 2)));
    let plugin = plugin(server.port);
    let a = action("E-3/0", promise_params());
    let (errors, sent) = send_with_retries(&plugin, &a, 5);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(e.is_transient(), "{e:?}");
        assert_eq!(e.smtp_code(), Some(421));
    }
    let sent = sent.expect("delivered on the third attempt");
    assert_eq!(server.attempts(), 3);
    let got = server.received();
    assert_eq!(got.len(), 1, "delivered exactly once");
    let parsed = inbound::parse(&got[0].data).unwrap();
    assert_eq!(parsed.message_id.as_deref(), Some(sent.message_id.as_str()));
}

#[test]
fn greylisting_at_rcpt_is_transient() {
    let server = TestServer::start_refusing(Some((Refuse::Rcpt(450), 1)));
    let plugin = plugin(server.port);
    let (errors, sent) = send_with_retries(&plugin, &action("E-5/0", promise_params()), 3);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].smtp_code(), Some(450));
    assert!(sent.is_some());
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_5xx_refusal_is_permanent_and_not_retried() {
    let server = TestServer::start_refusing(Some((Refuse::Rcpt(550), 10)));
    let plugin = plugin(server.port);
    let (errors, sent) = send_with_retries(&plugin, &action("E-6/0", promise_params()), 5);
    assert!(sent.is_none());
    assert_eq!(errors.len(), 1, "a permanent error stops the loop");
    assert!(!errors[0].is_transient());
    assert_eq!(errors[0].smtp_code(), Some(550));
    assert!(errors[0].to_string().contains("refused"), "{}", errors[0]);
    assert!(server.received().is_empty());
}

#[test]
fn starttls_required_but_not_offered_is_permanent_not_a_downgrade() {
    let server = TestServer::start();
    let mut s = settings(server.port);
    s["security"] = "starttls".into();
    let plugin = EmailPlugin::new(EmailConfig::from_value(s).unwrap()).unwrap();
    let e = plugin.send(&action("E-7/0", promise_params())).unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    assert!(server.received().is_empty(), "nothing sent in clear text");
}

#[test]
fn bad_template_use_is_permanent_and_sends_nothing() {
    let server = TestServer::start();
    let plugin = plugin(server.port);

    let mut p = promise_params();
    p.as_object_mut().unwrap().remove("order");
    let e = plugin.send(&action("E-8/0", p)).unwrap_err();
    assert!(!e.is_transient());
    let msg = e.to_string();
    assert!(msg.contains("template `promise_at_risk`"), "{msg}");
    assert!(
        msg.contains("uses `order`, which the action does not pass"),
        "{msg}"
    );

    let mut p = promise_params();
    p["template"] = "promise_at_rsik".into();
    let e = plugin.send(&action("E-8/1", p)).unwrap_err();
    assert!(matches!(e, EmailError::UnknownTemplate { .. }), "{e:?}");
    assert!(e.to_string().contains("promise_at_risk, tagged"), "{e}");

    let mut p = promise_params();
    p["to"] = "not-an-address".into();
    let e = plugin.send(&action("E-8/2", p)).unwrap_err();
    assert!(
        matches!(e, EmailError::Param { ref param, .. } if param == "to"),
        "{e:?}"
    );

    let mut a = action("E-8/3", promise_params());
    a.action = "email.fax".into();
    let e = plugin.send(&a).unwrap_err();
    assert!(matches!(e, EmailError::UnsupportedAction { .. }), "{e:?}");

    assert_eq!(server.attempts(), 0);
}

#[test]
fn a_lone_dot_in_customer_text_cannot_end_the_data_early() {
    let server = TestServer::start();
    let plugin = plugin(server.port);
    let text = "first line\r\n.\r\nMAIL FROM:<evil@x.example>\r\n.\nlast line";
    let params = serde_json::json!({
        "to": "jo@example.com", "template": "tagged", "text": text,
    });
    plugin.send(&action("E-10/0", params)).unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1, "one message, no smuggled second one");
    assert_eq!(server.attempts(), 1);
    let parsed = inbound::parse(&got[0].data).unwrap();
    assert!(
        parsed.text.contains("MAIL FROM:<evil@x.example>"),
        "{}",
        parsed.text
    );
    assert!(parsed.text.ends_with("last line"), "{}", parsed.text);
}

#[test]
fn the_plugin_can_be_shared_between_runner_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<EmailPlugin>();
    let server = TestServer::start();
    let plugin = std::sync::Arc::new(plugin(server.port));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p = std::sync::Arc::clone(&plugin);
            std::thread::spawn(move || p.send(&action(&format!("E-40/{i}"), promise_params())))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let mut ids: Vec<_> = server
        .received()
        .iter()
        .map(|m| inbound::parse(&m.data).unwrap().message_id.unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..4)
            .map(|i| format!("<E-40=2F{i}@cases.shop.example>"))
            .collect::<Vec<_>>()
    );
}
