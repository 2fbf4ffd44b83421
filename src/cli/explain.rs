//! `casework explain FILE CASE`: one case's story at the end of a scenario.

use std::path::PathBuf;
use std::process::ExitCode;

use casework::case::CaseId;

use casework::scenario::Scenario;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file.
    pub file: PathBuf,
    /// The case to explain.
    pub case: String,
    /// Print the case and its decisions as JSON.
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
    match run.engine().explain(&CaseId(args.case.clone())) {
        Ok(story) if args.json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&story).expect("cases serialize")
            );
            ExitCode::SUCCESS
        }
        Ok(story) => {
            out_raw!("{story}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: {e}; the scenario {} has no such case",
                args.file.display()
            );
            ExitCode::FAILURE
        }
    }
}
