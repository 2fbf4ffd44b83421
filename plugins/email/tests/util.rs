//! Test helpers: a real SMTP server on loopback (mailin-embedded), a
//! server that never answers, temp directories and actions.

use std::io;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casework_core::action::Action;
use casework_email::{EmailConfig, EmailPlugin};
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server, SslConfig};

/// One message as the server stored it.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The header block, unfolded lines kept as sent.
    pub fn header_block(&self) -> String {
        let t = self.text();
        t.split("\r\n\r\n").next().unwrap_or("").to_owned()
    }
}

/// Where the server refuses, and how many times before it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refuse {
    /// `450` at RCPT TO, as greylisting does.
    Rcpt(u16),
    /// A reply code after the data, as a full queue does.
    DataEnd(u16),
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// (where, how many more times)
    refuse: Option<(Refuse, u32)>,
    attempts: u32,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

impl Recorder {
    fn refusal(&self, at: fn(Refuse) -> Option<u16>) -> Option<Response> {
        let mut s = self.state.lock().unwrap();
        if let Some((r, n)) = s.refuse
            && n > 0
            && let Some(code) = at(r)
        {
            s.refuse = Some((r, n - 1));
            let text = if code >= 500 {
                "5.7.1 refused by policy"
            } else {
                "4.7.1 try again later"
            };
            return Some(Response::custom(code, text.to_owned()));
        }
        None
    }
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.state.lock().unwrap().attempts += 1;
        self.mail_from = from.to_owned();
        self.rcpt_to.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Some(r) = self.refusal(|r| match r {
            Refuse::Rcpt(c) => Some(c),
            Refuse::DataEnd(_) => None,
        }) {
            return r;
        }
        self.rcpt_to.push(to.to_owned());
        OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(r) = self.refusal(|r| match r {
            Refuse::DataEnd(c) => Some(c),
            Refuse::Rcpt(_) => None,
        }) {
            return r;
        }
        let msg = Received {
            mail_from: self.mail_from.clone(),
            rcpt_to: self.rcpt_to.clone(),
            data: std::mem::take(&mut self.data),
        };
        self.state.lock().unwrap().received.push(msg);
        OK
    }
}

/// An SMTP server on 127.0.0.1, on a port the OS picked. It runs on a
/// background thread until the test process ends.
pub struct TestServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_refusing(None)
    }

    /// A server that refuses `times` attempts at `at`, then accepts.
    pub fn start_refusing(refuse: Option<(Refuse, u32)>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            refuse,
            ..State::default()
        }));
        let handler = Recorder {
            state: Arc::clone(&state),
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("mx.test.invalid")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        server.with_ssl(SslConfig::None).expect("no TLS");
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        TestServer { port, state }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// MAIL FROM commands seen: one per delivery attempt that got that far.
    pub fn attempts(&self) -> u32 {
        self.state.lock().unwrap().attempts
    }
}

/// A port on loopback where nothing listens.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// A server that accepts connections and never says a word: the client
/// must give up after its timeout. The accepted sockets are held for
/// `hold`, then the thread ends.
pub fn silent_server(hold: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((s, _)) = l.accept() {
            held.push(s);
        }
        std::thread::sleep(hold);
    });
    port
}

pub const TEMPLATES: &str = r#"
promise_at_risk:
  subject: "About your order {{ order }}"
  body: |
    Dear {{ name }},

    your order {{ order }} is planned to ship before the date we promised
    ({{ promised }}). We have asked the warehouse to hold it.

    Shop Support
tagged:
  subject: "[{{ case }}] Your question"
  body: "Case {{ case }}: {{ text }}"
"#;

/// Settings for a plain-text server on loopback at `port`.
pub fn settings(port: u16) -> serde_json::Value {
    let templates: serde_json::Value = serde_yaml::from_str(TEMPLATES).unwrap();
    serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "Shop Support <support@shop.example>",
        "timeout": "2s",
        "reply_domain": "cases.shop.example",
        "templates": templates,
    })
}

pub fn plugin(port: u16) -> EmailPlugin {
    EmailPlugin::new(EmailConfig::from_value(settings(port)).unwrap()).unwrap()
}

pub fn action(id: &str, params: serde_json::Value) -> Action {
    Action {
        id: id.to_owned(),
        case: "C-1".into(),
        action: "email.send".to_owned(),
        params,
        requested_at: "2026-12-10T08:00:00+09:00".parse().unwrap(),
        event: "E-3".into(),
        requested_by: "promise.rhai#check_promise".to_owned(),
    }
}

pub fn promise_params() -> serde_json::Value {
    serde_json::json!({
        "to": "Jo Tanaka <jo@example.com>",
        "template": "promise_at_risk",
        "name": "Jo",
        "order": "O-77",
        "promised": "2027-01-06",
    })
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("casework-email-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
