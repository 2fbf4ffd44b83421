//! `casework serve`: events over HTTP, answered once durable; restarts
//! after SIGKILL keep what was answered 202. The HTTP client is a raw
//! `TcpStream` speaking HTTP/1.1 with `Connection: close`: enough for
//! these requests, and no client crate to build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use casework::action::Action;
use casework::engine::{Engine, Pack};
use casework::event::Event;
use casework::outbox::OutboxRunner;
use casework::plugin::{Done, Plugin, PluginError};
use casework::plugins::Plugins;
use casework::serve::App;
use serde_json::{Value, json};

use crate::util::{copy_pack, listening, root, route_everything_to, scratch};

/// A running `casework serve` and its address.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(db: &Path) -> Server {
        Server::start_with(None, db, &[])
    }

    /// `casework serve [CONFIG]` with these environment variables.
    fn start_with(config: Option<&str>, db: &Path, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_casework"));
        command.arg("serve");
        if let Some(c) = config {
            command.arg(c);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("casework serve starts");
        let addr = listening(&mut child, String::new);
        Server { child, addr }
    }

    /// One request; the status and the body as JSON.
    fn send(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.send_with(method, path, &[], body)
    }

    /// One request with extra headers.
    fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head}"));
        let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }

    fn post(&self, body: &str) -> (u16, Value) {
        self.send("POST", "/events", body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A customer's message written now: deadlines count from when the
/// customer wrote, so an old date would have timers fire during the test.
fn message(id: &str, case: &str, text: &str) -> Value {
    json!({
        "id": id,
        "at": chrono::Utc::now().to_rfc3339(),
        "kind": "customer.message",
        "case": case,
        "customer": {"name": "Jo Tanaka", "email": "jo@example.com"},
        "channel": "email",
        "text": text,
    })
}

fn statuses(body: &Value) -> Vec<&str> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

#[test]
fn serve_answers_once_durable_and_keeps_it_across_a_sigkill() {
    let dir = scratch("serve-http");
    let db = dir.join("serve.db");
    let server = Server::start(&db);

    let e1 = message("web-1", "C-200", "Where is my table?").to_string();
    let (status, body) = server.post(&e1);
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["events"][0],
        json!({"id": "web-1", "status": "accepted", "case": "C-200"})
    );

    let (status, body) = server.post(&e1);
    assert_eq!(status, 409, "{body}");
    assert_eq!(statuses(&body), ["duplicate"]);

    let (status, body) = server.post(r#"{"id": "web-x", "kind": "#);
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("malformed JSON: EOF while parsing"),
        "{error}"
    );

    let mut bogus = message("web-2", "C-200", "?");
    bogus["kind"] = json!("bogus.kind");
    let (status, body) = server.post(&bogus.to_string());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("bogus.kind"),
        "{body}"
    );
    assert_eq!(statuses(&body), ["rejected"]);

    // Not an event at all (no `at`): the serde reason, per event.
    let (status, body) = server.post(r#"{"id": "web-3", "kind": "customer.message"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing field `at`"),
        "{body}"
    );

    // A batch with a rejected event: 400, but the accepted ones are kept.
    let batch = json!([
        message("web-4", "C-201", "Two stools please"),
        message("web-1", "C-200", "again"),
        bogus,
        message("web-5", "C-202", "Refund please"),
    ]);
    let (status, body) = server.post(&batch.to_string());
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        statuses(&body),
        ["accepted", "duplicate", "rejected", "accepted"]
    );
    let batch = json!([
        message("web-6", "C-203", "Hello"),
        message("web-7", "C-204", "Hi")
    ]);
    let (status, body) = server.post(&batch.to_string());
    assert_eq!(status, 202, "{body}");
    assert_eq!(statuses(&body), ["accepted", "accepted"]);
    let (status, body) = server.post("[]");
    assert_eq!((status, body), (202, json!({"events": []})));

    let (status, health) = server.send("GET", "/health", "");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["events"], 5, "{health}");
    assert_eq!(health["rejected"], 2, "{health}");
    assert_eq!(health["store"], db.display().to_string());
    assert_eq!(health["rules_hash"].as_str().unwrap().len(), 16);
    assert!(health["outbox"]["pending"].is_number(), "{health}");

    let (status, case) = server.send("GET", "/cases/C-200", "");
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["case"]["id"], "C-200", "{case}");
    assert_eq!(server.send("GET", "/cases/C-999", "").0, 404);
    // Configured but without an implementation, and not configured.
    assert_eq!(server.send("POST", "/webhooks/carrier", "{}").0, 404);
    assert_eq!(server.send("POST", "/webhooks/nobody", "{}").0, 404);
    assert_eq!(server.send("GET", "/events", "").0, 405);
    assert_eq!(server.send("GET", "/nowhere", "").0, 404);

    // SIGKILL, then a new server on the same database.
    drop(server);
    let server = Server::start(&db);
    let (status, health) = server.send("GET", "/health", "");
    assert_eq!(status, 200);
    assert_eq!(health["events"], 5, "{health}");
    assert_eq!(server.post(&e1).0, 409);
    assert_eq!(server.send("GET", "/cases/C-201", "").0, 200);
}

/// HMAC-SHA256 of `parts` under `secret`, in hex: what a carrier sends.
fn sign(secret: &str, parts: &[&[u8]]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Signed webhooks through the real server: a good signature is
/// accepted, a missing or wrong one gets 401 and nothing is stored, and a
/// plugin whose secret's variable is unset refuses with 503 naming it.
#[test]
fn signed_webhooks_are_verified_before_anything_is_stored() {
    let dir = scratch("serve-signed");
    let secret = "whsec-test-7f3a";
    let server = Server::start_with(
        Some("tests/fixtures/signed/casework.yaml"),
        &dir.join("serve.db"),
        &[("CASEWORK_TEST_CARRIER_WEBHOOK_SECRET", secret)],
    );
    // What the store holds of the webhooks: the case's event ids that came
    // from a plugin, and the refusals recorded. (Not the store's whole
    // event count: the case's own notices run in the background, and one
    // that fails for good adds an `action.failed` event at its own time.)
    let events = |server: &Server| {
        let (_, body) = server.send("GET", "/cases/C-500", "");
        let ids: Vec<String> = body["case"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .filter(|id| id.starts_with("carrier:") || id.starts_with("warehouse:"))
            .collect();
        let (_, health) = server.send("GET", "/health", "");
        (ids, health["rejected"].clone())
    };
    let none: Vec<String> = Vec::new();
    let (status, body) = server.post(&message("m-1", "C-500", "Where is my parcel?").to_string());
    assert_eq!(status, 202, "{body}");

    let payload = r#"{"id": "eta-1", "type": "eta", "case": "C-500", "order": "O-500", "eta": "2026-11-28", "at": "2026-11-25T09:00:00+09:00"}"#;
    let good = sign(secret, &[payload.as_bytes()]);

    // No signature, a wrong one, one for another body: 401, nothing kept.
    let (status, body) = server.send("POST", "/webhooks/carrier", payload);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no `X-Carrier-Signature` header"),
        "{body}"
    );
    let wrong = sign("not-the-secret", &[payload.as_bytes()]);
    for bad in [wrong.as_str(), &good[..32], "sha256=zz"] {
        let (status, body) = server.send_with(
            "POST",
            "/webhooks/carrier",
            &[("X-Carrier-Signature", bad)],
            payload,
        );
        assert_eq!(status, 401, "{bad}: {body}");
    }
    let tampered = payload.replace("11-28", "11-29");
    let (status, _) = server.send_with(
        "POST",
        "/webhooks/carrier",
        &[("X-Carrier-Signature", &good)],
        &tampered,
    );
    assert_eq!(status, 401);
    assert_eq!(
        events(&server),
        (none, json!(0)),
        "refused webhooks store nothing"
    );

    // The right signature, GitHub-style, header name in any case.
    let (status, body) = server.send_with(
        "POST",
        "/webhooks/carrier",
        &[("x-carrier-signature", &format!("sha256={good}"))],
        payload,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["id"], "carrier:eta-1", "{body}");
    let accepted = (vec!["carrier:eta-1".to_owned()], json!(0));
    assert_eq!(events(&server), accepted);

    // The warehouse's secret is not set here: 503, naming the variable.
    let now = chrono::Utc::now().timestamp().to_string();
    let wh = r#"{"id": "wh-1", "type": "delayed", "case": "C-500", "order": "O-500", "ship_date": "2026-12-01", "at": "2026-11-25T09:00:00+09:00"}"#;
    let sig = format!(
        "t={now},v1={}",
        sign("anything", &[now.as_bytes(), b".", wh.as_bytes()])
    );
    let (status, body) = server.send_with(
        "POST",
        "/webhooks/warehouse",
        &[("X-Wms-Signature", &sig)],
        wh,
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`CASEWORK_TEST_WMS_WEBHOOK_SECRET`"),
        "{body}"
    );
    assert_eq!(events(&server), accepted);
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_refuses_big_bodies() {
    let dir = scratch("serve-sigterm");
    let mut server = Server::start(&dir.join("serve.db"));

    // Past the 1 MiB limit: 413, told by Content-Length before reading
    // (so the client need not send the body at all).
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("smaller batches"), "{answer}");

    // `stream` stays open with its body never sent: the thread that took
    // it waits for the body, and SIGTERM still stops the server (after a
    // grace of 5 s) with exit 0.
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
}

/// Turns `{"id": .., "order": .., "eta": ..}` into a `carrier.eta` event.
struct Hook;

impl Plugin for Hook {
    fn name(&self) -> &str {
        "hook"
    }

    fn execute(&self, _action: &Action) -> Result<Done, PluginError> {
        Ok(Done::default())
    }

    fn webhook(&self, body: &[u8]) -> Option<Result<Vec<Event>, PluginError>> {
        let bad = |message: String| PluginError::Permanent {
            plugin: "hook".into(),
            message,
        };
        Some(
            serde_json::from_slice::<Value>(body)
                .map_err(|e| bad(format!("not JSON: {e}")))
                .and_then(|v| {
                    let text = v["text"]
                        .as_str()
                        .ok_or_else(|| bad("no `text` in the payload".into()))?;
                    let id = v["id"].as_str().unwrap_or("hook-?");
                    let event = message(id, "C-300", text);
                    serde_json::from_value(event).map_err(|e| bad(e.to_string()))
                })
                .map(|e| vec![e]),
        )
    }
}

fn app() -> App {
    let (pack, rules) = Pack::compile(casework::load_config(None).unwrap()).unwrap();
    let engine = Engine::builder(pack, rules).build().unwrap();
    let mut plugins = Plugins::default();
    plugins.insert(Box::new(Hook));
    App::new(engine, OutboxRunner::new(plugins, "test"), "memory")
}

#[test]
fn a_webhook_payload_becomes_events_handled_like_posted_ones() {
    let app = app().max_body(200);
    let reply = app.handle(
        "POST",
        "/webhooks/hook",
        br#"{"id": "h-1", "text": "Delayed?"}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body["events"][0],
        json!({"id": "h-1", "status": "accepted", "case": "C-300"})
    );
    // The same payload again: a duplicate, within a batch, so still 202.
    let reply = app.handle(
        "POST",
        "/webhooks/hook",
        br#"{"id": "h-1", "text": "Delayed?"}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["events"][0]["status"], "duplicate");

    let reply = app.handle("POST", "/webhooks/hook", br#"{"id": "h-2"}"#);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"], "hook: no `text` in the payload");

    assert_eq!(app.handle("GET", "/cases/C-300?x=1", b"").status, 200);
    assert_eq!(app.handle("POST", "/events", &[b' '; 201]).status, 413);
    assert_eq!(app.handle("POST", "/events", b"42").status, 400);
}

/// Takes its time over every action, under any plugin name.
struct Slow(&'static str);

impl Plugin for Slow {
    fn name(&self) -> &str {
        self.0
    }

    fn execute(&self, _action: &Action) -> Result<Done, PluginError> {
        std::thread::sleep(Duration::from_millis(1500));
        Ok(Done::default())
    }
}

#[test]
fn a_slow_plugin_does_not_hold_up_requests() {
    let (pack, rules) = Pack::compile(casework::load_config(None).unwrap()).unwrap();
    let engine = Engine::builder(pack, rules).build().unwrap();
    let mut plugins = Plugins::default();
    for name in ["team", "email", "warehouse", "carrier"] {
        plugins.insert(Box::new(Slow(name)));
    }
    let app = std::sync::Arc::new(App::new(engine, OutboxRunner::new(plugins, "t"), "memory"));
    let first = message("s-1", "C-400", "Where is my order?").to_string();
    assert_eq!(app.handle("POST", "/events", first.as_bytes()).status, 202);
    let pending = app.handle("GET", "/health", b"").body["outbox"]["pending"].clone();
    assert!(pending.as_u64().unwrap() >= 1, "{pending}");

    let worker = {
        let app = app.clone();
        std::thread::spawn(move || app.background_pass().unwrap())
    };
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let second = message("s-2", "C-401", "And mine?").to_string();
    assert_eq!(app.handle("POST", "/events", second.as_bytes()).status, 202);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "the request waited {:?} for the plugin",
        start.elapsed()
    );
    let pass = worker.join().unwrap();
    assert!(pass.outbox.done >= 1, "{pass:?}");
    let health = app.handle("GET", "/health", b"").body;
    assert!(health["outbox"]["done"].as_u64().unwrap() >= 1, "{health}");
}

/// Hot reload: a saved change to a rule file decides the next events
/// without a restart; a broken save is refused and the version in force
/// runs on.
#[test]
fn serve_reloads_changed_rules_and_refuses_broken_ones() {
    let dir = scratch("serve-reload");
    copy_pack(&dir);
    let config = dir.join("casework.yaml");
    let server = Server::start_with(Some(config.to_str().unwrap()), &dir.join("serve.db"), &[]);
    let version = |server: &Server| {
        let (_, health) = server.send("GET", "/health", "");
        health["rules_hash"].as_str().unwrap().to_owned()
    };
    let team = |server: &Server, case: &str| {
        let (_, body) = server.send("GET", &format!("/cases/{case}"), "");
        body["case"]["assignment"]["team"].clone()
    };
    let first = version(&server);
    assert_eq!(
        server
            .post(&message("r-1", "C-1", "I was charged twice").to_string())
            .0,
        202
    );
    assert_eq!(team(&server, "C-1"), "billing");

    route_everything_to(&dir, "sales");
    let route = dir.join("route.rhai");
    let waited = std::time::Instant::now();
    while version(&server) == first {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "serve did not reload the changed rule file"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = version(&server);
    assert_eq!(
        server
            .post(&message("r-2", "C-2", "I was charged twice").to_string())
            .0,
        202
    );
    assert_eq!(team(&server, "C-2"), "sales", "the new version decides");

    // A broken save: refused, the second version keeps deciding.
    std::fs::write(&route, "fn route(c, event) { let x = ; }").unwrap();
    std::thread::sleep(Duration::from_secs(5)); // two polls at the default 2s
    assert_eq!(version(&server), second);
    assert_eq!(
        server
            .post(&message("r-3", "C-3", "I was charged twice").to_string())
            .0,
        202
    );
    assert_eq!(team(&server, "C-3"), "sales");
}
