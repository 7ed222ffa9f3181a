//! Results: samples per metric and target, medians, verdicts, the table and the JSON file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::targets::Kind;

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput, requests per second.
    Higher,
    /// Latency, time, memory.
    Lower,
}

/// The target minato's median must meet (minato-auth's, for the authenticated rows).
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// At least this factor of nginx's median.
    VsNginx(f64),
    /// At least this factor of the reference's median (a higher-is-better figure).
    VsReference(f64),
    /// At least this value, in the metric's unit.
    AtLeast(f64),
    /// At most this value, in the metric's unit.
    AtMost(f64),
    /// Strictly below this value, in the metric's unit.
    Below(f64),
}

/// Outcome of a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Met.
    Pass,
    /// Missed.
    Fail,
    /// A figure it needs is missing (and no run of minato failed).
    Unknown,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "n/a",
        }
    }
}

/// Metric identifiers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// Blob GET throughput, 1 connection.
    BlobGet1,
    /// Blob GET throughput, 8 connections.
    BlobGet8,
    /// Monolithic push throughput.
    PushMonolithic,
    /// Chunked push throughput.
    PushChunked,
    /// Manifest GET by tag, requests per second.
    ManifestTagRate,
    /// Manifest GET by tag, p99 latency.
    ManifestTagP99,
    /// Manifest GET by digest, requests per second.
    ManifestDigestRate,
    /// Manifest GET by digest, p99 latency.
    ManifestDigestP99,
    /// Blob HEAD, requests per second.
    BlobHeadRate,
    /// Blob HEAD, p99 latency.
    BlobHeadP99,
    /// Manifest GET by tag with a bearer token (minato-auth), requests per second.
    ManifestTagAuthRate,
    /// Manifest GET by tag with a bearer token, p99 latency.
    ManifestTagAuthP99,
    /// Manifest GET by digest with a bearer token (minato-auth), requests per second.
    ManifestDigestAuthRate,
    /// Manifest GET by digest with a bearer token, p99 latency.
    ManifestDigestAuthP99,
    /// Blob HEAD with a bearer token (minato-auth), requests per second.
    BlobHeadAuthRate,
    /// Blob HEAD with a bearer token, p99 latency.
    BlobHeadAuthP99,
    /// Tokens issued per second by minato-auth's token endpoint.
    TokenRate,
    /// Token endpoint, p99 latency.
    TokenP99,
    /// Time to fetch every tag following `Link`.
    TagListAll,
    /// Time of one tag-list page request.
    TagListPage,
    /// Time of one catalog request.
    Catalog,
    /// `minato doctor` over 1,000 workloads sharing 50 images, end to end.
    Doctor1000,
    /// `minato pull` throughput of a 1 GiB image (the reference column: `skopeo copy`).
    Pull1g,
    /// `minato webhook` p99 for a 10-container Pod, warm caches.
    WebhookWarmP99,
    /// `minato webhook` p99 for a 10-container Pod of images it has not seen.
    WebhookColdP99,
    /// `minato sign` + `minato verify` of one image, median (minato-auth).
    SignVerifyMedian,
    /// `minato sign` + `minato verify` of one image, p99 (minato-auth).
    SignVerifyP99,
    /// Resident memory after start.
    RssIdle,
    /// Peak resident memory after all workloads.
    RssPeak,
    /// Setup: pushing every tag.
    LoadTags,
    /// Setup: pushing into every catalog repository.
    LoadRepos,
}

/// Unit of a metric, which also tells which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Throughput in MiB per second (higher is better).
    MibPerSec,
    /// Requests per second (higher is better).
    PerSec,
    /// Tokens issued per second (higher is better).
    TokensPerSec,
    /// Milliseconds (lower is better).
    Millis,
    /// Seconds (lower is better).
    Secs,
    /// Memory in MiB (lower is better).
    Mib,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::MibPerSec => "MiB/s",
            Unit::PerSec => "req/s",
            Unit::TokensPerSec => "tokens/s",
            Unit::Millis => "ms",
            Unit::Secs => "s",
            Unit::Mib => "MiB",
        }
    }

    fn better(self) -> Better {
        match self {
            Unit::MibPerSec | Unit::PerSec | Unit::TokensPerSec => Better::Higher,
            Unit::Millis | Unit::Secs | Unit::Mib => Better::Lower,
        }
    }
}

impl Key {
    /// The target whose figure the goal judges and the "minato" column shows: minato-auth for
    /// the authenticated rows, minato for the others.
    pub fn subject(self) -> Kind {
        match self {
            Key::ManifestTagAuthRate
            | Key::ManifestTagAuthP99
            | Key::ManifestDigestAuthRate
            | Key::ManifestDigestAuthP99
            | Key::BlobHeadAuthRate
            | Key::BlobHeadAuthP99
            | Key::TokenRate
            | Key::TokenP99
            | Key::SignVerifyMedian
            | Key::SignVerifyP99 => Kind::MinatoAuth,
            _ => Kind::Minato,
        }
    }

    /// `(json key, default label, unit, goal)`.
    fn definition(self) -> (&'static str, &'static str, Unit, Option<Goal>) {
        use Goal::{AtLeast, AtMost, Below, VsNginx, VsReference};
        use Unit::{Mib, MibPerSec, Millis, PerSec, Secs, TokensPerSec};
        match self {
            Key::BlobGet1 => (
                "blob_get_c1",
                "blob GET, 1 conn",
                MibPerSec,
                Some(VsNginx(0.9)),
            ),
            Key::BlobGet8 => (
                "blob_get_c8",
                "blob GET, 8 conns",
                MibPerSec,
                Some(VsNginx(0.9)),
            ),
            Key::PushMonolithic => (
                "push_monolithic",
                "push monolithic",
                MibPerSec,
                Some(VsReference(1.5)),
            ),
            Key::PushChunked => (
                "push_chunked",
                "push chunked",
                MibPerSec,
                Some(VsReference(1.5)),
            ),
            Key::ManifestTagRate => (
                "manifest_tag_rps",
                "manifest GET by tag, 64 conns",
                PerSec,
                Some(VsReference(6.0)),
            ),
            Key::ManifestTagP99 => (
                "manifest_tag_p99",
                "  p99 latency",
                Millis,
                Some(Below(5.0)),
            ),
            Key::ManifestDigestRate => (
                "manifest_digest_rps",
                "manifest GET by digest, 64 conns",
                PerSec,
                Some(VsReference(6.0)),
            ),
            Key::ManifestDigestP99 => (
                "manifest_digest_p99",
                "  p99 latency",
                Millis,
                Some(Below(5.0)),
            ),
            Key::BlobHeadRate => (
                "blob_head_rps",
                "blob HEAD, 64 conns",
                PerSec,
                Some(VsReference(4.0)),
            ),
            Key::BlobHeadP99 => ("blob_head_p99", "  p99 latency", Millis, None),
            Key::ManifestTagAuthRate => (
                "manifest_tag_auth_rps",
                "manifest GET by tag, bearer auth, 64 conns",
                PerSec,
                Some(VsReference(5.0)),
            ),
            Key::ManifestTagAuthP99 => (
                "manifest_tag_auth_p99",
                "  p99 latency",
                Millis,
                Some(Below(5.0)),
            ),
            Key::ManifestDigestAuthRate => (
                "manifest_digest_auth_rps",
                "manifest GET by digest, bearer auth, 64 conns",
                PerSec,
                Some(VsReference(5.0)),
            ),
            Key::ManifestDigestAuthP99 => (
                "manifest_digest_auth_p99",
                "  p99 latency",
                Millis,
                Some(Below(5.0)),
            ),
            Key::BlobHeadAuthRate => (
                "blob_head_auth_rps",
                "blob HEAD, bearer auth, 64 conns",
                PerSec,
                Some(VsReference(4.0)),
            ),
            Key::BlobHeadAuthP99 => (
                "blob_head_auth_p99",
                "  p99 latency",
                Millis,
                Some(Below(5.0)),
            ),
            Key::TokenRate => (
                "token_rps",
                "token endpoint, 64 conns",
                TokensPerSec,
                Some(AtLeast(5_000.0)),
            ),
            Key::TokenP99 => ("token_p99", "  p99 latency", Millis, None),
            Key::TagListAll => ("tag_list_all_ms", "tag list, all tags", Millis, None),
            Key::TagListPage => (
                "tag_list_page_ms",
                "tag list, one page",
                Millis,
                Some(AtMost(5.0)),
            ),
            Key::Catalog => ("catalog_ms", "catalog n=1000", Millis, None),
            Key::Doctor1000 => (
                "doctor_1000_s",
                "doctor, 1000 workloads",
                Secs,
                Some(Below(2.0)),
            ),
            Key::Pull1g => (
                "pull_1g",
                "pull 1 GiB (ref: skopeo copy)",
                MibPerSec,
                Some(VsReference(0.8)),
            ),
            Key::WebhookWarmP99 => (
                "webhook_warm_p99_ms",
                "webhook verdict, 10-container Pod, warm, p99",
                Millis,
                Some(Below(5.0)),
            ),
            Key::WebhookColdP99 => (
                "webhook_uncached_p99_ms",
                "webhook verdict, 10-container Pod, uncached, p99",
                Millis,
                Some(Below(50.0)),
            ),
            Key::SignVerifyMedian => (
                "sign_verify_median_ms",
                "sign + verify one image, median",
                Millis,
                Some(Below(20.0)),
            ),
            Key::SignVerifyP99 => ("sign_verify_p99_ms", "  p99", Millis, Some(Below(20.0))),
            Key::RssIdle => ("rss_idle_mib", "RSS idle", Mib, Some(AtMost(20.0))),
            Key::RssPeak => ("rss_peak_mib", "RSS peak (VmHWM)", Mib, Some(AtMost(64.0))),
            Key::LoadTags => ("load_tags_s", "setup: push all tags", Secs, None),
            Key::LoadRepos => ("load_repos_s", "setup: fill catalog repos", Secs, None),
        }
    }
}

/// Every sample of every metric, plus warnings about failed runs.
#[derive(Debug, Default)]
pub struct Results {
    samples: BTreeMap<Key, BTreeMap<Kind, Vec<f64>>>,
    /// Metrics and targets with at least one failed run.
    failures: BTreeSet<(Key, Kind)>,
    labels: BTreeMap<Key, String>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

impl Results {
    /// Adds one sample of `key` for `kind`.
    pub fn record(&mut self, key: Key, kind: Kind, value: f64) {
        self.samples
            .entry(key)
            .or_default()
            .entry(kind)
            .or_default()
            .push(value);
    }

    /// Overrides the table label of `key` (e.g. to show sizes).
    pub fn label(&mut self, key: Key, label: String) {
        self.labels.insert(key, label);
    }

    /// Adds an observation printed under the table (e.g. how many items a listing returned).
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Records that a run of `key` on `kind` failed; the table shows what was measured, and a
    /// failed run of the metric's subject fails its goal.
    pub fn fail(&mut self, key: Key, kind: Kind, error: &anyhow::Error) {
        self.samples
            .entry(key)
            .or_default()
            .entry(kind)
            .or_default();
        self.failures.insert((key, kind));
        let message = format!("{} on {kind}: {error:#}", key.definition().0);
        eprintln!("warning: {message}");
        self.warnings.push(message);
    }

    /// Median of `key` for `kind`, if any sample exists.
    pub fn median(&self, key: Key, kind: Kind) -> Option<f64> {
        median(self.samples.get(&key)?.get(&kind)?)
    }

    /// The subject's (minato's) advantage over `other`: > 1 means minato is better, whatever
    /// the direction.
    fn advantage(&self, key: Key, other: Kind) -> Option<f64> {
        let minato = self.median(key, key.subject())?;
        let other = self.median(key, other)?;
        let ratio = match key.definition().2.better() {
            Better::Higher => minato / other,
            Better::Lower => other / minato,
        };
        ratio.is_finite().then_some(ratio)
    }

    /// Whether the subject meets the goal of `key`, if it has one; any failed run of the
    /// subject fails it.
    fn verdict(&self, key: Key) -> Option<Verdict> {
        let goal = key.definition().3?;
        let subject = key.subject();
        if self.failures.contains(&(key, subject)) {
            return Some(Verdict::Fail);
        }
        let pass = match goal {
            Goal::VsNginx(f) => self.advantage(key, Kind::Nginx).map(|r| r >= f),
            Goal::VsReference(f) => self.advantage(key, Kind::Reference).map(|r| r >= f),
            Goal::AtLeast(x) => self.median(key, subject).map(|m| m >= x),
            Goal::AtMost(x) => self.median(key, subject).map(|m| m <= x),
            Goal::Below(x) => self.median(key, subject).map(|m| m < x),
        };
        Some(match pass {
            Some(true) => Verdict::Pass,
            Some(false) => Verdict::Fail,
            None => Verdict::Unknown,
        })
    }

    /// Verdicts of every judged metric: `(passed, failed)`.
    pub fn tally(&self) -> (usize, usize) {
        let verdicts: Vec<Verdict> = self
            .samples
            .keys()
            .filter_map(|k| self.verdict(*k))
            .collect();
        let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
        let failed = verdicts.iter().filter(|v| **v == Verdict::Fail).count();
        (passed, failed)
    }

    /// The human-readable table (medians over rounds).
    pub fn table(&self) -> String {
        let header = [
            "workload",
            "unit",
            "minato",
            "reference",
            "nginx",
            "vs ref",
            "vs nginx",
            "target",
            "result",
        ];
        let mut rows: Vec<[String; 9]> = Vec::new();
        for key in self.samples.keys().copied() {
            let (_, label, unit, goal) = key.definition();
            let unit = unit.as_str();
            let cell = |kind| self.median(key, kind).map_or("-".to_owned(), number);
            let ratio = |kind| {
                self.advantage(key, kind)
                    .map_or("-".to_owned(), |r| format!("{r:.2}×"))
            };
            rows.push([
                self.labels
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| label.to_owned()),
                unit.to_owned(),
                cell(key.subject()),
                cell(Kind::Reference),
                cell(Kind::Nginx),
                ratio(Kind::Reference),
                ratio(Kind::Nginx),
                goal.map_or(String::new(), |g| goal_text(g, unit)),
                self.verdict(key)
                    .map_or(String::new(), |v| v.as_str().to_owned()),
            ]);
        }
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let pad = " ".repeat(width - cell.chars().count());
                // Text columns align left, figures right.
                if i == 0 || i == 1 || i == 7 || i == 8 {
                    let _ = write!(out, "{cell}{pad}  ");
                } else {
                    let _ = write!(out, "{pad}{cell}  ");
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        };
        line(&mut out, &header.map(str::to_owned));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        for row in &rows {
            line(&mut out, row);
        }
        out.push_str("vs ref / vs nginx: how many times better minato is (>1 = better).\n");
        if self.samples.keys().any(|k| k.subject() == Kind::MinatoAuth) {
            out.push_str(
                "bearer auth / token rows: the minato column is a second minato with tenancy \
                 authentication (minato-auth); the reference runs without auth.\n",
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }

    /// Every sample, median and verdict as JSON; `context` describes the run.
    pub fn json(&self, context: Value) -> Value {
        let metrics: Vec<Value> = self
            .samples
            .iter()
            .map(|(key, per_kind)| {
                let (id, label, unit, goal) = key.definition();
                let samples: serde_json::Map<String, Value> = per_kind
                    .iter()
                    .map(|(kind, values)| (kind.name().to_owned(), json!(values)))
                    .collect();
                let medians: serde_json::Map<String, Value> = per_kind
                    .keys()
                    .map(|kind| (kind.name().to_owned(), json!(self.median(*key, *kind))))
                    .collect();
                json!({
                    "key": id,
                    "label": self.labels.get(key).map_or(label, String::as_str),
                    "unit": unit.as_str(),
                    "higher_is_better": unit.better() == Better::Higher,
                    "samples": samples,
                    "median": medians,
                    "vs_reference": self.advantage(*key, Kind::Reference),
                    "vs_nginx": self.advantage(*key, Kind::Nginx),
                    "target": goal.map(|g| goal_text(g, unit.as_str())),
                    "verdict": self.verdict(*key).map(Verdict::as_str),
                })
            })
            .collect();
        json!({
            "run": context,
            "metrics": metrics,
            "notes": self.notes,
            "warnings": self.warnings,
        })
    }
}

/// Median of `values` (mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// A figure with precision suited to its size.
fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn goal_text(goal: Goal, unit: &str) -> String {
    match goal {
        Goal::VsNginx(f) => format!("≥ {f}× nginx"),
        Goal::VsReference(f) => format!("≥ {f}× ref"),
        Goal::AtLeast(x) => format!("≥ {x} {unit}"),
        Goal::AtMost(x) => format!("≤ {x} {unit}"),
        Goal::Below(x) => format!("< {x} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn verdicts_follow_direction() {
        let mut results = Results::default();
        results.record(Key::ManifestTagRate, Kind::Minato, 60_000.0);
        results.record(Key::ManifestTagRate, Kind::Reference, 9_000.0);
        results.record(Key::RssIdle, Kind::Minato, 25.0);
        results.record(Key::RssIdle, Kind::Reference, 50.0);
        assert_eq!(results.verdict(Key::ManifestTagRate), Some(Verdict::Pass));
        assert_eq!(results.verdict(Key::RssIdle), Some(Verdict::Fail));
        assert_eq!(results.advantage(Key::RssIdle, Kind::Reference), Some(2.0));
        assert_eq!(results.verdict(Key::BlobHeadP99), None);
        assert_eq!(results.tally(), (1, 1));
        assert!(results.table().contains("FAIL"));
    }

    #[test]
    fn authenticated_rows_judge_minato_auth_and_failures() {
        let mut results = Results::default();
        results.record(Key::ManifestTagAuthRate, Kind::Minato, 1.0);
        results.record(Key::ManifestTagAuthRate, Kind::MinatoAuth, 50_000.0);
        results.record(Key::ManifestTagAuthRate, Kind::Reference, 9_000.0);
        assert_eq!(
            results.verdict(Key::ManifestTagAuthRate),
            Some(Verdict::Pass)
        );
        results.record(Key::TokenRate, Kind::MinatoAuth, 4_000.0);
        assert_eq!(results.verdict(Key::TokenRate), Some(Verdict::Fail));
        let error = anyhow::anyhow!("3 of 9 answers were not 2xx/3xx");
        results.fail(Key::ManifestTagAuthRate, Kind::MinatoAuth, &error);
        assert_eq!(
            results.verdict(Key::ManifestTagAuthRate),
            Some(Verdict::Fail)
        );
        assert!(results.table().contains("minato-auth"));
    }
}
