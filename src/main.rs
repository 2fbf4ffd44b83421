//! The `casework` command line. Each subcommand lives in its own module
//! under `cli/`; see [`cli::Command`].

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
