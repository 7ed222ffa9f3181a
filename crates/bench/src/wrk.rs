//! Runs `wrk` with a hard time limit and parses its report.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// Extra time a wrk run may take beyond its `-d` before it is killed.
const GRACE: Duration = Duration::from_secs(30);

/// One wrk invocation.
#[derive(Debug, Clone)]
pub struct WrkRun {
    /// wrk threads (`-t`).
    pub threads: u32,
    /// Open connections (`-c`).
    pub connections: u32,
    /// Seconds to run (`-d`).
    pub duration: u64,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    /// Target URL (loopback).
    pub url: String,
}

/// The figures parsed from a wrk report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkReport {
    /// Completed requests.
    pub requests: u64,
    /// `Requests/sec`.
    pub requests_per_sec: f64,
    /// `Transfer/sec`, in bytes per second.
    pub bytes_per_sec: f64,
    /// 99th percentile latency in milliseconds (present with `--latency`).
    pub p99_ms: Option<f64>,
    /// `Non-2xx or 3xx responses`.
    pub non_2xx: u64,
    /// Sum of connect, read, write and timeout socket errors.
    pub socket_errors: u64,
}

impl WrkRun {
    /// Runs wrk (binary `wrk`) on a blocking thread, killing it if it overruns, writing its
    /// output to files in `scratch`; fails on non-2xx answers, socket errors or no requests.
    pub async fn run(&self, wrk: &Path, scratch: &Path) -> anyhow::Result<WrkReport> {
        let run = self.clone();
        let wrk = wrk.to_owned();
        let scratch = scratch.to_owned();
        tokio::task::spawn_blocking(move || run.run_blocking(&wrk, &scratch)).await?
    }

    fn run_blocking(&self, wrk: &Path, scratch: &Path) -> anyhow::Result<WrkReport> {
        ensure!(
            self.url.starts_with("http://127.0.0.1:"),
            "wrk target must be on 127.0.0.1: {}",
            self.url
        );
        let out_path = scratch.join("wrk.out");
        let err_path = scratch.join("wrk.err");
        let mut command = Command::new(wrk);
        command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration))
            .args(["--timeout", "10s", "--latency"]);
        for header in &self.headers {
            command.args(["-H", header]);
        }
        let mut child = command
            .arg(&self.url)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path)?)
            .stderr(fs::File::create(&err_path)?)
            .spawn()
            .with_context(|| format!("starting {}", wrk.display()))?;
        let limit = Duration::from_secs(self.duration) + GRACE;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!("wrk on {} ran over {limit:?} and was killed", self.url);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = fs::read_to_string(&out_path)?;
        if !status.success() {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            bail!("wrk on {} failed ({status}): {err}{out}", self.url);
        }
        let report = parse(&out).with_context(|| format!("parsing wrk output:\n{out}"))?;
        ensure!(
            report.requests > 0,
            "wrk completed no request on {}",
            self.url
        );
        ensure!(
            report.non_2xx == 0,
            "{} of {} answers from {} were not 2xx/3xx",
            report.non_2xx,
            report.requests,
            self.url
        );
        ensure!(
            report.socket_errors == 0,
            "wrk saw {} socket errors on {}:\n{out}",
            report.socket_errors,
            self.url
        );
        Ok(report)
    }
}

/// Parses a wrk 4 report.
pub fn parse(out: &str) -> anyhow::Result<WrkReport> {
    let mut report = WrkReport {
        requests: 0,
        requests_per_sec: f64::NAN,
        bytes_per_sec: f64::NAN,
        p99_ms: None,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            report.requests_per_sec = rest.trim().parse().context("Requests/sec")?;
        } else if let Some(rest) = line.strip_prefix("Transfer/sec:") {
            report.bytes_per_sec = bytes(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("99%") {
            report.p99_ms = Some(millis(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = rest.trim().parse().context("Non-2xx count")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let count = part.split_whitespace().last().unwrap_or("0");
                report.socket_errors += count.parse::<u64>().context("socket errors")?;
            }
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            report.requests = count.trim().parse().context("request count")?;
        }
    }
    ensure!(
        report.requests_per_sec.is_finite() && report.bytes_per_sec.is_finite(),
        "no Requests/sec or Transfer/sec line"
    );
    Ok(report)
}

/// Parses a wrk size such as `1.23GB` or `512.00B` (binary multiples) into bytes.
fn bytes(text: &str) -> anyhow::Result<f64> {
    let units = [
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return Ok(number.trim().parse::<f64>().context("size")? * factor);
        }
    }
    bail!("unknown size {text:?}")
}

/// Parses a wrk duration such as `850.00us`, `1.20ms`, `2.00s` or `1.50m` into milliseconds.
fn millis(text: &str) -> anyhow::Result<f64> {
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return Ok(number.trim().parse::<f64>().context("duration")? * factor);
        }
    }
    bail!("unknown duration {text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:40000/v2/a/manifests/latest
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.11us  300.02us   9.87ms   90.00%
    Req/Sec    60.12k     3.10k   66.00k    70.00%
  Latency Distribution
     50%  450.00us
     75%  600.00us
     90%  800.00us
     99%    1.50ms
  598000 requests in 5.00s, 1.12GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec: 119600.00
Transfer/sec:    229.50MB
";

    #[test]
    fn parses_a_full_report() {
        let report = parse(SAMPLE).unwrap();
        assert_eq!(report.requests, 598_000);
        assert_eq!(report.requests_per_sec, 119_600.0);
        assert_eq!(report.bytes_per_sec, 229.5 * 1024.0 * 1024.0);
        assert_eq!(report.p99_ms, Some(1.5));
        assert_eq!(report.non_2xx, 7);
        assert_eq!(report.socket_errors, 3);
    }

    #[test]
    fn parses_units() {
        assert_eq!(bytes("512.00B").unwrap(), 512.0);
        assert_eq!(bytes("2.00GB").unwrap(), 2.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(millis("850.00us").unwrap(), 0.85);
        assert_eq!(millis("2.00s").unwrap(), 2000.0);
        assert!(millis("3.0h").is_err());
    }

    #[test]
    fn rejects_a_report_without_rates() {
        assert!(parse("Running 5s test @ http://x\n").is_err());
    }
}
