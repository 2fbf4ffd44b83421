//! Customer text must never become a header or a recipient.

use proptest::prelude::*;

use casework_email::{EmailError, EmailPlugin, inbound};

use crate::util::{TestServer, action, closed_port, plugin};

/// The headers every composed message has, and no others.
const HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "message-id",
    "x-casework-case",
    "auto-submitted",
    "content-type",
    "content-transfer-encoding",
    "date",
    "mime-version",
];

fn header_names(wire: &str) -> Vec<String> {
    let head = wire.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .filter(|l| !l.starts_with(' ') && !l.starts_with('\t'))
        .map(|l| l.split(':').next().unwrap_or("").to_ascii_lowercase())
        .collect()
}

#[test]
fn crlf_in_a_subject_variable_is_folded_into_the_subject() {
    let server = TestServer::start();
    let plugin = plugin(server.port);
    let params = serde_json::json!({
        "to": "jo@example.com",
        "template": "promise_at_risk",
        "name": "Jo",
        "promised": "soon",
        "order": "O-77\r\nBcc: evil@x.example\r\n\r\nforged body",
    });
    let sent = plugin.send(&action("E-20/0", params)).unwrap();
    assert_eq!(
        sent.subject,
        "[C-1] About your order O-77 Bcc: evil@x.example forged body"
    );
    let m = &server.received()[0];
    assert_eq!(m.rcpt_to, vec!["jo@example.com".to_owned()]);
    let names = header_names(&m.text());
    assert!(!names.contains(&"bcc".to_owned()), "{names:?}");
    let parsed = inbound::parse(&m.data).unwrap();
    assert_eq!(parsed.subject.as_deref(), Some(sent.subject.as_str()));
}

#[test]
fn crlf_in_the_recipient_is_refused_before_connecting() {
    // Nothing listens: if the plugin tried to connect, the error would be
    // a transient connection error instead of a parameter error.
    let plugin = plugin(closed_port());
    for to in [
        "jo@example.com\r\nBcc: evil@x.example",
        "jo@example.com\nRCPT TO:<evil@x.example>",
        "Jo\r\n <jo@example.com>",
        "jo@example.com\u{2028}x",
        "jo@example.com, evil@x.example",
    ] {
        let params = serde_json::json!({
            "to": to, "template": "tagged", "text": "x",
        });
        let e = plugin.send(&action("E-21/0", params)).unwrap_err();
        assert!(
            matches!(e, EmailError::Param { ref param, .. } if param == "to"),
            "{to:?}: {e:?}"
        );
        assert!(!e.is_transient());
    }
}

#[test]
fn a_hostile_display_name_stays_inside_the_to_header() {
    let plugin = plugin(closed_port());
    let params = serde_json::json!({
        "to": "\"Jo: Bcc evil@x.example\" <jo@example.com>",
        "template": "tagged", "text": "x",
    });
    let mail = plugin.compose(&action("E-22/0", params)).unwrap();
    let wire = String::from_utf8(mail.formatted()).unwrap();
    let names = header_names(&wire);
    for n in &names {
        assert!(
            HEADERS.contains(&n.as_str()),
            "unexpected header {n:?} in\n{wire}"
        );
    }
    let env = mail.message().envelope();
    assert_eq!(env.to().len(), 1);
    assert_eq!(env.to()[0].to_string(), "jo@example.com");
}

fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\r\n".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n\r\n".to_owned()),
        Just("Bcc: evil@x.example".to_owned()),
        Just("\r\n.\r\n".to_owned()),
        Just("=?utf-8?q?=0D=0ABcc:_x@y?=".to_owned()),
        Just("\u{2028}".to_owned()),
        Just("\0".to_owned()),
        Just("至急".to_owned()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    proptest::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
}

fn composer() -> EmailPlugin {
    plugin(closed_port())
}

proptest! {
    // The failing input is printed on failure; there is no lib.rs next to
    // this binary for proptest to keep regression files beside.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_text_in_a_variable_adds_a_header_or_a_recipient(order in hostile_text(), name in hostile_text()) {
        let plugin = composer();
        let params = serde_json::json!({
            "to": "jo@example.com",
            "template": "promise_at_risk",
            "name": name,
            "promised": "2027-01-06",
            "order": order,
        });
        let mail = plugin.compose(&action("E-30/0", params)).unwrap();
        let wire = String::from_utf8_lossy(&mail.formatted()).into_owned();
        for n in header_names(&wire) {
            prop_assert!(HEADERS.contains(&n.as_str()), "header {:?} in\n{}", n, wire);
        }
        prop_assert!(!mail.subject.contains('\r') && !mail.subject.contains('\n'));
        prop_assert!(mail.subject.starts_with("[C-1]"));
        prop_assert_eq!(mail.message().envelope().to().len(), 1);
        // The subject survives the trip: what a reader sees is what we
        // built. (Text that itself looks like an RFC 2047 encoded word,
        // `=?utf-8?q?...?=`, is passed through as ASCII by lettre and
        // decoded by readers; it stays inside the Subject either way.)
        if !mail.subject.contains("=?") {
            let parsed = inbound::parse(&mail.formatted()).unwrap();
            prop_assert_eq!(parsed.subject.as_deref(), Some(mail.subject.as_str()));
        }
    }

    #[test]
    fn a_recipient_with_a_line_break_is_always_refused(a in "[a-z]{1,8}", b in hostile_text()) {
        prop_assume!(b.contains('\r') || b.contains('\n'));
        let plugin = composer();
        let params = serde_json::json!({
            "to": format!("{a}@example.com{b}"), "template": "tagged", "text": "x",
        });
        let refused = matches!(
            plugin.compose(&action("E-31/0", params)),
            Err(EmailError::Param { .. })
        );
        prop_assert!(refused);
    }
}
