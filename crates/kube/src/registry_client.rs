//! A client of the OCI distribution API that talks to any registry the way container runtimes
//! do: ping `/v2/`, follow the `WWW-Authenticate` challenge (a Bearer token from the realm, or
//! Basic credentials), fetch manifests with the media types runtimes accept, verify every
//! manifest digest, and stream blobs with `Range` so an interrupted download can resume.
//!
//! Errors keep what the registry said (HTTP status, OCI error code, message) so the pull engine
//! can report it the way the kubelet does and a diagnosis can classify it.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use minato_oci::{Algorithm, Digest};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE,
    WWW_AUTHENTICATE,
};
use sha2::{Digest as _, Sha256};

use crate::login::{Challenge, candidate_base_urls, transport_reason};

/// The manifest media types a runtime accepts, most specific first (what containerd sends).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest read into memory (the limit containerd and the reference registry use).
pub const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

/// Largest error body read to extract the registry's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Token lifetime assumed when the token endpoint does not say (the token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A username and password for a registry, as a pull secret or docker config holds them.
/// `Debug` never shows the password, so credentials can be logged safely.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    /// The username (`<tenancy-namespace>/<user>` for tenancy registries, `BEARER_TOKEN` for a
    /// registry token).
    pub username: String,
    /// The password or auth token.
    pub password: String,
}

impl Credential {
    /// A credential from its two parts.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential {
            username: username.into(),
            password: password.into(),
        }
    }

    /// A stable fingerprint (SHA-256 of both parts) to key caches without keeping the password
    /// in the key.
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.username.as_bytes());
        hasher.update([0]);
        hasher.update(self.password.as_bytes());
        hex::encode(hasher.finalize())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How an error should be understood, for reports and diagnoses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401: missing, wrong or expired credentials.
    Unauthorized,
    /// 403 `DENIED`: authenticated (or anonymous) but not allowed.
    Denied,
    /// `NAME_UNKNOWN`: the repository does not exist.
    NameUnknown,
    /// `MANIFEST_UNKNOWN` (or a 404 for a manifest): the tag or digest does not exist.
    ManifestUnknown,
    /// `BLOB_UNKNOWN`: a blob the manifest references is missing.
    BlobUnknown,
    /// 429 `TOOMANYREQUESTS`: rate limited or throttled.
    TooManyRequests,
    /// No connection could be made.
    Unreachable,
    /// The connection broke while a body was being read.
    Interrupted,
    /// Content did not match its digest.
    DigestMismatch,
    /// The peer does not speak the registry protocol as expected.
    Protocol,
    /// Any other refusal by the registry.
    Other,
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made to any candidate address.
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The transport-level cause, innermost last.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("{method} {url:?}: {}", describe_refusal(*.status, .code.as_deref(), .message))]
    Response {
        /// `Get` or `Head`, spelled as Go prints request errors.
        method: &'static str,
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OCI error code (`UNAUTHORIZED`, `DENIED`, `MANIFEST_UNKNOWN`...), when given.
        code: Option<String>,
        /// The registry's message (or the start of a non-JSON body).
        message: String,
    },
    /// The registry answered something that is not the registry protocol.
    #[error("{url:?}: {reason}")]
    Protocol {
        /// The URL requested.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A manifest's bytes do not match the digest asked for or announced.
    #[error("manifest {url:?}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The URL requested.
        url: String,
        /// The digest expected.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The connection broke after it was made: while sending a request or reading a body.
    #[error("Get {url:?}: {reason}")]
    Interrupted {
        /// The URL being read.
        url: String,
        /// The transport-level cause.
        reason: String,
    },
}

/// Docker's rendering of a registry error: `<code in lower case, spaces>: <message>`.
fn describe_refusal(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) => {
            let code = code.to_ascii_lowercase().replace('_', " ");
            if message.is_empty() {
                code
            } else {
                format!("{code}: {message}")
            }
        }
        None => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            if message.is_empty() {
                format!("unexpected status {status} {reason}")
            } else {
                format!("unexpected status {status} {reason}: {message}")
            }
        }
    }
}

impl RegistryError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OCI error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            RegistryError::Response { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The registry's own message of a refusal.
    pub fn message(&self) -> Option<&str> {
        match self {
            RegistryError::Response { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The class of the failure, from the OCI code first and the status second.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Unreachable { .. } => ErrorKind::Unreachable,
            RegistryError::Interrupted { .. } => ErrorKind::Interrupted,
            RegistryError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            RegistryError::Protocol { .. } => ErrorKind::Protocol,
            RegistryError::Response {
                status, code, url, ..
            } => match (code.as_deref(), *status) {
                (Some("UNAUTHORIZED"), _) | (None, 401) => ErrorKind::Unauthorized,
                (Some("DENIED"), _) | (None, 403) => ErrorKind::Denied,
                (Some("NAME_UNKNOWN"), _) => ErrorKind::NameUnknown,
                (Some("MANIFEST_UNKNOWN"), _) => ErrorKind::ManifestUnknown,
                (Some("BLOB_UNKNOWN"), _) => ErrorKind::BlobUnknown,
                (Some("TOOMANYREQUESTS"), _) | (None, 429) => ErrorKind::TooManyRequests,
                (None, 404) if url.contains("/manifests/") => ErrorKind::ManifestUnknown,
                (None, 404) if url.contains("/blobs/") => ErrorKind::BlobUnknown,
                _ => ErrorKind::Other,
            },
        }
    }

    /// Whether trying again (and resuming) may help: broken or refused connections and
    /// server-side failures, not refusals.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } | RegistryError::Interrupted { .. } => true,
            RegistryError::Response { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Timeouts and identification of the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on waiting for the next bytes of an answer (not on a whole download, which may be
    /// large).
    pub read_timeout: Duration,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("minato/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    registry: String,
    scope: String,
    credential: Option<String>,
}

struct CachedToken {
    token: String,
    valid_until: Instant,
}

/// Registry tokens by (registry, scope, credential), shared by every client of one
/// [`Transport`], so trying several credentials or downloading blobs in parallel asks the token
/// endpoint once per credential and scope.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<TokenKey, CachedToken>>>);

impl TokenCache {
    fn get(&self, key: &TokenKey) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|t| t.valid_until > Instant::now())
            .map(|t| t.token.clone())
    }

    fn put(&self, key: TokenKey, token: String, lifetime: Duration) {
        // Renew a little early so a token never expires between the check and the request.
        let margin = (lifetime / 10).min(Duration::from_secs(10));
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            key,
            CachedToken {
                token,
                valid_until: Instant::now() + lifetime.saturating_sub(margin),
            },
        );
    }

    fn forget(&self, key: &TokenKey) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// The HTTP client and the token cache, shared by the clients of every registry and credential
/// of one pull (connections are pooled).
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    tokens: TokenCache,
}

impl Transport {
    /// A transport with the given timeouts.
    pub fn new(config: &ClientConfig) -> Result<Transport, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| RegistryError::Unreachable {
                registry: String::new(),
                reason: transport_reason(&e),
            })?;
        Ok(Transport {
            http,
            tokens: TokenCache::default(),
        })
    }

    /// Pings `registry` (`host[:port]`, HTTPS first, plain HTTP for loopback hosts) and returns a
    /// client that authenticates with `credential` (anonymous when `None`) when challenged.
    pub async fn connect(
        &self,
        registry: &str,
        credential: Option<Credential>,
    ) -> Result<RegistryClient, RegistryError> {
        let mut last_error = None;
        for base in candidate_base_urls(registry) {
            let url = format!("{base}/v2/");
            let ping = match self.http.get(&url).send().await {
                Ok(ping) => ping,
                Err(e) => {
                    last_error = Some(transport_reason(&e));
                    continue;
                }
            };
            let status = ping.status();
            let challenge = if status.is_success() {
                None
            } else if status == StatusCode::UNAUTHORIZED {
                let header = ping
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                match header {
                    Some(c) if c.scheme == "bearer" || c.scheme == "basic" => Some(c),
                    Some(c) => {
                        return Err(RegistryError::Protocol {
                            url,
                            reason: format!("unsupported authentication scheme {:?}", c.scheme),
                        });
                    }
                    None => {
                        return Err(RegistryError::Protocol {
                            url,
                            reason: "401 without a WWW-Authenticate challenge".into(),
                        });
                    }
                }
            } else {
                return Err(error_from_response("Get", ping).await);
            };
            return Ok(RegistryClient {
                inner: Arc::new(ClientInner {
                    http: self.http.clone(),
                    tokens: self.tokens.clone(),
                    registry: registry.to_owned(),
                    base_url: base,
                    challenge,
                    credential,
                }),
            });
        }
        Err(RegistryError::Unreachable {
            registry: registry.to_owned(),
            reason: last_error.unwrap_or_else(|| "no address to try".to_owned()),
        })
    }
}

struct ClientInner {
    http: reqwest::Client,
    tokens: TokenCache,
    registry: String,
    base_url: String,
    challenge: Option<Challenge>,
    credential: Option<Credential>,
}

/// A client of one registry with one credential (or none). Cheap to clone: clones share the
/// connection pool and the token cache, so blobs can be downloaded in parallel.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<ClientInner>,
}

/// A manifest as the registry served it, verified against its digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The exact bytes (never re-serialized: the digest covers them).
    pub bytes: Vec<u8>,
    /// Its media type (from the `mediaType` field, else the `Content-Type`).
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: Digest,
}

/// The body of a blob download in progress.
pub struct BlobStream {
    response: reqwest::Response,
    url: String,
    /// Offset of the first byte of the body: the offset asked for when the registry honoured
    /// `Range`, else 0 (the whole blob follows).
    pub start: u64,
    /// Total size of the blob when the registry said.
    pub total: Option<u64>,
}

impl BlobStream {
    /// The next piece of the body; `None` at its end. A broken connection is
    /// [`RegistryError::Interrupted`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        self.response
            .chunk()
            .await
            .map_err(|e| RegistryError::Interrupted {
                url: self.url.clone(),
                reason: transport_reason(&e),
            })
    }
}

impl RegistryClient {
    /// The base URL that answered the ping (`https://host` or `http://host`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Whether the registry asked for authentication at all.
    pub fn requires_auth(&self) -> bool {
        self.inner.challenge.is_some()
    }

    /// The `Authorization` header for `scope`, asking the token endpoint when needed (or
    /// always when `fresh`).
    async fn authorization(
        &self,
        scope: &str,
        fresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let inner = &self.inner;
        let Some(challenge) = &inner.challenge else {
            return Ok(None);
        };
        if challenge.scheme == "basic" {
            return Ok(inner
                .credential
                .as_ref()
                .map(|c| basic_header(&c.username, &c.password)));
        }
        let key = TokenKey {
            registry: inner.registry.clone(),
            scope: scope.to_owned(),
            credential: inner.credential.as_ref().map(Credential::fingerprint),
        };
        if fresh {
            inner.tokens.forget(&key);
        } else if let Some(token) = inner.tokens.get(&key) {
            return Ok(Some(bearer_header(&token)));
        }
        let realm = challenge.param("realm").unwrap_or_default();
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            url: format!("{}/v2/", inner.base_url),
            reason: format!("bad token realm {realm:?}: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let url_text = url.to_string();
        let mut request = inner.http.get(url);
        if let Some(credential) = &inner.credential {
            request = request.basic_auth(&credential.username, Some(&credential.password));
        }
        let answer = request
            .send()
            .await
            .map_err(|e| self.send_error(&url_text, &e))?;
        if !answer.status().is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        let body = read_limited(answer, &url_text, ERROR_BODY_LIMIT).await?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                url: url_text.clone(),
                reason: format!("token response is not JSON: {e}"),
            })?;
        let token = parsed["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .or_else(|| parsed["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                url: url_text.clone(),
                reason: "token response without a token".into(),
            })?
            .to_owned();
        let lifetime = parsed["expires_in"]
            .as_u64()
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        inner.tokens.put(key, token.clone(), lifetime);
        Ok(Some(bearer_header(&token)))
    }

    /// A `GET` for `repository` with authentication, retried once with a fresh token when the
    /// registry refuses a cached one.
    async fn get(
        &self,
        url: &str,
        repository: &str,
        headers: &[(reqwest::header::HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, RegistryError> {
        self.send(reqwest::Method::GET, url, repository, "pull", headers)
            .await
    }

    /// A request for `repository` with a token for `actions` (e.g. `pull`, `delete`), retried
    /// once with a fresh token when the registry refuses a cached one.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        repository: &str,
        actions: &str,
        headers: &[(reqwest::header::HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = format!("repository:{repository}:{actions}");
        let mut fresh = false;
        loop {
            let mut request = self.inner.http.request(method.clone(), url);
            for (name, value) in headers {
                request = request.header(name, value.clone());
            }
            if let Some(authorization) = self.authorization(&scope, fresh).await? {
                request = request.header(AUTHORIZATION, authorization);
            }
            let answer = request.send().await.map_err(|e| self.send_error(url, &e))?;
            let bearer = self
                .inner
                .challenge
                .as_ref()
                .is_some_and(|c| c.scheme == "bearer");
            if answer.status() == StatusCode::UNAUTHORIZED && bearer && !fresh {
                // The cached token may have expired or been revoked: ask once more.
                fresh = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// A failed send: unreachable when no connection could be made, else interrupted.
    fn send_error(&self, url: &str, error: &reqwest::Error) -> RegistryError {
        if error.is_connect() {
            RegistryError::Unreachable {
                registry: self.inner.registry.clone(),
                reason: transport_reason(error),
            }
        } else {
            RegistryError::Interrupted {
                url: url.to_owned(),
                reason: transport_reason(error),
            }
        }
    }

    /// Fetches the manifest `reference` (tag or digest) of `repository` (the path within the
    /// registry) and verifies its digest: against the reference when it is a digest, else
    /// against `Docker-Content-Digest` when the registry sends one.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let url = format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.inner.base_url
        );
        let answer = self
            .get(
                &url,
                repository,
                &[(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))],
            )
            .await?;
        if !answer.status().is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        let content_type = header_text(&answer, CONTENT_TYPE.as_str());
        let announced = header_text(&answer, "docker-content-digest");
        let bytes = read_limited(answer, &url, MANIFEST_LIMIT).await?;
        let expected = Digest::from_str(reference)
            .ok()
            .or_else(|| announced.as_deref().and_then(|d| Digest::from_str(d).ok()));
        let digest = match expected {
            Some(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        url,
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            None => Digest::of(Algorithm::Sha256, &bytes),
        };
        let media_type = minato_oci::manifest::parse(&bytes, content_type.as_deref())
            .map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                reason: format!("invalid manifest: {e}"),
            })?
            .media_type;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Starts downloading blob `digest` of `repository` from byte `offset` (`Range:
    /// bytes=<offset>-` when not 0). The registry may ignore the range: check
    /// [`BlobStream::start`]. A 416 answer (offset past the end) is a
    /// [`RegistryError::Response`] with that status.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.inner.base_url);
        let mut headers = Vec::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                .unwrap_or_else(|_| HeaderValue::from_static("bytes=0-"));
            headers.push((RANGE, range));
        }
        let answer = self.get(&url, repository, &headers).await?;
        let status = answer.status();
        if !status.is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        let length =
            header_text(&answer, CONTENT_LENGTH.as_str()).and_then(|l| l.parse::<u64>().ok());
        let (start, total) = if status == StatusCode::PARTIAL_CONTENT {
            let range = header_text(&answer, CONTENT_RANGE.as_str()).unwrap_or_default();
            let (start, total) =
                parse_content_range(&range).ok_or_else(|| RegistryError::Protocol {
                    url: url.clone(),
                    reason: format!("206 with an unusable Content-Range {range:?}"),
                })?;
            if start != offset {
                return Err(RegistryError::Protocol {
                    url,
                    reason: format!("asked for bytes from {offset}, got a range from {start}"),
                });
            }
            (start, total)
        } else {
            (0, length)
        };
        Ok(BlobStream {
            response: answer,
            url,
            start,
            total,
        })
    }
}

/// One entry of an OCI image index (a referrers listing): the referring manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Media type of the referring manifest.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    #[serde(default)]
    pub size: u64,
    /// Its `artifactType`, when listed.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Its annotations, when listed.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct IndexWire {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

/// Reads the `manifests` of an OCI image index.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<IndexEntry>, serde_json::Error> {
    serde_json::from_slice::<IndexWire>(bytes).map(|index| index.manifests)
}

impl RegistryClient {
    /// `GET /v2/<repository>/referrers/<digest>[?artifactType=]`: the manifests whose subject
    /// is `digest`. `None` when the registry answers 404 (no referrers API; use the tag
    /// schema). The filter is applied here too, in case the registry ignored it.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<IndexEntry>>, RegistryError> {
        let mut url = format!("{}/v2/{repository}/referrers/{digest}", self.inner.base_url);
        if let Some(filter) = artifact_type {
            url.push_str("?artifactType=");
            url.push_str(&filter.replace('+', "%2B"));
        }
        let answer = self.get(&url, repository, &[]).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status().is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        let bytes = read_limited(answer, &url, MANIFEST_LIMIT).await?;
        let entries = parse_index(&bytes).map_err(|e| RegistryError::Protocol {
            url: url.clone(),
            reason: format!("referrers answer is not an image index: {e}"),
        })?;
        Ok(Some(
            entries
                .into_iter()
                .filter(|e| artifact_type.is_none() || e.artifact_type.as_deref() == artifact_type)
                .collect(),
        ))
    }

    /// Downloads a whole blob of at most `limit` bytes (signature payloads, small configs).
    pub async fn blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.inner.base_url);
        let answer = self.get(&url, repository, &[]).await?;
        if !answer.status().is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        read_limited(answer, &url, limit).await
    }

    /// `GET /v2/<repository>/tags/list?n=<n>`: the first tags, or the registry's refusal (a
    /// `NAME_UNKNOWN` here tells an unknown repository from an unknown tag).
    pub async fn tags(&self, repository: &str, n: usize) -> Result<Vec<String>, RegistryError> {
        let url = format!("{}/v2/{repository}/tags/list?n={n}", self.inner.base_url);
        let answer = self.get(&url, repository, &[]).await?;
        if !answer.status().is_success() {
            return Err(error_from_response("Get", answer).await);
        }
        let bytes = read_limited(answer, &url, MANIFEST_LIMIT).await?;
        let list: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                reason: format!("tag list is not JSON: {e}"),
            })?;
        Ok(list["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A freshly issued Bearer token for pulling `repository` (to read what it grants);
    /// `None` for registries that use Basic or no authentication.
    pub async fn pull_token(&self, repository: &str) -> Result<Option<String>, RegistryError> {
        if self
            .inner
            .challenge
            .as_ref()
            .is_none_or(|c| c.scheme != "bearer")
        {
            return Ok(None);
        }
        let scope = format!("repository:{repository}:pull");
        let header = self.authorization(&scope, true).await?;
        Ok(header
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned))
    }

    /// `DELETE /v2/<repository>/manifests/<digest>` with a token for `delete`.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{digest}", self.inner.base_url);
        let answer = self
            .send(reqwest::Method::DELETE, &url, repository, "delete", &[])
            .await?;
        if !answer.status().is_success() {
            return Err(error_from_response("Delete", answer).await);
        }
        Ok(())
    }

    /// A `GET` of any URL on the registry's host (e.g. its admin API) with the client's
    /// credential as Basic authentication; returns the status and body (at most `limit`).
    pub async fn get_with_basic(
        &self,
        path: &str,
        limit: usize,
    ) -> Result<(u16, Vec<u8>), RegistryError> {
        let url = format!("{}{path}", self.inner.base_url);
        let mut request = self.inner.http.get(&url);
        if let Some(c) = &self.inner.credential {
            request = request.header(AUTHORIZATION, basic_header(&c.username, &c.password));
        }
        let answer = request
            .send()
            .await
            .map_err(|e| self.send_error(&url, &e))?;
        let status = answer.status().as_u16();
        Ok((status, read_limited(answer, &url, limit).await?))
    }
}

/// `bytes <first>-<last>/<total|*>` → (first, total).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first, total))
}

fn header_text(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    value.set_sensitive(true);
    value
}

/// Reads a whole body of at most `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    if let Some(length) = response.content_length()
        && length > limit as u64
    {
        return Err(RegistryError::Protocol {
            url: url.to_owned(),
            reason: format!("answer of {length} bytes exceeds the limit of {limit}"),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| RegistryError::Interrupted {
            url: url.to_owned(),
            reason: transport_reason(&e),
        })?
    {
        if body.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol {
                url: url.to_owned(),
                reason: format!("answer exceeds the limit of {limit} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The registry's refusal with its OCI error code and message.
async fn error_from_response(method: &'static str, response: reqwest::Response) -> RegistryError {
    let status = response.status().as_u16();
    let url = response.url().to_string();
    let body = read_limited(response, &url, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let (code, message) = parse_error_body(&body);
    RegistryError::Response {
        method,
        url,
        status,
        code,
        message,
    }
}

/// `{"errors":[{"code","message"}]}` (also the `{"details": ...}` some token endpoints send);
/// otherwise the start of the text.
fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let first = &value["errors"][0];
        if let Some(code) = first["code"].as_str() {
            let message = first["message"].as_str().unwrap_or_default().to_owned();
            return (Some(code.to_owned()), message);
        }
        if let Some(details) = value["details"].as_str() {
            return (None, details.to_owned());
        }
    }
    let text = String::from_utf8_lossy(body);
    (None, text.trim().chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_refusals_as_docker_does() {
        let error = RegistryError::Response {
            method: "Get",
            url: "https://r.io/v2/ns/app/manifests/v1".into(),
            status: 404,
            code: Some("MANIFEST_UNKNOWN".into()),
            message: "manifest unknown".into(),
        };
        assert_eq!(
            error.to_string(),
            "Get \"https://r.io/v2/ns/app/manifests/v1\": manifest unknown: manifest unknown"
        );
        assert_eq!(error.kind(), ErrorKind::ManifestUnknown);
        let error = RegistryError::Response {
            method: "Get",
            url: "https://r.io/v2/".into(),
            status: 502,
            code: None,
            message: String::new(),
        };
        assert_eq!(
            error.to_string(),
            "Get \"https://r.io/v2/\": unexpected status 502 Bad Gateway"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn parses_error_bodies_and_ranges() {
        let (code, message) =
            parse_error_body(br#"{"errors":[{"code":"DENIED","message":"no","detail":null}]}"#);
        assert_eq!((code.as_deref(), message.as_str()), (Some("DENIED"), "no"));
        let (code, message) = parse_error_body(b"<html>oops</html>\n");
        assert_eq!((code, message.as_str()), (None, "<html>oops</html>"));
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn credentials_never_show_their_password() {
        let credential = Credential::new("acme/jdoe", "k]j64r{1sJSSF-;)K8");
        let shown = format!("{credential:?}");
        assert!(!shown.contains("k]j64r"), "{shown}");
        assert!(shown.contains("acme/jdoe"), "{shown}");
    }

    #[test]
    fn tokens_are_cached_per_credential_and_scope() {
        let cache = TokenCache::default();
        let key = |credential: Option<&str>| TokenKey {
            registry: "r.io".into(),
            scope: "repository:a:pull".into(),
            credential: credential.map(str::to_owned),
        };
        cache.put(key(Some("x")), "t1".into(), Duration::from_secs(60));
        assert_eq!(cache.get(&key(Some("x"))).as_deref(), Some("t1"));
        assert_eq!(cache.get(&key(None)), None);
        cache.put(key(None), "t2".into(), Duration::from_secs(0));
        assert_eq!(cache.get(&key(None)), None, "expired at once");
        cache.forget(&key(Some("x")));
        assert_eq!(cache.get(&key(Some("x"))), None);
    }
}
