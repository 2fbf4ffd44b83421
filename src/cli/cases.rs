//! `casework cases [CONFIG] [--db PATH] [--at-risk]`: the cases in the store.

use std::process::ExitCode;

use casework::case::{Case, SlaStatus};
use casework::promise::PromiseStatus;

use super::{ConfigArg, DbArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub db: DbArg,
    /// Only cases that need attention: a promise at risk or broken, or an
    /// SLA warned or breached.
    #[arg(long)]
    pub at_risk: bool,
}

/// Whether a case needs attention now.
pub fn at_risk(case: &Case) -> bool {
    case.promises
        .iter()
        .any(|p| matches!(p.status, PromiseStatus::AtRisk | PromiseStatus::Broken))
        || case
            .sla
            .iter()
            .any(|c| matches!(c.status, SlaStatus::Warned | SlaStatus::Breached))
}

pub fn run(args: Args) -> ExitCode {
    let store = match args.db.open_existing(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = (|| -> Result<usize, casework::store::StoreError> {
        let mut shown = 0;
        for id in store.case_ids()? {
            let Some(case) = store.load(&id)? else {
                continue;
            };
            if args.at_risk && !at_risk(&case) {
                continue;
            }
            out!("{}", super::run::case_line(&case));
            shown += 1;
        }
        Ok(shown)
    })();
    match result {
        Ok(0) if args.at_risk => {
            out!("no case at risk");
            ExitCode::SUCCESS
        }
        Ok(0) => {
            out!("no cases yet");
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
