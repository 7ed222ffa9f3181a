//! The servers under test: minato, the reference registry and nginx, each started on a fresh
//! 127.0.0.1 port with its own directory, and stopped when its [`Server`] guard drops.

use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to answer its readiness probe.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Which server a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The registry under test, without authentication (`MINATO_NO_AUTH=true`).
    Minato,
    /// A second minato with tenancy authentication, for the bearer-token workloads.
    MinatoAuth,
    /// Distribution (`docker-registry`), the reference registry.
    Reference,
    /// nginx serving the blob as a static file: the physical limit for blob GET.
    Nginx,
}

impl Kind {
    /// The two registries, in the order each round runs them.
    pub const REGISTRIES: [Kind; 2] = [Kind::Minato, Kind::Reference];
    /// Every target, in the order each round runs them.
    pub const ALL: [Kind; 3] = [Kind::Minato, Kind::Reference, Kind::Nginx];

    /// Lower-case name used in output and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Minato => "minato",
            Kind::MinatoAuth => "minato-auth",
            Kind::Reference => "reference",
            Kind::Nginx => "nginx",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Current resident set (`VmRSS`).
    pub rss: u64,
    /// Peak resident set since start (`VmHWM`).
    pub peak: u64,
    /// Current anonymous resident memory (`RssAnon`): heap and stacks.
    pub anon: u64,
    /// Current resident file-backed memory (`RssFile`): the binary and mapped files.
    pub file: u64,
}

/// A running server; dropping it stops the process (SIGTERM, then SIGKILL) with its group.
pub struct Server {
    kind: Kind,
    base: String,
    log: PathBuf,
    child: Child,
}

impl Server {
    /// Which server this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Reads `VmRSS` and `VmHWM` of the server process from `/proc`.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} missing from {path}"))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("parsing {line:?}"))?;
            Ok(kib * 1024)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            peak: field("VmHWM:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
        })
    }

    /// Spawns `command` in its own process group with output to `log`, then waits until
    /// `GET probe` answers 200.
    async fn spawn(
        kind: Kind,
        mut command: Command,
        port: u16,
        probe: &str,
        log: PathBuf,
        http: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {kind} ({:?})", command.get_program()))?;
        let mut server = Server {
            kind,
            base: format!("http://127.0.0.1:{port}"),
            log,
            child,
        };
        server.wait_ready(probe, http).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, probe: &str, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}{probe}", self.base);
        let started = Instant::now();
        while started.elapsed() < START_LIMIT {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during start ({status}); log:\n{}",
                    self.kind,
                    self.log_tail()
                );
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{} did not answer {url} within {START_LIMIT:?}; log:\n{}",
            self.kind,
            self.log_tail()
        )
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends `signal` to the server's whole process group (nginx has worker processes).
    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal_group("-TERM");
        let started = Instant::now();
        while started.elapsed() < STOP_LIMIT {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bound, then released for the server to bind.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free loopback port")?
        .port())
}

/// Creates `dir` (and parents) readable by everyone, so nginx workers may read below it.
fn open_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting permissions of {}", dir.display()))
}

/// How a minato target authenticates its clients.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// No authentication (`MINATO_NO_AUTH=true`), the same mode as the reference registry.
    Open,
    /// Tenancy authentication: the first start bootstraps tenancy `namespace` and writes its
    /// administrator's credentials to `<data>/bootstrap.json`.
    Tenancy {
        /// Namespace of the bootstrapped tenancy (`--bootstrap-namespace`).
        namespace: &'static str,
        /// Bearer token lifetime (`--token-lifetime-secs`).
        token_lifetime_secs: u64,
    },
}

/// Starts `minato serve` with data in `dir/data` ([`minato_data`]), `MINATO_LOG=warn` and the
/// given `access`.
pub async fn start_minato(
    binary: &Path,
    dir: &Path,
    access: Access,
    http: &reqwest::Client,
) -> anyhow::Result<Server> {
    open_dir(dir)?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(minato_data(dir))
        .env("MINATO_LOG", "warn");
    let kind = match access {
        Access::Open => {
            command.env("MINATO_NO_AUTH", "true");
            Kind::Minato
        }
        Access::Tenancy {
            namespace,
            token_lifetime_secs,
        } => {
            command
                .env_remove("MINATO_NO_AUTH")
                .args(["--bootstrap-namespace", namespace])
                .args(["--token-lifetime-secs", &token_lifetime_secs.to_string()]);
            Kind::MinatoAuth
        }
    };
    Server::spawn(kind, command, port, "/readyz", dir.join("minato.log"), http).await
}

/// The data directory of the minato started in `dir`.
pub fn minato_data(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Starts the reference registry: filesystem storage under `dir/data`, no auth, deletes
/// enabled, the in-memory blob descriptor cache of the stock configuration, errors only and no
/// access log.
pub async fn start_reference(
    binary: &Path,
    dir: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<Server> {
    open_dir(dir)?;
    let port = free_port()?;
    let config = dir.join("config.yml");
    let yaml = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data = dir.join("data").display()
    );
    fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
    let mut command = Command::new(binary);
    command.arg("serve").arg(&config);
    Server::spawn(
        Kind::Reference,
        command,
        port,
        "/v2/",
        dir.join("registry.log"),
        http,
    )
    .await
}

/// Starts nginx (`sendfile on; tcp_nopush on;`, no access log, pid file and temp paths in
/// `dir`) serving `www` as static files, and waits for `probe` to answer.
pub async fn start_nginx(
    binary: &Path,
    dir: &Path,
    www: &Path,
    probe: &str,
    http: &reqwest::Client,
) -> anyhow::Result<Server> {
    open_dir(dir)?;
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\n\
         worker_processes 2;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log error;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 sendfile on;\n\
         \x20 tcp_nopush on;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 default_type application/octet-stream;\n\
         \x20 client_body_temp_path {d}/body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   root {www};\n\
         \x20 }}\n\
         }}\n",
        www = www.display()
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&path);
    Server::spawn(
        Kind::Nginx,
        command,
        port,
        probe,
        dir.join("stderr.log"),
        http,
    )
    .await
}

/// Makes `dir` and the files directly in it readable by everyone (nginx workers run as an
/// unprivileged user when the bench runs as root).
pub fn share_dir(dir: &Path) -> anyhow::Result<()> {
    open_dir(dir)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .with_context(|| format!("setting permissions of {}", path.display()))?;
        }
    }
    Ok(())
}
