//! `minato serve` settings: each one from a flag, else a `MINATO_*` environment variable
//! (clap handles those two), else the TOML file given with `--config`, else the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings that may come from flags, environment or the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "MINATO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the metadata database and blob files [default: ./minato-data].
    #[arg(long, env = "MINATO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain; serving HTTPS needs this and --tls-key.
    #[arg(long, env = "MINATO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "MINATO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// URL clients use to reach this registry (used in token realms and printed hints)
    /// [default: derived from --listen].
    #[arg(long, env = "MINATO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "MINATO_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest manifest accepted, in bytes [default: 4194304].
    #[arg(long, env = "MINATO_MAX_MANIFEST_BYTES")]
    pub max_manifest_bytes: Option<usize>,
    /// Seconds after which an idle upload session is removed [default: 86400].
    #[arg(long, env = "MINATO_UPLOAD_TTL_SECS")]
    pub upload_ttl_secs: Option<u64>,
    /// Default and largest page of tag and catalog listings [default: 1000].
    #[arg(long, env = "MINATO_PAGE_SIZE")]
    pub page_size: Option<usize>,
    /// Serve without authentication: anyone may push, pull and delete. For local development
    /// and tests only [default: false].
    #[arg(long, env = "MINATO_NO_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub no_auth: Option<bool>,
    /// Namespace of the tenancy created on first start [default: generated].
    #[arg(long, env = "MINATO_BOOTSTRAP_NAMESPACE")]
    pub bootstrap_namespace: Option<String>,
    /// Lifetime of registry bearer tokens in seconds [default: 300].
    #[arg(long, env = "MINATO_TOKEN_LIFETIME_SECS")]
    pub token_lifetime_secs: Option<u64>,
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// TLS files, when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Public URL.
    pub public_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Manifest size limit.
    pub max_manifest_bytes: usize,
    /// Upload session lifetime.
    pub upload_ttl: Duration,
    /// Listing page size.
    pub page_size: usize,
    /// Whether authentication is off.
    pub no_auth: bool,
    /// Namespace for the first tenancy.
    pub bootstrap_namespace: Option<String>,
    /// Bearer token lifetime.
    pub token_lifetime: Duration,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// Fills every unset value from `file`, then from the defaults.
    pub fn resolve(self, file: Settings) -> anyhow::Result<Resolved> {
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)));
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key must be given together"),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Resolved {
            listen,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("minato-data")),
            public_url: self
                .public_url
                .or(file.public_url)
                .unwrap_or_else(|| format!("{scheme}://{listen}")),
            tls,
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            max_manifest_bytes: self
                .max_manifest_bytes
                .or(file.max_manifest_bytes)
                .unwrap_or(4 * 1024 * 1024),
            upload_ttl: Duration::from_secs(
                self.upload_ttl_secs
                    .or(file.upload_ttl_secs)
                    .unwrap_or(86_400),
            ),
            page_size: self.page_size.or(file.page_size).unwrap_or(1000).max(1),
            no_auth: self.no_auth.or(file.no_auth).unwrap_or(false),
            bootstrap_namespace: self.bootstrap_namespace.or(file.bootstrap_namespace),
            token_lifetime: Duration::from_secs(
                self.token_lifetime_secs
                    .or(file.token_lifetime_secs)
                    .unwrap_or(300)
                    .max(1),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file: Settings = toml::from_str(
            "listen = \"0.0.0.0:6000\"\ndata-dir = \"/srv/minato\"\npage-size = 50\n",
        )
        .unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Settings::default()
        };
        let resolved = flags.resolve(file).unwrap();
        assert_eq!(resolved.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(resolved.data_dir, PathBuf::from("/srv/minato"));
        assert_eq!(resolved.page_size, 50);
        assert_eq!(resolved.max_manifest_bytes, 4 * 1024 * 1024);
        assert_eq!(resolved.public_url, "http://127.0.0.1:7000");
    }

    #[test]
    fn unknown_file_keys_and_half_tls_are_errors() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
        let half = Settings {
            tls_cert: Some("c.pem".into()),
            ..Settings::default()
        };
        assert!(half.resolve(Settings::default()).is_err());
    }
}
