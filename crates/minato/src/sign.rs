//! `minato sign`: asks the image's registry to sign the image with a tenancy key. The server
//! makes the OCIR-style signature (and a cosign one for ECDSA keys) and stores it next to the
//! image; the private key never leaves it. Credentials come from the docker config file that
//! `minato login` writes, else the request is anonymous.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use minato_kube::docker_config::{self, DockerConfig};
use minato_kube::reference::{ImageReference, parse_error_message};
use serde_json::{Value, json};

use crate::api_client::{Client, Output, encode, field};

/// Arguments of `minato sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Image to sign, `<registry>/<namespace>/<repo>[:tag][@digest]`.
    image: String,
    /// Signing key, `<namespace>/<name>`.
    #[arg(long)]
    key: String,
    /// Key version [default: the key's current version].
    #[arg(long)]
    key_version: Option<u32>,
    /// SHA_224_RSA_PKCS_PSS, SHA_256_RSA_PKCS_PSS, SHA_384_RSA_PKCS_PSS, SHA_512_RSA_PKCS_PSS
    /// (RSA keys) or ECDSA_P256_SHA_256 (ECDSA P-256 keys) [default: fits the key].
    #[arg(long)]
    signing_algorithm: Option<String>,
    /// Free-text description stored in the signed payload.
    #[arg(long)]
    description: Option<String>,
    /// Compact JSON metadata stored in the signed payload, e.g. `{"buildNumber":"42"}`.
    #[arg(long)]
    metadata: Option<String>,
    /// Docker config file with registry credentials [default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json].
    #[arg(long)]
    docker_config: Option<PathBuf>,
    #[command(flatten)]
    output: Output,
}

/// Runs `minato sign`.
pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let image = ImageReference::parse(&args.image)
        .map_err(|e| anyhow::anyhow!(parse_error_message(&args.image, &e)))?;
    let Some((namespace, name)) = args.key.split_once('/') else {
        bail!("--key must be <namespace>/<name>, got {:?}", args.key);
    };
    let credentials = credentials(args.docker_config, &image.domain)?;
    let server = reachable_base_url(&image.domain)?;
    let client = Client::new(&server, credentials)?;
    let answer = client.post(
        &format!(
            "/admin/tenancies/{}/keys/{}/sign",
            encode(namespace),
            encode(name)
        ),
        json!({
            "repository": image.path,
            "reference": image.manifest_reference(),
            "keyVersion": args.key_version,
            "signingAlgorithm": args.signing_algorithm,
            "description": args.description.unwrap_or_default(),
            "metadata": args.metadata.unwrap_or_default(),
        }),
    )?;
    args.output.print(&answer, result_lines)
}

/// One `name: value` line per field of a sign answer.
fn result_lines(answer: &Value) -> String {
    [
        "digest",
        "signatureDigest",
        "kmsKeyId",
        "kmsKeyVersionId",
        "signingAlgorithm",
        "cosignTag",
        "message",
        "signature",
    ]
    .iter()
    .filter(|key| !answer[**key].is_null())
    .map(|key| format!("{key}: {}", field(answer, key)))
    .collect::<Vec<_>>()
    .join("\n")
}

/// The saved credentials for `registry`, if any.
fn credentials(
    explicit: Option<PathBuf>,
    registry: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let path = match explicit {
        Some(path) => path,
        None => match docker_config::default_path() {
            Ok(path) => path,
            Err(_) => return Ok(None),
        },
    };
    let config = DockerConfig::load(&path)
        .with_context(|| format!("reading the docker config {}", path.display()))?;
    Ok(config.credentials(registry))
}

/// The first of the registry's candidate URLs (HTTPS, then HTTP for loopback hosts) that
/// answers at all.
fn reachable_base_url(registry: &str) -> anyhow::Result<String> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut last_error = None;
    for base in minato_kube::login::candidate_base_urls(registry) {
        match http.get(format!("{base}/v2/")).send() {
            Ok(_) => return Ok(base),
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) => Err(e).with_context(|| format!("cannot reach registry {registry}")),
        None => bail!("no URL to reach registry {registry}"),
    }
}
