//! End-to-end tests with real registry clients from Debian packages: skopeo, containerd's
//! `ctr` (against a private containerd daemon) and podman (root, without systemd), as described
//! in `/work/shared/reference/real-clients.md`.
//!
//! Each test starts its own `minato serve` on 127.0.0.1 with a temporary data directory, builds
//! its test images offline with `tests/support/make-oci-image.py`, and drives the clients over
//! plain HTTP. Every client call is bounded by a timeout; a failing call reports the command,
//! its exit status and its output, and a failing test prints the server log. A missing client
//! fails the test: `scripts/test` installs them.

#[path = "support/clients.rs"]
mod clients;
mod common;

use clients::{
    Containerd, Layout, Podman, client, json, parts_of, run, run_failing, sha256_digest, skopeo,
    skopeo_inspect,
};
use common::Server;
use std::path::PathBuf;
use tempfile::TempDir;

/// Layer content size for tests about naming and metadata.
const SMALL_LAYER: usize = 4096;
/// Layer content size for tests about bytes: spans several of the server's 2 MiB serving
/// windows, and is not a multiple of common chunk sizes.
const LARGE_LAYER: usize = 5 * 1024 * 1024 + 321;

// ---------------------------------------------------------------------------------------------
// The registry
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
