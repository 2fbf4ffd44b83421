//! `casework simulate FILE [--json]`: play a scenario and print the timeline.

use std::path::PathBuf;
use std::process::ExitCode;

use casework::engine::explain::describe;

use casework::scenario::{Entry, Scenario};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file.
    pub file: PathBuf,
    /// One JSON decision record per line instead of the readable timeline.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let run = match Scenario::load(&args.file).and_then(|s| s.run()) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for entry in &run.timeline {
        if args.json {
            out!("{}", entry.to_json());
            continue;
        }
        match entry {
            Entry::Decision(d) => {
                out!("{}  {:<6} {}", d.at.to_rfc3339(), d.case, describe(d));
            }
            Entry::Rejected(r) => {
                out!(
                    "{}  REJECTED {}: {}",
                    r.at.to_rfc3339(),
                    r.event.id,
                    r.error
                );
            }
        }
    }
    ExitCode::SUCCESS
}
