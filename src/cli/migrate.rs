//! `casework migrate --from casework.db --to postgres://…`: move an
//! embedded store into PostgreSQL, where several workers can share it.

use std::path::PathBuf;
use std::process::ExitCode;

use casework::store::postgres::{PgOptions, import_sqlite, is_url, shown_url};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQLite store to copy (left as it is).
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into: new, or without cases.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Partitions of the new database (fixed once it is set up).
    #[arg(long, default_value_t = casework::store::postgres::DEFAULT_PARTITIONS, value_name = "N")]
    pub partitions: u32,
}

pub fn run(args: Args) -> ExitCode {
    if !is_url(&args.to) {
        eprintln!(
            "error: --to {}: not a PostgreSQL URL; write postgres://USER@HOST:PORT/DATABASE",
            args.to
        );
        return ExitCode::FAILURE;
    }
    if !args.from.exists() {
        eprintln!("error: --from {}: no such file", args.from.display());
        return ExitCode::FAILURE;
    }
    let options = PgOptions {
        partitions: args.partitions,
    };
    let started = std::time::Instant::now();
    out!(
        "copying {} into {}",
        args.from.display(),
        shown_url(&args.to)
    );
    let copied = import_sqlite(&args.from, &args.to, &options, |c| {
        let mark = if c.from == c.to { "" } else { "  MISMATCH" };
        out!("  {:<10} {:>9} rows → {:>9}{mark}", c.table, c.from, c.to);
    });
    match copied {
        Ok(copied) if copied.iter().all(|c| c.from == c.to) => {
            out!(
                "done in {:.1} s: every table has as many rows as in {}; run `casework verify --db {}` to replay every case",
                started.elapsed().as_secs_f64(),
                args.from.display(),
                shown_url(&args.to)
            );
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("error: row counts differ (see above); nothing was kept in the target");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}; nothing was kept in the target");
            ExitCode::FAILURE
        }
    }
}
