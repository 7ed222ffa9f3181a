//! The signing workloads, which drive the `minato` command line end to end:
//!
//! * `webhook`: `minato webhook` over TLS (a self-signed certificate for `localhost`, trusted
//!   alone by the client) with a policy holding one inline RSA-2048 public key, judging Pods of
//!   10 containers whose images live on the open minato, each signed with `minato-sign` (a
//!   vault in a temporary directory) and its signature artifact pushed as a referrer. p99 of
//!   `/validate` with warm caches (the same Pod again and again; goal < 5 ms) and uncached
//!   (every request names 10 image digests the webhook has never seen; goal < 50 ms);
//! * `sign-verify`: on the authenticated minato, `minato sign` (the server signs with an
//!   ECDSA P-256 tenancy key and stores the signature artifact and the cosign signature) then
//!   `minato verify --key` of a freshly pushed image, both processes timed together (goal
//!   median and p99 < 20 ms).
//!
//! Every process runs with a time limit and all traffic stays on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use minato_sign::artifact::{Descriptor, EMPTY_CONFIG, signature_manifest};
use minato_sign::{KeyAlgorithm, Payload, RootKey, SigningAlgorithm, Vault};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::client::{MANIFEST_TYPE, Registry, sha256};
use crate::report::Key;
use crate::targets::Kind;
use crate::workloads::Bench;

/// Containers per Pod.
const CONTAINERS: usize = 10;
/// Timed warm requests per round.
const WARM_REQUESTS: usize = 500;
/// Timed uncached requests per round, each with 10 images never seen before.
const COLD_REQUESTS: usize = 30;
/// Timed sign + verify pairs per round, each on a fresh image.
const SIGN_VERIFY_SAMPLES: usize = 20;
/// Longest the webhook may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Longest one `minato` command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Namespace of the vault key signing the webhook's images.
const VAULT_NAMESPACE: &str = "bench";
/// Name of that key (and of the tenancy key of `sign-verify`).
const KEY_NAME: &str = "release";

/// p99 of `samples` (nearest rank), in the samples' unit.
fn p99(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = (samples.len() as f64 * 0.99).ceil() as usize;
    samples[rank.saturating_sub(1).min(samples.len() - 1)]
}

/// Median of `samples`.
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// `host:port` of a registry base URL `http://host:port`.
fn host_of(registry: &Registry) -> anyhow::Result<String> {
    registry
        .base()
        .strip_prefix("http://")
        .map(str::to_owned)
        .with_context(|| format!("unexpected base URL {}", registry.base()))
}

/// Signs images with a vault key and pushes them with their signature artifacts.
struct Signer {
    vault: Vault,
    public_pem: String,
}

impl Signer {
    async fn new(dir: &Path) -> anyhow::Result<Signer> {
        std::fs::create_dir_all(dir)?;
        let root = RootKey::generate().map_err(|e| anyhow::anyhow!("root key: {e}"))?;
        let vault = Vault::open(dir, root)
            .await
            .map_err(|e| anyhow::anyhow!("opening the vault: {e}"))?;
        vault
            .create_key(VAULT_NAMESPACE, KEY_NAME, KeyAlgorithm::Rsa2048)
            .await
            .map_err(|e| anyhow::anyhow!("creating the key: {e}"))?;
        let public_pem = vault
            .public_key_pem(VAULT_NAMESPACE, KEY_NAME, None)
            .await
            .map_err(|e| anyhow::anyhow!("public key: {e}"))?;
        Ok(Signer { vault, public_pem })
    }

    /// Pushes a one-layer image `repo:tag` (its config salted with `tag`, so its digest is
    /// new) and a signature referrer naming its digest and repository.
    async fn push_signed(
        &self,
        registry: &Registry,
        host: &str,
        repo: &str,
        tag: &str,
    ) -> anyhow::Result<()> {
        let config = Bytes::from(
            json!({"architecture": "amd64", "os": "linux", "salt": format!("{repo}:{tag}")})
                .to_string(),
        );
        let layer = Bytes::from(format!("layer of {repo}"));
        let (config_digest, layer_digest) = (sha256(&config), sha256(&layer));
        registry
            .push_blob(repo, &config_digest, config.clone())
            .await?;
        registry
            .push_blob(repo, &layer_digest, layer.clone())
            .await?;
        let manifest = Bytes::from(
            json!({
                "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest, "size": layer.len()}],
            })
            .to_string(),
        );
        let subject = Descriptor {
            media_type: MANIFEST_TYPE.into(),
            digest: sha256(&manifest),
            size: manifest.len() as u64,
        };
        registry.put_manifest(repo, tag, manifest).await?;
        let payload = Payload {
            description: String::new(),
            image_digest: subject.digest.clone(),
            kms_key_id: format!("{VAULT_NAMESPACE}/{KEY_NAME}"),
            kms_key_version_id: format!("{VAULT_NAMESPACE}/{KEY_NAME}/1"),
            metadata: String::new(),
            region: host.to_owned(),
            repository_name: repo.to_owned(),
            signing_algorithm: SigningAlgorithm::Sha256RsaPkcsPss,
        }
        .to_bytes();
        let signature = self
            .vault
            .sign(
                VAULT_NAMESPACE,
                KEY_NAME,
                None,
                SigningAlgorithm::Sha256RsaPkcsPss,
                &payload,
            )
            .await
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        registry
            .push_blob(
                repo,
                &sha256(EMPTY_CONFIG),
                Bytes::from_static(EMPTY_CONFIG),
            )
            .await?;
        let payload_digest = sha256(&payload);
        let payload_size = payload.len() as u64;
        registry
            .push_blob(repo, &payload_digest, Bytes::from(payload))
            .await?;
        let artifact = signature_manifest(
            &subject,
            &payload_digest,
            payload_size,
            &signature,
            "2025-01-01T00:00:00Z",
        );
        let digest = sha256(&artifact);
        registry
            .put_manifest(repo, &digest, Bytes::from(artifact))
            .await
    }

    /// Pushes and signs `tag` in each of the [`CONTAINERS`] repositories; the Pod's images.
    async fn pod_images(
        &self,
        registry: &Registry,
        host: &str,
        tag: &str,
    ) -> anyhow::Result<Vec<String>> {
        let mut images = Vec::with_capacity(CONTAINERS);
        for c in 0..CONTAINERS {
            let repo = format!("{VAULT_NAMESPACE}/signed-{c:02}");
            self.push_signed(registry, host, &repo, tag).await?;
            images.push(format!("{host}/{repo}:{tag}"));
        }
        Ok(images)
    }
}

/// A running `minato webhook` and a client that trusts only its certificate.
struct Webhook {
    _child: Child,
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    async fn start(binary: &Path, dir: &Path, policy: &str) -> anyhow::Result<Webhook> {
        std::fs::create_dir_all(dir)?;
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let policy = write("policy.yaml", policy)?;
        let cert = write("tls.crt", &certified.cert.pem())?;
        let key = write("tls.key", &certified.signing_key.serialize_pem())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(binary)
            .arg("webhook")
            .arg("--policy")
            .arg(&policy)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--docker-config")
            .arg(dir.join("no-docker-config.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("webhook.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting minato webhook")?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!("minato webhook exited: {status}");
            }
            ensure!(
                started.elapsed() < START_LIMIT,
                "minato webhook did not listen within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(
                certified.cert.pem().as_bytes(),
            )?)
            .resolve("localhost", ([127, 0, 0, 1], port).into())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Webhook {
            _child: child,
            url: format!("https://localhost:{port}/validate"),
            client,
        })
    }

    /// One `/validate` of a Pod with `images`, which must be admitted; the milliseconds it took.
    async fn admit(&self, images: &[String]) -> anyhow::Result<f64> {
        let review = admission_review(images);
        let started = Instant::now();
        let answer: Value = self
            .client
            .post(&self.url)
            .json(&review)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        ensure!(
            answer["response"]["allowed"] == true,
            "the webhook denied the Pod: {}",
            answer["response"]["status"]["message"]
        );
        Ok(elapsed)
    }
}

/// An AdmissionReview v1 CREATE of a Pod with one container per image.
fn admission_review(images: &[String]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "6f1c2e1a-5d4b-4c3a-9b2a-1e0f9d8c7b6a",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "bench",
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "bench", "namespace": "team-a"},
                       "spec": {"containers": containers}},
            "oldObject": null,
            "dryRun": false
        }
    })
}

/// Runs `command` to completion within [`COMMAND_LIMIT`], which must succeed; its standard
/// output and the milliseconds from spawn to exit.
async fn run_timed(mut command: Command, what: &str) -> anyhow::Result<(String, f64)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(COMMAND_LIMIT, command.output())
        .await
        .with_context(|| format!("{what} ran over {COMMAND_LIMIT:?}"))??;
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    ensure!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    ))
}

impl Bench<'_> {
    /// `webhook`: see the module documentation.
    pub async fn webhook(&mut self) -> anyhow::Result<()> {
        self.results.label(
            Key::WebhookWarmP99,
            format!("webhook verdict, {CONTAINERS}-container Pod, warm, p99"),
        );
        self.results.label(
            Key::WebhookColdP99,
            format!("webhook verdict, {CONTAINERS}-container Pod, uncached, p99"),
        );
        let dir = self.scratch.join("webhook");
        let signer = Signer::new(&dir.join("vault")).await?;
        let registry = self.minato;
        let host = host_of(registry)?;
        let warm_images = signer.pod_images(registry, &host, "warm").await?;
        let policy = format!(
            "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\n\
             keys: [{}]\nregistries: [\"{host}\"]\notherImages: deny\n",
            json!({"publicKey": signer.public_pem})
        );
        let webhook = Webhook::start(self.minato_binary, &dir, &policy).await?;
        for round in 1..=self.plan.rounds {
            let warm = async {
                webhook.admit(&warm_images).await?;
                let mut samples = Vec::with_capacity(WARM_REQUESTS);
                for _ in 0..WARM_REQUESTS {
                    samples.push(webhook.admit(&warm_images).await?);
                }
                anyhow::Ok(p99(&mut samples))
            }
            .await;
            self.keep_signing(Key::WebhookWarmP99, Kind::Minato, round, warm);

            let mut pods = Vec::with_capacity(COLD_REQUESTS);
            for sample in 0..COLD_REQUESTS {
                pods.push(
                    signer
                        .pod_images(registry, &host, &format!("r{round}-s{sample}"))
                        .await?,
                );
            }
            let cold = async {
                let mut samples = Vec::with_capacity(COLD_REQUESTS);
                for pod in &pods {
                    samples.push(webhook.admit(pod).await?);
                }
                anyhow::Ok(p99(&mut samples))
            }
            .await;
            self.keep_signing(Key::WebhookColdP99, Kind::Minato, round, cold);
        }
        self.results.note(format!(
            "webhook: {WARM_REQUESTS} warm and {COLD_REQUESTS} uncached sequential /validate calls per round over HTTPS (keep-alive); Pod images by tag, each with one RSA-2048 signature referrer; uncached = {CONTAINERS} image digests the webhook has not seen"
        ));
        Ok(())
    }

    /// `sign-verify`: see the module documentation.
    pub async fn sign_verify(&mut self) -> anyhow::Result<()> {
        let target = self
            .auth
            .context("minato with authentication is not running")?;
        let dir = self.scratch.join("sign-verify");
        std::fs::create_dir_all(&dir)?;
        let base = target.registry.base().to_owned();
        let host = host_of(&target.registry)?;
        let bootstrap = &target.bootstrap;
        let namespace = &bootstrap.namespace;
        let key = format!("{namespace}/{KEY_NAME}");
        let mut create = Command::new(self.minato_binary);
        create
            .args(["keys", "--server", &base, "--username", &bootstrap.username])
            .args(["create", namespace, KEY_NAME, "--algorithm", "ecdsa-p256"])
            .env("MINATO_PASSWORD", &bootstrap.password);
        run_timed(create, "minato keys create").await?;
        let basic = target
            .basic_header_line()
            .split_once("Basic ")
            .map(|(_, b)| b.to_owned())
            .context("no Basic credentials")?;
        let config = dir.join("docker-config.json");
        std::fs::write(
            &config,
            json!({"auths": {host.clone(): {"auth": basic}}}).to_string(),
        )?;
        let pusher = Registry::new(target.registry.http().clone(), &base)
            .with_authorization(format!("Basic {basic}"));

        let (mut signs, mut verifies) = (Vec::new(), Vec::new());
        for round in 1..=self.plan.rounds {
            let mut images = Vec::with_capacity(SIGN_VERIFY_SAMPLES);
            for sample in 0..SIGN_VERIFY_SAMPLES {
                let tag = format!("r{round}-s{sample}");
                push_unsigned(&pusher, &format!("{namespace}/sv"), &tag).await?;
                images.push(format!("{host}/{namespace}/sv:{tag}"));
            }
            let measured = async {
                let mut totals = Vec::with_capacity(SIGN_VERIFY_SAMPLES);
                for image in &images {
                    let (sign, verify) =
                        sign_then_verify(self.minato_binary, image, &key, &config).await?;
                    signs.push(sign);
                    verifies.push(verify);
                    totals.push(sign + verify);
                }
                anyhow::Ok(totals)
            }
            .await;
            match measured {
                Ok(mut totals) => {
                    let (m, p) = (median(&mut totals), p99(&mut totals));
                    self.keep_signing(Key::SignVerifyMedian, Kind::MinatoAuth, round, Ok(m));
                    self.keep_signing(Key::SignVerifyP99, Kind::MinatoAuth, round, Ok(p));
                }
                Err(error) => {
                    let error = error.context("sign + verify");
                    self.results
                        .fail(Key::SignVerifyMedian, Kind::MinatoAuth, &error);
                    self.results
                        .fail(Key::SignVerifyP99, Kind::MinatoAuth, &error);
                }
            }
        }
        if !signs.is_empty() {
            self.results.note(format!(
                "sign-verify: {SIGN_VERIFY_SAMPLES} fresh images per round; `minato sign` (ECDSA P-256 tenancy key, artifact + cosign signature) median {:.1} ms, `minato verify --key` median {:.1} ms, each a new process",
                median(&mut signs),
                median(&mut verifies)
            ));
        }
        Ok(())
    }

    /// Records a sample or a failure, and prints progress.
    fn keep_signing(&mut self, key: Key, kind: Kind, round: u32, value: anyhow::Result<f64>) {
        match value {
            Ok(value) => {
                eprintln!(
                    "  {key:?} round {round}/{} {kind}: {value:.2} ms",
                    self.plan.rounds
                );
                self.results.record(key, kind, value);
            }
            Err(error) => self.results.fail(key, kind, &error),
        }
    }
}

/// Pushes a small fresh image `repo:tag`.
async fn push_unsigned(registry: &Registry, repo: &str, tag: &str) -> anyhow::Result<()> {
    let config =
        Bytes::from(json!({"architecture": "amd64", "os": "linux", "salt": tag}).to_string());
    let layer = Bytes::from(format!("layer of {repo}:{tag}"));
    let (config_digest, layer_digest) = (sha256(&config), sha256(&layer));
    registry
        .push_blob(repo, &config_digest, config.clone())
        .await?;
    registry
        .push_blob(repo, &layer_digest, layer.clone())
        .await?;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    });
    registry
        .put_manifest(repo, tag, Bytes::from(manifest.to_string()))
        .await
}

/// `minato sign` then `minato verify` of `image` with `key`; the milliseconds of each.
async fn sign_then_verify(
    binary: &Path,
    image: &str,
    key: &str,
    config: &Path,
) -> anyhow::Result<(f64, f64)> {
    let mut sign = Command::new(binary);
    sign.args(["sign", image, "--key", key, "--docker-config"])
        .arg(config)
        .env_remove("DOCKER_CONFIG");
    let (_, sign_ms) = run_timed(sign, "minato sign").await?;
    let mut verify = Command::new(binary);
    verify
        .args(["verify", image, "--key", key, "--docker-config"])
        .arg(config)
        .env_remove("DOCKER_CONFIG");
    let (said, verify_ms) = run_timed(verify, "minato verify").await?;
    ensure!(
        said.contains(&format!("signed by {key}")),
        "minato verify said: {said}"
    );
    Ok((sign_ms, verify_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p99(&mut samples), 99.0);
        let mut few = vec![3.0, 1.0, 2.0];
        assert_eq!(p99(&mut few), 3.0);
        assert_eq!(median(&mut few), 2.0);
    }

    #[test]
    fn reviews_name_every_container() {
        let images: Vec<String> = (0..CONTAINERS).map(|i| format!("h/r:{i}")).collect();
        let review = admission_review(&images);
        let containers = review["request"]["object"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), CONTAINERS);
        assert_eq!(containers[9]["image"], "h/r:9");
    }
}
