//! Checking registry credentials the way `docker login` does: ping `/v2/`, follow the
//! `WWW-Authenticate` challenge (Bearer token endpoint or Basic), and report the registry's own
//! reason when it refuses.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;

/// The token endpoint path of tenancy registries (minato, and the managed service it mirrors):
/// their logins must carry the tenancy namespace.
pub const TENANCY_TOKEN_PATH: &str = "/20180419/docker/token";

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Nothing answered at the address.
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable {
        /// The registry tried.
        registry: String,
        /// Transport-level cause.
        reason: String,
    },
    /// The registry refused the credentials.
    #[error("registry {registry} refused the credentials: {reason}")]
    Refused {
        /// The registry.
        registry: String,
        /// Its message.
        reason: String,
    },
    /// The registry answered something that is not the registry protocol.
    #[error("{registry} does not look like a container registry: {reason}")]
    NotARegistry {
        /// The address tried.
        registry: String,
        /// What came back.
        reason: String,
    },
}

/// What a successful check learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// The base URL that answered (`https://host` or `http://host`).
    pub base_url: String,
    /// Whether the registry uses tenancy logins (`<namespace>/<user>`).
    pub tenancy_registry: bool,
    /// Whether the registry let anonymous callers in (credentials were not needed).
    pub open: bool,
}

/// A challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// Parameters such as `realm`, `service`, `scope`, `error`.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses `Scheme key="value",key=value`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let mut params = Vec::new();
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after.split_once(',').map_or((after, ""), |(v, r)| (v, r))
            };
            params.push((key.trim().to_ascii_lowercase(), value.to_owned()));
            rest = remaining.trim_start_matches([',', ' ']);
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The URLs to try for a registry given as `host[:port]` or a URL: the given scheme, else
/// HTTPS, then plain HTTP for loopback hosts (as docker treats them as insecure registries).
pub fn candidate_base_urls(registry: &str) -> Vec<String> {
    let trimmed = registry.trim().trim_end_matches('/');
    if let Some(rest) = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
    {
        let scheme = &trimmed[..trimmed.len() - rest.len()];
        let host = rest.split('/').next().unwrap_or(rest);
        return vec![format!("{scheme}{host}")];
    }
    let host = trimmed.split('/').next().unwrap_or(trimmed);
    let mut urls = vec![format!("https://{host}")];
    let hostname = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .trim_matches(['[', ']']);
    if hostname == "localhost" || hostname.starts_with("127.") || hostname == "::1" {
        urls.push(format!("http://{host}"));
    }
    urls
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"][0]["message"]
                .as_str()
                .or_else(|| v["details"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().chars().take(300).collect())
}

/// Logs in to `registry` with `username`/`password`, as `docker login` would.
pub async fn check(
    registry: &str,
    username: &str,
    password: &str,
) -> Result<LoginOutcome, LoginError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| LoginError::Unreachable {
            registry: registry.to_owned(),
            reason: e.to_string(),
        })?;
    let mut last_error = None;
    for base in candidate_base_urls(registry) {
        match client.get(format!("{base}/v2/")).send().await {
            Ok(ping) => {
                return authenticate(&client, registry, &base, ping, username, password).await;
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(LoginError::Unreachable {
        registry: registry.to_owned(),
        reason: last_error.map_or_else(|| "no address to try".to_owned(), |e| transport_reason(&e)),
    })
}

/// A transport error with its innermost cause (e.g. "Connection refused").
pub fn transport_reason(error: &reqwest::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

async fn authenticate(
    client: &reqwest::Client,
    registry: &str,
    base: &str,
    ping: reqwest::Response,
    username: &str,
    password: &str,
) -> Result<LoginOutcome, LoginError> {
    let refused = |reason: String| LoginError::Refused {
        registry: registry.to_owned(),
        reason,
    };
    let outcome = |tenancy_registry, open| LoginOutcome {
        base_url: base.to_owned(),
        tenancy_registry,
        open,
    };
    match ping.status() {
        StatusCode::OK => return Ok(outcome(false, true)),
        StatusCode::UNAUTHORIZED => {}
        other => {
            return Err(LoginError::NotARegistry {
                registry: registry.to_owned(),
                reason: format!("GET {base}/v2/ answered {other}"),
            });
        }
    }
    let challenge = ping
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse)
        .ok_or_else(|| LoginError::NotARegistry {
            registry: registry.to_owned(),
            reason: "401 without a WWW-Authenticate challenge".into(),
        })?;
    let request = if challenge.scheme == "bearer" {
        let realm = challenge.param("realm").unwrap_or_default();
        let mut url = reqwest::Url::parse(realm).map_err(|e| LoginError::NotARegistry {
            registry: registry.to_owned(),
            reason: format!("bad token realm {realm:?}: {e}"),
        })?;
        if let Some(service) = challenge.param("service") {
            url.query_pairs_mut().append_pair("service", service);
        }
        client.get(url)
    } else {
        client.get(format!("{base}/v2/"))
    };
    let tenancy_registry = challenge
        .param("realm")
        .is_some_and(|realm| realm.trim_end_matches('/').ends_with(TENANCY_TOKEN_PATH));
    let answer = request
        .basic_auth(username, Some(password))
        .send()
        .await
        .map_err(|e| LoginError::Unreachable {
            registry: registry.to_owned(),
            reason: transport_reason(&e),
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(outcome(tenancy_registry, false));
    }
    let body = answer.text().await.unwrap_or_default();
    Err(refused(format!("{status}: {}", error_message(&body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://r.io/20180419/docker/token",service="r.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://r.io/20180419/docker/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let b = Challenge::parse("Basic realm=minato").unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.param("realm")),
            ("basic", Some("minato"))
        );
    }

    #[test]
    fn loopback_registries_may_fall_back_to_http() {
        assert_eq!(
            candidate_base_urls("phx.ocir.io"),
            vec!["https://phx.ocir.io"]
        );
        assert_eq!(
            candidate_base_urls("127.0.0.1:5000"),
            vec!["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert_eq!(
            candidate_base_urls("http://localhost:5000/v2/"),
            vec!["http://localhost:5000"]
        );
    }
}
