//! The shuffleboard story end to end: `casework run` as a child process,
//! the default pack copied from `rules/`, the warehouse API served on
//! loopback over HTTP and the team's e-mail going to a loopback SMTP
//! server that refuses the first two attempts. The hold must reach the
//! warehouse exactly once and the notice must reach the promising agent
//! exactly once, despite the refusals.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};

use casework::store::{ActionStatus, SqliteStore, Store};
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server, SslConfig};

use crate::util::{HttpStub, casework, scratch};

/// Requests per `Idempotency-Key`: the path and the JSON body of each.
type Seen = BTreeMap<String, Vec<(String, serde_json::Value)>>;

/// A warehouse API on loopback that holds anything, counting requests by
/// `Idempotency-Key` (path and body kept for the assertions).
struct Warehouse {
    _api: HttpStub,
    seen: Arc<Mutex<Seen>>,
}

impl Warehouse {
    fn start() -> (Warehouse, String) {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let api = HttpStub::start({
            let seen = seen.clone();
            move |path, key, body| {
                let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .entry(key.to_owned())
                    .or_insert_with(Vec::new)
                    .push((path.to_owned(), parsed));
                (
                    200,
                    serde_json::json!({ "hold": format!("H-{key}") }).to_string(),
                )
            }
        });
        let url = api.url.clone();
        (Warehouse { _api: api, seen }, url)
    }
}

/// One message as the SMTP server accepted it.
#[derive(Clone, Debug)]
struct Received {
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

impl Received {
    /// The value of header `name` (first occurrence, unfolded).
    fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data).into_owned();
        let block = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
        let mut value: Option<String> = None;
        for line in block.split("\r\n") {
            if let Some(v) = &mut value {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

#[derive(Default)]
struct MailState {
    received: Vec<Received>,
    /// Attempts still to refuse (421 at the end of DATA).
    refuse: u32,
    refused: u32,
    attempts: u32,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<MailState>>,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        self.state.lock().unwrap().attempts += 1;
        self.rcpt_to.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.rcpt_to.push(to.to_owned());
        OK
    }

    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> Response {
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut s = self.state.lock().unwrap();
        // 421 rather than 451: after a 4xx at the end of DATA mailin stays
        // in its data state and never answers QUIT (see
        // plugins/email/tests/smtp.rs).
        if s.refuse > 0 {
            s.refuse -= 1;
            s.refused += 1;
            return Response::custom(421, "4.7.1 try again later".to_owned());
        }
        s.received.push(Received {
            rcpt_to: self.rcpt_to.clone(),
            data: std::mem::take(&mut self.data),
        });
        OK
    }
}

/// An SMTP server on 127.0.0.1 refusing the first `refuse` messages; it
/// runs on a background thread until the test process ends.
fn smtp_server(refuse: u32) -> (u16, Arc<Mutex<MailState>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(MailState {
        refuse,
        ..MailState::default()
    }));
    let mut server = Server::new(Recorder {
        state: state.clone(),
        rcpt_to: Vec::new(),
        data: Vec::new(),
    });
    server
        .with_name("mx.test.invalid")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    server.with_ssl(SslConfig::None).expect("no TLS");
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, state)
}

/// The default pack copied into `dir`, with `plugins.yaml` pointing the
/// warehouse at `url` and the team's e-mail at the SMTP server on `port`.
fn copy_pack(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
    crate::util::copy_pack(dir);
    let plugins = format!(
        r#"plugins:
  warehouse:
    kind: warehouse
    url: {url}
    timeout: 2s
  carrier:
    kind: carrier
  email:
    kind: email
  team:
    kind: notify
    email:
      host: 127.0.0.1
      port: {port}
      security: none
      from: "Shop Support <support@shop.example>"
      timeout: 2s
      reply_domain: cases.shop.example
      templates:
        notify:
          subject: "[{{{{ case }}}}] {{{{ agent_name }}}}, a case needs you"
          body: "{{{{ text }}}}"
"#
    );
    std::fs::write(dir.join("plugins.yaml"), plugins).unwrap();
    dir.join("casework.yaml")
}

/// The shuffleboard story: the customer's message, jeniffer's promise and
/// the warehouse's plan to ship weeks too early.
const EVENTS: &str = r#"{"id": "sb-1", "at": "2026-11-25T10:00:00+09:00", "kind": "customer.message", "case": "C-1", "customer": {"name": "Jo Tanaka", "email": "jo@example.com", "phone": "+81-3-0000-0000", "preferred_channel": "phone"}, "channel": "email", "text": "We would like the shuffleboard table delivered to our rental house. We are only there from January 5 to January 8, so it must arrive then."}
{"id": "sb-2", "at": "2026-11-25T10:20:00+09:00", "kind": "agent.promise", "case": "C-1", "agent": "jeniffer", "promise": {"id": "P-1", "kind": "deliver_on", "date": "2027-01-06", "window": {"from": "2027-01-05", "to": "2027-01-08"}, "order": "O-77", "text": "Delivered on January 6th, between Jan 5 and Jan 8 at the latest."}}
{"id": "sb-3", "at": "2026-11-25T10:25:00+09:00", "kind": "agent.reply", "case": "C-1", "agent": "jeniffer", "text": "We will deliver on January 6th."}
{"id": "sb-4", "at": "2026-12-10T08:00:00+09:00", "kind": "warehouse.planned", "order": "O-77", "ship_date": "2026-12-11"}
"#;

#[test]
fn the_shuffleboard_hold_and_notice_are_delivered_once_despite_refusals() {
    let dir = scratch("e2e-shuffleboard");
    let (warehouse, url) = Warehouse::start();
    let (port, mail) = smtp_server(2);
    let config = copy_pack(&dir, &url, port);
    let events = dir.join("shuffleboard.jsonl");
    std::fs::write(&events, EVENTS).unwrap();
    let db = dir.join("casework.db");

    let run = casework([
        "run".as_ref(),
        config.as_os_str(),
        "--events".as_ref(),
        events.as_os_str(),
        "--db".as_ref(),
        db.as_os_str(),
        "--retry-base".as_ref(),
        "50ms".as_ref(),
        "--drain".as_ref(),
        "5s".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("4 accepted, 0 duplicate, 0 rejected"),
        "{}",
        run.output()
    );

    // The SQLite outbox: the hold and jeniffer's notice are done.
    let store = SqliteStore::open(&db).unwrap();
    let outbox = store.outbox().unwrap();
    let holds: Vec<_> = outbox
        .iter()
        .filter(|e| e.action.action == "warehouse.hold")
        .collect();
    assert_eq!(holds.len(), 1, "{outbox:#?}");
    let hold = holds[0];
    assert_eq!(hold.status, ActionStatus::Done, "{hold:#?}");
    assert_eq!(hold.action.params["order"], "O-77", "{hold:#?}");
    let notices: Vec<_> = outbox
        .iter()
        .filter(|e| e.action.action == "team.notify" && e.action.params["agent"] == "jeniffer")
        .collect();
    assert_eq!(notices.len(), 1, "{outbox:#?}");
    let notice = notices[0];
    assert_eq!(notice.status, ActionStatus::Done, "{notice:#?}");
    assert!(
        notice.attempts >= 3,
        "retried after two refusals: {notice:#?}"
    );

    // The warehouse: one request, under the hold's key.
    let seen = warehouse.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let requests = seen.get(&hold.action.id).expect("the hold's key");
    assert_eq!(requests.len(), 1, "{seen:#?}");
    assert_eq!(requests[0].1["params"]["order"], "O-77", "{seen:#?}");

    // The mail: refused twice, then jeniffer's notice once.
    let mail = mail.lock().unwrap();
    assert_eq!(mail.refused, 2);
    let mut to_jeniffer: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mail.received {
        if m.rcpt_to.iter().any(|r| r.contains("jeniffer@example.com")) {
            let id = m.header("Message-ID").expect("a Message-ID");
            *to_jeniffer.entry(id).or_default() += 1;
        }
    }
    assert_eq!(to_jeniffer.len(), 1, "{:#?}", mail.received);
    assert_eq!(to_jeniffer.values().next(), Some(&1));
    let only = mail
        .received
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r.contains("jeniffer@example.com")))
        .unwrap();
    let text = String::from_utf8_lossy(&only.data);
    assert!(text.contains("O-77"), "{text}");
}
