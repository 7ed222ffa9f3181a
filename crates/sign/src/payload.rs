//! The OCIR-style signed payload (the "message" of an image signature).
//!
//! A JSON object with exactly these keys in this (alphabetical) order: `description`,
//! `imageDigest`, `kmsKeyId`, `kmsKeyVersionId`, `metadata`, `region`, `repositoryName`,
//! `signingAlgorithm`, all strings, written compactly the way the OCI CLI's
//! `json.dumps(message, separators=(',', ':'))` writes it (non-ASCII escaped as `\uXXXX`). The
//! signature is made over these bytes; [`Payload::message`] is their standard base64, the
//! form KMS and the OCIR API exchange. Verification always works on the signed bytes and never
//! re-serializes, so payloads written by other encoders (Go's escapes `<>&`) verify too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minato_oci::{Digest, RepositoryName};
use serde::Deserialize;

use crate::algorithms::SigningAlgorithm;
use crate::jsonfmt::push_python_str;

/// The OCI CLI's error text for metadata it refuses; kept verbatim so users recognise it.
pub const METADATA_ERROR: &str = "Metadata should be in valid json format (alphanumeric characters only, with no whitespace or escape characters).";

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// `metadata` is not compact JSON with sorted alphanumeric keys.
    #[error("{METADATA_ERROR}")]
    Metadata,
    /// The bytes are not a payload object (wrong JSON, missing, extra or non-string keys).
    #[error("malformed signature payload: {0}")]
    Malformed(String),
    /// The message is not standard base64.
    #[error("signature message is not standard base64")]
    Base64,
    /// `imageDigest` is not a digest minato understands.
    #[error("invalid imageDigest {0:?}")]
    Digest(String),
    /// `repositoryName` does not follow the repository-name grammar.
    #[error("invalid repositoryName {0:?}")]
    Repository(String),
    /// `signingAlgorithm` is not one of the KMS names (exact spelling).
    #[error("invalid signingAlgorithm {0:?}")]
    Algorithm(String),
}

/// The signed statement: which image (digest in a repository), signed by which key version
/// with which algorithm, plus free text. `description` and `metadata` are `""` when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Free text, e.g. "Image for UAT testing".
    pub description: String,
    /// The signed manifest digest, `sha256:<hex>`.
    pub image_digest: String,
    /// `kmsKeyId` of the signing key.
    pub kms_key_id: String,
    /// `kmsKeyVersionId` of the signing key version.
    pub kms_key_version_id: String,
    /// Compact JSON text (a string inside the payload, hence escaped quotes), or `""`.
    pub metadata: String,
    /// The region (for minato: the instance's configured region name).
    pub region: String,
    /// Repository the image was signed in. minato uses the full registry path
    /// (`<namespace>/<repo>`), so a signature cannot be replayed into another tenancy's
    /// repository of the same short name.
    pub repository_name: String,
    /// The algorithm of the signature.
    pub signing_algorithm: SigningAlgorithm,
}

/// Field-by-field shape of the JSON, for strict parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    description: String,
    image_digest: String,
    kms_key_id: String,
    kms_key_version_id: String,
    metadata: String,
    region: String,
    repository_name: String,
    signing_algorithm: String,
}

impl Payload {
    /// The exact bytes to sign: compact JSON, keys in the fixed order, strings escaped as
    /// Python's `json.dumps` escapes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let fields: [(&str, &str); 8] = [
            ("description", &self.description),
            ("imageDigest", &self.image_digest),
            ("kmsKeyId", &self.kms_key_id),
            ("kmsKeyVersionId", &self.kms_key_version_id),
            ("metadata", &self.metadata),
            ("region", &self.region),
            ("repositoryName", &self.repository_name),
            ("signingAlgorithm", self.signing_algorithm.as_str()),
        ];
        let mut out = String::with_capacity(512);
        out.push('{');
        for (index, (key, value)) in fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_python_str(&mut out, key);
            out.push(':');
            push_python_str(&mut out, value);
        }
        out.push('}');
        out.into_bytes()
    }

    /// The payload bytes in standard base64: OCIR's `message`.
    pub fn message(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Checks what signing must guarantee before a payload is made: a valid digest and
    /// repository name, and metadata the OCI CLI would accept.
    pub fn validate(&self) -> Result<(), PayloadError> {
        self.image_digest
            .parse::<Digest>()
            .map_err(|_| PayloadError::Digest(self.image_digest.clone()))?;
        RepositoryName::parse(&self.repository_name)
            .map_err(|_| PayloadError::Repository(self.repository_name.clone()))?;
        validate_metadata(&self.metadata)
    }

    /// Reads signed payload bytes. Refuses anything that is not exactly the eight string
    /// keys (duplicates and extra keys included), an invalid digest or repository name, or an
    /// algorithm not spelled as KMS spells it. `metadata` is not re-validated: payloads made
    /// by the OCI CLI only had to be valid JSON there.
    pub fn parse(bytes: &[u8]) -> Result<Payload, PayloadError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        wire.image_digest
            .parse::<Digest>()
            .map_err(|_| PayloadError::Digest(wire.image_digest.clone()))?;
        RepositoryName::parse(&wire.repository_name)
            .map_err(|_| PayloadError::Repository(wire.repository_name.clone()))?;
        let signing_algorithm = SigningAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == wire.signing_algorithm)
            .ok_or_else(|| PayloadError::Algorithm(wire.signing_algorithm.clone()))?;
        Ok(Payload {
            description: wire.description,
            image_digest: wire.image_digest,
            kms_key_id: wire.kms_key_id,
            kms_key_version_id: wire.kms_key_version_id,
            metadata: wire.metadata,
            region: wire.region,
            repository_name: wire.repository_name,
            signing_algorithm,
        })
    }

    /// Reads a base64 `message` (as listed by OCIR) into the payload bytes and the payload.
    pub fn from_message(message: &str) -> Result<(Vec<u8>, Payload), PayloadError> {
        let bytes = STANDARD
            .decode(message.trim())
            .map_err(|_| PayloadError::Base64)?;
        let payload = Payload::parse(&bytes)?;
        Ok((bytes, payload))
    }
}

/// Checks `--metadata` the way the OCI CLI documents it: `""` (absent) or a JSON object,
/// written compactly (no whitespace anywhere), without escape characters, with alphanumeric
/// keys sorted alphabetically at every level. Fails with [`METADATA_ERROR`].
pub fn validate_metadata(text: &str) -> Result<(), PayloadError> {
    if text.is_empty() {
        return Ok(());
    }
    if text.chars().any(|c| c.is_whitespace() || c == '\\') {
        return Err(PayloadError::Metadata);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| PayloadError::Metadata)?;
    if !value.is_object() || !keys_sorted_alphanumeric(&value) {
        return Err(PayloadError::Metadata);
    }
    // Re-serializing must give the text back: this refuses duplicate keys and unusual number
    // spellings, and unsorted keys whatever map type serde_json was built with.
    match serde_json::to_string(&value) {
        Ok(canonical) if canonical == text => Ok(()),
        _ => Err(PayloadError::Metadata),
    }
}

fn keys_sorted_alphanumeric(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            keys.windows(2).all(|w| w[0] < w[1])
                && keys
                    .iter()
                    .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric()))
                && map.values().all(keys_sorted_alphanumeric)
        }
        serde_json::Value::Array(items) => items.iter().all(keys_sorted_alphanumeric),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of pull-path spec §6.1, byte for byte.
    const SPEC_EXAMPLE: &str = r#"{"description":"Image for UAT testing","imageDigest":"sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1","kmsKeyId":"ocid1.key.oc1.phx.bbqehaq3aadfa.abyhEXAMPLE","kmsKeyVersionId":"ocid1.keyversion.oc1.phx.0.bbqehaq3aadfa.acy6EXAMPLE","metadata":"{\"buildNumber\":\"123\"}","region":"us-phoenix-1","repositoryName":"project01/ngnix-lb","signingAlgorithm":"SHA_256_RSA_PKCS_PSS"}"#;

    fn spec_payload() -> Payload {
        Payload {
            description: "Image for UAT testing".into(),
            image_digest: "sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1"
                .into(),
            kms_key_id: "ocid1.key.oc1.phx.bbqehaq3aadfa.abyhEXAMPLE".into(),
            kms_key_version_id: "ocid1.keyversion.oc1.phx.0.bbqehaq3aadfa.acy6EXAMPLE".into(),
            metadata: r#"{"buildNumber":"123"}"#.into(),
            region: "us-phoenix-1".into(),
            repository_name: "project01/ngnix-lb".into(),
            signing_algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
        }
    }

    #[test]
    fn reproduces_the_spec_example() {
        let payload = spec_payload();
        assert_eq!(String::from_utf8(payload.to_bytes()).unwrap(), SPEC_EXAMPLE);
        assert_eq!(payload.message(), STANDARD.encode(SPEC_EXAMPLE));
        assert_eq!(Payload::parse(SPEC_EXAMPLE.as_bytes()).unwrap(), payload);
        let (bytes, parsed) = Payload::from_message(&payload.message()).unwrap();
        assert_eq!(bytes, SPEC_EXAMPLE.as_bytes());
        assert_eq!(parsed, payload);
        assert_eq!(payload.validate(), Ok(()));
    }

    #[test]
    fn absent_fields_are_empty_strings() {
        let payload = Payload {
            description: String::new(),
            metadata: String::new(),
            ..spec_payload()
        };
        let text = String::from_utf8(payload.to_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"description":"","imageDigest":"#),
            "{text}"
        );
        assert!(text.contains(r#""metadata":"","region""#), "{text}");
        assert_eq!(payload.validate(), Ok(()));
    }

    #[test]
    fn escapes_like_python() {
        // CPython: json.dumps({"description": "café <b>\n"}, separators=(',', ':'))
        let payload = Payload {
            description: "café <b>\n".into(),
            ..spec_payload()
        };
        let text = String::from_utf8(payload.to_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"description":"caf\u00e9 <b>\n","imageDigest""#),
            "{text}"
        );
        assert_eq!(Payload::parse(text.as_bytes()).unwrap(), payload);
    }

    #[test]
    fn go_encoded_payloads_parse() {
        // The Go SDK sample marshals with json.Marshal, which escapes '<', '>' and '&'.
        let go = SPEC_EXAMPLE.replace("Image for UAT testing", r"A \u0026 B \u003c1\u003e");
        let payload = Payload::parse(go.as_bytes()).unwrap();
        assert_eq!(payload.description, "A & B <1>");
    }

    #[test]
    fn parse_refuses_malformed_payloads() {
        type Expectation = fn(&PayloadError) -> bool;
        let cases: Vec<(String, Expectation)> = vec![
            ("not json".into(), |e| {
                matches!(e, PayloadError::Malformed(_))
            }),
            ("[]".into(), |e| matches!(e, PayloadError::Malformed(_))),
            (
                SPEC_EXAMPLE.replace(r#""region":"us-phoenix-1","#, ""),
                |e| matches!(e, PayloadError::Malformed(_)),
            ),
            (SPEC_EXAMPLE.replace('}', r#","extra":"x"}"#), |e| {
                matches!(e, PayloadError::Malformed(_))
            }),
            (
                SPEC_EXAMPLE.replace(r#""region":"us-phoenix-1""#, r#""region":1"#),
                |e| matches!(e, PayloadError::Malformed(_)),
            ),
            (
                SPEC_EXAMPLE.replace(r#""region":"us-phoenix-1""#, r#""region":"a","region":"b""#),
                |e| matches!(e, PayloadError::Malformed(_)),
            ),
            (SPEC_EXAMPLE.replace("sha256:e7a4", "sha256:E7A4"), |e| {
                matches!(e, PayloadError::Digest(_))
            }),
            (
                SPEC_EXAMPLE.replace("project01/ngnix-lb", "Project01//x"),
                |e| matches!(e, PayloadError::Repository(_)),
            ),
            (
                SPEC_EXAMPLE.replace("SHA_256_RSA_PKCS_PSS", "sha_256_rsa_pkcs_pss"),
                |e| matches!(e, PayloadError::Algorithm(_)),
            ),
        ];
        for (text, expected) in cases {
            let error = Payload::parse(text.as_bytes()).unwrap_err();
            assert!(expected(&error), "{text}: {error:?}");
        }
        assert_eq!(
            Payload::from_message("%%%").unwrap_err(),
            PayloadError::Base64
        );
    }

    #[test]
    fn metadata_rules() {
        for good in [
            "",
            r#"{"buildNumber":"123"}"#,
            r#"{"a":1,"b":[1,2],"c":{"x":true,"y":null}}"#,
            "{}",
        ] {
            assert_eq!(validate_metadata(good), Ok(()), "{good}");
        }
        for bad in [
            "not json",
            r#"{"buildNumber": "123"}"#,
            "{\"a\":\"1\"}\n",
            r#"{"b":"1","a":"2"}"#,
            r#"{"a":{"z":1,"y":2}}"#,
            r#"{"a":"1","a":"2"}"#,
            r#"{"build-number":"1"}"#,
            r#"{"a":"line\nbreak"}"#,
            r#"{"a":"x y"}"#,
            r#"["a"]"#,
            r#""text""#,
            "123",
            r#"{"a":1e2}"#,
        ] {
            assert_eq!(validate_metadata(bad), Err(PayloadError::Metadata), "{bad}");
        }
        assert_eq!(PayloadError::Metadata.to_string(), METADATA_ERROR);
        let payload = Payload {
            metadata: r#"{"b":"1","a":"2"}"#.into(),
            ..spec_payload()
        };
        assert_eq!(payload.validate(), Err(PayloadError::Metadata));
    }

    #[test]
    fn validate_checks_digest_and_repository() {
        let payload = Payload {
            image_digest: "sha256:abc".into(),
            ..spec_payload()
        };
        assert!(matches!(payload.validate(), Err(PayloadError::Digest(_))));
        let payload = Payload {
            repository_name: "UPPER/case".into(),
            ..spec_payload()
        };
        assert!(matches!(
            payload.validate(),
            Err(PayloadError::Repository(_))
        ));
    }
}
