//! Plain HTTP pushes of small test images and minato signature referrers into a registry
//! under test, shared by the signing and policy tests.
#![allow(dead_code)]

use minato_oci::{Algorithm, Digest};
use minato_sign::artifact::{Descriptor, EMPTY_CONFIG, signature_manifest};
use serde_json::json;

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::of(Algorithm::Sha256, bytes).to_string()
}

/// Plain HTTP pushes to the registry under test.
pub struct Pusher {
    /// The HTTP client.
    pub http: reqwest::blocking::Client,
    /// The registry's base URL.
    pub base: String,
}

impl Pusher {
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let answer = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.base
            ))
            .body(bytes.to_vec())
            .send()
            .expect("blob push");
        assert!(
            answer.status().is_success(),
            "blob push: {}",
            answer.status()
        );
        digest
    }

    pub fn manifest(&self, repo: &str, reference: &str, bytes: &[u8]) -> String {
        let answer = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes.to_vec())
            .send()
            .expect("manifest push");
        assert!(
            answer.status().is_success(),
            "manifest push: {} {:?}",
            answer.status(),
            answer.text()
        );
        sha256(bytes)
    }

    /// Pushes a one-layer image and returns its subject descriptor.
    pub fn image(&self, repo: &str, tag: &str, salt: &str) -> Descriptor {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#);
        let layer = format!("layer of {repo} {salt}");
        let config_digest = self.blob(repo, config.as_bytes());
        let layer_digest = self.blob(repo, layer.as_bytes());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        let digest = self.manifest(repo, tag, manifest.as_bytes());
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest,
            size: manifest.len() as u64,
        }
    }

    /// Pushes a minato signature referrer of `subject` in `repo` over `payload_bytes` (which
    /// may differ from what was signed, to model an edited payload).
    pub fn referrer(
        &self,
        repo: &str,
        subject: &Descriptor,
        payload_bytes: &[u8],
        signature: &minato_sign::Signature,
    ) -> String {
        self.blob(repo, EMPTY_CONFIG);
        let payload_digest = self.blob(repo, payload_bytes);
        let manifest = signature_manifest(
            subject,
            &payload_digest,
            payload_bytes.len() as u64,
            signature,
            "2025-01-01T00:00:00Z",
        );
        let digest = sha256(&manifest);
        self.manifest(repo, &digest, &manifest)
    }
}
