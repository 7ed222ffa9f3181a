//! `minato credential-provider` as the kubelet runs it: a `CredentialProviderRequest` on stdin,
//! a `CredentialProviderResponse` with `BEARER_TOKEN` credentials on stdout, obtained with a
//! read-only node identity, and usable for every repository of the tenancy the node may read.

#[path = "support/clients.rs"]
mod clients;
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use clients::{Layout, json, run};
use common::Server;

const NAMESPACE: &str = "acme";

struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    admin: (String, String),
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start_authenticated(&data, &["--bootstrap-namespace", NAMESPACE]);
        let bootstrap = json(&std::fs::read_to_string(data.join("bootstrap.json")).unwrap());
        let admin = (
            bootstrap["username"].as_str().unwrap().to_owned(),
            bootstrap["password"].as_str().unwrap().to_owned(),
        );
        Fixture { server, dir, admin }
    }

    fn admin(&self, args: &[&str]) -> String {
        run(Command::new(env!("CARGO_BIN_EXE_minato"))
            .args([
                "admin",
                "--server",
                &self.server.url(),
                "--username",
                &self.admin.0,
            ])
            .args(args)
            .env("MINATO_PASSWORD", &self.admin.1))
        .trim_end()
        .to_owned()
    }

    /// A node identity allowed to read `project01/*` only; returns its credentials file.
    fn node_credentials(&self) -> std::path::PathBuf {
        self.admin(&["user", "create", NAMESPACE, "node-puller"]);
        self.admin(&["group", "create", NAMESPACE, "Nodes"]);
        self.admin(&["group", "add-user", NAMESPACE, "Nodes", "node-puller"]);
        self.admin(&[
            "policy",
            "add",
            NAMESPACE,
            "allow group Nodes to read repos in tenancy where target.repo.name =~ 'project01/*'",
        ]);
        let token = self.admin(&["token", "create", NAMESPACE, "node-puller"]);
        let path = self.dir.path().join("node.json");
        let credentials =
            serde_json::json!({"username": format!("{NAMESPACE}/node-puller"), "password": token});
        std::fs::write(&path, credentials.to_string()).unwrap();
        path
    }

    fn push(&self, repository: &str) {
        let layout = Layout::build(
            self.dir.path().join(repository.replace('/', "-")),
            &["linux/amd64"],
            4096,
        );
        let creds = format!("{}:{}", self.admin.0, self.admin.1);
        let destination = format!("docker://{}/{NAMESPACE}/{repository}:v1", self.server.addr);
        run(clients::client("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &layout.oci_reference("latest"),
            &destination,
        ]));
    }
}

fn provider(args: &[&str], request: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minato"))
        .arg("credential-provider")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn request(image: &str) -> String {
    serde_json::json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": image,
    })
    .to_string()
}

fn inspect_with_bearer(fixture: &Fixture, token: &str, repository: &str) -> std::process::Output {
    clients::client("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds"])
        .arg(format!("BEARER_TOKEN:{token}"))
        .arg(format!(
            "docker://{}/{NAMESPACE}/{repository}:v1",
            fixture.server.addr
        ))
        .output()
        .unwrap()
}

#[test]
fn answers_with_a_registry_wide_bearer_token_for_what_the_node_may_read() {
    let fixture = Fixture::start();
    let credentials = fixture.node_credentials();
    fixture.push("project01/web");
    fixture.push("project01/api");
    fixture.push("private/db");

    let image = format!("{}/{NAMESPACE}/project01/web:v1", fixture.server.addr);
    let output = provider(
        &["--credentials-file", credentials.to_str().unwrap()],
        &request(&image),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = json(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(
        response["apiVersion"],
        "credentialprovider.kubelet.k8s.io/v1"
    );
    assert_eq!(response["kind"], "CredentialProviderResponse");
    assert_eq!(response["cacheKeyType"], "Registry");
    assert_eq!(response["cacheDuration"], "4m0s");
    let auth = &response["auth"][fixture.server.addr.as_str()];
    assert_eq!(auth["username"], "BEARER_TOKEN");
    let token = auth["password"].as_str().unwrap();

    for readable in ["project01/web", "project01/api"] {
        let inspected = inspect_with_bearer(&fixture, token, readable);
        assert!(
            inspected.status.success(),
            "{readable}: {}",
            String::from_utf8_lossy(&inspected.stderr)
        );
    }
    let refused = inspect_with_bearer(&fixture, token, "private/db");
    assert!(
        !refused.status.success(),
        "the node may not read private/db"
    );
}

#[test]
fn failures_go_to_stderr_with_a_non_zero_exit() {
    let fixture = Fixture::start();
    let wrong = fixture.dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        r#"{"username":"acme/node-puller","password":"nope"}"#,
    )
    .unwrap();
    let image = format!("{}/{NAMESPACE}/project01/web:v1", fixture.server.addr);
    let refused = provider(
        &["--credentials-file", wrong.to_str().unwrap()],
        &request(&image),
    );
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused the node credential"));

    let malformed = provider(
        &["--credentials-file", wrong.to_str().unwrap()],
        "{not json",
    );
    assert!(!malformed.status.success());
    assert!(
        String::from_utf8_lossy(&malformed.stderr).contains("invalid CredentialProviderRequest")
    );
}

#[test]
fn config_prints_a_kubelet_credential_provider_config() {
    let output = Command::new(env!("CARGO_BIN_EXE_minato"))
        .args([
            "credential-provider",
            "--credentials-file",
            "/etc/minato/node.json",
            "config",
            "--registry",
            "registry.example:5000",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: minato\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n  matchImages:\n  - \"registry.example:5000\"\n  defaultCacheDuration: 4m0s\n  args:\n  - credential-provider\n  - --credentials-file\n  - /etc/minato/node.json\n"
    );
}
