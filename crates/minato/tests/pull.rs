//! End-to-end tests of `minato pull` against a real `minato serve` on 127.0.0.1: images built
//! offline by `make-oci-image.py` and pushed with skopeo are pulled into OCI layouts that
//! skopeo and umoci read back; the kubelet's event lines are checked exactly; an interrupted
//! download resumes with `Range` through a small cutting proxy; a corrupted blob on the server
//! is caught by its digest; credentials come from pull secrets made by `minato create secret`.
//!
//! Every command runs with a timeout and every loop is bounded; all traffic stays on loopback.

#[path = "support/clients.rs"]
mod clients;
mod common;

use clients::{Layout, client, json, run, sha256_digest, skopeo};
use common::Server;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Layer content size of the small test images.
const LAYER_SIZE: usize = 64 * 1024;
/// Content size of the one layer of the large image (random, so gzip keeps its size).
const BIG_LAYER: usize = 24 * 1024 * 1024;
/// Longest one `minato pull` may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest the proxy keeps accepting connections.
const PROXY_LIFETIME: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A registry without authentication, with scratch space; prints the server log on failure.
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

    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `host:port/<repository_and_tag>`.
    fn image(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.server.addr)
    }

    /// Pushes every platform of `layout`'s tag `latest` as `repository_and_tag`.
    fn push(&self, layout: &Layout, repository_and_tag: &str, credentials: &[&str]) {
        let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
        args.extend(credentials);
        let source = layout.oci_reference("latest");
        let destination = format!("docker://{}", self.image(repository_and_tag));
        args.push(&source);
        args.push(&destination);
        skopeo(&args);
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

/// What one `minato pull` did.
struct Pulled {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Pulled {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `minato ARGS...` within [`PULL_TIMEOUT`] (killed after it), output captured.
fn minato(args: &[&str], cwd: &Path) -> Pulled {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting minato");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("polling minato").is_some() {
            break;
        }
        if started.elapsed() > PULL_TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collecting minato");
            panic!(
                "minato {args:?} timed out\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("collecting minato");
    Pulled {
        success: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `minato pull ARGS...`, which must succeed.
fn pull_ok(args: &[&str], cwd: &Path) -> Pulled {
    let mut all = vec!["pull"];
    all.extend(args);
    let pulled = minato(&all, cwd);
    assert!(
        pulled.success,
        "minato {all:?} failed\nstdout:\n{}\nstderr:\n{}",
        pulled.stdout, pulled.stderr
    );
    pulled
}

/// `minato pull ARGS...`, which must fail.
fn pull_failing(args: &[&str], cwd: &Path) -> Pulled {
    let mut all = vec!["pull"];
    all.extend(args);
    let pulled = minato(&all, cwd);
    assert!(
        !pulled.success,
        "minato {all:?} succeeded but should have failed\nstdout:\n{}\nstderr:\n{}",
        pulled.stdout, pulled.stderr
    );
    pulled
}

/// Asserts the exact `Pulling` and `Pulled` event lines of a successful pull of `image` with
/// the image size `size`; durations must be Go durations.
fn assert_pulled_events(pulled: &Pulled, image: &str, size: u64) {
    let lines = pulled.lines();
    assert_eq!(lines.len(), 2, "two events expected:\n{}", pulled.stdout);
    assert_eq!(
        lines[0],
        format!("Normal  Pulling  Pulling image \"{image}\"")
    );
    let prefix = format!("Normal  Pulled  Successfully pulled image \"{image}\" in ");
    let rest = lines[1]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("unexpected Pulled line: {}", lines[1]));
    let (pull, rest) = rest.split_once(" (").expect("pull duration");
    let (total, rest) = rest
        .split_once(" including waiting). ")
        .expect("total duration");
    assert!(is_go_duration(pull), "pull duration {pull:?}");
    assert!(is_go_duration(total), "total duration {total:?}");
    assert_eq!(rest, format!("Image size: {size} bytes."));
}

/// `532ms`, `1.234s`, `1m2.5s`, `0s`: what Go prints for a duration truncated to milliseconds.
fn is_go_duration(text: &str) -> bool {
    if let Some(ms) = text.strip_suffix("ms") {
        return !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit());
    }
    let Some(body) = text.strip_suffix('s') else {
        return false;
    };
    let body = body.rsplit(['h', 'm']).next().unwrap_or(body);
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The `Failed` event line of a failed pull of `image`, with its error text.
fn failed_error<'a>(pulled: &'a Pulled, image: &str) -> &'a str {
    let lines = pulled.lines();
    assert_eq!(
        lines.first().copied(),
        Some(format!("Normal  Pulling  Pulling image \"{image}\"").as_str()),
        "{}",
        pulled.stdout
    );
    let prefix = format!("Warning  Failed  Failed to pull image \"{image}\": ");
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no Failed event for {image}:\n{}", pulled.stdout));
    assert_eq!(
        lines.last().copied(),
        Some("Warning  Failed  Error: ErrImagePull"),
        "{}",
        pulled.stdout
    );
    line
}

/// `skopeo inspect oci:DIR` (the layout's only manifest).
fn inspect_layout(dir: &Path) -> serde_json::Value {
    json(&skopeo(&["inspect", &format!("oci:{}", dir.display())]))
}

/// `umoci stat --image DIR:TAG`, which must succeed; returns its output.
fn umoci_stat(dir: &Path, tag: &str) -> String {
    run(client("umoci")
        .args(["stat", "--image"])
        .arg(format!("{}:{tag}", dir.display())))
}

/// Size of blob `digest` in `layout`.
fn blob_size(layout: &Layout, digest: &str) -> u64 {
    layout.blob(digest).len() as u64
}

/// The size containerd reports for an image: index (if any), manifest, config and layers.
fn image_size(source: &Layout, manifest: &str, with_index: bool) -> u64 {
    let (config, layers) = source.image_parts(manifest);
    let mut size = blob_size(source, manifest) + blob_size(source, &config);
    size += layers.iter().map(|l| blob_size(source, l)).sum::<u64>();
    if with_index {
        size += blob_size(source, &source.top_digest());
    }
    size
}

/// A single-platform layout with one layer of `layer_size` bytes.
fn one_layer_image(dir: PathBuf, layer_size: usize) -> Layout {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/make-oci-image.py"
    );
    run(client("python3")
        .arg(script)
        .arg("--out")
        .arg(&dir)
        .args(["--layers", "1", "--layer-size", &layer_size.to_string()])
        .args(["--platform", "linux/amd64"]));
    Layout { dir }
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that cuts a download
// ---------------------------------------------------------------------------------------------

/// What the proxy does with a request for the watched blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Forward the answer's first N bytes, then close the connection.
    CutAfter(u64),
    /// Close the connection without forwarding the request.
    Refuse,
    /// Forward everything.
    Pass,
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    range: Option<String>,
}

struct ProxyState {
    upstream: String,
    watched: String,
    plan: Mutex<Plan>,
    after_cut: Mutex<Plan>,
    seen: Mutex<Vec<Seen>>,
    to_client: AtomicU64,
}

/// A loopback TCP proxy in front of the registry that watches requests for one blob and cuts
/// or refuses them as planned, recording request lines, `Range` headers and the bytes it
/// forwarded to the client.
struct Proxy {
    addr: String,
    state: Arc<ProxyState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: &str, watched: &str, plan: Plan, after_cut: Plan) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            watched: watched.to_owned(),
            plan: Mutex::new(plan),
            after_cut: Mutex::new(after_cut),
            seen: Mutex::new(Vec::new()),
            to_client: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < PROXY_LIFETIME {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let state = state.clone();
                            std::thread::spawn(move || serve_connection(client, state));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Proxy {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn set_plan(&self, plan: Plan) {
        *self.state.plan.lock().unwrap() = plan;
    }

    fn bytes_to_client(&self) -> u64 {
        self.state.to_client.load(Ordering::SeqCst)
    }

    /// Requests for the watched blob.
    fn watched_requests(&self) -> Vec<Seen> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.line.contains(&self.state.watched))
            .cloned()
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Proxies one client connection until either side closes (or the plan cuts it).
fn serve_connection(client: TcpStream, state: Arc<ProxyState>) {
    let Ok(upstream) = TcpStream::connect(&state.upstream) else {
        return;
    };
    for stream in [&client, &upstream] {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    }
    // Bytes of this connection's answers forwarded so far, and where to cut (u64::MAX: never).
    let sent = Arc::new(AtomicU64::new(0));
    let cut_at = Arc::new(AtomicU64::new(u64::MAX));
    let answers = {
        let (mut from, mut to) = (
            upstream.try_clone().expect("upstream clone"),
            client.try_clone().expect("client clone"),
        );
        let (sent, cut_at, state) = (sent.clone(), cut_at.clone(), state.clone());
        std::thread::spawn(move || {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                let n = match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let already = sent.load(Ordering::SeqCst);
                let limit = cut_at.load(Ordering::SeqCst);
                let allowed = limit.saturating_sub(already).min(n as u64) as usize;
                if to.write_all(&buffer[..allowed]).is_err() {
                    break;
                }
                sent.fetch_add(allowed as u64, Ordering::SeqCst);
                state.to_client.fetch_add(allowed as u64, Ordering::SeqCst);
                if allowed < n {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        })
    };
    let (mut from, mut to) = (client, upstream);
    let mut pending = Vec::new();
    let mut buffer = vec![0; 16 * 1024];
    'connection: loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        // Requests of the pull client are GETs without bodies: each head ends the request.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            let mut lines = head.lines();
            let line = lines.next().unwrap_or_default().to_owned();
            let range = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
                .map(|(_, v)| v.trim().to_owned());
            state.seen.lock().unwrap().push(Seen {
                line: line.clone(),
                range,
            });
            if line.contains(&state.watched) {
                let mut plan = state.plan.lock().unwrap();
                match *plan {
                    Plan::CutAfter(bytes) => {
                        cut_at.store(sent.load(Ordering::SeqCst) + bytes, Ordering::SeqCst);
                        *plan = *state.after_cut.lock().unwrap();
                    }
                    Plan::Refuse => break 'connection,
                    Plan::Pass => {}
                }
            }
        }
        if pending.len() > 64 * 1024 {
            // Not HTTP (a TLS handshake): forward without looking.
            pending.clear();
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
    let _ = answers.join();
}

// ---------------------------------------------------------------------------------------------
// Tests: open registry
// ---------------------------------------------------------------------------------------------

#[test]
fn pulls_each_platform_of_a_multi_arch_image_into_layouts_skopeo_and_umoci_read() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        LAYER_SIZE,
    );
    registry.push(&source, "team/app:v1", &[]);
    let image = registry.image("team/app:v1");

    for arch in ["arm64", "amd64"] {
        let dest = registry.scratch(&format!("pulled-{arch}"));
        let dest_text = dest.display().to_string();
        let platform = format!("linux/{arch}");
        let pulled = pull_ok(
            &[&image, "--platform", &platform, "--dest", &dest_text],
            registry.dir.path(),
        );
        let manifest = source.manifest_for(arch);
        assert_pulled_events(&pulled, &image, image_size(&source, &manifest, true));

        let inspected = inspect_layout(&dest);
        assert_eq!(inspected["Digest"], manifest.as_str(), "{inspected}");
        assert_eq!(inspected["Architecture"], arch, "{inspected}");
        assert_eq!(inspected["Os"], "linux", "{inspected}");
        let (_, layers) = source.image_parts(&manifest);
        assert_eq!(inspected["Layers"], json!(layers), "{inspected}");
        let stat = umoci_stat(&dest, "v1");
        for layer in &layers {
            assert!(stat.contains(layer.as_str()), "umoci stat:\n{stat}");
        }

        let pulled_layout = Layout { dir: dest.clone() };
        let index = json(&std::fs::read_to_string(dest.join("index.json")).unwrap());
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1",
            "{index}"
        );
        assert_eq!(index["manifests"][0]["platform"]["architecture"], arch);
        // Every blob is complete and matches its digest; no partial file is left.
        let (config, layers) = pulled_layout.image_parts(&manifest);
        for digest in std::iter::once(&config).chain(&layers) {
            pulled_layout.blob(digest);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dest.join("blobs/sha256"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    // Without --platform: the machine's platform, into ./app (named after the repository).
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test image for {other}"),
    };
    pull_ok(&[&image], registry.dir.path());
    let inspected = inspect_layout(&registry.scratch("app"));
    assert_eq!(inspected["Architecture"], host_arch, "{inspected}");
    assert_eq!(
        inspected["Digest"],
        source.manifest_for(host_arch).as_str(),
        "{inspected}"
    );

    // A second pull of the same image downloads nothing again.
    let again = pull_ok(&[&image], registry.dir.path());
    assert!(
        again.stderr.contains(" 0 bytes downloaded"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_missing_platform_fails_with_containerds_error() {
    let registry = Registry::start();
    let source = Layout::build(
        registry.scratch("source"),
        &["linux/amd64", "linux/arm64"],
        LAYER_SIZE,
    );
    registry.push(&source, "app:v1", &[]);
    let image = registry.image("app:v1");
    let dest = registry.scratch("pulled");
    let dest_text = dest.display().to_string();

    let pulled = pull_failing(
        &[&image, "--platform", "linux/s390x", "--dest", &dest_text],
        registry.dir.path(),
    );
    assert_eq!(
        failed_error(&pulled, &image),
        "no match for platform in manifest: not found"
    );
    assert!(
        pulled.stderr.contains("linux/amd64, linux/arm64"),
        "the hint lists the platforms:\n{}",
        pulled.stderr
    );
    assert!(!dest.exists(), "nothing is written for a failed lookup");

    let pulled = pull_failing(
        &[&image, "--platform", "linux", "--dest", &dest_text],
        registry.dir.path(),
    );
    assert!(pulled.stdout.is_empty(), "{}", pulled.stdout);
    assert!(pulled.stderr.contains("os/arch"), "{}", pulled.stderr);
}

#[test]
fn unknown_tags_and_bad_names_report_the_registrys_and_kubelets_messages() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], LAYER_SIZE);
    registry.push(&source, "app:v1", &[]);

    let image = registry.image("app:nope");
    let pulled = pull_failing(&[&image], registry.dir.path());
    let error = failed_error(&pulled, &image);
    assert!(
        error.starts_with(&format!(
            "Get \"http://{}/v2/app/manifests/nope\": manifest unknown: ",
            registry.server.addr
        )),
        "{error}"
    );

    let untagged = registry.image("app");
    let pulled = pull_failing(&[&untagged], registry.dir.path());
    failed_error(&pulled, &format!("{untagged}:latest"));

    let pulled = pull_failing(&["a//b"], registry.dir.path());
    assert_eq!(
        pulled.lines(),
        [
            "Warning  InspectFailed  Failed to apply default image tag \"a//b\": couldn't parse image name \"a//b\": invalid reference format"
        ]
    );
}

#[test]
fn a_corrupt_blob_on_the_server_is_detected_by_its_digest() {
    let registry = Registry::start();
    let source = Layout::build(registry.scratch("source"), &["linux/amd64"], LAYER_SIZE);
    registry.push(&source, "app:v1", &[]);
    let manifest = source.top_digest();
    let (_, layers) = source.image_parts(&manifest);
    let layer = &layers[1];
    let hex = layer.strip_prefix("sha256:").unwrap();
    let stored = registry
        .server
        .data_dir
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    let mut bytes = std::fs::read(&stored).expect("the stored layer");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    // Same size, same file (the server maps it): only the digest can tell.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("corrupting the stored layer");

    let image = registry.image("app:v1");
    let dest = registry.scratch("pulled");
    let dest_text = dest.display().to_string();
    let pulled = pull_failing(&[&image, "--dest", &dest_text], registry.dir.path());
    let actual = sha256_digest(&bytes);
    assert_eq!(
        failed_error(&pulled, &image),
        format!(
            "failed commit on ref \"layer-{layer}\": unexpected commit digest {actual}, expected {layer}: failed precondition"
        )
    );
    assert!(!dest.join("blobs/sha256").join(hex).exists());
    assert!(!dest.join(format!("blobs/sha256/{hex}.partial")).exists());
    assert!(
        !dest.join("index.json").exists(),
        "no index names a bad blob"
    );
}

#[test]
fn an_interrupted_pull_resumes_with_a_range_request_on_the_next_run() {
    let registry = Registry::start();
    let source = one_layer_image(registry.scratch("source"), BIG_LAYER);
    registry.push(&source, "big:v1", &[]);
    let manifest = source.top_digest();
    let (_, layers) = source.image_parts(&manifest);
    let layer = layers[0].clone();
    let layer_size = blob_size(&source, &layer);
    let cut = layer_size * 6 / 10;

    // First run: the layer's answer is cut after 60%, and the in-run retries are refused.
    let proxy = Proxy::start(
        &registry.server.addr,
        &layer,
        Plan::CutAfter(cut),
        Plan::Refuse,
    );
    let image = format!("{}/big:v1", proxy.addr);
    let dest = registry.scratch("pulled");
    let dest_text = dest.display().to_string();
    let args = [image.as_str(), "--dest", &dest_text];
    let first = pull_failing(&args, registry.dir.path());
    failed_error(&first, &image);
    let hex = layer.strip_prefix("sha256:").unwrap();
    let partial = dest.join(format!("blobs/sha256/{hex}.partial"));
    let kept = std::fs::metadata(&partial)
        .unwrap_or_else(|e| panic!("no partial file {}: {e}", partial.display()))
        .len();
    assert!(
        kept > 0 && kept <= cut,
        "kept {kept} of {cut} forwarded bytes"
    );
    assert!(first.stderr.contains("resumes"), "{}", first.stderr);

    // Second run: everything passes; the layer resumes where the first run stopped.
    proxy.set_plan(Plan::Pass);
    let second = pull_ok(&args, registry.dir.path());
    assert_pulled_events(&second, &image, image_size(&source, &manifest, false));
    let ranged: Vec<Seen> = proxy
        .watched_requests()
        .into_iter()
        .filter(|s| s.range.is_some())
        .collect();
    let expected_range = format!("bytes={kept}-");
    assert!(
        ranged
            .iter()
            .any(|s| s.range.as_deref() == Some(expected_range.as_str())),
        "no request with Range {expected_range}: {:?}",
        proxy.watched_requests()
    );
    assert!(
        second
            .stderr
            .contains(&format!(" {kept} resumed from an earlier pull")),
        "{}",
        second.stderr
    );
    let transferred = proxy.bytes_to_client();
    assert!(
        transferred < layer_size * 3 / 2,
        "{transferred} bytes went through the proxy for a {layer_size}-byte layer"
    );

    let inspected = inspect_layout(&dest);
    assert_eq!(inspected["Digest"], manifest.as_str(), "{inspected}");
    Layout { dir: dest.clone() }.blob(&layer);
    assert!(!partial.exists(), "the partial file became the blob");
    umoci_stat(&dest, "v1");
}

#[test]
fn an_interrupted_blob_resumes_within_the_same_pull() {
    let registry = Registry::start();
    let source = one_layer_image(registry.scratch("source"), BIG_LAYER);
    registry.push(&source, "big:v1", &[]);
    let manifest = source.top_digest();
    let (_, layers) = source.image_parts(&manifest);
    let layer = layers[0].clone();
    let layer_size = blob_size(&source, &layer);

    let proxy = Proxy::start(
        &registry.server.addr,
        &layer,
        Plan::CutAfter(layer_size / 2),
        Plan::Pass,
    );
    let image = format!("{}/big:v1", proxy.addr);
    let dest = registry.scratch("pulled");
    let dest_text = dest.display().to_string();
    let pulled = pull_ok(&[&image, "--dest", &dest_text], registry.dir.path());
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
    let requests = proxy.watched_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None, "{requests:?}");
    let range = requests[1].range.as_deref().expect("a Range on the retry");
    let offset: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Range {range:?}"));
    assert!(offset > 0 && offset <= layer_size / 2, "{range}");
    assert!(proxy.bytes_to_client() < layer_size * 3 / 2);
    assert_eq!(inspect_layout(&dest)["Digest"], manifest.as_str());
}

// ---------------------------------------------------------------------------------------------
// Tests: tenancy authentication and pull secrets
// ---------------------------------------------------------------------------------------------

/// The tenancy namespace the authenticated server bootstraps.
const NAMESPACE: &str = "acme";

/// A registry with tenancy authentication: its bootstrap administrator pushes, user `reader`
/// of group `Pullers` (read repos) pulls with an auth token.
struct SecureRegistry {
    registry: Registry,
    admin: (String, String),
    reader_token: String,
}

impl SecureRegistry {
    fn start() -> SecureRegistry {
        let dir = TempDir::new().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let server = Server::start_authenticated(&data_dir, &["--bootstrap-namespace", NAMESPACE]);
        let bootstrap =
            json(&std::fs::read_to_string(data_dir.join("bootstrap.json")).expect("bootstrap"));
        let field = |key: &str| bootstrap[key].as_str().expect(key).to_owned();
        let mut secure = SecureRegistry {
            registry: Registry { server, dir },
            admin: (field("username"), field("password")),
            reader_token: String::new(),
        };
        secure.admin_cmd(&["group", "create", NAMESPACE, "Pullers"]);
        secure.admin_cmd(&[
            "policy",
            "add",
            NAMESPACE,
            "allow group Pullers to read repos in tenancy",
        ]);
        secure.admin_cmd(&["user", "create", NAMESPACE, "reader"]);
        secure.admin_cmd(&["group", "add-user", NAMESPACE, "Pullers", "reader"]);
        let created =
            json(&secure.admin_cmd(&["--output", "json", "token", "create", NAMESPACE, "reader"]));
        secure.reader_token = created["token"].as_str().expect("token").to_owned();
        secure
    }

    /// `minato admin ARGS...` as the bootstrap administrator.
    fn admin_cmd(&self, args: &[&str]) -> String {
        run(Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["admin", "--server", &self.registry.server.url()])
            .args(["--username", &self.admin.0])
            .args(args)
            .env("MINATO_PASSWORD", &self.admin.1))
    }

    /// Pushes a single-platform test image as `acme/app:v1` with the administrator's login.
    fn push_app(&self) -> Layout {
        let source = Layout::build(
            self.registry.scratch("source"),
            &["linux/amd64"],
            LAYER_SIZE,
        );
        let creds = format!("{}:{}", self.admin.0, self.admin.1);
        self.registry.push(
            &source,
            &format!("{NAMESPACE}/app:v1"),
            &["--dest-creds", &creds],
        );
        source
    }

    /// A pull secret for `username`/`password` made by `minato create secret docker-registry`,
    /// written to `file` in the scratch space; returns its path.
    fn secret_file(&self, name: &str, username: &str, password: &str, file: &str) -> String {
        let yaml = run(Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["create", "secret", "docker-registry", name])
            .args(["--docker-server", &self.registry.server.addr])
            .args(["--docker-username", username])
            .args(["--docker-password", password]));
        let path = self.registry.scratch(file);
        std::fs::write(&path, yaml).expect("writing the secret");
        path.display().to_string()
    }

    fn reader(&self) -> String {
        format!("{NAMESPACE}/reader")
    }

    fn image(&self) -> String {
        self.registry.image(&format!("{NAMESPACE}/app:v1"))
    }

    fn cwd(&self) -> &Path {
        self.registry.dir.path()
    }
}

/// Asserts that no output of a pull shows `token`.
fn assert_no_secret(pulled: &Pulled, token: &str) {
    assert!(
        !pulled.stdout.contains(token) && !pulled.stderr.contains(token),
        "the password was printed:\n{}\n{}",
        pulled.stdout,
        pulled.stderr
    );
}

#[test]
fn pulls_with_a_pull_secret_and_fails_with_the_registrys_message_without_one() {
    let secure = SecureRegistry::start();
    let source = secure.push_app();
    let image = secure.image();
    let good = secure.secret_file(
        "regcred",
        &secure.reader(),
        &secure.reader_token,
        "good.yaml",
    );

    let pulled = pull_ok(
        &[&image, "--secret", &good, "--dest", "with-secret"],
        secure.cwd(),
    );
    let manifest = source.top_digest();
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
    assert!(
        pulled.stderr.contains("as acme/reader"),
        "{}",
        pulled.stderr
    );
    assert_no_secret(&pulled, &secure.reader_token);
    let inspected = inspect_layout(&secure.cwd().join("with-secret"));
    assert_eq!(inspected["Digest"], manifest.as_str(), "{inspected}");

    // Anonymous: the registry's denial of anonymous pulls of a private repository.
    let pulled = pull_failing(&[&image, "--dest", "anonymous"], secure.cwd());
    let error = failed_error(&pulled, &image);
    assert_eq!(
        error,
        format!(
            "Get \"http://{}/v2/{NAMESPACE}/app/manifests/v1\": denied: Anonymous users are only allowed read access on public repos",
            secure.registry.server.addr
        )
    );
    assert!(pulled.stderr.contains("anonymous"), "{}", pulled.stderr);

    // A wrong token: the token endpoint's 401 with the registry's own message.
    let mut wrong_token = secure.reader_token.clone();
    let last = wrong_token.pop().unwrap();
    wrong_token.push(if last == 'x' { 'y' } else { 'x' });
    let bad = secure.secret_file("badcred", &secure.reader(), &wrong_token, "bad.yaml");
    let pulled = pull_failing(&[&image, "--secret", &bad, "--dest", "bad"], secure.cwd());
    let error = failed_error(&pulled, &image);
    assert!(
        error.starts_with(&format!(
            "Get \"http://{}/20180419/docker/token?",
            secure.registry.server.addr
        )),
        "{error}"
    );
    assert!(
        error.ends_with("\": unauthorized: Unauthorized: the username or auth token is incorrect (use <tenancy-namespace>/<username> and an auth token)"),
        "{error}"
    );
    assert_no_secret(&pulled, &wrong_token);

    // Several secrets: tried in order, the first that works wins.
    let pulled = pull_ok(
        &[
            &image, "--secret", &bad, "--secret", &good, "--dest", "second",
        ],
        secure.cwd(),
    );
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
}

#[test]
fn a_workload_manifest_supplies_image_policy_and_secrets() {
    let secure = SecureRegistry::start();
    let source = secure.push_app();
    let image = secure.image();
    let manifest = source.top_digest();
    let secret = secure.secret_file("regcred", &secure.reader(), &secure.reader_token, "s.yaml");
    let secret_yaml = std::fs::read_to_string(&secret).unwrap();

    // A Pod listing the secret, with the Secret in the same file.
    let pod = format!(
        "{secret_yaml}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: sidecar\n    image: {}/{NAMESPACE}/other:v9\n  - name: web\n    image: {image}\n    imagePullPolicy: IfNotPresent\n  imagePullSecrets:\n  - name: regcred\n",
        secure.registry.server.addr
    );
    let pod_file = secure.registry.scratch("pod.yaml");
    std::fs::write(&pod_file, &pod).unwrap();
    let pod_text = pod_file.display().to_string();
    let pulled = pull_ok(
        &["-f", &pod_text, "--container", "web", "--dest", "pod"],
        secure.cwd(),
    );
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
    // IfNotPresent: the second time the image is present.
    let again = pull_ok(
        &["-f", &pod_text, "--container", "web", "--dest", "pod"],
        secure.cwd(),
    );
    assert_eq!(
        again.lines(),
        [format!(
            "Normal  Pulled  Container image \"{image}\" already present on machine"
        )]
    );
    // Two containers: one must be chosen.
    let pulled = pull_failing(&["-f", &pod_text, "--dest", "pod"], secure.cwd());
    assert!(pulled.stderr.contains("--container"), "{}", pulled.stderr);

    // No imagePullSecrets in the pod: its ServiceAccount's apply (the secret from --secret).
    let by_account = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: puller\nimagePullSecrets:\n- name: regcred\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      serviceAccountName: puller\n      containers:\n      - name: web\n        image: {image}\n"
    );
    let account_file = secure.registry.scratch("deployment.yaml");
    std::fs::write(&account_file, by_account).unwrap();
    let account_text = account_file.display().to_string();
    let pulled = pull_ok(
        &["-f", &account_text, "--secret", &secret, "--dest", "sa"],
        secure.cwd(),
    );
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
    assert_no_secret(&pulled, &secure.reader_token);

    // A referenced secret that is missing: the kubelet's warning, then an anonymous pull.
    let missing = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  imagePullSecrets:\n  - name: nope\n  containers:\n  - name: web\n    image: {image}\n"
    );
    let missing_file = secure.registry.scratch("missing.yaml");
    std::fs::write(&missing_file, missing).unwrap();
    let missing_text = missing_file.display().to_string();
    let pulled = pull_failing(&["-f", &missing_text, "--dest", "missing"], secure.cwd());
    let lines = pulled.lines();
    assert_eq!(
        lines[0],
        "Warning  FailedToRetrieveImagePullSecret  Unable to retrieve some image pull secrets (nope); attempting to pull the image may not succeed."
    );
    assert_eq!(
        lines[1],
        format!("Normal  Pulling  Pulling image \"{image}\"")
    );
    assert!(
        lines[2].ends_with("denied: Anonymous users are only allowed read access on public repos"),
        "{}",
        pulled.stdout
    );
}

#[test]
fn the_node_docker_config_is_tried_after_the_secrets() {
    let secure = SecureRegistry::start();
    let source = secure.push_app();
    let image = secure.image();
    let config = secure.registry.scratch("config.json");
    // base64("user:token") as docker login writes it (python: the tests already use it).
    let pair = format!("{}:{}", secure.reader(), secure.reader_token);
    let encode = "import base64, sys; print(base64.b64encode(sys.argv[1].encode()).decode())";
    let auth = run(client("python3").args(["-c", encode, &pair]))
        .trim()
        .to_owned();
    std::fs::write(
        &config,
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            secure.registry.server.addr
        ),
    )
    .unwrap();
    let config_text = config.display().to_string();
    let other = secure.secret_file("other", "acme/nobody", "wrong", "other.yaml");
    let pulled = pull_ok(
        &[
            &image,
            "--secret",
            &other,
            "--docker-config",
            &config_text,
            "--dest",
            "node",
        ],
        secure.cwd(),
    );
    let manifest = source.top_digest();
    assert_pulled_events(&pulled, &image, image_size(&source, &manifest, false));
    assert!(
        pulled.stderr.contains("as acme/reader"),
        "{}",
        pulled.stderr
    );
    assert_no_secret(&pulled, &secure.reader_token);
}
