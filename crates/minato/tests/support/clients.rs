//! Real registry clients for end-to-end tests, shared by the test crates that drive them:
//! running a client command with a timeout and its output captured, OCI image layouts built
//! offline by `make-oci-image.py`, a private containerd daemon, and podman as root without
//! systemd (see `/work/shared/reference/real-clients.md`).
//!
//! A missing client fails the test with a hint to run `scripts/test`, which installs them.
#![allow(dead_code)] // each test crate uses its own subset

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Longest any single client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a private containerd daemon may take to answer `ctr version`.
const CONTAINERD_START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Running client commands
// ---------------------------------------------------------------------------------------------

/// What a finished command printed.
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Whether `program` is on `PATH`.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A command for `program`, failing clearly when the client is not installed.
pub fn client(program: &str) -> Command {
    assert!(
        installed(program),
        "`{program}` is not installed: run scripts/test, which installs the clients and tools \
         these tests drive (skopeo, podman, containerd, umoci, python3)"
    );
    Command::new(program)
}

/// Runs `command` to completion within `limit`, its output captured in temporary files (so a
/// chatty client can never block on a full pipe). Kills it and panics on timeout.
fn run_within(command: &mut Command, limit: Duration) -> Finished {
    run_fed(command, Stdio::null(), limit)
}

/// Runs `command` with `input` on its standard input, whatever its exit status (within the
/// command timeout); the caller judges the outcome.
pub fn finish(command: &mut Command, input: &[u8]) -> Finished {
    let mut stdin = tempfile::tempfile().expect("stdin file");
    stdin.write_all(input).expect("writing stdin");
    stdin.rewind().expect("rewinding stdin");
    run_fed(command, Stdio::from(stdin), COMMAND_TIMEOUT)
}

/// [`run_within`] with `stdin` as the standard input.
fn run_fed(command: &mut Command, stdin: Stdio, limit: Duration) -> Finished {
    let mut stdout = tempfile::tempfile().expect("stdout capture file");
    let mut stderr = tempfile::tempfile().expect("stderr capture file");
    let mut child = command
        .stdin(stdin)
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
pub fn run(command: &mut Command) -> String {
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
pub fn run_failing(command: &mut Command) -> String {
    let done = run_within(command, COMMAND_TIMEOUT);
    assert!(
        !done.status.success(),
        "{command:?} succeeded but should have failed\nstdout:\n{}",
        done.stdout
    );
    done.stderr
}

/// Parses JSON a client printed, failing with the text.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `skopeo ARGS...`, which must succeed.
pub fn skopeo(args: &[&str]) -> String {
    run(client("skopeo").args(args))
}

/// `skopeo inspect` (`--raw` when `raw`) of a `docker://` reference over plain HTTP.
pub fn skopeo_inspect(reference: &str, raw: bool) -> String {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    args.push(reference);
    skopeo(&args)
}

// ---------------------------------------------------------------------------------------------
// Test images, containerd and podman
// ---------------------------------------------------------------------------------------------

/// An OCI image layout directory: one built by `make-oci-image.py`, or one a client wrote.
pub struct Layout {
    /// The layout's root directory.
    pub dir: PathBuf,
}

impl Layout {
    /// Builds a layout tagged `latest` at `dir`: a plain image for one platform, an image
    /// index for several (`os/arch` each); two layers of `layer_size` random bytes per image.
    pub fn build(dir: PathBuf, platforms: &[&str], layer_size: usize) -> Layout {
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
    pub fn oci_reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Writes the layout as a tar archive (as `ctr images import` and `podman load` take it)
    /// to `path`; returns the path as a string.
    pub fn archive(&self, path: &Path) -> String {
        run(Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(path)
            .arg("."));
        path.display().to_string()
    }

    /// Digest of the (only) image or index the layout's `index.json` references.
    pub fn top_digest(&self) -> String {
        let index =
            json(&std::fs::read_to_string(self.dir.join("index.json")).expect("index.json"));
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "index.json: {index}");
        manifests[0]["digest"].as_str().expect("digest").to_owned()
    }

    /// Bytes of a blob, checked against its digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
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
    pub fn manifest_for(&self, architecture: &str) -> String {
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
    pub fn image_parts(&self, digest: &str) -> (String, Vec<String>) {
        parts_of(&self.blob_json(digest))
    }
}

/// Config digest and layer digests of an image manifest.
pub fn parts_of(manifest: &Value) -> (String, Vec<String>) {
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
pub struct Containerd {
    child: Child,
    dir: TempDir,
}

impl Containerd {
    /// Starts a daemon and waits until `ctr version` answers.
    pub fn start() -> Containerd {
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
    pub fn command(&self) -> Command {
        let mut command = client("ctr");
        command
            .arg("--address")
            .arg(self.dir.path().join("grpc.sock"));
        command
    }

    /// `ctr ARGS...` against this daemon, which must succeed.
    pub fn ctr(&self, args: &[&str]) -> String {
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
pub struct Podman {
    root: TempDir,
    /// The run root must stay short (podman limits it to about 50 bytes).
    runroot: TempDir,
}

impl Podman {
    /// Podman with fresh, empty storage.
    pub fn new() -> Podman {
        let root = TempDir::new().expect("podman root");
        let runroot = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .expect("podman run root");
        Podman { root, runroot }
    }

    /// `podman GLOBAL-FLAGS`, without further arguments.
    pub fn command(&self) -> Command {
        let mut command = client("podman");
        command
            .arg("--root")
            .arg(self.root.path())
            .arg("--runroot")
            .arg(self.runroot.path())
            .arg("--tmpdir")
            .arg(self.runroot.path().join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"]);
        command
    }

    /// `podman GLOBAL-FLAGS ARGS...`, which must succeed.
    pub fn podman(&self, args: &[&str]) -> String {
        run(self.command().args(args))
    }

    /// `podman image inspect` of one image.
    pub fn inspect(&self, image: &str) -> Value {
        let images = json(&self.podman(&["image", "inspect", image]));
        assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
        images[0].clone()
    }
}
