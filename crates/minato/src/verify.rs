//! `minato verify <image> --key <namespace>/<name> | --public-key FILE`: checks that the image
//! has a valid signature from a trusted key (signature, digest, repository and key all match).
//! Exit code 0 only when one exists; 1 with the reasons otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use minato_kube::docker_config::{self, DockerConfig};
use minato_kube::reference::ImageReference;
use minato_kube::registry_client::{ClientConfig, Credential, RegistryClient, Transport};
use minato_kube::signatures::{self, PolicyKey};
use minato_kube::trusted_keys;

/// Arguments of `minato verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image (tag or digest), e.g. `registry.example:5000/acme/app:1.0`.
    image: String,
    /// A tenancy key of the image's registry, `<namespace>/<name>` (repeatable); its public
    /// keys are fetched with the credentials of the docker config.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A PEM public key file (repeatable).
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
    /// The docker config file with registry credentials (default: `~/.docker/config.json`).
    #[arg(long)]
    docker_config: Option<PathBuf>,
}

/// Options shared by the commands that talk to an image's registry.
pub struct Registry {
    /// The parsed image.
    pub reference: ImageReference,
    /// A client with the docker config's credential for that registry (or anonymous).
    pub client: RegistryClient,
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Loads the docker config (`None` when no file is given and the default path is unknown).
pub fn load_docker_config(path: Option<&Path>) -> anyhow::Result<Option<DockerConfig>> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => match docker_config::default_path() {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(DockerConfig::load(&path)?))
}

/// Parses `image` and connects to its registry with the docker config's credential.
pub async fn connect(image: &str, config: Option<&Path>) -> anyhow::Result<Registry> {
    let reference =
        ImageReference::parse(image).with_context(|| format!("invalid image {image:?}"))?;
    let credential = load_docker_config(config)?
        .and_then(|c| c.credentials(&reference.domain))
        .map(|(user, password)| Credential::new(user, password));
    let transport = Transport::new(&ClientConfig::default())?;
    let client = signatures::connect(&transport, &reference, credential).await?;
    Ok(Registry { reference, client })
}

/// Runs the verification.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.keys.is_empty() && args.public_keys.is_empty() {
        anyhow::bail!("give at least one --key <namespace>/<name> or --public-key FILE");
    }
    let mut keys = Vec::new();
    for path in &args.public_keys {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        keys.push(
            signatures::pem_key(&path.display().to_string(), &pem).map_err(anyhow::Error::msg)?,
        );
    }
    runtime()?.block_on(async {
        let registry = connect(&args.image, args.docker_config.as_deref()).await?;
        for name in &args.keys {
            keys.push(PolicyKey::Named(trusted_keys::fetch(&registry.client, name).await?));
        }
        let verification = signatures::verify(&registry.client, &registry.reference, &keys).await?;
        let image = format!("{}@{}", registry.reference.repository(), verification.image.digest);
        if let Some(key) = &verification.verified_by {
            println!("{image}: verified, signed by {key}");
            return Ok(ExitCode::SUCCESS);
        }
        let tried: Vec<&str> = keys.iter().map(PolicyKey::label).collect();
        eprintln!(
            "{image}: no valid signature from a trusted key ({} signatures checked; keys tried: {})",
            verification.checks.len(),
            tried.join(", ")
        );
        for reason in verification.reasons() {
            eprintln!("  {reason}");
        }
        Ok(ExitCode::FAILURE)
    })
}
