//! `minato pull IMAGE`: pull an image the way the kubelet would for a Pod — same credential
//! order, same platform selection, same events — into an OCI image layout directory.
//!
//! Credentials come from pull secrets (`--secret`, or the secrets a workload of `-f` refers to
//! directly or through its ServiceAccount), then the node's docker config (`--docker-config`),
//! looked up for the image's repository with the kubelet's keyring rules.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use minato_kube::cluster::{self, Cluster, ContainerView, SecretObject, Workload};
use minato_kube::keyring::{Keyring, KeyringError};
use minato_kube::pull::{
    self, Credential, Platform, PullError, PullOptions, already_present_message, failed_message,
    pulled_message, pulling_message, with_default_tag,
};
use minato_kube::reference::{ImageReference, parse_error_message};
use minato_kube::registry_client::ErrorKind;

/// Arguments of `minato pull`.
#[derive(Debug, Args)]
#[command(after_help = "\
Credentials are tried in the kubelet's order: the pull secrets (in the order given, or in the
workload's imagePullSecrets order), then --docker-config; only entries whose server matches the
image's repository count, and the pull stops at the first credential that works (anonymous
when none applies).

Events are printed to standard output as the kubelet records them (TYPE  REASON  MESSAGE);
progress bars go to standard error when it is a terminal. The exit status is non-zero when the
pull fails. Passwords are never printed.")]
pub struct PullArgs {
    /// The image, as written in a Pod spec (e.g. registry.example/ns/app:v1). With -f: taken
    /// from the workload's container (or, when given, selects the container using it).
    image: Option<String>,
    /// A file with pull Secrets (YAML or JSON, as `kubectl create secret docker-registry`
    /// prints them); repeatable. Without -f every Secret is tried, in order; with -f they are
    /// available to the workload, which uses those it refers to.
    #[arg(long = "secret", value_name = "FILE")]
    secrets: Vec<PathBuf>,
    /// The node's docker config file (`config.json` or `.dockercfg`), tried after the secrets.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// A manifest (Pod, Deployment, ... with its Secrets and ServiceAccounts, multi-document
    /// YAML or JSON): pull the image of one of its containers with its pull policy and the pull
    /// secrets the kubelet would use for it.
    #[arg(short = 'f', long = "filename", value_name = "MANIFEST")]
    manifest: Option<PathBuf>,
    /// With -f: the container whose image to pull (needed when the manifest has several).
    #[arg(long, value_name = "NAME", requires = "manifest")]
    container: Option<String>,
    /// OCI image layout directory to write [default: ./<last component of the repository>,
    /// e.g. ./app for registry.example/ns/app:v1]. It may hold several tags: each pull adds or
    /// replaces its tag's entry in index.json.
    #[arg(long, value_name = "DIR")]
    dest: Option<PathBuf>,
    /// Platform to select from a multi-platform image [default: the workload's
    /// kubernetes.io/arch node selector with -f, else linux/<this machine's arch>].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<Platform>,
    /// Blobs downloaded at the same time.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Times an interrupted blob download is resumed before the pull fails (a later pull
    /// resumes it again from what was saved).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=20))]
    blob_retries: u32,
    /// Never draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// A kubelet event line: `TYPE  REASON  MESSAGE`.
fn event(kind: &str, reason: &str, message: &str) {
    println!("{kind}  {reason}  {message}");
}

/// The directory named after the image: the last component of its repository path.
fn default_dest(reference: &ImageReference) -> PathBuf {
    let last = reference.path.rsplit('/').next().unwrap_or("image");
    PathBuf::from(last)
}

/// Reads one manifest or secret file.
fn read_source(path: &Path) -> anyhow::Result<Cluster> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(cluster::read_documents(&path.display().to_string(), &text)?)
}

/// What to pull, with which policy and secrets.
struct Plan {
    image: String,
    policy: String,
    secrets: Vec<SecretObject>,
    platform: Option<Platform>,
}

/// Runs `minato pull`.
pub fn run(args: PullArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut given = Cluster::default();
    let mut secrets_in_order = Vec::new();
    for path in &args.secrets {
        let source = read_source(path)?;
        if source.secrets.is_empty() {
            bail!("{}: no Secret in this file", path.display());
        }
        secrets_in_order.extend(source.secrets.iter().cloned());
        given.merge(source);
    }
    let plan = match &args.manifest {
        None => {
            let Some(image) = args.image.clone() else {
                bail!("give the image to pull, or a manifest with -f");
            };
            Plan {
                image,
                policy: "Always".to_owned(),
                secrets: secrets_in_order,
                platform: None,
            }
        }
        Some(path) => {
            // Objects of the manifest win over the same objects given with --secret.
            given.merge(read_source(path)?);
            plan_from_manifest(&given, &args, path)?
        }
    };
    let node = match &args.docker_config {
        None => Keyring::empty(),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Keyring::from_docker_config(path, &bytes).unwrap_or_else(|error| {
                // The kubelet logs an unreadable node config and goes on without it.
                eprintln!("warning: ignoring the docker config: {error}");
                Keyring::empty()
            })
        }
    };
    let keyring = Keyring::from_secrets(&plan.secrets).map(|pod| pod.union(node));
    let platform = args.platform.clone().or(plan.platform.clone());
    pull_image(&args, &plan, platform, keyring, started)
}

/// The workload, container and pull secrets a manifest names for this pull.
fn plan_from_manifest(cluster: &Cluster, args: &PullArgs, path: &Path) -> anyhow::Result<Plan> {
    let candidates: Vec<(&Workload, &ContainerView)> = cluster
        .workloads
        .iter()
        .flat_map(|w| w.pod.containers.iter().map(move |c| (w, c)))
        .filter(|(_, c)| args.container.as_deref().is_none_or(|name| c.name == name))
        .filter(|(_, c)| args.image.as_deref().is_none_or(|image| c.image == image))
        .collect();
    let describe = |list: &[(&Workload, &ContainerView)]| {
        list.iter()
            .map(|(w, c)| format!("{} {}: {} ({})", w.kind, w.name, c.name, c.image))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (workload, container) = match candidates.as_slice() {
        [] => {
            let all: Vec<(&Workload, &ContainerView)> = cluster
                .workloads
                .iter()
                .flat_map(|w| w.pod.containers.iter().map(move |c| (w, c)))
                .collect();
            bail!(
                "{}: no container matches{}{}; containers: {}",
                path.display(),
                args.container
                    .as_deref()
                    .map_or_else(String::new, |n| format!(" --container {n}")),
                args.image
                    .as_deref()
                    .map_or_else(String::new, |i| format!(" image {i}")),
                if all.is_empty() {
                    "none".to_owned()
                } else {
                    describe(&all)
                }
            );
        }
        [one] => *one,
        several => bail!(
            "{}: several containers match; choose one with --container: {}",
            path.display(),
            describe(several)
        ),
    };
    let effective = cluster.effective_pull_secrets(workload);
    if let Some(warning) = effective.warning() {
        event("Warning", cluster::FAILED_TO_RETRIEVE_REASON, &warning);
        for name in &effective.missing {
            for other in cluster.secrets_named(name) {
                eprintln!(
                    "hint: secret {name} exists in namespace {}, not in the workload's namespace {} (secrets are namespaced)",
                    other.namespace, workload.namespace
                );
            }
        }
    }
    let platform = workload
        .pod
        .node_selector_arch
        .as_ref()
        .map(|arch| Platform {
            os: "linux".to_owned(),
            architecture: arch.clone(),
            variant: None,
        });
    Ok(Plan {
        image: container.image.clone(),
        policy: container.pull_policy().to_owned(),
        secrets: effective.found.into_iter().cloned().collect(),
        platform,
    })
}

/// Applies the pull policy, pulls, and prints the kubelet's events.
fn pull_image(
    args: &PullArgs,
    plan: &Plan,
    platform: Option<Platform>,
    keyring: Result<Keyring, KeyringError>,
    started: Instant,
) -> anyhow::Result<()> {
    let image = plan.image.as_str();
    let reference = match ImageReference::parse(image) {
        Ok(reference) => reference,
        Err(error) => {
            let message = parse_error_message(image, &error);
            event("Warning", "InspectFailed", &message);
            bail!("{message}");
        }
    };
    let shown = with_default_tag(image);
    let dest = args
        .dest
        .clone()
        .unwrap_or_else(|| default_dest(&reference));
    if plan.policy != "Always" {
        if pull::find_in_layout(&dest, image).is_some() {
            event("Normal", "Pulled", &already_present_message(&shown));
            return Ok(());
        }
        if plan.policy == "Never" {
            let message =
                format!("Container image {shown:?} is not present with pull policy of Never");
            event("Warning", "ErrImageNeverPull", &message);
            bail!("{message}");
        }
    }
    event("Normal", "Pulling", &pulling_message(&shown));
    let keyring = match keyring {
        Ok(keyring) => keyring,
        Err(error) => {
            // The kubelet fails the pull with the raw parse error of the secret.
            event(
                "Warning",
                "Failed",
                &failed_message(&shown, &error.kubelet_message()),
            );
            event("Warning", "Failed", "Error: ErrImagePull");
            return Err(error.into());
        }
    };
    let credentials: Vec<Credential> = keyring
        .lookup(&reference.repository())
        .into_iter()
        .map(|c| Credential::new(c.username, c.password))
        .collect();
    let mut options = PullOptions::new(&dest);
    options.platform = platform;
    options.concurrency = usize::from(args.concurrency);
    options.blob_retries = args.blob_retries;
    options.progress = !args.no_progress;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(pull::pull(image, &credentials, &options)) {
        Ok(outcome) => {
            event(
                "Normal",
                "Pulled",
                &pulled_message(
                    &shown,
                    outcome.duration,
                    started.elapsed(),
                    outcome.image_size,
                ),
            );
            let platform = outcome
                .platform
                .as_ref()
                .map_or_else(String::new, |p| format!(" ({p})"));
            let credential = match outcome.credential {
                None => "anonymously".to_owned(),
                Some(i) => format!("as {}", credentials[i].username),
            };
            eprintln!(
                "{reference} {}{platform} -> {} {credential}: {} bytes downloaded, {} resumed from an earlier pull, {} already present",
                outcome.manifest.digest,
                dest.display(),
                outcome.downloaded_bytes,
                outcome.resumed_bytes,
                outcome.reused_bytes,
            );
            Ok(())
        }
        Err(error) => {
            event("Warning", "Failed", &failed_message(&shown, &error));
            event("Warning", "Failed", "Error: ErrImagePull");
            explain(&error, &dest, credentials.len());
            Err(error.into())
        }
    }
}

/// Hints on standard error for failures whose message alone does not say what to do.
fn explain(error: &PullError, dest: &Path, credentials: usize) {
    let refused = error.attempts().iter().any(|attempt| {
        matches!(attempt, PullError::Registry(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Denied))
    });
    if refused && credentials == 0 {
        eprintln!(
            "hint: no pull secret or docker config entry matched this image, so the pull was anonymous"
        );
    }
    for attempt in error.attempts() {
        if let PullError::NoMatchingPlatform { wanted, available } = attempt {
            let offered: Vec<String> = available.iter().map(ToString::to_string).collect();
            eprintln!(
                "hint: the image offers {}; asked for {wanted} (choose with --platform)",
                if offered.is_empty() {
                    "no platform".to_owned()
                } else {
                    offered.join(", ")
                }
            );
        }
    }
    let kept = partial_bytes(dest);
    if kept > 0 {
        eprintln!(
            "hint: {kept} bytes of interrupted downloads are kept in {}; the next pull resumes them",
            dest.display()
        );
    }
}

/// Bytes held in `.partial` files of the layout at `dest`.
fn partial_bytes(dest: &Path) -> u64 {
    let Ok(algorithms) = std::fs::read_dir(dest.join("blobs")) else {
        return 0;
    };
    algorithms
        .filter_map(Result::ok)
        .filter_map(|dir| std::fs::read_dir(dir.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|file| file.file_name().to_string_lossy().ends_with(".partial"))
        .filter_map(|file| file.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}
