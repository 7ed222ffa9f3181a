//! Crash safety end to end: concurrent pushes while `minato serve` is killed with SIGKILL at
//! random moments, restarted on the same port and data directory, and checked after every
//! restart.
//!
//! Each worker task pushes into one repository and owns its tags, so its requests reach the
//! registry in the order it sends them. A worker remembers what the registry acknowledged (a
//! 201) and the one request that was in flight when the connection died, whose effect is
//! unknown; if its effect is visible after the restart it counts as acknowledged from then on.
//! After every restart the registry must show:
//! - every acknowledged blob, with the right size and bytes hashing to its digest;
//! - every acknowledged manifest byte for byte, and every tag on its last acknowledged manifest,
//!   or on the manifest whose push was in flight for that tag if (and only if) that manifest
//!   landed: a manifest and its tags are one transaction;
//! - nothing half-written: every listed tag resolves, the blobs of every visible manifest
//!   exist, every blob served hashes to its digest;
//! - interrupted upload sessions are either gone (`404 BLOB_UPLOAD_UNKNOWN`) or resumable: the
//!   status (`204`, `Range`) lies between the acknowledged and the sent bytes, and continuing
//!   from there completes with the right digest (a wrong one is refused); never a 500.
//!
//! The run is seeded: `CRASH_SEED=<n>` replays the printed seed's content and kill delays
//! (where the kills land still depends on scheduling).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// Kill/restart cycles.
const KILLS: usize = 24;
const _: () = assert!(KILLS >= 20, "the crash test promises at least 20 kills");
/// Concurrent pushing clients.
const WORKERS: usize = 5;
/// Repositories; worker `i` pushes into `REPOS[i % REPOS.len()]`.
const REPOS: [&str; 3] = ["crash/alpha", "crash/beta", "crash/nested/gamma"];
/// Tags each worker owns.
const TAGS_PER_WORKER: usize = 2;
/// How long after the workers start the server is killed.
const KILL_DELAY_MS: Range<u64> = 50..500;
/// Upper bounds of one round for each worker (the kill normally ends it much earlier).
const STEPS_PER_ROUND: usize = 200;
const ROUND_LIMIT: Duration = Duration::from_secs(20);
/// Sizes of monolithic and chunked blob pushes (log-uniform).
const MONOLITHIC_SIZE: Range<usize> = 4 << 10..1 << 20;
const CHUNKED_SIZE: Range<usize> = 16 << 10..4 << 20;
/// Blobs every worker pushes now and then, so identical content is committed concurrently
/// and into several repositories.
const SHARED_BLOBS: u64 = 3;
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_sigkill() {
    let started = Instant::now();
    let seed = seed();
    println!("crash test seed {seed} (replay with CRASH_SEED={seed})");
    let scratch = Scratch::new();
    let data_dir = scratch.path().join("data");
    std::fs::create_dir(&data_dir).expect("data directory");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|id| Worker::new(id, rng.random()))
        .collect();
    let mut stats = Stats::default();

    for round in 1..=KILLS + 1 {
        let mut server = start(&data_dir, &addr).await;
        let registry = Registry::new(&server.url());
        let checked = Instant::now();
        let (blobs, manifests) = verify(&registry, &mut workers, &mut stats).await;
        println!(
            "start {round:2}: verified {blobs} blobs and {manifests} manifests in {:?}",
            checked.elapsed()
        );
        if round > KILLS {
            break;
        }
        let delay = Duration::from_millis(rng.random_range(KILL_DELAY_MS));
        workers = push_until_killed(&registry, workers, &mut server, delay).await;
        println!("          pushed for {delay:?}, then SIGKILL");
    }
    println!("{stats:#?}");
    println!("crash test finished in {:?}", started.elapsed());
}

/// `CRASH_SEED` from the environment, or a fresh random seed.
fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("CRASH_SEED must be an unsigned integer"))
        .unwrap_or_else(rand::random)
}

/// Starts the server on a blocking thread (it polls for readiness).
async fn start(data_dir: &Path, addr: &str) -> Server {
    let (data_dir, addr) = (data_dir.to_owned(), addr.to_owned());
    tokio::task::spawn_blocking(move || Server::start_on(&data_dir, &addr, &[]))
        .await
        .expect("server start")
}

/// Lets every worker push until the server is killed `delay` from now; returns the workers
/// with what they learned.
async fn push_until_killed(
    registry: &Registry,
    workers: Vec<Worker>,
    server: &mut Server,
    delay: Duration,
) -> Vec<Worker> {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.push(registry.clone())))
        .collect();
    tokio::time::sleep(delay).await;
    server.kill();
    let mut workers = Vec::with_capacity(tasks.len());
    for task in tasks {
        let joined = tokio::time::timeout(ROUND_LIMIT, task)
            .await
            .expect("workers stop soon after the kill");
        workers.push(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    workers
}

/// Outcomes worth reporting, beyond the assertions.
#[derive(Debug, Default)]
struct Stats {
    /// Monolithic blob and manifest pushes cut by a kill whose effect turned out visible /
    /// absent after the restart.
    in_flight_landed: usize,
    in_flight_lost: usize,
    /// Interrupted sessions completed after the restart (of which: all bytes already there).
    sessions_resumed: usize,
    sessions_resumed_complete: usize,
    /// Resumed sessions that refused a wrong digest.
    sessions_refused_wrong_digest: usize,
    /// Sessions answering 404 after the restart, by whether their final PUT had been sent.
    sessions_gone_after_final_put: usize,
    sessions_gone_before_final_put: usize,
}

// ---------------------------------------------------------------------------------------------
// Workers

/// One pushing client and everything it knows about its effects on the registry.
struct Worker {
    id: usize,
    repo: &'static str,
    rng: StdRng,
    /// Blobs acknowledged in `repo` (the only ones its manifests reference).
    blobs: Vec<Blob>,
    /// Acknowledged manifests: digest → exact bytes.
    manifests: BTreeMap<String, Vec<u8>>,
    /// Its tags → the manifest digest each must resolve to (`None`: never pushed).
    tags: BTreeMap<String, Option<String>>,
    /// The request the last kill interrupted, if any.
    in_flight: Option<InFlight>,
    /// Manifests pushed so far; keeps every manifest unique.
    serial: u64,
}

/// A request whose outcome is unknown because the server died during it.
enum InFlight {
    Blob(Blob),
    Manifest {
        digest: String,
        bytes: Vec<u8>,
        tag: Option<String>,
    },
    Upload(Session),
}

/// A chunked upload session and how far it got.
#[derive(Clone)]
struct Session {
    /// Absolute session URL.
    url: String,
    blob: Blob,
    /// Bytes the registry acknowledged (last 202 `Range` end + 1).
    acked: usize,
    /// Bytes sent or being sent; the registry cannot hold more.
    sent: usize,
    /// Whether the final `PUT ?digest=` was sent.
    finishing: bool,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "upload session {} of {} bytes ({} acknowledged, {} sent, final PUT {})",
            self.url,
            self.blob.size,
            self.acked,
            self.sent,
            if self.finishing { "sent" } else { "not sent" }
        )
    }
}

impl Worker {
    fn new(id: usize, seed: u64) -> Worker {
        Worker {
            id,
            repo: REPOS[id % REPOS.len()],
            rng: StdRng::seed_from_u64(seed),
            blobs: Vec::new(),
            manifests: BTreeMap::new(),
            tags: (0..TAGS_PER_WORKER)
                .map(|t| (format!("w{id}-t{t}"), None))
                .collect(),
            in_flight: None,
            serial: 0,
        }
    }

    /// Pushes random operations until the server stops answering (or a round limit).
    async fn push(mut self, registry: Registry) -> Worker {
        let deadline = Instant::now() + ROUND_LIMIT;
        for _ in 0..STEPS_PER_ROUND {
            if Instant::now() > deadline || self.step(&registry).await.is_err() {
                break;
            }
        }
        self
    }

    async fn step(&mut self, registry: &Registry) -> Result<(), Gone> {
        let choice = self.rng.random_range(0..100);
        match choice {
            0..35 => {
                let (blob, data) = Blob::random(&mut self.rng, MONOLITHIC_SIZE);
                self.push_monolithic(registry, blob, data).await
            }
            35..65 => {
                let (blob, data) = Blob::random(&mut self.rng, CHUNKED_SIZE);
                self.push_chunked(registry, blob, data).await
            }
            65..75 => {
                let k = self.rng.random_range(0..SHARED_BLOBS);
                let (blob, data) = Blob::generate(u64::MAX - k, (k as usize + 1) * (96 << 10));
                if self.rng.random_bool(0.5) {
                    self.push_monolithic(registry, blob, data).await
                } else {
                    self.push_chunked(registry, blob, data).await
                }
            }
            _ if self.blobs.is_empty() => Ok(()),
            _ => self.push_manifest(registry).await,
        }
    }

    /// Records `in_flight` as the interrupted request when `result` is a lost connection.
    fn unless_gone<T>(
        &mut self,
        result: Result<T, Gone>,
        in_flight: impl FnOnce() -> InFlight,
    ) -> Result<T, Gone> {
        if result.is_err() {
            self.in_flight = Some(in_flight());
        }
        result
    }

    fn acknowledge(&mut self, blob: Blob) {
        if !self.blobs.contains(&blob) {
            self.blobs.push(blob);
        }
    }

    async fn push_monolithic(
        &mut self,
        registry: &Registry,
        blob: Blob,
        data: Vec<u8>,
    ) -> Result<(), Gone> {
        let result = registry.post_blob(self.repo, &blob.digest, data).await;
        let reply = self.unless_gone(result, || InFlight::Blob(blob.clone()))?;
        reply.expect_created("monolithic blob push", &blob.digest);
        self.acknowledge(blob);
        Ok(())
    }

    async fn push_chunked(
        &mut self,
        registry: &Registry,
        blob: Blob,
        data: Vec<u8>,
    ) -> Result<(), Gone> {
        // A session whose creation was cut off has no id to check later.
        let reply = registry.start_upload(self.repo).await?;
        reply.expect(StatusCode::ACCEPTED, "upload session start");
        let mut session = Session {
            url: registry.url(reply.header(LOCATION.as_str())),
            blob,
            acked: 0,
            sent: 0,
            finishing: false,
        };
        let pieces = chunk_bounds(data.len(), &mut self.rng);
        let last_in_put = self.rng.random_bool(0.5);
        let result = upload_pieces(registry, &mut session, &data, &pieces, last_in_put).await;
        self.unless_gone(result, || InFlight::Upload(session.clone()))?;
        self.acknowledge(session.blob);
        Ok(())
    }

    async fn push_manifest(&mut self, registry: &Registry) -> Result<(), Gone> {
        self.serial += 1;
        let config = self.blobs.choose(&mut self.rng).expect("a blob").clone();
        let count = self.rng.random_range(1..=3);
        let layers: Vec<Blob> = self
            .blobs
            .choose_multiple(&mut self.rng, count)
            .cloned()
            .collect();
        let bytes = image_manifest(&config, &layers, self.id, self.serial);
        let digest = sha256(&bytes);
        let tag = if self.rng.random_bool(0.8) {
            let index = self.rng.random_range(0..TAGS_PER_WORKER);
            self.tags.keys().nth(index).cloned()
        } else {
            None
        };
        let reference = tag.as_deref().unwrap_or(&digest);
        let result = registry.put_manifest(self.repo, reference, &bytes).await;
        let reply = self.unless_gone(result, || InFlight::Manifest {
            digest: digest.clone(),
            bytes: bytes.clone(),
            tag: tag.clone(),
        })?;
        reply.expect_created("manifest push", &digest);
        if let Some(tag) = tag {
            self.tags.insert(tag, Some(digest.clone()));
        }
        self.manifests.insert(digest, bytes);
        Ok(())
    }
}

/// Piece boundaries `[0, .., len]` of a blob sent in 2–5 pieces; the first piece is never a
/// single byte (see [`Reply::upload_offset`]).
fn chunk_bounds(len: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut bounds: Vec<usize> = (0..rng.random_range(1..=4))
        .map(|_| rng.random_range(2..len))
        .chain([0, len])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds
}

/// PATCHes the pieces of `data`, then PUTs `?digest=` with the last piece or an empty body,
/// keeping `session` up to date for the case the connection dies.
async fn upload_pieces(
    registry: &Registry,
    session: &mut Session,
    data: &[u8],
    bounds: &[usize],
    last_in_put: bool,
) -> Result<(), Gone> {
    let patched_up_to = if last_in_put {
        bounds[bounds.len() - 2]
    } else {
        data.len()
    };
    for piece in bounds.windows(2).filter(|w| w[1] <= patched_up_to) {
        session.sent = piece[1];
        let reply = registry
            .patch(&session.url, piece[0], &data[piece[0]..piece[1]])
            .await?;
        reply.expect(StatusCode::ACCEPTED, "upload PATCH");
        assert_eq!(
            reply.upload_offset(),
            piece[1],
            "PATCH acknowledges its chunk"
        );
        session.acked = piece[1];
    }
    session.sent = data.len();
    session.finishing = true;
    let last = &data[patched_up_to..];
    let reply = registry
        .finish(&session.url, &session.blob.digest, patched_up_to, last)
        .await?;
    reply.expect_created("final upload PUT", &session.blob.digest);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Verification after a restart

/// Checks everything the workers know against a freshly restarted registry, resolving each
/// interrupted request, and then the registry's own listings; returns how many blobs and
/// manifests it checked.
async fn verify(registry: &Registry, workers: &mut [Worker], stats: &mut Stats) -> (usize, usize) {
    let mut blobs = BTreeMap::new();
    let mut manifests = 0;
    for worker in workers.iter_mut() {
        let landed_tag = worker.settle_in_flight(registry, stats).await;
        worker.check_tags(registry, landed_tag).await;
        for (digest, bytes) in &worker.manifests {
            let served = registry.manifest(worker.repo, digest).await;
            let (_, served) = served.unwrap_or_else(|| {
                panic!("acknowledged manifest {}@{digest} is missing", worker.repo)
            });
            assert_eq!(&served, bytes, "{}@{digest} content", worker.repo);
            collect_references(&mut blobs, worker.repo, bytes);
            manifests += 1;
        }
        for blob in &worker.blobs {
            note_blob(&mut blobs, worker.repo, &blob.digest, blob.size);
        }
    }
    for repo in REPOS {
        manifests += check_listing(registry, repo, workers, &mut blobs).await;
    }
    for ((repo, digest), size) in &blobs {
        check_blob(registry, repo, digest, *size).await;
    }
    (blobs.len(), manifests)
}

impl Worker {
    /// Finds out what the interrupted request did; returns the tag of an interrupted manifest
    /// push that landed, with its digest.
    async fn settle_in_flight(
        &mut self,
        registry: &Registry,
        stats: &mut Stats,
    ) -> Option<(String, String)> {
        match self.in_flight.take()? {
            InFlight::Blob(blob) => {
                if self.observe_blob(registry, blob).await {
                    stats.in_flight_landed += 1;
                } else {
                    stats.in_flight_lost += 1;
                }
                None
            }
            InFlight::Manifest { digest, bytes, tag } => {
                let Some((_, served)) = registry.manifest(self.repo, &digest).await else {
                    stats.in_flight_lost += 1;
                    return None;
                };
                assert_eq!(
                    served, bytes,
                    "interrupted manifest {digest} landed altered"
                );
                stats.in_flight_landed += 1;
                self.manifests.insert(digest.clone(), bytes);
                tag.map(|tag| (tag, digest))
            }
            InFlight::Upload(session) => {
                self.resume_upload(registry, session, stats).await;
                None
            }
        }
    }

    /// Adopts `blob` if the registry shows it (it is then checked like acknowledged blobs).
    async fn observe_blob(&mut self, registry: &Registry, blob: Blob) -> bool {
        let reply = registry.blob(Method::HEAD, self.repo, &blob.digest).await;
        match reply.status {
            StatusCode::OK => {
                self.acknowledge(blob);
                true
            }
            StatusCode::NOT_FOUND => false,
            _ => reply.fail("HEAD of an interrupted blob"),
        }
    }

    /// Every owned tag resolves to its acknowledged manifest, or to the interrupted push's
    /// manifest if that one landed (manifest and tag commit together).
    async fn check_tags(&mut self, registry: &Registry, landed: Option<(String, String)>) {
        for (tag, expected) in &mut self.tags {
            if let Some((_, digest)) = landed.as_ref().filter(|(t, _)| t == tag) {
                *expected = Some(digest.clone());
            }
            let served = registry.manifest(self.repo, tag).await;
            assert_eq!(
                served.as_ref().map(|(digest, _)| digest),
                expected.as_ref(),
                "tag {}:{tag} must be on the last manifest pushed to it that landed",
                self.repo
            );
            if let Some((digest, bytes)) = served {
                assert_eq!(Some(&bytes), self.manifests.get(&digest), "{tag} content");
            }
        }
    }

    /// An interrupted session must resume from a plausible offset and complete with the
    /// right digest (a wrong one refused), or be gone cleanly.
    async fn resume_upload(&mut self, registry: &Registry, session: Session, stats: &mut Stats) {
        let Some(offset) = upload_offset(registry, &session).await else {
            if session.finishing {
                stats.sessions_gone_after_final_put += 1;
                self.observe_blob(registry, session.blob).await;
            } else {
                stats.sessions_gone_before_final_put += 1;
            }
            return;
        };
        assert!(
            (session.acked..=session.sent).contains(&offset),
            "{session} resumes at {offset}"
        );
        let data = session.blob.bytes();
        if offset < data.len() {
            let reply = registry.patch(&session.url, offset, &data[offset..]).await;
            let reply = reply.expect("resumed PATCH");
            reply.expect(StatusCode::ACCEPTED, &format!("resumed PATCH of {session}"));
            assert_eq!(reply.upload_offset(), data.len());
        } else {
            stats.sessions_resumed_complete += 1;
        }
        if self.rng.random_bool(0.25) {
            refuse_wrong_digest(registry, self.repo, &session, &data).await;
            stats.sessions_refused_wrong_digest += 1;
            return;
        }
        let reply = registry
            .finish(&session.url, &session.blob.digest, data.len(), &[])
            .await;
        let reply = reply.expect("resumed final PUT");
        reply.expect_created(
            &format!("final PUT of {session} resumed at {offset}"),
            &session.blob.digest,
        );
        stats.sessions_resumed += 1;
        self.acknowledge(session.blob);
    }
}

/// The offset an upload session reports (`204` with `Range`), or `None` when the registry
/// no longer knows it (`404 BLOB_UPLOAD_UNKNOWN`).
async fn upload_offset(registry: &Registry, session: &Session) -> Option<usize> {
    let reply = registry.send(registry.http.get(&session.url)).await;
    let reply = reply.expect("upload status");
    match reply.status {
        StatusCode::NO_CONTENT => Some(reply.upload_offset()),
        StatusCode::NOT_FOUND => {
            assert_eq!(reply.error_code(), "BLOB_UPLOAD_UNKNOWN", "{session}");
            None
        }
        _ => reply.fail(&format!("status of {session}")),
    }
}

/// Completing a session with a digest its bytes do not have is refused and ends the session,
/// and no blob appears under that digest.
async fn refuse_wrong_digest(registry: &Registry, repo: &str, session: &Session, data: &[u8]) {
    let wrong = sha256(&[data, b"!"].concat());
    let reply = registry.finish(&session.url, &wrong, data.len(), &[]).await;
    let reply = reply.expect("PUT with a wrong digest");
    reply.expect(
        StatusCode::BAD_REQUEST,
        &format!("PUT with a wrong digest to resumed {session}"),
    );
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(
        upload_offset(registry, session).await,
        None,
        "refused session ends"
    );
    let head = registry.blob(Method::HEAD, repo, &wrong).await;
    assert_eq!(
        head.status,
        StatusCode::NOT_FOUND,
        "no blob under a wrong digest"
    );
}

/// Every tag listed for `repo` resolves to a manifest whose bytes hash to its digest, and the
/// listing is exactly the workers' tags that must exist. Returns how many tags it resolved.
async fn check_listing(
    registry: &Registry,
    repo: &str,
    workers: &[Worker],
    blobs: &mut BTreeMap<(String, String), u64>,
) -> usize {
    let expected: BTreeSet<&String> = workers
        .iter()
        .filter(|w| w.repo == repo)
        .flat_map(|w| w.tags.iter().filter(|(_, d)| d.is_some()).map(|(t, _)| t))
        .collect();
    let listed = registry.tags(repo).await;
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        expected,
        "{repo} tags/list"
    );
    for tag in &listed {
        let (_, bytes) = registry
            .manifest(repo, tag)
            .await
            .unwrap_or_else(|| panic!("listed tag {repo}:{tag} does not resolve"));
        collect_references(blobs, repo, &bytes);
    }
    listed.len()
}

/// HEAD gives the size and GET bytes that hash to the digest.
async fn check_blob(registry: &Registry, repo: &str, digest: &str, size: u64) {
    let head = registry.blob(Method::HEAD, repo, digest).await;
    head.expect(StatusCode::OK, &format!("HEAD {repo}@{digest}"));
    assert_eq!(head.header(CONTENT_LENGTH.as_str()), size.to_string());
    let get = registry.blob(Method::GET, repo, digest).await;
    get.expect(StatusCode::OK, &format!("GET {repo}@{digest}"));
    assert_eq!(get.body.len() as u64, size, "GET {repo}@{digest} size");
    assert_eq!(sha256(&get.body), digest, "GET {repo}@{digest} content");
}

/// Adds the config and layers of an image manifest to the blobs to check.
fn collect_references(blobs: &mut BTreeMap<(String, String), u64>, repo: &str, manifest: &[u8]) {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).expect("manifest JSON");
    let layers = manifest["layers"].as_array().expect("layers");
    for descriptor in layers.iter().chain([&manifest["config"]]) {
        let digest = descriptor["digest"].as_str().expect("descriptor digest");
        let size = descriptor["size"].as_u64().expect("descriptor size");
        note_blob(blobs, repo, digest, size);
    }
}

fn note_blob(blobs: &mut BTreeMap<(String, String), u64>, repo: &str, digest: &str, size: u64) {
    let known = blobs.insert((repo.to_owned(), digest.to_owned()), size);
    assert!(known.is_none_or(|k| k == size), "{digest} has two sizes");
}

// ---------------------------------------------------------------------------------------------
// Registry client

/// The connection died before a full answer arrived (the server was killed).
#[derive(Debug)]
struct Gone(reqwest::Error);

/// A complete answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}: unexpected {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }

    fn expect(&self, status: StatusCode, what: &str) {
        if self.status != status {
            self.fail(what);
        }
    }

    /// A 201 naming `digest` in `Docker-Content-Digest`.
    fn expect_created(&self, what: &str, digest: &str) {
        self.expect(StatusCode::CREATED, what);
        assert_eq!(self.header("docker-content-digest"), digest, "{what}");
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("answer without a {name} header"))
    }

    /// Bytes an upload holds according to `Range: 0-<last>`. `0-0` is read as an empty
    /// session: this test never has exactly one byte acknowledged.
    fn upload_offset(&self) -> usize {
        let (_, last) = self
            .header(RANGE.as_str())
            .split_once('-')
            .expect("0-<last>");
        match last.parse().expect("numeric Range end") {
            0 => 0,
            last => last + 1,
        }
    }

    fn error_code(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).expect("error JSON");
        body["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// An HTTP client for one server lifetime (a new one per restart, so no stale connections).
#[derive(Clone)]
struct Registry {
    http: reqwest::Client,
    base: String,
}

impl Registry {
    fn new(base: &str) -> Registry {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Registry {
            http,
            base: base.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: RequestBuilder) -> Result<Reply, Gone> {
        let response = request.send().await.map_err(Gone)?;
        Ok(Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.map_err(Gone)?,
        })
    }

    /// Sends a read after a restart, when the server must answer.
    async fn read(&self, method: Method, path: &str) -> Reply {
        self.send(self.http.request(method, self.url(path)))
            .await
            .unwrap_or_else(|e| panic!("no answer to {path} after restart: {}", e.0))
    }

    async fn post_blob(&self, repo: &str, digest: &str, data: Vec<u8>) -> Result<Reply, Gone> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let request = self.http.post(url).query(&[("digest", digest)]);
        self.send(
            request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data),
        )
        .await
    }

    async fn start_upload(&self, repo: &str) -> Result<Reply, Gone> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        self.send(self.http.post(url)).await
    }

    /// Appends `piece`, declared to start at `start`.
    async fn patch(&self, url: &str, start: usize, piece: &[u8]) -> Result<Reply, Gone> {
        let range = format!("{start}-{}", start + piece.len() - 1);
        let request = self.http.patch(url).header(CONTENT_RANGE, range);
        self.send(
            request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(piece.to_vec()),
        )
        .await
    }

    /// Completes a session, with `last` (starting at `start`) as the final piece if non-empty.
    async fn finish(
        &self,
        url: &str,
        digest: &str,
        start: usize,
        last: &[u8],
    ) -> Result<Reply, Gone> {
        let mut request = self.http.put(url).query(&[("digest", digest)]);
        if !last.is_empty() {
            let range = format!("{start}-{}", start + last.len() - 1);
            request = request.header(CONTENT_RANGE, range);
        }
        self.send(
            request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(last.to_vec()),
        )
        .await
    }

    async fn put_manifest(&self, repo: &str, reference: &str, bytes: &[u8]) -> Result<Reply, Gone> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let request = self.http.put(url).header(CONTENT_TYPE, MANIFEST_TYPE);
        self.send(request.body(bytes.to_vec())).await
    }

    async fn blob(&self, method: Method, repo: &str, digest: &str) -> Reply {
        self.read(method, &format!("/v2/{repo}/blobs/{digest}"))
            .await
    }

    /// The manifest `reference` resolves to, as (digest, bytes), checking they agree.
    async fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let reply = self
            .read(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .await;
        match reply.status {
            StatusCode::OK => {
                let digest = reply.header("docker-content-digest").to_owned();
                assert_eq!(sha256(&reply.body), digest, "{repo}:{reference} content");
                Some((digest, reply.body.to_vec()))
            }
            StatusCode::NOT_FOUND => None,
            _ => reply.fail(&format!("GET manifest {repo}:{reference}")),
        }
    }

    /// The tags of `repo` (none for an unknown repository).
    async fn tags(&self, repo: &str) -> Vec<String> {
        let reply = self
            .read(Method::GET, &format!("/v2/{repo}/tags/list"))
            .await;
        match reply.status {
            StatusCode::OK => {
                let list: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
                serde_json::from_value(list["tags"].clone()).unwrap_or_default()
            }
            StatusCode::NOT_FOUND => Vec::new(),
            _ => reply.fail(&format!("tags/list of {repo}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Content

/// A blob the test can regenerate from its seed.
#[derive(Clone, Debug, PartialEq)]
struct Blob {
    seed: u64,
    size: u64,
    digest: String,
}

impl Blob {
    /// A blob with random content of a log-uniform size in `sizes`.
    fn random(rng: &mut StdRng, sizes: Range<usize>) -> (Blob, Vec<u8>) {
        let ratio = sizes.end as f64 / sizes.start as f64;
        let size = (sizes.start as f64 * ratio.powf(rng.random())) as usize;
        Blob::generate(rng.random(), size)
    }

    /// The blob of `size` bytes generated from `seed`, with its content.
    fn generate(seed: u64, size: usize) -> (Blob, Vec<u8>) {
        let blob = Blob {
            seed,
            size: size as u64,
            digest: String::new(),
        };
        let data = blob.bytes();
        let digest = sha256(&data);
        (Blob { digest, ..blob }, data)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut data = vec![0; self.size as usize];
        StdRng::seed_from_u64(self.seed).fill_bytes(&mut data);
        data
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image manifest over acknowledged blobs, made unique by its annotations.
fn image_manifest(config: &Blob, layers: &[Blob], worker: usize, serial: u64) -> Vec<u8> {
    let descriptor = |media_type: &str, blob: &Blob| json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": layers.iter().map(|l| descriptor(LAYER_TYPE, l)).collect::<Vec<_>>(),
        "annotations": {
            "org.example.crash.worker": worker.to_string(),
            "org.example.crash.serial": serial.to_string(),
        },
    });
    serde_json::to_vec(&manifest).expect("manifest JSON")
}

/// A temporary directory kept (and printed) when the test fails, to inspect the data
/// directory and the server log next to it.
struct Scratch(Option<TempDir>);

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("minato-crash-")
            .tempdir()
            .expect("temporary directory");
        Scratch(Some(dir))
    }

    fn path(&self) -> PathBuf {
        self.0
            .as_ref()
            .expect("scratch directory")
            .path()
            .to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("crash test data kept in {}", dir.keep().display());
        }
    }
}
