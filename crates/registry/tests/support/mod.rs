//! Test harness: an in-process registry on an ephemeral loopback port (open, or with tenancy
//! authentication), and helpers to push content and to check the distribution spec's response
//! shapes.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use minato_iam::audit::AuditLog;
use minato_oci::{Algorithm, Digest};
use minato_registry::auth::{Auth, AuthConfig, TenancyAccess};
use minato_registry::{OpenAccess, RegistryConfig, build_router, serve, tenancy_routes};
use minato_store::{Store, StoreOptions};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub use minato_oci::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzipped OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// How long refresh tokens of test registries live.
const REFRESH_LIFETIME: Duration = Duration::from_secs(3600);

/// A running server and its data; both go away when the last handle is dropped.
struct Running {
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

/// A client of a registry serving a fresh temporary store; the registry stops when the last
/// client of it is dropped.
#[derive(Clone)]
pub struct Registry {
    base: String,
    client: reqwest::Client,
    authorization: Option<String>,
    running: Arc<Running>,
}

impl Registry {
    /// Starts a registry with the default configuration.
    pub async fn start() -> Registry {
        Registry::start_with(RegistryConfig::default()).await
    }

    /// Starts a registry with `config` on `127.0.0.1:0`.
    pub async fn start_with(config: RegistryConfig) -> Registry {
        let (dir, store) = data().await;
        let (listener, base) = listen().await;
        let router = build_router(store, config, Arc::new(OpenAccess));
        Registry::run(listener, base, router, dir)
    }

    /// Starts a registry with tenancy authentication (an empty identity directory, access
    /// tokens living `token_lifetime`), its token endpoint and admin API.
    pub async fn start_with_tenancies(token_lifetime: Duration) -> (Registry, Arc<Auth>) {
        let (dir, store) = data().await;
        let (listener, base) = listen().await;
        let (directory, tokens) = minato_iam::open(dir.path(), token_lifetime, REFRESH_LIFETIME)
            .await
            .expect("identity database opens");
        let audit = AuditLog::open(&dir.path().join("audit.log")).expect("audit log opens");
        let auth = Arc::new(Auth::new(
            Arc::new(directory),
            Arc::new(tokens),
            Arc::new(audit),
            AuthConfig::for_public_url(&base),
        ));
        let access = Arc::new(TenancyAccess(auth.clone()));
        let root = minato_sign::RootKey::generate().expect("root key");
        let vault = minato_sign::Vault::open(dir.path(), root)
            .await
            .expect("key vault opens");
        let router = build_router(store.clone(), RegistryConfig::default(), access)
            .merge(tenancy_routes(auth.clone(), store, Arc::new(vault)));
        (Registry::run(listener, base, router, dir), auth)
    }

    /// Serves `router` on `listener` until the last client is dropped.
    fn run(listener: TcpListener, base: String, router: Router, dir: TempDir) -> Registry {
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            router,
            None,
            Duration::from_secs(1),
            async move {
                let _ = stopped.await;
            },
        ));
        // No pooled connections: a request the server answers before reading its body closes
        // the connection, and reusing it would make the next request fail at random.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("HTTP client");
        Registry {
            base,
            client,
            authorization: None,
            running: Arc::new(Running {
                _stop: stop,
                _dir: dir,
            }),
        }
    }

    /// A client of the same registry whose every request carries `Authorization: <value>`.
    pub fn with_authorization(&self, value: &str) -> Registry {
        Registry {
            authorization: Some(value.to_owned()),
            ..self.clone()
        }
    }

    /// The registry's URL, `http://<host>:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (absolute or relative to the registry, like `Location` values).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let request = self.client.request(method, url);
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }

    /// Sends a request without a body.
    pub async fn send(&self, method: Method, path: &str) -> Response {
        call(self.request(method, path)).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path).await
    }

    /// `HEAD path`.
    pub async fn head(&self, path: &str) -> Response {
        self.send(Method::HEAD, path).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path).await
    }

    /// Writes raw bytes on a fresh connection and hangs up without reading the answer, like a
    /// client that dies in the middle of a request.
    pub async fn send_and_hang_up(&self, raw: &[u8]) {
        let address = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address)
            .await
            .expect("loopback connection");
        stream.write_all(raw).await.expect("request bytes written");
    }

    /// Pushes `content` to `repo` in one `POST ?digest=` and returns its sha256 digest.
    pub async fn push_blob(&self, repo: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let response = call(
            self.request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(content.to_vec()),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "blob push to {repo}"
        );
        digest
    }

    /// Opens an upload session in `repo` and returns its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        let response = self
            .send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "upload start in {repo}"
        );
        header(&response, "location").to_owned()
    }

    /// `PATCH` a chunk with its `Content-Range` to an upload session.
    pub async fn patch_chunk(&self, location: &str, start: usize, chunk: &[u8]) -> Response {
        let range = format!("{start}-{}", start + chunk.len() - 1);
        call(
            self.request(Method::PATCH, location)
                .header("content-type", "application/octet-stream")
                .header("content-range", range)
                .body(chunk.to_vec()),
        )
        .await
    }

    /// `PUT location?digest=` with an optional last chunk.
    pub async fn finish_upload(&self, location: &str, digest: &str, last: &[u8]) -> Response {
        call(
            self.request(
                Method::PUT,
                &with_query(location, &format!("digest={digest}")),
            )
            .header("content-type", "application/octet-stream")
            .body(last.to_vec()),
        )
        .await
    }

    /// Pushes a config and a layer derived from `seed` into `repo` and returns an OCI image
    /// manifest referencing them.
    pub async fn image(&self, repo: &str, seed: &str) -> Value {
        let image = Image::new(seed);
        self.push_blob(repo, &image.config).await;
        self.push_blob(repo, &image.layer).await;
        image.manifest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` of `manifest`, typed by its `mediaType`.
    pub async fn put_manifest(&self, repo: &str, reference: &str, manifest: &Value) -> Response {
        let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
        self.put_manifest_bytes(repo, reference, media_type, &to_bytes(manifest))
            .await
    }

    /// `PUT /v2/<repo>/manifests/<reference>` of exact bytes with a `Content-Type`.
    pub async fn put_manifest_bytes(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        content: &[u8],
    ) -> Response {
        call(
            self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("content-type", content_type)
                .body(content.to_vec()),
        )
        .await
    }

    /// Pushes `manifest` under `reference`, expecting 201, and returns its bytes and digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Value,
    ) -> (Vec<u8>, String) {
        let response = self.put_manifest(repo, reference, manifest).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "manifest push to {repo}:{reference}"
        );
        let content = to_bytes(manifest);
        let digest = sha256(&content);
        (content, digest)
    }
}

/// An image derived from a seed: a config, one layer and the OCI manifest referencing them.
pub struct Image {
    /// Config blob.
    pub config: Vec<u8>,
    /// Layer blob.
    pub layer: Vec<u8>,
    /// The manifest.
    pub manifest: Value,
}

impl Image {
    /// The image for `seed` (different seeds give different blobs).
    pub fn new(seed: &str) -> Image {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer bytes of {seed}");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config.as_bytes()),
            "layers": [descriptor(OCI_LAYER, layer.as_bytes())],
        });
        Image {
            config: config.into_bytes(),
            layer: layer.into_bytes(),
            manifest,
        }
    }
}

/// A fresh temporary data directory and the store in it.
async fn data() -> (TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .expect("store opens");
    (dir, Arc::new(store))
}

/// A listener on an ephemeral loopback port and the base URL it answers at.
async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback listener");
    let base = format!("http://{}", listener.local_addr().expect("bound address"));
    (listener, base)
}

/// Sends a request, failing the test if no HTTP answer arrives (a panicking handler drops
/// the connection).
pub async fn call(request: RequestBuilder) -> Response {
    request.send().await.expect("the registry answers")
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// `sha256:<hex>` of `content`.
pub fn sha256(content: &[u8]) -> String {
    Digest::of(Algorithm::Sha256, content).to_string()
}

/// `sha512:<hex>` of `content`.
pub fn sha512(content: &[u8]) -> String {
    Digest::of(Algorithm::Sha512, content).to_string()
}

/// A descriptor of `content` with a sha256 digest.
pub fn descriptor(media_type: &str, content: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(content), "size": content.len()})
}

/// Compact JSON bytes of a value.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values serialize")
}

/// A header's text; fails the test when absent.
pub fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name} header", response.url()))
        .to_str()
        .expect("header is text")
}

/// Whether a response carries a header at all.
pub fn has_header(response: &Response, name: &str) -> bool {
    response.headers().contains_key(name)
}

/// The response body.
pub async fn body(response: Response) -> Vec<u8> {
    response.bytes().await.expect("response body").to_vec()
}

/// The response body as JSON.
pub async fn json_body(response: Response) -> Value {
    serde_json::from_slice(&body(response).await).expect("JSON body")
}

/// Asserts a spec error: the status and `{"errors":[{"code":<code>,...}]}`.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) {
    let url = response.url().clone();
    assert_eq!(response.status(), status, "status of {url}");
    assert_eq!(
        header(&response, "content-type"),
        "application/json",
        "{url}"
    );
    let error = json_body(response).await;
    assert_eq!(error["errors"][0]["code"], code, "{url}: {error}");
    assert!(error["errors"][0]["message"].is_string(), "{url}: {error}");
}

/// The target of a `Link: <...>; rel="next"` header, if present.
pub fn next_link(response: &Response) -> Option<String> {
    let link = response.headers().get("link")?.to_str().ok()?;
    let target = link.strip_prefix('<')?.strip_suffix(">; rel=\"next\"")?;
    Some(target.to_owned())
}
