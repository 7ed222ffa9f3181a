//! `minato create secret docker-registry`: kubectl's command with the same flags, output and
//! errors, plus `--password-stdin`, `--verify` and warnings about credentials that will fail.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use minato_kube::secret::{DEFAULT_SERVER, DockerRegistryOptions, FileSource, Secret};

/// `minato create ...`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    what: CreateCommand,
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Create Kubernetes objects for a cluster.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// A `kubernetes.io/dockerconfigjson` pull secret, printed as kubectl prints it.
    DockerRegistry(DockerRegistryArgs),
}

/// Flags of `create secret docker-registry`.
#[derive(Debug, Args)]
pub struct DockerRegistryArgs {
    /// The secret's name (exactly one).
    names: Vec<String>,
    /// Registry server, written verbatim as the `auths` key.
    #[arg(long, default_value = DEFAULT_SERVER)]
    docker_server: String,
    /// Username, `<tenancy-namespace>/<user>` for tenancy registries.
    #[arg(long, default_value = "")]
    docker_username: String,
    /// Password (an auth token); prefer --password-stdin.
    #[arg(long, default_value = "")]
    docker_password: String,
    /// Email (optional, omitted when empty).
    #[arg(long, default_value = "")]
    docker_email: String,
    /// `[key=]path` of a docker config file to store verbatim (repeatable).
    #[arg(long = "from-file")]
    from_file: Vec<String>,
    /// Namespace written into the Secret.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Append a hash of the content to the name.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    append_hash: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["yaml", "json"], default_value = "yaml")]
    output: String,
    /// Accepted for kubectl compatibility; minato never contacts an API server.
    #[arg(long, num_args = 0..=1, default_missing_value = "client", value_parser = ["none", "client", "server"])]
    dry_run: Option<String>,
    /// Read the password from standard input (no shell quoting needed).
    #[arg(long)]
    password_stdin: bool,
    /// Log in to the registry with the credentials first and fail with its reason.
    #[arg(long)]
    verify: bool,
}

/// Runs `minato create ...`.
pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let CreateCommand::Secret(SecretCommand::DockerRegistry(args)) = args.what;
    docker_registry(args)
}

/// Go's wording of common file errors, as kubectl prints them.
fn go_error_text(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_owned(),
        _ => error.to_string().to_lowercase(),
    }
}

fn read_sources(sources: &[String]) -> anyhow::Result<Vec<(FileSource, Vec<u8>)>> {
    let mut files = Vec::new();
    for text in sources {
        let source = FileSource::parse(text)?;
        let metadata = std::fs::metadata(&source.path)
            .map_err(|e| anyhow::anyhow!("error reading {}: {}", source.path, go_error_text(&e)))?;
        if metadata.is_dir() {
            bail!("cannot give a key name for a directory path.");
        }
        let content = std::fs::read(&source.path)
            .map_err(|e| anyhow::anyhow!("error reading {}: {}", source.path, go_error_text(&e)))?;
        files.push((source, content));
    }
    Ok(files)
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// Warnings about credentials that are accepted here but fail at pull time.
fn credential_warnings(args: &DockerRegistryArgs, tenancy_registry: bool) {
    for (what, value) in [
        ("password", &args.docker_password),
        ("username", &args.docker_username),
    ] {
        if value.trim() != value.as_str() {
            warn(&format!(
                "the {what} has whitespace at its start or end ({} characters in all); the registry will refuse it",
                value.chars().count()
            ));
        }
    }
    if tenancy_registry && !args.docker_username.is_empty() && !args.docker_username.contains('/') {
        warn(&format!(
            "username {:?} has no tenancy namespace; this registry expects <tenancy-namespace>/<username>",
            args.docker_username
        ));
    }
}

/// Hosts of managed tenancy registries, recognisable without asking them.
fn known_tenancy_host(server: &str) -> bool {
    let host = minato_kube::docker_config::registry_key(server);
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    host.ends_with(".ocir.io")
        || (host.starts_with("ocir.") && host.ends_with(".oci.oraclecloud.com"))
}

fn docker_registry(mut args: DockerRegistryArgs) -> anyhow::Result<()> {
    if args.names.len() != 1 {
        bail!(
            "exactly one NAME is required, got {}\nSee 'minato create secret docker-registry -h' for help and examples",
            args.names.len()
        );
    }
    if args.password_stdin {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from standard input")?;
        let trimmed = password.strip_suffix('\n').unwrap_or(&password);
        args.docker_password = trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned();
    }
    let files = read_sources(&args.from_file)?;
    let mut tenancy_registry = known_tenancy_host(&args.docker_server);
    if args.verify && files.is_empty() {
        let outcome = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(minato_kube::login::check(
                &args.docker_server,
                &args.docker_username,
                &args.docker_password,
            ))?;
        tenancy_registry |= outcome.tenancy_registry;
    }
    if files.is_empty() {
        credential_warnings(&args, tenancy_registry);
    }
    let secret = Secret::docker_registry(DockerRegistryOptions {
        name: args.names.remove(0),
        namespace: args.namespace,
        server: args.docker_server,
        username: args.docker_username,
        password: args.docker_password,
        email: args.docker_email,
        files,
        append_hash: args.append_hash,
    })?;
    let document = if args.output == "json" {
        secret.to_json()
    } else {
        secret.to_yaml()
    };
    print!("{document}");
    Ok(())
}
