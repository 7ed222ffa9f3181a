//! `minato doctor`: reads what a cluster sees (Pods, workloads, Secrets, ServiceAccounts,
//! Nodes) and explains, per container, whether the kubelet would pull its image and why not;
//! with `--policy`, also whether the image verification webhook would admit it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use minato_kube::cluster::{Cluster, NodePlatform, read_documents};
use minato_kube::docker_config::DockerConfig;
use minato_kube::doctor::{DoctorOptions, Finding, Verdict, diagnose};
use minato_kube::keyring::Keyring;
use minato_kube::policy::Policy;

/// Arguments of `minato doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Manifests to read (YAML or JSON, multi-document, `List`s); `-` reads standard input,
    /// e.g. `kubectl get pods,deploy,rs,sts,ds,jobs,cronjobs,secrets,sa,nodes -A -o yaml | minato doctor -f -`.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["table", "json"], default_value = "table")]
    output: String,
    /// Node architecture to check images against when the input has no Nodes (repeatable).
    #[arg(long = "node-arch")]
    node_arch: Vec<String>,
    /// The nodes' docker config file (node-level credentials, tried after pull secrets).
    #[arg(long)]
    docker_config: Option<PathBuf>,
    /// An ImageVerificationPolicy file (as `minato webhook --policy` takes): also check that
    /// the admission webhook would admit each image that pulls (signatures fetched with the
    /// credential that pulled it).
    #[arg(long)]
    policy: Option<PathBuf>,
}

fn read_cluster(files: &[String]) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::default();
    for file in files {
        let (name, text) = if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading manifests from standard input")?;
            ("<stdin>".to_owned(), text)
        } else {
            (
                file.clone(),
                std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
            )
        };
        cluster.merge(read_documents(&name, &text)?);
    }
    Ok(cluster)
}

/// Runs the diagnosis; exits non-zero when any container would fail to pull.
pub fn run(args: DoctorArgs) -> anyhow::Result<std::process::ExitCode> {
    let cluster = read_cluster(&args.files)?;
    let (node_keyring, docker_config) = match &args.docker_config {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let keyring = Keyring::from_docker_config(path.clone(), &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.kubelet_message()))?;
            (keyring, Some(DockerConfig::load(path)?))
        }
        None => (Keyring::empty(), None),
    };
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(Policy::parse(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    let options = DoctorOptions {
        node_keyring,
        platforms: args
            .node_arch
            .iter()
            .map(|arch| NodePlatform {
                os: "linux".to_owned(),
                architecture: arch.clone(),
            })
            .collect(),
        policy,
        docker_config,
    };
    let findings = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(diagnose(&cluster, &options));
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "containers": findings }))?
        );
    } else {
        print_table(&findings);
    }
    Ok(if findings.iter().any(|f| f.verdict == Verdict::Fail) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Warn => "warn",
        Verdict::Fail => "FAIL",
    }
}

/// A column-aligned summary, then the details of every container that is not fine.
fn print_table(findings: &[Finding]) {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "IMAGE",
        "VERDICT",
        "CAUSE",
    ];
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|f| {
            [
                f.namespace.clone(),
                f.workload.clone(),
                f.container.clone(),
                f.image.clone(),
                verdict_text(f.verdict).to_owned(),
                f.cause.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    for finding in findings.iter().filter(|f| f.verdict != Verdict::Ok) {
        println!();
        println!(
            "{} {} container {:?} ({}):",
            finding.namespace, finding.workload, finding.container, finding.image
        );
        if !finding.reason.is_empty() {
            println!("  reason:      {}", finding.reason);
        }
        println!("  message:     {}", finding.message);
        println!("  fix:         {}", finding.fix);
        println!(
            "  resolved:    {}  (imagePullPolicy {})",
            finding.resolved_image, finding.pull_policy
        );
        let secrets: Vec<String> = finding
            .pull_secrets
            .iter()
            .map(|s| format!("{} [{}]", s.name, s.status))
            .collect();
        let origin = if finding.secrets_from_service_account {
            " (from the service account)"
        } else {
            ""
        };
        println!(
            "  secrets:     {}{origin}",
            if secrets.is_empty() {
                "none".to_owned()
            } else {
                secrets.join(", ")
            }
        );
        for key in &finding.auth_keys {
            println!(
                "  auths key:   {} -> {}: {} ({}; {})",
                key.key, key.normalized, key.explanation, key.source, key.credential
            );
        }
        println!("  credential:  {}", finding.credential);
        if !finding.registry_answer.is_empty() {
            println!("  registry:    {}", finding.registry_answer);
        }
        if !finding.platforms.is_empty() {
            println!("  platforms:   {}", finding.platforms.join(", "));
        }
        if !finding.signature.is_empty() {
            println!("  signature:   {}", finding.signature);
        }
    }
}
