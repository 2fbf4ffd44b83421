//! `casework show CASE [--db PATH]`: one stored case's story.

use std::path::PathBuf;
use std::process::ExitCode;

use casework::case::{CaseId, CaseStory};
use casework::engine::Explanation;

use super::{ConfigArg, DbArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The case to show.
    pub case: String,
    /// The configuration whose directory holds the default database.
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
    /// Print the case and its decisions as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let config = ConfigArg {
        config: args.config.clone(),
    };
    let store = match args.db.open_existing(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let id = CaseId(args.case.clone());
    let story = store.load(&id).and_then(|case| {
        let Some(case) = case else { return Ok(None) };
        let events = store.events(&id)?.into_iter().map(|a| a.event.id);
        Ok(Some(CaseStory::new(
            case,
            store.past(&id)?,
            events.collect(),
            store.decisions(&id)?,
        )))
    });
    match story {
        Ok(Some(story)) => {
            let story = Explanation::new(story);
            if args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&story).unwrap_or_default()
                );
            } else {
                out_raw!("{story}");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "error: no case {} in {}; `casework cases` lists them",
                args.case,
                args.db.target(&config)
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
