//! `minato signatures list <image>` and `minato signatures delete <image> <signature-digest>`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use minato_kube::signatures::{self, SignatureContent};

use crate::verify::{connect, runtime};

/// Arguments of `minato signatures`.
#[derive(Debug, Args)]
pub struct SignaturesArgs {
    #[command(subcommand)]
    command: SignaturesCommand,
    /// The docker config file with registry credentials (default: `~/.docker/config.json`).
    #[arg(long, global = true)]
    docker_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SignaturesCommand {
    /// List the signatures of an image: digest, key, version, algorithm, created.
    List {
        /// The image (tag or digest).
        image: String,
    },
    /// Delete a signature manifest (the registry requires manage permission).
    Delete {
        /// The image (tag or digest) the signature belongs to.
        image: String,
        /// Digest of the signature manifest, as listed.
        signature: String,
    },
}

/// Runs the subcommand.
pub fn run(args: SignaturesArgs) -> anyhow::Result<()> {
    let config = args.docker_config;
    runtime()?.block_on(async move {
        match args.command {
            SignaturesCommand::List { image } => {
                let registry = connect(&image, config.as_deref()).await?;
                let found = signatures::list(&registry.client, &registry.reference).await?;
                println!("{}@{}", registry.reference.repository(), found.digest);
                println!("DIGEST\tKEY\tVERSION\tALGORITHM\tCREATED");
                for s in &found.signatures {
                    let (key, version, algorithm, created) = match &s.content {
                        SignatureContent::Record(r) => (
                            r.kms_key_id.clone(),
                            r.kms_key_version_id.clone(),
                            r.signing_algorithm.as_str().to_owned(),
                            r.created.clone().unwrap_or_else(|| "-".into()),
                        ),
                        SignatureContent::Cosign(_) => (
                            "-".into(),
                            "-".into(),
                            "cosign (ECDSA_P256_SHA_256)".into(),
                            "-".into(),
                        ),
                        SignatureContent::Invalid(why) => (
                            "-".into(),
                            "-".into(),
                            format!("invalid: {why}"),
                            "-".into(),
                        ),
                    };
                    println!("{}\t{key}\t{version}\t{algorithm}\t{created}", s.label());
                }
                Ok(())
            }
            SignaturesCommand::Delete { image, signature } => {
                let registry = connect(&image, config.as_deref()).await?;
                let found = signatures::list(&registry.client, &registry.reference).await?;
                if !found
                    .signatures
                    .iter()
                    .any(|s| s.manifest_digest == signature)
                {
                    anyhow::bail!("{signature} is not a signature of {image}");
                }
                registry
                    .client
                    .delete_manifest(&registry.reference.path, &signature)
                    .await?;
                println!("deleted {signature}");
                Ok(())
            }
        }
    })
}
