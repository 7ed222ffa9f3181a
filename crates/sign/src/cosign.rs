//! cosign's key-based signature format, so images signed by minato with an ECDSA P-256 key
//! verify with `cosign verify --key`, and cosign signatures verify in minato.
//!
//! A signature of manifest `sha256:<hex>` lives in the same repository under the tag
//! `sha256-<hex>.sig`: an image manifest whose layers (one per signature) are simple-signing
//! payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), each annotated with
//! `dev.cosignproject.cosign/signature` = base64 of the ASN.1 DER ECDSA signature over the
//! payload bytes. The payload is what sigstore's `payload.Cosign.MarshalJSON` emits:
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"host/ns/repo"},"image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},"optional":null}
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minato_oci::media_type::{DOCKER_MANIFEST, OCI_MANIFEST};
use minato_oci::{Algorithm, Digest};
use serde::{Deserialize, Serialize};

use crate::jsonfmt::push_go_str;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of every cosign image signature payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// Media type of the config blob cosign writes (a go-containerregistry image config).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Why a cosign object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    /// Not a digest minato understands.
    #[error("invalid digest {0:?}")]
    Digest(String),
    /// A payload that is not a cosign simple-signing payload.
    #[error("not a cosign simple-signing payload: {0}")]
    Payload(String),
    /// A manifest that is not a cosign signature manifest.
    #[error("not a cosign signature manifest: {0}")]
    Manifest(String),
}

/// The tag under which cosign stores the signatures of `digest`: `sha256:<hex>` →
/// `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Result<String, CosignError> {
    let parsed: Digest = digest
        .parse()
        .map_err(|_| CosignError::Digest(digest.to_owned()))?;
    Ok(format!(
        "{}-{}.sig",
        parsed.algorithm().as_str(),
        parsed.hex()
    ))
}

/// The simple-signing payload for `manifest_digest` at `docker_reference` (the repository
/// without tag or digest, e.g. `registry.example/ns/app`), byte for byte as sigstore's Go code
/// writes it (Go string escaping included).
pub fn simple_signing_payload(
    docker_reference: &str,
    manifest_digest: &str,
) -> Result<Vec<u8>, CosignError> {
    manifest_digest
        .parse::<Digest>()
        .map_err(|_| CosignError::Digest(manifest_digest.to_owned()))?;
    let mut out = String::from(r#"{"critical":{"identity":{"docker-reference":"#);
    push_go_str(&mut out, docker_reference);
    out.push_str(r#"},"image":{"docker-manifest-digest":"#);
    push_go_str(&mut out, manifest_digest);
    out.push_str(r#"},"type":"#);
    push_go_str(&mut out, SIMPLE_SIGNING_TYPE);
    out.push_str(r#"},"optional":null}"#);
    Ok(out.into_bytes())
}

/// A simple-signing payload read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference`: where the signer saw the image. cosign does not
    /// require it to match at verification (signatures survive copies to other registries).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: the signed manifest.
    pub manifest_digest: String,
    /// `optional`: signer-provided annotations, if any.
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct PayloadWire {
    critical: CriticalWire,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct CriticalWire {
    identity: IdentityWire,
    image: ImageWire,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct IdentityWire {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct ImageWire {
    // Real payloads write the lowercase key; the cosign spec text shows the capitalised one,
    // and Go's decoder accepts both.
    #[serde(rename = "docker-manifest-digest", alias = "Docker-manifest-digest")]
    manifest_digest: String,
}

/// Reads a simple-signing payload: `critical.type` must be the cosign image signature type
/// and the manifest digest valid.
pub fn parse_simple_signing(bytes: &[u8]) -> Result<SimpleSigning, CosignError> {
    let wire: PayloadWire =
        serde_json::from_slice(bytes).map_err(|e| CosignError::Payload(e.to_string()))?;
    if wire.critical.kind != SIMPLE_SIGNING_TYPE {
        return Err(CosignError::Payload(format!(
            "critical.type is {:?}, expected {SIMPLE_SIGNING_TYPE:?}",
            wire.critical.kind
        )));
    }
    let digest = wire.critical.image.manifest_digest;
    digest
        .parse::<Digest>()
        .map_err(|_| CosignError::Digest(digest.clone()))?;
    Ok(SimpleSigning {
        docker_reference: wire.critical.identity.docker_reference,
        manifest_digest: digest,
        optional: wire.optional,
    })
}

/// One signature of a cosign signature manifest: the payload blob and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignLayer {
    /// Digest of the payload blob.
    pub payload_digest: String,
    /// Size of the payload blob.
    pub payload_size: u64,
    /// The signature bytes (ASN.1 DER ECDSA for P-256 keys).
    pub signature: Vec<u8>,
}

/// A cosign signature manifest and the config blob it references; push the config and every
/// payload blob first, then the manifest under [`signature_tag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignManifest {
    /// The manifest bytes (media type `application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The config blob's digest.
    pub config_digest: String,
}

/// Descriptor in go-containerregistry's field order (mediaType, size, digest, annotations).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorWire {
    media_type: String,
    size: u64,
    digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestWire {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: DescriptorWire,
    layers: Vec<DescriptorWire>,
}

/// The config blob go-containerregistry writes for an image made of `layers` (cosign
/// appends signature layers to an empty image): zero times, empty platform, the payload
/// digests as `rootfs.diff_ids` (payloads are uncompressed).
fn cosign_config(layers: &[CosignLayer]) -> Vec<u8> {
    let mut out =
        String::from(r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":["#);
    for index in 0..layers.len() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(r#"{"created":"0001-01-01T00:00:00Z"}"#);
    }
    out.push_str(r#"],"os":"","rootfs":{"type":"layers","diff_ids":["#);
    for (index, layer) in layers.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_go_str(&mut out, &layer.payload_digest);
    }
    out.push_str(r#"]},"config":{}}"#);
    out.into_bytes()
}

/// Builds the `.sig` manifest holding `layers` (one per signature), in the shape cosign
/// writes with OCI media types.
pub fn cosign_signature_manifest(layers: &[CosignLayer]) -> CosignManifest {
    let config = cosign_config(layers);
    let config_digest = Digest::of(Algorithm::Sha256, &config).to_string();
    let manifest = ManifestWire {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: DescriptorWire {
            media_type: CONFIG_MEDIA_TYPE.to_owned(),
            size: config.len() as u64,
            digest: config_digest.clone(),
            annotations: None,
        },
        layers: layers
            .iter()
            .map(|layer| DescriptorWire {
                media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
                size: layer.payload_size,
                digest: layer.payload_digest.clone(),
                annotations: Some(BTreeMap::from([(
                    ANNOTATION_SIGNATURE.to_owned(),
                    STANDARD.encode(&layer.signature),
                )])),
            })
            .collect(),
    };
    CosignManifest {
        // Serializing plain structs and string maps cannot fail.
        manifest: serde_json::to_vec(&manifest).unwrap_or_default(),
        config,
        config_digest,
    }
}

/// Reads the signatures of a `.sig` manifest (OCI or Docker v2 media type). Every layer must
/// be a simple-signing payload with a valid digest and a base64 signature annotation; other
/// annotations (certificate, chain, Rekor bundle) are ignored.
pub fn parse_cosign_manifest(bytes: &[u8]) -> Result<Vec<CosignLayer>, CosignError> {
    let fail = |why: String| CosignError::Manifest(why);
    let wire: ManifestWire = serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
    if wire.schema_version != 2 {
        return Err(fail("schemaVersion is not 2".into()));
    }
    if let Some(media_type) = wire.media_type.as_deref()
        && media_type != OCI_MANIFEST
        && media_type != DOCKER_MANIFEST
    {
        return Err(fail(format!("unexpected mediaType {media_type:?}")));
    }
    if wire.layers.is_empty() {
        return Err(fail("no signature layers".into()));
    }
    wire.layers
        .into_iter()
        .map(|layer| {
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
                return Err(fail(format!(
                    "layer media type {:?} is not simple signing",
                    layer.media_type
                )));
            }
            layer
                .digest
                .parse::<Digest>()
                .map_err(|_| CosignError::Digest(layer.digest.clone()))?;
            let encoded = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_SIGNATURE))
                .ok_or_else(|| fail(format!("layer {} has no signature", layer.digest)))?;
            let signature = STANDARD
                .decode(encoded)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| fail(format!("layer {} signature is not base64", layer.digest)))?;
            Ok(CosignLayer {
                payload_digest: layer.digest,
                payload_size: layer.size,
                signature,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1";

    #[test]
    fn tag_name() {
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            "sha256-e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1.sig"
        );
        assert!(matches!(
            signature_tag("latest"),
            Err(CosignError::Digest(_))
        ));
    }

    #[test]
    fn payload_exactly_as_sigstore() {
        let payload = simple_signing_payload("phx.ocir.io/ns/repo", DIGEST).unwrap();
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            concat!(
                r#"{"critical":{"identity":{"docker-reference":"phx.ocir.io/ns/repo"},"#,
                r#""image":{"docker-manifest-digest":"sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1"},"#,
                r#""type":"cosign container image signature"},"optional":null}"#
            )
        );
        let parsed = parse_simple_signing(&payload).unwrap();
        assert_eq!(parsed.docker_reference, "phx.ocir.io/ns/repo");
        assert_eq!(parsed.manifest_digest, DIGEST);
        assert_eq!(parsed.optional, None);
        assert!(simple_signing_payload("r", "sha256:x").is_err());
    }

    #[test]
    fn payload_parser_accepts_both_spellings_and_annotations() {
        let spec_form = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"h/r"}},"image":{{"Docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"sig":"v1","n":2}}}}"#
        );
        let parsed = parse_simple_signing(spec_form.as_bytes()).unwrap();
        assert_eq!(parsed.manifest_digest, DIGEST);
        let optional = parsed.optional.unwrap();
        assert_eq!(optional["sig"], "v1");
        let no_optional = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"h/r"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}}}}"#
        );
        assert!(parse_simple_signing(no_optional.as_bytes()).is_ok());
    }

    #[test]
    fn payload_parser_refuses() {
        let good = String::from_utf8(simple_signing_payload("h/r", DIGEST).unwrap()).unwrap();
        for bad in [
            good.replace(
                "cosign container image signature",
                "atomic container signature",
            ),
            good.replace(DIGEST, "sha256:1234"),
            good.replace("docker-manifest-digest", "digest"),
            good.replace(r#""identity":{"docker-reference":"h/r"},"#, ""),
            "null".to_owned(),
            "{".to_owned(),
        ] {
            assert!(parse_simple_signing(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    fn layers() -> Vec<CosignLayer> {
        vec![
            CosignLayer {
                payload_digest:
                    "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
                payload_size: 233,
                signature: vec![0x30, 0x45, 1, 2],
            },
            CosignLayer {
                payload_digest:
                    "sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
                payload_size: 234,
                signature: vec![0x30, 0x44, 3],
            },
        ]
    }

    #[test]
    fn manifest_shape_and_round_trip() {
        let built = cosign_signature_manifest(&layers()[..1]);
        assert_eq!(
            String::from_utf8(built.config.clone()).unwrap(),
            concat!(
                r#"{"architecture":"","created":"0001-01-01T00:00:00Z","#,
                r#""history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","#,
                r#""rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},"#,
                r#""config":{}}"#
            )
        );
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"#,
                r#""layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":233,"#,
                r#""digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","#,
                r#""annotations":{{"dev.cosignproject.cosign/signature":"MEUBAg=="}}}}]}}"#
            ),
            built.config.len(),
            built.config_digest
        );
        assert_eq!(String::from_utf8(built.manifest.clone()).unwrap(), expected);
        assert_eq!(
            built.config_digest,
            Digest::of(Algorithm::Sha256, &built.config).to_string()
        );
        let two = cosign_signature_manifest(&layers());
        assert_eq!(parse_cosign_manifest(&two.manifest).unwrap(), layers());
        // The registry's own manifest validation accepts it.
        minato_oci::manifest::parse(&two.manifest, Some(OCI_MANIFEST)).unwrap();
    }

    #[test]
    fn manifest_parser_refuses() {
        let good: serde_json::Value =
            serde_json::from_slice(&cosign_signature_manifest(&layers()).manifest).unwrap();
        type Mutation = fn(&mut serde_json::Value);
        let mutations: Vec<(&str, Mutation)> = vec![
            ("schema", |m| m["schemaVersion"] = 1.into()),
            ("index", |m| {
                m["mediaType"] = "application/vnd.oci.image.index.v1+json".into()
            }),
            ("no layers", |m| m["layers"] = serde_json::json!([])),
            ("layer type", |m| {
                m["layers"][1]["mediaType"] = "application/octet-stream".into()
            }),
            ("digest", |m| m["layers"][0]["digest"] = "sha256:00".into()),
            ("no annotation", |m| {
                m["layers"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }),
            ("bad base64", |m| {
                m["layers"][0]["annotations"][ANNOTATION_SIGNATURE] = "@@".into()
            }),
            ("empty signature", |m| {
                m["layers"][0]["annotations"][ANNOTATION_SIGNATURE] = "".into()
            }),
        ];
        for (name, mutate) in mutations {
            let mut value = good.clone();
            mutate(&mut value);
            let bytes = serde_json::to_vec(&value).unwrap();
            assert!(parse_cosign_manifest(&bytes).is_err(), "{name} accepted");
        }
        // Docker media type and extra annotations (certificate, bundle) are fine.
        let mut docker = good.clone();
        docker["mediaType"] = DOCKER_MANIFEST.into();
        docker["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"] = "{}".into();
        let parsed = parse_cosign_manifest(&serde_json::to_vec(&docker).unwrap()).unwrap();
        assert_eq!(parsed, layers());
    }
}
