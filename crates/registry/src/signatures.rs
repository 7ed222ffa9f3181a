//! Writing image signatures into the store, next to the image they sign.
//!
//! An OCIR-style signature becomes an OCI 1.1 referrer in the image's repository: the OCI
//! empty config blob, the payload blob and the signature manifest (`subject` = the image
//! manifest), pushed by digest, so `GET /v2/<name>/referrers/<digest>` lists it and
//! OCI-1.1-aware tools copy it with the image. For ECDSA P-256 keys the cosign layout is
//! written too: a simple-signing payload blob, its config and the manifest tagged
//! `sha256-<hex>.sig`, appending to the signatures already under that tag.

use std::io;

use bytes::Bytes;
use minato_oci::media_type::OCI_MANIFEST;
use minato_oci::{Algorithm, Digest, RepositoryName};
use minato_sign::artifact::{EMPTY_CONFIG, signature_manifest};
use minato_sign::cosign::{
    CosignLayer, cosign_signature_manifest, parse_cosign_manifest, signature_tag,
    simple_signing_payload,
};
use minato_sign::{Descriptor, Payload, Signature, SigningAlgorithm, Vault};
use minato_store::{PutManifest, Store, StoredManifest};

use crate::admin::vault_error;
use crate::error::{ApiError, Code};

/// The image being signed.
pub struct SignedImage<'a> {
    /// Its repository.
    pub repository: &'a RepositoryName,
    /// Its manifest, as stored.
    pub manifest: &'a StoredManifest,
    /// The registry host, for cosign's `docker-reference`.
    pub service: &'a str,
    /// Whether the repository's tags are immutable (an existing `.sig` tag cannot move).
    pub immutable: bool,
}

/// What [`sign_and_store`] wrote.
pub struct StoredSignature {
    /// The OCIR-style signature.
    pub signature: Signature,
    /// Digest of its signature manifest (the referrer).
    pub manifest_digest: String,
    /// The cosign tag written, for ECDSA keys.
    pub cosign_tag: Option<String>,
}

/// Signs `payload` with the key it names and stores the signature (and, for ECDSA P-256, a
/// cosign signature) in the image's repository.
pub async fn sign_and_store(
    store: &Store,
    vault: &Vault,
    image: &SignedImage<'_>,
    payload: &Payload,
) -> Result<StoredSignature, ApiError> {
    let (namespace, name, version) = minato_sign::parse_key_version_id(&payload.kms_key_version_id)
        .ok_or_else(|| {
            ApiError::bad_request(Code::Invalid, "malformed key version id in the payload")
        })?;
    let bytes = payload.to_bytes();
    let signature = vault
        .sign(
            namespace,
            name,
            Some(version),
            payload.signing_algorithm,
            &bytes,
        )
        .await
        .map_err(vault_error)?;
    let subject = Descriptor {
        media_type: image.manifest.media_type.clone(),
        digest: image.manifest.digest.to_string(),
        size: image.manifest.content.len() as u64,
    };
    put_blob(store, image.repository, EMPTY_CONFIG.to_vec()).await?;
    let payload_digest = put_blob(store, image.repository, bytes.clone()).await?;
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let manifest = signature_manifest(
        &subject,
        payload_digest.as_str(),
        bytes.len() as u64,
        &signature,
        &created,
    );
    let manifest_digest = put_manifest(store, image.repository, manifest, None, false).await?;
    let cosign_tag = if payload.signing_algorithm == SigningAlgorithm::EcdsaP256Sha256 {
        Some(store_cosign(store, vault, image, namespace, name, version).await?)
    } else {
        None
    };
    Ok(StoredSignature {
        signature,
        manifest_digest: manifest_digest.to_string(),
        cosign_tag,
    })
}

/// Signs the cosign simple-signing payload of the image and appends it to its `.sig` tag.
async fn store_cosign(
    store: &Store,
    vault: &Vault,
    image: &SignedImage<'_>,
    namespace: &str,
    name: &str,
    version: u32,
) -> Result<String, ApiError> {
    let digest = image.manifest.digest.as_str();
    let invalid = |e: minato_sign::cosign::CosignError| ApiError::internal(&e);
    let tag = signature_tag(digest).map_err(invalid)?;
    let reference = format!("{}/{}", image.service, image.repository);
    let bytes = simple_signing_payload(&reference, digest).map_err(invalid)?;
    let signature = vault
        .sign(
            namespace,
            name,
            Some(version),
            SigningAlgorithm::EcdsaP256Sha256,
            &bytes,
        )
        .await
        .map_err(vault_error)?;
    let mut layers = match store.manifest_by_tag(image.repository, &tag).await? {
        Some(existing) => parse_cosign_manifest(&existing.content).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                Code::Conflict,
                format!("tag {tag} holds something that is not a cosign signature: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    let payload_digest = put_blob(store, image.repository, bytes.clone()).await?;
    layers.push(CosignLayer {
        payload_digest: payload_digest.to_string(),
        payload_size: bytes.len() as u64,
        signature: signature.bytes,
    });
    let manifest = cosign_signature_manifest(&layers);
    put_blob(store, image.repository, manifest.config).await?;
    put_manifest(
        store,
        image.repository,
        manifest.manifest,
        Some(&tag),
        image.immutable,
    )
    .await?;
    Ok(tag)
}

/// Stores `content` as a blob of `repository` (a no-op link when it exists); its digest.
async fn put_blob(
    store: &Store,
    repository: &RepositoryName,
    content: Vec<u8>,
) -> Result<Digest, ApiError> {
    let digest = Digest::of(Algorithm::Sha256, &content);
    let body = futures_util::stream::once(async move { Ok::<_, io::Error>(Bytes::from(content)) });
    store.put_blob(repository, &digest, body).await?;
    Ok(digest)
}

/// Validates and stores an OCI image manifest built here, by digest and optionally a tag.
async fn put_manifest(
    store: &Store,
    repository: &RepositoryName,
    content: Vec<u8>,
    tag: Option<&str>,
    immutable_tags: bool,
) -> Result<Digest, ApiError> {
    let digest = Digest::of(Algorithm::Sha256, &content);
    let parsed = minato_oci::manifest::parse(&content, Some(OCI_MANIFEST))
        .map_err(|e| ApiError::internal(&e))?;
    let tags: Vec<&str> = tag.into_iter().collect();
    store
        .put_manifest(
            repository,
            PutManifest {
                digest: &digest,
                content: Bytes::from(content),
                parsed: &parsed,
                tags: &tags,
                immutable_tags,
            },
        )
        .await?;
    Ok(digest)
}
