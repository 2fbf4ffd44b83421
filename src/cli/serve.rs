//! `casework serve [CONFIG] --listen ADDR [--db PATH]`: take events over
//! HTTP, answer once they are durable, fire timers and run the outbox in
//! the background. The routes and status codes are described in
//! [`casework::serve`].
//!
//! SIGTERM and SIGINT stop it cleanly: the request being handled is
//! finished, the background pass too, then the process exits 0. Nothing
//! depends on that for safety: every answer 202 came after a commit, and
//! an outbox action interrupted by SIGKILL is taken again once its lease
//! runs out.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use casework::Reload;
use casework::console::Guard;
use casework::serve::{App, MAX_BODY};

use super::run::{Opened, OutboxArgs, open};
use super::workers::Sharing;
use super::{ClusterArgs, ConfigArg, DbArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The address to listen on, e.g. 127.0.0.1:8080; port 0 picks a free
    /// port (the first line printed, `listening on ADDR`, tells which).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Refuse request bodies larger than this many bytes (413).
    #[arg(long, default_value_t = MAX_BODY, value_name = "BYTES")]
    pub max_body: usize,
    /// Threads taking requests (a client stalled mid-body holds one).
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    /// Look at the rule files this often and swap in a changed version
    /// (hot reload; a file that does not compile is refused and the
    /// version in force keeps running); 0s turns it off. The embedded
    /// pack has no files to watch.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_every: Duration,
    /// The environment variable holding the token that the console and
    /// the JSON API ask for (`Authorization: Bearer TOKEN`, or the
    /// console's sign-in form). Required to listen off loopback.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Listen off loopback without a token: anyone who can reach the port
    /// can read every case and post events. Only behind a proxy that
    /// authenticates.
    #[arg(long)]
    pub insecure: bool,
}

/// The guard for `listen`: a token from `token_env` when given; none on
/// loopback; off loopback without one, a refusal unless `insecure`.
fn guard(args: &Args, listen: std::net::SocketAddr) -> Result<Guard, String> {
    if let Some(var) = &args.token_env {
        let token = std::env::var(var).map_err(|_| {
            format!("--token-env {var}: the variable {var} is not set (or not UTF-8); export it with the token and start again")
        })?;
        if token.trim().len() < 16 {
            return Err(format!(
                "--token-env {var}: the token is shorter than 16 characters; use a long random one (e.g. `openssl rand -hex 32`)"
            ));
        }
        return Ok(Guard::token(token.trim()));
    }
    if listen.ip().is_loopback() || args.insecure {
        if !listen.ip().is_loopback() {
            eprintln!(
                "warning: listening on {listen} without a token (--insecure): anyone who reaches it can read every case"
            );
        }
        return Ok(Guard::open());
    }
    Err(format!(
        "refusing to listen on {listen} without a token: name the variable holding one with --token-env VAR, listen on 127.0.0.1, or say --insecure"
    ))
}

pub fn run(args: Args) -> ExitCode {
    match serve(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> Result<ExitCode, String> {
    // Refuse an unguarded address before opening anything.
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&args.listen.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "--listen {}: not an address to listen on; write HOST:PORT, e.g. 127.0.0.1:8080",
                args.listen
            )
        })?;
    let guard = guard(args, addr)?;
    let Opened {
        engine,
        plugins,
        clock,
        db,
        fresh,
        leases,
        connections,
    } = match open(&args.config, &args.db, &args.cluster, Sharing::Worker)? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    for (name, u) in plugins.unavailable() {
        eprintln!(
            "plugin `{name}` (kind {}) cannot run, its actions stay pending: {}",
            u.kind, u.reason
        );
    }
    let runner = args.outbox.runner(plugins, clock, "serve");
    let mut app = App::new(engine, runner, db.to_string())
        .max_body(args.max_body.max(1))
        .guard(guard);
    if let (Some(keeper), Some(more)) = (&leases, connections) {
        app = app.shared(keeper.view.clone(), more.requests, more.outbox);
    }
    let app = Arc::new(app);
    let server = tiny_http::Server::http(addr)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // With the `termination` feature this catches SIGTERM too.
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("warning: SIGTERM/SIGINT will not stop the server cleanly: {e}");
        }
    }
    // The embedded pack's rule paths are not files on disk.
    let reload_every = if args.config.config.is_some() && !args.reload_every.is_zero() {
        Some(args.reload_every)
    } else {
        None
    };
    let background = {
        let (app, stop) = (app.clone(), stop.clone());
        std::thread::Builder::new()
            .name("timers-outbox".into())
            .spawn(move || background(&app, &stop, reload_every))
            .map_err(|e| format!("cannot start the background thread: {e}"))?
    };
    let inbox = match leases {
        Some(_) => {
            let (app, stop) = (app.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("inbox".into())
                    .spawn(move || inbox(&app, &stop))
                    .map_err(|e| format!("cannot start the inbox thread: {e}"))?,
            )
        }
        None => None,
    };

    out!("listening on {}", server.server_addr());
    eprintln!(
        "store {} ({}); the console at http://{}/ ; POST /events, POST /webhooks/{{plugin}}, GET /health, GET /cases/{{id}}, GET /metrics",
        db,
        if fresh { "new" } else { "existing" },
        server.server_addr()
    );
    let _ = std::io::stdout().flush();

    let served = app.serve(
        Arc::new(server),
        stop.clone(),
        args.threads,
        Duration::from_secs(5),
    );
    stop.store(true, Ordering::SeqCst);
    let _ = background.join();
    if let Some(inbox) = inbox {
        let _ = inbox.join();
    }
    // Hand the partitions back at once, for the other workers.
    drop(leases);
    let finished = served.map_err(|e| format!("the server stopped: {e}"))?;
    if finished {
        eprintln!("stopped");
    } else {
        eprintln!("stopped; requests whose body never arrived were dropped unhandled");
    }
    Ok(ExitCode::SUCCESS)
}

/// Timers (on SQLite; see [`inbox`]) and the outbox, every 100 ms or at
/// once while there is work; the rule files every `reload_every`.
fn background(app: &App, stop: &AtomicBool, reload_every: Option<Duration>) {
    let mut watch = reload_every.map(RuleWatch::new);
    while !stop.load(Ordering::SeqCst) {
        if let Some(watch) = &mut watch {
            watch.poll(app);
        }
        match app.background_pass() {
            Ok(pass) => {
                for f in &pass.outbox.failures {
                    eprintln!("outbox: {f}");
                }
                if pass.outbox.attempts > 0 || pass.more_timers {
                    continue;
                }
            }
            Err(e) => eprintln!("background: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shared inbox of a worker on PostgreSQL: drained at once while it
/// holds events, polled every 20 ms when empty (every second after a
/// failure, which is reported). The worker's timers fire here too, between
/// batches, every 100 ms or at once while a round was full: they need the
/// engine, and on this thread they never hold up the outbox.
fn inbox(app: &App, stop: &AtomicBool) {
    const TIMERS_EVERY: Duration = Duration::from_millis(100);
    let mut timers_fired: Option<Instant> = None;
    let mut more_timers = false;
    while !stop.load(Ordering::SeqCst) {
        // A failing inbox (a lost connection, a row it cannot read) does
        // not hold the timers back: they are tried all the same.
        let (drained, idle) = match app.inbox_pass() {
            Ok(n) => (n, Duration::from_millis(20)),
            Err(e) => {
                eprintln!("inbox: {e}");
                (0, Duration::from_secs(1))
            }
        };
        if more_timers || timers_fired.is_none_or(|t| t.elapsed() >= TIMERS_EVERY) {
            timers_fired = Some(Instant::now());
            more_timers = match app.timer_pass() {
                Ok(pass) => pass.more_timers,
                Err(e) => {
                    eprintln!("timers: {e}");
                    false
                }
            };
        }
        if drained == 0 && !more_timers {
            std::thread::sleep(idle);
        }
    }
}

/// Hot reload for `serve`: polls the rule files and says once what
/// happened to each change.
struct RuleWatch {
    every: Duration,
    last: Instant,
    /// The last refusal printed, so a broken file is reported once, not
    /// at every poll.
    refused: Option<String>,
}

impl RuleWatch {
    fn new(every: Duration) -> RuleWatch {
        RuleWatch {
            every,
            last: Instant::now(),
            refused: None,
        }
    }

    fn poll(&mut self, app: &App) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        match app.reload_rules() {
            Ok(Reload::Unchanged) => {}
            Ok(Reload::Swapped(version)) => {
                self.refused = None;
                eprintln!("rules reloaded: version {version} decides from now on");
            }
            Err(diagnostics) => {
                let text = diagnostics.to_string();
                if self.refused.as_ref() != Some(&text) {
                    let version = app.rules_version().unwrap_or_default();
                    eprintln!(
                        "rules not reloaded, version {version} keeps running; fix this and save again:\n{text}"
                    );
                    self.refused = Some(text);
                }
            }
        }
    }
}
