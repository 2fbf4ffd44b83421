//! `casework graph [CONFIG] --format dot|mermaid`: draw the workflow.

use std::process::ExitCode;

use super::ConfigArg;

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Graphviz: `casework graph | dot -Tsvg > workflow.svg`.
    #[default]
    Dot,
    /// Mermaid `stateDiagram-v2`, for Markdown pages.
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
}

pub fn run(args: Args) -> ExitCode {
    let loaded = match args.config.load() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let text = match args.format {
        Format::Dot => loaded.workflow.to_dot(),
        Format::Mermaid => loaded.workflow.to_mermaid(),
    };
    out_raw!("{text}");
    ExitCode::SUCCESS
}
