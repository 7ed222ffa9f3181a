//! `minato keys ...`: signing keys of a tenancy, through the admin API. Private keys never
//! leave the server; `keys public` prints public keys as PEM.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api_client::{Client, Connection, encode, field, lines};

/// Arguments of `minato keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key (needs `manage keys`).
    Create {
        namespace: String,
        name: String,
        /// Key type.
        #[arg(long, value_parser = ["rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256"])]
        algorithm: String,
    },
    /// List the keys of a tenancy and their versions (needs `inspect keys`).
    List { namespace: String },
    /// Add a new version and make it current; older versions keep verifying.
    Rotate { namespace: String, name: String },
    /// Disable a key, or one version of it: it neither signs nor verifies.
    Disable {
        namespace: String,
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Enable a key, or one version of it, again.
    Enable {
        namespace: String,
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Print the public key (PEM) of a version, the current one by default.
    Public {
        namespace: String,
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
}

/// Runs a keys command.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let client = Client::connect(&args.connection)?;
    let keys = |namespace: &str| format!("/admin/tenancies/{}/keys", encode(namespace));
    let key = |namespace: &str, name: &str| format!("{}/{}", keys(namespace), encode(name));
    let (answer, printer): (Value, fn(&Value) -> String) = match args.command {
        KeysCommand::Create {
            namespace,
            name,
            algorithm,
        } => (
            client.post(
                &keys(&namespace),
                json!({"name": name, "algorithm": algorithm}),
            )?,
            key_line,
        ),
        KeysCommand::List { namespace } => (client.get(&keys(&namespace))?, |v| lines(v, key_line)),
        KeysCommand::Rotate { namespace, name } => (
            client.post(&format!("{}/rotate", key(&namespace, &name)), json!({}))?,
            key_line,
        ),
        KeysCommand::Disable {
            namespace,
            name,
            version,
        } => (
            client.post(
                &format!("{}/disable", key(&namespace, &name)),
                json!({"version": version}),
            )?,
            key_line,
        ),
        KeysCommand::Enable {
            namespace,
            name,
            version,
        } => (
            client.post(
                &format!("{}/enable", key(&namespace, &name)),
                json!({"version": version}),
            )?,
            key_line,
        ),
        KeysCommand::Public {
            namespace,
            name,
            version,
        } => {
            let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
            (
                client.get(&format!("{}/public{query}", key(&namespace, &name)))?,
                public_pem,
            )
        }
    };
    args.connection.output.print(&answer, printer)
}

/// `<keyId>\t<algorithm>\t<state>\tversion <current>` of a key.
fn key_line(key: &Value) -> String {
    format!(
        "{}\t{}\t{}\tversion {}",
        field(key, "keyId"),
        field(key, "algorithm"),
        field(key, "state"),
        field(key, "currentVersion")
    )
}

/// The PEM of the only version answered, else of the current version.
fn public_pem(answer: &Value) -> String {
    let versions = answer["versions"].as_array().cloned().unwrap_or_default();
    let chosen = match versions.as_slice() {
        [only] => Some(only),
        all => all
            .iter()
            .find(|v| v["version"] == answer["currentVersion"]),
    };
    chosen
        .map(|v| field(v, "publicKeyPem").trim_end().to_owned())
        .unwrap_or_default()
}
