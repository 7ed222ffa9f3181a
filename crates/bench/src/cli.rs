//! Command-line flags and the sizes they imply.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

const MIB: usize = 1024 * 1024;

/// Benchmarks minato against the reference registry (Distribution) and nginx on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "minato-bench", version)]
pub struct Args {
    /// Rounds per workload; each round runs every target once, interleaved [default: 3, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: Option<u32>,
    /// Seconds of each wrk run [default: 5, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub duration: Option<u64>,
    /// Smaller data and shorter runs, for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Run only these workloads (repeat the flag or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Workload>,
    /// Write the raw figures (every sample, medians, verdicts) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The minato binary to benchmark.
    #[arg(long, default_value = "target/release/minato")]
    pub minato: PathBuf,
    /// The reference registry binary (Distribution 2.x).
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    pub reference: PathBuf,
    /// The nginx binary serving the blob as a static file.
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// The wrk binary.
    #[arg(long, default_value = "wrk")]
    pub wrk: PathBuf,
}

/// One measured workload, as named by `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// GET of the large blob with 1 and 8 connections (minato, reference, nginx).
    BlobGet,
    /// Manifest GET by tag and by digest at 64 connections.
    ManifestGet,
    /// Blob HEAD at 64 connections.
    BlobHead,
    /// Manifest GET by tag and by digest at 64 connections on minato with authentication,
    /// sending a bearer token (the reference stays without auth).
    ManifestGetAuth,
    /// Blob HEAD at 64 connections on minato with authentication, sending a bearer token.
    BlobHeadAuth,
    /// Bearer tokens issued per second by minato's token endpoint (Basic credentials).
    TokenEndpoint,
    /// Tag list: every page, and one page after `last`.
    TagList,
    /// Catalog of the loaded repositories.
    Catalog,
    /// Monolithic push of many medium blobs, several in parallel.
    Push,
    /// Chunked push (POST, PATCH..., PUT) of one large blob.
    PushChunked,
    /// `minato doctor -f` over 1,000 Deployments sharing 50 images (own minato with auth).
    #[value(name = "doctor-1000")]
    Doctor1000,
    /// `minato pull --dest` vs `skopeo copy` of a 1 GiB, 8-layer image from minato.
    #[value(name = "pull-1g")]
    Pull1g,
    /// `minato webhook` verdicts for a 10-container Pod of signed images, warm and uncached.
    Webhook,
    /// `minato sign` then `minato verify` of one image (minato with authentication).
    SignVerify,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Workload; 14] = [
        Workload::BlobGet,
        Workload::ManifestGet,
        Workload::BlobHead,
        Workload::ManifestGetAuth,
        Workload::BlobHeadAuth,
        Workload::TokenEndpoint,
        Workload::TagList,
        Workload::Catalog,
        Workload::Push,
        Workload::PushChunked,
        Workload::Doctor1000,
        Workload::Pull1g,
        Workload::Webhook,
        Workload::SignVerify,
    ];

    /// Whether the workload measures minato with authentication (a second minato target).
    pub fn authenticated(self) -> bool {
        matches!(
            self,
            Workload::ManifestGetAuth
                | Workload::BlobHeadAuth
                | Workload::TokenEndpoint
                | Workload::SignVerify
        )
    }
}

/// Data sizes and counts of one benchmark run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Bytes of the blob served by blob GET/HEAD (also the nginx file).
    pub blob: usize,
    /// Blobs per monolithic push round.
    pub push_count: usize,
    /// Bytes of each monolithic push blob.
    pub push_size: usize,
    /// Monolithic pushes in flight at once.
    pub push_parallel: usize,
    /// Bytes of the chunked push blob.
    pub chunked_size: usize,
    /// Bytes of each PATCH of the chunked push.
    pub chunk: usize,
    /// Tags on the benchmark repository.
    pub tags: usize,
    /// Page size requested from the tag list.
    pub page: usize,
    /// Extra repositories for the catalog.
    pub repos: usize,
}

impl Sizes {
    /// Full-size figures, or the `--quick` smoke-test figures.
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                blob: 8 * MIB,
                push_count: 8,
                push_size: MIB,
                push_parallel: 4,
                chunked_size: 32 * MIB,
                chunk: 4 * MIB,
                tags: 2_000,
                page: 1_000,
                repos: 100,
            }
        } else {
            Sizes {
                blob: 64 * MIB,
                push_count: 32,
                push_size: 8 * MIB,
                push_parallel: 4,
                chunked_size: 512 * MIB,
                chunk: 16 * MIB,
                tags: 10_000,
                page: 1_000,
                repos: 1_000,
            }
        }
    }
}

/// The resolved run: flags plus defaults.
#[derive(Debug)]
pub struct Plan {
    /// Rounds per workload.
    pub rounds: u32,
    /// Seconds of each wrk run.
    pub duration: u64,
    /// Data sizes.
    pub sizes: Sizes,
    /// Workloads to run, in order.
    pub workloads: Vec<Workload>,
}

impl Plan {
    /// Resolves the flags of `args` into a plan.
    pub fn new(args: &Args) -> Plan {
        let workloads = Workload::ALL
            .into_iter()
            .filter(|w| args.only.is_empty() || args.only.contains(w))
            .collect();
        Plan {
            rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 3 }),
            duration: args.duration.unwrap_or(if args.quick { 1 } else { 5 }),
            sizes: Sizes::new(args.quick),
            workloads,
        }
    }

    /// Whether `workload` is part of this run.
    pub fn runs(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }

    /// Whether any workload needs minato with authentication.
    pub fn runs_authenticated(&self) -> bool {
        self.workloads.iter().any(|w| w.authenticated())
    }
}
