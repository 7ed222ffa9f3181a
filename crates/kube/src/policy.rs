//! The image verification policy (an `ImageVerificationPolicy` YAML file) and the engine that
//! applies it to the images of a pod, with OKE's semantics (pull-path spec §6.3–6.4):
//!
//! - a disabled policy admits everything; enabled with no keys admits everything;
//! - a valid signature from any one key admits the image;
//! - the registry being unreachable denies (fail closed), with a message of its own;
//! - the break-glass annotation with the value exactly `"true"` admits the pod and is recorded
//!   as an audit annotation; exempt namespaces are not checked;
//! - images from hosts outside `registries` follow `otherImages`; `requireDigest` denies tags.
//!
//! Verdicts are cached per repository and digest (allow for 60 s, deny for 10 s), like the
//! `allowTTL` / `denyTTL` of the ImagePolicyWebhook plugin.
//!
//! ```yaml
//! apiVersion: minato.dev/v1
//! kind: ImageVerificationPolicy
//! enabled: true
//! keys: ["acme/release", {publicKey: "-----BEGIN PUBLIC KEY-----\n..."}]
//! registries: ["registry.example:5000"]
//! otherImages: allow
//! requireDigest: false
//! exemptNamespaces: [kube-system]
//! breakGlassAnnotation: oracle.image-policy.k8s.io/break-glass
//! ```
//!
//! Named keys (`<namespace>/<name>`) are fetched from the first registry of `registries`
//! ([`crate::trusted_keys`]) with that registry's credentials from the docker config.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::docker_config::{DockerConfig, registry_key};
use crate::reference::ImageReference;
use crate::registry_client::{ClientConfig, Credential, RegistryClient, Transport};
use crate::signatures::{self, PolicyKey, SignatureError};
use crate::trusted_keys;

/// How long an allow verdict is reused.
pub const ALLOW_TTL: Duration = Duration::from_secs(60);
/// How long a deny verdict is reused.
pub const DENY_TTL: Duration = Duration::from_secs(10);
/// How long keys fetched from the registry are reused.
const KEYS_TTL: Duration = Duration::from_secs(60);
/// The OKE break-glass annotation.
pub const DEFAULT_BREAK_GLASS: &str = "oracle.image-policy.k8s.io/break-glass";
/// The audit annotation key recorded when break-glass admits a pod.
pub const AUDIT_BREAK_GLASS: &str = "break-glass";

/// Why a policy file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not valid YAML of the expected shape.
    #[error("invalid policy: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Valid YAML with a wrong value.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

/// What to do with images from hosts outside `registries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OtherImages {
    /// Admit them unchecked (OKE's documented behaviour).
    #[default]
    Allow,
    /// Deny them.
    Deny,
}

/// One trusted key of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// `<namespace>/<name>`: a tenancy key of the registry.
    Named(String),
    /// A public key given inline.
    Inline {
        /// PEM text.
        #[serde(rename = "publicKey")]
        public_key: String,
    },
}

/// An `ImageVerificationPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `minato.dev/v1`.
    pub api_version: String,
    /// `ImageVerificationPolicy`.
    pub kind: String,
    /// Whether images are verified at all.
    #[serde(default)]
    pub enabled: bool,
    /// Trusted keys; a signature from any one admits.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Registry hosts (`host[:port]`) whose images are verified.
    #[serde(default)]
    pub registries: Vec<String>,
    /// What to do with images from other hosts.
    #[serde(default)]
    pub other_images: OtherImages,
    /// Whether images must be referenced by digest.
    #[serde(default)]
    pub require_digest: bool,
    /// Namespaces whose pods are not checked.
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    /// Pod annotation that, set to `"true"`, admits the pod unchecked.
    #[serde(default = "default_break_glass")]
    pub break_glass_annotation: String,
}

fn default_break_glass() -> String {
    DEFAULT_BREAK_GLASS.to_owned()
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_yaml_ng::from_str(text)?;
        if policy.api_version != "minato.dev/v1" || policy.kind != "ImageVerificationPolicy" {
            return Err(PolicyError::Invalid(format!(
                "expected apiVersion minato.dev/v1, kind ImageVerificationPolicy; got {} {}",
                policy.api_version, policy.kind
            )));
        }
        for key in &policy.keys {
            match key {
                KeySpec::Named(name) if name.split('/').count() != 2 => {
                    return Err(PolicyError::Invalid(format!(
                        "key {name:?} is not <namespace>/<name>"
                    )));
                }
                KeySpec::Inline { public_key } => {
                    signatures::pem_key("inline key", public_key.as_bytes())
                        .map_err(PolicyError::Invalid)?;
                }
                KeySpec::Named(_) => {}
            }
        }
        if policy.enabled && !policy.keys.is_empty() && policy.registries.is_empty() {
            return Err(PolicyError::Invalid(
                "an enabled policy with keys needs at least one entry in registries".into(),
            ));
        }
        Ok(policy)
    }

    /// Whether `host` is one of the verified registries.
    pub fn covers(&self, host: &str) -> bool {
        self.registries.iter().any(|r| registry_key(r) == host)
    }
}

/// The verdict for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageVerdict {
    /// Whether the image is admitted.
    pub allowed: bool,
    /// Why (for denials, the message shown to the user).
    pub message: String,
    /// The verified manifest digest, when the image was resolved and verified.
    pub digest: Option<String>,
}

impl ImageVerdict {
    fn allow(message: impl Into<String>) -> ImageVerdict {
        ImageVerdict {
            allowed: true,
            message: message.into(),
            digest: None,
        }
    }

    fn deny(message: impl Into<String>) -> ImageVerdict {
        ImageVerdict {
            allowed: false,
            message: message.into(),
            digest: None,
        }
    }
}

/// The decision for a pod (or pod template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDecision {
    /// Whether every image is admitted.
    pub allowed: bool,
    /// Denial messages joined, or empty.
    pub message: String,
    /// Audit annotations to record (break-glass).
    pub audit_annotations: BTreeMap<String, String>,
    /// One verdict per image asked about (empty when the pod was admitted unchecked).
    pub images: Vec<ImageVerdict>,
}

/// Applies a [`Policy`], caching verdicts and keys.
pub struct Engine {
    policy: Policy,
    transport: Transport,
    docker_config: Option<DockerConfig>,
    verdicts: Mutex<HashMap<String, (ImageVerdict, Instant)>>,
    keys: tokio::sync::Mutex<Option<(Vec<PolicyKey>, Instant)>>,
    /// Connected clients by registry host: the `/v2/` ping and token cache are paid once.
    clients: Mutex<HashMap<String, RegistryClient>>,
}

impl Engine {
    /// An engine for `policy`, with registry credentials from `docker_config` (anonymous
    /// for registries without an entry).
    pub fn new(policy: Policy, docker_config: Option<DockerConfig>) -> Result<Engine, String> {
        let transport = Transport::new(&ClientConfig {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(8),
            ..ClientConfig::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(Engine {
            policy,
            transport,
            docker_config,
            verdicts: Mutex::new(HashMap::new()),
            keys: tokio::sync::Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The policy applied.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn credential(&self, host: &str) -> Option<Credential> {
        let (user, password) = self.docker_config.as_ref()?.credentials(host)?;
        Some(Credential::new(user, password))
    }

    /// A client of the registry of `reference` with its credential (connected once per host).
    pub async fn client(
        &self,
        reference: &ImageReference,
    ) -> Result<RegistryClient, SignatureError> {
        let known = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&reference.domain)
            .cloned();
        if let Some(client) = known {
            return Ok(client);
        }
        let credential = self.credential(&reference.domain);
        let client = signatures::connect(&self.transport, reference, credential).await?;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.domain.clone(), client.clone());
        Ok(client)
    }

    /// Decides for the images of a pod in `namespace` with `annotations`.
    pub async fn check_pod(
        &self,
        namespace: &str,
        annotations: &BTreeMap<String, String>,
        images: &[String],
    ) -> PodDecision {
        let admit = |audit: BTreeMap<String, String>| PodDecision {
            allowed: true,
            message: String::new(),
            audit_annotations: audit,
            images: Vec::new(),
        };
        if !self.policy.enabled || self.policy.exempt_namespaces.iter().any(|n| n == namespace) {
            return admit(BTreeMap::new());
        }
        if annotations
            .get(&self.policy.break_glass_annotation)
            .is_some_and(|v| v == "true")
        {
            let note = format!(
                "image verification bypassed by annotation {}=true",
                self.policy.break_glass_annotation
            );
            return admit(BTreeMap::from([(AUDIT_BREAK_GLASS.to_owned(), note)]));
        }
        // The containers' images are independent: check them at once, so a pod's latency is
        // that of its slowest image.
        let verdicts =
            futures_util::future::join_all(images.iter().map(|image| self.check_image(image)))
                .await;
        let denials: Vec<&str> = verdicts
            .iter()
            .filter(|v| !v.allowed)
            .map(|v| v.message.as_str())
            .collect();
        PodDecision {
            allowed: denials.is_empty(),
            message: denials.join("; "),
            audit_annotations: BTreeMap::new(),
            images: verdicts,
        }
    }

    /// Decides for one image (policy enabled, pod not exempt).
    pub async fn check_image(&self, image: &str) -> ImageVerdict {
        let reference = match ImageReference::parse(image) {
            Ok(r) => r,
            Err(e) => return ImageVerdict::deny(format!("image {image:?} is invalid: {e}")),
        };
        if !self.policy.covers(&reference.domain) {
            return match self.policy.other_images {
                OtherImages::Allow => ImageVerdict::allow("not from a verified registry"),
                OtherImages::Deny => ImageVerdict::deny(format!(
                    "image {image:?} is not from a verified registry ({})",
                    self.policy.registries.join(", ")
                )),
            };
        }
        if self.policy.require_digest && reference.digest.is_none() {
            return ImageVerdict::deny(format!(
                "image {image:?} must be referenced by digest when image verification is enabled"
            ));
        }
        if self.policy.keys.is_empty() {
            return ImageVerdict::allow("no keys configured");
        }
        let keys = match self.keys().await {
            Ok(keys) => keys,
            Err(e) => {
                return ImageVerdict::deny(format!(
                    "image {image:?} cannot be verified: trusted keys unavailable, failing closed: {e}"
                ));
            }
        };
        let unreachable = |e: SignatureError| {
            ImageVerdict::deny(format!(
                "image {image:?} cannot be verified: registry {} unreachable, failing closed: {e}",
                reference.domain
            ))
        };
        if let Some(digest) = &reference.digest
            && let Some(cached) = self.cached(&format!("{}@{digest}", reference.repository()))
        {
            return cached;
        }
        let client = match self.client(&reference).await {
            Ok(c) => c,
            Err(e) => return unreachable(e),
        };
        let digest = match signatures::resolve(&client, &reference).await {
            Ok(d) => d,
            Err(e) if e.is_unreachable() => return unreachable(e),
            Err(e) => {
                return ImageVerdict::deny(format!("image {image:?} cannot be resolved: {e}"));
            }
        };
        let cache_key = format!("{}@{digest}", reference.repository());
        if let Some(cached) = self.cached(&cache_key) {
            return cached;
        }
        let pinned = ImageReference {
            digest: Some(digest.clone()),
            ..reference.clone()
        };
        let key_names: Vec<&str> = keys.iter().map(PolicyKey::label).collect();
        let verdict = match signatures::verify(&client, &pinned, &keys).await {
            Ok(v) if v.is_verified() => ImageVerdict {
                allowed: true,
                message: format!("signed by {}", v.verified_by.as_deref().unwrap_or_default()),
                digest: Some(digest),
            },
            Ok(v) => {
                let reasons = v.reasons();
                let mut message = format!(
                    "image {image:?} is not signed by any trusted key ({} signatures checked; keys tried: {})",
                    v.checks.len(),
                    key_names.join(", ")
                );
                if !reasons.is_empty() {
                    message.push_str(": ");
                    message.push_str(&reasons.join("; "));
                }
                ImageVerdict {
                    allowed: false,
                    message,
                    digest: Some(digest),
                }
            }
            Err(e) if e.is_unreachable() => return unreachable(e),
            Err(e) => ImageVerdict::deny(format!(
                "image {image:?} cannot be verified, failing closed: {e}"
            )),
        };
        self.remember(cache_key, verdict.clone());
        verdict
    }

    fn cached(&self, key: &str) -> Option<ImageVerdict> {
        let map = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        let (verdict, at) = map.get(key)?;
        let ttl = if verdict.allowed { ALLOW_TTL } else { DENY_TTL };
        (at.elapsed() < ttl).then(|| verdict.clone())
    }

    fn remember(&self, key: String, verdict: ImageVerdict) {
        let mut map = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (v, at)| at.elapsed() < if v.allowed { ALLOW_TTL } else { DENY_TTL });
        map.insert(key, (verdict, Instant::now()));
    }

    /// The policy's keys: inline ones as they are, named ones fetched from the first
    /// registry (cached for a minute).
    async fn keys(&self) -> Result<Vec<PolicyKey>, String> {
        let mut cache = self.keys.lock().await;
        if let Some((keys, at)) = cache.as_ref()
            && at.elapsed() < KEYS_TTL
        {
            return Ok(keys.clone());
        }
        let mut keys = Vec::new();
        let mut client = None;
        for (index, spec) in self.policy.keys.iter().enumerate() {
            match spec {
                KeySpec::Inline { public_key } => keys.push(signatures::pem_key(
                    &format!("publicKey[{index}]"),
                    public_key.as_bytes(),
                )?),
                KeySpec::Named(name) => {
                    if client.is_none() {
                        let host = registry_key(&self.policy.registries[0]);
                        let c = self
                            .transport
                            .connect(&host, self.credential(&host))
                            .await
                            .map_err(|e| e.to_string())?;
                        client = Some(c);
                    }
                    let Some(client) = &client else { continue };
                    let key = trusted_keys::fetch(client, name)
                        .await
                        .map_err(|e| e.to_string())?;
                    keys.push(PolicyKey::Named(key));
                }
            }
        }
        *cache = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_policy_file() {
        let policy = Policy::parse(
            "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\n\
             keys: [\"acme/release\", {publicKey: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"}]\n\
             registries: [\"registry.example:5000\"]\notherImages: deny\nrequireDigest: true\n\
             exemptNamespaces: [kube-system]\n",
        )
        .expect("valid");
        assert_eq!(policy.keys[0], KeySpec::Named("acme/release".into()));
        assert!(matches!(policy.keys[1], KeySpec::Inline { .. }));
        assert_eq!(policy.other_images, OtherImages::Deny);
        assert!(policy.require_digest);
        assert_eq!(policy.break_glass_annotation, DEFAULT_BREAK_GLASS);
        assert!(policy.covers("registry.example:5000"));
        assert!(!policy.covers("docker.io"));
        assert!(Policy::parse("apiVersion: v1\nkind: Pod\n").is_err());
        assert!(
            Policy::parse("apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nbogus: 1\n")
                .is_err()
        );
    }
}
