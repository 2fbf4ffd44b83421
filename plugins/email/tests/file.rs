//! `transport: file`: each message written as an `.eml` file into a
//! directory (a pickup directory), through lettre's file transport, with
//! the same Message-ID and idempotency as over SMTP.

use casework_email::{ConfigError, EmailConfig, EmailError, EmailPlugin, inbound};

use crate::util::{TempDir, action, promise_params, settings};

/// The SMTP test settings turned into a file transport into `dir`.
fn file_settings(dir: &std::path::Path) -> serde_json::Value {
    let mut v = settings(25);
    let map = v.as_object_mut().unwrap();
    for smtp_only in ["host", "port", "security"] {
        map.remove(smtp_only);
    }
    map.insert("transport".into(), "file".into());
    map.insert("dir".into(), dir.display().to_string().into());
    v
}

fn file_plugin(dir: &std::path::Path) -> EmailPlugin {
    EmailPlugin::new(EmailConfig::from_value(file_settings(dir)).unwrap()).unwrap()
}

/// The `.eml` files in `dir` (not in `tmp/`), sorted.
fn eml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_rendered_message_lands_as_a_file_with_its_headers() {
    let tmp = TempDir::new("file-send");
    // The directory does not exist yet: the plugin makes it.
    let dir = tmp.0.join("outbox-mail");
    let plugin = file_plugin(&dir);
    let sent = plugin.send(&action("E-3/0", promise_params())).unwrap();
    assert_eq!(sent.message_id, "<E-3=2F0@cases.shop.example>");
    assert!(sent.smtp_reply.is_empty());

    let files = eml_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0], dir.join("E-3=2F0.eml"));
    assert_eq!(sent.file.as_deref(), Some(files[0].to_str().unwrap()));
    let raw = std::fs::read(&files[0]).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("X-Casework-Case: C-1\r\n"), "{text}");
    assert!(
        text.contains("Auto-Submitted: auto-generated\r\n"),
        "{text}"
    );
    // What a mail client (or casework's own inbound parser) reads back.
    let mail = inbound::parse(&raw).unwrap();
    assert_eq!(
        mail.message_id.as_deref(),
        Some("<E-3=2F0@cases.shop.example>")
    );
    assert_eq!(mail.from.as_deref(), Some("support@shop.example"));
    assert_eq!(mail.to, vec!["jo@example.com".to_owned()]);
    assert_eq!(mail.subject.as_deref(), Some("[C-1] About your order O-77"));
    assert!(mail.text.contains("Dear Jo"), "{}", mail.text);
    // Nothing half-written is left behind.
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_retried_action_replaces_its_file_with_the_same_message_id() {
    let tmp = TempDir::new("file-retry");
    let plugin = file_plugin(&tmp.0);
    let a = action("E-3/0", promise_params());
    let first = plugin.send(&a).unwrap();
    let second = plugin.send(&a).unwrap();
    assert_eq!(first.message_id, second.message_id);
    assert_eq!(first.file, second.file);
    let files = eml_files(&tmp.0);
    assert_eq!(files.len(), 1, "one file per action id: {files:?}");
    let mail = inbound::parse(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(mail.message_id, Some(first.message_id.clone()));

    // Another action: another file, another Message-ID.
    let other = plugin.send(&action("E-3/1", promise_params())).unwrap();
    assert_ne!(other.message_id, first.message_id);
    assert_eq!(eml_files(&tmp.0).len(), 2);
}

#[test]
fn file_transport_needs_a_dir_and_no_smtp_host() {
    let tmp = TempDir::new("file-config");
    let mut v = file_settings(&tmp.0);
    v.as_object_mut().unwrap().remove("dir");
    let e = EmailPlugin::new(EmailConfig::from_value(v).unwrap()).unwrap_err();
    assert!(matches!(e, ConfigError::Settings { .. }), "{e:?}");
    assert!(e.to_string().contains("needs `dir:`"), "{e}");

    // SMTP without a host says how to get files instead.
    let mut v = settings(25);
    v.as_object_mut().unwrap().remove("host");
    let e = EmailPlugin::new(EmailConfig::from_value(v).unwrap()).unwrap_err();
    assert!(e.to_string().contains("`host` is missing"), "{e}");
    assert!(e.to_string().contains("transport: file"), "{e}");

    // `dir:` without `transport: file` would silently send over SMTP.
    let mut v = settings(25);
    v["dir"] = "outbox-mail".into();
    let e = EmailPlugin::new(EmailConfig::from_value(v).unwrap()).unwrap_err();
    assert!(e.to_string().contains("add `transport: file`"), "{e}");

    // Unknown transports are refused by name.
    let mut v = file_settings(&tmp.0);
    v["transport"] = "carrier-pigeon".into();
    let e = EmailConfig::from_value(v).unwrap_err().to_string();
    assert!(e.contains("unknown variant `carrier-pigeon`"), "{e}");
}

#[test]
fn an_unwritable_directory_is_a_transient_error_naming_it() {
    let tmp = TempDir::new("file-unwritable");
    // A file where the directory should be: nothing can be written there.
    let blocker = tmp.0.join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let plugin = file_plugin(&blocker);
    let e = plugin.send(&action("E-3/0", promise_params())).unwrap_err();
    assert!(matches!(e, EmailError::File { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("not-a-dir"), "{e}");
    assert!(e.to_string().contains("writable"), "{e}");
}
