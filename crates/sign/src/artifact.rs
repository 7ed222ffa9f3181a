//! How minato stores an OCIR-style signature in the registry: as an OCI 1.1 referrer.
//!
//! OCIR keeps signatures as control-plane records bound to an image OCID; minato stores each
//! one as an OCI image manifest whose `subject` is the signed manifest, so it is listed by
//! `GET /v2/<name>/referrers/<digest>?artifactType=application/vnd.minato.image-signature.v1+json`,
//! is copied along by OCI-1.1-aware tools and needs no extra database. The manifest has the OCI
//! empty config, one layer whose blob is the signed payload JSON, and the signature and key
//! ids as annotations of that layer:
//!
//! ```json
//! {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!  "artifactType":"application/vnd.minato.image-signature.v1+json",
//!  "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:4413…","size":2},
//!  "layers":[{"mediaType":"application/vnd.minato.image-signature.payload.v1+json",
//!             "digest":"sha256:…","size":…,"annotations":{"dev.minato.kms-key-id":"…",
//!             "dev.minato.kms-key-version-id":"…","dev.minato.signature":"<base64>",
//!             "dev.minato.signing-algorithm":"SHA_256_RSA_PKCS_PSS"}}],
//!  "subject":{"mediaType":"…","digest":"sha256:…","size":…},
//!  "annotations":{"org.opencontainers.image.created":"2025-01-01T00:00:00Z"}}
//! ```
//!
//! The annotations are convenience for listing and filtering; what counts is the signature
//! over the payload blob, whose fields [`crate::verify_record`] compares with them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minato_oci::Digest;
use minato_oci::media_type::{OCI_EMPTY, OCI_MANIFEST};
use serde::{Deserialize, Serialize};

use crate::algorithms::SigningAlgorithm;
use crate::vault::Signature;

/// `artifactType` of a minato signature manifest (the referrers filter value).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.minato.image-signature.v1+json";
/// Media type of the layer holding the signed payload JSON.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.minato.image-signature.payload.v1+json";
/// Digest of the OCI empty config blob `{}`.
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The OCI empty config blob, which must be pushed with the manifest.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Layer annotation: base64 of the signature bytes.
pub const ANNOTATION_SIGNATURE: &str = "dev.minato.signature";
/// Layer annotation: `kmsKeyId`.
pub const ANNOTATION_KEY_ID: &str = "dev.minato.kms-key-id";
/// Layer annotation: `kmsKeyVersionId`.
pub const ANNOTATION_KEY_VERSION_ID: &str = "dev.minato.kms-key-version-id";
/// Layer annotation: the signing algorithm name.
pub const ANNOTATION_ALGORITHM: &str = "dev.minato.signing-algorithm";
/// Manifest annotation: creation time (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// Why a manifest was not accepted as a minato signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid minato signature manifest: {0}")]
pub struct ArtifactError(pub String);

/// An OCI content descriptor (media type, digest, size): the signed manifest as `subject`, or
/// the payload layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the described content.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A signature manifest read back: everything needed to fetch the payload blob and verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    /// The signed manifest.
    pub subject: Descriptor,
    /// The payload blob (media type [`PAYLOAD_MEDIA_TYPE`]).
    pub payload: Descriptor,
    /// `kmsKeyId` annotation.
    pub kms_key_id: String,
    /// `kmsKeyVersionId` annotation.
    pub kms_key_version_id: String,
    /// Signing algorithm annotation.
    pub signing_algorithm: SigningAlgorithm,
    /// Decoded signature bytes.
    pub signature: Vec<u8>,
    /// `org.opencontainers.image.created`, if present.
    pub created: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerWire {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestWire {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<LayerWire>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

/// Builds the signature manifest for `signature` over the payload blob
/// (`payload_blob_digest`, `payload_size`) of the image `subject`. The caller pushes
/// [`EMPTY_CONFIG`] and the payload blob first, then this manifest (by digest; no tag).
pub fn signature_manifest(
    subject: &Descriptor,
    payload_blob_digest: &str,
    payload_size: u64,
    signature: &Signature,
    created: &str,
) -> Vec<u8> {
    let layer_annotations = BTreeMap::from([
        (ANNOTATION_SIGNATURE.to_owned(), signature.base64()),
        (ANNOTATION_KEY_ID.to_owned(), signature.key_id.clone()),
        (
            ANNOTATION_KEY_VERSION_ID.to_owned(),
            signature.key_version_id.clone(),
        ),
        (
            ANNOTATION_ALGORITHM.to_owned(),
            signature.algorithm.as_str().to_owned(),
        ),
    ]);
    let manifest = ManifestWire {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(SIGNATURE_ARTIFACT_TYPE.to_owned()),
        config: Descriptor {
            media_type: OCI_EMPTY.to_owned(),
            digest: EMPTY_CONFIG_DIGEST.to_owned(),
            size: EMPTY_CONFIG.len() as u64,
        },
        layers: vec![LayerWire {
            media_type: PAYLOAD_MEDIA_TYPE.to_owned(),
            digest: payload_blob_digest.to_owned(),
            size: payload_size,
            annotations: Some(layer_annotations),
        }],
        subject: Some(subject.clone()),
        annotations: Some(BTreeMap::from([(
            ANNOTATION_CREATED.to_owned(),
            created.to_owned(),
        )])),
    };
    // Serializing plain structs and string maps cannot fail.
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// Reads a signature manifest back, refusing anything that is not exactly what
/// [`signature_manifest`] writes: wrong schema version, media type or artifact type, a
/// config other than the empty one, not exactly one payload layer, a missing subject, invalid
/// digests, missing or malformed annotations, or key ids that do not belong together.
pub fn parse_signature_manifest(bytes: &[u8]) -> Result<SignatureRecord, ArtifactError> {
    let fail = |why: &str| ArtifactError(why.to_owned());
    let wire: ManifestWire =
        serde_json::from_slice(bytes).map_err(|e| ArtifactError(e.to_string()))?;
    if wire.schema_version != 2 {
        return Err(fail("schemaVersion is not 2"));
    }
    if wire.media_type.as_deref() != Some(OCI_MANIFEST) {
        return Err(fail("mediaType is not the OCI image manifest"));
    }
    if wire.artifact_type.as_deref() != Some(SIGNATURE_ARTIFACT_TYPE) {
        return Err(fail("artifactType is not a minato image signature"));
    }
    if wire.config.media_type != OCI_EMPTY
        || wire.config.digest != EMPTY_CONFIG_DIGEST
        || wire.config.size != EMPTY_CONFIG.len() as u64
    {
        return Err(fail("config is not the OCI empty descriptor"));
    }
    let subject = wire.subject.ok_or_else(|| fail("no subject"))?;
    check_digest(&subject.digest, "subject")?;
    let [layer] = <[LayerWire; 1]>::try_from(wire.layers)
        .map_err(|_| fail("a signature manifest has exactly one layer"))?;
    if layer.media_type != PAYLOAD_MEDIA_TYPE {
        return Err(fail("the layer is not a signature payload"));
    }
    check_digest(&layer.digest, "payload layer")?;
    let annotations = layer
        .annotations
        .ok_or_else(|| fail("the payload layer has no annotations"))?;
    let get = |name: &str| {
        annotations
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ArtifactError(format!("annotation {name} is missing")))
    };
    let signature = STANDARD
        .decode(get(ANNOTATION_SIGNATURE)?)
        .map_err(|_| fail("annotation dev.minato.signature is not standard base64"))?;
    let kms_key_id = get(ANNOTATION_KEY_ID)?.clone();
    let kms_key_version_id = get(ANNOTATION_KEY_VERSION_ID)?.clone();
    let version = kms_key_version_id
        .strip_prefix(&kms_key_id)
        .and_then(|rest| rest.strip_prefix('/'));
    if !version.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
        return Err(fail("kms-key-version-id is not a version of kms-key-id"));
    }
    let algorithm = get(ANNOTATION_ALGORITHM)?;
    let signing_algorithm = SigningAlgorithm::ALL
        .into_iter()
        .find(|a| a.as_str() == algorithm)
        .ok_or_else(|| ArtifactError(format!("unknown signing algorithm {algorithm:?}")))?;
    let created = wire
        .annotations
        .and_then(|mut a| a.remove(ANNOTATION_CREATED));
    Ok(SignatureRecord {
        subject,
        payload: Descriptor {
            media_type: layer.media_type,
            digest: layer.digest,
            size: layer.size,
        },
        kms_key_id,
        kms_key_version_id,
        signing_algorithm,
        signature,
        created,
    })
}

fn check_digest(text: &str, what: &str) -> Result<(), ArtifactError> {
    text.parse::<Digest>()
        .map(|_| ())
        .map_err(|e| ArtifactError(format!("{what} digest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minato_oci::Algorithm;

    fn subject() -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: "sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1"
                .into(),
            size: 1234,
        }
    }

    fn signature() -> Signature {
        Signature {
            key_id: "acme1/release".into(),
            key_version_id: "acme1/release/2".into(),
            algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
            bytes: vec![1, 2, 3, 250],
        }
    }

    const PAYLOAD_DIGEST: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    fn manifest() -> Vec<u8> {
        signature_manifest(
            &subject(),
            PAYLOAD_DIGEST,
            321,
            &signature(),
            "2025-06-01T12:00:00Z",
        )
    }

    #[test]
    fn empty_config_constants_agree() {
        assert_eq!(
            Digest::of(Algorithm::Sha256, EMPTY_CONFIG).as_str(),
            EMPTY_CONFIG_DIGEST
        );
    }

    #[test]
    fn manifest_shape() {
        let expected = concat!(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""artifactType":"application/vnd.minato.image-signature.v1+json","#,
            r#""config":{"mediaType":"application/vnd.oci.empty.v1+json","#,
            r#""digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"#,
            r#""layers":[{"mediaType":"application/vnd.minato.image-signature.payload.v1+json","#,
            r#""digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":321,"#,
            r#""annotations":{"dev.minato.kms-key-id":"acme1/release","#,
            r#""dev.minato.kms-key-version-id":"acme1/release/2","#,
            r#""dev.minato.signature":"AQID+g==","#,
            r#""dev.minato.signing-algorithm":"SHA_256_RSA_PKCS_PSS"}}],"#,
            r#""subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""digest":"sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1","size":1234},"#,
            r#""annotations":{"org.opencontainers.image.created":"2025-06-01T12:00:00Z"}}"#
        );
        assert_eq!(String::from_utf8(manifest()).unwrap(), expected);
    }

    #[test]
    fn the_registry_accepts_it_as_a_referrer() {
        let parsed = minato_oci::manifest::parse(&manifest(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some(SIGNATURE_ARTIFACT_TYPE)
        );
        assert_eq!(
            parsed.subject.as_ref().map(Digest::as_str),
            Some(subject().digest.as_str())
        );
    }

    #[test]
    fn round_trip() {
        let record = parse_signature_manifest(&manifest()).unwrap();
        assert_eq!(
            record,
            SignatureRecord {
                subject: subject(),
                payload: Descriptor {
                    media_type: PAYLOAD_MEDIA_TYPE.into(),
                    digest: PAYLOAD_DIGEST.into(),
                    size: 321,
                },
                kms_key_id: "acme1/release".into(),
                kms_key_version_id: "acme1/release/2".into(),
                signing_algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
                signature: vec![1, 2, 3, 250],
                created: Some("2025-06-01T12:00:00Z".into()),
            }
        );
    }

    #[test]
    fn refuses_malformed_manifests() {
        let good: serde_json::Value = serde_json::from_slice(&manifest()).unwrap();
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let mutations: Vec<(&str, Mutation)> = vec![
            ("schema", Box::new(|m| m["schemaVersion"] = 1.into())),
            ("media type", Box::new(|m| m["mediaType"] = "x".into())),
            (
                "no media type",
                Box::new(|m| {
                    m.as_object_mut().unwrap().remove("mediaType");
                }),
            ),
            (
                "artifact type",
                Box::new(|m| m["artifactType"] = "application/vnd.cncf.notary.signature".into()),
            ),
            (
                "config",
                Box::new(|m| {
                    m["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into()
                }),
            ),
            ("config size", Box::new(|m| m["config"]["size"] = 3.into())),
            (
                "no subject",
                Box::new(|m| {
                    m.as_object_mut().unwrap().remove("subject");
                }),
            ),
            (
                "subject digest",
                Box::new(|m| m["subject"]["digest"] = "sha256:12".into()),
            ),
            (
                "no layers",
                Box::new(|m| m["layers"] = serde_json::json!([])),
            ),
            (
                "two layers",
                Box::new(|m| {
                    let layer = m["layers"][0].clone();
                    m["layers"].as_array_mut().unwrap().push(layer);
                }),
            ),
            (
                "layer type",
                Box::new(|m| m["layers"][0]["mediaType"] = "application/octet-stream".into()),
            ),
            (
                "layer digest",
                Box::new(|m| m["layers"][0]["digest"] = "md5:00".into()),
            ),
            (
                "no annotations",
                Box::new(|m| {
                    m["layers"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("annotations");
                }),
            ),
            (
                "no signature",
                Box::new(|m| {
                    m["layers"][0]["annotations"]
                        .as_object_mut()
                        .unwrap()
                        .remove(ANNOTATION_SIGNATURE);
                }),
            ),
            (
                "empty signature",
                Box::new(|m| m["layers"][0]["annotations"][ANNOTATION_SIGNATURE] = "".into()),
            ),
            (
                "bad base64",
                Box::new(|m| m["layers"][0]["annotations"][ANNOTATION_SIGNATURE] = "*&^".into()),
            ),
            (
                "version of another key",
                Box::new(|m| {
                    m["layers"][0]["annotations"][ANNOTATION_KEY_VERSION_ID] =
                        "acme1/other/2".into()
                }),
            ),
            (
                "version not a number",
                Box::new(|m| {
                    m["layers"][0]["annotations"][ANNOTATION_KEY_VERSION_ID] =
                        "acme1/release/x".into()
                }),
            ),
            (
                "algorithm",
                Box::new(|m| m["layers"][0]["annotations"][ANNOTATION_ALGORITHM] = "RS256".into()),
            ),
            (
                "size type",
                Box::new(|m| m["layers"][0]["size"] = "321".into()),
            ),
        ];
        for (name, mutate) in mutations {
            let mut value = good.clone();
            mutate(&mut value);
            let bytes = serde_json::to_vec(&value).unwrap();
            assert!(parse_signature_manifest(&bytes).is_err(), "{name} accepted");
        }
        assert!(parse_signature_manifest(b"{").is_err());
        assert!(parse_signature_manifest(&serde_json::to_vec(&good).unwrap()).is_ok());
    }
}
