//! End-to-end image verification: signatures made with minato-sign (a vault in a temp dir and
//! the artifact / cosign builders) are pushed into a real `minato serve --no-auth` with plain
//! HTTP calls; then `minato verify`, `minato signatures` and the HTTPS webhook (reached by a
//! client that trusts only the generated CA) judge them.

mod common;
#[path = "support/push.rs"]
mod push;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Server, free_port};
use minato_kube::reference::ImageReference;
use minato_kube::registry_client::{ClientConfig, Transport};
use minato_kube::signatures::{self, PolicyKey};
use minato_kube::webhook_manifests::{generate_certs, service_names};
use minato_sign::artifact::Descriptor;
use minato_sign::cosign::{
    CosignLayer, cosign_signature_manifest, signature_tag, simple_signing_payload,
};
use minato_sign::{KeyAlgorithm, Payload, RootKey, SigningAlgorithm, Vault};
use push::Pusher;
use serde_json::{Value, json};

const SERVICE: &str = "image-verify";
const NAMESPACE: &str = "minato-system";

struct Fixture {
    _dir: tempfile::TempDir,
    server: Server,
    pusher: Pusher,
    vault: Vault,
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("registry");
        std::fs::create_dir_all(&data).expect("data dir");
        let server = Server::start(&data);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let vault_dir = dir.path().join("vault");
        std::fs::create_dir_all(&vault_dir).expect("vault dir");
        let vault = rt
            .block_on(Vault::open(
                &vault_dir,
                RootKey::generate().expect("root key"),
            ))
            .expect("vault");
        let pusher = Pusher {
            http: reqwest::blocking::Client::new(),
            base: server.url(),
        };
        Fixture {
            _dir: dir,
            server,
            pusher,
            vault,
            rt,
        }
    }

    fn host(&self) -> &str {
        &self.server.addr
    }

    fn create_key(&self, name: &str, algorithm: KeyAlgorithm) -> String {
        self.rt
            .block_on(self.vault.create_key("acme", name, algorithm))
            .expect("key");
        self.rt
            .block_on(self.vault.public_key_pem("acme", name, None))
            .expect("pem")
    }

    /// The payload `key` would sign for `digest` in `repository`.
    fn payload(&self, key: &str, digest: &str, repository: &str) -> Payload {
        Payload {
            description: String::new(),
            image_digest: digest.to_owned(),
            kms_key_id: format!("acme/{key}"),
            kms_key_version_id: format!("acme/{key}/1"),
            metadata: String::new(),
            region: "local".into(),
            repository_name: repository.to_owned(),
            signing_algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
        }
    }

    fn sign(&self, key: &str, bytes: &[u8], algorithm: SigningAlgorithm) -> minato_sign::Signature {
        self.rt
            .block_on(self.vault.sign("acme", key, None, algorithm, bytes))
            .expect("sign")
    }

    /// Signs `subject` in `repo` with `key`, the payload naming `digest` and `repository`.
    fn sign_referrer(
        &self,
        repo: &str,
        subject: &Descriptor,
        key: &str,
        digest: &str,
        repository: &str,
    ) -> String {
        let bytes = self.payload(key, digest, repository).to_bytes();
        let signature = self.sign(key, &bytes, SigningAlgorithm::Sha256RsaPkcsPss);
        self.pusher.referrer(repo, subject, &bytes, &signature)
    }

    fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }
}

/// `minato webhook` on a free port with `policy`, serving a certificate for the service names.
struct Webhook {
    child: Child,
    port: u16,
    client: reqwest::blocking::Client,
}

impl Webhook {
    fn start(dir: &Path, name: &str, policy: &str) -> Webhook {
        let certs = generate_certs(&service_names(SERVICE, NAMESPACE)).expect("certs");
        let write = |file: &str, text: &str| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, text).expect("write");
            path
        };
        let (policy, cert, key) = (
            write("policy.yaml", policy),
            write("tls.crt", &certs.cert_pem),
            write("tls.key", &certs.key_pem),
        );
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_minato"))
            .arg("webhook")
            .arg("--policy")
            .arg(&policy)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--docker-config")
            .arg(dir.join("no-docker-config.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn webhook");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "webhook did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host = &service_names(SERVICE, NAMESPACE)[0];
        let client = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).expect("ca"),
            )
            .resolve(host, ([127, 0, 0, 1], port).into())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Webhook {
            child,
            port,
            client,
        }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let host = &service_names(SERVICE, NAMESPACE)[0];
        let answer = self
            .client
            .post(format!("https://{host}:{}{path}", self.port))
            .json(body)
            .send()
            .expect("webhook call over TLS");
        assert_eq!(answer.status(), 200, "admission answers are always 200");
        answer.json().expect("json answer")
    }

    /// `/validate` for a Pod in `namespace` with `images` and `annotations`; the response.
    fn validate_pod(&self, namespace: &str, images: &[&str], annotations: Value) -> Value {
        let review = admission_review("Pod", "pods", namespace, pod(images, annotations));
        let answer = self.post("/validate", &review);
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        answer["response"].clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pod(images: &[&str], annotations: Value) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "my-pod", "namespace": "team-a", "annotations": annotations},
           "spec": {"containers": containers}})
}

/// An AdmissionReview v1 request in the exact shape of spec §4.1.
fn admission_review(kind: &str, resource: &str, namespace: &str, object: Value) -> Value {
    let group = if kind == "Pod" { "" } else { "apps" };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "subResource": "",
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": "my-pod",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn policy(registry: &str, keys: &[&str], extra: &str) -> String {
    let keys: Vec<Value> = keys.iter().map(|pem| json!({"publicKey": pem})).collect();
    format!(
        "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\nkeys: {}\n\
         registries: [\"{registry}\"]\nexemptNamespaces: [kube-system]\n{extra}",
        Value::Array(keys)
    )
}

fn minato(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(args)
        .output()
        .expect("run minato")
}

#[test]
fn signatures_are_verified_by_cli_library_and_webhook() {
    let f = Fixture::start();
    let release_pem = f.create_key("release", KeyAlgorithm::Rsa2048);
    let cosign_pem = f.create_key("cosign", KeyAlgorithm::EcdsaP256);
    f.create_key("rogue", KeyAlgorithm::Rsa2048);
    f.create_key("off", KeyAlgorithm::Rsa2048);

    // Valid: signed by release for its own digest and repository.
    let good = f.pusher.image("acme/good", "1.0", "good");
    let good_signature = f.sign_referrer("acme/good", &good, "release", &good.digest, "acme/good");
    // Valid cosign signature by the ECDSA key.
    let cosigned = f.pusher.image("acme/cosigned", "1.0", "cosigned");
    let simple = simple_signing_payload(&format!("{}/acme/cosigned", f.host()), &cosigned.digest)
        .expect("payload");
    let sig = f.sign("cosign", &simple, SigningAlgorithm::EcdsaP256Sha256);
    let layer = CosignLayer {
        payload_digest: f.pusher.blob("acme/cosigned", &simple),
        payload_size: simple.len() as u64,
        signature: sig.bytes,
    };
    let cosign = cosign_signature_manifest(&[layer]);
    f.pusher.blob("acme/cosigned", &cosign.config);
    f.pusher.manifest(
        "acme/cosigned",
        &signature_tag(&cosigned.digest).expect("tag"),
        &cosign.manifest,
    );
    // Denials.
    f.pusher.image("acme/unsigned", "1.0", "unsigned");
    let rogue = f.pusher.image("acme/rogue", "1.0", "rogue");
    f.sign_referrer("acme/rogue", &rogue, "rogue", &rogue.digest, "acme/rogue");
    let other_digest = f.pusher.image("acme/digest", "1.0", "digest");
    let decoy = f.pusher.image("acme/digest", "2.0", "decoy");
    f.sign_referrer(
        "acme/digest",
        &other_digest,
        "release",
        &decoy.digest,
        "acme/digest",
    );
    let other_repo = f.pusher.image("acme/repo", "1.0", "repo");
    f.sign_referrer(
        "acme/repo",
        &other_repo,
        "release",
        &other_repo.digest,
        "acme/good",
    );
    let edited = f.pusher.image("acme/edited", "1.0", "edited");
    let signed = f.payload("release", &edited.digest, "acme/edited");
    let signature = f.sign(
        "release",
        &signed.to_bytes(),
        SigningAlgorithm::Sha256RsaPkcsPss,
    );
    let tampered = Payload {
        description: "edited".into(),
        ..signed
    };
    f.pusher
        .referrer("acme/edited", &edited, &tampered.to_bytes(), &signature);
    let disabled = f.pusher.image("acme/disabled", "1.0", "disabled");
    f.sign_referrer(
        "acme/disabled",
        &disabled,
        "off",
        &disabled.digest,
        "acme/disabled",
    );
    f.rt.block_on(f.vault.set_enabled("acme", "off", None, false))
        .expect("disable");

    let dir = tempfile::tempdir().expect("temp dir");
    let release_file = dir.path().join("release.pem");
    std::fs::write(&release_file, &release_pem).expect("write key");
    let no_config = dir.path().join("none.json");
    let key_args = [
        "--public-key",
        release_file.to_str().unwrap(),
        "--docker-config",
        no_config.to_str().unwrap(),
    ];

    // --- CLI: verify, signatures list / delete.
    let out = minato(&[&["verify", &f.image("acme/good", "1.0")][..], &key_args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
    let out = minato(&[&["verify", &f.image("acme/edited", "1.0")][..], &key_args].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = minato(&[
        "signatures",
        "list",
        &f.image("acme/good", "1.0"),
        "--docker-config",
        no_config.to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains(&good_signature)
            && listing.contains("acme/release/1")
            && listing.contains("SHA_256_RSA_PKCS_PSS")
            && listing.contains("2025-01-01T00:00:00Z"),
        "{listing}"
    );

    // --- Library: the disabled key (states come from the key's record, as the registry's key
    // endpoint serves them).
    let transport = Transport::new(&ClientConfig::default()).expect("transport");
    let off =
        f.rt.block_on(f.vault.trusted_key("acme", "off"))
            .expect("trusted key");
    let reference = ImageReference::parse(&f.image("acme/disabled", "1.0")).expect("reference");
    let verification = f.rt.block_on(async {
        let client = signatures::connect(&transport, &reference, None)
            .await
            .expect("connect");
        signatures::verify(&client, &reference, &[PolicyKey::Named(off)])
            .await
            .expect("verify")
    });
    assert!(!verification.is_verified());
    assert!(
        verification.reasons()[0].contains("key acme/off is disabled"),
        "{:?}",
        verification.reasons()
    );

    // --- Webhook.
    let webhook = Webhook::start(
        dir.path(),
        "main",
        &policy(
            f.host(),
            &[&release_pem, &cosign_pem],
            "otherImages: allow\n",
        ),
    );
    for (repo, expected) in [
        ("acme/unsigned", "0 signatures checked"),
        ("acme/rogue", "not signed by any trusted key"),
        ("acme/digest", "signature is for digest"),
        ("acme/repo", "signature is for repository"),
        ("acme/edited", "signature does not verify"),
    ] {
        let image = f.image(repo, "1.0");
        let response = webhook.validate_pod("team-a", &[&image], json!({}));
        assert_eq!(response["allowed"], false, "{repo}: {response}");
        assert_eq!(response["status"]["code"], 403);
        let message = response["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&image)
                && message.contains(expected)
                && message.contains("keys tried"),
            "{repo}: {message}"
        );
    }
    for image in [
        f.image("acme/good", "1.0"),
        format!("{}/acme/good@{}", f.host(), good.digest),
        f.image("acme/cosigned", "1.0"),
        "nginx:1.27".to_owned(),
    ] {
        let response = webhook.validate_pod("team-a", &[&image], json!({}));
        assert_eq!(response["allowed"], true, "{image}: {response}");
        assert!(response.get("status").is_none());
    }
    // One bad container denies the pod; break-glass admits it and is audited.
    let unsigned = f.image("acme/unsigned", "1.0");
    let good_image = f.image("acme/good", "1.0");
    assert_eq!(
        webhook.validate_pod("team-a", &[&good_image, &unsigned], json!({}))["allowed"],
        false
    );
    let response = webhook.validate_pod(
        "team-a",
        &[&unsigned],
        json!({"oracle.image-policy.k8s.io/break-glass": "true"}),
    );
    assert_eq!(response["allowed"], true);
    assert!(
        response["auditAnnotations"]["break-glass"]
            .as_str()
            .unwrap_or_default()
            .contains("break-glass=true")
    );
    let response = webhook.validate_pod(
        "team-a",
        &[&unsigned],
        json!({"oracle.image-policy.k8s.io/break-glass": "True"}),
    );
    assert_eq!(
        response["allowed"], false,
        "only the exact value true breaks glass"
    );
    assert_eq!(
        webhook.validate_pod("kube-system", &[&unsigned], json!({}))["allowed"],
        true
    );
    // Pod templates: a Deployment with an unsigned init container.
    let deployment = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"team-a"},
        "spec":{"template":{"metadata":{},"spec":{"initContainers":[{"name":"i","image":unsigned}],"containers":[{"name":"c","image":good_image}]}}}});
    let answer = webhook.post(
        "/validate",
        &admission_review("Deployment", "deployments", "team-a", deployment.clone()),
    );
    assert_eq!(answer["response"]["allowed"], false);
    // /mutate pins the verified tag to its digest.
    let mut pinned = deployment.clone();
    pinned["spec"]["template"]["spec"]["initContainers"] = json!([]);
    let answer = webhook.post(
        "/mutate",
        &admission_review("Deployment", "deployments", "team-a", pinned),
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op":"replace","path":"/spec/template/spec/containers/0/image","value":format!("{good_image}@{}", good.digest)}])
    );
    // /imagepolicy (ImageReview, spec §4.5).
    let review = |image: &str| {
        json!({"apiVersion":"imagepolicy.k8s.io/v1alpha1","kind":"ImageReview",
        "spec":{"containers":[{"image":image}],"annotations":{},"namespace":"team-a"}})
    };
    let answer = webhook.post("/imagepolicy", &review(&good_image));
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    let answer = webhook.post("/imagepolicy", &review(&unsigned));
    assert_eq!(answer["kind"], "ImageReview");
    assert_eq!(answer["status"]["allowed"], false);
    assert!(
        answer["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not signed")
    );

    // requireDigest and otherImages: deny.
    let strict = Webhook::start(
        dir.path(),
        "strict",
        &policy(
            f.host(),
            &[&release_pem],
            "otherImages: deny\nrequireDigest: true\n",
        ),
    );
    let message = strict.validate_pod("team-a", &[&good_image], json!({}))["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("must be referenced by digest"),
        "{message}"
    );
    assert_eq!(
        strict.validate_pod(
            "team-a",
            &[&format!("{}/acme/good@{}", f.host(), good.digest)],
            json!({})
        )["allowed"],
        true
    );
    assert_eq!(
        strict.validate_pod("team-a", &["nginx:1.27"], json!({}))["allowed"],
        false
    );

    // Signature deleted → the image is no longer trusted.
    let out = minato(&[
        "signatures",
        "delete",
        &good_image,
        &good_signature,
        "--docker-config",
        no_config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = minato(&[&["verify", &good_image][..], &key_args].concat());
    assert_eq!(out.status.code(), Some(1));

    // Registry down → fail closed with a distinct message.
    let down = format!("127.0.0.1:{}", free_port());
    let closed = Webhook::start(dir.path(), "down", &policy(&down, &[&release_pem], ""));
    let message = closed.validate_pod("team-a", &[&format!("{down}/acme/good:1.0")], json!({}))["status"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("unreachable, failing closed"), "{message}");
    // Disabled policy admits everything.
    let disabled = Webhook::start(
        dir.path(),
        "off",
        &policy(f.host(), &[&release_pem], "").replace("enabled: true", "enabled: false"),
    );
    assert_eq!(
        disabled.validate_pod("team-a", &[&unsigned], json!({}))["allowed"],
        true
    );
    drop(f.server);
}
