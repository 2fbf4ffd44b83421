//! `casework run [CONFIG] --events FILE|- [--db PATH]`: handle events
//! durably, run the outbox through the plugins, fire timers on the wall
//! clock, and say what happened to each case.
//!
//! Lines are read on a thread; whatever has arrived when the main loop
//! comes round (up to `--batch` lines) is handled and committed in ONE
//! transaction (group commit). With `--ack`, `ack <event id>` is printed
//! and flushed for each event once its transaction is on disk: that is the
//! moment a sender may forget the event.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::Duration as StdDuration;

use casework::case::{Case, CaseId};
use casework::clock::Clock;
use casework::config::PluginDef;
use casework::engine::{Engine, Outcome, Pack};
use casework::event::{Event, EventError, EventId};
use casework::outbox::{OutboxRunner, RetryPolicy, RunnerReport};
use casework::plugins::{Plugins, Registry};
use casework::store::Rejected;
use chrono::SubsecRound;

use super::workers::{Connections, LeaseKeeper, OpenStore, Sharing, open_store};
use super::{ClusterArgs, ConfigArg, Db, DbArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// JSON Lines of events (the scenario event format, one per line);
    /// `-` reads standard input.
    #[arg(long, value_name = "FILE|-")]
    pub events: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Print `ack <event id>` (flushed) once each event is committed.
    #[arg(long)]
    pub ack: bool,
    /// At most this many lines in one transaction.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    /// After the input ends, keep running for actions that become due
    /// within this time (retries, leases of a crashed run); the rest stay
    /// pending for the next run.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub drain: StdDuration,
}

/// How the outbox is run: leases and retries (shared by `run` and `serve`).
#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    /// How long a claimed action is this run's before another worker may
    /// take it; longer than the slowest plugin's timeout.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease: StdDuration,
    /// Wait after the first failed attempt; each next wait is multiplied
    /// by --retry-factor.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_base: StdDuration,
    #[arg(long, default_value_t = 2.0)]
    pub retry_factor: f64,
    /// Attempts before an action is given up (and the case raised).
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Name of this worker in the outbox leases (default: COMMAND:PID:START).
    #[arg(long)]
    pub worker: Option<String>,
}

impl OutboxArgs {
    /// The runner for `plugins` on `clock`; `command` names the default
    /// worker.
    pub fn runner(&self, plugins: Plugins, clock: Arc<dyn Clock>, command: &str) -> OutboxRunner {
        let worker = self.worker.clone().unwrap_or_else(|| {
            format!(
                "{command}:{}:{}",
                std::process::id(),
                chrono::Utc::now().timestamp_millis()
            )
        });
        OutboxRunner::new(plugins, worker)
            .lease(to_chrono(self.lease))
            // Few at a time: a claim counts an attempt, and a crash mid-batch
            // would count one for every claimed action not yet started.
            .batch(8)
            .policy(RetryPolicy {
                base: to_chrono(self.retry_base),
                factor: self.retry_factor,
                max_attempts: self.max_attempts.max(1),
                ..RetryPolicy::default()
            })
            .clock(clock)
    }
}

/// An engine on the store, with the configured plugins.
pub struct Opened {
    pub engine: Engine,
    pub plugins: Plugins,
    pub clock: Arc<dyn Clock>,
    pub db: Db,
    /// The database did not exist before (PostgreSQL: held no event).
    pub fresh: bool,
    /// On PostgreSQL: this process's partition leases, held while it runs.
    pub leases: Option<LeaseKeeper>,
    /// On PostgreSQL, a `serve` worker's further connections.
    pub connections: Option<Connections>,
}

/// Load the configuration, open (or create) the store and build the
/// engine and plugins. `Ok(Err(code))`: the configuration is invalid (the
/// diagnostics are printed).
pub fn open(
    config: &ConfigArg,
    db: &DbArg,
    cluster: &ClusterArgs,
    sharing: Sharing,
) -> Result<Result<Opened, ExitCode>, String> {
    let loaded = match config.load() {
        Ok(l) => l,
        Err(code) => return Ok(Err(code)),
    };
    let mut plugin_defs = loaded.def.plugins.clone();
    let config_dir = config
        .config
        .as_deref()
        .and_then(Path::parent)
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_owned();
    let (pack, rules) = Pack::compile(loaded).map_err(|d| d.to_string())?;

    let db = db.target(config);
    let OpenStore {
        store,
        fresh,
        leases,
        connections,
    } = open_store(&db, cluster, sharing)?;
    // Mail a run writes lands beside a SQLite store; with PostgreSQL,
    // beside the configuration.
    let mail_base = match &db {
        Db::File(path) => path.parent().unwrap_or(Path::new("")).to_owned(),
        Db::Postgres(_) => config_dir.clone(),
    };
    anchor_mail_dirs(&mut plugin_defs, &mail_base);
    let clock: Arc<dyn Clock> = Arc::new(ShopClock(pack.timezone));
    let engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(store)
        .build()
        .map_err(|e| e.to_string())?;
    let plugins = Registry::builtin()
        .with_directory(engine.pack().directory.clone())
        .build(&plugin_defs, &config_dir);
    Ok(Ok(Opened {
        engine,
        plugins,
        clock,
        db,
        fresh,
        leases,
        connections,
    }))
}

/// Make the relative `dir:` of every e-mail file transport (a `kind:
/// email` plugin, or the `email:` settings of a `notify` plugin) relative
/// to the database's directory: the mail a run writes lands beside the
/// store it ran on (`outbox-mail/` next to `casework.db`), whichever
/// directory the command was started from.
pub fn anchor_mail_dirs(defs: &mut indexmap::IndexMap<String, PluginDef>, base: &Path) {
    use serde_json::Value;
    // The new `dir`, when `transport: file` names a relative one.
    let anchored = |transport: Option<&Value>, dir: Option<&Value>| -> Option<Value> {
        let dir = dir?.as_str()?;
        (transport?.as_str()? == "file" && Path::new(dir).is_relative())
            .then(|| Value::String(base.join(dir).display().to_string()))
    };
    for def in defs.values_mut() {
        match def.kind.as_str() {
            "email" => {
                if let Some(dir) = anchored(def.settings.get("transport"), def.settings.get("dir"))
                {
                    def.settings.insert("dir".into(), dir);
                }
            }
            "notify" => {
                if let Some(Value::Object(map)) = def.settings.get_mut("email")
                    && let Some(dir) = anchored(map.get("transport"), map.get("dir"))
                {
                    map.insert("dir".into(), dir);
                }
            }
            _ => {}
        }
    }
}

/// One line of input.
enum Line {
    Text(usize, String),
    Error(usize, String),
}

/// Counts of one run.
#[derive(Default)]
struct Tally {
    lines: usize,
    accepted: usize,
    duplicate: usize,
    rejected: Vec<String>,
    timers: usize,
    cases: BTreeSet<CaseId>,
    outbox: RunnerReport,
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The wall clock in the shop's time zone, to the millisecond: decision
/// records read in local time, without nanoseconds.
pub struct ShopClock(pub chrono_tz::Tz);

impl Clock for ShopClock {
    fn now(&self) -> casework::Timestamp {
        chrono::Utc::now()
            .with_timezone(&self.0)
            .fixed_offset()
            .trunc_subsecs(3)
    }
}

fn to_chrono(d: StdDuration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn run_inner(args: &Args) -> Result<ExitCode, String> {
    let Opened {
        mut engine,
        plugins,
        clock,
        db,
        fresh,
        leases: _leases,
        ..
    } = match open(&args.config, &args.db, &args.cluster, Sharing::Alone)? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let runner = args.outbox.runner(plugins, clock.clone(), "run");

    let source = if args.events.as_os_str() == "-" {
        None
    } else {
        Some(args.events.clone())
    };
    let stem = source
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned());
    let shown_source = source
        .as_ref()
        .map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
    let rx = spawn_reader(source)?;

    let mut tally = Tally::default();
    let stdout = std::io::stdout();
    let tick = StdDuration::from_millis(100);
    let mut eof = false;
    let mut drain_until = None;
    loop {
        let mut lines = Vec::new();
        if !eof {
            match rx.recv_timeout(tick) {
                Ok(l) => lines.push(l),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => eof = true,
            }
            while !eof && lines.len() < args.batch.max(1) {
                match rx.try_recv() {
                    Ok(l) => lines.push(l),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => eof = true,
                }
            }
        }
        if !lines.is_empty() {
            handle_lines(
                &mut engine,
                lines,
                stem.as_deref(),
                &shown_source,
                args.ack,
                &mut tally,
                &mut stdout.lock(),
            )?;
        }
        let now = clock.now();
        loop {
            let round = engine.tick_round(now).map_err(|e| e.to_string())?;
            for outcome in round.outcomes {
                if let Outcome::Handled { case, .. } = outcome {
                    tally.cases.insert(case);
                }
            }
            if !round.more {
                break;
            }
        }
        tally.timers = engine.timers_fired();
        let pass = runner.run_once(&mut engine).map_err(|e| e.to_string())?;
        let busy = pass.attempts > 0;
        for f in &pass.failures {
            eprintln!("outbox: {f}");
        }
        tally.outbox.add(pass);
        if !eof || busy {
            continue;
        }
        // The input is over and nothing was due just now.
        let deadline = *drain_until.get_or_insert_with(|| clock.now() + to_chrono(args.drain));
        match runner.next_due(&engine).map_err(|e| e.to_string())? {
            Some(next) if next <= deadline => {
                let wait = (next - clock.now())
                    .to_std()
                    .unwrap_or_default()
                    .min(tick * 5);
                std::thread::sleep(wait.max(StdDuration::from_millis(10)));
            }
            _ => break,
        }
    }
    summary(&engine, &runner, &tally, &db, fresh, &shown_source)?;
    Ok(ExitCode::SUCCESS)
}

fn spawn_reader(source: Option<PathBuf>) -> Result<mpsc::Receiver<Line>, String> {
    let reader: Box<dyn BufRead + Send> = match &source {
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .map_err(|e| format!("cannot read the events file {}: {e}", p.display()))?,
        )),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let mut reader = reader;
            let mut buf = Vec::new();
            let mut n = 0;
            loop {
                buf.clear();
                n += 1;
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        let line = match String::from_utf8(std::mem::take(&mut buf)) {
                            Ok(s) => Line::Text(n, s),
                            Err(_) => Line::Error(n, "the line is not UTF-8".into()),
                        };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Line::Error(n, format!("cannot read: {e}")));
                        break;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the reader: {e}"))?;
    Ok(rx)
}

fn handle_lines(
    engine: &mut Engine,
    lines: Vec<Line>,
    stem: Option<&str>,
    source: &str,
    ack: bool,
    tally: &mut Tally,
    out: &mut dyn Write,
) -> Result<(), String> {
    let now = engine.now();
    let mut events = Vec::new();
    let mut line_of = Vec::new();
    for line in lines {
        let (n, parsed) = match line {
            Line::Text(n, text) => {
                if text.trim().is_empty() {
                    continue;
                }
                tally.lines += 1;
                let text = text.trim_end_matches(['\n', '\r']);
                match Event::from_json(text) {
                    Ok(mut e) => {
                        if e.id.is_unset()
                            && let Some(stem) = stem
                        {
                            // As scenarios do: an id from the position, so
                            // reading the same file again repeats it.
                            e.id = EventId(format!("{stem}-{n}"));
                        }
                        (n, Ok(e))
                    }
                    Err(EventError::Syntax { message, .. }) => (n, Err((text.to_owned(), message))),
                    Err(e) => (n, Err((text.to_owned(), e.to_string()))),
                }
            }
            Line::Error(n, message) => {
                tally.lines += 1;
                (n, Err((String::new(), message)))
            }
        };
        match parsed {
            Ok(e) => {
                events.push(e);
                line_of.push(n);
            }
            Err((raw, message)) => {
                // Kept as rejected, so nothing sent is lost; the run goes on.
                let id = EventId(format!("{source}:{n}"));
                let event = Event::new(id.clone(), now, "malformed", None)
                    .with("line", n)
                    .with("source", source)
                    .with("raw", raw);
                let error = EventError::Syntax { event: id, message };
                eprintln!("{source}:{n}: rejected: {error}");
                tally.rejected.push(format!("line {n}: {error}"));
                engine
                    .store_mut()
                    .reject(Rejected {
                        event,
                        at: now,
                        error,
                    })
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
    let results = engine.handle_batch(events).map_err(|e| {
        format!(
            "{e}; the events from {source} line {} on were not kept: send them again",
            line_of[0]
        )
    })?;
    for ((result, id), n) in results.into_iter().zip(ids).zip(line_of) {
        match result {
            Ok(Outcome::Handled { case, .. }) => {
                tally.accepted += 1;
                tally.cases.insert(case);
                if ack {
                    let _ = writeln!(out, "ack {id}");
                }
            }
            Ok(Outcome::Duplicate) => {
                tally.duplicate += 1;
                if ack {
                    let _ = writeln!(out, "ack {id}");
                }
            }
            Err(e) => {
                eprintln!("{source}:{n}: rejected: {e}");
                tally.rejected.push(format!("line {n}: {e}"));
                if ack {
                    let _ = writeln!(out, "rejected {id}");
                }
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

/// One case in a line: id, state, team, urgency, open promises.
pub fn case_line(case: &Case) -> String {
    let promises: Vec<String> = case
        .promises
        .iter()
        .filter(|p| p.status.is_open())
        .map(|p| {
            format!(
                "{} {} ({})",
                p.id,
                casework::engine::promise_text(p),
                p.status
            )
        })
        .collect();
    format!(
        "{:<10} {:<22} team {:<10} urgency {:<8} promises: {}",
        case.id.0,
        case.state.as_str(),
        case.assignment.team.as_deref().unwrap_or("-"),
        case.urgency.level.as_str(),
        if promises.is_empty() {
            "none open".to_owned()
        } else {
            promises.join("; ")
        }
    )
}

fn summary(
    engine: &Engine,
    runner: &OutboxRunner,
    tally: &Tally,
    db: &Db,
    fresh: bool,
    source: &str,
) -> Result<(), String> {
    let store = engine.store();
    let err = |e: casework::store::StoreError| e.to_string();
    out!(
        "read {} line{} from {source} into {} ({})",
        tally.lines,
        if tally.lines == 1 { "" } else { "s" },
        db,
        if fresh { "new" } else { "existing" }
    );
    out!(
        "events: {} accepted, {} duplicate, {} rejected; {} timers fired",
        tally.accepted,
        tally.duplicate,
        tally.rejected.len(),
        tally.timers
    );
    for r in &tally.rejected {
        out!("  rejected {r}");
    }
    out!();
    if tally.cases.is_empty() {
        out!("no case changed in this run (`casework cases` lists them all)");
    }
    for id in &tally.cases {
        if let Some(case) = store.load(id).map_err(err)? {
            out!("{}", case_line(&case));
            let pending: Vec<String> = store
                .case_actions(id)
                .map_err(err)?
                .into_iter()
                .map(|e| format!("{} {}", e.action.action, e.status))
                .collect();
            if !pending.is_empty() {
                out!("{:<10} actions: {}", "", pending.join(", "));
            }
        }
    }
    out!();
    let counts = store.outbox_counts().map_err(err)?;
    let o = &tally.outbox;
    out!(
        "actions: {} done, {} pending, {} failed (given up) in the store; this run: {} attempts, {} done, {} retried, {} given up",
        counts.done,
        counts.pending,
        counts.gave_up,
        o.attempts,
        o.done,
        o.retried,
        o.gave_up
    );
    let pending = store.pending_by_plugin().map_err(err)?;
    let mut not_run: BTreeMap<&str, usize> = BTreeMap::new();
    for (plugin, n) in &pending {
        if runner.plugins().get(plugin).is_none() {
            not_run.insert(plugin.as_str(), *n);
        }
    }
    if !not_run.is_empty() {
        out!("not executed (left pending, not failed):");
        for (plugin, n) in not_run {
            let why = runner
                .plugins()
                .unavailable()
                .get(plugin)
                .map(|u| format!("plugin `{plugin}` (kind {}): {}", u.kind, u.reason))
                .unwrap_or_else(|| format!("no plugin named `{plugin}` is configured"));
            out!("  {n} action(s) of {why}");
        }
    }
    Ok(())
}
