//! Trusted keys fetched from a minato registry: `GET /admin/tenancies/{ns}/keys/{name}/public`
//! answers every version of a tenancy key with its PEM and state, to any authenticated user of
//! the tenancy.

use minato_sign::{KeyAlgorithm, TrustedKey, TrustedKeyVersion};
use serde::Deserialize;

use crate::registry_client::{RegistryClient, RegistryError};

/// Largest key answer read.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// Why a key could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    /// `<namespace>/<name>` was expected.
    #[error("key {0:?} is not <namespace>/<name>")]
    Name(String),
    /// The registry could not be asked.
    #[error("fetching key {key}: {source}")]
    Registry {
        /// The key asked for.
        key: String,
        /// The transport error.
        source: RegistryError,
    },
    /// The registry refused or does not know the key.
    #[error("fetching key {key}: HTTP {status}: {body}")]
    Refused {
        /// The key asked for.
        key: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
    /// The answer is not what the endpoint sends.
    #[error("fetching key {key}: unexpected answer: {reason}")]
    Answer {
        /// The key asked for.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyWire {
    key_id: String,
    algorithm: String,
    state: String,
    versions: Vec<VersionWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionWire {
    key_version_id: String,
    state: String,
    public_key_pem: String,
}

/// Fetches `<namespace>/<name>` with the client's credential (sent as Basic authentication).
pub async fn fetch(client: &RegistryClient, key: &str) -> Result<TrustedKey, KeyFetchError> {
    let (namespace, name) = key
        .split_once('/')
        .filter(|(n, k)| !n.is_empty() && !k.is_empty() && !k.contains('/'))
        .ok_or_else(|| KeyFetchError::Name(key.to_owned()))?;
    let path = format!("/admin/tenancies/{namespace}/keys/{name}/public");
    let (status, body) = client
        .get_with_basic(&path, ANSWER_LIMIT)
        .await
        .map_err(|source| KeyFetchError::Registry {
            key: key.to_owned(),
            source,
        })?;
    if status != 200 {
        return Err(KeyFetchError::Refused {
            key: key.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    parse(key, &body)
}

/// Reads the endpoint's answer into a [`TrustedKey`].
pub fn parse(key: &str, body: &[u8]) -> Result<TrustedKey, KeyFetchError> {
    let answer = |reason: String| KeyFetchError::Answer {
        key: key.to_owned(),
        reason,
    };
    let wire: KeyWire = serde_json::from_slice(body).map_err(|e| answer(e.to_string()))?;
    let algorithm: KeyAlgorithm = wire
        .algorithm
        .parse()
        .map_err(|e: minato_sign::AlgorithmError| answer(e.to_string()))?;
    Ok(TrustedKey {
        key_id: wire.key_id,
        algorithm,
        enabled: wire.state == "ENABLED",
        versions: wire
            .versions
            .into_iter()
            .map(|v| TrustedKeyVersion {
                key_version_id: v.key_version_id,
                public_key_der: v.public_key_pem.into_bytes(),
                enabled: v.state == "ENABLED",
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_public_key_answer() {
        let body = br#"{"keyId":"acme/release","algorithm":"ecdsa-p256","state":"ENABLED","currentVersion":2,
            "versions":[{"version":1,"keyVersionId":"acme/release/1","state":"DISABLED","publicKeyPem":"-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"},
                        {"version":2,"keyVersionId":"acme/release/2","state":"ENABLED","publicKeyPem":"x"}]}"#;
        let key = parse("acme/release", body).expect("parses");
        assert_eq!(key.key_id, "acme/release");
        assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP256);
        assert!(key.enabled);
        assert!(!key.versions[0].enabled);
        assert!(key.versions[1].enabled);
        assert!(matches!(
            parse("a/b", b"{}"),
            Err(KeyFetchError::Answer { .. })
        ));
    }
}
