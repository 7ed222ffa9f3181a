//! End-to-end tests with real registry clients from Debian packages: skopeo, containerd's
//! `ctr` (against a private containerd daemon) and podman (root, without systemd), as described
//! in `/work/shared/reference/real-clients.md`.
//!
//! Each test starts its own `minato serve` on 127.0.0.1 with a temporary data directory, builds
//! its test images offline with `tests/support/make-oci-image.py`, and drives the clients over
//! plain HTTP. Every client call is bounded by a timeout; a failing call reports the command,
//! its exit status and its output, and a failing test prints the server log. A missing client
//! fails the test: `scripts/test` installs them.

mod common;

use common::Server;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Longest any single client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a private containerd daemon may take to answer `ctr version`.
const CONTAINERD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Layer content size for tests about naming and metadata.
const SMALL_LAYER: usize = 4096;
/// Layer content size for tests about bytes: spans several of the server's 2 MiB serving
/// windows, and is not a multiple of common chunk sizes.
const LARGE_LAYER: usize = 5 * 1024 * 1024 + 321;

// ---------------------------------------------------------------------------------------------
// Running client commands
// ---------------------------------------------------------------------------------------------

/// What a finished command printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A command for `program`, failing clearly when the client is not installed.
fn client(program: &str) -> Command {
    let installed = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    assert!(
        installed,
        "`{program}` is not installed: run scripts/test, which installs the clients and tools \
         these tests drive (skopeo, podman, containerd, umoci, python3)"
    );
    Command::new(program)
}

/// Runs `command` to completion within `limit`, its output captured in temporary files (so a
/// chatty client can never block on a full pipe). Kills it and panics on timeout.
fn run_within(command: &mut Command, limit: Duration) -> Finished {
    let mut stdout = tempfile::tempfile().expect("stdout capture file");
    let mut stderr = tempfile::tempfile().expect("stderr capture file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("stdout handle"))
        .stderr(stderr.try_clone().expect("stderr handle"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let status = wait_within(&mut child, limit);
    let stdout = read_capture(&mut stdout);
    let stderr = read_capture(&mut stderr);
    let Some(status) = status else {
        panic!("{command:?} timed out after {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Waits for `child` at most `limit`; on timeout kills and reaps it and returns `None`.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("polling a child process") {
            return Some(status);
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_capture(file: &mut File) -> String {
    let mut text = String::new();
    file.rewind().expect("rewinding a capture file");
    file.read_to_string(&mut text)
        .expect("reading a capture file");
    text
}

/// Runs `command`, which must succeed; returns its standard output.
fn run(command: &mut Command) -> String {
    let done = run_within(command, COMMAND_TIMEOUT);
    assert!(
        done.status.success(),
        "{command:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        done.status,
        done.stdout,
        done.stderr
    );
    done.stdout
}

/// Runs `command`, which must fail; returns its standard error.
fn run_failing(command: &mut Command) -> String {
    let done = run_within(command, COMMAND_TIMEOUT);
    assert!(
        !done.status.success(),
        "{command:?} succeeded but should have failed\nstdout:\n{}",
        done.stdout
    );
    done.stderr
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `skopeo ARGS...`, which must succeed.
fn skopeo(args: &[&str]) -> String {
    run(client("skopeo").args(args))
}

/// `skopeo inspect` (`--raw` when `raw`) of a `docker://` reference over plain HTTP.
fn skopeo_inspect(reference: &str, raw: bool) -> String {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    args.push(reference);
    skopeo(&args)
}

// ---------------------------------------------------------------------------------------------
// Fixtures: the registry, test images, containerd and podman
// ---------------------------------------------------------------------------------------------

/// A `minato serve` with a temporary data directory, plus scratch space for the test. When the
/// test fails, the server log is printed (the harness shows it with the failure).
struct Registry {
    server: Server,
    dir: TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = TempDir::new().expect("temporary directory");
        let server = Server::start(&dir.path().join("data"));
        Registry { server, dir }
    }

    /// `host:port/repository:tag`, as `ctr` and podman take it.
    fn name(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.server.addr)
    }

    /// `docker://host:port/repository:tag`, as skopeo takes it.
    fn docker(&self, repository_and_tag: &str) -> String {
        format!("docker://{}", self.name(repository_and_tag))
    }

    /// A path in the test's scratch space.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Pushes an OCI layout's tag `latest` with `skopeo copy --all` plus `flags`; returns the
    /// digest skopeo reports for the pushed manifest.
    fn push(&self, layout: &Layout, repository_and_tag: &str, flags: &[&str]) -> String {
        let digest_file = self.scratch("pushed.digest");
        run(client("skopeo")
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .args(flags)
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(layout.oci_reference("latest"))
            .arg(self.docker(repository_and_tag)));
        std::fs::read_to_string(&digest_file).expect("skopeo --digestfile output")
    }

    /// Pulls a reference with skopeo (plus `flags`, e.g. `--all`) into a new OCI layout in the
    /// scratch directory `into`.
    fn pull(&self, repository_and_tag: &str, flags: &[&str], into: &str) -> Layout {
        let layout = Layout {
            dir: self.scratch(into),
        };
        run(client("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .args(flags)
            .arg(self.docker(repository_and_tag))
            .arg(layout.oci_reference("pulled")));
        layout
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.server.data_dir.with_extension("log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("---- minato log ({}) ----\n{text}", log.display());
        }
    }
}

/// An OCI image layout directory: one built by `make-oci-image.py`, or one a client wrote.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Builds a layout tagged `latest` at `dir`: a plain image for one platform, an image
    /// index for several (`os/arch` each); two layers of `layer_size` random bytes per image.
    fn build(dir: PathBuf, platforms: &[&str], layer_size: usize) -> Layout {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/make-oci-image.py"
        );
        let mut command = client("python3");
        command.arg(script).arg("--out").arg(&dir);
        command.args(["--layer-size", &layer_size.to_string()]);
        for platform in platforms {
            command.args(["--platform", platform]);
        }
        run(&mut command);
        Layout { dir }
    }

    /// `oci:DIR:TAG`, as skopeo and podman take it.
    fn oci_reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Writes the layout as a tar archive (as `ctr images import` and `podman load` take it)
    /// to `path`; returns the path as a string.
    fn archive(&self, path: &Path) -> String {
        run(Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(path)
            .arg("."));
        path.display().to_string()
    }

    /// Digest of the (only) image or index the layout's `index.json` references.
    fn top_digest(&self) -> String {
        let index =
            json(&std::fs::read_to_string(self.dir.join("index.json")).expect("index.json"));
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "index.json: {index}");
        manifests[0]["digest"].as_str().expect("digest").to_owned()
    }

    /// Bytes of a blob, checked against its digest.
    fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let path = self.dir.join("blobs/sha256").join(hex);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "{} is corrupt",
            path.display()
        );
        bytes
    }

    fn blob_json(&self, digest: &str) -> Value {
        json(std::str::from_utf8(&self.blob(digest)).expect("UTF-8 JSON blob"))
    }

    /// Digest of the manifest for `architecture` in the layout's image index.
    fn manifest_for(&self, architecture: &str) -> String {
        let index = self.blob_json(&self.top_digest());
        let entry = index["manifests"]
            .as_array()
            .expect("index manifests")
            .iter()
            .find(|m| m["platform"]["architecture"] == architecture)
            .unwrap_or_else(|| panic!("no {architecture} manifest in {index}"));
        entry["digest"].as_str().expect("digest").to_owned()
    }

    /// Config digest and layer digests of the image manifest `digest`.
    fn image_parts(&self, digest: &str) -> (String, Vec<String>) {
        parts_of(&self.blob_json(digest))
    }
}

/// Config digest and layer digests of an image manifest.
fn parts_of(manifest: &Value) -> (String, Vec<String>) {
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let layers = manifest["layers"].as_array().expect("layers");
    let layers = layers
        .iter()
        .map(|l| l["digest"].as_str().expect("layer digest").to_owned());
    (config.to_owned(), layers.collect())
}

/// A private containerd daemon (own root, state and sockets in a temporary directory, CRI
/// plugin disabled), killed when dropped — also when the test fails.
struct Containerd {
    child: Child,
    dir: TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        // Unix socket paths are limited to 108 bytes: keep the directory short.
        let dir = tempfile::Builder::new()
            .prefix("ctd")
            .tempdir_in("/tmp")
            .expect("containerd directory");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {grpc:?}\n[ttrpc]\n  address = {ttrpc:?}\n\
             [debug]\n  address = {debug:?}\n",
            root = path("root"),
            state = path("state"),
            grpc = path("grpc.sock"),
            ttrpc = path("ttrpc.sock"),
            debug = path("debug.sock"),
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("containerd config");
        let log = File::create(dir.path().join("containerd.log")).expect("containerd log");
        let child = client("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut daemon = Containerd { child, dir };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < CONTAINERD_START_TIMEOUT {
            if let Some(status) = self.child.try_wait().expect("polling containerd") {
                panic!("containerd exited ({status}) at start:\n{}", self.log());
            }
            let probe = run_within(self.command().arg("version"), Duration::from_secs(5));
            if probe.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd did not answer `ctr version` within {CONTAINERD_START_TIMEOUT:?}:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET`, without further arguments.
    fn command(&self) -> Command {
        let mut command = client("ctr");
        command
            .arg("--address")
            .arg(self.dir.path().join("grpc.sock"));
        command
    }

    /// `ctr ARGS...` against this daemon, which must succeed.
    fn ctr(&self, args: &[&str]) -> String {
        run(self.command().args(args))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- containerd log ----\n{}", self.log());
        }
    }
}

/// Podman as root without systemd, with its own vfs storage in temporary directories.
struct Podman {
    root: TempDir,
    /// The run root must stay short (podman limits it to about 50 bytes).
    runroot: TempDir,
}

impl Podman {
    fn new() -> Podman {
        let root = TempDir::new().expect("podman root");
        let runroot = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .expect("podman run root");
        Podman { root, runroot }
    }

    /// `podman GLOBAL-FLAGS ARGS...`, which must succeed.
    fn podman(&self, args: &[&str]) -> String {
        run(client("podman")
            .arg("--root")
            .arg(self.root.path())
            .arg("--runroot")
            .arg(self.runroot.path())
            .arg("--tmpdir")
            .arg(self.runroot.path().join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args))
    }

    /// `podman image inspect` of one image.
    fn inspect(&self, image: &str) -> Value {
        let images = json(&self.podman(&["image", "inspect", image]));
        assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
        images[0].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------------------------

#[test]
fn skopeo_copy_round_trips_a_single_image() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], LARGE_LAYER);

    let pushed = registry.push(&source, "demo/app:v1", &[]);
    assert_eq!(pushed, source.top_digest(), "pushed manifest digest");

    let pulled = registry.pull("demo/app:v1", &[], "pulled");
    assert_eq!(pulled.top_digest(), pushed, "pulled manifest digest");
    let (config, layers) = pulled.image_parts(&pushed);
    assert_eq!(
        (config.clone(), layers.clone()),
        source.image_parts(&pushed),
        "config and layer digests"
    );
    for digest in std::iter::once(&config).chain(&layers) {
        assert_eq!(
            pulled.blob(digest),
            source.blob(digest),
            "bytes of {digest}"
        );
    }
}

#[test]
fn skopeo_inspect_and_list_tags_show_the_pushed_image() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], SMALL_LAYER);
    let pushed = registry.push(&source, "demo/app:v1", &[]);
    assert_eq!(
        registry.push(&source, "demo/app:v2", &[]),
        pushed,
        "second tag"
    );

    let inspected = json(&skopeo_inspect(&registry.docker("demo/app:v1"), false));
    assert_eq!(inspected["Digest"], pushed.as_str(), "{inspected}");
    assert_eq!(inspected["Architecture"], "amd64", "{inspected}");
    assert_eq!(inspected["Os"], "linux", "{inspected}");
    let (_, layers) = source.image_parts(&pushed);
    assert_eq!(
        inspected["Layers"],
        serde_json::json!(layers),
        "{inspected}"
    );

    let raw = skopeo_inspect(&registry.docker("demo/app:v2"), true);
    assert_eq!(raw.as_bytes(), source.blob(&pushed), "raw manifest bytes");
    let by_digest = format!("{}@{pushed}", registry.docker("demo/app"));
    assert_eq!(
        sha256_digest(skopeo_inspect(&by_digest, true).as_bytes()),
        pushed
    );

    let tags = json(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &registry.docker("demo/app"),
    ]));
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]), "{tags}");
}

#[test]
fn skopeo_delete_removes_the_manifest_and_its_tags() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], SMALL_LAYER);
    let pushed = registry.push(&source, "demo/app:v1", &[]);
    registry.push(&source, "demo/app:v2", &[]);

    skopeo(&[
        "delete",
        "--tls-verify=false",
        &registry.docker("demo/app:v1"),
    ]);

    let by_digest = format!("{}@{pushed}", registry.docker("demo/app"));
    for reference in [
        registry.docker("demo/app:v1"),
        registry.docker("demo/app:v2"),
        by_digest,
    ] {
        let stderr =
            run_failing(client("skopeo").args(["inspect", "--tls-verify=false", &reference]));
        assert!(
            stderr.contains("manifest unknown"),
            "inspect {reference} after delete should report `manifest unknown`:\n{stderr}"
        );
    }
}

#[test]
fn skopeo_copy_all_round_trips_a_multi_arch_index() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        SMALL_LAYER,
    );

    let pushed = registry.push(&source, "demo/multi:v1", &[]);
    assert_eq!(pushed, source.top_digest(), "pushed index digest");
    let raw = skopeo_inspect(&registry.docker("demo/multi:v1"), true);
    assert_eq!(raw.as_bytes(), source.blob(&pushed), "raw index bytes");

    let pulled = registry.pull("demo/multi:v1", &["--all"], "pulled");
    assert_eq!(pulled.top_digest(), pushed, "pulled index digest");
    for architecture in ["amd64", "arm64"] {
        let manifest = source.manifest_for(architecture);
        assert_eq!(
            pulled.manifest_for(architecture),
            manifest,
            "{architecture} manifest"
        );
        assert_eq!(pulled.image_parts(&manifest), source.image_parts(&manifest));
    }
}

#[test]
fn skopeo_override_arch_pulls_the_arm64_image_of_an_index() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        SMALL_LAYER,
    );
    registry.push(&source, "demo/multi:v1", &[]);

    let pulled = registry.pull("demo/multi:v1", &["--override-arch", "arm64"], "pulled");
    let arm64 = source.manifest_for("arm64");
    assert_eq!(pulled.top_digest(), arm64, "pulled the arm64 manifest");
    assert_eq!(pulled.image_parts(&arm64), source.image_parts(&arm64));

    let inspected = json(&skopeo(&[
        "inspect",
        "--override-arch",
        "arm64",
        "--tls-verify=false",
        &registry.docker("demo/multi:v1"),
    ]));
    assert_eq!(inspected["Architecture"], "arm64", "{inspected}");
}

// ---------------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------------

#[test]
fn containerd_pulls_a_skopeo_pushed_image_and_pushes_it_to_another_repository() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], LARGE_LAYER);
    let pushed = registry.push(&source, "demo/app:v1", &[]);
    let containerd = Containerd::start();

    let original = registry.name("demo/app:v1");
    containerd.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        &original,
    ]);
    let listed = containerd.ctr(&["images", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&original) && l.contains(&pushed)),
        "{original} with {pushed} should be listed:\n{listed}"
    );

    let copy = registry.name("copied/app:v2");
    containerd.ctr(&["images", "tag", &original, &copy]);
    containerd.ctr(&["images", "push", "--plain-http", &copy]);
    let raw = skopeo_inspect(&registry.docker("copied/app:v2"), true);
    assert_eq!(
        raw.as_bytes(),
        source.blob(&pushed),
        "manifest pushed by ctr"
    );
    let (config, layers) = source.image_parts(&pushed);
    let copied = registry.pull("copied/app:v2", &[], "copied");
    for digest in std::iter::once(&config).chain(&layers) {
        assert_eq!(
            copied.blob(digest),
            source.blob(digest),
            "bytes of {digest}"
        );
    }
}

#[test]
fn containerd_pushes_an_imported_multi_arch_index_and_pulls_one_platform() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        SMALL_LAYER,
    );
    let archive = source.archive(&registry.scratch("source.tar"));
    let containerd = Containerd::start();

    let base = registry.name("imported/multi");
    containerd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        "--no-unpack",
        "--base-name",
        &base,
        &archive,
    ]);
    let tagged = format!("{base}:latest");
    containerd.ctr(&["images", "push", "--plain-http", &tagged]);
    let raw = skopeo_inspect(&registry.docker("imported/multi:latest"), true);
    assert_eq!(
        raw.as_bytes(),
        source.blob(&source.top_digest()),
        "index pushed by ctr"
    );

    let other = Containerd::start();
    other.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        "--platform",
        "linux/arm64",
        &tagged,
    ]);
    let arm64 = source.manifest_for("arm64");
    let (config, _) = source.image_parts(&arm64);
    let content = other.ctr(&["content", "ls", "--quiet"]);
    assert!(
        content.lines().any(|l| l == config) && content.lines().any(|l| l == arm64),
        "the arm64 manifest {arm64} and config {config} should be in containerd:\n{content}"
    );
}

#[test]
fn containerd_pulls_one_platform_of_a_docker_manifest_list_pushed_by_skopeo() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        SMALL_LAYER,
    );
    let pushed = registry.push(&source, "docker/list:v1", &["--format", "v2s2"]);
    let list = json(&skopeo_inspect(&registry.docker("docker/list:v1"), true));
    assert_eq!(
        list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "skopeo converted the index: {list}"
    );
    let arm64 = list["manifests"]
        .as_array()
        .expect("list manifests")
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("no arm64 manifest in {list}"))
        .to_owned();
    let containerd = Containerd::start();

    let name = registry.name("docker/list:v1");
    containerd.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        "--platform",
        "linux/arm64",
        &name,
    ]);
    let listed = containerd.ctr(&["images", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&name) && l.contains(&pushed)),
        "{name} with {pushed} should be listed:\n{listed}"
    );
    let content = containerd.ctr(&["content", "ls", "--quiet"]);
    assert!(
        content.lines().any(|l| l == arm64),
        "the arm64 manifest {arm64} should be in containerd:\n{content}"
    );
}

// ---------------------------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------------------------

#[test]
fn podman_pulls_the_requested_platform_of_a_multi_arch_image() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        SMALL_LAYER,
    );
    registry.push(&source, "demo/multi:v1", &[]);
    let podman = Podman::new();

    let image = registry.name("demo/multi:v1");
    for architecture in ["arm64", "amd64"] {
        podman.podman(&["pull", "--tls-verify=false", "--arch", architecture, &image]);
        let inspected = podman.inspect(&image);
        assert_eq!(inspected["Architecture"], architecture, "{inspected}");
        let (config, _) = source.image_parts(&source.manifest_for(architecture));
        assert_eq!(
            format!("sha256:{}", inspected["Id"].as_str().expect("Id")),
            config,
            "the image ID is the {architecture} config digest"
        );
    }
}

#[test]
fn podman_pushes_an_image_that_skopeo_inspects() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/arm64"], LARGE_LAYER);
    let (config, _) = source.image_parts(&source.top_digest());
    let podman = Podman::new();
    let archive = source.archive(&registry.scratch("source.tar"));
    podman.podman(&["load", "--input", &archive]);
    let id = config.strip_prefix("sha256:").expect("a sha256 digest");
    assert_eq!(podman.inspect(id)["Architecture"], "arm64", "loaded image");

    let digest_file = registry.scratch("podman.digest");
    podman.podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        &digest_file.display().to_string(),
        id,
        &registry.docker("podman/app:v1"),
    ]);
    let pushed = std::fs::read_to_string(&digest_file).expect("podman --digestfile output");

    // podman recompresses layers, so only the config digest matches the source.
    let raw = skopeo_inspect(&registry.docker("podman/app:v1"), true);
    assert_eq!(sha256_digest(raw.as_bytes()), pushed, "manifest digest");
    assert_eq!(parts_of(&json(&raw)).0, config, "config digest");
    let inspected = json(&skopeo_inspect(&registry.docker("podman/app:v1"), false));
    assert_eq!(inspected["Architecture"], "arm64", "{inspected}");
    assert_eq!(inspected["Digest"], pushed.as_str(), "{inspected}");
}

/// Makes sure the image builder writes layouts umoci (an independent OCI implementation)
/// accepts, so client failures point at the registry rather than at the test images.
#[test]
fn test_images_are_valid_oci_layouts() {
    let dir = TempDir::new().expect("temporary directory");
    let layout = Layout::build(dir.path().join("image"), &["linux/amd64"], SMALL_LAYER);
    let stat = run(client("umoci")
        .args(["stat", "--json", "--image"])
        .arg(format!("{}:latest", layout.dir.display())));
    let history = json(&stat)["history"].as_array().map(Vec::len);
    assert_eq!(history, Some(2), "two layers in the history:\n{stat}");
    run(client("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.dir.display()))
        .arg(dir.path().join("bundle")));
    let unpacked = dir.path().join("bundle/rootfs/minato/layer-1/data.bin");
    assert!(unpacked.is_file(), "{} should exist", unpacked.display());
}
