//! Router assembly, the connection loop (plain TCP or TLS), request logging and graceful
//! shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use minato_store::Store;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::access::{AccessControl, AccessRequest, action_for};
use crate::error::{ApiError, Code};
use crate::headers;
use crate::route::{self, RouteError};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Largest manifest accepted; bigger pushes get 413.
    pub max_manifest_bytes: usize,
    /// Default and largest page of tag and catalog listings.
    pub max_page: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_page: 1000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Durable registry state.
    pub store: Arc<Store>,
    /// HTTP settings.
    pub config: Arc<RegistryConfig>,
    /// Who may do what.
    pub access: Arc<dyn AccessControl>,
}

/// The client address of a connection, attached to each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Builds the registry router: `/v2/` API behind `access`, and the health endpoints.
pub fn build_router(
    store: Arc<Store>,
    config: RegistryConfig,
    access: Arc<dyn AccessControl>,
) -> Router {
    let state = AppState {
        store,
        config: Arc::new(config),
        access,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .fallback(|| async { ApiError::not_found(Code::Unsupported, "no such endpoint") })
        .with_state(state)
}

/// The routes that only exist with tenancy authentication: the token endpoint and the admin
/// API (including signing keys and server-side signing, which store signatures in `store`
/// with keys of `vault`). Merge them into [`build_router`]'s router.
pub fn tenancy_routes(
    auth: Arc<crate::auth::Auth>,
    store: Arc<Store>,
    vault: Arc<minato_sign::Vault>,
) -> Router {
    Router::new()
        .route(
            "/20180419/docker/token",
            get(crate::auth::token_endpoint::get_token)
                .post(crate::auth::token_endpoint::post_token),
        )
        .with_state(auth.clone())
        .merge(crate::admin::router(crate::admin::AdminState {
            auth,
            store,
            vault,
        }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ready().await {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "metadata database unavailable",
        )
            .into_response()
    }
}

/// Every `/v2` request: parse the route once, check access, then dispatch.
async fn v2(State(state): State<AppState>, request: Request) -> Response {
    let mut response = authorize_and_dispatch(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(
        headers::API_VERSION,
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn authorize_and_dispatch(state: AppState, request: Request) -> Result<Response, ApiError> {
    let route = route::parse(request.uri().path()).map_err(|e| match e {
        RouteError::NotFound => ApiError::not_found(Code::Unsupported, "no such endpoint"),
        RouteError::InvalidName(e) => ApiError::bad_request(Code::NameInvalid, e.to_string()),
    })?;
    let action = action_for(&route, request.method()).ok_or_else(|| {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unsupported,
            format!("{} is not supported on this endpoint", request.method()),
        )
    })?;
    let mount_from = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "from")
        .and_then(|(_, v)| minato_oci::RepositoryName::parse(&v).ok())
        .filter(|_| matches!(route, route::Route::UploadStart(_)));
    let grant = state
        .access
        .check(&AccessRequest {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            peer: request.extensions().get::<Peer>().map(|p| p.0),
            route: &route,
            action,
            mount_from,
        })
        .await?;
    Ok(crate::handlers::dispatch(state, route, grant, request).await)
}

/// One log line per request: method, path, status, duration.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let response = next.run(request).await;
    tracing::info!(
        target: "minato::access",
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        peer = peer.map(|p| p.to_string()),
        "request"
    );
    response
}

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
}

impl Tls {
    /// Loads the files into a rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> io::Result<Arc<rustls::ServerConfig>> {
        let invalid = |path: &Path, e: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| invalid(&self.cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&self.cert, &e))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| invalid(&self.key, &e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&self.cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&self.cert, &e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish (up to
/// `grace`) and returns. Every request is logged as one line.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = router.layer(middleware::from_fn(log_request));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request headers is dropped instead of holding a
    // connection forever (bodies have their own idle timeout in the store).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                request
            },
        ));
        match &acceptor {
            None => {
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Periodically removes expired upload sessions.
pub fn spawn_maintenance(store: Arc<Store>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            match store.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "removed stale upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
        }
    })
}
