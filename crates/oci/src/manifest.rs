//! Manifest validation: what a pushed manifest is, what it references, and what the referrers
//! API needs to know about it. The stored bytes are never re-serialized; parsing only extracts
//! facts from them.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::Digest;
use crate::media_type::{self, essence};

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON, not a manifest, or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A manifest kind minato does not store (schema 1).
    #[error("unsupported manifest media type {0:?}")]
    Unsupported(String),
}

/// Something a manifest points at that must already be in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A config or layer blob.
    Blob(Digest),
    /// A child manifest of an index.
    Manifest(Digest),
}

/// The facts minato keeps about a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The media type served back as `Content-Type`.
    pub media_type: String,
    /// Artifact type as the referrers API reports it (explicit `artifactType`, else the config
    /// media type of an image manifest).
    pub artifact_type: Option<String>,
    /// The manifest this one refers to (`subject`), for the referrers API.
    pub subject: Option<Digest>,
    /// Top-level annotations, reported in referrers listings.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Blobs and child manifests that must exist before the manifest is accepted.
    pub references: Vec<Reference>,
}

/// Only the fields needed to decide which kind of manifest the bytes hold.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

enum Kind {
    Image,
    Index,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => Some(Kind::Image),
        media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => Some(Kind::Index),
        _ => None,
    }
}

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(message.into())
}

/// Parses and validates manifest `bytes` pushed with the given `Content-Type` header.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, ManifestError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest is not JSON: {e}")))?;
    let header = content_type.map(essence).filter(|h| !h.is_empty());
    let declared = probe.media_type.as_deref();

    if let Some(schema1) = [header, declared]
        .into_iter()
        .flatten()
        .find(|t| media_type::DOCKER_SCHEMA1[..2].contains(t))
    {
        return Err(ManifestError::Unsupported(schema1.to_owned()));
    }
    match probe.schema_version.as_ref().and_then(|v| v.as_u64()) {
        Some(2) => {}
        Some(1) => return Err(ManifestError::Unsupported("schemaVersion 1".to_owned())),
        _ => return Err(invalid("schemaVersion must be 2")),
    }
    if let (Some(declared), Some(header)) = (declared, header)
        && kind_of(header).is_some()
        && declared != header
    {
        return Err(invalid(format!(
            "mediaType {declared:?} does not match Content-Type {header:?}"
        )));
    }

    let media_type = match declared.or(header.filter(|h| kind_of(h).is_some())) {
        Some(t) => t.to_owned(),
        None if probe.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
        None if probe.config.is_some() => media_type::OCI_MANIFEST.to_owned(),
        None => return Err(invalid("cannot tell the manifest kind: no mediaType")),
    };
    match kind_of(&media_type) {
        Some(Kind::Image) => parse_image(bytes, media_type),
        Some(Kind::Index) => parse_index(bytes, media_type),
        None => Err(ManifestError::Unsupported(media_type)),
    }
}

fn digest_of(descriptor: &Descriptor) -> Result<Digest, ManifestError> {
    descriptor
        .digest()
        .to_string()
        .parse()
        .map_err(|e| invalid(format!("descriptor digest: {e}")))
}

fn annotations_of(
    map: Option<&std::collections::HashMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn subject_of(subject: Option<&Descriptor>) -> Result<Option<Digest>, ManifestError> {
    subject.map(digest_of).transpose()
}

fn parse_image(bytes: &[u8], media_type: String) -> Result<ParsedManifest, ManifestError> {
    let manifest: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("invalid image manifest: {e}")))?;
    let mut references = vec![Reference::Blob(digest_of(manifest.config())?)];
    for layer in manifest.layers() {
        let distributable = !media_type::is_non_distributable(layer.media_type().as_ref())
            && layer.urls().as_ref().is_none_or(|u| u.is_empty());
        if distributable {
            references.push(Reference::Blob(digest_of(layer)?));
        }
    }
    let artifact_type = manifest
        .artifact_type()
        .as_ref()
        .map(|t| t.to_string())
        .or_else(|| Some(manifest.config().media_type().to_string()));
    Ok(ParsedManifest {
        media_type,
        artifact_type,
        subject: subject_of(manifest.subject().as_ref())?,
        annotations: annotations_of(manifest.annotations().as_ref()),
        references,
    })
}

fn parse_index(bytes: &[u8], media_type: String) -> Result<ParsedManifest, ManifestError> {
    let index: ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid image index: {e}")))?;
    let references = index
        .manifests()
        .iter()
        .map(|m| digest_of(m).map(Reference::Manifest))
        .collect::<Result<_, _>>()?;
    Ok(ParsedManifest {
        media_type,
        artifact_type: index.artifact_type().as_ref().map(|t| t.to_string()),
        subject: subject_of(index.subject().as_ref())?,
        annotations: annotations_of(index.annotations().as_ref()),
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const D2: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":0}}]{extra}}}"#,
            media_type::OCI_MANIFEST
        )
    }

    #[test]
    fn image_manifest_references_config_and_layers() {
        let parsed = parse(image("").as_bytes(), Some(media_type::OCI_MANIFEST)).unwrap();
        assert_eq!(parsed.media_type, media_type::OCI_MANIFEST);
        assert_eq!(
            parsed.references,
            vec![
                Reference::Blob(D1.parse().unwrap()),
                Reference::Blob(D2.parse().unwrap())
            ]
        );
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(parsed.subject, None);
    }

    #[test]
    fn subject_and_artifact_type_are_extracted() {
        let extra = format!(
            r#","artifactType":"application/x-sig","subject":{{"mediaType":"{}","digest":"{D2}","size":7}},"annotations":{{"a":"b"}}"#,
            media_type::OCI_MANIFEST
        );
        let parsed = parse(image(&extra).as_bytes(), None).unwrap();
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(parsed.subject, Some(D2.parse().unwrap()));
        assert_eq!(parsed.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn index_references_child_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{D1}","size":10,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            media_type::OCI_MANIFEST
        );
        let parsed = parse(body.as_bytes(), Some(media_type::OCI_INDEX)).unwrap();
        assert_eq!(parsed.media_type, media_type::OCI_INDEX);
        assert_eq!(
            parsed.references,
            vec![Reference::Manifest(D1.parse().unwrap())]
        );
    }

    #[test]
    fn non_distributable_layers_are_not_required() {
        let body = image("").replace(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        );
        let parsed = parse(body.as_bytes(), None).unwrap();
        assert_eq!(parsed.references.len(), 1);
    }

    #[test]
    fn bad_manifests_are_refused_with_reasons() {
        assert!(matches!(
            parse(b"not json", None),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":1}"#, None),
            Err(ManifestError::Unsupported(_))
        ));
        assert!(matches!(
            parse(image("").as_bytes(), Some(media_type::OCI_INDEX)),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"config":{}}"#, None),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2}"#, None),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            parse(
                br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#,
                None
            ),
            Err(ManifestError::Unsupported(_))
        ));
    }
}
