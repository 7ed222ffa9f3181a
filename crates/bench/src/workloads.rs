//! The measured workloads. Each runs R rounds; every round runs each target once, in the
//! same order (minato or minato-auth, reference, nginx), so drift affects every target alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::Method;

use crate::auth::AuthTarget;
use crate::cli::{Plan, Workload};
use crate::client::{MANIFEST_TYPE, Registry, sha256};
use crate::headload;
use crate::load::{Dataset, REPO, random_bytes, tag};
use crate::report::{Key, Results};
use crate::targets::Kind;
use crate::wrk::{WrkReport, WrkRun};

const MIB: f64 = 1024.0 * 1024.0;
/// Timed repetitions per round of a single listing request; the round keeps their median.
const LIST_REPS: usize = 5;
/// Timed repetitions per round of the one-page tag request.
const PAGE_REPS: usize = 20;
/// Upper bound on pages followed through `Link` headers.
const MAX_PAGES: usize = 1_000;
/// Name of the static file nginx serves (the same bytes as the registry blob).
pub const NGINX_BLOB: &str = "/blob";

/// Everything a workload needs: the plan, the data, the targets and where results go.
pub struct Bench<'a> {
    /// Rounds, durations, sizes.
    pub plan: &'a Plan,
    /// The loaded data set.
    pub data: &'a Dataset,
    /// minato's client.
    pub minato: &'a Registry,
    /// The reference registry's client.
    pub reference: &'a Registry,
    /// minato with authentication, when an authenticated workload runs.
    pub auth: Option<&'a AuthTarget>,
    /// nginx's base URL, when it runs.
    pub nginx: Option<&'a str>,
    /// The wrk binary.
    pub wrk: &'a Path,
    /// The minato binary (the `doctor` and `pull` workloads run its command line).
    pub minato_binary: &'a Path,
    /// Directory for wrk output.
    pub scratch: PathBuf,
    /// Where figures go.
    pub results: &'a mut Results,
}

impl<'a> Bench<'a> {
    /// Runs `workload` for every round and target.
    pub async fn run(&mut self, workload: Workload) -> anyhow::Result<()> {
        match workload {
            Workload::BlobGet => self.blob_get().await,
            Workload::ManifestGet => self.manifest_get(Kind::Minato).await,
            Workload::BlobHead => self.blob_head(Kind::Minato).await,
            Workload::ManifestGetAuth => self.manifest_get(Kind::MinatoAuth).await,
            Workload::BlobHeadAuth => self.blob_head(Kind::MinatoAuth).await,
            Workload::TokenEndpoint => self.token_endpoint().await,
            Workload::TagList => self.tag_list().await,
            Workload::Catalog => self.catalog().await,
            Workload::Push => self.push_monolithic().await,
            Workload::PushChunked => self.push_chunked().await,
            Workload::Doctor1000 => self.doctor_1000().await,
            Workload::Pull1g => self.pull_1g().await,
            Workload::Webhook => self.webhook().await,
            Workload::SignVerify => self.sign_verify().await,
        }
    }

    /// The registry client of `kind`; nginx is no registry, so registry workloads iterate
    /// [`Kind::REGISTRIES`] and blob GET builds nginx's URL itself. minato-auth's client sends
    /// its bearer token with every request.
    fn registry(&self, kind: Kind) -> anyhow::Result<&'a Registry> {
        Ok(match kind {
            Kind::Reference => self.reference,
            Kind::Minato | Kind::Nginx => self.minato,
            Kind::MinatoAuth => &self.auth()?.registry,
        })
    }

    /// The authenticated minato.
    fn auth(&self) -> anyhow::Result<&'a AuthTarget> {
        self.auth
            .context("minato with authentication is not running")
    }

    fn rounds(&self) -> impl Iterator<Item = u32> + use<> {
        1..=self.plan.rounds
    }

    /// Runs wrk against `url` with the plan's duration.
    async fn wrk(
        &self,
        threads: u32,
        connections: u32,
        url: String,
        headers: Vec<String>,
    ) -> anyhow::Result<WrkReport> {
        WrkRun {
            threads,
            connections,
            duration: self.plan.duration,
            headers,
            url,
        }
        .run(self.wrk, &self.scratch)
        .await
    }

    fn blob_path(&self) -> String {
        format!("/v2/{REPO}/blobs/{}", self.data.blob_digest)
    }

    /// Blob GET of the large blob with 1 and 8 connections: MiB/s from wrk's Transfer/sec.
    async fn blob_get(&mut self) -> anyhow::Result<()> {
        let size = self.data.blob.len() / (1024 * 1024);
        for (threads, connections, key) in [(1, 1, Key::BlobGet1), (2, 8, Key::BlobGet8)] {
            let plural = if connections == 1 { "" } else { "s" };
            let label = format!("blob GET {size} MiB, {connections} conn{plural}");
            self.results.label(key, label);
            for round in self.rounds() {
                for kind in Kind::ALL {
                    let url = match (kind, self.nginx) {
                        (Kind::Nginx, Some(base)) => format!("{base}{NGINX_BLOB}"),
                        (Kind::Nginx, None) => continue,
                        _ => self.registry(kind)?.url(&self.blob_path()),
                    };
                    let run = self.wrk(threads, connections, url, vec![]).await;
                    self.keep(key, kind, round, run.map(|r| r.bytes_per_sec / MIB));
                }
            }
        }
        Ok(())
    }

    /// Manifest GET by tag and by digest at 64 connections on `subject` (minato, or minato-auth
    /// with its bearer token) and the reference: req/s and p99 latency.
    async fn manifest_get(&mut self, subject: Kind) -> anyhow::Result<()> {
        let by_tag = if self.data.tags > 0 {
            tag(self.data.tags / 2)
        } else {
            "latest".to_owned()
        };
        let (tag_keys, digest_keys) = if subject == Kind::MinatoAuth {
            (
                (Key::ManifestTagAuthRate, Key::ManifestTagAuthP99),
                (Key::ManifestDigestAuthRate, Key::ManifestDigestAuthP99),
            )
        } else {
            (
                (Key::ManifestTagRate, Key::ManifestTagP99),
                (Key::ManifestDigestRate, Key::ManifestDigestP99),
            )
        };
        let cases = [
            (by_tag, tag_keys),
            (self.data.manifest_digest.clone(), digest_keys),
        ];
        for (reference, (rate, p99)) in cases {
            let path = format!("/v2/{REPO}/manifests/{reference}");
            for round in self.rounds() {
                for kind in [subject, Kind::Reference] {
                    let run = self.manifest_run(kind, &path).await;
                    let figures = run.map(|r| (r.requests_per_sec, r.p99_ms));
                    self.keep_rate_and_p99(rate, p99, kind, round, figures);
                }
            }
        }
        Ok(())
    }

    /// One wrk run of manifest GETs of `path` on `kind`, after one GET that must answer 200
    /// (wrk only counts non-2xx answers, and any fails the run).
    async fn manifest_run(&self, kind: Kind, path: &str) -> anyhow::Result<WrkReport> {
        let registry = self.registry(kind)?;
        registry
            .expect_ok(Method::GET, path, Some(MANIFEST_TYPE))
            .await?;
        let mut headers = registry.header_lines();
        headers.push(format!("Accept: {MANIFEST_TYPE}"));
        self.wrk(2, 64, registry.url(path), headers).await
    }

    /// Blob HEAD at 64 connections on `subject` (minato, or minato-auth with its bearer token)
    /// and the reference, with [`headload`] (wrk cannot measure HEAD).
    async fn blob_head(&mut self, subject: Kind) -> anyhow::Result<()> {
        let (rate, p99) = if subject == Kind::MinatoAuth {
            (Key::BlobHeadAuthRate, Key::BlobHeadAuthP99)
        } else {
            (Key::BlobHeadRate, Key::BlobHeadP99)
        };
        for round in self.rounds() {
            for kind in [subject, Kind::Reference] {
                let run = self.head_run(kind).await;
                let figures = run.map(|r| (r.requests_per_sec, Some(r.p99_ms)));
                self.keep_rate_and_p99(rate, p99, kind, round, figures);
            }
        }
        Ok(())
    }

    /// One HEAD load run of the blob on `kind`, after one HEAD that must answer 200.
    async fn head_run(&self, kind: Kind) -> anyhow::Result<headload::HeadReport> {
        let registry = self.registry(kind)?;
        let path = self.blob_path();
        registry.expect_ok(Method::HEAD, &path, None).await?;
        let duration = Duration::from_secs(self.plan.duration);
        headload::run(&registry.url(&path), &registry.header_lines(), 64, duration).await
    }

    /// The token endpoint of minato-auth at 64 connections, with the bootstrap administrator's
    /// Basic credentials and a pull scope: tokens/s and p99 latency. The reference registry
    /// has no token endpoint; each round first checks that one answer holds a token.
    async fn token_endpoint(&mut self) -> anyhow::Result<()> {
        for round in self.rounds() {
            let run = self.token_run().await;
            let figures = run.map(|r| (r.requests_per_sec, r.p99_ms));
            self.keep_rate_and_p99(
                Key::TokenRate,
                Key::TokenP99,
                Kind::MinatoAuth,
                round,
                figures,
            );
        }
        Ok(())
    }

    /// One sample token request, which must hold a token, then one wrk run of token requests.
    async fn token_run(&self) -> anyhow::Result<WrkReport> {
        let auth = self.auth()?;
        auth.fetch_token().await?;
        let url = auth.registry.url(&auth.token_path());
        self.wrk(2, 64, url, vec![auth.basic_header_line()]).await
    }

    /// Tag list: all tags following `Link` in pages of `page`, and one page after
    /// `last=tag-<tags/2>` (Distribution 2.8 ignores `n`/`last` and answers everything).
    async fn tag_list(&mut self) -> anyhow::Result<()> {
        let page = self.plan.sizes.page;
        let middle = tag(self.data.tags / 2);
        self.results.label(
            Key::TagListAll,
            format!("tag list, all {} tags, n={page}", self.data.tags),
        );
        self.results.label(
            Key::TagListPage,
            format!("tag list, one page n={page}&last={middle}"),
        );
        for round in self.rounds() {
            for kind in Kind::REGISTRIES {
                let registry = self.registry(kind)?.clone();
                let first = format!("/v2/{REPO}/tags/list?n={page}");
                let all = time_median(LIST_REPS, || list_all(&registry, &first, "tags")).await;
                if round == 1
                    && let Ok((_, count, pages)) = &all
                {
                    self.results.note(format!(
                        "tag list on {kind}: {count} tags in {pages} page(s)"
                    ));
                }
                self.keep(Key::TagListAll, kind, round, all.map(|(ms, _, _)| ms));

                let one = format!("/v2/{REPO}/tags/list?n={page}&last={middle}");
                let single = time_median(PAGE_REPS, || list_page(&registry, &one, "tags")).await;
                if round == 1
                    && let Ok((_, count, _)) = &single
                {
                    self.results
                        .note(format!("tag list page on {kind}: {count} tags returned"));
                }
                self.keep(Key::TagListPage, kind, round, single.map(|(ms, _, _)| ms));
            }
        }
        Ok(())
    }

    /// One catalog request of `n=1000` (the loaded repositories plus the benchmark's own).
    async fn catalog(&mut self) -> anyhow::Result<()> {
        self.results.label(
            Key::Catalog,
            format!("catalog n=1000 ({} repositories)", self.data.repos),
        );
        for round in self.rounds() {
            for kind in Kind::REGISTRIES {
                let registry = self.registry(kind)?.clone();
                let path = "/v2/_catalog?n=1000";
                let run =
                    time_median(LIST_REPS, || list_page(&registry, path, "repositories")).await;
                if round == 1
                    && let Ok((_, count, _)) = &run
                {
                    self.results
                        .note(format!("catalog on {kind}: {count} repositories returned"));
                }
                self.keep(Key::Catalog, kind, round, run.map(|(ms, _, _)| ms));
            }
        }
        Ok(())
    }

    /// Monolithic push of `push_count` fresh random blobs, `push_parallel` at a time: MiB/s.
    async fn push_monolithic(&mut self) -> anyhow::Result<()> {
        let sizes = self.plan.sizes.clone();
        self.results.label(
            Key::PushMonolithic,
            format!(
                "push monolithic {}×{} MiB, {} parallel",
                sizes.push_count,
                sizes.push_size / (1024 * 1024),
                sizes.push_parallel
            ),
        );
        for round in self.rounds() {
            for (index, kind) in Kind::REGISTRIES.into_iter().enumerate() {
                let blobs: Vec<(String, Bytes)> = (0..sizes.push_count)
                    .map(|i| {
                        let seed = (u64::from(round) << 32) | ((index as u64) << 16) | i as u64;
                        let data = Bytes::from(random_bytes(sizes.push_size, seed));
                        (sha256(&data), data)
                    })
                    .collect();
                settle_disk().await?;
                let registry = self.registry(kind)?.clone();
                let started = Instant::now();
                let pushed = stream::iter(blobs)
                    .map(|(digest, data)| {
                        let registry = registry.clone();
                        async move { registry.push_blob("bench/push", &digest, data).await }
                    })
                    .buffer_unordered(sizes.push_parallel)
                    .try_collect::<Vec<()>>()
                    .await;
                let total = (sizes.push_count * sizes.push_size) as f64 / MIB;
                let rate = pushed.map(|_| total / started.elapsed().as_secs_f64());
                self.keep(Key::PushMonolithic, kind, round, rate);
            }
        }
        Ok(())
    }

    /// Chunked push of one large fresh blob (POST, PATCH with Content-Range, PUT): MiB/s.
    async fn push_chunked(&mut self) -> anyhow::Result<()> {
        let sizes = self.plan.sizes.clone();
        self.results.label(
            Key::PushChunked,
            format!(
                "push chunked {} MiB, {} MiB PATCHes",
                sizes.chunked_size / (1024 * 1024),
                sizes.chunk / (1024 * 1024)
            ),
        );
        let mut base = random_bytes(sizes.chunked_size, 0xc4_0000);
        for round in self.rounds() {
            for (index, kind) in Kind::REGISTRIES.into_iter().enumerate() {
                // A distinct prefix per push gives a distinct digest: nothing dedupes.
                let marker = format!("minato-bench round {round} target {index}");
                let len = marker.len().min(base.len());
                base[..len].copy_from_slice(&marker.as_bytes()[..len]);
                let data = Bytes::copy_from_slice(&base);
                let digest = sha256(&data);
                settle_disk().await?;
                let registry = self.registry(kind)?;
                let started = Instant::now();
                let pushed = registry
                    .push_chunked("bench/chunked", &digest, &data, sizes.chunk)
                    .await;
                let total = data.len() as f64 / MIB;
                let rate = pushed.map(|_| total / started.elapsed().as_secs_f64());
                self.keep(Key::PushChunked, kind, round, rate);
            }
        }
        Ok(())
    }

    /// Records a sample or a failure, and prints progress.
    fn keep(&mut self, key: Key, kind: Kind, round: u32, value: anyhow::Result<f64>) {
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

    /// Records a requests-per-second figure and its p99 latency.
    fn keep_rate_and_p99(
        &mut self,
        rate: Key,
        p99: Key,
        kind: Kind,
        round: u32,
        figures: anyhow::Result<(f64, Option<f64>)>,
    ) {
        match figures {
            Ok((per_sec, p99_ms)) => {
                self.keep(rate, kind, round, Ok(per_sec));
                let latency = p99_ms.context("no 99% latency reported");
                self.keep(p99, kind, round, latency);
            }
            Err(error) => self.results.fail(rate, kind, &error),
        }
    }
}

/// Runs `request` `reps` times; the median duration in ms with the last run's item count and
/// page count.
async fn time_median<F, Fut>(reps: usize, mut request: F) -> anyhow::Result<(f64, usize, usize)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(Duration, usize, usize)>>,
{
    let mut times = Vec::with_capacity(reps);
    let mut counts = (0, 0);
    for _ in 0..reps {
        let (elapsed, items, pages) = request().await?;
        times.push(elapsed.as_secs_f64() * 1000.0);
        counts = (items, pages);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], counts.0, counts.1))
}

/// Fetches `first` and every `next` page after it: elapsed time, items under `field`, pages.
async fn list_all(
    registry: &Registry,
    first: &str,
    field: &str,
) -> anyhow::Result<(Duration, usize, usize)> {
    let started = Instant::now();
    let mut bodies = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(url) = next.take() {
        ensure!(bodies.len() < MAX_PAGES, "more than {MAX_PAGES} pages");
        let (body, link) = registry.get_page(&url).await?;
        bodies.push(body);
        next = link;
    }
    let elapsed = started.elapsed();
    let mut items = 0;
    for body in &bodies {
        items += count_items(body, field)?;
    }
    Ok((elapsed, items, bodies.len()))
}

/// Fetches one page: elapsed time, items under `field`, 1.
async fn list_page(
    registry: &Registry,
    path: &str,
    field: &str,
) -> anyhow::Result<(Duration, usize, usize)> {
    let started = Instant::now();
    let (body, _) = registry.get_page(path).await?;
    let elapsed = started.elapsed();
    Ok((elapsed, count_items(&body, field)?, 1))
}

/// Length of the JSON array `field` in `body`.
fn count_items(body: &[u8], field: &str) -> anyhow::Result<usize> {
    let value: serde_json::Value = serde_json::from_slice(body).context("listing is not JSON")?;
    Ok(value
        .get(field)
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len))
}

/// Flushes dirty pages (`sync`) so a push does not pay for the previous target's writeback.
async fn settle_disk() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| {
        Command::new("sync")
            .status()
            .context("running sync")
            .map(drop)
    })
    .await?
}
