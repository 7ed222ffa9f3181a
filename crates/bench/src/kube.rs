//! The Kubernetes-side workloads, which drive the `minato` command line end to end:
//!
//! * `doctor-1000`: `minato doctor -f` over one multi-document file of 1,000 Deployments that
//!   share 50 images of a minato with tenancy authentication and one pull secret (goal: < 2 s);
//! * `pull-1g`: `minato pull --dest` of a 1 GiB, 8-layer image of incompressible data from
//!   minato, against `skopeo copy docker://... oci:DIR` of the same image (goal: ≥ 0.8× skopeo's
//!   throughput). The reference column of this row is skopeo.
//!
//! Each round runs every measured command once, alternating which goes first; every command
//! runs with a time limit and all traffic stays on 127.0.0.1.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use reqwest::header;
use serde_json::{Value, json};

use crate::auth::{self, Bootstrap};
use crate::client::{MANIFEST_TYPE, Registry, sha256};
use crate::load::random_bytes;
use crate::report::Key;
use crate::targets::{self, Access, Kind};
use crate::workloads::Bench;

const MIB: f64 = 1024.0 * 1024.0;
/// Deployments in the doctor's input.
const DOCTOR_WORKLOADS: usize = 1_000;
/// Distinct images they use.
const DOCTOR_IMAGES: usize = 50;
/// Longest one `minato doctor` run may take.
const DOCTOR_LIMIT: Duration = Duration::from_secs(120);
/// Layers of the pull image.
const PULL_LAYERS: usize = 8;
/// Bytes per layer of the pull image: 8 × 128 MiB = 1 GiB (16 MiB each with `--quick`).
const PULL_LAYER: usize = 128 << 20;
/// Layer size with `--quick`.
const PULL_LAYER_QUICK: usize = 16 << 20;
/// Longest one pull (minato or skopeo) may take.
const PULL_LIMIT: Duration = Duration::from_secs(600);
/// Repository of the pull image on the open minato.
const PULL_REPO: &str = "bench/big";

/// What a finished command printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `command` on a blocking thread with output in files under `scratch`, killing it after
/// `limit`; returns its output and wall-clock time.
async fn run_timed(
    mut command: Command,
    scratch: &Path,
    name: &str,
    limit: Duration,
) -> anyhow::Result<Finished> {
    let out_path = scratch.join(format!("{name}.out"));
    let err_path = scratch.join(format!("{name}.err"));
    tokio::task::spawn_blocking(move || {
        let program = format!("{:?}", command.get_program());
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{program} ran over {limit:?} and was killed");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = started.elapsed();
        Ok(Finished {
            status,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            elapsed,
        })
    })
    .await?
}

/// `Basic base64(username:password)`, encoded by reqwest as it would send it.
fn basic(http: &reqwest::Client, username: &str, password: &str) -> anyhow::Result<String> {
    let request = http
        .get("http://127.0.0.1/")
        .basic_auth(username, Some(password))
        .build()?;
    Ok(request
        .headers()
        .get(header::AUTHORIZATION)
        .context("reqwest set no Authorization header")?
        .to_str()?
        .to_owned())
}

/// Pushes an image of `layers` (each an uncompressed tar) with a linux/amd64 config as
/// `repo:tag`; returns the total bytes of config and layers.
async fn push_image(
    registry: &Registry,
    repo: &str,
    tag: &str,
    layers: Vec<Bytes>,
) -> anyhow::Result<u64> {
    let digests: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = Bytes::from(
        json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": digests},
        })
        .to_string(),
    );
    let config_digest = sha256(&config);
    let mut total = config.len() as u64;
    let mut descriptors = Vec::new();
    for (layer, digest) in layers.into_iter().zip(&digests) {
        total += layer.len() as u64;
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": layer.len(),
        }));
        registry.push_blob(repo, digest, layer).await?;
    }
    registry
        .push_blob(repo, &config_digest, config.clone())
        .await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    });
    registry
        .put_manifest(repo, tag, Bytes::from(manifest.to_string()))
        .await?;
    Ok(total)
}

/// A ustar archive holding one regular file `name` with `data` (what a layer is).
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    let padding = (512 - data.len() % 512) % 512;
    let mut tar = Vec::with_capacity(512 + data.len() + padding + 1024);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(data);
    tar.resize(tar.len() + padding + 1024, 0);
    tar
}

/// The 1,000-Deployment input: the pull secret, then Deployments in 10 namespaces (each with
/// its own copy of the secret) using image `i % 50`.
fn doctor_input(host: &str, secret: &str) -> String {
    let mut text = String::new();
    for ns in 0..10 {
        let _ = writeln!(
            text,
            "{}---",
            secret.replace("namespace: bench-ns", &format!("namespace: team-{ns}"))
        );
    }
    for i in 0..DOCTOR_WORKLOADS {
        let image = format!("{host}/{}/svc-{:02}:v1", auth::NAMESPACE, i % DOCTOR_IMAGES);
        let _ = write!(
            text,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i:04}\n  namespace: team-{ns}\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: web-{i:04}}}\n  template:\n    metadata:\n      labels: {{app: web-{i:04}}}\n    spec:\n      imagePullSecrets:\n      - name: regcred\n      containers:\n      - name: app\n        image: {image}\n        ports:\n        - containerPort: 8080\n---\n",
            ns = i % 10
        );
    }
    text
}

impl Bench<'_> {
    /// `doctor-1000`: a minato with tenancy authentication holding 50 images, one pull secret
    /// of its administrator, 1,000 Deployments over the images; `minato doctor -f` end to end
    /// (process start, reading, diagnosis with the registry's answers, JSON output) per round,
    /// checking once that every container is `ok`.
    pub async fn doctor_1000(&mut self) -> anyhow::Result<()> {
        self.results.label(
            Key::Doctor1000,
            format!("doctor, {DOCTOR_WORKLOADS} Deployments / {DOCTOR_IMAGES} images"),
        );
        let dir = self.scratch.join("doctor-1000");
        std::fs::create_dir_all(&dir)?;
        let http = crate::client::http_client()?;
        let access = Access::Tenancy {
            namespace: auth::NAMESPACE,
            token_lifetime_secs: auth::TOKEN_LIFETIME_SECS,
        };
        let server = targets::start_minato(self.minato_binary, &dir, access, &http).await?;
        let bootstrap = Bootstrap::read(&targets::minato_data(&dir))?;
        let authorization = basic(&http, &bootstrap.username, &bootstrap.password)?;
        let registry = Registry::new(http.clone(), server.base()).with_authorization(authorization);
        for i in 0..DOCTOR_IMAGES {
            let layer = tar_of("app/data.bin", &random_bytes(4096, 0xd0c7_0000 + i as u64));
            let repo = format!("{}/svc-{i:02}", auth::NAMESPACE);
            push_image(&registry, &repo, "v1", vec![Bytes::from(layer)]).await?;
        }
        let mut create = Command::new(self.minato_binary);
        create
            .args(["create", "secret", "docker-registry", "regcred"])
            .args(["--namespace", "bench-ns"])
            .args(["--docker-server", &bootstrap.registry])
            .args(["--docker-username", &bootstrap.username])
            .args(["--docker-password", &bootstrap.password]);
        let secret = run_timed(create, &dir, "secret", DOCTOR_LIMIT).await?;
        ensure!(secret.status.success(), "create secret: {}", secret.stderr);
        let input = dir.join("workloads.yaml");
        std::fs::write(&input, doctor_input(&bootstrap.registry, &secret.stdout))?;

        for round in self.rounds_iter() {
            let mut command = Command::new(self.minato_binary);
            command
                .arg("doctor")
                .arg("-f")
                .arg(&input)
                .args(["-o", "json"]);
            let run = run_timed(command, &dir, "doctor", DOCTOR_LIMIT).await;
            let figure = run.and_then(|done| {
                ensure!(
                    done.status.success(),
                    "minato doctor failed ({}): {}",
                    done.status,
                    done.stderr
                );
                if round == 1 {
                    check_doctor_output(&done.stdout, &bootstrap.password)?;
                    self.results.note(format!(
                        "doctor-1000: {DOCTOR_WORKLOADS} containers ok, {} bytes of JSON",
                        done.stdout.len()
                    ));
                }
                Ok(done.elapsed.as_secs_f64())
            });
            self.keep_sample(Key::Doctor1000, Kind::Minato, round, figure);
        }
        drop(server);
        Ok(())
    }

    /// `pull-1g`: builds an 8-layer image of incompressible data (1 GiB; 128 MiB with
    /// `--quick`), pushes it to the open minato, then each round pulls it with `minato pull
    /// --dest` and with `skopeo copy docker://... oci:DIR` into fresh directories (flushing
    /// dirty pages before each), alternating which goes first: MiB/s of image bytes.
    pub async fn pull_1g(&mut self) -> anyhow::Result<()> {
        let layer_size = if self.plan.sizes.blob < (64 << 20) {
            PULL_LAYER_QUICK
        } else {
            PULL_LAYER
        };
        let dir = self.scratch.join("pull-1g");
        std::fs::create_dir_all(&dir)?;
        eprintln!(
            "  generating and pushing {PULL_LAYERS} × {} MiB layers",
            layer_size >> 20
        );
        let layers: Vec<Bytes> = (0..PULL_LAYERS)
            .map(|i| {
                let data = random_bytes(layer_size - 2048, 0x9011_0000 + i as u64);
                Bytes::from(tar_of(&format!("layer-{i}/data.bin"), &data))
            })
            .collect();
        let started = Instant::now();
        let total = push_image(self.minato, PULL_REPO, "v1", layers).await?;
        let mib = total as f64 / MIB;
        self.results.label(
            Key::Pull1g,
            format!("pull {mib:.0} MiB, {PULL_LAYERS} layers (ref: skopeo copy)"),
        );
        self.results.note(format!(
            "pull-1g: {mib:.0} MiB image pushed in {:.1} s; the reference column is `skopeo copy docker://… oci:DIR` of the same image; both with their default parallelism",
            started.elapsed().as_secs_f64()
        ));
        let host = self
            .minato
            .base()
            .strip_prefix("http://")
            .context("minato's base URL")?
            .to_owned();
        let image = format!("{host}/{PULL_REPO}:v1");
        for round in self.rounds_iter() {
            let order = if round % 2 == 1 {
                [Kind::Minato, Kind::Reference]
            } else {
                [Kind::Reference, Kind::Minato]
            };
            for kind in order {
                let figure = self.pull_once(kind, &image, &dir, total).await;
                self.keep_sample(Key::Pull1g, kind, round, figure.map(|secs| mib / secs));
            }
        }
        Ok(())
    }

    /// One timed pull of `image` by minato or (for [`Kind::Reference`]) skopeo into a fresh
    /// directory, checked to hold `total` bytes of blobs; the seconds it took.
    async fn pull_once(
        &self,
        kind: Kind,
        image: &str,
        dir: &Path,
        total: u64,
    ) -> anyhow::Result<f64> {
        let dest = dir.join(format!("{kind}"));
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
        settle().await?;
        let command = match kind {
            Kind::Reference => {
                let mut command = Command::new("skopeo");
                command
                    .args(["copy", "--quiet", "--src-tls-verify=false"])
                    .arg(format!("docker://{image}"))
                    .arg(format!("oci:{}:v1", dest.display()));
                command
            }
            _ => {
                let mut command = Command::new(self.minato_binary);
                command
                    .args(["pull", image, "--no-progress", "--dest"])
                    .arg(&dest);
                command
            }
        };
        let done = run_timed(command, dir, "pull", PULL_LIMIT).await?;
        ensure!(
            done.status.success(),
            "{kind} pull failed ({}): {}{}",
            done.status,
            done.stdout,
            done.stderr
        );
        let stored = blob_bytes(&dest.join("blobs/sha256"))?;
        ensure!(
            stored >= total,
            "{kind} wrote {stored} bytes of blobs, expected at least {total}"
        );
        Ok(done.elapsed.as_secs_f64())
    }

    /// Rounds as in the other workloads.
    fn rounds_iter(&self) -> impl Iterator<Item = u32> + use<> {
        1..=self.plan.rounds
    }

    /// Records a sample or a failure, and prints progress.
    fn keep_sample(&mut self, key: Key, kind: Kind, round: u32, value: anyhow::Result<f64>) {
        match value {
            Ok(value) => {
                eprintln!(
                    "  {key:?} round {round}/{} {kind}: {value:.2}",
                    self.plan.rounds
                );
                self.results.record(key, kind, value);
            }
            Err(error) => self.results.fail(key, kind, &error),
        }
    }
}

/// Checks the doctor's JSON: every container `ok`, and the password nowhere.
fn check_doctor_output(stdout: &str, password: &str) -> anyhow::Result<()> {
    ensure!(
        !stdout.contains(password),
        "the doctor printed the password"
    );
    let report: Value = serde_json::from_str(stdout).context("doctor output is not JSON")?;
    let containers = report["containers"]
        .as_array()
        .context("no containers in the doctor's output")?;
    ensure!(
        containers.len() == DOCTOR_WORKLOADS,
        "{} containers diagnosed, expected {DOCTOR_WORKLOADS}",
        containers.len()
    );
    if let Some(bad) = containers.iter().find(|c| c["verdict"] != "ok") {
        bail!("a container is not ok: {bad}");
    }
    Ok(())
}

/// Total size of the files in `dir`.
fn blob_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// Flushes dirty pages (`sync`) so a pull does not pay for the previous one's writeback.
async fn settle() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| {
        Command::new("sync")
            .status()
            .context("running sync")
            .map(drop)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_valid_ustar() {
        let tar = tar_of("a/b.bin", b"hello");
        assert_eq!(tar.len(), 512 + 512 + 1024);
        assert_eq!(&tar[257..263], b"ustar\0");
        assert_eq!(&tar[124..136], b"00000000005\0");
        let stored: u32 =
            u32::from_str_radix(std::str::from_utf8(&tar[148..154]).unwrap().trim(), 8).unwrap();
        let mut header = tar[..512].to_vec();
        header[148..156].fill(b' ');
        assert_eq!(stored, header.iter().map(|b| u32::from(*b)).sum::<u32>());
        assert_eq!(&tar[512..517], b"hello");
    }

    #[test]
    fn doctor_input_has_a_thousand_deployments() {
        let secret =
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: bench-ns\n";
        let text = doctor_input("127.0.0.1:1", secret);
        assert_eq!(text.matches("kind: Deployment").count(), DOCTOR_WORKLOADS);
        assert_eq!(
            text.matches("namespace: team-").count(),
            DOCTOR_WORKLOADS + 10
        );
        assert!(text.contains("image: 127.0.0.1:1/bench/svc-49:v1"));
        assert!(!text.contains("svc-50"));
    }
}
