//! `minato serve`: open the store, bind, serve until SIGINT/SIGTERM, drain, exit 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use minato_iam::audit::AuditLog;
use minato_registry::auth::{Auth, AuthConfig, TenancyAccess};
use minato_registry::{OpenAccess, RegistryConfig, Tls};
use minato_sign::{RootKey, Vault};
use minato_store::{Store, StoreOptions};

use crate::config::Settings;

/// Arguments of `minato serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with settings (keys are the flag names, e.g. `data-dir`).
    #[arg(long, env = "MINATO_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

/// Runs the server to completion.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let settings = args.settings.resolve(file)?;
    let _log_guard = crate::logging::init(settings.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(settings))
}

async fn serve(settings: crate::config::Resolved) -> anyhow::Result<()> {
    let store = Arc::new(
        Store::open(
            &settings.data_dir,
            StoreOptions {
                upload_ttl: settings.upload_ttl,
                ..StoreOptions::default()
            },
        )
        .await
        .with_context(|| format!("opening the store in {}", settings.data_dir.display()))?,
    );
    let tls = settings
        .tls
        .as_ref()
        .map(|(cert, key)| {
            Tls {
                cert: cert.clone(),
                key: key.clone(),
            }
            .server_config()
        })
        .transpose()
        .context("loading TLS certificate and key")?;
    let config = RegistryConfig {
        max_manifest_bytes: settings.max_manifest_bytes,
        max_page: settings.page_size,
        ..RegistryConfig::default()
    };
    let grace = config.shutdown_grace;
    let router = if settings.no_auth {
        tracing::warn!("authentication is disabled (--no-auth): anyone may push, pull and delete");
        minato_registry::build_router(store.clone(), config, Arc::new(OpenAccess))
    } else {
        let auth = open_auth(&settings).await?;
        let vault = open_vault(&settings.data_dir).await?;
        minato_registry::build_router(store.clone(), config, Arc::new(TenancyAccess(auth.clone())))
            .merge(minato_registry::tenancy_routes(auth, store.clone(), vault))
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let maintenance = minato_registry::spawn_maintenance(store, Duration::from_secs(600));
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = settings.public_url,
        data_dir = %settings.data_dir.display(),
        tls = settings.tls.is_some(),
        "minato registry listening"
    );
    minato_registry::serve(listener, router, tls, grace, shutdown_signal()).await?;
    maintenance.abort();
    tracing::info!("minato stopped");
    Ok(())
}

/// Opens the identity directory, runs the first-start bootstrap, and builds the auth engine.
async fn open_auth(settings: &crate::config::Resolved) -> anyhow::Result<Arc<Auth>> {
    let (directory, tokens) = minato_iam::open(
        &settings.data_dir,
        settings.token_lifetime,
        Duration::from_secs(24 * 3600),
    )
    .await
    .context("opening the identity database")?;
    let config = AuthConfig::for_public_url(&settings.public_url);
    crate::bootstrap::run_if_empty(
        &directory,
        &settings.data_dir,
        settings.bootstrap_namespace.as_deref(),
        &config.service,
    )
    .await?;
    let audit =
        AuditLog::open(&settings.data_dir.join("audit.log")).context("opening the audit log")?;
    Ok(Arc::new(Auth::new(
        Arc::new(directory),
        Arc::new(tokens),
        Arc::new(audit),
        config,
    )))
}

/// Environment variable holding the vault's root key (standard base64 of 32 bytes); when
/// unset, the key is `<data-dir>/root.key`, created with mode 0600 on first start.
const ROOT_KEY_ENV: &str = "MINATO_ROOT_KEY";

/// Opens the signing-key vault (`<data-dir>/keys.db`) under the root key.
async fn open_vault(data_dir: &Path) -> anyhow::Result<Arc<Vault>> {
    let root = match std::env::var(ROOT_KEY_ENV) {
        Ok(text) => RootKey::from_env_base64(&text)?,
        Err(_) => RootKey::load_or_create(&data_dir.join("root.key"))?,
    };
    let vault = Vault::open(data_dir, root)
        .await
        .context("opening the signing-key vault")?;
    Ok(Arc::new(vault))
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
