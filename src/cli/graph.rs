//! `casework graph [CONFIG] --format dot|mermaid|svg`: draw the workflow.

use std::process::ExitCode;

use super::ConfigArg;

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Graphviz: `casework graph | dot -Tsvg > workflow.svg`.
    #[default]
    Dot,
    /// Mermaid `stateDiagram-v2`, for Markdown pages.
    Mermaid,
    /// An SVG picture, drawn by casework itself (the console's drawing):
    /// parallel arrows merged, the usual path as a straight spine, moves
    /// from many states in one note. Needs no Graphviz.
    Svg,
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
        Format::Svg => {
            match casework::console::workflow_svg(&loaded.workflow, &Default::default()) {
                Ok(svg) => svg,
                Err(e) => {
                    eprintln!("error: cannot draw the workflow: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    out_raw!("{text}");
    ExitCode::SUCCESS
}
