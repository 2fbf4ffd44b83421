//! Telling teams and agents: chat webhooks, e-mail through the e-mail
//! plugin, and clear failures for what cannot be done.

use casework_core::config::DirectoryDef;
use casework_core::plugin::Plugin;
use casework_http::NotifyPlugin;
use serde_json::json;

use crate::outbound::action;
use crate::server::{Answer, TestServer, closed_port};

fn directory(chat_url: &str) -> DirectoryDef {
    serde_json::from_value(json!({
        "fallback": "support",
        "teams": {
            "support": {
                "channel": "chat", "webhook": chat_url, "email": "support@example.com",
                "supervisor": "daichi",
                "agents": { "daichi": { "name": "Daichi Ono" }, "emi": { "channel": "email" } }
            },
            "billing": { "channel": "email", "email": "billing@example.com", "agents": {} },
            "warehouse": { "channel": "phone", "phone": "+81-3-0000-1001", "agents": {} },
            "sales": { "channel": "phone", "email": "sales@example.com", "agents": {} }
        }
    }))
    .unwrap()
}

fn settings(v: serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn notify_over_chat_posts_the_text_to_the_team_webhook() {
    let server = TestServer::start(|_, _| Answer::new(200, "ok"));
    let team = NotifyPlugin::from_settings(
        "team",
        &settings(json!({})),
        directory(&format!("{}/hooks/support", server.url)),
    )
    .unwrap();
    let done = team
        .execute(&action(
            "n-1",
            "team.notify",
            json!({"team": "support", "text": "Order A-1001 is late"}),
        ))
        .unwrap();
    assert_eq!(done.result["channel"], "chat");
    assert_eq!(done.result["team"], "support");
    // The supervisor, named in the message; no team given: the fallback.
    team.execute(&action(
        "n-2",
        "team.notify",
        json!({"to": "supervisor", "template": "warehouse_silent"}),
    ))
    .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/hooks/support");
    assert_eq!(reqs[0].body, json!({"text": "Order A-1001 is late"}));
    assert_eq!(
        reqs[1].body,
        json!({"text": "@Daichi Ono: Case C-1: warehouse_silent"})
    );
}

#[test]
fn notify_by_email_without_an_email_plugin_fails_clearly() {
    let team = NotifyPlugin::from_settings(
        "team",
        &settings(json!({})),
        directory("http://127.0.0.1:9/x"),
    )
    .unwrap();
    let err = team
        .execute(&action(
            "n-1",
            "team.notify",
            json!({"team": "billing", "text": "refund?"}),
        ))
        .unwrap_err();
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("billing@example.com"), "{msg}");
    assert!(msg.contains("`email:`"), "{msg}");
    // An agent who prefers e-mail, on a chat team: e-mail too.
    let err = team
        .execute(&action("n-2", "team.notify", json!({"agent": "emi"})))
        .unwrap_err();
    assert!(err.to_string().contains("support@example.com"), "{err}");
    // Phone cannot be automated; with no address there is nothing to do.
    let err = team
        .execute(&action("n-3", "team.notify", json!({"team": "warehouse"})))
        .unwrap_err();
    assert!(
        err.to_string().contains("channel phone cannot be reached"),
        "{err}"
    );
    // Unknown names and bad params are permanent and say what is wrong.
    for (params, needle) in [
        (
            json!({"team": "legal"}),
            "team `legal` is not in the directory",
        ),
        (json!({"agent": "nobody"}), "agent `nobody`"),
        (
            json!({"team": "billing", "to": "supervisor"}),
            "names no supervisor",
        ),
        (json!({"to": "everyone"}), "`supervisor`"),
    ] {
        let err = team
            .execute(&action("n-4", "team.notify", params))
            .unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn notify_by_email_hands_off_to_the_email_plugin() {
    // The SMTP server is down: the hand-off happened, and the e-mail
    // plugin's transient failure comes back as transient.
    let port = closed_port();
    let team = NotifyPlugin::from_settings(
        "team",
        &settings(json!({
            "email": {
                "host": "127.0.0.1", "port": port, "security": "none", "timeout": "2s",
                "from": "Casework <casework@example.com>", "reply_domain": "cases.example.com",
                "templates": { "notify": { "subject": "Case {{ case }}", "body": "{{ text }}" } }
            }
        })),
        directory("http://127.0.0.1:9/x"),
    )
    .unwrap();
    let err = team
        .execute(&action(
            "n-1",
            "team.notify",
            json!({"team": "sales", "text": "call back"}),
        ))
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    // A template the e-mail settings lack is permanent, and named.
    let err = team
        .execute(&action(
            "n-2",
            "team.notify",
            json!({"team": "billing", "template": "nope"}),
        ))
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}
