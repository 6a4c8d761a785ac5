//! `meterbook`: the operator CLI (and, later, the server). Thin glue over the
//! library crates: parse arguments into the settings and a command, run it.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod commands;
mod demo;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let settings = settings::Settings::load(&cli);
    match commands::run(&settings, cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
