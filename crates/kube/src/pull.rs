//! The pull engine: what the kubelet asks the container runtime to do for one image, done
//! against any OCI registry and written to an OCI image layout directory.
//!
//! Credentials are tried in the kubelet's order (anonymous when there are none), stopping at
//! the first success; failures are aggregated as `[err1, err2]` like the kubelet's
//! `utilerrors.NewAggregate`. An image index is resolved to the manifest of one platform (the
//! machine's `linux/<arch>` by default), as containerd does, with containerd's error when the
//! platform is absent. The config and the layers download in parallel (bounded), every byte is
//! hashed while it streams, and an interrupted blob resumes from its `.partial` file with
//! `Range: bytes=<n>-` (from zero when the registry ignores the range).
//!
//! The layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) describes the selected
//! platform's manifest, tagged with `org.opencontainers.image.ref.name`, so `skopeo inspect
//! oci:DIR` and `umoci stat --image DIR:TAG` read it. `index.json` is written last and
//! atomically: it never names a blob that is not complete and verified.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use minato_oci::media_type;
use minato_oci::{Digest, DigestHasher};
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::reference::{ImageReference, ReferenceError};
pub use crate::registry_client::Credential;
use crate::registry_client::{ClientConfig, RegistryClient, RegistryError, Transport};

/// The annotation of `index.json` entries that names the tag (what `oci:DIR:TAG` selects).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Pause before re-trying an interrupted blob, multiplied by the attempt number.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Read size when hashing files already on disk.
const HASH_CHUNK: usize = 1024 * 1024;

/// An `os/arch[/variant]` platform, as `--platform` and image indexes name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture in Go's spelling (`amd64`, `arm64`, `arm`...).
    pub architecture: String,
    /// CPU variant (`v7` for `arm`), when any.
    pub variant: Option<String>,
}

/// Why a `--platform` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64")]
pub struct PlatformError(pub String);

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(PlatformError(text.to_owned()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The platform of this machine, `linux/<arch>`: what a kubelet on it would pull.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }

    /// containerd's normalization: architecture aliases (`x86_64`, `aarch64`...), `arm64`'s
    /// default variant `v8` dropped, `arm` without variant meaning `v7`.
    pub fn normalized(&self) -> Platform {
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) =
            match (self.architecture.to_ascii_lowercase().as_str(), variant) {
                ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.filter(|v| v != "v1")),
                ("aarch64" | "arm64", v) => {
                    ("arm64".to_owned(), v.filter(|v| v != "v8" && v != "8"))
                }
                ("armhf", _) => ("arm".to_owned(), Some("v7".to_owned())),
                ("armel", _) => ("arm".to_owned(), Some("v6".to_owned())),
                ("arm", v) => (
                    "arm".to_owned(),
                    Some(match v.as_deref() {
                        None | Some("") | Some("7") => "v7".to_owned(),
                        Some("5") => "v5".to_owned(),
                        Some("6") => "v6".to_owned(),
                        Some("8") => "v8".to_owned(),
                        Some(other) => other.to_owned(),
                    }),
                ),
                ("i386" | "386", v) => ("386".to_owned(), v),
                (other, v) => (other.to_owned(), v),
            };
        Platform {
            os: self.os.to_ascii_lowercase(),
            architecture,
            variant: variant.filter(|v| !v.is_empty()),
        }
    }

    /// How well `candidate` serves a machine of this platform: `None` when it cannot run
    /// there, else a rank (0 best). A 32-bit ARM machine runs older ARM variants too.
    pub fn rank(&self, candidate: &Platform) -> Option<u32> {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return None;
        }
        if want.variant == have.variant {
            return Some(0);
        }
        if want.architecture == "arm" {
            let number = |v: &Option<String>| {
                v.as_deref()
                    .and_then(|v| v.strip_prefix('v'))
                    .and_then(|n| n.parse::<u32>().ok())
            };
            if let (Some(w), Some(h)) = (number(&want.variant), number(&have.variant))
                && h < w
            {
                return Some(w - h);
            }
        }
        None
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The OCI image layout directory to write (created when absent; must be empty or a
    /// layout already).
    pub dest: PathBuf,
    /// The platform to select from an image index; `None` means [`Platform::host`].
    pub platform: Option<Platform>,
    /// Blobs downloaded at the same time (containerd's default is 3).
    pub concurrency: usize,
    /// Show progress bars on standard error (they stay hidden when it is not a terminal).
    pub progress: bool,
    /// How many times an interrupted blob download is resumed within one pull before giving
    /// up (its partial file is kept for the next pull either way).
    pub blob_retries: u32,
    /// Timeouts of the HTTP client.
    pub client: ClientConfig,
}

impl PullOptions {
    /// Defaults for pulling into `dest`.
    pub fn new(dest: impl Into<PathBuf>) -> PullOptions {
        PullOptions {
            dest: dest.into(),
            platform: None,
            concurrency: 3,
            progress: false,
            blob_retries: 2,
            client: ClientConfig::default(),
        }
    }
}

/// A content descriptor (media type, digest, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

/// What a successful pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The image as parsed (normalized).
    pub reference: ImageReference,
    /// The image manifest written to the layout (the selected platform's).
    pub manifest: Descriptor,
    /// The image index it was selected from, for a multi-platform image.
    pub index: Option<Descriptor>,
    /// The platform of the manifest (from the index entry, else from the image config).
    pub platform: Option<Platform>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// The image size as containerd reports it to the kubelet: index (if any), manifest,
    /// config and layers.
    pub image_size: u64,
    /// Bytes received from the registry for blobs in this pull.
    pub downloaded_bytes: u64,
    /// Bytes of blobs that were already complete in the layout.
    pub reused_bytes: u64,
    /// Bytes taken from partial files of an earlier, interrupted pull.
    pub resumed_bytes: u64,
    /// Which credential worked (index into the list given), `None` for anonymous.
    pub credential: Option<usize>,
    /// How long the pull took.
    pub duration: Duration,
}

/// Why a pull failed. Messages follow the runtime's (containerd's) wording where there is one,
/// since that is what the kubelet shows and what users search for.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The image reference does not parse.
    #[error("couldn't parse image name {image:?}: {source}")]
    InvalidReference {
        /// The image as written.
        image: String,
        /// Why.
        source: ReferenceError,
    },
    /// The registry refused, could not be reached, or broke the connection.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The index has no manifest for the platform.
    #[error("no match for platform in manifest: not found")]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: Platform,
        /// The platforms the index offers.
        available: Vec<Platform>,
    },
    /// A manifest or index that cannot be pulled as an image.
    #[error("{digest}: {reason}")]
    InvalidManifest {
        /// Its digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob's bytes do not match its digest.
    #[error(
        "failed commit on ref \"{kind}-{expected}\": unexpected commit digest {actual}, expected {expected}: failed precondition"
    )]
    DigestMismatch {
        /// `config` or `layer`.
        kind: &'static str,
        /// The digest in the manifest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A blob's length does not match its descriptor.
    #[error(
        "failed commit on ref \"{kind}-{digest}\": unexpected commit size {actual}, expected {expected}: failed precondition"
    )]
    SizeMismatch {
        /// `config` or `layer`.
        kind: &'static str,
        /// The blob's digest.
        digest: String,
        /// The size in the manifest.
        expected: u64,
        /// The size that arrived (so far, when too long).
        actual: u64,
    },
    /// The destination is not usable as an OCI image layout.
    #[error("{path}: {reason}")]
    Layout {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing the layout failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Every credential failed: the kubelet's aggregate, `[err1, err2]`.
    #[error("{}", aggregate_text(.0))]
    Aggregate(Vec<PullError>),
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one error as is, else the distinct messages
/// in order as `[e1, e2]` (a single distinct message without brackets).
fn aggregate_text(errors: &[PullError]) -> String {
    let mut distinct: Vec<String> = Vec::new();
    for error in errors {
        let text = error.to_string();
        if !distinct.contains(&text) {
            distinct.push(text);
        }
    }
    if errors.len() == 1 || distinct.len() == 1 {
        distinct.concat()
    } else {
        format!("[{}]", distinct.join(", "))
    }
}

impl PullError {
    /// The individual failures: the aggregate's members, or this error alone.
    pub fn attempts(&self) -> Vec<&PullError> {
        match self {
            PullError::Aggregate(errors) => errors.iter().collect(),
            other => vec![other],
        }
    }

    fn io(path: &Path, source: std::io::Error) -> PullError {
        PullError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The image name the kubelet reports: `:latest` appended when neither tag nor digest is
/// written (its `applyDefaultImageTag`, which changes nothing else).
pub fn with_default_tag(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    if image.contains('@') || last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// A duration as Go's `time.Duration` prints it after `Truncate(time.Millisecond)`, the form of
/// the kubelet's `Pulled` event (`1.234s`, `532ms`, `1m2.5s`, `0s`).
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = millis / 60_000 % 60;
    let seconds = millis / 1000 % 60;
    let fraction = millis % 1000;
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    text.push_str(&seconds.to_string());
    if fraction > 0 {
        let digits = format!("{fraction:03}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push('s');
    text
}

/// The kubelet's `Pulling` event message.
pub fn pulling_message(image: &str) -> String {
    format!("Pulling image {image:?}")
}

/// The kubelet's `Pulled` event message after a pull.
pub fn pulled_message(image: &str, pull: Duration, total: Duration, size: u64) -> String {
    format!(
        "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {size} bytes.",
        go_duration(pull),
        go_duration(total)
    )
}

/// The kubelet's `Pulled` event message when the image is present and not pulled again.
pub fn already_present_message(image: &str) -> String {
    format!("Container image {image:?} already present on machine")
}

/// The kubelet's `Failed` event message.
pub fn failed_message(image: &str, error: &dyn fmt::Display) -> String {
    format!("Failed to pull image {image:?}: {error}")
}

/// Pulls `image` into the layout `options.dest`, trying `credentials` in order (anonymously
/// when empty) and stopping at the first that works.
pub async fn pull(
    image: &str,
    credentials: &[Credential],
    options: &PullOptions,
) -> Result<PullOutcome, PullError> {
    let started = Instant::now();
    let reference = ImageReference::parse(image).map_err(|source| PullError::InvalidReference {
        image: image.to_owned(),
        source,
    })?;
    let layout = Layout::open(&options.dest)?;
    let transport = Transport::new(&options.client)?;
    let bars = if options.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    };
    let attempts: Vec<Option<(usize, &Credential)>> = if credentials.is_empty() {
        vec![None]
    } else {
        credentials.iter().enumerate().map(Some).collect()
    };
    let mut errors = Vec::new();
    for attempt in attempts {
        let credential = attempt.map(|(_, c)| c.clone());
        match pull_once(&transport, &reference, credential, options, &layout, &bars).await {
            Ok(mut outcome) => {
                outcome.credential = attempt.map(|(i, _)| i);
                outcome.duration = started.elapsed();
                return Ok(outcome);
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.len() == 1 {
        Err(errors.remove(0))
    } else {
        Err(PullError::Aggregate(errors))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<WirePlatform>,
}

#[derive(Deserialize)]
struct WirePlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl WirePlatform {
    fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

#[derive(Deserialize)]
struct WireIndex {
    manifests: Vec<WireDescriptor>,
}

#[derive(Deserialize)]
struct WireManifest {
    config: WireDescriptor,
    layers: Vec<WireDescriptor>,
}

#[derive(Deserialize, Default)]
struct WireConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

fn descriptor(wire: &WireDescriptor, of: &Digest) -> Result<Descriptor, PullError> {
    let digest = Digest::from_str(&wire.digest).map_err(|e| PullError::InvalidManifest {
        digest: of.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Descriptor {
        media_type: wire.media_type.clone(),
        digest,
        size: wire.size,
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == media_type::OCI_INDEX || media_type == media_type::DOCKER_MANIFEST_LIST
}

fn is_image_manifest(media_type: &str) -> bool {
    media_type == media_type::OCI_MANIFEST || media_type == media_type::DOCKER_MANIFEST
}

/// One pull attempt with one credential.
async fn pull_once(
    transport: &Transport,
    reference: &ImageReference,
    credential: Option<Credential>,
    options: &PullOptions,
    layout: &Layout,
    bars: &MultiProgress,
) -> Result<PullOutcome, PullError> {
    let client = transport
        .connect(reference.registry_host(), credential)
        .await?;
    let repository = reference.path.as_str();
    let top = client
        .manifest(repository, reference.manifest_reference())
        .await?;
    let (manifest, index, mut platform) = if is_index(&top.media_type) {
        let wanted = options.platform.clone().unwrap_or_else(Platform::host);
        let entries: WireIndex =
            serde_json::from_slice(&top.bytes).map_err(|e| PullError::InvalidManifest {
                digest: top.digest.to_string(),
                reason: format!("invalid image index: {e}"),
            })?;
        let chosen = entries
            .manifests
            .iter()
            .filter(|m| is_image_manifest(&m.media_type) || m.media_type.is_empty())
            .filter_map(|m| {
                let p = m.platform.as_ref()?.platform();
                wanted.rank(&p).map(|rank| (rank, m, p))
            })
            .min_by_key(|(rank, _, _)| *rank);
        let Some((_, entry, platform)) = chosen else {
            return Err(PullError::NoMatchingPlatform {
                wanted,
                available: entries
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(WirePlatform::platform))
                    .collect(),
            });
        };
        let child = descriptor(entry, &top.digest)?;
        let manifest = client.manifest(repository, child.digest.as_str()).await?;
        if manifest.bytes.len() as u64 != child.size {
            return Err(PullError::InvalidManifest {
                digest: child.digest.to_string(),
                reason: format!(
                    "size {} differs from the index's {}",
                    manifest.bytes.len(),
                    child.size
                ),
            });
        }
        let index = Descriptor {
            media_type: top.media_type.clone(),
            size: top.bytes.len() as u64,
            digest: top.digest.clone(),
        };
        (manifest, Some(index), Some(platform))
    } else {
        (top, None, None)
    };
    if !is_image_manifest(&manifest.media_type) {
        return Err(PullError::InvalidManifest {
            digest: manifest.digest.to_string(),
            reason: format!("unsupported manifest media type {:?}", manifest.media_type),
        });
    }
    let parsed: WireManifest =
        serde_json::from_slice(&manifest.bytes).map_err(|e| PullError::InvalidManifest {
            digest: manifest.digest.to_string(),
            reason: format!("invalid image manifest: {e}"),
        })?;
    let config = descriptor(&parsed.config, &manifest.digest)?;
    let layers = parsed
        .layers
        .iter()
        .map(|l| descriptor(l, &manifest.digest))
        .collect::<Result<Vec<_>, _>>()?;

    layout.create()?;
    let mut jobs = vec![(config.clone(), "config")];
    for layer in &layers {
        if !jobs.iter().any(|(d, _)| d.digest == layer.digest) {
            jobs.push((layer.clone(), "layer"));
        }
    }
    let concurrency = options.concurrency.max(1);
    let mut downloads = futures_util::stream::iter(jobs.into_iter().map(|(blob, kind)| {
        let client = client.clone();
        let bar = bars.add(progress_bar(&blob, kind));
        async move {
            let result = fetch_blob(&client, repository, &blob, kind, layout, options, &bar).await;
            match &result {
                Ok(stats) if stats.reused > 0 => bar.finish_with_message("already exists"),
                Ok(_) => bar.finish_with_message("done"),
                Err(_) => bar.abandon_with_message("failed"),
            }
            result
        }
    }))
    .buffer_unordered(concurrency);
    let mut totals = BlobStats::default();
    while let Some(result) = downloads.next().await {
        let stats = result?;
        totals.downloaded += stats.downloaded;
        totals.reused += stats.reused;
        totals.resumed += stats.resumed;
    }
    drop(downloads);

    if platform.is_none() {
        let bytes = std::fs::read(layout.blob_path(&config.digest))
            .map_err(|e| PullError::io(&layout.blob_path(&config.digest), e))?;
        let wire: WireConfig = serde_json::from_slice(&bytes).unwrap_or_default();
        if !wire.os.is_empty() && !wire.architecture.is_empty() {
            platform = Some(Platform {
                os: wire.os,
                architecture: wire.architecture,
                variant: wire.variant.filter(|v| !v.is_empty()),
            });
        }
    }
    layout.write_blob(&manifest.digest, &manifest.bytes)?;
    let manifest_descriptor = Descriptor {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
    };
    layout.add_to_index(
        &manifest_descriptor,
        platform.as_ref().filter(|_| index.is_some()),
        reference.tag.as_deref(),
    )?;
    let image_size = index.as_ref().map_or(0, |i| i.size)
        + manifest_descriptor.size
        + config.size
        + layers.iter().map(|l| l.size).sum::<u64>();
    Ok(PullOutcome {
        reference: reference.clone(),
        manifest: manifest_descriptor,
        index,
        platform,
        config,
        layers,
        image_size,
        downloaded_bytes: totals.downloaded,
        reused_bytes: totals.reused,
        resumed_bytes: totals.resumed,
        credential: None,
        duration: Duration::ZERO,
    })
}

fn progress_bar(blob: &Descriptor, kind: &str) -> ProgressBar {
    let bar = ProgressBar::new(blob.size);
    let style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    let short: String = blob.digest.hex().chars().take(12).collect();
    bar.set_prefix(format!("{kind} {short}"));
    bar
}

#[derive(Default)]
struct BlobStats {
    downloaded: u64,
    reused: u64,
    resumed: u64,
}

/// Downloads one blob into the layout, resuming its partial file, verifying size and digest.
async fn fetch_blob(
    client: &RegistryClient,
    repository: &str,
    blob: &Descriptor,
    kind: &'static str,
    layout: &Layout,
    options: &PullOptions,
    bar: &ProgressBar,
) -> Result<BlobStats, PullError> {
    let mut stats = BlobStats::default();
    let path = layout.blob_path(&blob.digest);
    if path.exists() {
        let (digest, size) = hash_file(&path, &blob.digest).await?;
        if digest == blob.digest && size == blob.size {
            stats.reused = size;
            bar.set_position(size);
            return Ok(stats);
        }
        // A damaged file from elsewhere: replace it.
        std::fs::remove_file(&path).map_err(|e| PullError::io(&path, e))?;
    }
    let partial = layout.partial_path(&blob.digest);
    let (mut hasher, mut written) = if partial.exists() {
        let (hasher, size) = hash_prefix(&partial, &blob.digest).await?;
        if size > blob.size {
            (DigestHasher::new(blob.digest.algorithm()), 0)
        } else {
            stats.resumed = size;
            (hasher, size)
        }
    } else {
        (DigestHasher::new(blob.digest.algorithm()), 0)
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&partial)
        .await
        .map_err(|e| PullError::io(&partial, e))?;
    file.set_len(written)
        .await
        .map_err(|e| PullError::io(&partial, e))?;
    bar.set_position(written);

    let mut attempt = 0;
    while written < blob.size {
        let result = stream_into(
            client,
            repository,
            blob,
            kind,
            &partial,
            &mut file,
            &mut hasher,
            &mut written,
            &mut stats,
            bar,
        )
        .await;
        match result {
            Ok(()) => break,
            Err(PullError::Registry(error)) if error.status() == Some(416) && written > 0 => {
                // The registry says our offset is past the end: start over.
                restart(
                    &mut file,
                    &partial,
                    &mut hasher,
                    &mut written,
                    &mut stats,
                    blob,
                )
                .await?;
            }
            Err(PullError::Registry(error))
                if error.is_transient() && attempt < options.blob_retries =>
            {
                attempt += 1;
                bar.set_message(format!("retrying ({attempt}) after: {error}"));
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
            Err(error) => {
                let _ = file.flush().await;
                return Err(error);
            }
        }
        // Bounded: each pass either completes, restarts once after a 416 (written becomes 0,
        // so a second 416 is not taken as a restart), or uses up one of the retries.
    }
    file.flush().await.map_err(|e| PullError::io(&partial, e))?;
    file.sync_all()
        .await
        .map_err(|e| PullError::io(&partial, e))?;
    drop(file);
    if written != blob.size {
        let _ = std::fs::remove_file(&partial);
        return Err(PullError::SizeMismatch {
            kind,
            digest: blob.digest.to_string(),
            expected: blob.size,
            actual: written,
        });
    }
    let actual = hasher.finalize();
    if actual != blob.digest {
        let _ = std::fs::remove_file(&partial);
        return Err(PullError::DigestMismatch {
            kind,
            expected: blob.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    std::fs::rename(&partial, &path).map_err(|e| PullError::io(&path, e))?;
    Ok(stats)
}

async fn restart(
    file: &mut tokio::fs::File,
    partial: &Path,
    hasher: &mut DigestHasher,
    written: &mut u64,
    stats: &mut BlobStats,
    blob: &Descriptor,
) -> Result<(), PullError> {
    file.set_len(0)
        .await
        .map_err(|e| PullError::io(partial, e))?;
    *hasher = DigestHasher::new(blob.digest.algorithm());
    *written = 0;
    stats.resumed = 0;
    Ok(())
}

/// One request for the rest of the blob, appended to the partial file.
#[allow(clippy::too_many_arguments)]
async fn stream_into(
    client: &RegistryClient,
    repository: &str,
    blob: &Descriptor,
    kind: &'static str,
    partial: &Path,
    file: &mut tokio::fs::File,
    hasher: &mut DigestHasher,
    written: &mut u64,
    stats: &mut BlobStats,
    bar: &ProgressBar,
) -> Result<(), PullError> {
    let mut stream = client.blob(repository, &blob.digest, *written).await?;
    if stream.start != *written {
        // The registry ignored the range and sends the whole blob.
        restart(file, partial, hasher, written, stats, blob).await?;
        bar.set_position(0);
    }
    use tokio::io::AsyncSeekExt as _;
    file.seek(std::io::SeekFrom::Start(*written))
        .await
        .map_err(|e| PullError::io(partial, e))?;
    loop {
        let chunk = match stream.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(()),
            Err(error) => {
                file.flush().await.map_err(|e| PullError::io(partial, e))?;
                return Err(error.into());
            }
        };
        let length = chunk.len() as u64;
        if *written + length > blob.size {
            let _ = file.flush().await;
            return Err(PullError::SizeMismatch {
                kind,
                digest: blob.digest.to_string(),
                expected: blob.size,
                actual: *written + length,
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| PullError::io(partial, e))?;
        hasher.update(&chunk);
        *written += length;
        stats.downloaded += length;
        bar.set_position(*written);
    }
}

/// Digest (with the algorithm of `like`) and size of a whole file.
async fn hash_file(path: &Path, like: &Digest) -> Result<(Digest, u64), PullError> {
    let (hasher, size) = hash_prefix(path, like).await?;
    Ok((hasher.finalize(), size))
}

/// A hasher fed with the whole file (on a blocking thread), and the file's size.
async fn hash_prefix(path: &Path, like: &Digest) -> Result<(DigestHasher, u64), PullError> {
    let owned = path.to_owned();
    let algorithm = like.algorithm();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = DigestHasher::new(algorithm);
        let mut buffer = vec![0; HASH_CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                return Ok((hasher, size));
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
    })
    .await
    .map_err(|e| PullError::io(path, std::io::Error::other(e)))?
    .map_err(|e| PullError::io(path, e))
}

/// An OCI image layout directory.
struct Layout {
    root: PathBuf,
}

impl Layout {
    /// `root` as a layout to write: absent, empty, or a layout already; refuses a directory
    /// with other content (it would be the user's files). Nothing is created yet.
    fn open(root: &Path) -> Result<Layout, PullError> {
        let layout_file = root.join("oci-layout");
        if root.exists() {
            if !root.is_dir() {
                return Err(PullError::Layout {
                    path: root.to_owned(),
                    reason: "exists and is not a directory".into(),
                });
            }
            let empty = std::fs::read_dir(root)
                .map_err(|e| PullError::io(root, e))?
                .next()
                .is_none();
            if !empty && !layout_file.is_file() {
                return Err(PullError::Layout {
                    path: root.to_owned(),
                    reason: "is neither empty nor an OCI image layout (no oci-layout file)".into(),
                });
            }
        }
        Ok(Layout {
            root: root.to_owned(),
        })
    }

    /// Creates the directory and its `oci-layout` file when missing (once the image is known
    /// to exist, so a failed lookup leaves nothing behind).
    fn create(&self) -> Result<(), PullError> {
        let layout_file = self.root.join("oci-layout");
        std::fs::create_dir_all(&self.root).map_err(|e| PullError::io(&self.root, e))?;
        if !layout_file.is_file() {
            write_atomically(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(())
    }

    fn blob_dir(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.algorithm().as_str())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest).join(digest.hex())
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        let dir = self.blob_dir(digest);
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{}.partial", digest.hex()))
    }

    fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), PullError> {
        let dir = self.blob_dir(digest);
        std::fs::create_dir_all(&dir).map_err(|e| PullError::io(&dir, e))?;
        write_atomically(&self.blob_path(digest), bytes)
    }

    /// Points `index.json` at `manifest` under `tag`, replacing an entry with the same tag (or,
    /// untagged, the same digest) and keeping the others.
    fn add_to_index(
        &self,
        manifest: &Descriptor,
        platform: Option<&Platform>,
        tag: Option<&str>,
    ) -> Result<(), PullError> {
        let path = self.root.join("index.json");
        let mut entries: Vec<serde_json::Value> = match std::fs::read(&path) {
            Ok(bytes) => {
                let index: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| PullError::Layout {
                        path: path.clone(),
                        reason: format!("not an image index: {e}"),
                    })?;
                index["manifests"].as_array().cloned().unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(PullError::io(&path, e)),
        };
        entries.retain(|entry| match tag {
            Some(tag) => entry["annotations"][REF_NAME_ANNOTATION] != tag,
            None => {
                entry["digest"] != manifest.digest.as_str()
                    || entry["annotations"][REF_NAME_ANNOTATION].is_string()
            }
        });
        let mut entry = serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest.as_str(),
            "size": manifest.size,
        });
        if let Some(platform) = platform {
            let mut value = serde_json::json!({
                "architecture": platform.architecture,
                "os": platform.os,
            });
            if let Some(variant) = &platform.variant {
                value["variant"] = variant.clone().into();
            }
            entry["platform"] = value;
        }
        if let Some(tag) = tag {
            entry["annotations"] = serde_json::json!({ REF_NAME_ANNOTATION: tag });
        }
        entries.push(entry);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| PullError::Layout {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &bytes)
    }
}

/// Writes through a temporary file and a rename, so readers see the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PullError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temporary, bytes).map_err(|e| PullError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| PullError::io(path, e))
}

/// The manifest the layout at `dest` holds for `image` (by tag, or by digest when the image is
/// pinned), if its blob is there: how the CLI decides whether an `IfNotPresent` image is
/// present.
pub fn find_in_layout(dest: &Path, image: &str) -> Option<Descriptor> {
    let reference = ImageReference::parse(image).ok()?;
    let bytes = std::fs::read(dest.join("index.json")).ok()?;
    let index: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let entries = index["manifests"].as_array()?;
    let entry = entries.iter().find(|entry| match &reference.digest {
        Some(digest) => entry["digest"] == digest.as_str(),
        None => entry["annotations"][REF_NAME_ANNOTATION] == reference.tag.as_deref().unwrap_or(""),
    })?;
    let digest = Digest::from_str(entry["digest"].as_str()?).ok()?;
    let layout = Layout {
        root: dest.to_owned(),
    };
    layout.blob_path(&digest).is_file().then(|| Descriptor {
        media_type: entry["mediaType"].as_str().unwrap_or_default().to_owned(),
        size: entry["size"].as_u64().unwrap_or_default(),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match_like_containerd() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(arm64.to_string(), "linux/arm64");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/arm/v7/x").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        let p = |s: &str| Platform::parse(s).unwrap();
        assert_eq!(arm64.rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(arm64.rank(&p("linux/aarch64")), Some(0));
        assert_eq!(arm64.rank(&p("linux/amd64")), None);
        assert_eq!(p("linux/amd64").rank(&p("linux/x86_64")), Some(0));
        assert_eq!(p("linux/arm").rank(&p("linux/arm/v7")), Some(0));
        assert_eq!(p("linux/arm/v7").rank(&p("linux/arm/v6")), Some(1));
        assert_eq!(p("linux/arm/v6").rank(&p("linux/arm/v7")), None);
        assert_eq!(p("linux/amd64").rank(&p("windows/amd64")), None);
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn durations_print_as_go_does() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::from_micros(400)), "0s");
        assert_eq!(go_duration(ms(532)), "532ms");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(1234)), "1.234s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(62_500)), "1m2.5s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_nanos(1_234_999_999)), "1.234s");
    }

    #[test]
    fn event_messages_are_the_kubelets() {
        assert_eq!(with_default_tag("r.io/a/b"), "r.io/a/b:latest");
        assert_eq!(
            with_default_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(with_default_tag("r.io/a/b:v1"), "r.io/a/b:v1");
        let pinned = format!("r.io/a@sha256:{}", "a".repeat(64));
        assert_eq!(with_default_tag(&pinned), pinned);
        assert_eq!(pulling_message("r.io/a:v1"), "Pulling image \"r.io/a:v1\"");
        assert_eq!(
            pulled_message(
                "r.io/a:v1",
                Duration::from_millis(1234),
                Duration::from_millis(1300),
                42
            ),
            "Successfully pulled image \"r.io/a:v1\" in 1.234s (1.3s including waiting). Image size: 42 bytes."
        );
        assert_eq!(
            failed_message("r.io/a:v1", &"boom"),
            "Failed to pull image \"r.io/a:v1\": boom"
        );
    }

    #[test]
    fn failures_aggregate_like_the_kubelet() {
        let one = PullError::Layout {
            path: "a".into(),
            reason: "x".into(),
        };
        let two = PullError::Layout {
            path: "b".into(),
            reason: "y".into(),
        };
        let same = PullError::Layout {
            path: "a".into(),
            reason: "x".into(),
        };
        let error = PullError::Aggregate(vec![one, two, same]);
        assert_eq!(error.to_string(), "[a: x, b: y]");
        assert_eq!(error.attempts().len(), 3);
        let twice = PullError::Aggregate(vec![
            PullError::Layout {
                path: "a".into(),
                reason: "x".into(),
            },
            PullError::Layout {
                path: "a".into(),
                reason: "x".into(),
            },
        ]);
        assert_eq!(
            twice.to_string(),
            "a: x",
            "one distinct message, no brackets"
        );
    }

    #[test]
    fn layouts_refuse_foreign_directories_and_merge_tags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert!(matches!(
            Layout::open(dir.path()),
            Err(PullError::Layout { .. })
        ));
        let root = dir.path().join("layout");
        let layout = Layout::open(&root).unwrap();
        assert!(
            !root.exists(),
            "nothing is created before the image is found"
        );
        layout.create().unwrap();
        let blob = |text: &str| {
            let digest = Digest::of(minato_oci::Algorithm::Sha256, text.as_bytes());
            layout.write_blob(&digest, text.as_bytes()).unwrap();
            Descriptor {
                media_type: media_type::OCI_MANIFEST.into(),
                digest,
                size: text.len() as u64,
            }
        };
        let (a, b, c) = (blob("a"), blob("b"), blob("c"));
        layout.add_to_index(&a, None, Some("v1")).unwrap();
        layout.add_to_index(&b, None, Some("v2")).unwrap();
        layout.add_to_index(&c, None, Some("v1")).unwrap();
        let found = |tag: &str| find_in_layout(&root, &format!("r.io/x:{tag}"));
        assert_eq!(found("v1").map(|d| d.digest), Some(c.digest.clone()));
        assert_eq!(found("v2").map(|d| d.digest), Some(b.digest));
        assert_eq!(found("v3"), None);
        let pinned = format!("r.io/x@{}", c.digest);
        assert!(find_in_layout(&root, &pinned).is_some());
        assert!(Layout::open(&root).is_ok(), "an existing layout reopens");
    }

    /// A registry that ignores `Range` and, with `basic`, demands Basic `user:pass`; records the
    /// `Range` headers it got. One request per connection (`Connection: close`).
    struct Tiny {
        addr: String,
        ranges: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Tiny {
        async fn start(manifest: Vec<u8>, blobs: Blobs, basic: bool) -> Tiny {
            use tokio::io::AsyncReadExt as _;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let ranges = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = ranges.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (manifest, blobs, seen) = (manifest.clone(), blobs.clone(), seen.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buffer = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buffer[..n]),
                            }
                            if head.first() == Some(&0x16) {
                                return; // a TLS handshake: plain HTTP only, as minato answers
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        let header = |name: &str| {
                            head.lines()
                                .filter_map(|l| l.split_once(':'))
                                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_owned())
                        };
                        if let Some(range) = header("range") {
                            seen.lock().unwrap().push(range);
                        }
                        // base64("user:pass")
                        let authorized = !basic
                            || header("authorization").as_deref() == Some("Basic dXNlcjpwYXNz");
                        let (status, kind, body): (&str, &str, Vec<u8>) = if !authorized {
                            (
                                "401 Unauthorized",
                                "application/json",
                                br#"{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}"#
                                    .to_vec(),
                            )
                        } else if path == "/v2/" {
                            ("200 OK", "application/json", b"{}".to_vec())
                        } else if path == "/v2/r/manifests/v1" {
                            ("200 OK", media_type::OCI_MANIFEST, manifest)
                        } else if let Some((_, bytes)) = blobs
                            .iter()
                            .find(|(d, _)| path == format!("/v2/r/blobs/{d}"))
                        {
                            ("200 OK", "application/octet-stream", bytes.clone())
                        } else {
                            ("404 Not Found", "application/json", b"{}".to_vec())
                        };
                        let challenge = if basic {
                            "WWW-Authenticate: Basic realm=\"tiny\"\r\n"
                        } else {
                            ""
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{challenge}Connection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        let _ = stream.write_all(&body).await;
                    });
                }
            });
            Tiny { addr, ranges }
        }
    }

    /// Blobs of the tiny registry by digest.
    type Blobs = Vec<(String, Vec<u8>)>;

    /// An image (manifest bytes, layer digest, blobs) with one layer of `size` bytes.
    fn tiny_image(size: usize) -> (Vec<u8>, Digest, Blobs) {
        let layer: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let sha = |b: &[u8]| Digest::of(minato_oci::Algorithm::Sha256, b);
        let (layer_digest, config_digest) = (sha(&layer), sha(&config));
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest.as_str(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest.as_str(), "size": layer.len()}],
        }))
        .unwrap();
        let blobs = vec![
            (layer_digest.to_string(), layer),
            (config_digest.to_string(), config),
        ];
        (manifest, layer_digest, blobs)
    }

    #[tokio::test]
    async fn a_registry_that_ignores_range_restarts_the_blob_from_zero() {
        let (manifest, layer, blobs) = tiny_image(200_000);
        let tiny = Tiny::start(manifest, blobs.clone(), false).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layout");
        // A partial file whose bytes differ from the blob: appending to it would fail the digest.
        let layout = Layout::open(&dest).unwrap();
        layout.create().unwrap();
        std::fs::write(layout.partial_path(&layer), vec![0xEE; 5000]).unwrap();
        let mut options = PullOptions::new(&dest);
        options.client.connect_timeout = Duration::from_secs(5);
        let image = format!("{}/r:v1", tiny.addr);
        let outcome = pull(&image, &[], &options).await.unwrap();
        assert_eq!(tiny.ranges.lock().unwrap().as_slice(), ["bytes=5000-"]);
        assert_eq!(outcome.resumed_bytes, 0, "the partial bytes were dropped");
        assert_eq!(outcome.downloaded_bytes, 200_000 + blobs[1].1.len() as u64);
        assert_eq!(std::fs::read(layout.blob_path(&layer)).unwrap(), blobs[0].1);
        assert_eq!(
            outcome.platform.map(|p| p.to_string()).as_deref(),
            Some("linux/arm64"),
            "a single manifest's platform comes from its config"
        );
        assert_eq!(outcome.credential, None);
    }

    #[tokio::test]
    async fn basic_challenges_take_credentials_in_order_and_keep_the_registrys_refusal() {
        let (manifest, _, blobs) = tiny_image(1000);
        let tiny = Tiny::start(manifest, blobs, true).await;
        let dir = tempfile::tempdir().unwrap();
        let options = PullOptions::new(dir.path().join("layout"));
        let image = format!("{}/r:v1", tiny.addr);
        let wrong = Credential::new("user", "nope");
        let right = Credential::new("user", "pass");

        let outcome = pull(&image, &[wrong.clone(), right], &options)
            .await
            .unwrap();
        assert_eq!(outcome.credential, Some(1));

        let error = pull(&image, &[wrong], &options).await.unwrap_err();
        let PullError::Registry(registry) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(registry.status(), Some(401));
        assert_eq!(registry.code(), Some("UNAUTHORIZED"));
        assert_eq!(registry.message(), Some("who are you"));
        assert_eq!(
            registry.kind(),
            crate::registry_client::ErrorKind::Unauthorized
        );
        assert!(
            error
                .to_string()
                .ends_with("/v2/r/manifests/v1\": unauthorized: who are you"),
            "{error}"
        );
        assert!(!error.to_string().contains("nope"));
    }
}
