//! `meterbook`: the operator CLI (and, later, the server). Thin glue over the
//! library crates: parse arguments into the settings and a command, run it.
#![forbid(unsafe_code)]

mod backend;
mod bench;
mod bench_data;
mod bench_reports;
mod cli;
mod commands;
mod demo;
mod logging;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let settings = match settings::Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match commands::run(&settings, cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`meterbook report ... | head`) is the reader's choice, not an error.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<meterbook_io::report::usage::ReportError>()
                .is_some_and(|r| matches!(r, meterbook_io::report::usage::ReportError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}
