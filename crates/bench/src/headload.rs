//! A closed-loop HTTP/1.1 `HEAD` load generator.
//!
//! wrk cannot measure `HEAD`: its parser waits for the body announced by `Content-Length`
//! (wg/wrk#198, open), so every request times out. This sends `HEAD` on N keep-alive
//! connections, one request in flight per connection like wrk, reads just the header block,
//! and records each latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// Largest header block accepted.
const MAX_HEADERS: usize = 16 * 1024;

/// Figures of one run.
#[derive(Debug, Clone, Copy)]
pub struct HeadReport {
    /// Completed requests (all answered 200) per second over the run.
    pub requests_per_sec: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
}

/// Sends `HEAD url` with the extra `headers` (`Name: value` lines) on `connections`
/// connections for `duration`.
pub async fn run(
    url: &str,
    headers: &[String],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<HeadReport> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("not an http URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("not an IP:port authority: {authority}"))?;
    ensure!(
        addr.ip().is_loopback(),
        "HEAD load only targets loopback, not {addr}"
    );
    let request = head_request(path, authority, headers)?;

    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(addr, request.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    ensure!(!latencies.is_empty(), "no HEAD request completed on {url}");
    latencies.sort_unstable();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    Ok(HeadReport {
        requests_per_sec: latencies.len() as f64 / elapsed,
        p99_ms: f64::from(p99) / 1000.0,
    })
}

/// The bytes of one `HEAD path` request with a `Host` header and `headers`.
fn head_request(path: &str, authority: &str, headers: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut request = format!("HEAD {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for header in headers {
        ensure!(
            header.contains(':') && !header.contains(['\r', '\n']),
            "malformed header line {header:?}"
        );
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    Ok(request.into_bytes())
}

/// One connection's loop until `deadline`: the latency of each request in microseconds.
async fn connection(
    addr: SocketAddr,
    request: Vec<u8>,
    deadline: Instant,
) -> anyhow::Result<Vec<u32>> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut buffer = vec![0; MAX_HEADERS];
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let sent = Instant::now();
        stream.write_all(&request).await?;
        let mut filled = 0;
        loop {
            let read = tokio::time::timeout(ANSWER_LIMIT, stream.read(&mut buffer[filled..]))
                .await
                .context("HEAD answer timed out")??;
            ensure!(read > 0, "{addr} closed the connection");
            let searched_from = filled.saturating_sub(3);
            filled += read;
            if let Some(end) = find_blank_line(&buffer[searched_from..filled]) {
                ensure!(
                    searched_from + end == filled,
                    "bytes after the header block of a HEAD answer"
                );
                break;
            }
            ensure!(
                filled < buffer.len(),
                "header block over {MAX_HEADERS} bytes"
            );
        }
        if !buffer.starts_with(b"HTTP/1.1 200") {
            let line = buffer[..filled]
                .split(|b| *b == b'\r')
                .next()
                .unwrap_or_default();
            bail!("HEAD answered {}", String::from_utf8_lossy(line));
        }
        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    Ok(latencies)
}

/// Index just past the first `\r\n\r\n` in `bytes`.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_requests_with_extra_headers() {
        let request = head_request("/v2/a", "127.0.0.1:1", &["Authorization: Bearer t".into()]);
        assert_eq!(
            request.unwrap(),
            b"HEAD /v2/a HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: Bearer t\r\n\r\n"
        );
        assert!(head_request("/", "h", &["X: a\r\nY: b".into()]).is_err());
    }

    #[test]
    fn finds_the_end_of_the_header_block() {
        assert_eq!(
            find_blank_line(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"),
            Some(25)
        );
        assert_eq!(find_blank_line(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
