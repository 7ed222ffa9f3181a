//! Image signatures as a cluster sees them: found through the registry's HTTP API and checked
//! against trusted keys.
//!
//! minato stores a signature as an OCI 1.1 referrer of the image manifest (artifact type
//! [`SIGNATURE_ARTIFACT_TYPE`], listed by `GET /v2/<repo>/referrers/<digest>`, or through the
//! referrers tag schema `sha256-<hex>` when the registry has no referrers API) and, for ECDSA
//! keys, also in cosign's layout (tag `sha256-<hex>.sig`). [`list`] finds both, [`verify`]
//! checks each with [`verify_record`] / [`verify_cosign`]: the signature AND that the signed
//! payload names this image's digest, repository and the signing key.

use std::str::FromStr;

use minato_oci::Digest;
use minato_sign::artifact::SIGNATURE_ARTIFACT_TYPE;
use minato_sign::cosign::{CosignLayer, parse_cosign_manifest, signature_tag};
use minato_sign::{
    KeyAlgorithm, SignatureRecord, TrustedKey, VerifyFailure, parse_signature_manifest,
    verify_cosign, verify_record,
};

use crate::reference::ImageReference;
use crate::registry_client::{Credential, RegistryClient, RegistryError, Transport};

/// Largest signature payload blob read.
const PAYLOAD_LIMIT: usize = 256 * 1024;

/// Why signatures could not be listed: the registry could not be asked (verification fails
/// closed on these) or the image does not exist.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The registry could not be reached or refused a request.
    #[error("registry error: {0}")]
    Registry(#[from] RegistryError),
    /// The digest the registry returned is not usable.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

impl SignatureError {
    /// Whether the registry itself was unreachable (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SignatureError::Registry(RegistryError::Unreachable { .. })
        )
    }
}

/// Where a signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureSource {
    /// A minato signature manifest, an OCI 1.1 referrer of the image.
    Referrer,
    /// One layer of the cosign `sha256-<hex>.sig` manifest.
    Cosign,
}

/// What a signature manifest contains, as far as it could be read.
#[derive(Debug, Clone)]
pub enum SignatureContent {
    /// A minato signature record.
    Record(SignatureRecord),
    /// A cosign signature layer.
    Cosign(CosignLayer),
    /// A manifest that is not a valid signature of its kind.
    Invalid(String),
}

/// One signature of an image.
#[derive(Debug, Clone)]
pub struct FoundSignature {
    /// Digest of the signature manifest (what `minato signatures delete` takes).
    pub manifest_digest: String,
    /// Layer index within a cosign manifest (0 for referrers).
    pub layer: usize,
    /// Where it was found.
    pub source: SignatureSource,
    /// Its content.
    pub content: SignatureContent,
}

impl FoundSignature {
    /// A short label: the manifest digest, with the layer for cosign signatures.
    pub fn label(&self) -> String {
        match self.source {
            SignatureSource::Referrer => self.manifest_digest.clone(),
            SignatureSource::Cosign => format!("{}#{}", self.manifest_digest, self.layer),
        }
    }
}

/// An image resolved to its manifest digest, with its signatures.
#[derive(Debug, Clone)]
pub struct ImageSignatures {
    /// The image as parsed.
    pub reference: ImageReference,
    /// The manifest digest the reference names.
    pub digest: String,
    /// Every signature found.
    pub signatures: Vec<FoundSignature>,
}

/// A key a verification trusts.
#[derive(Debug, Clone)]
pub enum PolicyKey {
    /// A key with ids, versions and states (from the registry's key endpoint or a vault).
    Named(TrustedKey),
    /// A bare public key (PEM), e.g. from a file or a policy: it vouches for whatever key ids
    /// a signature names, as long as the signature verifies with it and the payload and record
    /// agree on those ids.
    Pem {
        /// Where it came from, for messages.
        label: String,
        /// The PEM text.
        pem: Vec<u8>,
    },
}

impl PolicyKey {
    /// The name used in messages.
    pub fn label(&self) -> &str {
        match self {
            PolicyKey::Named(key) => &key.key_id,
            PolicyKey::Pem { label, .. } => label,
        }
    }

    /// The trusted key to check `record` with, if this key could have made it.
    fn for_record(&self, record: &SignatureRecord) -> Option<TrustedKey> {
        match self {
            PolicyKey::Named(key) => (key.key_id == record.kms_key_id).then(|| key.clone()),
            PolicyKey::Pem { pem, .. } => {
                let algorithm = if record.signing_algorithm.is_rsa() {
                    KeyAlgorithm::Rsa2048
                } else {
                    KeyAlgorithm::EcdsaP256
                };
                Some(TrustedKey::single(
                    &record.kms_key_id,
                    &record.kms_key_version_id,
                    algorithm,
                    pem,
                ))
            }
        }
    }

    /// The trusted key to check a cosign layer with.
    fn for_cosign(&self) -> TrustedKey {
        match self {
            PolicyKey::Named(key) => key.clone(),
            PolicyKey::Pem { label, pem } => {
                TrustedKey::single(label, label, KeyAlgorithm::EcdsaP256, pem)
            }
        }
    }
}

/// The outcome of checking one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// [`FoundSignature::label`].
    pub signature: String,
    /// The key that verified it, or why none did.
    pub outcome: Result<String, String>,
}

/// The outcome of verifying an image.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The image and its signatures.
    pub image: ImageSignatures,
    /// One entry per signature checked.
    pub checks: Vec<Check>,
    /// The key that verified a signature, if any.
    pub verified_by: Option<String>,
}

impl Verification {
    /// Whether a valid signature from a trusted key exists.
    pub fn is_verified(&self) -> bool {
        self.verified_by.is_some()
    }

    /// One line per failed check: `<signature>: <reason>`.
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| {
                c.outcome
                    .as_ref()
                    .err()
                    .map(|r| format!("{}: {r}", c.signature))
            })
            .collect()
    }
}

/// Connects to the registry of `reference`, with `credential` when given (anonymous
/// otherwise).
pub async fn connect(
    transport: &Transport,
    reference: &ImageReference,
    credential: Option<Credential>,
) -> Result<RegistryClient, SignatureError> {
    Ok(transport
        .connect(reference.registry_host(), credential)
        .await?)
}

/// The manifest digest of `reference`: its digest when pinned (checked to exist), else what
/// its tag points to.
pub async fn resolve(
    client: &RegistryClient,
    reference: &ImageReference,
) -> Result<String, SignatureError> {
    let manifest = client
        .manifest(&reference.path, reference.manifest_reference())
        .await?;
    Ok(manifest.digest.to_string())
}

/// Resolves `reference` and lists its signatures (referrers, else the referrers tag schema,
/// plus the cosign `.sig` tag).
pub async fn list(
    client: &RegistryClient,
    reference: &ImageReference,
) -> Result<ImageSignatures, SignatureError> {
    let digest = resolve(client, reference).await?;
    let repository = &reference.path;
    let mut signatures = Vec::new();
    let referrers = match client
        .referrers(repository, &digest, Some(SIGNATURE_ARTIFACT_TYPE))
        .await?
    {
        Some(entries) => entries,
        None => referrers_by_tag(client, repository, &digest).await?,
    };
    for entry in referrers {
        let manifest = client.manifest(repository, &entry.digest).await?;
        let content = match parse_signature_manifest(&manifest.bytes) {
            Ok(record) => SignatureContent::Record(record),
            Err(e) => SignatureContent::Invalid(e.to_string()),
        };
        signatures.push(FoundSignature {
            manifest_digest: entry.digest,
            layer: 0,
            source: SignatureSource::Referrer,
            content,
        });
    }
    let tag = signature_tag(&digest).map_err(|_| SignatureError::Digest(digest.clone()))?;
    if let Some(manifest) = optional(client.manifest(repository, &tag).await)? {
        let manifest_digest = manifest.digest.to_string();
        match parse_cosign_manifest(&manifest.bytes) {
            Ok(layers) => {
                for (layer, content) in layers.into_iter().enumerate() {
                    signatures.push(FoundSignature {
                        manifest_digest: manifest_digest.clone(),
                        layer,
                        source: SignatureSource::Cosign,
                        content: SignatureContent::Cosign(content),
                    });
                }
            }
            Err(e) => signatures.push(FoundSignature {
                manifest_digest,
                layer: 0,
                source: SignatureSource::Cosign,
                content: SignatureContent::Invalid(e.to_string()),
            }),
        }
    }
    Ok(ImageSignatures {
        reference: reference.clone(),
        digest,
        signatures,
    })
}

/// The referrers tag schema: the index tagged `sha256-<hex>`, filtered to signatures.
async fn referrers_by_tag(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
) -> Result<Vec<crate::registry_client::IndexEntry>, SignatureError> {
    let tag = digest.replacen(':', "-", 1);
    let Some(index) = optional(client.manifest(repository, &tag).await)? else {
        return Ok(Vec::new());
    };
    let entries = crate::registry_client::parse_index(&index.bytes).unwrap_or_default();
    Ok(entries
        .into_iter()
        .filter(|e| e.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
        .collect())
}

/// `None` for a 404 answer.
fn optional<T>(result: Result<T, RegistryError>) -> Result<Option<T>, SignatureError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Resolves and lists the signatures of `reference`, then checks each against `keys`. The
/// first signature that verifies with any key makes the image verified; every check is
/// reported.
pub async fn verify(
    client: &RegistryClient,
    reference: &ImageReference,
    keys: &[PolicyKey],
) -> Result<Verification, SignatureError> {
    let image = list(client, reference).await?;
    let mut checks = Vec::new();
    let mut verified_by = None;
    for signature in &image.signatures {
        let outcome = check_one(client, &image, signature, keys).await?;
        if verified_by.is_none()
            && let Ok(key) = &outcome
        {
            verified_by = Some(key.clone());
        }
        checks.push(Check {
            signature: signature.label(),
            outcome,
        });
    }
    Ok(Verification {
        image,
        checks,
        verified_by,
    })
}

/// Checks one signature against every key; `Ok(key)` for the first that verifies it, else
/// the reasons (one per key tried).
async fn check_one(
    client: &RegistryClient,
    image: &ImageSignatures,
    signature: &FoundSignature,
    keys: &[PolicyKey],
) -> Result<Result<String, String>, SignatureError> {
    let repository = &image.reference.path;
    let (payload_digest, payload_size) = match &signature.content {
        SignatureContent::Invalid(reason) => return Ok(Err(reason.clone())),
        SignatureContent::Record(r) => (r.payload.digest.clone(), r.payload.size),
        SignatureContent::Cosign(l) => (l.payload_digest.clone(), l.payload_size),
    };
    if payload_size > PAYLOAD_LIMIT as u64 {
        return Ok(Err(format!("payload of {payload_size} bytes is too large")));
    }
    let digest = Digest::from_str(&payload_digest)
        .map_err(|_| SignatureError::Digest(payload_digest.clone()))?;
    let payload = match client.blob_bytes(repository, &digest, PAYLOAD_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) if e.status() == Some(404) => {
            return Ok(Err(format!("payload blob {payload_digest} is missing")));
        }
        Err(e) => return Err(e.into()),
    };
    let mut reasons = Vec::new();
    for key in keys {
        let result = match &signature.content {
            SignatureContent::Record(record) => match key.for_record(record) {
                Some(trusted) => {
                    verify_record(record, &payload, &image.digest, repository, &trusted)
                }
                None => Err(VerifyFailure::KeyMismatch(format!(
                    "signed with key {}, not {}",
                    record.kms_key_id,
                    key.label()
                ))),
            },
            SignatureContent::Cosign(layer) => {
                verify_cosign(layer, &payload, &image.digest, &key.for_cosign()).and_then(
                    |simple| check_cosign_repository(&simple.docker_reference, repository),
                )
            }
            SignatureContent::Invalid(_) => unreachable!("handled above"),
        };
        match result {
            Ok(()) => return Ok(Ok(key.label().to_owned())),
            Err(failure) => reasons.push(format!("{}: {failure}", key.label())),
        }
    }
    if keys.is_empty() {
        reasons.push("no trusted keys".to_owned());
    }
    Ok(Err(reasons.join("; ")))
}

/// A cosign payload's `docker-reference` must name the same repository path (any host: the
/// registry may be reached under several names).
fn check_cosign_repository(docker_reference: &str, repository: &str) -> Result<(), VerifyFailure> {
    let path = ImageReference::parse(docker_reference)
        .map(|r| r.path)
        .unwrap_or_else(|_| docker_reference.to_owned());
    if path == repository {
        Ok(())
    } else {
        Err(VerifyFailure::WrongRepository {
            expected: repository.to_owned(),
            found: docker_reference.to_owned(),
        })
    }
}

/// Reads PEM public keys from text (one key per file).
pub fn pem_key(label: &str, pem: &[u8]) -> Result<PolicyKey, String> {
    match minato_sign::algorithms::pem_decode(pem) {
        Some((kind, _)) if kind == "PUBLIC KEY" || kind == "RSA PUBLIC KEY" => Ok(PolicyKey::Pem {
            label: label.to_owned(),
            pem: pem.to_vec(),
        }),
        Some((kind, _)) => Err(format!("{label}: a {kind} PEM block is not a public key")),
        None => Err(format!("{label}: no PEM public key")),
    }
}
