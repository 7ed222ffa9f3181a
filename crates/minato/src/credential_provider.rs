//! `minato credential-provider`: the kubelet exec plugin (request on stdin, response on
//! stdout, errors on stderr with a non-zero exit), and `credential-provider config`, which
//! prints the kubelet's `CredentialProviderConfig` for it.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use minato_kube::credential_provider::{self, NodeCredential};

/// Arguments of `minato credential-provider`.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// JSON file `{"username": "<namespace>/<user>", "password": "<auth token>"}` holding the
    /// node's read-only identity [else MINATO_NODE_USERNAME / MINATO_NODE_PASSWORD].
    #[arg(long, global = true)]
    credentials_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<ProviderCommand>,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// Print a CredentialProviderConfig that runs this plugin for a registry.
    Config {
        /// Registry host (and port) whose images the plugin serves.
        #[arg(long)]
        registry: String,
        /// Name of the executable in the kubelet's provider bin dir.
        #[arg(long, default_value = "minato")]
        name: String,
        /// How long the kubelet caches credentials when the answer does not say.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "4m")]
        default_cache_duration: Duration,
    },
}

fn node_credential(file: Option<&PathBuf>) -> anyhow::Result<NodeCredential> {
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
    }
    Ok(NodeCredential {
        username: std::env::var("MINATO_NODE_USERNAME")
            .context("no node credential: give --credentials-file or set MINATO_NODE_USERNAME and MINATO_NODE_PASSWORD")?,
        password: std::env::var("MINATO_NODE_PASSWORD").context("MINATO_NODE_PASSWORD is not set")?,
    })
}

/// Runs the plugin or prints its configuration.
pub fn run(args: ProviderArgs) -> anyhow::Result<()> {
    if let Some(ProviderCommand::Config {
        registry,
        name,
        default_cache_duration,
    }) = args.command
    {
        let mut plugin_args = vec!["credential-provider".to_owned()];
        if let Some(path) = &args.credentials_file {
            plugin_args.push("--credentials-file".to_owned());
            plugin_args.push(path.display().to_string());
        }
        print!(
            "{}",
            credential_provider::kubelet_config(
                &name,
                &registry,
                &plugin_args,
                default_cache_duration
            )
        );
        return Ok(());
    }
    let node = node_credential(args.credentials_file.as_ref())?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the CredentialProviderRequest from stdin")?;
    let request = credential_provider::parse_request(&input)?;
    let response = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(credential_provider::respond(&request, &node))?;
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}
