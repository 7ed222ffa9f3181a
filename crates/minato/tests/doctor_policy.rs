//! `minato doctor --policy`: images pushed into a real `minato serve --no-auth`, signed with
//! minato-sign directly (a vault in a temp dir, the signature artifact pushed with plain HTTP
//! calls), then judged by the doctor with the same ImageVerificationPolicy the admission
//! webhook takes: a signed image is ok, an unsigned (or wrongly signed) one fails with cause
//! `signature-invalid`, except in an exempt namespace or with the break-glass annotation, and
//! without `--policy` signatures are not checked.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/push.rs"]
mod push;

use std::path::Path;
use std::process::Command;

use clients::{Finished, finish};
use common::Server;
use minato_sign::artifact::Descriptor;
use minato_sign::{KeyAlgorithm, Payload, RootKey, SigningAlgorithm, Vault};
use push::Pusher;
use serde_json::{Value, json};

/// Signs `subject` (in `repo`) with `key` of `vault` and pushes the signature referrer.
fn sign(
    pusher: &Pusher,
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
    pusher.referrer(repo, subject, &payload, &signature);
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
    let signed = pusher.image("acme/signed", "1.0", "acme/signed");
    sign(&pusher, &rt, &vault, "release", "acme/signed", &signed);
    pusher.image("acme/unsigned", "1.0", "acme/unsigned");
    let rogue = pusher.image("acme/rogue", "1.0", "acme/rogue");
    sign(&pusher, &rt, &vault, "rogue", "acme/rogue", &rogue);

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
