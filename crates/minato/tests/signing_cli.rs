//! End to end on 127.0.0.1: a real `minato serve` with tenancy authentication, keys managed
//! with `minato keys`, a signer logged in with `minato login` into a temporary docker config,
//! and `minato sign`, whose signature the registry then lists as a referrer of the image.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/tenancy.rs"]
mod tenancy;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clients::{Finished, finish, json, run};
use tenancy::{Login, NAMESPACE, Registry};

/// `minato keys ARGS...` as `login`, which must succeed; its output.
fn keys(registry: &Registry, login: &Login, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(["keys", "--server", &registry.server.url()])
        .args(["--username", &login.username])
        .args(args)
        .env("MINATO_PASSWORD", &login.token))
}

/// `minato ARGS...` with `HOME` in the scratch space and no inherited `DOCKER_CONFIG`.
fn minato(registry: &Registry, args: &[&str], stdin: &str) -> Finished {
    finish(
        Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(args)
            .env("HOME", registry.scratch("home"))
            .env_remove("DOCKER_CONFIG"),
        stdin.as_bytes(),
    )
}

/// `minato sign IMAGE --key KEY --docker-config CONFIG EXTRA...`.
fn sign(registry: &Registry, image: &str, key: &str, config: &Path, extra: &[&str]) -> Finished {
    let config = config.display().to_string();
    minato(
        registry,
        &[
            &["sign", image, "--key", key, "--docker-config", &config][..],
            extra,
        ]
        .concat(),
        "",
    )
}

#[test]
fn keys_login_sign_and_referrers() {
    let registry = Registry::start();
    registry.push_image("app:v1");
    let signer = registry.user_with_token("Signers", "read", "signer");
    registry.admin(&[
        "policy",
        "add",
        NAMESPACE,
        "allow group Signers to use keys in tenancy",
    ]);

    // Keys: the signer may not create; the administrator may.
    let denied = minato(
        &registry,
        &[
            "keys",
            "--server",
            &registry.server.url(),
            "--username",
            &signer.login.username,
            "--password-stdin",
            "create",
            NAMESPACE,
            "nope",
            "--algorithm",
            "rsa-2048",
        ],
        &format!("{}\n", signer.login.token),
    );
    assert_eq!(denied.status.code(), Some(1), "{}", denied.stderr);
    assert!(denied.stderr.contains("403"), "{}", denied.stderr);
    let created = keys(
        &registry,
        &registry.admin,
        &["create", NAMESPACE, "release", "--algorithm", "ecdsa-p256"],
    );
    assert!(
        created.starts_with("acme/release\tecdsa-p256\tENABLED\tversion 1"),
        "{created}"
    );
    let listed = keys(&registry, &signer.login, &["list", NAMESPACE]);
    assert!(listed.contains("acme/release"), "{listed}");
    let pem = keys(&registry, &signer.login, &["public", NAMESPACE, "release"]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert!(!pem.contains("PRIVATE"), "{pem}");

    // Anonymous signing is refused; after `minato login` it works.
    let config = registry.scratch("docker-config.json");
    let image = registry.name("app:v1");
    let anonymous = sign(&registry, &image, "acme/release", &config, &[]);
    assert_eq!(anonymous.status.code(), Some(1), "{}", anonymous.stderr);
    assert!(anonymous.stderr.contains("401"), "{}", anonymous.stderr);
    let config_text = config.display().to_string();
    let login = minato(
        &registry,
        &[
            "login",
            registry.host(),
            "-u",
            &signer.login.username,
            "--password-stdin",
            "--docker-config",
            &config_text,
        ],
        &format!("{}\n", signer.login.token),
    );
    assert!(login.status.success(), "{}", login.stderr);
    let signed = sign(
        &registry,
        &image,
        "acme/release",
        &config,
        &["-o", "json", "--description", "e2e"],
    );
    assert!(signed.status.success(), "{}", signed.stderr);
    let answer = json(&signed.stdout);
    assert_eq!(answer["kmsKeyVersionId"], "acme/release/1", "{answer}");
    assert_eq!(answer["signingAlgorithm"], "ECDSA_P256_SHA_256");
    let digest = answer["digest"].as_str().expect("digest").to_owned();
    let signature_digest = answer["signatureDigest"]
        .as_str()
        .expect("signature digest");
    assert!(
        answer["cosignTag"]
            .as_str()
            .is_some_and(|t| t.ends_with(".sig")),
        "{answer}"
    );

    // The registry lists the signature as a referrer of the image, by digest.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let referrers: serde_json::Value = http
        .get(format!(
            "{}/v2/acme/app/referrers/{digest}",
            registry.server.url()
        ))
        .basic_auth(&signer.login.username, Some(&signer.login.token))
        .send()
        .expect("referrers answer")
        .json()
        .expect("referrers JSON");
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    assert!(listed.contains(&signature_digest), "{referrers}");

    // Signing by digest in text mode; then a disabled key refuses to sign until enabled.
    let by_digest = sign(
        &registry,
        &format!("{}/acme/app@{digest}", registry.host()),
        "acme/release",
        &config,
        &[],
    );
    assert!(by_digest.status.success(), "{}", by_digest.stderr);
    assert!(
        by_digest.stdout.contains(&format!("digest: {digest}")),
        "{}",
        by_digest.stdout
    );
    keys(
        &registry,
        &registry.admin,
        &["disable", NAMESPACE, "release"],
    );
    let disabled = sign(&registry, &image, "acme/release", &config, &[]);
    assert_eq!(disabled.status.code(), Some(1), "{}", disabled.stderr);
    assert!(disabled.stderr.contains("disabled"), "{}", disabled.stderr);
    keys(
        &registry,
        &registry.admin,
        &["enable", NAMESPACE, "release"],
    );
    let rotated = keys(
        &registry,
        &registry.admin,
        &["rotate", NAMESPACE, "release"],
    );
    assert!(rotated.contains("version 2"), "{rotated}");
    let again = sign(&registry, &image, "acme/release", &config, &["-o", "json"]);
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(json(&again.stdout)["kmsKeyVersionId"], "acme/release/2");

    // The root key was created with mode 0600 on first start.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(registry.server.data_dir.join("root.key"))
        .expect("root.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
