//! Subcommands and what they share: choosing the configuration and
//! printing diagnostics.
//!
//! To add a subcommand: a module with an `Args` (clap `Args`) and a
//! `run(Args) -> ExitCode`, a variant in [`Command`] and an arm in
//! [`main`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use casework::config::{CheckReport, LoadedConfig};
use casework::diagnostic::{Diagnostic, Diagnostics, Severity, SourceFile};
use clap::{Parser, Subcommand};

/// `println!` for command output. A reader that goes away (`casework
/// simulate … | head`) ends the command quietly instead of a panic; any
/// other write error is reported.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(&e);
        }
    }};
}

/// `print!` for command output, as [`out!`].
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(&e);
        }
    }};
}

/// The output could not be written: a closed pipe ends the command as
/// `head` expects (exit 0, what was read was all that was wanted);
/// anything else is an error.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(1);
}

pub mod cases;
pub mod check;
pub mod eval;
pub mod explain;
pub mod graph;
pub mod mail;
pub mod migrate;
pub mod run;
pub mod serve;
pub mod show;
pub mod simulate;
pub mod test;
pub mod verify;
pub mod workers;

/// Keeps customer-service cases moving and promises kept.
#[derive(Debug, Parser)]
#[command(name = "casework", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration: YAML, workflow graph, guards, actions,
    /// directory and calendars. Exits 1 if anything is wrong.
    Check(check::Args),
    /// How good the classifiers and rules are: cross-validation on the
    /// examples, or agreement with a labeled file (--on). Exits 1 when a
    /// classifier is under its min_accuracy.
    Eval(eval::Args),
    /// Draw the workflow graph (Graphviz DOT or Mermaid).
    Graph(graph::Args),
    /// Play a scenario on a virtual clock and print the timeline of
    /// decisions (one JSON record per line with --json).
    Simulate(simulate::Args),
    /// Run scenario files and check their expectations. Exits 1 if any
    /// expectation fails.
    Test(test::Args),
    /// Play a scenario and tell one case's story: record, promises and
    /// every decision with the rule that made it.
    Explain(explain::Args),
    /// Handle events durably (JSON Lines from a file or stdin), run the
    /// actions through the plugins, fire timers on the wall clock, and
    /// print what happened to each case.
    Run(run::Args),
    /// Feed inbound e-mail (message files, a Maildir, or one message on
    /// stdin from an MTA) through the engine as `email.received` events,
    /// durably, and say which case each landed on. Exit codes follow
    /// sysexits: 65 bounce, 75 retry later.
    Mail(mail::Args),
    /// Take events over HTTP (POST /events, webhooks), answer once they
    /// are durable, fire timers and run the actions in the background.
    Serve(serve::Args),
    /// List the cases in the store (state, team, urgency, open promises).
    Cases(cases::Args),
    /// Tell one stored case's story: record, promises and every decision.
    Show(show::Args),
    /// Copy an embedded SQLite store into a PostgreSQL database (new or
    /// empty), checking every table's row count.
    Migrate(migrate::Args),
    /// Replay stored cases (all, or --sample N) from their events with
    /// the versions that decided them and compare with the stored rows,
    /// after an upgrade. Exits 1 on any divergence.
    Verify(verify::Args),
}

/// Parse the command line and run the subcommand. Usage errors exit 2
/// (clap's default); a failed check exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Test(args) => test::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Run(args) => run::run(args),
        Command::Mail(args) => mail::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Cases(args) => cases::run(args),
        Command::Show(args) => show::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Verify(args) => verify::run(args),
    }
}

/// The configuration argument every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The configuration file (`casework.yaml`); the embedded default pack
    /// when left out.
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// Load and check with the built-in plugin kinds, keeping every
    /// diagnostic.
    pub fn check(&self) -> CheckReport {
        casework::check_config(
            self.config.as_deref(),
            &casework::plugins::Registry::builtin(),
        )
    }

    /// The path shown for this configuration.
    pub fn shown(&self) -> String {
        self.config.as_deref().map_or_else(
            || casework::pack::ROOT.to_owned(),
            |p| Path::new(p).display().to_string(),
        )
    }

    /// Load the configuration, or print why not (on stderr) and give the
    /// exit code to return.
    pub fn load(&self) -> Result<LoadedConfig, ExitCode> {
        let report = self.check();
        let stderr = &mut std::io::stderr().lock();
        print_diagnostics(stderr, &report.diagnostics, &report.sources);
        match report.config {
            Some(c) => Ok(c),
            None => {
                print_error_count(stderr, &report.diagnostics, &self.shown());
                Err(ExitCode::FAILURE)
            }
        }
    }
}

/// The database argument of the commands that use the store.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArg {
    /// The store: a SQLite file (default `casework.db` beside the
    /// configuration file, or in the current directory with the embedded
    /// pack), or a PostgreSQL database shared by several workers
    /// (`postgres://USER@HOST:PORT/DATABASE`).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
}

/// Where the store is.
#[derive(Debug, Clone)]
pub enum Db {
    File(PathBuf),
    Postgres(String),
}

impl std::fmt::Display for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Db::File(path) => write!(f, "{}", path.display()),
            Db::Postgres(url) => f.write_str(&casework::store::postgres::shown_url(url)),
        }
    }
}

impl DbArg {
    pub fn target(&self, config: &ConfigArg) -> Db {
        if let Some(db) = &self.db {
            if casework::store::postgres::is_url(db) {
                return Db::Postgres(db.clone());
            }
            return Db::File(PathBuf::from(db));
        }
        match config.config.as_deref().and_then(Path::parent) {
            Some(dir) => Db::File(dir.join("casework.db")),
            None => Db::File(PathBuf::from("casework.db")),
        }
    }

    /// Open an existing store for reading, or say how to make one.
    pub fn open_existing(
        &self,
        config: &ConfigArg,
    ) -> Result<Box<dyn casework::store::Store>, String> {
        match self.target(config) {
            Db::File(path) => {
                if !path.exists() {
                    return Err(format!(
                        "no database at {}; `casework run --events FILE` creates it (or pass --db PATH)",
                        path.display()
                    ));
                }
                casework::store::SqliteStore::open(&path)
                    .map(|s| Box::new(s) as Box<dyn casework::store::Store>)
                    .map_err(|e| e.to_string())
            }
            Db::Postgres(url) => casework::store::postgres::PgStore::open(&url)
                .map(|s| Box::new(s) as Box<dyn casework::store::Store>)
                .map_err(|e| e.to_string()),
        }
    }
}

/// How a worker shares a PostgreSQL database (ignored with SQLite).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// How long a worker's lease on its partitions lasts: a worker that
    /// stops renewing (killed, paused, cut off) loses its partitions to
    /// the others this long after its last renewal.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub partition_lease: std::time::Duration,
    /// How many partitions a new PostgreSQL database gets (fixed once it
    /// is set up; more partitions than workers, so work can move).
    #[arg(long, default_value_t = casework::store::postgres::DEFAULT_PARTITIONS, value_name = "N")]
    pub partitions: u32,
}

/// Print each diagnostic as `file:line:col: error[code]: message`, the
/// source line with a caret under the column, and the hint.
pub fn print_diagnostics(out: &mut dyn Write, diags: &Diagnostics, sources: &[SourceFile]) {
    for d in diags.iter() {
        let _ = write_diagnostic(out, d, sources);
    }
}

fn write_diagnostic(
    out: &mut dyn Write,
    d: &Diagnostic,
    sources: &[SourceFile],
) -> std::io::Result<()> {
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    match &d.location {
        Some(loc) => writeln!(out, "{loc}: {sev}[{}]: {}", d.code, d.message)?,
        None => writeln!(out, "{sev}[{}]: {}", d.code, d.message)?,
    }
    let line = d.location.as_ref().and_then(|loc| {
        let file = sources.iter().find(|s| s.path == loc.file)?;
        Some((loc, file.line(loc.line)?))
    });
    if let Some((loc, text)) = line {
        let number = loc.line.to_string();
        let pad = " ".repeat(number.len());
        // Keep tabs so the caret lines up under them.
        let lead: String = text
            .chars()
            .take(loc.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(out, " {number} | {text}")?;
        writeln!(out, " {pad} | {lead}^")?;
    }
    if let Some(hint) = &d.hint {
        writeln!(out, "  hint: {hint}")?;
    }
    writeln!(out)
}

/// The closing line of a failed check.
pub fn print_error_count(out: &mut dyn Write, diags: &Diagnostics, shown: &str) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let plural = if errors == 1 { "" } else { "s" };
    let _ = writeln!(out, "{shown}: {errors} error{plural} found");
}
