//! `minato webhook`: the image verification admission webhook (HTTPS), and
//! `minato webhook manifests`, which prints what it takes to run it in a cluster.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use minato_kube::policy::{Engine, Policy};
use minato_kube::webhook;
use minato_kube::webhook_manifests::{self, ManifestOptions};

use crate::verify::{load_docker_config, runtime};

/// Arguments of `minato webhook`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebhookArgs {
    #[command(subcommand)]
    command: Option<WebhookCommand>,
    /// The ImageVerificationPolicy file.
    #[arg(long, required = true)]
    policy: Option<PathBuf>,
    /// Serving certificate chain (PEM).
    #[arg(long, required = true)]
    tls_cert: Option<PathBuf>,
    /// Serving private key (PEM).
    #[arg(long, required = true)]
    tls_key: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: String,
    /// The docker config file with registry credentials.
    #[arg(long)]
    docker_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Print Namespace, Secret (generated CA and serving certificate), ConfigMap (policy),
    /// Deployment, Service and the webhook configurations.
    Manifests(ManifestArgs),
}

#[derive(Debug, Args)]
struct ManifestArgs {
    /// Namespace of the webhook.
    #[arg(long, default_value = "minato-system")]
    namespace: String,
    /// Registry whose images are verified (`host[:port]` or URL).
    #[arg(long)]
    registry: String,
    /// Service name.
    #[arg(long, default_value = "minato-image-verify")]
    service: String,
    /// Image running `minato webhook`.
    #[arg(long, default_value = "minato:latest")]
    image: String,
    /// Trusted key `<namespace>/<name>` for the generated policy (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
}

/// Runs the server or prints the manifests.
pub fn run(args: WebhookArgs) -> anyhow::Result<()> {
    if let Some(WebhookCommand::Manifests(m)) = args.command {
        let names = webhook_manifests::service_names(&m.service, &m.namespace);
        let certs = webhook_manifests::generate_certs(&names)?;
        let options = ManifestOptions {
            namespace: m.namespace,
            service: m.service,
            image: m.image,
            registry: minato_kube::docker_config::registry_key(&m.registry),
            keys: m.keys,
        };
        print!("{}", webhook_manifests::render(&options, &certs));
        return Ok(());
    }
    let (Some(policy), Some(cert), Some(key)) = (args.policy, args.tls_cert, args.tls_key) else {
        anyhow::bail!("--policy, --tls-cert and --tls-key are required");
    };
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let text = String::from_utf8(read(&policy)?).context("the policy is not UTF-8")?;
    let policy = Policy::parse(&text).with_context(|| policy.display().to_string())?;
    let tls = webhook::tls_config(&read(&cert)?, &read(&key)?)?;
    let docker_config = load_docker_config(args.docker_config.as_deref())?;
    let engine = Arc::new(Engine::new(policy, docker_config).map_err(anyhow::Error::msg)?);
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!(
            "minato webhook listening on https://{}",
            listener.local_addr()?
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        webhook::serve(listener, tls, engine, shutdown).await?;
        Ok(())
    })
}
