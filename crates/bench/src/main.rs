//! `minato-bench`: starts minato, the reference registry (Distribution) and nginx on loopback
//! with fresh data directories, loads the same data into both registries through the HTTP API,
//! runs each workload against each target interleaved for several rounds, and prints the
//! medians with minato's targets (`--json FILE` writes every sample). The authenticated
//! workloads add a second minato with tenancy authentication, loaded with its bootstrap
//! credentials and measured with a bearer token.

mod auth;
mod cli;
mod client;
mod headload;
mod kube;
mod load;
mod report;
mod signing;
mod targets;
mod workloads;
mod wrk;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::auth::{AuthTarget, Bootstrap};
use crate::cli::{Args, Plan, Workload};
use crate::client::{Registry, http_client};
use crate::load::{Dataset, Parts};
use crate::report::{Key, Results};
use crate::targets::{Access, Kind, Server};
use crate::workloads::{Bench, NGINX_BLOB};

const MIB: f64 = 1024.0 * 1024.0;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_until_signal(args))
}

/// Runs the benchmark; SIGINT or SIGTERM abandons it, which drops (stops) every server.
async fn run_until_signal(args: Args) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
}

/// The servers of one run, declared so that they stop before their directory is removed.
struct Targets {
    minato: Server,
    /// minato with authentication and its bootstrap credentials, for authenticated workloads.
    minato_auth: Option<(Server, Bootstrap)>,
    reference: Server,
    nginx: Option<Server>,
    _root: tempfile::TempDir,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(&args);
    if !args.minato.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p minato` (or use scripts/bench)",
            args.minato.display()
        );
    }
    eprintln!(
        "minato-bench: {} round(s), {} s wrk runs, workloads: {:?}",
        plan.rounds, plan.duration, plan.workloads
    );
    let load_before = load_average();
    let http = http_client()?;
    let root = tempfile::Builder::new()
        .prefix("minato-bench-")
        .tempdir()
        .context("creating the temporary directory")?;
    targets::share_dir(root.path())?;

    eprintln!("generating data ({} MiB blob)", plan.sizes.blob >> 20);
    let data = Dataset::generate(&plan.sizes);
    let scratch = root.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;

    let targets = start_targets(&args, &plan, &data, root, &http).await?;
    let mut results = Results::default();
    for server in [&targets.minato, &targets.reference] {
        let memory = server.memory()?;
        results.record(Key::RssIdle, server.kind(), memory.rss as f64 / MIB);
    }

    let parts = Parts {
        tags: plan.runs(Workload::TagList)
            || plan.runs(Workload::ManifestGet)
            || plan.runs(Workload::ManifestGetAuth),
        repos: plan.runs(Workload::Catalog),
    };
    let mut minato = Registry::new(http.clone(), targets.minato.base());
    let mut reference = Registry::new(http.clone(), targets.reference.base());
    for (kind, registry) in [
        (Kind::Minato, &mut minato),
        (Kind::Reference, &mut reference),
    ] {
        eprintln!("loading {kind} ({})", registry.base());
        let times = load::load(registry, &data, parts).await?;
        eprintln!(
            "  image {:.1} s, tags {:?}, repositories {:?}; monolithic push: {}",
            times.image.as_secs_f64(),
            times.tags,
            times.repos,
            if registry.single_post() {
                "POST ?digest="
            } else {
                "POST + PUT ?digest="
            }
        );
        if let Some(tags) = times.tags {
            results.record(Key::LoadTags, kind, tags.as_secs_f64());
        }
        if let Some(repos) = times.repos {
            results.record(Key::LoadRepos, kind, repos.as_secs_f64());
        }
        if !registry.single_post() {
            results.note(format!(
                "{kind} ignores POST ?digest=, so its monolithic pushes are POST + PUT ?digest="
            ));
        }
    }

    let auth = match &targets.minato_auth {
        Some((server, bootstrap)) => {
            Some(load_authenticated(server, bootstrap, &plan, &data, &http).await?)
        }
        None => None,
    };

    let mut bench = Bench {
        plan: &plan,
        data: &data,
        minato: &minato,
        reference: &reference,
        auth: auth.as_ref(),
        nginx: targets.nginx.as_ref().map(Server::base),
        wrk: &args.wrk,
        minato_binary: &args.minato,
        scratch,
        results: &mut results,
    };
    for workload in &plan.workloads {
        eprintln!("workload {workload:?}");
        bench.run(*workload).await?;
    }

    for server in [&targets.minato, &targets.reference] {
        let memory = server.memory()?;
        results.record(Key::RssPeak, server.kind(), memory.peak as f64 / MIB);
        results.note(memory_note(server.kind(), memory));
    }
    if let Some((server, _)) = &targets.minato_auth {
        results.note(memory_note(server.kind(), server.memory()?));
    }
    drop(targets);
    results.note(format!(
        "load average (1/5/15 min) before: {load_before}, after: {}; {} CPUs",
        load_average(),
        std::thread::available_parallelism().map_or(0, usize::from)
    ));

    let elapsed = started.elapsed().as_secs_f64();
    println!();
    println!(
        "minato-bench: {} round(s), {} s per wrk run, medians; total {elapsed:.0} s",
        plan.rounds, plan.duration
    );
    print!("{}", results.table());
    let (passed, failed) = results.tally();
    println!("targets: {passed} passed, {failed} failed");

    if let Some(path) = &args.json {
        let context = json!({
            "rounds": plan.rounds,
            "duration_secs": plan.duration,
            "quick": args.quick,
            "workloads": plan.workloads.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>(),
            "sizes": format!("{:?}", plan.sizes),
            "elapsed_secs": elapsed,
        });
        write_json(path, &results.json(context))?;
    }
    Ok(())
}

/// Loads the authenticated minato with its bootstrap credentials and gets its bearer token.
async fn load_authenticated(
    server: &Server,
    bootstrap: &Bootstrap,
    plan: &Plan,
    data: &Dataset,
    http: &reqwest::Client,
) -> anyhow::Result<AuthTarget> {
    let parts = Parts {
        tags: plan.runs(Workload::ManifestGetAuth),
        repos: false,
    };
    eprintln!(
        "loading {} ({}) as {}",
        server.kind(),
        server.base(),
        bootstrap.username
    );
    let (target, times) = auth::prepare(http, server.base(), bootstrap, data, parts)
        .await
        .with_context(|| format!("preparing {}", server.kind()))?;
    eprintln!(
        "  image {:.1} s, tags {:?}; bearer token for repository:{}:pull",
        times.image.as_secs_f64(),
        times.tags,
        load::REPO
    );
    Ok(target)
}

/// The note on a server's memory at the end of the run.
fn memory_note(kind: Kind, memory: targets::Memory) -> String {
    format!(
        "{kind} at the end: RSS {:.1} MiB = anonymous {:.1} + file-backed {:.1}",
        memory.rss as f64 / MIB,
        memory.anon as f64 / MIB,
        memory.file as f64 / MIB
    )
}

/// Writes the nginx files and starts minato, the reference and (for blob GET) nginx, plus
/// minato with authentication when an authenticated workload runs.
async fn start_targets(
    args: &Args,
    plan: &Plan,
    data: &Dataset,
    root: tempfile::TempDir,
    http: &reqwest::Client,
) -> anyhow::Result<Targets> {
    let dir = root.path();
    let minato =
        targets::start_minato(&args.minato, &dir.join("minato"), Access::Open, http).await?;
    eprintln!("minato on {}", minato.base());
    let minato_auth = if plan.runs_authenticated() {
        Some(start_minato_auth(&args.minato, &dir.join("minato-auth"), http).await?)
    } else {
        None
    };
    let reference = targets::start_reference(&args.reference, &dir.join("reference"), http).await?;
    eprintln!("reference on {}", reference.base());
    let nginx = if plan.runs(Workload::BlobGet) {
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join(NGINX_BLOB.trim_start_matches('/')), &data.blob)?;
        std::fs::write(www.join("ping"), "ok\n")?;
        targets::share_dir(&www)?;
        let nginx =
            targets::start_nginx(&args.nginx, &dir.join("nginx"), &www, "/ping", http).await?;
        eprintln!("nginx on {}", nginx.base());
        Some(nginx)
    } else {
        None
    };
    Ok(Targets {
        minato,
        minato_auth,
        reference,
        nginx,
        _root: root,
    })
}

/// Starts minato with authentication in `dir` and reads its bootstrap credentials.
async fn start_minato_auth(
    binary: &Path,
    dir: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<(Server, Bootstrap)> {
    let access = Access::Tenancy {
        namespace: auth::NAMESPACE,
        token_lifetime_secs: auth::TOKEN_LIFETIME_SECS,
    };
    let server = targets::start_minato(binary, dir, access, http).await?;
    let bootstrap = Bootstrap::read(&targets::minato_data(dir))?;
    eprintln!(
        "{} on {} (tenancy {}, tokens live {} s)",
        server.kind(),
        server.base(),
        bootstrap.namespace,
        auth::TOKEN_LIFETIME_SECS
    );
    Ok((server, bootstrap))
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Writes `value` as pretty JSON to `path`.
fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
