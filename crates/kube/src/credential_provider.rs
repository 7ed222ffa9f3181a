//! The kubelet exec credential provider (`credentialprovider.kubelet.k8s.io/v1`): given the
//! image the kubelet is about to pull, fetch a short-lived registry token with the node's own
//! read-only identity and hand it back as `BEARER_TOKEN` credentials, so clusters need no
//! long-lived pull secrets.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::login::{Challenge, candidate_base_urls, transport_reason};
use crate::reference::ImageReference;

/// The only request/response version of the v1 plugin API.
pub const API_VERSION: &str = "credentialprovider.kubelet.k8s.io/v1";
/// Username that carries a registry token as password.
pub const BEARER_USERNAME: &str = "BEARER_TOKEN";

/// Why no credentials could be produced (printed to stderr; the kubelet logs it).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The request on stdin is not a `CredentialProviderRequest`.
    #[error("invalid CredentialProviderRequest: {0}")]
    Request(String),
    /// The image reference does not parse.
    #[error("invalid image {image:?}: {reason}")]
    Image {
        /// The image.
        image: String,
        /// Why.
        reason: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The registry refused the node credential or answered unexpectedly.
    #[error("registry {registry} refused the node credential: {reason}")]
    Refused {
        /// The registry.
        registry: String,
        /// Its answer.
        reason: String,
    },
}

/// The request the kubelet writes on stdin.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be `CredentialProviderRequest`.
    pub kind: String,
    /// The image (repository, possibly with tag or digest) being pulled.
    pub image: String,
}

/// The node identity used to obtain tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeCredential {
    /// `<tenancy-namespace>/<user>` of a read-only identity.
    pub username: String,
    /// Its auth token.
    pub password: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses the kubelet's request.
pub fn parse_request(text: &str) -> Result<Request, ProviderError> {
    let request: Request =
        serde_json::from_str(text).map_err(|e| ProviderError::Request(e.to_string()))?;
    if request.api_version != API_VERSION || request.kind != "CredentialProviderRequest" {
        return Err(ProviderError::Request(format!(
            "expected apiVersion {API_VERSION} and kind CredentialProviderRequest, got {} {}",
            request.api_version, request.kind
        )));
    }
    Ok(request)
}

/// The scope that lets the token pull every repository of the tenancy the node may read
/// (`repository:<namespace>/*:pull`): the kubelet caches the answer per registry.
fn tenancy_scope(reference: &ImageReference) -> String {
    let namespace = reference.path.split('/').next().unwrap_or(&reference.path);
    format!("repository:{namespace}/*:pull")
}

/// Answers one request: a `CredentialProviderResponse` document.
pub async fn respond(request: &Request, node: &NodeCredential) -> Result<Value, ProviderError> {
    let reference = ImageReference::parse(&request.image).map_err(|e| ProviderError::Image {
        image: request.image.clone(),
        reason: e.to_string(),
    })?;
    let registry = reference.domain.clone();
    let (token, lifetime) = fetch_token(&registry, &tenancy_scope(&reference), node).await?;
    let cache = lifetime.saturating_sub(Duration::from_secs(60));
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "CredentialProviderResponse",
        "cacheKeyType": "Registry",
        "cacheDuration": crate::pull::go_duration(cache),
        "auth": {
            registry: {"username": BEARER_USERNAME, "password": token}
        }
    }))
}

async fn fetch_token(
    registry: &str,
    scope: &str,
    node: &NodeCredential,
) -> Result<(String, Duration), ProviderError> {
    let unreachable = |reason: String| ProviderError::Unreachable {
        registry: registry.to_owned(),
        reason,
    };
    let refused = |reason: String| ProviderError::Refused {
        registry: registry.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let mut last = String::from("no address to try");
    for base in candidate_base_urls(registry) {
        let ping = match client.get(format!("{base}/v2/")).send().await {
            Ok(ping) => ping,
            Err(e) => {
                last = transport_reason(&e);
                continue;
            }
        };
        let challenge = ping
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
            .filter(|c| c.scheme == "bearer")
            .ok_or_else(|| {
                refused(format!(
                    "GET {base}/v2/ answered {} without a Bearer challenge",
                    ping.status()
                ))
            })?;
        let mut url = reqwest::Url::parse(challenge.param("realm").unwrap_or_default())
            .map_err(|e| refused(format!("bad token realm: {e}")))?;
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = challenge.param("service") {
            url.query_pairs_mut().append_pair("service", service);
        }
        let answer = client
            .get(url)
            .basic_auth(&node.username, Some(&node.password))
            .send()
            .await
            .map_err(|e| unreachable(transport_reason(&e)))?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(refused(format!("{status}: {}", body.trim())));
        }
        let token: TokenAnswer = serde_json::from_str(&body)
            .map_err(|e| refused(format!("invalid token answer: {e}")))?;
        let value = if token.token.is_empty() {
            token.access_token
        } else {
            token.token
        };
        if value.is_empty() {
            return Err(refused("token answer without a token".into()));
        }
        return Ok((
            value,
            Duration::from_secs(token.expires_in.unwrap_or(60).max(60)),
        ));
    }
    Err(unreachable(last))
}

/// A `CredentialProviderConfig` for the kubelet, matching `registry` and running this binary
/// (installed in the kubelet's provider bin dir as `name`) with `args`.
pub fn kubelet_config(
    name: &str,
    registry: &str,
    args: &[String],
    default_cache: Duration,
) -> String {
    let mut out = String::from(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n",
    );
    out.push_str(&format!("- name: {}\n", crate::yaml::scalar(name)));
    out.push_str(&format!("  apiVersion: {API_VERSION}\n"));
    out.push_str(&format!(
        "  matchImages:\n  - {}\n",
        crate::gojson::quote(registry)
    ));
    out.push_str(&format!(
        "  defaultCacheDuration: {}\n",
        crate::pull::go_duration(default_cache)
    ));
    if !args.is_empty() {
        out.push_str("  args:\n");
        for arg in args {
            out.push_str(&format!("  - {}\n", crate::yaml::scalar(arg)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_durations_are_written_as_go_does() {
        let go = crate::pull::go_duration;
        assert_eq!(go(Duration::from_secs(240)), "4m0s");
        assert_eq!(go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go(Duration::from_secs(59)), "59s");
        assert_eq!(go(Duration::ZERO), "0s");
    }

    #[test]
    fn requests_must_be_v1_credential_provider_requests() {
        let good = r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"r.io/ns/app:1"}"#;
        assert_eq!(parse_request(good).unwrap().image, "r.io/ns/app:1");
        assert!(
            parse_request(r#"{"apiVersion":"v0","kind":"CredentialProviderRequest","image":"x"}"#)
                .is_err()
        );
        assert!(parse_request("not json").is_err());
    }

    #[test]
    fn scope_covers_the_tenancy_of_the_image() {
        let reference = ImageReference::parse("r.io:5000/acme/project01/app:v1").unwrap();
        assert_eq!(tenancy_scope(&reference), "repository:acme/*:pull");
    }

    #[test]
    fn config_names_the_binary_and_registry() {
        let config = kubelet_config(
            "minato",
            "registry.example:5000",
            &[
                "credential-provider".into(),
                "--credentials-file".into(),
                "/etc/minato/node.json".into(),
            ],
            Duration::from_secs(240),
        );
        assert_eq!(
            config,
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: minato\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n  matchImages:\n  - \"registry.example:5000\"\n  defaultCacheDuration: 4m0s\n  args:\n  - credential-provider\n  - --credentials-file\n  - /etc/minato/node.json\n"
        );
    }
}
