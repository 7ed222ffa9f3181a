//! The `minato` command: parses arguments and hands over to the libraries.

mod admin;
mod bootstrap;
mod config;
mod create_secret;
mod credential_provider;
mod doctor;
mod logging;
mod login;
mod pull;
mod serve;
mod stdin_secret;

use std::process::ExitCode;

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
    /// Pull an image as the kubelet would (credentials, platform, events) into an OCI layout.
    Pull(Box<pull::PullArgs>),
    /// Kubelet exec credential provider: short-lived registry tokens for nodes.
    CredentialProvider(credential_provider::ProviderArgs),
    /// Explain, per container, whether the kubelet would pull its image and why not.
    Doctor(doctor::DoctorArgs),
}

fn main() -> ExitCode {
    let success = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match Cli::parse().command {
        Command::Serve(args) => success(serve::run(*args)),
        Command::Admin(args) => success(admin::run(*args)),
        Command::Create(args) => success(create_secret::run(*args)),
        Command::Login(args) => success(login::login(args)),
        Command::Logout(args) => success(login::logout(args)),
        Command::Pull(args) => success(pull::run(*args)),
        Command::CredentialProvider(args) => success(credential_provider::run(args)),
        Command::Doctor(args) => doctor::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
