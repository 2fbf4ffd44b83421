//! `casework test FILE...`: run scenarios and check their expectations.

use std::path::PathBuf;
use std::process::ExitCode;

use casework::scenario::{Entry, Scenario};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files (a shell glob such as `rules/tests/*.yaml`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also print the timeline of failing scenarios.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(args: Args) -> ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &args.files {
        let name = file.display();
        let scenario = match Scenario::load(file) {
            Ok(s) => s,
            Err(e) => {
                out!("FAIL {name}\n  {e}");
                failed += 1;
                continue;
            }
        };
        let run = match scenario.run() {
            Ok(r) => r,
            Err(e) => {
                out!("FAIL {name}\n  {e}");
                failed += 1;
                continue;
            }
        };
        let failures = run.check(&scenario.def.expect);
        let n = scenario.def.expect.len();
        if failures.is_empty() {
            out!("ok   {name} ({n} expectations)");
            passed += 1;
            continue;
        }
        failed += 1;
        out!(
            "FAIL {name} ({} of {n} expectations failed)",
            failures.len()
        );
        for f in failures {
            out!(
                "  expect #{} (case {}, by {}):",
                f.index,
                f.expectation.case,
                f.at.to_rfc3339()
            );
            for p in f.problems {
                out!("    - {p}");
            }
        }
        for entry in run
            .timeline
            .iter()
            .filter(|e| matches!(e, Entry::Rejected(_)))
        {
            if let Entry::Rejected(r) = entry {
                out!("  note: event {} was rejected: {}", r.event.id, r.error);
            }
        }
        if args.verbose {
            for entry in &run.timeline {
                out!("    | {}", entry.to_json());
            }
        }
    }
    out!("\nscenarios: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
