//! Shared helpers for end-to-end tests: run the real `minato` binary on a loopback port.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `minato serve` process on 127.0.0.1 with its own data directory.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// A free loopback port (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    /// Starts `minato serve` on a fresh port with `data_dir` and waits until `/readyz` answers.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_on(data_dir, &format!("127.0.0.1:{}", free_port()), &[])
    }

    /// Starts `minato serve` without authentication on `addr` with extra arguments.
    pub fn start_on(data_dir: &Path, addr: &str, extra: &[&str]) -> Server {
        Self::spawn(data_dir, addr, extra, false)
    }

    /// Starts `minato serve` with tenancy authentication (the default of the binary) on a
    /// fresh port; the bootstrap credentials are in `<data_dir>/bootstrap.json`.
    pub fn start_authenticated(data_dir: &Path, extra: &[&str]) -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::spawn(data_dir, &addr, extra, true)
    }

    fn spawn(data_dir: &Path, addr: &str, extra: &[&str], authenticated: bool) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["serve", "--listen", addr, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("MINATO_LOG", "warn")
            .env(
                "MINATO_NO_AUTH",
                if authenticated { "false" } else { "true" },
            )
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning minato serve");
        let server = Server {
            child,
            addr: addr.to_owned(),
            data_dir: data_dir.to_owned(),
        };
        let tls = extra.contains(&"--tls-cert");
        server.wait_ready(Duration::from_secs(30), tls);
        server
    }

    /// Base URL, e.g. `http://127.0.0.1:5000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for `/readyz` to answer 200 (for an HTTPS server, for the listener to accept).
    fn wait_ready(&self, limit: Duration, tls: bool) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(mut stream) = std::net::TcpStream::connect(&self.addr) {
                if tls {
                    return;
                }
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "minato did not become ready on {} within {limit:?}",
            self.addr
        );
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
