//! End-to-end diagnoses with the real `minato doctor -o json`: one scenario per cause code,
//! each built from manifests (Pods, Deployments, a CronJob, a `List` as `kubectl get -o yaml`
//! prints it, Secrets made by `minato create secret docker-registry`, ServiceAccounts, Nodes),
//! against a live `minato serve` with tenancy authentication (users, groups, policies and
//! tokens made with `minato admin`) and against the reference registry (Distribution with
//! htpasswd authentication). Every scenario checks the verdict, the kubelet reason and the cause
//! code, and that no password appears anywhere in the output.
//!
//! The reference registry, asked for a manifest of a repository it does not have, answers 404
//! `MANIFEST_UNKNOWN` ("manifest unknown", detail `{"Tag":"v1"}`) — by tag and by digest alike —
//! and only its tag list says `NAME_UNKNOWN` ("repository name not known to registry"); minato
//! answers `NAME_UNKNOWN` for the manifest itself.
//!
//! Every command runs with a timeout and every wait is bounded; all traffic stays on loopback.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/tenancy.rs"]
mod tenancy;

use clients::{Finished, Layout, client, finish, json, run};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tenancy::{NAMESPACE, Registry};

/// Layer content size of the test images.
const LAYER_SIZE: usize = 16 * 1024;
/// Longest the reference registry may take to answer its first request.
const REFERENCE_START: Duration = Duration::from_secs(30);
/// A sha256 digest no registry holds.
const ABSENT_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

// ---------------------------------------------------------------------------------------------
// Running the doctor
// ---------------------------------------------------------------------------------------------

/// What one `minato doctor` run printed.
struct Diagnosis {
    finished: Finished,
    /// The parsed JSON document.
    report: Value,
}

impl Diagnosis {
    /// The finding of `container` of `workload` (`Kind/name`).
    fn find(&self, workload: &str, container: &str) -> &Value {
        self.report["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["workload"] == workload && c["container"] == container)
            .unwrap_or_else(|| panic!("no {workload} {container} in\n{}", self.finished.stdout))
    }

    /// Asserts verdict, kubelet reason and cause of one container; returns its finding.
    fn expect(
        &self,
        workload: &str,
        container: &str,
        verdict: &str,
        reason: &str,
        cause: &str,
    ) -> &Value {
        let finding = self.find(workload, container);
        let seen = (
            finding["verdict"].as_str().unwrap_or_default(),
            finding["reason"].as_str().unwrap_or_default(),
            finding["cause"].as_str().unwrap_or_default(),
        );
        assert_eq!(
            seen,
            (verdict, reason, cause),
            "{workload} {container}:\n{finding:#}"
        );
        finding
    }

    /// Asserts that none of `secrets` is in the standard output or error.
    fn assert_hides(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.finished.stdout.contains(secret) && !self.finished.stderr.contains(secret),
                "a password was printed:\n{}\n{}",
                self.finished.stdout,
                self.finished.stderr
            );
        }
    }

    /// Whether the exit status is the one for "some container fails".
    fn failed(&self) -> bool {
        !self.finished.status.success()
    }
}

/// A scratch directory for one scenario's manifests.
struct Scenario {
    dir: TempDir,
}

impl Scenario {
    fn new() -> Scenario {
        Scenario {
            dir: TempDir::new().expect("scenario directory"),
        }
    }

    /// Writes `documents` as one multi-document YAML file; returns its path.
    fn write(&self, name: &str, documents: &[String]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, documents.join("---\n")).expect("writing manifests");
        path
    }

    /// `minato doctor -o json -f FILE ARGS...` on `documents`.
    fn doctor(&self, documents: &[String], args: &[&str]) -> Diagnosis {
        let path = self.write("manifests.yaml", documents);
        doctor(&[&path], args)
    }
}

/// `minato doctor -o json -f FILE... ARGS...`, within the command timeout.
fn doctor(files: &[&Path], args: &[&str]) -> Diagnosis {
    let mut command = Command::new(env!("CARGO_BIN_EXE_minato"));
    command.args(["doctor", "-o", "json"]);
    for file in files {
        command.arg("-f").arg(file);
    }
    command.args(args);
    let finished = finish(&mut command, b"");
    let report: Value = serde_json::from_str(&finished.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}; {})\nstdout:\n{}\nstderr:\n{}",
            finished.status, finished.stdout, finished.stderr
        )
    });
    let failed = report["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .any(|c| c["verdict"] == "fail");
    assert_eq!(
        !finished.status.success(),
        failed,
        "exit status {} does not match the verdicts",
        finished.status
    );
    Diagnosis { finished, report }
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// A pull secret as `minato create secret docker-registry` prints it.
fn pull_secret(
    name: &str,
    namespace: &str,
    server: &str,
    username: &str,
    password: &str,
) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(["create", "secret", "docker-registry", name])
        .args(["--namespace", namespace])
        .args(["--docker-server", server])
        .args(["--docker-username", username])
        .args(["--docker-password", password]))
}

/// Standard base64 with padding (what a Secret's `data` holds).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Secret of `type_` with one data key.
fn raw_secret(name: &str, namespace: &str, type_: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: {type_}\ndata:\n  {key}: {}\n",
        base64(value.as_bytes())
    )
}

/// `imagePullSecrets` lines at `indent`, or nothing.
fn secret_refs(secrets: &[&str], indent: &str) -> String {
    if secrets.is_empty() {
        return String::new();
    }
    let mut text = format!("{indent}imagePullSecrets:\n");
    for secret in secrets {
        let _ = writeln!(text, "{indent}- name: {secret}");
    }
    text
}

/// A pod spec's body at `indent`: one container, optional policy and secrets, extra lines.
fn pod_spec(
    indent: &str,
    container: &str,
    image: &str,
    policy: Option<&str>,
    secrets: &[&str],
    extra: &str,
) -> String {
    let mut text =
        format!("{indent}containers:\n{indent}- name: {container}\n{indent}  image: {image}\n");
    if let Some(policy) = policy {
        let _ = writeln!(text, "{indent}  imagePullPolicy: {policy}");
    }
    text.push_str(&secret_refs(secrets, indent));
    for line in extra.lines() {
        let _ = writeln!(text, "{indent}{line}");
    }
    text
}

/// A Pod manifest.
fn pod(name: &str, namespace: &str, image: &str, secrets: &[&str]) -> String {
    pod_with(name, namespace, image, None, secrets, "")
}

/// A Pod manifest with a pull policy and extra pod spec lines.
fn pod_with(
    name: &str,
    namespace: &str,
    image: &str,
    policy: Option<&str>,
    secrets: &[&str],
    extra: &str,
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{}",
        pod_spec("  ", "app", image, policy, secrets, extra)
    )
}

/// A Deployment manifest with extra pod spec lines.
fn deployment(name: &str, namespace: &str, image: &str, secrets: &[&str], extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n{}",
        pod_spec("      ", "app", image, None, secrets, extra)
    )
}

/// A CronJob manifest.
fn cronjob(name: &str, namespace: &str, image: &str, secrets: &[&str]) -> String {
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n{}",
        pod_spec("          ", "app", image, None, secrets, "")
    )
}

/// A ServiceAccount with pull secrets.
fn service_account(name: &str, namespace: &str, secrets: &[&str]) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{}",
        secret_refs(secrets, "")
    )
}

/// A Node as `kubectl get node -o yaml` shows it: labels, `nodeInfo` and `images`.
fn node(name: &str, arch: &str, images: &[&[&str]]) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  uid: 6a1c2b4e-{name}\n  labels:\n    kubernetes.io/arch: {arch}\n    kubernetes.io/os: linux\n    kubernetes.io/hostname: {name}\nstatus:\n  nodeInfo:\n    architecture: {arch}\n    operatingSystem: linux\n    containerRuntimeVersion: containerd://1.7.20\n    kubeletVersion: v1.32.4\n  images:\n"
    );
    for names in images {
        text.push_str("  - names:\n");
        for name in *names {
            let _ = writeln!(text, "    - {name}");
        }
        text.push_str("    sizeBytes: 1048576\n");
    }
    if images.is_empty() {
        text.push_str("  - names:\n    - registry.k8s.io/pause:3.10\n    sizeBytes: 320368\n");
    }
    text
}

/// Documents as the items of one `List`, as `kubectl get a,b,c -o yaml` prints them.
fn list(documents: &[String]) -> String {
    let mut text =
        String::from("apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:\n");
    for document in documents {
        for (i, line) in document.lines().enumerate() {
            let prefix = if i == 0 { "- " } else { "  " };
            let _ = writeln!(text, "{prefix}{line}");
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// minato with tenancy authentication, shared by the tests that run at the same time
// ---------------------------------------------------------------------------------------------

/// The live minato: `acme/app:v1` (linux/amd64 only) and `acme/multi:v1` (amd64 + arm64),
/// user `reader` of group `Pullers` (read repos), `outsider` (no group, no policy) and
/// `leaver` (in `Pullers`, token revoked), each with an auth token.
struct Minato {
    registry: Registry,
    reader: String,
    outsider: String,
    revoked: String,
    /// Digest of `acme/app:v1`.
    app_digest: String,
}

impl Minato {
    fn start() -> Minato {
        let registry = Registry::start();
        let app = registry.push_image("app:v1");
        let multi = Layout::build(
            registry.scratch("multi"),
            &["linux/amd64", "linux/arm64"],
            LAYER_SIZE,
        );
        run(client("skopeo")
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .args(["--dest-creds", &registry.admin.pair()])
            .arg(multi.oci_reference("latest"))
            .arg(registry.docker("multi:v1")));
        let reader = registry.user_with_token("Pullers", "read", "reader");
        let outsider = token_for(&registry, "outsider", None).0;
        let (revoked, id) = token_for(&registry, "leaver", Some("Pullers"));
        let said = registry.admin(&["token", "revoke", NAMESPACE, "leaver", &id]);
        assert_eq!(said, "revoked");
        Minato {
            app_digest: app.top_digest(),
            registry,
            reader: reader.login.token,
            outsider,
            revoked,
        }
    }

    /// `host:port/acme/<repository_and_tag>`.
    fn image(&self, repository_and_tag: &str) -> String {
        self.registry.name(repository_and_tag)
    }

    fn host(&self) -> &str {
        self.registry.host()
    }

    /// A pull secret for this registry.
    fn secret(&self, name: &str, namespace: &str, username: &str, password: &str) -> String {
        pull_secret(name, namespace, self.host(), username, password)
    }

    /// A pull secret with `reader`'s working credentials.
    fn good_secret(&self, name: &str, namespace: &str) -> String {
        self.secret(
            name,
            namespace,
            &format!("{NAMESPACE}/reader"),
            &self.reader,
        )
    }

    /// Every password this fixture knows (none may be printed).
    fn passwords(&self) -> Vec<&str> {
        vec![
            self.reader.as_str(),
            self.outsider.as_str(),
            self.revoked.as_str(),
            self.registry.admin.token.as_str(),
        ]
    }
}

/// Creates user `user` (in `group`, when given) and an auth token for it: `(token, id)`.
fn token_for(registry: &Registry, user: &str, group: Option<&str>) -> (String, String) {
    registry.admin(&["user", "create", NAMESPACE, user]);
    if let Some(group) = group {
        registry.admin(&["group", "add-user", NAMESPACE, group, user]);
    }
    let created = json(&registry.admin(&["--output", "json", "token", "create", NAMESPACE, user]));
    let field = |key: &str| created[key].as_str().expect(key).to_owned();
    (field("token"), field("id"))
}

/// The minato fixture, started once for the tests running at the same time and stopped when
/// the last of them ends.
fn minato() -> Arc<Minato> {
    static SHARED: Mutex<Weak<Minato>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fixture) = shared.upgrade() {
        return fixture;
    }
    let fixture = Arc::new(Minato::start());
    *shared = Arc::downgrade(&fixture);
    fixture
}

// ---------------------------------------------------------------------------------------------
// Scenarios against minato
// ---------------------------------------------------------------------------------------------

#[test]
fn ok_for_deployments_cronjobs_service_accounts_and_a_kubectl_list() {
    let m = minato();
    let s = Scenario::new();
    let image = m.image("app:v1");
    let pinned = format!("{}@{}", m.image("app"), m.app_digest);
    let documents = vec![
        m.good_secret("regcred", "shop"),
        deployment("web", "shop", &image, &["regcred"], ""),
        service_account("puller", "shop", &["regcred"]),
        deployment(
            "by-account",
            "shop",
            &pinned,
            &[],
            "serviceAccountName: puller",
        ),
        cronjob("nightly", "shop", &image, &["regcred"]),
        // Multi-platform image, arm64 pods.
        deployment(
            "arm",
            "shop",
            &m.image("multi:v1"),
            &["regcred"],
            "nodeSelector:\n  kubernetes.io/arch: arm64",
        ),
    ];
    let d = s.doctor(&documents, &[]);
    for workload in [
        "Deployment/web",
        "Deployment/by-account",
        "CronJob/nightly",
        "Deployment/arm",
    ] {
        let finding = d.expect(workload, "app", "ok", "", "ok");
        assert!(
            finding["registry_answer"]
                .as_str()
                .unwrap()
                .starts_with("manifest sha256:"),
            "{finding:#}"
        );
        assert_eq!(
            finding["credential"].as_str().unwrap().split(' ').next(),
            Some("acme/reader")
        );
    }
    let by_account = d.find("Deployment/by-account", "app");
    assert_eq!(by_account["secrets_from_service_account"], true);
    assert_eq!(by_account["pull_policy"], "IfNotPresent");
    assert_eq!(
        d.find("Deployment/web", "app")["platforms"][0],
        "linux/amd64"
    );
    assert!(!d.failed());
    d.assert_hides(&m.passwords());

    // What `kubectl get pods,secrets,nodes -n shop -o yaml` prints: a List of live objects.
    let live_pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-7d9f8b6c5d-x2x4q\n  namespace: shop\n  uid: 0b1e0c1a-3d52-4c57-9b1e-5a3f2e1d6c7b\n  creationTimestamp: \"2026-11-25T10:00:00Z\"\nspec:\n  nodeName: node-a\n  serviceAccountName: default\n  containers:\n  - name: web\n    image: {image}\n    imagePullPolicy: IfNotPresent\n  imagePullSecrets:\n  - name: regcred\nstatus:\n  phase: Pending\n"
    );
    let listed = list(&[
        live_pod,
        m.good_secret("regcred", "shop"),
        node("node-a", "amd64", &[]),
    ]);
    let path = s.dir.path().join("kubectl-get.yaml");
    std::fs::write(&path, listed).unwrap();
    let d = doctor(&[&path], &[]);
    d.expect("Pod/web-7d9f8b6c5d-x2x4q", "web", "ok", "", "ok");
    d.assert_hides(&m.passwords());
}

#[test]
fn invalid_image_name() {
    let m = minato();
    let s = Scenario::new();
    let image = format!("{}/{NAMESPACE}/App:v1", m.host());
    let d = s.doctor(
        &[
            m.good_secret("regcred", "default"),
            pod("upper", "default", &image, &["regcred"]),
        ],
        &[],
    );
    let finding = d.expect(
        "Pod/upper",
        "app",
        "fail",
        "InvalidImageName",
        "invalid-image-name",
    );
    assert_eq!(
        finding["message"],
        format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format: repository name ({NAMESPACE}/App) must be lowercase"
        )
    );
    assert!(d.failed());
    d.assert_hides(&m.passwords());
}

#[test]
fn no_pull_secrets() {
    let m = minato();
    let s = Scenario::new();
    let d = s.doctor(&[pod("anonymous", "default", &m.image("app:v1"), &[])], &[]);
    let finding = d.expect(
        "Pod/anonymous",
        "app",
        "fail",
        "ErrImagePull",
        "no-pull-secrets",
    );
    assert_eq!(finding["credential"], "anonymous");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.ends_with("denied: Anonymous users are only allowed read access on public repos"),
        "{message}"
    );
}

#[test]
fn secret_not_found() {
    let m = minato();
    let s = Scenario::new();
    let image = m.image("app:v1");
    let documents = vec![
        // The secret exists, but in another namespace.
        m.good_secret("regcred", "default"),
        pod("elsewhere", "shop", &image, &["regcred"]),
        // A typo next to a working secret: the kubelet warns and pulls.
        m.good_secret("regcred", "store"),
        pod("typo", "store", &image, &["regcerd", "regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/elsewhere",
        "app",
        "fail",
        "ErrImagePull",
        "secret-not-found",
    );
    assert_eq!(finding["pull_secrets"][0]["status"], "missing");
    assert!(
        finding["fix"].as_str().unwrap().contains("\"shop\""),
        "{finding:#}"
    );
    let finding = d.expect(
        "Pod/typo",
        "app",
        "warn",
        "FailedToRetrieveImagePullSecret",
        "secret-not-found",
    );
    assert_eq!(
        finding["message"],
        "Unable to retrieve some image pull secrets (regcerd); attempting to pull the image may not succeed."
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn secret_wrong_type() {
    let m = minato();
    let s = Scenario::new();
    let config = format!(
        "{{\"auths\":{{\"{}\":{{\"username\":\"{NAMESPACE}/reader\",\"password\":\"{}\"}}}}}}",
        m.host(),
        m.reader
    );
    let documents = vec![
        // `kubectl create secret generic regcred --from-file=.dockerconfigjson=config.json`.
        raw_secret("regcred", "default", "Opaque", ".dockerconfigjson", &config),
        pod("generic", "default", &m.image("app:v1"), &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/generic",
        "app",
        "fail",
        "ErrImagePull",
        "secret-wrong-type",
    );
    assert!(
        finding["pull_secrets"][0]["status"]
            .as_str()
            .unwrap()
            .starts_with("ignored: type \"Opaque\""),
        "{finding:#}"
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn secret_malformed() {
    let m = minato();
    let s = Scenario::new();
    let truncated = format!(
        "{{\"auths\":{{\"{}\":{{\"username\":\"{NAMESPACE}/reader\",\"password\":\"{}\"",
        m.host(),
        m.reader
    );
    let documents = vec![
        raw_secret(
            "regcred",
            "default",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &truncated,
        ),
        pod("broken", "default", &m.image("app:v1"), &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.find("Pod/broken", "app");
    // The kubelet fails the pull with the JSON error itself as the waiting reason.
    let message = finding["message"].as_str().unwrap().to_owned();
    assert!(message.contains("EOF"), "{finding:#}");
    d.expect("Pod/broken", "app", "fail", &message, "secret-malformed");
    d.assert_hides(&m.passwords());
}

#[test]
fn server_mismatch() {
    let m = minato();
    let s = Scenario::new();
    let closed = format!("127.0.0.1:{}", common::free_port());
    let port = m.host().rsplit(':').next().unwrap().to_owned();
    let documents = vec![
        // Another port of the same host, and the same port under another host name.
        pull_secret(
            "other-port",
            "default",
            &closed,
            &format!("{NAMESPACE}/reader"),
            &m.reader,
        ),
        pod("other-port", "default", &m.image("app:v1"), &["other-port"]),
        pull_secret(
            "other-host",
            "default",
            &format!("localhost:{port}"),
            &format!("{NAMESPACE}/reader"),
            &m.reader,
        ),
        pod("other-host", "default", &m.image("app:v1"), &["other-host"]),
    ];
    let d = s.doctor(&documents, &[]);
    for name in ["Pod/other-port", "Pod/other-host"] {
        let finding = d.expect(name, "app", "fail", "ErrImagePull", "server-mismatch");
        assert_eq!(finding["credential"], "anonymous");
        assert_eq!(finding["auth_keys"][0]["matches"], false, "{finding:#}");
    }
    d.assert_hides(&m.passwords());
}

#[test]
fn username_missing_namespace() {
    let m = minato();
    let s = Scenario::new();
    let documents = vec![
        m.secret("regcred", "default", "reader", &m.reader),
        pod("no-namespace", "default", &m.image("app:v1"), &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/no-namespace",
        "app",
        "fail",
        "ErrImagePull",
        "username-missing-namespace",
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .contains("<tenancy-namespace>/reader")
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn password_whitespace() {
    let m = minato();
    let s = Scenario::new();
    let padded = format!("{} ", m.reader);
    let documents = vec![
        m.secret(
            "regcred",
            "default",
            &format!("{NAMESPACE}/reader"),
            &padded,
        ),
        pod("padded", "default", &m.image("app:v1"), &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/padded",
        "app",
        "fail",
        "ErrImagePull",
        "password-whitespace",
    );
    assert!(
        finding["credential"]
            .as_str()
            .unwrap()
            .ends_with("with whitespace at an end"),
        "{finding:#}"
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn unauthorized() {
    let m = minato();
    let s = Scenario::new();
    let mut wrong = m.reader.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'x' { 'y' } else { 'x' });
    let documents = vec![
        m.secret(
            "revoked",
            "default",
            &format!("{NAMESPACE}/leaver"),
            &m.revoked,
        ),
        pod("revoked", "default", &m.image("app:v1"), &["revoked"]),
        m.secret(
            "mistyped",
            "default",
            &format!("{NAMESPACE}/reader"),
            &wrong,
        ),
        pod("mistyped", "default", &m.image("app:v1"), &["mistyped"]),
    ];
    let d = s.doctor(&documents, &[]);
    for name in ["Pod/revoked", "Pod/mistyped"] {
        let finding = d.expect(name, "app", "fail", "ErrImagePull", "unauthorized");
        assert!(
            finding["registry_answer"]
                .as_str()
                .unwrap()
                .contains("/20180419/docker/token?"),
            "{finding:#}"
        );
    }
    let mut passwords = m.passwords();
    passwords.push(&wrong);
    d.assert_hides(&passwords);
}

#[test]
fn denied() {
    let m = minato();
    let s = Scenario::new();
    let documents = vec![
        m.secret(
            "regcred",
            "default",
            &format!("{NAMESPACE}/outsider"),
            &m.outsider,
        ),
        pod("outsider", "default", &m.image("app:v1"), &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect("Pod/outsider", "app", "fail", "ErrImagePull", "denied");
    assert!(
        finding["fix"].as_str().unwrap().contains("read repos"),
        "{finding:#}"
    );
    // minato answers 401 with the token it issued itself; the token's empty access claim
    // shows the credentials are fine and the policy is missing (§7.11).
    let answer = finding["registry_answer"].as_str().unwrap();
    assert!(
        answer.contains("unauthorized: the registry token does not grant this access")
            && answer.contains(&format!(
                "the token endpoint accepted {NAMESPACE}/outsider for repository:{NAMESPACE}/app:pull, but the token's access claim is []"
            )),
        "{finding:#}"
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn repository_not_found() {
    let m = minato();
    let s = Scenario::new();
    let documents = vec![
        m.good_secret("regcred", "default"),
        pod("typo", "default", &m.image("ap:v1"), &["regcred"]),
        pod(
            "pinned",
            "default",
            &format!("{}@{ABSENT_DIGEST}", m.image("ap")),
            &["regcred"],
        ),
    ];
    let d = s.doctor(&documents, &[]);
    for name in ["Pod/typo", "Pod/pinned"] {
        d.expect(name, "app", "fail", "ErrImagePull", "repository-not-found");
    }
    d.assert_hides(&m.passwords());
}

#[test]
fn manifest_unknown() {
    let m = minato();
    let s = Scenario::new();
    let documents = vec![
        m.good_secret("regcred", "default"),
        pod("tag", "default", &m.image("app:v2"), &["regcred"]),
        pod(
            "digest",
            "default",
            &format!("{}@{ABSENT_DIGEST}", m.image("app")),
            &["regcred"],
        ),
    ];
    let d = s.doctor(&documents, &[]);
    for name in ["Pod/tag", "Pod/digest"] {
        let finding = d.expect(name, "app", "fail", "ErrImagePull", "manifest-unknown");
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("manifest unknown"),
            "{finding:#}"
        );
    }
    d.assert_hides(&m.passwords());
}

#[test]
fn platform_missing() {
    let m = minato();
    let s = Scenario::new();
    let app = m.image("app:v1");
    let secret = m.good_secret("regcred", "default");
    let workload = deployment("web", "default", &app, &["regcred"], "");

    // Only arm64 nodes (Ampere A1): the amd64-only image cannot run anywhere.
    let d = s.doctor(
        &[secret.clone(), workload.clone(), node("a1", "arm64", &[])],
        &[],
    );
    let finding = d.expect(
        "Deployment/web",
        "app",
        "fail",
        "ErrImagePull",
        "platform-missing",
    );
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .starts_with("no match for platform in manifest: not found"),
        "{finding:#}"
    );
    // No Nodes in the input: --node-arch says what they are.
    let d = s.doctor(
        &[secret.clone(), workload.clone()],
        &["--node-arch", "arm64"],
    );
    d.expect(
        "Deployment/web",
        "app",
        "fail",
        "ErrImagePull",
        "platform-missing",
    );
    // A mixed pool: pods land on amd64 nodes or fail on arm64 ones.
    let d = s.doctor(
        &[
            secret.clone(),
            workload.clone(),
            node("a1", "arm64", &[]),
            node("x1", "amd64", &[]),
        ],
        &[],
    );
    d.expect("Deployment/web", "app", "warn", "", "platform-missing");
    // The multi-platform image serves both.
    let multi = deployment("multi", "default", &m.image("multi:v1"), &["regcred"], "");
    let d = s.doctor(
        &[
            secret,
            multi,
            node("a1", "arm64", &[]),
            node("x1", "amd64", &[]),
        ],
        &[],
    );
    let finding = d.expect("Deployment/multi", "app", "ok", "", "ok");
    assert_eq!(
        finding["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    d.assert_hides(&m.passwords());
}

#[test]
fn never_pull_absent() {
    let m = minato();
    let s = Scenario::new();
    let app = m.image("app:v1");
    let repository = m.image("app");
    let pinned = format!("{repository}@{}", m.app_digest);
    let listed: &[&str] = &[&app, &pinned];
    let never = |name: &str, image: &str| pod_with(name, "default", image, Some("Never"), &[], "");
    let documents = vec![
        never("present", &app),
        never("pinned", &pinned),
        never("absent", &m.image("app:v2")),
        // Bound to the node that lacks the image.
        pod_with(
            "bound",
            "default",
            &app,
            Some("Never"),
            &[],
            "nodeName: bare",
        ),
        node("n1", "amd64", &[listed]),
        node("n2", "amd64", &[listed]),
    ];
    let d = s.doctor(&documents, &[]);
    d.expect("Pod/present", "app", "ok", "", "ok");
    d.expect("Pod/pinned", "app", "ok", "", "ok");
    let finding = d.expect(
        "Pod/absent",
        "app",
        "fail",
        "ErrImageNeverPull",
        "never-pull-absent",
    );
    assert_eq!(
        finding["message"],
        format!(
            "Container image \"{}\" is not present with pull policy of Never",
            m.image("app:v2")
        )
    );
    // `bound` names a node that is not in the input: every node is a candidate.
    d.expect("Pod/bound", "app", "ok", "", "ok");

    // Some nodes have it, others not: pods fail where they land on the others.
    let documents = vec![
        never("partial", &app),
        pod_with(
            "bound",
            "default",
            &app,
            Some("Never"),
            &[],
            "nodeName: bare",
        ),
        node("n1", "amd64", &[listed]),
        node("bare", "amd64", &[]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/partial",
        "app",
        "warn",
        "ErrImageNeverPull",
        "never-pull-absent",
    );
    assert!(
        finding["message"].as_str().unwrap().contains("bare"),
        "{finding:#}"
    );
    d.expect(
        "Pod/bound",
        "app",
        "fail",
        "ErrImageNeverPull",
        "never-pull-absent",
    );

    // No Node objects: the image must be preloaded everywhere; nothing can be checked.
    let d = s.doctor(&[never("unknown", &app)], &[]);
    let finding = d.expect("Pod/unknown", "app", "warn", "", "never-pull-absent");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("preloaded on every node"),
        "{finding:#}"
    );
    // The registry is never asked, even when it could not answer.
    let closed = format!("127.0.0.1:{}/acme/app:v1", common::free_port());
    let d = s.doctor(
        &[
            never("offline", &closed),
            node("n1", "amd64", &[&[&closed]]),
        ],
        &[],
    );
    let finding = d.expect("Pod/offline", "app", "ok", "", "ok");
    assert!(
        finding["registry_answer"]
            .as_str()
            .unwrap()
            .starts_with("not contacted"),
        "{finding:#}"
    );
}

#[test]
fn registry_unreachable() {
    let s = Scenario::new();
    let closed = format!("127.0.0.1:{}", common::free_port());
    let image = format!("{closed}/acme/app:v1");
    let documents = vec![
        pull_secret("regcred", "default", &closed, "acme/reader", "s3cr3t-t0ken"),
        pod("offline", "default", &image, &["regcred"]),
    ];
    let d = s.doctor(&documents, &[]);
    let finding = d.expect(
        "Pod/offline",
        "app",
        "fail",
        "ErrImagePull",
        "registry-unreachable",
    );
    assert!(
        finding["message"].as_str().unwrap().contains(&closed),
        "{finding:#}"
    );
    d.assert_hides(&["s3cr3t-t0ken"]);
}

// ---------------------------------------------------------------------------------------------
// The reference registry (Distribution) with htpasswd authentication
// ---------------------------------------------------------------------------------------------

/// `docker-registry serve` on a free loopback port with filesystem storage and htpasswd
/// users `ci` and `team/ci`; killed when dropped.
struct Reference {
    child: Child,
    dir: TempDir,
    addr: String,
}

/// `team/ci`'s password: special characters and a space, as real tokens have.
const TEAM_PASSWORD: &str = "p@ss w0rd;)$x";
/// `ci`'s password.
const CI_PASSWORD: &str = "Secr3t-ci!";

impl Reference {
    fn start() -> Reference {
        let dir = TempDir::new().expect("reference directory");
        let mut htpasswd = String::new();
        for (user, password) in [("ci", CI_PASSWORD), ("team/ci", TEAM_PASSWORD)] {
            htpasswd.push_str(&run(client("htpasswd").args(["-Bbn", user, password])));
        }
        std::fs::write(dir.path().join("htpasswd"), htpasswd).expect("htpasswd file");
        let addr = format!("127.0.0.1:{}", common::free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = client("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let mut reference = Reference { child, dir, addr };
        reference.wait_ready();
        reference
    }

    /// Waits until `/v2/` answers (401: authentication is on).
    fn wait_ready(&mut self) {
        use std::io::{Read, Write};
        let started = Instant::now();
        while started.elapsed() < REFERENCE_START {
            if let Some(status) = self.child.try_wait().expect("polling docker-registry") {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(&self.addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1 401")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on {} within {REFERENCE_START:?}",
            self.addr
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes a single-platform image as `repository_and_tag` with `ci`'s credentials.
    fn push(&self, repository_and_tag: &str) -> Layout {
        let image = Layout::build(self.dir.path().join("source"), &["linux/amd64"], LAYER_SIZE);
        run(client("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .args(["--dest-creds", &format!("ci:{CI_PASSWORD}")])
            .arg(image.oci_reference("latest"))
            .arg(format!("docker://{}/{repository_and_tag}", self.addr)));
        image
    }

    fn image(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.addr)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- docker-registry log ----\n{}", self.log());
        }
    }
}

#[test]
fn the_reference_registry_with_htpasswd() {
    let reference = Reference::start();
    reference.push("team/app:v1");
    let s = Scenario::new();
    let image = reference.image("team/app:v1");
    let closed = format!("127.0.0.1:{}", common::free_port());
    let documents = vec![
        pull_secret("ci", "default", &reference.addr, "ci", CI_PASSWORD),
        pull_secret("team", "default", &reference.addr, "team/ci", TEAM_PASSWORD),
        pull_secret("wrong", "default", &reference.addr, "ci", "Secr3t-c1!"),
        pull_secret(
            "wrong-team",
            "default",
            &reference.addr,
            "team/ci",
            "p@ss w0rd;)$y",
        ),
        pull_secret("elsewhere", "default", &closed, "ci", CI_PASSWORD),
        pod("ok", "default", &image, &["ci"]),
        pod("team", "default", &image, &["team"]),
        pod("wrong", "default", &image, &["wrong"]),
        pod("wrong-team", "default", &image, &["wrong-team"]),
        pod("anonymous", "default", &image, &[]),
        pod("mismatch", "default", &image, &["elsewhere"]),
        pod("tag", "default", &reference.image("team/app:v2"), &["ci"]),
        pod(
            "repository",
            "default",
            &reference.image("team/nope:v1"),
            &["ci"],
        ),
        pod(
            "repository-digest",
            "default",
            &format!("{}@{ABSENT_DIGEST}", reference.image("team/nope")),
            &["ci"],
        ),
    ];
    let d = s.doctor(&documents, &[]);
    for name in ["Pod/ok", "Pod/team"] {
        d.expect(name, "app", "ok", "", "ok");
    }
    // A plain username is normal for a registry without tenancies: the password is wrong.
    for name in ["Pod/wrong", "Pod/wrong-team"] {
        let finding = d.expect(name, "app", "fail", "ErrImagePull", "unauthorized");
        assert!(
            finding["registry_answer"]
                .as_str()
                .unwrap()
                .ends_with("unauthorized: authentication required"),
            "{finding:#}"
        );
    }
    d.expect(
        "Pod/anonymous",
        "app",
        "fail",
        "ErrImagePull",
        "no-pull-secrets",
    );
    d.expect(
        "Pod/mismatch",
        "app",
        "fail",
        "ErrImagePull",
        "server-mismatch",
    );
    d.expect("Pod/tag", "app", "fail", "ErrImagePull", "manifest-unknown");
    // The reference answers MANIFEST_UNKNOWN for a repository it does not have; its tag list
    // says NAME_UNKNOWN, which the doctor asks to tell the two apart.
    for name in ["Pod/repository", "Pod/repository-digest"] {
        let finding = d.expect(name, "app", "fail", "ErrImagePull", "repository-not-found");
        assert!(
            finding["registry_answer"]
                .as_str()
                .unwrap()
                .contains("manifest unknown: manifest unknown"),
            "{finding:#}"
        );
    }
    d.assert_hides(&[CI_PASSWORD, TEAM_PASSWORD, "Secr3t-c1!", "p@ss w0rd;)$y"]);
}
