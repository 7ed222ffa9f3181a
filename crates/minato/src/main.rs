//! The `minato` command: parses arguments and hands over to the libraries.

mod admin;
mod api_client;
mod bootstrap;
mod config;
mod create_secret;
mod credential_provider;
mod doctor;
mod keys;
mod logging;
mod login;
mod pull;
mod serve;
mod sign;
mod signatures;
mod stdin_secret;
mod verify;
mod webhook;

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
    /// Signing keys of a tenancy: create, list, rotate, disable, enable, public PEM.
    Keys(Box<keys::KeysArgs>),
    /// Sign an image with a tenancy key (the registry signs and stores the signature).
    Sign(Box<sign::SignArgs>),
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
    /// Check that an image has a valid signature from a trusted key.
    Verify(verify::VerifyArgs),
    /// List or delete the signatures of an image.
    Signatures(signatures::SignaturesArgs),
    /// Run the image verification admission webhook, or print its manifests.
    Webhook(Box<webhook::WebhookArgs>),
}

fn main() -> ExitCode {
    let success = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match Cli::parse().command {
        Command::Serve(args) => success(serve::run(*args)),
        Command::Admin(args) => success(admin::run(*args)),
        Command::Keys(args) => success(keys::run(*args)),
        Command::Sign(args) => success(sign::run(*args)),
        Command::Create(args) => success(create_secret::run(*args)),
        Command::Login(args) => success(login::login(args)),
        Command::Logout(args) => success(login::logout(args)),
        Command::Pull(args) => success(pull::run(*args)),
        Command::CredentialProvider(args) => success(credential_provider::run(args)),
        Command::Doctor(args) => doctor::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Signatures(args) => success(signatures::run(args)),
        Command::Webhook(args) => success(webhook::run(*args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
