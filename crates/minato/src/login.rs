//! `minato login` / `minato logout`: check credentials against a registry with the token flow,
//! then record them in the docker config file as `docker login` does.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use minato_kube::docker_config::{self, DockerConfig};

/// Arguments of `minato login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (and port), e.g. `registry.example:5000`.
    registry: String,
    /// Username, `<tenancy-namespace>/<user>` for tenancy registries.
    #[arg(short = 'u', long)]
    username: String,
    /// Password (an auth token); prefer --password-stdin.
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Config file to update [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json].
    #[arg(long)]
    docker_config: Option<PathBuf>,
}

/// Arguments of `minato logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host (and port).
    registry: String,
    /// Config file to update [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json].
    #[arg(long)]
    docker_config: Option<PathBuf>,
}

fn config_path(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) => Ok(path),
        None => Ok(docker_config::default_path()?),
    }
}

/// Runs `minato login`.
pub fn login(args: LoginArgs) -> anyhow::Result<()> {
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(password), false) => password,
        (None, true) => crate::stdin_secret::read()?,
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    let path = config_path(args.docker_config)?;
    let mut config = DockerConfig::load(&path)?;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(minato_kube::login::check(
            &args.registry,
            &args.username,
            &password,
        ))?;
    if outcome.tenancy_registry && !args.username.contains('/') {
        eprintln!(
            "warning: this registry expects usernames of the form <tenancy-namespace>/<username>"
        );
    }
    config.set_credentials(&args.registry, &args.username, &password);
    config.save()?;
    println!("Login Succeeded");
    Ok(())
}

/// Runs `minato logout`.
pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let path = config_path(args.docker_config)?;
    let mut config = DockerConfig::load(&path)?;
    if !config.remove_credentials(&args.registry) {
        bail!(
            "not logged in to {}",
            docker_config::registry_key(&args.registry)
        );
    }
    config.save()?;
    println!(
        "Removing login credentials for {}",
        docker_config::registry_key(&args.registry)
    );
    Ok(())
}
