//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The result of running the `casework` binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for error messages.
    pub fn output(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The repository root, where the tests run the binary from, so paths
/// like `rules/casework.yaml` resolve and are shown as written.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `casework` with `args` from the repository root.
pub fn casework<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_casework"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the casework binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh, empty directory for one test under Cargo's test tmp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The 1-based line and column where `needle` starts in `text`.
pub fn find(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not found"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Run `casework` with `args` from the repository root, `input` on its
/// standard input (as an MTA pipe delivers a message).
pub fn casework_stdin<I, S>(args: I, input: &[u8]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the casework binary runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The child may refuse early and close its end; that is its answer.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().expect("casework finishes");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copy the default pack's files (`rules/*` and the classifiers'
/// `rules/examples/`, not its tests) into `to`, for tests that change rule
/// files on disk.
pub fn copy_pack(to: &Path) {
    for dir in ["", "examples"] {
        std::fs::create_dir_all(to.join(dir)).unwrap();
        for entry in std::fs::read_dir(root().join("rules").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(dir).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// An HTTP server on loopback (a warehouse API, a carrier) that answers
/// each request with `answer(path, idempotency_key, body)` = (status,
/// JSON body), on its own thread; stopped and joined on drop.
pub struct HttpStub {
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub url: String,
}

impl HttpStub {
    pub fn start(answer: impl Fn(&str, &str, &str) -> (u16, String) + Send + 'static) -> HttpStub {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let thread = {
            let server = server.clone();
            std::thread::spawn(move || {
                for mut req in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let key = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Idempotency-Key"))
                        .map(|h| h.value.to_string())
                        .unwrap_or_default();
                    let (status, text) = answer(req.url(), &key, &body);
                    let _ = req
                        .respond(tiny_http::Response::from_string(text).with_status_code(status));
                }
            })
        };
        HttpStub {
            server,
            thread: Some(thread),
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rewrite the `route` rule of a pack copied by [`copy_pack`] so that it
/// sends every case to `team`: a change whose effect a test can see.
pub fn route_everything_to(pack: &Path, team: &str) {
    let route = pack.join("route.rhai");
    let text = std::fs::read_to_string(&route).unwrap();
    let patched = text.replacen(
        "fn route(c, event) {",
        &format!(
            "fn route(c, event) {{\n    return #{{ team: \"{team}\", reason: \"reloaded\" }};"
        ),
        1,
    );
    assert_ne!(patched, text, "route.rhai has no `fn route(c, event) {{`");
    std::fs::write(&route, patched).unwrap();
}

/// The address a started `casework serve` listens on: the first line it
/// prints, `listening on ADDR` (its stdout must be piped). `log` is what
/// to show when there is no such line.
pub fn listening(child: &mut std::process::Child, log: impl Fn() -> String) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}: {}", log()))
        .to_owned()
}
