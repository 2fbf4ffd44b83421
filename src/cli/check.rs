//! `casework check [CONFIG]`: validate everything, report every problem.

use std::process::ExitCode;

use super::{ConfigArg, print_diagnostics, print_error_count};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: Args) -> ExitCode {
    let report = args.config.check();
    let shown = args.config.shown();
    let stderr = &mut std::io::stderr().lock();
    print_diagnostics(stderr, &report.diagnostics, &report.sources);
    let Some(loaded) = report.config else {
        print_error_count(stderr, &report.diagnostics, &shown);
        return ExitCode::FAILURE;
    };
    // Compile what the engine would: calendars and the rule files.
    let rule_warnings = match casework::engine::Pack::compile(loaded.clone()) {
        Ok((_, rules)) => rules.warnings().clone(),
        Err(diags) => {
            print_diagnostics(stderr, &diags, &report.sources);
            print_error_count(stderr, &diags, &shown);
            return ExitCode::FAILURE;
        }
    };
    print_diagnostics(stderr, &rule_warnings, &report.sources);
    let wf = &loaded.workflow;
    let teams = loaded.def.directory.as_ref().map_or(0, |d| d.teams.len());
    let warnings = loaded.warnings.iter().count() + rule_warnings.iter().count();
    let warned = match warnings {
        0 => String::new(),
        1 => ", 1 warning".to_owned(),
        n => format!(", {n} warnings"),
    };
    out!(
        "{shown}: ok: {} states, {} transitions, {} teams, {} rule files{warned}",
        wf.states().count(),
        wf.transitions().len(),
        teams,
        loaded.rule_files.len(),
    );
    // Declared with their kind alone: not a mistake, but they cannot run.
    for (name, needs) in loaded.actions.not_configured() {
        out!(
            "  plugin `{name}` is not configured yet ({needs}): its actions will wait in the outbox"
        );
    }
    ExitCode::SUCCESS
}
