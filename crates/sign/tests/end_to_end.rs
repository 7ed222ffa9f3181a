//! The whole signing flow through the public API: vault key → payload → signature → registry
//! artifact → parse → verify, for the OCIR-style format and for cosign, with every failure
//! reason, and independent checks of the signatures by sigstore (OpenSSL backend) and
//! OpenSSL itself, which share no code with aws-lc-rs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minato_oci::{Algorithm, Digest};
use minato_sign::artifact::PAYLOAD_MEDIA_TYPE;
use minato_sign::cosign::{
    CosignLayer, cosign_signature_manifest, parse_cosign_manifest, signature_tag,
    simple_signing_payload,
};
use minato_sign::{
    Descriptor, KeyAlgorithm, Payload, RootKey, SigningAlgorithm, TrustedKey, Vault, VerifyFailure,
    parse_signature_manifest, signature_manifest, verify_cosign, verify_record,
};

const DIGEST: &str = "sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1";
const OTHER_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const REPO: &str = "acme1/project01/nginx-lb";

async fn open_vault(dir: &std::path::Path) -> Vault {
    let root = RootKey::load_or_create(&dir.join("root.key")).unwrap();
    Vault::open(dir, root).await.unwrap()
}

fn subject(digest: &str) -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: digest.into(),
        size: 1024,
    }
}

/// A signed OCIR-style artifact as the registry would hold it.
struct Signed {
    manifest: Vec<u8>,
    payload: Vec<u8>,
}

async fn sign_image(
    vault: &Vault,
    key: &str,
    version: Option<u32>,
    algorithm: SigningAlgorithm,
    digest: &str,
    repository: &str,
) -> Signed {
    let info = vault.key("acme1", key).await.unwrap();
    let version = version.unwrap_or(info.current_version);
    let payload = Payload {
        description: "Image for UAT testing".into(),
        image_digest: digest.into(),
        kms_key_id: info.key_id.clone(),
        kms_key_version_id: minato_sign::key_version_id("acme1", key, version),
        metadata: r#"{"buildNumber":"123"}"#.into(),
        region: "local".into(),
        repository_name: repository.into(),
        signing_algorithm: algorithm,
    };
    payload.validate().unwrap();
    let bytes = payload.to_bytes();
    let signature = vault
        .sign("acme1", key, Some(version), algorithm, &bytes)
        .await
        .unwrap();
    let blob_digest = Digest::of(Algorithm::Sha256, &bytes);
    let manifest = signature_manifest(
        &subject(digest),
        blob_digest.as_str(),
        bytes.len() as u64,
        &signature,
        "2025-06-01T12:00:00Z",
    );
    Signed {
        manifest,
        payload: bytes,
    }
}

fn check(signed: &Signed, trusted: &TrustedKey) -> Result<(), VerifyFailure> {
    let record = parse_signature_manifest(&signed.manifest).unwrap();
    verify_record(&record, &signed.payload, DIGEST, REPO, trusted)
}

#[tokio::test]
async fn ocir_style_signature_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
        .await
        .unwrap();
    let trusted = vault.trusted_key("acme1", "release").await.unwrap();
    for algorithm in [
        SigningAlgorithm::Sha256RsaPkcsPss,
        SigningAlgorithm::Sha384RsaPkcsPss,
        SigningAlgorithm::Sha512RsaPkcsPss,
    ] {
        let signed = sign_image(&vault, "release", None, algorithm, DIGEST, REPO).await;
        let record = parse_signature_manifest(&signed.manifest).unwrap();
        assert_eq!(record.subject.digest, DIGEST);
        assert_eq!(record.payload.media_type, PAYLOAD_MEDIA_TYPE);
        assert_eq!(record.kms_key_id, "acme1/release");
        assert_eq!(record.kms_key_version_id, "acme1/release/1");
        assert_eq!(record.signing_algorithm, algorithm);
        assert_eq!(check(&signed, &trusted), Ok(()), "{algorithm}");
        // The base64 message form decodes to the same payload.
        let payload = Payload::parse(&signed.payload).unwrap();
        assert_eq!(
            Payload::from_message(&payload.message()).unwrap().0,
            signed.payload
        );
    }
}

#[tokio::test]
async fn every_failure_reason() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "release", KeyAlgorithm::EcdsaP256)
        .await
        .unwrap();
    vault
        .create_key("acme1", "other", KeyAlgorithm::EcdsaP256)
        .await
        .unwrap();
    let alg = SigningAlgorithm::EcdsaP256Sha256;
    let trusted = vault.trusted_key("acme1", "release").await.unwrap();
    let good = sign_image(&vault, "release", None, alg, DIGEST, REPO).await;
    assert_eq!(check(&good, &trusted), Ok(()));

    // A valid signature of another image, or of the same digest in another repository.
    let other_image = sign_image(&vault, "release", None, alg, OTHER_DIGEST, REPO).await;
    let record = parse_signature_manifest(&other_image.manifest).unwrap();
    assert_eq!(
        verify_record(&record, &other_image.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::WrongDigest {
            expected: DIGEST.into(),
            found: OTHER_DIGEST.into()
        })
    );
    // The same, with the subject rewritten to point at the checked image: the payload
    // still names the other digest.
    let mut rewritten: serde_json::Value = serde_json::from_slice(&other_image.manifest).unwrap();
    rewritten["subject"]["digest"] = DIGEST.into();
    let record = parse_signature_manifest(&serde_json::to_vec(&rewritten).unwrap()).unwrap();
    assert!(matches!(
        verify_record(&record, &other_image.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::WrongDigest { found, .. }) if found == OTHER_DIGEST
    ));
    let other_repo = sign_image(
        &vault,
        "release",
        None,
        alg,
        DIGEST,
        "other2/project01/nginx-lb",
    )
    .await;
    assert_eq!(
        check(&other_repo, &trusted),
        Err(VerifyFailure::WrongRepository {
            expected: REPO.into(),
            found: "other2/project01/nginx-lb".into()
        })
    );

    // Signed by a key the policy does not trust.
    let by_other = sign_image(&vault, "other", None, alg, DIGEST, REPO).await;
    assert!(matches!(
        check(&by_other, &trusted),
        Err(VerifyFailure::KeyMismatch(why)) if why.contains("acme1/other")
    ));
    // A record relabelled as the trusted key: the payload still names the other key.
    let mut relabelled: serde_json::Value = serde_json::from_slice(&by_other.manifest).unwrap();
    relabelled["layers"][0]["annotations"]["dev.minato.kms-key-id"] = "acme1/release".into();
    relabelled["layers"][0]["annotations"]["dev.minato.kms-key-version-id"] =
        "acme1/release/1".into();
    let record = parse_signature_manifest(&serde_json::to_vec(&relabelled).unwrap()).unwrap();
    assert!(matches!(
        verify_record(&record, &by_other.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::KeyMismatch(_))
    ));
    // A record naming a version the key does not have.
    let mut unknown_version: serde_json::Value = serde_json::from_slice(&good.manifest).unwrap();
    unknown_version["layers"][0]["annotations"]["dev.minato.kms-key-version-id"] =
        "acme1/release/5".into();
    let record = parse_signature_manifest(&serde_json::to_vec(&unknown_version).unwrap()).unwrap();
    assert!(matches!(
        verify_record(&record, &good.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::KeyMismatch(_))
    ));

    // A forged signature.
    let mut forged: serde_json::Value = serde_json::from_slice(&good.manifest).unwrap();
    let mut bytes = STANDARD
        .decode(
            forged["layers"][0]["annotations"]["dev.minato.signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    forged["layers"][0]["annotations"]["dev.minato.signature"] = STANDARD.encode(&bytes).into();
    let record = parse_signature_manifest(&serde_json::to_vec(&forged).unwrap()).unwrap();
    assert_eq!(
        verify_record(&record, &good.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::BadSignature("acme1/release/1".into()))
    );

    // A payload blob that is not the one the manifest names.
    let record = parse_signature_manifest(&good.manifest).unwrap();
    assert!(matches!(
        verify_record(&record, &other_image.payload, DIGEST, REPO, &trusted),
        Err(VerifyFailure::PayloadMismatch { .. })
    ));
    // A well-addressed blob that is not a payload.
    let junk = b"{\"hello\":\"world\"}".to_vec();
    let mut junk_record = record.clone();
    junk_record.payload.digest = Digest::of(Algorithm::Sha256, &junk).to_string();
    junk_record.payload.size = junk.len() as u64;
    assert!(matches!(
        verify_record(&junk_record, &junk, DIGEST, REPO, &trusted),
        Err(VerifyFailure::MalformedPayload(_))
    ));

    // Disabled key, then disabled version.
    vault
        .set_enabled("acme1", "release", None, false)
        .await
        .unwrap();
    let disabled = vault.trusted_key("acme1", "release").await.unwrap();
    assert_eq!(
        check(&good, &disabled),
        Err(VerifyFailure::DisabledKey("acme1/release".into()))
    );
    vault
        .set_enabled("acme1", "release", None, true)
        .await
        .unwrap();
    vault
        .set_enabled("acme1", "release", Some(1), false)
        .await
        .unwrap();
    let disabled = vault.trusted_key("acme1", "release").await.unwrap();
    assert_eq!(
        check(&good, &disabled),
        Err(VerifyFailure::DisabledKey("acme1/release/1".into()))
    );
}

#[tokio::test]
async fn rotation_keeps_old_signatures_valid() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
        .await
        .unwrap();
    let alg = SigningAlgorithm::Sha256RsaPkcsPss;
    let before = sign_image(&vault, "release", None, alg, DIGEST, REPO).await;
    vault.rotate("acme1", "release").await.unwrap();
    let after = sign_image(&vault, "release", None, alg, DIGEST, REPO).await;
    assert_eq!(
        parse_signature_manifest(&after.manifest)
            .unwrap()
            .kms_key_version_id,
        "acme1/release/2"
    );
    let trusted = vault.trusted_key("acme1", "release").await.unwrap();
    assert_eq!(check(&before, &trusted), Ok(()));
    assert_eq!(check(&after, &trusted), Ok(()));
}

#[tokio::test]
async fn sha224_signatures_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
        .await
        .unwrap();
    let signed = sign_image(
        &vault,
        "release",
        None,
        SigningAlgorithm::Sha224RsaPkcsPss,
        DIGEST,
        REPO,
    )
    .await;
    let trusted = vault.trusted_key("acme1", "release").await.unwrap();
    assert_eq!(check(&signed, &trusted), Ok(()));
}

#[tokio::test]
async fn rsa_pss_signatures_verify_with_openssl() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Padding;
    use openssl::sign::{RsaPssSaltlen, Verifier};

    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "release", KeyAlgorithm::Rsa3072)
        .await
        .unwrap();
    let pem = vault
        .public_key_pem("acme1", "release", None)
        .await
        .unwrap();
    let key = PKey::public_key_from_pem(pem.as_bytes()).unwrap();
    assert_eq!(key.bits(), 3072);
    let payload = Payload::parse(
        &sign_image(
            &vault,
            "release",
            None,
            SigningAlgorithm::Sha256RsaPkcsPss,
            DIGEST,
            REPO,
        )
        .await
        .payload,
    )
    .unwrap();
    for (algorithm, md) in [
        (SigningAlgorithm::Sha224RsaPkcsPss, MessageDigest::sha224()),
        (SigningAlgorithm::Sha256RsaPkcsPss, MessageDigest::sha256()),
        (SigningAlgorithm::Sha384RsaPkcsPss, MessageDigest::sha384()),
        (SigningAlgorithm::Sha512RsaPkcsPss, MessageDigest::sha512()),
    ] {
        let message = Payload {
            signing_algorithm: algorithm,
            ..payload.clone()
        }
        .to_bytes();
        let signature = vault
            .sign("acme1", "release", None, algorithm, &message)
            .await
            .unwrap();
        // PSS, MGF1 with the message hash, salt as long as the hash.
        let check = |salt: RsaPssSaltlen, data: &[u8]| {
            let mut verifier = Verifier::new(md, &key).unwrap();
            verifier.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            verifier.set_rsa_pss_saltlen(salt).unwrap();
            verifier.set_rsa_mgf1_md(md).unwrap();
            verifier.update(data).unwrap();
            verifier.verify(&signature.bytes).unwrap_or(false)
        };
        assert!(check(RsaPssSaltlen::DIGEST_LENGTH, &message), "{algorithm}");
        assert!(
            !check(RsaPssSaltlen::DIGEST_LENGTH, b"other"),
            "{algorithm}"
        );
        assert!(!check(RsaPssSaltlen::custom(0), &message), "{algorithm}");
    }
    // sigstore's RSA-PSS key type (SHA-256 only) agrees too.
    let message = payload.to_bytes();
    let signature = vault
        .sign(
            "acme1",
            "release",
            None,
            SigningAlgorithm::Sha256RsaPkcsPss,
            &message,
        )
        .await
        .unwrap();
    let key = sigstore::crypto::CosignVerificationKey::from_pem(
        pem.as_bytes(),
        &sigstore::crypto::SigningScheme::RSA_PSS_SHA256(0),
    )
    .unwrap();
    key.verify_signature(sigstore::crypto::Signature::Raw(&signature.bytes), &message)
        .unwrap();
}

#[tokio::test]
async fn cosign_signature_round_trip_and_independent_check() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(dir.path()).await;
    vault
        .create_key("acme1", "cosign", KeyAlgorithm::EcdsaP256)
        .await
        .unwrap();
    let payload =
        simple_signing_payload("registry.example:5000/acme1/project01/nginx-lb", DIGEST).unwrap();
    let signature = vault
        .sign(
            "acme1",
            "cosign",
            None,
            SigningAlgorithm::EcdsaP256Sha256,
            &payload,
        )
        .await
        .unwrap();
    let layer = CosignLayer {
        payload_digest: Digest::of(Algorithm::Sha256, &payload).to_string(),
        payload_size: payload.len() as u64,
        signature: signature.bytes.clone(),
    };
    let built = cosign_signature_manifest(std::slice::from_ref(&layer));
    assert_eq!(
        signature_tag(DIGEST).unwrap(),
        "sha256-e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1.sig"
    );

    // Independent check: sigstore's own verification key (OpenSSL backend) verifies the
    // annotation exactly as `cosign verify --key` would read it from the manifest.
    let manifest: serde_json::Value = serde_json::from_slice(&built.manifest).unwrap();
    let annotation = manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    let pem = vault.public_key_pem("acme1", "cosign", None).await.unwrap();
    let key = sigstore::crypto::CosignVerificationKey::try_from_pem(pem.as_bytes()).unwrap();
    assert!(matches!(
        key,
        sigstore::crypto::CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_)
    ));
    key.verify_signature(
        sigstore::crypto::Signature::Base64Encoded(annotation.as_bytes()),
        &payload,
    )
    .unwrap();
    assert!(
        key.verify_signature(
            sigstore::crypto::Signature::Base64Encoded(annotation.as_bytes()),
            &simple_signing_payload(
                "registry.example:5000/acme1/project01/nginx-lb",
                OTHER_DIGEST
            )
            .unwrap(),
        )
        .is_err()
    );

    // minato's own verification.
    let layers = parse_cosign_manifest(&built.manifest).unwrap();
    assert_eq!(layers, vec![layer.clone()]);
    let trusted = vault.trusted_key("acme1", "cosign").await.unwrap();
    let verified = verify_cosign(&layers[0], &payload, DIGEST, &trusted).unwrap();
    assert_eq!(
        verified.docker_reference,
        "registry.example:5000/acme1/project01/nginx-lb"
    );
    assert_eq!(
        verify_cosign(&layers[0], &payload, OTHER_DIGEST, &trusted),
        Err(VerifyFailure::WrongDigest {
            expected: OTHER_DIGEST.into(),
            found: DIGEST.into()
        })
    );
    let mut forged = layers[0].clone();
    forged.signature[8] ^= 1;
    assert!(matches!(
        verify_cosign(&forged, &payload, DIGEST, &trusted),
        Err(VerifyFailure::BadSignature(_))
    ));
    assert!(matches!(
        verify_cosign(&layers[0], b"{}", DIGEST, &trusted),
        Err(VerifyFailure::PayloadMismatch { .. })
    ));
    // A key given as a bare PEM (cosign.pub) works the same.
    let from_pem = TrustedKey::single(
        "cosign.pub",
        "cosign.pub",
        KeyAlgorithm::EcdsaP256,
        pem.as_bytes(),
    );
    verify_cosign(&layers[0], &payload, DIGEST, &from_pem).unwrap();
    // After rotation the old signature still verifies (cosign names no version); once the
    // old version is disabled it is reported as such.
    vault.rotate("acme1", "cosign").await.unwrap();
    let trusted = vault.trusted_key("acme1", "cosign").await.unwrap();
    verify_cosign(&layers[0], &payload, DIGEST, &trusted).unwrap();
    vault
        .set_enabled("acme1", "cosign", Some(1), false)
        .await
        .unwrap();
    let trusted = vault.trusted_key("acme1", "cosign").await.unwrap();
    assert_eq!(
        verify_cosign(&layers[0], &payload, DIGEST, &trusted),
        Err(VerifyFailure::DisabledKey("acme1/cosign/1".into()))
    );
    // RSA keys cannot make or check cosign signatures here.
    vault
        .create_key("acme1", "rsa", KeyAlgorithm::Rsa2048)
        .await
        .unwrap();
    let rsa = vault.trusted_key("acme1", "rsa").await.unwrap();
    assert!(matches!(
        verify_cosign(&layers[0], &payload, DIGEST, &rsa),
        Err(VerifyFailure::KeyMismatch(_))
    ));
}
