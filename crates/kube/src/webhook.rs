//! The image verification webhook server: HTTPS only (the API server always calls webhooks
//! over TLS), with
//!
//! - `POST /validate`: `AdmissionReview` v1, validating;
//! - `POST /mutate`: `AdmissionReview` v1, pinning verified tags to digests;
//! - `POST /imagepolicy`: `ImageReview` (imagepolicy.k8s.io/v1alpha1);
//! - `GET /healthz`.
//!
//! Every review is answered with HTTP 200, denials included (spec §4.2).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::admission::{self, AdmissionReview, ImageReview};
use crate::policy::Engine;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Unusable certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A rustls server configuration from PEM certificate chain and private key.
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    let tls = |e: &dyn std::fmt::Display| WebhookError::Tls(e.to_string());
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    if certs.is_empty() {
        return Err(WebhookError::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The webhook's routes.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/imagepolicy", post(imagepolicy))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(engine)
}

fn json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn bad_request(message: String) -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(message))
        .unwrap_or_default()
}

async fn admission(engine: &Engine, body: &[u8], mutate: bool) -> Response {
    match serde_json::from_slice::<AdmissionReview>(body) {
        Ok(review) if review.api_version == admission::ADMISSION_API_VERSION => {
            json(&admission::review(engine, review, mutate).await)
        }
        Ok(review) => bad_request(format!("unsupported apiVersion {}", review.api_version)),
        Err(e) => bad_request(format!("not an AdmissionReview: {e}")),
    }
}

async fn validate(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    admission(&engine, &body, false).await
}

async fn mutate(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    admission(&engine, &body, true).await
}

async fn imagepolicy(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ImageReview>(&body) {
        Ok(review) => json(&admission::image_review(&engine, review).await),
        Err(e) => bad_request(format!("not an ImageReview: {e}")),
    }
}

/// Serves the webhook over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let router = router(engine);
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
