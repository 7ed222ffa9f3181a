//! Test harness: an in-process registry on an ephemeral loopback port, and helpers to push
//! content and to check the distribution spec's response shapes.

use std::sync::Arc;
use std::time::Duration;

use minato_oci::{Algorithm, Digest};
use minato_registry::{OpenAccess, RegistryConfig, build_router, serve};
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

/// A registry serving a fresh temporary store; it stops when dropped.
pub struct Registry {
    base: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry with the default configuration.
    pub async fn start() -> Registry {
        Registry::start_with(RegistryConfig::default()).await
    }

    /// Starts a registry with `config` on `127.0.0.1:0`.
    pub async fn start_with(config: RegistryConfig) -> Registry {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let store = Store::open(dir.path(), StoreOptions::default())
            .await
            .expect("store opens");
        let router = build_router(Arc::new(store), config, Arc::new(OpenAccess));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback listener");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
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
            _stop: stop,
            _dir: dir,
        }
    }

    /// A request to `path` (absolute or relative to the registry, like `Location` values).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.request(method, url)
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
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer bytes of {seed}");
        self.push_blob(repo, config.as_bytes()).await;
        self.push_blob(repo, layer.as_bytes()).await;
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config.as_bytes()),
            "layers": [descriptor(OCI_LAYER, layer.as_bytes())],
        })
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
