//! Deciding whether a stored signature vouches for an image.
//!
//! A signature counts only if it verifies with a trusted key version that is enabled AND the
//! signed payload names the image being checked: its `imageDigest` and `repositoryName` must
//! be the expected ones, and its `kmsKeyId`, `kmsKeyVersionId` and `signingAlgorithm` must be
//! the record's. Oracle's samples skip those comparisons and rely on the listing filter
//! (pull-path spec §6.2); without them a valid signature of one image could be attached to
//! another.

use minato_oci::Digest;

use crate::algorithms::{KeyAlgorithm, SigningAlgorithm, verify};
use crate::artifact::SignatureRecord;
use crate::cosign::{CosignLayer, SimpleSigning, parse_simple_signing};
use crate::payload::Payload;

/// Why a signature does not vouch for the image. Each variant is a distinct, loggable reason
/// (the admission webhook reports them per signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// The fetched payload blob is not the one the signature manifest names.
    #[error("payload blob does not match its descriptor (expected {expected}, got {found})")]
    PayloadMismatch {
        /// Digest and size named by the manifest.
        expected: String,
        /// Digest and size of the bytes received.
        found: String,
    },
    /// The payload is not a valid payload of its format.
    #[error("malformed signature payload: {0}")]
    MalformedPayload(String),
    /// The signature was made with another key, version or algorithm than the one it claims
    /// or than the trusted key.
    #[error("key mismatch: {0}")]
    KeyMismatch(String),
    /// The key, or the key version that made the signature, is disabled.
    #[error("key {0} is disabled")]
    DisabledKey(String),
    /// The signature does not verify over the payload with the key.
    #[error("signature does not verify with key {0}")]
    BadSignature(String),
    /// A valid signature, but of another image.
    #[error("signature is for digest {found}, not {expected}")]
    WrongDigest {
        /// The image being checked.
        expected: String,
        /// The digest the signature vouches for.
        found: String,
    },
    /// A valid signature, but made for another repository.
    #[error("signature is for repository {found:?}, not {expected:?}")]
    WrongRepository {
        /// The repository being checked.
        expected: String,
        /// The repository the signature names.
        found: String,
    },
}

/// One version of a trusted key: its public key and whether it may verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKeyVersion {
    /// `kmsKeyVersionId`.
    pub key_version_id: String,
    /// Public key, SubjectPublicKeyInfo DER or PEM.
    pub public_key_der: Vec<u8>,
    /// Whether this version may verify.
    pub enabled: bool,
}

/// A key a verification policy trusts, with every version (signatures made before a rotation
/// name older versions). Built by [`crate::Vault::trusted_key`], or by hand for a key held
/// elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// `kmsKeyId`.
    pub key_id: String,
    /// Key type (decides which signing algorithms fit).
    pub algorithm: KeyAlgorithm,
    /// Whether the key as a whole may verify.
    pub enabled: bool,
    /// Its versions.
    pub versions: Vec<TrustedKeyVersion>,
}

impl TrustedKey {
    /// A key with one enabled version, e.g. a public key from a policy file or `cosign.pub`.
    pub fn single(
        key_id: &str,
        key_version_id: &str,
        algorithm: KeyAlgorithm,
        public_key_pem_or_der: &[u8],
    ) -> TrustedKey {
        TrustedKey {
            key_id: key_id.to_owned(),
            algorithm,
            enabled: true,
            versions: vec![TrustedKeyVersion {
                key_version_id: key_version_id.to_owned(),
                public_key_der: public_key_pem_or_der.to_vec(),
                enabled: true,
            }],
        }
    }
}

/// Checks that `payload_bytes` are the blob `digest`/`size` name.
fn check_blob(digest: &str, size: u64, payload_bytes: &[u8]) -> Result<(), VerifyFailure> {
    let expected: Digest = digest
        .parse()
        .map_err(|_| VerifyFailure::MalformedPayload(format!("invalid payload digest {digest}")))?;
    let found = Digest::of(expected.algorithm(), payload_bytes);
    if found != expected || payload_bytes.len() as u64 != size {
        return Err(VerifyFailure::PayloadMismatch {
            expected: format!("{expected} ({size} bytes)"),
            found: format!("{found} ({} bytes)", payload_bytes.len()),
        });
    }
    Ok(())
}

/// Verifies a minato signature record (from [`crate::parse_signature_manifest`]) and its
/// payload blob for the image `expected_digest` in `expected_repository`, against
/// `trusted_key`. Checks, in order: the blob is the one the record names; it is a valid
/// payload; the record, the payload and the trusted key agree on key id, key version and
/// algorithm; the key and version are enabled; the signature verifies; the payload names the
/// expected digest (as does the record's subject) and repository.
pub fn verify_record(
    record: &SignatureRecord,
    payload_bytes: &[u8],
    expected_digest: &str,
    expected_repository: &str,
    trusted_key: &TrustedKey,
) -> Result<(), VerifyFailure> {
    check_blob(&record.payload.digest, record.payload.size, payload_bytes)?;
    let payload = Payload::parse(payload_bytes)
        .map_err(|e| VerifyFailure::MalformedPayload(e.to_string()))?;
    if record.kms_key_id != trusted_key.key_id {
        return Err(VerifyFailure::KeyMismatch(format!(
            "signed with key {}, not the trusted key {}",
            record.kms_key_id, trusted_key.key_id
        )));
    }
    if payload.kms_key_id != record.kms_key_id
        || payload.kms_key_version_id != record.kms_key_version_id
    {
        return Err(VerifyFailure::KeyMismatch(format!(
            "payload names key version {}, the signature record {}",
            payload.kms_key_version_id, record.kms_key_version_id
        )));
    }
    if payload.signing_algorithm != record.signing_algorithm {
        return Err(VerifyFailure::KeyMismatch(format!(
            "payload names algorithm {}, the signature record {}",
            payload.signing_algorithm, record.signing_algorithm
        )));
    }
    if !trusted_key.algorithm.fits(record.signing_algorithm) {
        return Err(VerifyFailure::KeyMismatch(format!(
            "algorithm {} does not fit {} key {}",
            record.signing_algorithm, trusted_key.algorithm, trusted_key.key_id
        )));
    }
    let version = trusted_key
        .versions
        .iter()
        .find(|v| v.key_version_id == record.kms_key_version_id)
        .ok_or_else(|| {
            VerifyFailure::KeyMismatch(format!(
                "key {} has no version {}",
                trusted_key.key_id, record.kms_key_version_id
            ))
        })?;
    if !trusted_key.enabled {
        return Err(VerifyFailure::DisabledKey(trusted_key.key_id.clone()));
    }
    if !version.enabled {
        return Err(VerifyFailure::DisabledKey(version.key_version_id.clone()));
    }
    if !verify(
        &version.public_key_der,
        record.signing_algorithm,
        payload_bytes,
        &record.signature,
    ) {
        return Err(VerifyFailure::BadSignature(version.key_version_id.clone()));
    }
    for found in [&payload.image_digest, &record.subject.digest] {
        if found != expected_digest {
            return Err(VerifyFailure::WrongDigest {
                expected: expected_digest.to_owned(),
                found: found.clone(),
            });
        }
    }
    if payload.repository_name != expected_repository {
        return Err(VerifyFailure::WrongRepository {
            expected: expected_repository.to_owned(),
            found: payload.repository_name,
        });
    }
    Ok(())
}

/// Verifies one cosign signature layer and its payload blob for the image `expected_digest`
/// with an ECDSA P-256 trusted key. cosign signatures do not name a key version, so each
/// version is tried; a signature that verifies only with a disabled version (or key) gives
/// [`VerifyFailure::DisabledKey`]. The payload's `docker-reference` is returned, not checked
/// (cosign does not check it either: signatures survive copies to other registries).
pub fn verify_cosign(
    layer: &CosignLayer,
    payload_bytes: &[u8],
    expected_digest: &str,
    trusted_key: &TrustedKey,
) -> Result<SimpleSigning, VerifyFailure> {
    check_blob(&layer.payload_digest, layer.payload_size, payload_bytes)?;
    let payload = parse_simple_signing(payload_bytes)
        .map_err(|e| VerifyFailure::MalformedPayload(e.to_string()))?;
    let algorithm = SigningAlgorithm::EcdsaP256Sha256;
    if !trusted_key.algorithm.fits(algorithm) {
        return Err(VerifyFailure::KeyMismatch(format!(
            "cosign signatures need an ECDSA key; {} is {}",
            trusted_key.key_id, trusted_key.algorithm
        )));
    }
    let signer = trusted_key
        .versions
        .iter()
        .find(|v| {
            verify(
                &v.public_key_der,
                algorithm,
                payload_bytes,
                &layer.signature,
            )
        })
        .ok_or_else(|| VerifyFailure::BadSignature(trusted_key.key_id.clone()))?;
    if !trusted_key.enabled {
        return Err(VerifyFailure::DisabledKey(trusted_key.key_id.clone()));
    }
    if !signer.enabled {
        return Err(VerifyFailure::DisabledKey(signer.key_version_id.clone()));
    }
    if payload.manifest_digest != expected_digest {
        return Err(VerifyFailure::WrongDigest {
            expected: expected_digest.to_owned(),
            found: payload.manifest_digest,
        });
    }
    Ok(payload)
}
