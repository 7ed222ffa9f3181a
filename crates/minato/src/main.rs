//! The `minato` command: parses arguments and hands over to the libraries.

mod admin;
mod bootstrap;
mod config;
mod logging;
mod serve;

use clap::{Parser, Subcommand};

/// Self-hosted container registry and Kubernetes image-pull toolkit.
#[derive(Parser)]
#[command(name = "minato", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server.
    Serve(Box<serve::ServeArgs>),
    /// Administer tenancies, users, groups, tokens, policies and repositories.
    Admin(Box<admin::AdminArgs>),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
