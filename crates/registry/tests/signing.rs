//! Signing keys and server-side signing through the admin API, in process: who may create,
//! list, rotate, disable, enable, read public keys and sign (`use keys` vs `manage keys` vs
//! nothing, another tenancy); the key lifecycle; that no endpoint returns private key
//! material; and that a signature lands in the image's repository as a referrer (and, for
//! ECDSA keys, under cosign's `.sig` tag) that verifies with the public key from the API.

mod support;

use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minato_iam::ADMINISTRATORS;
use minato_sign::cosign::{parse_cosign_manifest, signature_tag};
use minato_sign::{
    KeyAlgorithm, TrustedKey, TrustedKeyVersion, parse_signature_manifest, verify_cosign,
    verify_record,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Registry, body, json_body};

const ACME: &str = "acme";
const BOLT: &str = "bolt";
const REPO: &str = "acme/app";
const POLICY: &str = "
allow group KeyManagers to manage keys in tenancy
allow group Signers to use keys in tenancy
allow group Signers to read repos in tenancy
allow group Readers to read repos in tenancy
";

/// A registry with tenancies `sys`, `acme` and `bolt`, acme users per role, and an image
/// `acme/app:v1`.
struct World {
    registry: Registry,
    /// Basic authorization values by role.
    admin: Registry,
    manager: Registry,
    signer: Registry,
    reader: Registry,
    outsider: Registry,
    /// Digest of `acme/app:v1`.
    digest: String,
    /// Every JSON answer seen, to check for private material.
    seen: std::sync::Mutex<Vec<String>>,
}

impl World {
    async fn new() -> World {
        let (registry, auth) = Registry::start_with_tenancies(Duration::from_secs(300)).await;
        let directory = &auth.directory;
        for namespace in ["sys", ACME, BOLT] {
            directory
                .create_tenancy(Some(namespace), None)
                .await
                .unwrap();
        }
        directory.add_policy(ACME, POLICY).await.unwrap();
        let mut clients = Vec::new();
        for (namespace, user, group) in [
            (ACME, "admin", ADMINISTRATORS),
            (ACME, "manager", "KeyManagers"),
            (ACME, "signer", "Signers"),
            (ACME, "reader", "Readers"),
            (BOLT, "admin", ADMINISTRATORS),
        ] {
            directory.create_user(namespace, user).await.unwrap();
            if group != ADMINISTRATORS && directory.create_group(namespace, group).await.is_err() {
                // Created already by an earlier user of the same group.
            }
            directory
                .add_to_group(namespace, group, user)
                .await
                .unwrap();
            let (_, password) = directory
                .create_token(namespace, user, "test", None)
                .await
                .unwrap();
            let basic = STANDARD.encode(format!("{namespace}/{user}:{password}"));
            clients.push(registry.with_authorization(&format!("Basic {basic}")));
        }
        let [admin, manager, signer, reader, outsider] =
            <[Registry; 5]>::try_from(clients).unwrap_or_else(|_| panic!("five clients"));
        let manifest = admin.image(REPO, "signed").await;
        let (_, digest) = admin.push_manifest(REPO, "v1", &manifest).await;
        World {
            registry,
            admin,
            manager,
            signer,
            reader,
            outsider,
            digest,
            seen: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Sends `method path` with an optional JSON body; status and JSON answer (or `Null`).
    async fn call(
        &self,
        who: &Registry,
        method: Method,
        path: &str,
        body_value: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = who.request(method, path);
        if let Some(value) = body_value {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&value).unwrap());
        }
        let response = support::call(request).await;
        let status = response.status();
        let bytes = body(response).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.seen.lock().unwrap().push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create_key(&self, who: &Registry, name: &str, algorithm: &str) -> (StatusCode, Value) {
        self.call(
            who,
            Method::POST,
            "/admin/tenancies/acme/keys",
            Some(json!({"name": name, "algorithm": algorithm})),
        )
        .await
    }

    async fn sign(&self, who: &Registry, key: &str, request: Value) -> (StatusCode, Value) {
        self.call(
            who,
            Method::POST,
            &format!("/admin/tenancies/acme/keys/{key}/sign"),
            Some(request),
        )
        .await
    }

    /// The trusted key built from the public-key endpoint, as a verifier would.
    async fn trusted_key(&self, name: &str) -> TrustedKey {
        let (status, answer) = self
            .call(
                &self.reader,
                Method::GET,
                &format!("/admin/tenancies/acme/keys/{name}/public"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let enabled = |v: &Value| v["state"] == "ENABLED";
        TrustedKey {
            key_id: answer["keyId"].as_str().unwrap().to_owned(),
            algorithm: KeyAlgorithm::from_str(answer["algorithm"].as_str().unwrap()).unwrap(),
            enabled: enabled(&answer),
            versions: answer["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| TrustedKeyVersion {
                    key_version_id: v["keyVersionId"].as_str().unwrap().to_owned(),
                    public_key_der: v["publicKeyPem"].as_str().unwrap().as_bytes().to_vec(),
                    enabled: enabled(v),
                })
                .collect(),
        }
    }

    /// Fetches and verifies the signature artifact `signature_digest` of `acme/app:v1`.
    async fn verify_artifact(&self, signature_digest: &str, key: &TrustedKey) {
        let response = self
            .reader
            .get(&format!("/v2/{REPO}/manifests/{signature_digest}"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let record = parse_signature_manifest(&body(response).await).expect("signature manifest");
        let payload = body(
            self.reader
                .get(&format!("/v2/{REPO}/blobs/{}", record.payload.digest))
                .await,
        )
        .await;
        verify_record(&record, &payload, &self.digest, REPO, key).expect("signature verifies");
    }

    /// Checks that no answer seen so far carries private key material.
    fn assert_no_private_material(&self) {
        for text in self.seen.lock().unwrap().iter() {
            let lower = text.to_ascii_lowercase();
            assert!(
                !lower.contains("private") && !lower.contains("pkcs8") && !lower.contains("sealed"),
                "an answer mentions private material: {text}"
            );
        }
    }
}

#[tokio::test]
async fn key_endpoints_follow_policies() {
    let world = World::new().await;
    // Creating needs `manage keys`.
    for who in [&world.signer, &world.reader, &world.outsider] {
        let (status, answer) = world.create_key(who, "k", "rsa-2048").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["errors"][0]["code"], "DENIED");
    }
    let (status, answer) = world
        .create_key(&world.manager, "managed", "rsa-2048")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["keyId"], "acme/managed");
    assert_eq!(answer["currentVersion"], 1);
    let (status, _) = world.create_key(&world.admin, "admins", "ecdsa-p256").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = world.create_key(&world.admin, "admins", "ecdsa-p256").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = world.create_key(&world.admin, "bad", "rsa-1024").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "INVALID");

    // Listing needs `inspect keys` (use implies it); public keys any user of the tenancy.
    let list = "/admin/tenancies/acme/keys";
    for (who, expected) in [
        (&world.signer, StatusCode::OK),
        (&world.manager, StatusCode::OK),
        (&world.admin, StatusCode::OK),
        (&world.reader, StatusCode::FORBIDDEN),
        (&world.outsider, StatusCode::FORBIDDEN),
    ] {
        let (status, answer) = world.call(who, Method::GET, list, None).await;
        assert_eq!(status, expected, "{answer}");
    }
    let public = "/admin/tenancies/acme/keys/managed/public";
    for (who, expected) in [
        (&world.reader, StatusCode::OK),
        (&world.signer, StatusCode::OK),
        (&world.outsider, StatusCode::FORBIDDEN),
    ] {
        let (status, answer) = world.call(who, Method::GET, public, None).await;
        assert_eq!(status, expected, "{answer}");
    }
    let (status, _) = world.call(&world.registry, Method::GET, public, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Rotating, disabling and enabling need `manage keys`.
    for action in ["rotate", "disable", "enable"] {
        let path = format!("/admin/tenancies/acme/keys/managed/{action}");
        for who in [&world.signer, &world.reader, &world.outsider] {
            let (status, answer) = world.call(who, Method::POST, &path, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {answer}");
        }
        let (status, answer) = world.call(&world.manager, Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{action}: {answer}");
    }

    // Signing needs `use keys` and pull on the repository, in the key's tenancy.
    let request = json!({"repository": REPO, "reference": "v1"});
    for (who, expected) in [
        (&world.reader, StatusCode::FORBIDDEN),
        // manage keys implies use keys, but the manager may not pull acme/app.
        (&world.manager, StatusCode::FORBIDDEN),
        (&world.outsider, StatusCode::FORBIDDEN),
        (&world.signer, StatusCode::OK),
        (&world.admin, StatusCode::OK),
    ] {
        let (status, answer) = world.sign(who, "managed", request.clone()).await;
        assert_eq!(status, expected, "{answer}");
    }
    let (status, answer) = world
        .sign(
            &world.admin,
            "managed",
            json!({"repository": "bolt/app", "reference": "v1"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = world
        .sign(
            &world.signer,
            "managed",
            json!({"repository": REPO, "reference": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "MANIFEST_UNKNOWN");
    world.assert_no_private_material();
}

#[tokio::test]
async fn rsa_key_lifecycle_and_referrer_signatures_verify() {
    let world = World::new().await;
    let (status, _) = world.create_key(&world.admin, "release", "rsa-3072").await;
    assert_eq!(status, StatusCode::CREATED);
    let request = json!({
        "repository": REPO,
        "reference": "v1",
        "description": "release build",
        "metadata": "{\"build\":\"42\"}",
    });
    let (status, first) = world.sign(&world.signer, "release", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["digest"], world.digest.as_str());
    assert_eq!(first["kmsKeyVersionId"], "acme/release/1");
    assert_eq!(first["signingAlgorithm"], "SHA_256_RSA_PKCS_PSS");
    assert!(first.get("cosignTag").is_none());
    let payload: Value =
        serde_json::from_slice(&STANDARD.decode(first["message"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(payload["repositoryName"], REPO);
    assert_eq!(payload["imageDigest"], world.digest.as_str());
    assert_eq!(payload["description"], "release build");
    assert_eq!(
        payload["region"],
        world.registry.base().trim_start_matches("http://")
    );

    // Rotate: new signatures use version 2, old ones still verify.
    let path = "/admin/tenancies/acme/keys/release";
    let (status, rotated) = world
        .call(
            &world.manager,
            Method::POST,
            &format!("{path}/rotate"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rotated["currentVersion"], 2);
    let (status, second) = world
        .sign(
            &world.signer,
            "release",
            json!({"repository": REPO, "reference": world.digest, "signingAlgorithm": "SHA_512_RSA_PKCS_PSS"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["kmsKeyVersionId"], "acme/release/2");
    let key = world.trusted_key("release").await;
    for answer in [&first, &second] {
        world
            .verify_artifact(answer["signatureDigest"].as_str().unwrap(), &key)
            .await;
    }
    // Both are listed as referrers of the image.
    let referrers = json_body(
        world
            .reader
            .get(&format!("/v2/{REPO}/referrers/{}", world.digest))
            .await,
    )
    .await;
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for answer in [&first, &second] {
        assert!(listed.contains(&answer["signatureDigest"].as_str().unwrap()));
    }

    // Disable the key: signing fails; enable: it works again.
    let (status, _) = world
        .call(
            &world.manager,
            Method::POST,
            &format!("{path}/disable"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = world.sign(&world.signer, "release", request.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "DENIED");
    let (status, _) = world
        .call(
            &world.manager,
            Method::POST,
            &format!("{path}/enable"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = world.sign(&world.signer, "release", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Disable only version 1: it no longer signs, the current version does.
    let (status, info) = world
        .call(
            &world.manager,
            Method::POST,
            &format!("{path}/disable"),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["versions"][0]["state"], "DISABLED");
    let mut old = request.clone();
    old["keyVersion"] = json!(1);
    let (status, answer) = world.sign(&world.signer, "release", old).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = world.sign(&world.signer, "release", request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A verifier now refuses the version-1 signature.
    let record_digest = first["signatureDigest"].as_str().unwrap();
    let key = world.trusted_key("release").await;
    let response = world
        .reader
        .get(&format!("/v2/{REPO}/manifests/{record_digest}"))
        .await;
    let record = parse_signature_manifest(&body(response).await).unwrap();
    let payload = STANDARD.decode(first["message"].as_str().unwrap()).unwrap();
    assert!(verify_record(&record, &payload, &world.digest, REPO, &key).is_err());

    // Public key of one version, and an unknown version.
    let (status, one) = world
        .call(
            &world.reader,
            Method::GET,
            &format!("{path}/public?version=2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["versions"].as_array().unwrap().len(), 1);
    assert!(
        one["versions"][0]["publicKeyPem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let (status, _) = world
        .call(
            &world.reader,
            Method::GET,
            &format!("{path}/public?version=9"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    world.assert_no_private_material();
}

#[tokio::test]
async fn ecdsa_signatures_also_write_the_cosign_tag() {
    let world = World::new().await;
    let (status, _) = world.create_key(&world.admin, "cosign", "ecdsa-p256").await;
    assert_eq!(status, StatusCode::CREATED);
    let request = json!({"repository": REPO, "reference": "v1"});
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (status, answer) = world.sign(&world.signer, "cosign", request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["signingAlgorithm"], "ECDSA_P256_SHA_256");
        answers.push(answer);
    }
    let tag = signature_tag(&world.digest).unwrap();
    assert_eq!(answers[0]["cosignTag"], tag.as_str());
    let key = world.trusted_key("cosign").await;
    for answer in &answers {
        world
            .verify_artifact(answer["signatureDigest"].as_str().unwrap(), &key)
            .await;
    }
    // The second signature was appended to the first under the same tag.
    let response = world
        .reader
        .get(&format!("/v2/{REPO}/manifests/{tag}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let layers = parse_cosign_manifest(&body(response).await).expect("cosign manifest");
    assert_eq!(layers.len(), 2);
    for layer in &layers {
        let payload = body(
            world
                .reader
                .get(&format!("/v2/{REPO}/blobs/{}", layer.payload_digest))
                .await,
        )
        .await;
        let signed = verify_cosign(layer, &payload, &world.digest, &key).expect("cosign verifies");
        assert!(signed.docker_reference.ends_with("/acme/app"));
    }
    world.assert_no_private_material();
}
