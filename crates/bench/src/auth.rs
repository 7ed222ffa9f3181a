//! The authenticated minato target: its bootstrap credentials, the data loaded with them, and
//! the bearer token the authenticated workloads send.

use std::path::Path;

use anyhow::{Context, ensure};
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::client::{MANIFEST_TYPE, Registry};
use crate::load::{self, Dataset, LoadTimes, Parts, REPO};

/// Namespace of the tenancy the authenticated minato bootstraps; [`REPO`] lives in it.
pub const NAMESPACE: &str = "bench";
/// Bearer token lifetime of the authenticated minato, in seconds: longer than any run.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// The credentials minato writes to `<data-dir>/bootstrap.json` on its first start.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The registry host, `127.0.0.1:<port>`: the `service` of token requests.
    pub registry: String,
    /// Namespace of the tenancy.
    pub namespace: String,
    /// The administrator's login, `<namespace>/admin`.
    pub username: String,
    /// The administrator's auth token.
    pub password: String,
}

impl Bootstrap {
    /// Reads `bootstrap.json` from minato's data directory `data_dir`.
    pub fn read(data_dir: &Path) -> anyhow::Result<Bootstrap> {
        let path = data_dir.join("bootstrap.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .with_context(|| format!("{name} missing from {}", path.display()))
        };
        Ok(Bootstrap {
            registry: field("registry")?,
            namespace: field("namespace")?,
            username: field("username")?,
            password: field("password")?,
        })
    }
}

/// A bearer token issued by the token endpoint.
#[derive(Debug, Clone)]
pub struct Token {
    /// The JWT.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

/// The authenticated minato as the workloads use it.
pub struct AuthTarget {
    /// Client sending `Authorization: Bearer <token>` (pull on [`REPO`]) with every request.
    pub registry: Registry,
    /// `Basic base64(username:password)` of the bootstrap administrator.
    basic: String,
    /// The `service` of token requests.
    service: String,
    /// The bootstrap administrator's credentials (the signing workload runs `minato` with them).
    pub bootstrap: Bootstrap,
}

impl AuthTarget {
    /// Path and query of a token request for pull on [`REPO`].
    pub fn token_path(&self) -> String {
        format!(
            "/20180419/docker/token?service={}&scope=repository:{REPO}:pull",
            self.service
        )
    }

    /// The administrator's Basic credentials as a `Name: value` header line, for wrk.
    pub fn basic_header_line(&self) -> String {
        format!("{}: {}", header::AUTHORIZATION, self.basic)
    }

    /// Requests a token for pull on [`REPO`] with the Basic credentials; fails unless the
    /// answer is 200 with a JWT in `token` and a positive `expires_in`.
    pub async fn fetch_token(&self) -> anyhow::Result<Token> {
        let url = self.registry.url(&self.token_path());
        let response = self
            .registry
            .http()
            .get(&url)
            .header(header::AUTHORIZATION, &self.basic)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(
            status == StatusCode::OK,
            "token request {url}: {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        parse_token(&body).with_context(|| format!("token answer of {url}"))
    }
}

/// Loads `data` into the authenticated minato at `base` with the bootstrap administrator's
/// Basic credentials, then gets a bearer token for pull on [`REPO`] and checks that it opens
/// the repository while an anonymous request is refused.
pub async fn prepare(
    http: &reqwest::Client,
    base: &str,
    bootstrap: &Bootstrap,
    data: &Dataset,
    parts: Parts,
) -> anyhow::Result<(AuthTarget, LoadTimes)> {
    ensure!(
        REPO.starts_with(&format!("{}/", bootstrap.namespace)),
        "{REPO} is outside the bootstrapped namespace {}",
        bootstrap.namespace
    );
    let basic = basic_authorization(http, &bootstrap.username, &bootstrap.password)?;
    let mut loader = Registry::new(http.clone(), base).with_authorization(basic.clone());
    let times = load::load(&mut loader, data, parts).await?;

    let anonymous = Registry::new(http.clone(), base);
    let manifest = format!("/v2/{REPO}/manifests/latest");
    let refused = http.get(anonymous.url(&manifest)).send().await?.status();
    ensure!(
        refused == StatusCode::UNAUTHORIZED,
        "an anonymous GET {manifest} answered {refused}, not 401: is authentication on?"
    );
    let mut target = AuthTarget {
        registry: anonymous.clone(),
        basic,
        service: bootstrap.registry.clone(),
        bootstrap: bootstrap.clone(),
    };
    let token = target.fetch_token().await?;
    ensure!(
        token.expires_in >= TOKEN_LIFETIME_SECS,
        "the token lives {} s, not the {TOKEN_LIFETIME_SECS} s asked for",
        token.expires_in
    );
    target.registry = anonymous.with_authorization(format!("Bearer {}", token.token));
    target
        .registry
        .expect_ok(Method::GET, &manifest, Some(MANIFEST_TYPE))
        .await
        .context("GET of the manifest with the bearer token")?;
    Ok((target, times))
}

/// `Basic base64(username:password)`, encoded by reqwest as it would send it.
fn basic_authorization(
    http: &reqwest::Client,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let request = http
        .get("http://127.0.0.1/")
        .basic_auth(username, Some(password))
        .build()?;
    Ok(request
        .headers()
        .get(header::AUTHORIZATION)
        .context("reqwest set no Authorization header")?
        .to_str()?
        .to_owned())
}

/// The token of a token endpoint answer: `token` must be a JWT (three dot-separated parts)
/// and `expires_in` positive.
fn parse_token(body: &str) -> anyhow::Result<Token> {
    let value: Value = serde_json::from_str(body).context("not JSON")?;
    let token = value
        .get("token")
        .and_then(Value::as_str)
        .context("no token field")?;
    ensure!(
        token.split('.').count() == 3 && token.split('.').all(|part| !part.is_empty()),
        "the token is no JWT"
    );
    let expires_in = value
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|seconds| *seconds > 0)
        .context("no positive expires_in")?;
    Ok(Token {
        token: token.to_owned(),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_answers() {
        let token =
            parse_token(r#"{"token":"a.b.c","access_token":"a.b.c","expires_in":3600}"#).unwrap();
        assert_eq!(token.token, "a.b.c");
        assert_eq!(token.expires_in, 3600);
        assert!(parse_token(r#"{"token":"","expires_in":3600}"#).is_err());
        assert!(parse_token(r#"{"token":"a.b.c"}"#).is_err());
        assert!(parse_token("not json").is_err());
    }

    #[test]
    fn encodes_basic_credentials() {
        let http = reqwest::Client::new();
        assert_eq!(
            basic_authorization(&http, "bench/admin", "secret").unwrap(),
            "Basic YmVuY2gvYWRtaW46c2VjcmV0"
        );
    }
}
