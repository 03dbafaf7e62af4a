//! The `mailplan` binary: parse arguments, set up miette, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Planning allocates millions of small strings and sets; mimalloc is markedly faster than the
/// system allocator for that and returns memory in fewer, larger pieces.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mailplan::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let terminal = std::io::stderr().is_terminal();
    let color = cli.color.enabled(terminal);
    // Wrapping helps people at a terminal and hurts logs and grep everywhere else.
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .wrap_lines(terminal)
                .build(),
        )
    }));
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::FAILURE
        }
    }
}
