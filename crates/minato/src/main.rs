//! The `minato` command: parses arguments and hands over to the libraries.

mod admin;
mod bootstrap;
mod config;
mod create_secret;
mod credential_provider;
mod logging;
mod login;
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
    /// Create Kubernetes objects (pull secrets identical to kubectl's).
    Create(Box<create_secret::CreateArgs>),
    /// Check registry credentials and save them in the docker config file.
    Login(login::LoginArgs),
    /// Remove saved registry credentials.
    Logout(login::LogoutArgs),
    /// Kubelet exec credential provider: short-lived registry tokens for nodes.
    CredentialProvider(credential_provider::ProviderArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(*args),
        Command::Create(args) => create_secret::run(*args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::CredentialProvider(args) => credential_provider::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
