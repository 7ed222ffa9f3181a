//! End to end: `minato login` and `minato logout` against a running `minato serve` with tenancy
//! authentication, on 127.0.0.1.
//!
//! Login checks the credentials through the registry's token flow before it writes anything,
//! then merges `auths[HOST]` into the docker config file (mode 0600) and keeps every other
//! entry and setting; the file works with `skopeo --authfile`. Every refusal (credentials,
//! registry, config file) exits with 1 and a clear message and leaves the file as it was.
//! Logout removes only its registry's entry.

#[path = "support/clients.rs"]
mod clients;
mod common;
#[path = "support/tenancy.rs"]
mod tenancy;

use clients::{Finished, client, finish, json, run};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use tenancy::{Login, Registry};

/// A config file with another registry's login and settings login must keep.
const EXISTING: &str = r#"{
  "auths": {
    "other.example:5000": {
      "auth": "b3RoZXI6c2VjcmV0"
    }
  },
  "detachKeys": "ctrl-e,e",
  "psFormat": "table {{.ID}}"
}
"#;

/// `minato ARGS...` with `stdin`, `HOME` pointing into the scratch space (so no test ever
/// touches the real `~/.docker`) and no inherited `DOCKER_CONFIG`.
fn minato(registry: &Registry, args: &[&str], stdin: &str) -> Finished {
    finish(
        Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(args)
            .env("HOME", registry.scratch("home"))
            .env_remove("DOCKER_CONFIG"),
        stdin.as_bytes(),
    )
}

/// `minato login HOST -u USER --password-stdin --docker-config FILE` with the token on stdin.
fn login(registry: &Registry, host: &str, user: &Login, config: &Path) -> Finished {
    let config = config.display().to_string();
    let args = ["login", host, "-u", &user.username, "--password-stdin"];
    minato(
        registry,
        &[&args[..], &["--docker-config", &config]].concat(),
        &format!("{}\n", user.token),
    )
}

/// Asserts a failure with exit code 1 whose error mentions `needle`, and that `config` still
/// holds `before`.
fn assert_refused(done: &Finished, needle: &str, config: &Path, before: &[u8], what: &str) {
    assert_eq!(done.status.code(), Some(1), "{what}: {}", done.stderr);
    assert!(
        done.stderr.starts_with("error: ") && done.stderr.contains(needle),
        "{what}: expected an error mentioning {needle:?}:\n{}",
        done.stderr
    );
    assert_eq!(
        std::fs::read(config).expect("config file"),
        before,
        "{what}: the config file must not change"
    );
}

/// The config file's JSON and its permission bits.
fn read_config(path: &Path) -> (Value, u32) {
    let text = std::fs::read_to_string(path).expect("config file");
    let mode = std::fs::metadata(path)
        .expect("config metadata")
        .permissions()
        .mode();
    (json(&text), mode & 0o777)
}

/// Standard base64 of `text`, by coreutils.
fn base64(text: &str) -> String {
    let done = finish(client("base64").arg("--wrap=0"), text.as_bytes());
    assert!(done.status.success(), "base64: {}", done.stderr);
    done.stdout
}

#[test]
fn login_merges_into_the_config_file_and_logout_removes_only_its_entry() {
    let registry = Registry::start();
    registry.push_image("app:v1");
    let reader = registry.user_with_token("Pullers", "read", "reader").login;
    let config = registry.scratch("config.json");
    std::fs::write(&config, EXISTING).expect("existing config");
    let host = registry.host();

    let done = login(&registry, host, &reader, &config);
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.stdout, "Login Succeeded\n");
    let (merged, mode) = read_config(&config);
    assert_eq!(mode, 0o600, "credentials are private");
    assert_eq!(
        merged["auths"][host]["auth"],
        base64(&reader.pair()).as_str()
    );
    let existing = json(EXISTING);
    assert_eq!(
        merged["auths"]["other.example:5000"],
        existing["auths"]["other.example:5000"]
    );
    assert_eq!(merged["detachKeys"], existing["detachKeys"]);
    assert_eq!(merged["psFormat"], existing["psFormat"]);

    let config_text = config.display().to_string();
    let inspected = json(&run(client("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile", &config_text])
        .arg(registry.docker("app:v1"))));
    assert_eq!(
        inspected["Name"],
        registry.name("app").as_str(),
        "{inspected}"
    );

    let done = minato(
        &registry,
        &["logout", host, "--docker-config", &config_text],
        "",
    );
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(
        done.stdout,
        format!("Removing login credentials for {host}\n")
    );
    let (after, mode) = read_config(&config);
    assert_eq!(mode, 0o600);
    assert_eq!(after, existing, "everything but the entry is kept");

    let before = std::fs::read(&config).expect("config file");
    let done = minato(
        &registry,
        &["logout", host, "--docker-config", &config_text],
        "",
    );
    assert_refused(
        &done,
        &format!("not logged in to {host}"),
        &config,
        &before,
        "logout twice",
    );
}

#[test]
fn login_honours_docker_config_and_accepts_the_password_flag() {
    let registry = Registry::start();
    let reader = registry.user_with_token("Pullers", "read", "reader").login;
    let dir = registry.scratch("docker-config-dir");
    let done = finish(
        Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["login", registry.host(), "-u", &reader.username])
            .args(["-p", &reader.token])
            .env("HOME", registry.scratch("home"))
            .env("DOCKER_CONFIG", &dir),
        b"",
    );
    assert!(done.status.success(), "{}", done.stderr);
    let (written, mode) = read_config(&dir.join("config.json"));
    assert_eq!(mode, 0o600);
    assert_eq!(
        written["auths"][registry.host()]["auth"],
        base64(&reader.pair()).as_str()
    );
    assert!(
        !registry.scratch("home").join(".docker").exists(),
        "DOCKER_CONFIG wins over the home directory"
    );
}

#[test]
fn refused_logins_leave_the_config_file_alone() {
    let registry = Registry::start();
    let reader = registry.user_with_token("Pullers", "read", "reader").login;
    let config = registry.scratch("config.json");
    std::fs::write(&config, EXISTING).expect("existing config");
    let before = std::fs::read(&config).expect("config file");
    let host = registry.host();

    let wrong = Login {
        username: reader.username.clone(),
        token: format!("{}x", reader.token),
    };
    let done = login(&registry, host, &wrong, &config);
    assert_refused(
        &done,
        "refused the credentials",
        &config,
        &before,
        "a wrong token",
    );

    let nameless = Login {
        username: "reader".into(),
        token: reader.token.clone(),
    };
    let done = login(&registry, host, &nameless, &config);
    let needle = "<tenancy-namespace>/<username>";
    assert_refused(
        &done,
        needle,
        &config,
        &before,
        "a username without the namespace",
    );

    let closed = format!("127.0.0.1:{}", common::free_port());
    let done = login(&registry, &closed, &reader, &config);
    assert_refused(
        &done,
        "cannot reach registry",
        &config,
        &before,
        "a closed port",
    );

    let malformed = registry.scratch("malformed.json");
    std::fs::write(&malformed, "{\"auths\": ").expect("malformed config");
    let garbage = std::fs::read(&malformed).expect("malformed config");
    let done = login(&registry, host, &reader, &malformed);
    assert_refused(
        &done,
        "is not a valid docker config file",
        &malformed,
        &garbage,
        "bad JSON",
    );

    let directory = registry.scratch("a-directory");
    std::fs::create_dir(&directory).expect("directory");
    let done = login(&registry, host, &reader, &directory);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .starts_with(&format!("error: {}: ", directory.display())),
        "an unreadable config file is named: {}",
        done.stderr
    );
    assert!(directory.is_dir(), "the directory is left alone");
}
