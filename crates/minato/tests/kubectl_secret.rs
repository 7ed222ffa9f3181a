//! `minato create secret docker-registry` against the installed `kubectl create secret
//! docker-registry --dry-run=client`, byte for byte.
//!
//! Each case of the table runs both commands with the same arguments (as argument vectors, no
//! shell) in both output formats, and compares standard output byte for byte, the exit code,
//! and standard error (kubectl's `kubectl` hint reads `minato` in minato's; minato's own
//! `warning:` lines are set aside). kubectl always gets `--dry-run=client -o FORMAT`; minato
//! gets `--dry-run=client` in every other case, and YAML without `-o` in some, to show that
//! both are accepted and that YAML is the default. `{dir}` in an argument stands for a
//! directory of fixture files. kubectl is the reference: a missing kubectl fails the test.

#[path = "support/clients.rs"]
mod clients;

use clients::{Finished, finish, installed};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;

/// Commands run at once.
const WORKERS: usize = 8;

/// One row of the table: what it shows, and the arguments after `create secret
/// docker-registry`.
struct Case {
    what: &'static str,
    args: &'static [&'static str],
}

const fn case(what: &'static str, args: &'static [&'static str]) -> Case {
    Case { what, args }
}

/// Username and password of the flag-form cases that vary something else.
const U: &str = "--docker-username=acme/jdoe";
const P: &str = "--docker-password=k]j64r{1sJSSF-;)K8";

const CASES: &[Case] = &[
    // The reference example and shell-hostile passwords.
    case(
        "OCIR reference example",
        &[
            "ocirsecret",
            "--docker-server=phx.ocir.io",
            "--docker-username=ansh81vru1zp/jdoe@acme.com",
            "--docker-password=k]j64r{1sJSSF-;)K8",
            "--docker-email=jdoe@acme.com",
        ],
    ),
    case(
        "dollar, backtick, bang",
        &["s", U, "--docker-password=p$HOME`id`!!x$(ls)"],
    ),
    case(
        "single and double quotes",
        &["s", U, r#"--docker-password=it's "quoted""#],
    ),
    case(
        "backslashes",
        &["s", U, r"--docker-password=back\slash\\n\"],
    ),
    case("HTML characters", &["s", U, "--docker-password=a<b>&c"]),
    case(
        "spaces inside",
        &["s", U, "--docker-password=pass word  with spaces"],
    ),
    case("tab inside", &["s", U, "--docker-password=tab\there"]),
    case(
        "controls",
        &[
            "s",
            U,
            "--docker-password=bell\u{7}back\u{8}feed\u{c}del\u{7f}",
        ],
    ),
    case("non-ASCII", &["s", U, "--docker-password=pässwörd-日本語"]),
    case("emoji", &["s", U, "--docker-password=🔑secret😀"]),
    case(
        "line and paragraph separators",
        &["s", U, "--docker-password=a\u{2028}b\u{2029}c"],
    ),
    case(
        "colons in the password",
        &["s", U, "--docker-password=a:b::c:"],
    ),
    case(
        "password starting with a dash, as its own argument",
        &["s", U, "--docker-password", "-starts-with-dash"],
    ),
    case(
        "surrounding whitespace is kept (minato warns)",
        &["s", U, "--docker-password= padded "],
    ),
    // Usernames, servers, emails.
    case(
        "federated username",
        &[
            "s",
            "--docker-server=phx.ocir.io",
            "--docker-username=ansh81vru1zp/oracleidentitycloudservice/jdoe@acme.com",
            P,
        ],
    ),
    case(
        "server with scheme and path",
        &["s", "--docker-server=https://phx.ocir.io/v2/", U, P],
    ),
    case(
        "server with port",
        &["s", "--docker-server=registry.example:5000", U, P],
    ),
    case(
        "uppercase server",
        &["s", "--docker-server=PHX.OCIR.IO", U, P],
    ),
    case("IPv6 server", &["s", "--docker-server=[::1]:5000", U, P]),
    case(
        "plain HTTP server",
        &["s", "--docker-server", "http://127.0.0.1:5000", U, P],
    ),
    case("default server", &["s", U, P]),
    case(
        "email with special characters",
        &["s", U, P, "--docker-email=j.doe+pull&push@acme.com"],
    ),
    // Namespaces, hashes, names.
    case("namespace", &["s", U, P, "-n", "team-a"]),
    case("namespace, long flag", &["s", U, P, "--namespace=default"]),
    case("empty namespace is none", &["s", U, P, "--namespace="]),
    case("namespace YAML must quote", &["s", U, P, "-n", "null"]),
    case("append hash", &["s1", U, P, "--append-hash"]),
    case(
        "append hash, Go boolean",
        &["s1", U, P, "--append-hash=1", "-n", "team-a"],
    ),
    case("append hash off", &["s1", U, P, "--append-hash=false"]),
    case("numeric name", &["123", U, P]),
    case("boolean name", &["true", U, P]),
    case("name with a colon and space", &["a: b", U, P]),
    case("uppercase name", &["OCIRSecret", U, P]),
    case("timestamp name", &["2024-01-02", U, P]),
    case("emoji name", &["🔑", U, P]),
    case(
        "long name folded at 80 columns",
        &[
            "a secret name with spaces that is long enough to be folded by the YAML emitter of kubectl",
            U,
            P,
        ],
    ),
    case("multi-line name", &["first\nsecond\n", U, P]),
    case(
        "next-line character in the name, folded by kubectl's JSON round trip",
        &["a  \u{85}  b\u{85}\u{85}c", U, P],
    ),
    case(
        "DEL in the namespace: YAML refuses it, JSON does not",
        &["s", U, P, "-n", "a\u{7f}b"],
    ),
    case(
        "document marker after a next-line character",
        &["x\u{85}--- y", U, P],
    ),
    // --from-file.
    case("from-file, no key", &["s", "--from-file={dir}/pretty.json"]),
    case(
        "from-file, explicit default key",
        &["s", "--from-file=.dockerconfigjson={dir}/pretty.json"],
    ),
    case(
        "from-file, not JSON",
        &["s", "--from-file={dir}/not-json.txt"],
    ),
    case(
        "from-file, custom key",
        &["s", "--from-file=foo={dir}/pretty.json"],
    ),
    case(
        "from-file, two sources",
        &[
            "s",
            "--from-file={dir}/pretty.json",
            "--from-file=.dockercfg={dir}/not-json.txt",
        ],
    ),
    case(
        "from-file, comma-separated",
        &[
            "s",
            "--from-file={dir}/pretty.json,other={dir}/not-json.txt",
        ],
    ),
    case(
        "from-file, quoted path with a comma",
        &["s", "--from-file=\"{dir}/c,d.json\""],
    ),
    case(
        "from-file, keys in the YAML emitter's order",
        &[
            "s",
            "--from-file=a10={dir}/empty",
            "--from-file=a9={dir}/empty",
            "--from-file=_x={dir}/empty",
            "--from-file=B={dir}/empty",
            "--from-file=123={dir}/empty",
            "--from-file=-x={dir}/empty",
        ],
    ),
    case(
        "from-file, key longer than a simple YAML key",
        &[
            "s",
            "--from-file=k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789k0123456789=\
             {dir}/empty",
        ],
    ),
    case(
        "from-file wins over the docker flags, with a hash and a namespace",
        &[
            "s",
            U,
            P,
            "--from-file={dir}/pretty.json",
            "--append-hash",
            "-n",
            "ns",
        ],
    ),
    // Errors.
    case("no NAME", &[U, P]),
    case("two NAMEs", &["a", "b", U, P]),
    case(
        "a boolean flag does not take the next argument",
        &["s", U, P, "--append-hash", "false"],
    ),
    case("empty NAME", &["", U, P]),
    case("missing password", &["s", U]),
    case("missing username", &["s", P]),
    case("empty password", &["s", U, "--docker-password="]),
    case("empty server", &["s", U, P, "--docker-server="]),
    case("nothing at all", &["s"]),
    case(
        "from-file, duplicate key",
        &[
            "s",
            "--from-file={dir}/pretty.json",
            "--from-file={dir}/not-json.txt",
        ],
    ),
    case(
        "from-file, invalid key",
        &["s", "--from-file=bad key={dir}/pretty.json"],
    ),
    case(
        "from-file, key '..'-prefixed",
        &["s", "--from-file=..x={dir}/pretty.json"],
    ),
    case(
        "from-file, missing file",
        &["s", "--from-file={dir}/missing.json"],
    ),
    case("from-file, directory", &["s", "--from-file={dir}/subdir"]),
    case("from-file, key without path", &["s", "--from-file=foo="]),
    case(
        "from-file, path without key",
        &["s", "--from-file={dir}/pretty.json="],
    ),
    case(
        "from-file, two separators",
        &["s", "--from-file=a=b={dir}/pretty.json"],
    ),
    case("from-file, empty value", &["s", "--from-file="]),
    case(
        "from-file, sources checked in order",
        &[
            "s",
            "--from-file=bad key={dir}/pretty.json",
            "--from-file={dir}/missing.json",
        ],
    ),
    case(
        "empty NAME is checked first",
        &["", "--from-file={dir}/missing.json"],
    ),
];

/// Fixture files the `{dir}` cases use.
fn fixtures() -> TempDir {
    let dir = TempDir::new().expect("fixture directory");
    let write = |name: &str, content: &str| {
        std::fs::write(dir.path().join(name), content).expect("fixture file")
    };
    write(
        "pretty.json",
        "{\n  \"auths\": {\n    \"phx.ocir.io\": {\n      \"auth\": \"YW5zaDgxdnJ1MXpwL2pkb2VAYWNtZS5jb206a11qNjRyezFzSlNTRi07KUs4\"\n    }\n  }\n}\n",
    );
    write("not-json.txt", "not json\n");
    write("c,d.json", "{}\n");
    write("empty", "");
    std::fs::create_dir(dir.path().join("subdir")).expect("fixture directory");
    dir
}

/// The installed kubectl, or a clear failure.
fn kubectl() -> Command {
    assert!(
        installed("kubectl"),
        "`kubectl` is not on PATH: these tests compare minato's output with the installed \
         kubectl's, byte for byte; install a kubectl client (it needs no cluster) and rerun"
    );
    Command::new("kubectl")
}

/// A command with an environment that cannot leak a cluster configuration into kubectl's
/// output (no kubeconfig, no in-cluster service account).
fn isolated(mut command: Command, home: &Path) -> Command {
    command
        .env("HOME", home)
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    command
}

/// Runs one case with both commands: whether kubectl succeeded, or how the two differed.
fn compare(number: usize, case: &Case, json: bool, dir: &Path) -> Result<bool, String> {
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{dir}", &dir.display().to_string()))
        .collect();
    let format = if json { "json" } else { "yaml" };
    let home = dir.join("home");

    let mut reference = isolated(kubectl(), &home);
    reference
        .args(["create", "secret", "docker-registry"])
        .args(&args)
        .args(["--dry-run=client", "-o", format]);
    let expected = finish(&mut reference, b"");
    let succeeded = expected.status.success();
    let sane = if succeeded {
        expected
            .stdout
            .starts_with(if json { "{\n" } else { "apiVersion: v1\n" })
    } else {
        expected.stderr.starts_with("error: ")
    };
    assert!(
        sane,
        "kubectl misbehaves on case {number} ({}):\n{}",
        case.what,
        side("kubectl", &expected)
    );

    let mut ours = isolated(Command::new(env!("CARGO_BIN_EXE_minato")), &home);
    ours.args(["create", "secret", "docker-registry"])
        .args(&args);
    if number.is_multiple_of(2) {
        ours.arg("--dry-run=client");
    }
    if json || !number.is_multiple_of(3) {
        ours.args(["-o", format]);
    }
    let actual = finish(&mut ours, b"");

    let expected_stderr = expected.stderr.replace("'kubectl ", "'minato ");
    let actual_stderr = without_warnings(&actual.stderr);
    if expected.stdout == actual.stdout
        && expected.status.code() == actual.status.code()
        && expected_stderr == actual_stderr
    {
        return Ok(succeeded);
    }
    Err(format!(
        "case {number} ({}, {format}) {args:?}\n{}{}",
        case.what,
        side("kubectl", &expected),
        side("minato", &actual),
    ))
}

/// minato's standard error without its own warnings.
fn without_warnings(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.starts_with("warning: "))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn side(who: &str, finished: &Finished) -> String {
    format!(
        "--- {who} ({}) stdout:\n{}--- {who} stderr:\n{}",
        finished.status, finished.stdout, finished.stderr
    )
}

#[test]
fn create_secret_docker_registry_matches_kubectl_byte_for_byte() {
    assert!(CASES.len() >= 30, "the table should keep at least 30 cases");
    let fixtures = fixtures();
    let runs: Vec<(usize, bool)> = (0..CASES.len())
        .flat_map(|n| [(n, false), (n, true)])
        .collect();
    let next = AtomicUsize::new(0);
    let successes = AtomicUsize::new(0);
    let differences = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                while let Some(&(n, json)) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match compare(n, &CASES[n], json, fixtures.path()) {
                        Ok(succeeded) => {
                            successes.fetch_add(usize::from(succeeded), Ordering::Relaxed);
                        }
                        Err(difference) => differences.lock().expect("lock").push(difference),
                    }
                }
            });
        }
    });
    let differences = differences.into_inner().expect("lock");
    assert!(
        differences.is_empty(),
        "{} of {} runs differ from kubectl:\n\n{}",
        differences.len(),
        runs.len(),
        differences.join("\n")
    );
    let successes = successes.into_inner();
    assert!(
        successes > 0 && successes < runs.len(),
        "the table needs both successes and failures ({successes} of {} succeeded)",
        runs.len()
    );
}
