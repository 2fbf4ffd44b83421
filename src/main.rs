//! The `casework` command line. Each subcommand lives in its own module
//! under `cli/`; see [`cli::Command`].

use std::process::ExitCode;

mod cli;

/// mimalloc, not the system allocator: handling an event allocates and
/// frees many small values (rule arguments, decisions, the case's next
/// state), where glibc's malloc cost a quarter of the engine's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
