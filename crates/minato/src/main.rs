//! The `minato` command: parses arguments and hands over to the libraries.

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(*args),
    }
}
