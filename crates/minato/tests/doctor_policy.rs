//! `minato doctor --policy`: images pushed into a real `minato serve --no-auth`, signed with
//! minato-sign directly (a vault in a temp dir, the signature artifact pushed with plain HTTP
//! calls), then judged by the doctor with the same ImageVerificationPolicy the admission
//! webhook takes: a signed image is ok, an unsigned (or wrongly signed) one fails with cause
//! `signature-invalid`, except in an exempt namespace or with the break-glass annotation, and
//! without `--policy` signatures are not checked.

#[path = "support/clients.rs"]
mod clients;
mod common;

use std::path::Path;
use std::process::Command;

use clients::{Finished, finish};
use common::Server;
use minato_oci::{Algorithm, Digest};
use minato_sign::artifact::{Descriptor, EMPTY_CONFIG, signature_manifest};
use minato_sign::{KeyAlgorithm, Payload, RootKey, SigningAlgorithm, Vault};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    Digest::of(Algorithm::Sha256, bytes).to_string()
}

/// Plain HTTP pushes to the registry under test.
struct Pusher {
    http: reqwest::blocking::Client,
    base: String,
}

impl Pusher {
    fn blob(&self, repo: &str, bytes: &[u8]) -> String {
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

    fn manifest(&self, repo: &str, reference: &str, bytes: &[u8]) {
        let answer = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes.to_vec())
            .send()
            .expect("manifest push");
        assert!(
            answer.status().is_success(),
            "manifest push: {}",
            answer.status()
        );
    }

    /// Pushes a one-layer linux/amd64 image; its descriptor.
    fn image(&self, repo: &str, tag: &str) -> Descriptor {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{repo}"}}"#);
        let layer = format!("layer of {repo}");
        let config_digest = self.blob(repo, config.as_bytes());
        let layer_digest = self.blob(repo, layer.as_bytes());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        self.manifest(repo, tag, manifest.as_bytes());
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: sha256(manifest.as_bytes()),
            size: manifest.len() as u64,
        }
    }

    /// Pushes a minato signature referrer of `subject` signed by `key` of `vault`.
    fn sign(
        &self,
        rt: &tokio::runtime::Runtime,
        vault: &Vault,
        key: &str,
        repo: &str,
        subject: &Descriptor,
    ) {
        let payload = Payload {
            description: String::new(),
            image_digest: subject.digest.clone(),
            kms_key_id: format!("acme/{key}"),
            kms_key_version_id: format!("acme/{key}/1"),
            metadata: String::new(),
            region: "local".into(),
            repository_name: repo.to_owned(),
            signing_algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
        }
        .to_bytes();
        let signature = rt
            .block_on(vault.sign(
                "acme",
                key,
                None,
                SigningAlgorithm::Sha256RsaPkcsPss,
                &payload,
            ))
            .expect("sign");
        self.blob(repo, EMPTY_CONFIG);
        let payload_digest = self.blob(repo, &payload);
        let manifest = signature_manifest(
            subject,
            &payload_digest,
            payload.len() as u64,
            &signature,
            "2025-01-01T00:00:00Z",
        );
        self.manifest(repo, &sha256(&manifest), &manifest);
    }
}

fn pod(name: &str, namespace: &str, image: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations: {annotations}\nspec:\n  containers:\n  - name: app\n    image: {image}\n"
    )
}

/// `minato doctor -o json -f FILE ARGS...`; the run and its parsed report.
fn doctor(manifests: &Path, args: &[&str]) -> (Finished, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_minato"));
    command.args(["doctor", "-o", "json", "-f"]).arg(manifests);
    command.args(args);
    let finished = finish(&mut command, b"");
    let report: Value = serde_json::from_str(&finished.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}; {})\nstdout:\n{}\nstderr:\n{}",
            finished.status, finished.stdout, finished.stderr
        )
    });
    (finished, report)
}

fn finding<'a>(report: &'a Value, workload: &str) -> &'a Value {
    report["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["workload"] == workload)
        .unwrap_or_else(|| panic!("no {workload} in {report:#}"))
}

#[test]
fn doctor_checks_signatures_against_the_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    std::fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let host = server.addr.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let vault_dir = dir.path().join("vault");
    std::fs::create_dir_all(&vault_dir).expect("vault dir");
    let vault = rt
        .block_on(Vault::open(
            &vault_dir,
            RootKey::generate().expect("root key"),
        ))
        .expect("vault");
    for key in ["release", "rogue"] {
        rt.block_on(vault.create_key("acme", key, KeyAlgorithm::Rsa2048))
            .expect("key");
    }
    let release_pem = rt
        .block_on(vault.public_key_pem("acme", "release", None))
        .expect("pem");
    let pusher = Pusher {
        http: reqwest::blocking::Client::new(),
        base: server.url(),
    };
    let signed = pusher.image("acme/signed", "1.0");
    pusher.sign(&rt, &vault, "release", "acme/signed", &signed);
    pusher.image("acme/unsigned", "1.0");
    let rogue = pusher.image("acme/rogue", "1.0");
    pusher.sign(&rt, &vault, "rogue", "acme/rogue", &rogue);

    let signed_image = format!("{host}/acme/signed:1.0");
    let unsigned_image = format!("{host}/acme/unsigned:1.0");
    let rogue_image = format!("{host}/acme/rogue:1.0");
    let manifests = dir.path().join("pods.yaml");
    std::fs::write(
        &manifests,
        [
            pod("signed", "team-a", &signed_image, "{}"),
            pod("unsigned", "team-a", &unsigned_image, "{}"),
            pod("rogue", "team-a", &rogue_image, "{}"),
            pod("exempt", "kube-system", &unsigned_image, "{}"),
            pod(
                "glass",
                "team-a",
                &unsigned_image,
                "{oracle.image-policy.k8s.io/break-glass: \"true\"}",
            ),
        ]
        .join("---\n"),
    )
    .expect("write manifests");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\n\
             keys: [{}]\nregistries: [\"{host}\"]\nexemptNamespaces: [kube-system]\n",
            json!({ "publicKey": release_pem })
        ),
    )
    .expect("write policy");

    // Without --policy: every pull succeeds and signatures are not checked.
    let (finished, report) = doctor(&manifests, &[]);
    assert!(finished.status.success(), "{}", finished.stdout);
    for workload in [
        "Pod/signed",
        "Pod/unsigned",
        "Pod/rogue",
        "Pod/exempt",
        "Pod/glass",
    ] {
        let f = finding(&report, workload);
        assert_eq!(f["verdict"], "ok", "{f:#}");
        assert!(f.get("signature").is_none(), "{f:#}");
    }

    // With the policy.
    let policy_arg = policy.to_str().expect("utf-8 path");
    let (finished, report) = doctor(&manifests, &["--policy", policy_arg]);
    assert!(!finished.status.success(), "exit 1 when a container fails");
    let f = finding(&report, "Pod/signed");
    assert_eq!(
        (&f["verdict"], &f["cause"]),
        (&json!("ok"), &json!("ok")),
        "{f:#}"
    );
    assert_eq!(f["signature"], "admitted: signed by publicKey[0]", "{f:#}");
    for (workload, image, expected) in [
        ("Pod/unsigned", &unsigned_image, "0 signatures checked"),
        ("Pod/rogue", &rogue_image, "publicKey[0]: "),
    ] {
        let f = finding(&report, workload);
        assert_eq!(
            (&f["verdict"], &f["reason"], &f["cause"]),
            (
                &json!("fail"),
                &json!("AdmissionDenied"),
                &json!("signature-invalid")
            ),
            "{f:#}"
        );
        let message = f["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("the admission webhook would refuse the pod: ")
                && message.contains(&format!("{image:?}"))
                && message.contains("not signed by any trusted key")
                && message.contains("keys tried: publicKey[0]")
                && message.contains(expected),
            "{message}"
        );
        let fix = f["fix"].as_str().unwrap_or_default();
        assert!(
            fix.contains(&format!("minato sign {image} --key"))
                && fix.contains("reference a signed digest"),
            "{fix}"
        );
        assert!(
            f["signature"]
                .as_str()
                .unwrap_or_default()
                .starts_with("denied: "),
            "{f:#}"
        );
        // The pull itself still succeeds: the registry answer is kept.
        assert!(
            f["registry_answer"]
                .as_str()
                .unwrap_or_default()
                .starts_with("manifest sha256:"),
            "{f:#}"
        );
    }
    let f = finding(&report, "Pod/exempt");
    assert_eq!(f["verdict"], "ok", "{f:#}");
    assert_eq!(
        f["signature"], "admitted: namespace \"kube-system\" is exempt",
        "{f:#}"
    );
    let f = finding(&report, "Pod/glass");
    assert_eq!(f["verdict"], "ok", "{f:#}");
    assert!(
        f["signature"]
            .as_str()
            .unwrap_or_default()
            .contains("bypassed by annotation oracle.image-policy.k8s.io/break-glass=true"),
        "{f:#}"
    );

    // The table names the cause and the webhook's refusal.
    let mut command = Command::new(env!("CARGO_BIN_EXE_minato"));
    command
        .args(["doctor", "--policy", policy_arg, "-f"])
        .arg(&manifests);
    let table = finish(&mut command, b"");
    assert!(!table.status.success());
    assert!(
        table.stdout.contains("signature-invalid")
            && table.stdout.contains("reason:      AdmissionDenied")
            && table.stdout.contains("signature:   denied: "),
        "{}",
        table.stdout
    );
    drop(server);
}
