//! End to end: the pull secret `minato create secret docker-registry` prints carries working
//! credentials, and `--verify` catches the ones that would not work.
//!
//! Against a running `minato serve` with tenancy authentication (all on 127.0.0.1), a reader's
//! auth token is fed to the command on standard input; the `.dockerconfigjson` decoded from the
//! YAML it prints is then the only credential skopeo, podman and containerd's `ctr` get, and
//! they pull — until the token is revoked with `minato admin`, when all three are refused.
//! Decoding uses the coreutils `base64`, not minato's code. Every command is bounded by a
//! timeout; a failing test prints the server log.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/tenancy.rs"]
mod tenancy;

use clients::{Containerd, Finished, Layout, Podman, client, finish, json, run, run_failing};
use std::path::Path;
use std::process::Command;
use tenancy::{Login, Registry};

/// What clients print when the registry refuses credentials (skopeo and podman; ctr).
const REFUSED: &[&str] = &["invalid username/password", "401 Unauthorized"];
/// The repository and tag of the test image.
const IMAGE: &str = "app:v1";

/// `minato create secret docker-registry regcred --docker-server HOST --docker-username USER
/// --password-stdin EXTRA...` with `password` on standard input.
fn create_secret(server: &str, username: &str, password: &str, extra: &[&str]) -> Finished {
    finish(
        Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["create", "secret", "docker-registry", "regcred"])
            .args(["--docker-server", server, "--docker-username", username])
            .arg("--password-stdin")
            .args(extra),
        format!("{password}\n").as_bytes(),
    )
}

/// Standard base64 decoding by coreutils.
fn base64_decode(text: &str) -> Vec<u8> {
    let done = finish(client("base64").arg("--decode"), text.as_bytes());
    assert!(done.status.success(), "base64 --decode: {}", done.stderr);
    done.stdout.into_bytes()
}

/// The decoded `.dockerconfigjson` of a secret printed as YAML.
fn docker_config_json(secret_yaml: &str) -> String {
    let encoded = secret_yaml
        .lines()
        .find_map(|line| line.strip_prefix("  .dockerconfigjson: "))
        .unwrap_or_else(|| panic!("no .dockerconfigjson in:\n{secret_yaml}"));
    String::from_utf8(base64_decode(encoded)).expect("UTF-8 docker config")
}

/// The login stored for `host` in a docker config file (its `auth` field, decoded).
fn stored_login(config: &str, host: &str) -> Login {
    let auth = json(config)["auths"][host]["auth"]
        .as_str()
        .unwrap_or_else(|| panic!("no auths[{host}].auth in {config}"))
        .to_owned();
    let decoded = String::from_utf8(base64_decode(&auth)).expect("UTF-8 auth");
    let (username, token) = decoded.split_once(':').expect("USER:PASSWORD");
    Login {
        username: username.to_owned(),
        token: token.to_owned(),
    }
}

/// Asserts that a client's error output mentions one of `needles`.
fn assert_mentions(stderr: &str, needles: &[&str], what: &str) {
    assert!(
        needles.iter().any(|n| stderr.contains(n)),
        "{what}: expected the error to mention one of {needles:?}:\n{stderr}"
    );
}

/// The three pulls, each with only the credentials of the secret.
struct Pulls<'a> {
    registry: &'a Registry,
    authfile: &'a Path,
    login: &'a Login,
    containerd: Containerd,
}

impl Pulls<'_> {
    /// `skopeo copy --authfile` of the image into a new OCI layout `into`.
    fn skopeo(&self, into: &str) -> Command {
        let layout = Layout {
            dir: self.registry.scratch(into),
        };
        let mut command = client("skopeo");
        command
            .args(["copy", "--src-tls-verify=false", "--authfile"])
            .arg(self.authfile)
            .arg(self.registry.docker(IMAGE))
            .arg(layout.oci_reference("pulled"));
        command
    }

    /// `podman pull --authfile` of the image into fresh storage.
    fn podman(&self, podman: &Podman) -> Command {
        let mut command = podman.command();
        command
            .args(["pull", "--tls-verify=false", "--authfile"])
            .arg(self.authfile)
            .arg(self.registry.name(IMAGE));
        command
    }

    /// `ctr images pull --plain-http --user U:P` with the login read from the secret.
    fn ctr(&self) -> Command {
        let mut command = self.containerd.command();
        command
            .args(["images", "pull", "--plain-http", "--snapshotter", "native"])
            .args(["--user", &self.login.pair(), &self.registry.name(IMAGE)]);
        command
    }
}

#[test]
fn the_secret_is_the_only_credential_skopeo_podman_and_containerd_need_until_revoked() {
    let registry = Registry::start();
    let image = registry.push_image(IMAGE);
    let reader = registry.user_with_token("Pullers", "read", "reader");

    let created = create_secret(
        registry.host(),
        &reader.login.username,
        &reader.login.token,
        &[],
    );
    assert!(created.status.success(), "{}", created.stderr);
    assert_eq!(created.stderr, "", "no warnings for good credentials");
    let config = docker_config_json(&created.stdout);
    let authfile = registry.scratch("dockerconfig.json");
    std::fs::write(&authfile, &config).expect("writing the auth file");
    let login = stored_login(&config, registry.host());
    assert_eq!(login.username, reader.login.username);
    assert_eq!(
        login.token, reader.login.token,
        "token read from stdin intact"
    );

    let pulls = Pulls {
        registry: &registry,
        authfile: &authfile,
        login: &login,
        containerd: Containerd::start(),
    };
    run(&mut pulls.skopeo("pulled"));
    let pulled = Layout {
        dir: registry.scratch("pulled"),
    };
    assert_eq!(pulled.top_digest(), image.top_digest(), "pulled manifest");
    let podman = Podman::new();
    run(&mut pulls.podman(&podman));
    let (config_digest, _) = image.image_parts(&image.top_digest());
    let id = podman.inspect(&registry.name(IMAGE))["Id"]
        .as_str()
        .map(str::to_owned);
    assert_eq!(id.map(|id| format!("sha256:{id}")), Some(config_digest));
    run(&mut pulls.ctr());
    let listed = pulls.containerd.ctr(&["images", "ls"]);
    assert!(listed.contains(&image.top_digest()), "{listed}");

    registry.revoke(&reader);
    let stderr = run_failing(&mut pulls.skopeo("after-revoke"));
    assert_mentions(&stderr, REFUSED, "skopeo pull with a revoked token");
    let stderr = run_failing(&mut pulls.podman(&Podman::new()));
    assert_mentions(&stderr, REFUSED, "podman pull with a revoked token");
    let stderr = run_failing(&mut pulls.ctr());
    assert_mentions(&stderr, REFUSED, "ctr pull with a revoked token");
}

/// Asserts that `--verify` failed with exit code 1, printed no secret, and said `needle`.
fn assert_verify_fails(done: &Finished, needle: &str, what: &str) {
    assert_eq!(done.status.code(), Some(1), "{what}: {}", done.stderr);
    assert_eq!(done.stdout, "", "{what}: no secret on stdout");
    assert!(
        done.stderr.contains("error: ") && done.stderr.contains(needle),
        "{what}: expected an error mentioning {needle:?}:\n{}",
        done.stderr
    );
}

#[test]
fn verify_passes_good_credentials_and_refuses_bad_ones_with_the_reason() {
    let registry = Registry::start();
    let reader = registry.user_with_token("Pullers", "read", "reader");
    let verify = ["--verify"];
    let host = registry.host();

    let good = create_secret(host, &reader.login.username, &reader.login.token, &verify);
    assert!(good.status.success(), "{}", good.stderr);
    assert!(
        good.stdout.starts_with("apiVersion: v1\n"),
        "{}",
        good.stdout
    );
    assert_eq!(good.stderr, "");
    let stored = stored_login(&docker_config_json(&good.stdout), host);
    assert_eq!(stored.token, reader.login.token);

    let mut wrong = reader.login.token.clone();
    wrong.push('x');
    let done = create_secret(host, &reader.login.username, &wrong, &verify);
    assert_verify_fails(&done, "refused the credentials", "a wrong token");

    let done = create_secret(host, "reader", &reader.login.token, &verify);
    assert_verify_fails(
        &done,
        "<tenancy-namespace>/<username>",
        "a username without the namespace",
    );

    let padded = format!(" {} ", reader.login.token);
    let done = create_secret(host, &reader.login.username, &padded, &verify);
    assert_verify_fails(&done, "refused the credentials", "a padded token");
    assert!(
        done.stderr.contains("warning: the password has whitespace"),
        "the refusal comes with the reason:\n{}",
        done.stderr
    );

    let closed = format!("127.0.0.1:{}", common::free_port());
    let done = create_secret(
        &closed,
        &reader.login.username,
        &reader.login.token,
        &verify,
    );
    assert_verify_fails(&done, "cannot reach registry", "an unreachable registry");
}

#[test]
fn warnings_go_to_stderr_and_never_into_the_secret() {
    let padded = create_secret("registry.example:5000", "acme/reader", " token ", &[]);
    assert!(padded.status.success(), "{}", padded.stderr);
    assert!(
        padded
            .stderr
            .starts_with("warning: the password has whitespace at its start or end (7 characters"),
        "{}",
        padded.stderr
    );
    assert!(!padded.stdout.contains("warning"), "{}", padded.stdout);
    let stored = stored_login(&docker_config_json(&padded.stdout), "registry.example:5000");
    assert_eq!(stored.token, " token ", "the password is stored as given");

    let nameless = create_secret("phx.ocir.io", "jdoe@acme.com", "token", &["-o", "json"]);
    assert!(nameless.status.success(), "{}", nameless.stderr);
    assert!(
        nameless.stderr.starts_with("warning: ")
            && nameless
                .stderr
                .contains("expects <tenancy-namespace>/<username>"),
        "{}",
        nameless.stderr
    );
    assert_eq!(json(&nameless.stdout)["kind"], "Secret");
}
