//! The data set, generated once and loaded identically into every registry through the API.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use rand::{RngCore, SeedableRng, rngs::SmallRng};

use crate::cli::Sizes;
use crate::client::{MANIFEST_TYPE, Registry, sha256};

/// Repository holding the large blob, its image and the tags.
pub const REPO: &str = "bench/app";
/// Requests in flight while loading tags or repositories (setup, not measured).
const LOAD_CONCURRENCY: usize = 32;
/// Upper bound on the whole load of one registry.
const LOAD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// `len` pseudo-random bytes from `seed` (incompressible, reproducible).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Name of the `i`-th tag.
pub fn tag(i: usize) -> String {
    format!("tag-{i:05}")
}

/// Name of the `i`-th catalog repository.
fn catalog_repo(i: usize) -> String {
    format!("catalog/repo-{i:04}")
}

/// What is loaded into every registry.
pub struct Dataset {
    /// The large layer blob.
    pub blob: Bytes,
    /// Its digest.
    pub blob_digest: String,
    config: Bytes,
    config_digest: String,
    /// The image manifest referencing the config and the blob.
    pub manifest: Bytes,
    /// Its digest.
    pub manifest_digest: String,
    /// Number of tags pushed (`tag-00000`...).
    pub tags: usize,
    /// Number of extra repositories for the catalog.
    pub repos: usize,
}

impl Dataset {
    /// Generates the blob, config and manifest for `sizes`.
    pub fn generate(sizes: &Sizes) -> Dataset {
        let blob = Bytes::from(random_bytes(sizes.blob, 0x6d69_6e61_746f));
        let blob_digest = sha256(&blob);
        let config = Bytes::from(
            serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [blob_digest]},
            })
            .to_string(),
        );
        let config_digest = sha256(&config);
        let manifest = Bytes::from(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config.len(),
                },
                "layers": [{
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blob_digest,
                    "size": blob.len(),
                }],
            })
            .to_string(),
        );
        let manifest_digest = sha256(&manifest);
        Dataset {
            blob,
            blob_digest,
            config,
            config_digest,
            manifest,
            manifest_digest,
            tags: sizes.tags,
            repos: sizes.repos,
        }
    }
}

/// Which optional parts of the data set to load.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    /// The tags (for tag listing and manifest GET by tag).
    pub tags: bool,
    /// The catalog repositories.
    pub repos: bool,
}

/// How long each part of the load took (setup figures, reported but not judged).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadTimes {
    /// Blob, config and manifest (`latest`).
    pub image: Duration,
    /// All tags.
    pub tags: Option<Duration>,
    /// All catalog repositories.
    pub repos: Option<Duration>,
}

/// Loads `data` into `registry`; first probes how it takes monolithic pushes.
pub async fn load(
    registry: &mut Registry,
    data: &Dataset,
    parts: Parts,
) -> anyhow::Result<LoadTimes> {
    tokio::time::timeout(LOAD_LIMIT, load_unbounded(registry, data, parts))
        .await
        .with_context(|| format!("loading {} took over {LOAD_LIMIT:?}", registry.base()))?
}

async fn load_unbounded(
    registry: &mut Registry,
    data: &Dataset,
    parts: Parts,
) -> anyhow::Result<LoadTimes> {
    registry.probe_single_post(REPO).await?;
    let registry = &*registry;
    let mut times = LoadTimes::default();

    let started = Instant::now();
    registry
        .push_blob(REPO, &data.blob_digest, data.blob.clone())
        .await
        .context("pushing the large blob")?;
    registry
        .push_blob(REPO, &data.config_digest, data.config.clone())
        .await
        .context("pushing the config")?;
    registry
        .put_manifest(REPO, "latest", data.manifest.clone())
        .await
        .context("pushing the manifest")?;
    times.image = started.elapsed();

    if parts.tags {
        let started = Instant::now();
        stream::iter((0..data.tags).map(Ok))
            .try_for_each_concurrent(LOAD_CONCURRENCY, |i| async move {
                registry
                    .put_manifest(REPO, &tag(i), data.manifest.clone())
                    .await
                    .with_context(|| format!("pushing {}", tag(i)))
            })
            .await?;
        times.tags = Some(started.elapsed());
    }

    if parts.repos {
        let started = Instant::now();
        let pushes = (0..data.repos).map(|i| async move {
            let body = Bytes::from(format!("minato-bench repository {i}"));
            let digest = sha256(&body);
            registry
                .push_blob(&catalog_repo(i), &digest, body)
                .await
                .with_context(|| format!("pushing into {}", catalog_repo(i)))
        });
        stream::iter(pushes)
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        times.repos = Some(started.elapsed());
    }
    Ok(times)
}
