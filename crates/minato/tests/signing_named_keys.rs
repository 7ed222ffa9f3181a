//! End to end on 127.0.0.1 with named tenancy keys: a real `minato serve` with tenancy
//! authentication, an RSA and an ECDSA key made with `minato keys`, images pushed with skopeo and
//! signed with `minato sign` by the administrator; then `minato verify --key <ns>/<name>` and the
//! HTTPS `minato webhook` (policy naming the key), both with a read-only user's docker config,
//! judge them, before and after `minato keys disable`.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/tenancy.rs"]
mod tenancy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clients::{Finished, Layout, client, finish, json, run};
use common::free_port;
use serde_json::{Value, json};
use tenancy::{Login, NAMESPACE, Registry};

/// Longest the webhook may take to accept connections.
const WEBHOOK_START: Duration = Duration::from_secs(20);

/// `minato ARGS...` with `HOME` in the scratch space, no inherited `DOCKER_CONFIG`, `stdin`
/// as input; bounded by the clients' command timeout.
fn minato(registry: &Registry, args: &[&str], stdin: &str) -> Finished {
    finish(
        Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(args)
            .env("HOME", registry.scratch("home"))
            .env_remove("DOCKER_CONFIG"),
        stdin.as_bytes(),
    )
}

/// `minato keys ARGS...` as the administrator, which must succeed.
fn keys(registry: &Registry, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(["keys", "--server", &registry.server.url()])
        .args(["--username", &registry.admin.username])
        .args(args)
        .env("MINATO_PASSWORD", &registry.admin.token))
}

/// `minato login` of `login` into a fresh docker config file `name`; its path.
fn login(registry: &Registry, login: &Login, name: &str) -> PathBuf {
    let config = registry.scratch(name);
    let config_text = config.display().to_string();
    let done = minato(
        registry,
        &[
            "login",
            registry.host(),
            "-u",
            &login.username,
            "--password-stdin",
            "--docker-config",
            &config_text,
        ],
        &format!("{}\n", login.token),
    );
    assert!(done.status.success(), "login: {}", done.stderr);
    config
}

/// Pushes a fresh single-layer image (its layer size makes its digest distinct) to
/// `acme/<repository_and_tag>` as the administrator with skopeo.
fn push(registry: &Registry, source: &str, layer_size: usize, repository_and_tag: &str) {
    let image = Layout::build(registry.scratch(source), &["linux/amd64"], layer_size);
    run(client("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &registry.admin.pair()])
        .arg(image.oci_reference("latest"))
        .arg(registry.docker(repository_and_tag)));
}

/// `minato verify IMAGE --key KEY --docker-config CONFIG`.
fn verify(registry: &Registry, image: &str, key: &str, config: &Path) -> Finished {
    let config = config.display().to_string();
    minato(
        registry,
        &["verify", image, "--key", key, "--docker-config", &config],
        "",
    )
}

/// `minato webhook` over TLS (a self-signed certificate for `localhost`) on a free loopback
/// port, with a policy trusting `key` for the registry and the read-only docker config.
struct Webhook {
    child: Child,
    port: u16,
    client: reqwest::blocking::Client,
}

impl Webhook {
    fn start(registry: &Registry, name: &str, key: &str, config: &Path) -> Webhook {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let write = |file: &str, text: &str| {
            let path = registry.scratch(&format!("{name}-{file}"));
            std::fs::write(&path, text).expect("write");
            path
        };
        let policy = format!(
            "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\n\
             keys: [\"{key}\"]\nregistries: [\"{}\"]\notherImages: deny\n",
            registry.host()
        );
        let (policy, cert, tls_key) = (
            write("policy.yaml", &policy),
            write("tls.crt", &certified.cert.pem()),
            write("tls.key", &certified.signing_key.serialize_pem()),
        );
        let port = free_port();
        let log = std::fs::File::create(registry.scratch(&format!("{name}-webhook.log")))
            .expect("webhook log");
        let child = Command::new(env!("CARGO_BIN_EXE_minato"))
            .arg("webhook")
            .arg("--policy")
            .arg(&policy)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&tls_key)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--docker-config")
            .arg(config)
            .env("HOME", registry.scratch("home"))
            .env_remove("DOCKER_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn webhook");
        let mut webhook = Webhook {
            child,
            port,
            client: reqwest::blocking::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(
                    reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("cert"),
                )
                .resolve("localhost", ([127, 0, 0, 1], port).into())
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = webhook.child.try_wait() {
                panic!("the webhook exited: {status}");
            }
            assert!(
                started.elapsed() < WEBHOOK_START,
                "the webhook did not listen within {WEBHOOK_START:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        webhook
    }

    /// `/validate` of a Pod with `images` in namespace `team-a`; the response.
    fn validate_pod(&self, images: &[&str]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0b2a6a52-1c1e-4d8e-9f5e-3d7c1a2b4c5d",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "p",
                "namespace": "team-a",
                "operation": "CREATE",
                "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                "object": {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "p", "namespace": "team-a"},
                           "spec": {"containers": containers}},
                "oldObject": null,
                "dryRun": false
            }
        });
        let answer = self
            .client
            .post(format!("https://localhost:{}/validate", self.port))
            .json(&review)
            .send()
            .expect("webhook call over TLS");
        assert_eq!(answer.status(), 200, "admission answers are always 200");
        let answer: Value = answer.json().expect("JSON answer");
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

#[test]
fn named_keys_verify_admit_and_stop_when_disabled() {
    let registry = Registry::start();
    let reader = registry.user_with_token("Readers", "read", "reader");
    keys(
        &registry,
        &["create", NAMESPACE, "rsa", "--algorithm", "rsa-2048"],
    );
    keys(
        &registry,
        &["create", NAMESPACE, "ec", "--algorithm", "ecdsa-p256"],
    );
    push(&registry, "src-rsa", 64 * 1024, "rsa-app:1.0");
    push(&registry, "src-ec", 48 * 1024, "ec-app:1.0");
    push(&registry, "src-unsigned", 32 * 1024, "unsigned:1.0");
    let admin_config = login(&registry, &registry.admin, "admin-config.json");
    let reader_config = login(&registry, &reader.login, "reader-config.json");
    let (rsa_key, ec_key) = (format!("{NAMESPACE}/rsa"), format!("{NAMESPACE}/ec"));
    let (rsa_image, ec_image) = (registry.name("rsa-app:1.0"), registry.name("ec-app:1.0"));
    let unsigned = registry.name("unsigned:1.0");
    let admin_config_text = admin_config.display().to_string();
    for (image, key, algorithm) in [
        (&rsa_image, &rsa_key, "SHA_256_RSA_PKCS_PSS"),
        (&ec_image, &ec_key, "ECDSA_P256_SHA_256"),
    ] {
        let signed = minato(
            &registry,
            &[
                "sign",
                image,
                "--key",
                key,
                "--docker-config",
                &admin_config_text,
                "-o",
                "json",
            ],
            "",
        );
        assert!(signed.status.success(), "sign {image}: {}", signed.stderr);
        let answer = json(&signed.stdout);
        assert_eq!(answer["kmsKeyVersionId"], format!("{key}/1"), "{answer}");
        assert_eq!(answer["signingAlgorithm"], algorithm, "{answer}");
    }

    // (a) The read-only user verifies each image with its signing key, not with the other.
    for (image, signer, other) in [
        (&rsa_image, &rsa_key, &ec_key),
        (&ec_image, &ec_key, &rsa_key),
    ] {
        let good = verify(&registry, image, signer, &reader_config);
        assert_eq!(
            good.status.code(),
            Some(0),
            "{image} by {signer}: {}",
            good.stderr
        );
        assert!(
            good.stdout
                .contains(&format!("verified, signed by {signer}")),
            "{}",
            good.stdout
        );
        let bad = verify(&registry, image, other, &reader_config);
        assert_eq!(
            bad.status.code(),
            Some(1),
            "{image} by {other}: {}",
            bad.stdout
        );
        assert!(
            bad.stderr.contains("no valid signature from a trusted key"),
            "{}",
            bad.stderr
        );
    }
    let none = verify(&registry, &unsigned, &rsa_key, &reader_config);
    assert_eq!(none.status.code(), Some(1), "{}", none.stdout);
    assert!(
        none.stderr.contains("0 signatures checked"),
        "{}",
        none.stderr
    );

    // (c) The webhook trusting acme/rsa admits the signed image and denies the others.
    let webhook = Webhook::start(&registry, "before", &rsa_key, &reader_config);
    let admitted = webhook.validate_pod(&[&rsa_image]);
    assert_eq!(admitted["allowed"], true, "{admitted}");
    for image in [&unsigned, &ec_image] {
        let denied = webhook.validate_pod(&[image]);
        assert_eq!(denied["allowed"], false, "{image}: {denied}");
        assert_eq!(denied["status"]["code"], 403, "{denied}");
        let message = denied["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(image.as_str()) && message.contains("not signed by any trusted key"),
            "{message}"
        );
    }
    assert_eq!(
        webhook.validate_pod(&[&rsa_image, &unsigned])["allowed"],
        false,
        "one unsigned container denies the pod"
    );
    drop(webhook);

    // (b) A disabled key verifies nothing, and says why.
    keys(&registry, &["disable", NAMESPACE, "rsa"]);
    let disabled = verify(&registry, &rsa_image, &rsa_key, &reader_config);
    assert_eq!(disabled.status.code(), Some(1), "{}", disabled.stdout);
    assert!(
        disabled
            .stderr
            .contains(&format!("key {rsa_key} is disabled")),
        "{}",
        disabled.stderr
    );
    let other = verify(&registry, &ec_image, &ec_key, &reader_config);
    assert_eq!(other.status.code(), Some(0), "{}", other.stderr);

    // (c) A fresh webhook (its key and verdict caches empty) denies the image signed by the
    // disabled key.
    let webhook = Webhook::start(&registry, "after", &rsa_key, &reader_config);
    let denied = webhook.validate_pod(&[&rsa_image]);
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("disabled"), "{message}");

    // Enabled again, it verifies again.
    keys(&registry, &["enable", NAMESPACE, "rsa"]);
    let again = verify(&registry, &rsa_image, &rsa_key, &reader_config);
    assert_eq!(again.status.code(), Some(0), "{}", again.stderr);
}
