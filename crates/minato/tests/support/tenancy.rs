//! A `minato serve` with tenancy authentication for end-to-end tests, set up as an operator
//! would through the `minato admin` command-line client: its first start bootstraps tenancy
//! [`NAMESPACE`] and an administrator, whose credentials `<data-dir>/bootstrap.json` holds.
//!
//! Test crates using it declare `mod common;` and `#[path = "support/clients.rs"] mod clients;`
//! at their root. When a test fails, the server log is printed with the failure.
#![allow(dead_code)] // each test crate uses its own subset

use crate::clients::{Layout, client, json, run};
use crate::common::Server;
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// The tenancy namespace the server bootstraps.
pub const NAMESPACE: &str = "acme";
/// Layer content size of the test images.
const LAYER_SIZE: usize = 64 * 1024;

/// A login name (`<namespace>/<user>`) with its auth token.
#[derive(Debug, Clone)]
pub struct Login {
    /// `<namespace>/<user>`.
    pub username: String,
    /// The auth token.
    pub token: String,
}

impl Login {
    /// `USERNAME:TOKEN`, as `skopeo --creds` and `ctr --user` take it.
    pub fn pair(&self) -> String {
        format!("{}:{}", self.username, self.token)
    }
}

/// A user's login with the id of its token (to revoke it).
pub struct UserToken {
    /// The login.
    pub login: Login,
    /// The user, without the namespace.
    pub user: String,
    /// The token's id.
    pub id: String,
}

/// The running server, its scratch space and its bootstrap administrator.
pub struct Registry {
    /// The server process.
    pub server: Server,
    dir: TempDir,
    /// The bootstrap administrator.
    pub admin: Login,
}

impl Registry {
    /// Starts the server with authentication and reads its bootstrap credentials.
    pub fn start() -> Registry {
        let dir = TempDir::new().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let server = Server::start_authenticated(&data_dir, &["--bootstrap-namespace", NAMESPACE]);
        let bootstrap = json(
            &std::fs::read_to_string(data_dir.join("bootstrap.json")).expect("bootstrap.json"),
        );
        assert_eq!(bootstrap["namespace"], NAMESPACE, "{bootstrap}");
        assert_eq!(bootstrap["registry"], server.addr.as_str(), "{bootstrap}");
        let field = |key: &str| bootstrap[key].as_str().expect(key).to_owned();
        let admin = Login {
            username: field("username"),
            token: field("password"),
        };
        Registry { server, dir, admin }
    }

    /// `minato admin ARGS...` as the bootstrap administrator, which must succeed; returns its
    /// output without the final newline.
    pub fn admin(&self, args: &[&str]) -> String {
        let output = run(Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["admin", "--server", &self.server.url()])
            .args(["--username", &self.admin.username])
            .args(args)
            .env("MINATO_PASSWORD", &self.admin.token));
        output.trim_end().to_owned()
    }

    /// Creates group `group` allowed to `verb` (`read`, `manage`...) every repository, with
    /// user `user` as its member, and an auth token for that user.
    pub fn user_with_token(&self, group: &str, verb: &str, user: &str) -> UserToken {
        self.admin(&["group", "create", NAMESPACE, group]);
        let statement = format!("allow group {group} to {verb} repos in tenancy");
        self.admin(&["policy", "add", NAMESPACE, &statement]);
        self.admin(&["user", "create", NAMESPACE, user]);
        self.admin(&["group", "add-user", NAMESPACE, group, user]);
        let created = json(&self.admin(&[
            "--output",
            "json",
            "token",
            "create",
            NAMESPACE,
            user,
            "--description",
            "pull secret",
        ]));
        let field = |key: &str| created[key].as_str().expect(key).to_owned();
        UserToken {
            login: Login {
                username: format!("{NAMESPACE}/{user}"),
                token: field("token"),
            },
            user: user.to_owned(),
            id: field("id"),
        }
    }

    /// Revokes a user's token with `minato admin token revoke`.
    pub fn revoke(&self, token: &UserToken) {
        let said = self.admin(&["token", "revoke", NAMESPACE, &token.user, &token.id]);
        assert_eq!(said, "revoked");
    }

    /// `host:port`, as clients log in to it.
    pub fn host(&self) -> &str {
        &self.server.addr
    }

    /// `host:port/acme/repository:tag`, as `ctr` and podman take it.
    pub fn name(&self, repository_and_tag: &str) -> String {
        format!("{}/{NAMESPACE}/{repository_and_tag}", self.host())
    }

    /// `docker://host:port/acme/repository:tag`, as skopeo takes it.
    pub fn docker(&self, repository_and_tag: &str) -> String {
        format!("docker://{}", self.name(repository_and_tag))
    }

    /// A path in the test's scratch space.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Builds a single-platform test image and pushes it as the administrator with skopeo;
    /// returns it.
    pub fn push_image(&self, repository_and_tag: &str) -> Layout {
        let image = Layout::build(self.scratch("source"), &["linux/amd64"], LAYER_SIZE);
        run(client("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .args(["--dest-creds", &self.admin.pair()])
            .arg(image.oci_reference("latest"))
            .arg(self.docker(repository_and_tag)));
        image
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.server.data_dir.with_extension("log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("---- minato log ({}) ----\n{text}", log.display());
        }
    }
}
