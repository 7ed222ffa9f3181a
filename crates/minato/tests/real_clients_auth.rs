//! End-to-end tests of tenancy authentication with real registry clients: skopeo, podman and
//! containerd's `ctr` log in through the Docker token (Bearer) flow with auth tokens created by
//! the `minato admin` command-line client.
//!
//! Each test starts its own `minato serve` with authentication on 127.0.0.1 (its first start
//! bootstraps tenancy `acme` and an administrator), then sets users, groups, policies and auth
//! tokens up through `minato admin`, as an operator would. Auth tokens are server-generated
//! with punctuation; the tests use tokens containing shell-hostile characters (`]{;)`) and
//! hand them to the clients as plain arguments, the way users paste them. Every command is
//! bounded by a timeout; a failing test prints the server log. A missing client fails the
//! test: `scripts/test` installs them.

#[path = "support/clients.rs"]
mod clients;
mod common;

use clients::{Containerd, Layout, Podman, client, json, run, run_failing};
use common::Server;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The tenancy namespace the server bootstraps.
const NAMESPACE: &str = "acme";
/// A local user named by email address.
const USER: &str = "jdoe@acme.com";
/// A federated user (identity-provider prefix).
const FEDERATED_USER: &str = "oracleidentitycloudservice/jdoe@acme.com";
/// Characters a login token must contain at least one of: each needs quoting in a shell.
const SHELL_HOSTILE: [char; 4] = [']', '{', ';', ')'];
/// Tokens created at most while looking for one with a shell-hostile character.
const TOKEN_ATTEMPTS: usize = 40;
/// Description of the auth tokens the tests log in with.
const LOGIN_TOKEN: &str = "registry login";
/// Layer content size of the test images.
const LAYER_SIZE: usize = 64 * 1024;
/// Limit of each direct HTTP request to the registry.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A login name (`<namespace>/<user>`) with its auth token.
struct Login {
    username: String,
    token: String,
}

impl Login {
    /// `USERNAME:TOKEN`, as `skopeo --creds` and `ctr --user` take it.
    fn pair(&self) -> String {
        format!("{}:{}", self.username, self.token)
    }

    /// The same login with a token that differs in its last character.
    fn with_wrong_token(&self) -> Login {
        let mut token = self.token.clone();
        let last = token.pop().expect("a non-empty token");
        token.push(if last == 'x' { 'y' } else { 'x' });
        Login {
            username: self.username.clone(),
            token,
        }
    }
}

/// A `minato serve` with authentication and a temporary data directory, its bootstrap
/// administrator, and scratch space for the test. When the test fails, the server log is
/// printed (the harness shows it with the failure).
struct Registry {
    server: Server,
    dir: TempDir,
    admin: Login,
}

impl Registry {
    /// Starts the server (plus `extra` arguments) and reads its bootstrap credentials.
    fn start(extra: &[&str]) -> Registry {
        let dir = TempDir::new().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let mut args = vec!["--bootstrap-namespace", NAMESPACE];
        args.extend(extra);
        let server = Server::start_authenticated(&data_dir, &args);
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
    fn admin(&self, args: &[&str]) -> String {
        let output = run(Command::new(env!("CARGO_BIN_EXE_minato"))
            .args(["admin", "--server", &self.server.url()])
            .args(["--username", &self.admin.username])
            .args(args)
            .env("MINATO_PASSWORD", &self.admin.token));
        output.trim_end().to_owned()
    }

    /// Creates group `group` with `verb` (`read`, `manage`...) on every repository.
    fn add_group(&self, group: &str, verb: &str) {
        self.admin(&["group", "create", NAMESPACE, group]);
        let statement = format!("allow group {group} to {verb} repos in tenancy");
        self.admin(&["policy", "add", NAMESPACE, &statement]);
    }

    /// Creates `user` as a member of `group`.
    fn add_user(&self, user: &str, group: &str) {
        assert_eq!(
            self.admin(&["user", "create", NAMESPACE, user]),
            login_name(user)
        );
        self.admin(&["group", "add-user", NAMESPACE, group, user]);
    }

    /// Creates an auth token for `user`; returns its id and secret.
    fn create_token(&self, user: &str, description: &str) -> (String, String) {
        let created = json(&self.admin(&[
            "--output",
            "json",
            "token",
            "create",
            NAMESPACE,
            user,
            "--description",
            description,
        ]));
        let field = |key: &str| created[key].as_str().expect(key).to_owned();
        (field("id"), field("token"))
    }

    /// An auth token for `user` containing a shell-hostile character: creates tokens (revoking
    /// the others, since a user holds at most two) until one qualifies.
    fn login_for(&self, user: &str) -> Login {
        for _ in 0..TOKEN_ATTEMPTS {
            let (id, token) = self.create_token(user, LOGIN_TOKEN);
            if token.contains(SHELL_HOSTILE) {
                return Login {
                    username: login_name(user),
                    token,
                };
            }
            self.admin(&["token", "revoke", NAMESPACE, user, &id]);
        }
        panic!("no token among {TOKEN_ATTEMPTS} contained any of {SHELL_HOSTILE:?}");
    }

    /// The id `minato admin token list` shows for the token of `user` with `description`.
    fn token_id(&self, user: &str, description: &str) -> String {
        let listed = self.admin(&["token", "list", NAMESPACE, user]);
        let mut matching = listed
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, d)| *d == description);
        match (matching.next(), matching.next()) {
            (Some((id, _)), None) => id.to_owned(),
            _ => panic!("expected one token {description:?} of {user}:\n{listed}"),
        }
    }

    /// `host:port`, as clients log in to it.
    fn host(&self) -> &str {
        &self.server.addr
    }

    /// `host:port/acme/repository:tag`, as `ctr` and podman take it.
    fn name(&self, repository_and_tag: &str) -> String {
        format!("{}/{NAMESPACE}/{repository_and_tag}", self.host())
    }

    /// `docker://host:port/acme/repository:tag`, as skopeo takes it.
    fn docker(&self, repository_and_tag: &str) -> String {
        format!("docker://{}", self.name(repository_and_tag))
    }

    /// A path in the test's scratch space.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A single-platform test image in the scratch directory `name`.
    fn image(&self, name: &str) -> Layout {
        Layout::build(self.scratch(name), &["linux/amd64"], LAYER_SIZE)
    }

    /// `skopeo login` with `login` into the auth file `authfile`.
    fn skopeo_login(&self, authfile: &Path, login: &Login) -> Command {
        let mut command = client("skopeo");
        command
            .args(["login", "--tls-verify=false", "--authfile"])
            .arg(authfile)
            .args(["-u", &login.username, "-p", &login.token, self.host()]);
        command
    }

    /// Pushes a layout's tag `latest` with `credentials` (skopeo `copy` flags such as
    /// `--dest-creds U:P`); returns the digest skopeo reports for the pushed manifest.
    fn push(&self, layout: &Layout, repository_and_tag: &str, credentials: &[&str]) -> String {
        let digest_file = self.scratch("pushed.digest");
        run(skopeo_copy(
            &layout.oci_reference("latest"),
            &self.docker(repository_and_tag),
            credentials,
        )
        .arg("--digestfile")
        .arg(&digest_file));
        std::fs::read_to_string(&digest_file).expect("skopeo --digestfile output")
    }

    /// Pulls a reference with `credentials` (skopeo `copy` flags) into a new OCI layout in the
    /// scratch directory `into`.
    fn pull(&self, repository_and_tag: &str, credentials: &[&str], into: &str) -> Layout {
        let layout = Layout {
            dir: self.scratch(into),
        };
        run(&mut skopeo_copy(
            &self.docker(repository_and_tag),
            &layout.oci_reference("pulled"),
            credentials,
        ));
        layout
    }

    /// `skopeo inspect` of a reference with `credentials` (`--creds`, `--authfile` or
    /// `--no-creds` flags).
    fn inspect(&self, repository_and_tag: &str, credentials: &[&str]) -> Command {
        let mut command = client("skopeo");
        command
            .args(["inspect", "--tls-verify=false"])
            .args(credentials)
            .arg(self.docker(repository_and_tag));
        command
    }

    /// Sets up a tenancy with group `Pushers` (manage repos) holding `USER`, and pushes a test
    /// image as `repository_and_tag` with that user's credentials; returns the user's login and
    /// the image.
    fn with_pushed_image(&self, repository_and_tag: &str) -> (Login, Layout) {
        self.add_group("Pushers", "manage");
        self.add_user(USER, "Pushers");
        let pusher = self.login_for(USER);
        let image = self.image("source");
        let pushed = self.push(
            &image,
            repository_and_tag,
            &["--dest-creds", &pusher.pair()],
        );
        assert_eq!(pushed, image.top_digest(), "pushed manifest digest");
        (pusher, image)
    }

    /// Adds group `Pullers` (read repos) with user `reader`; returns its login.
    fn puller(&self) -> Login {
        self.add_group("Pullers", "read");
        self.add_user("reader", "Pullers");
        self.login_for("reader")
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

/// `acme/<user>`: the login name of a user of the test tenancy.
fn login_name(user: &str) -> String {
    format!("{NAMESPACE}/{user}")
}

/// `skopeo copy` over plain HTTP from `source` to `destination` with `flags`.
fn skopeo_copy(source: &str, destination: &str, flags: &[&str]) -> Command {
    let mut command = client("skopeo");
    command
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(flags)
        .args([source, destination]);
    command
}

/// Asserts that a client's error output mentions one of `needles`.
fn assert_mentions(stderr: &str, needles: &[&str], what: &str) {
    assert!(
        needles.iter().any(|n| stderr.contains(n)),
        "{what}: expected the error to mention one of {needles:?}:\n{stderr}"
    );
}

/// What clients print when the registry refuses credentials (skopeo and podman; ctr).
const REFUSED: &[&str] = &["invalid username/password", "401 Unauthorized"];
/// What clients print when the registry refuses an anonymous request.
const ANONYMOUS_DENIED: &[&str] = &[
    "Anonymous users are only allowed read access on public repos",
    "401 Unauthorized",
];
/// What clients print when the registry refuses an authenticated user.
const DENIED: &[&str] = &["requested access to the resource is denied"];

// ---------------------------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------------------------

#[test]
fn skopeo_logs_in_with_a_punctuated_token_then_pushes_pulls_and_inspects() {
    let registry = Registry::start(&[]);
    registry.add_group("Pushers", "manage");
    registry.add_user(USER, "Pushers");
    let login = registry.login_for(USER);
    let authfile = registry.scratch("auth.json");
    let authfile_text = authfile.display().to_string();
    let credentials = ["--authfile", authfile_text.as_str()];

    let said = run(&mut registry.skopeo_login(&authfile, &login));
    assert!(said.contains("Login Succeeded"), "{said}");

    let source = registry.image("source");
    let pushed = registry.push(&source, "app:v1", &credentials);
    assert_eq!(pushed, source.top_digest(), "pushed manifest digest");
    let pulled = registry.pull("app:v1", &credentials, "pulled");
    assert_eq!(pulled.top_digest(), pushed, "pulled manifest digest");
    assert_eq!(pulled.image_parts(&pushed), source.image_parts(&pushed));

    let inspected = json(&run(&mut registry.inspect("app:v1", &credentials)));
    assert_eq!(inspected["Digest"], pushed.as_str(), "{inspected}");
    let stderr = run_failing(&mut registry.inspect("app:v1", &["--no-creds"]));
    assert_mentions(
        &stderr,
        ANONYMOUS_DENIED,
        "anonymous inspect of a private repository",
    );
}

#[test]
fn a_puller_pulls_but_cannot_push() {
    let registry = Registry::start(&[]);
    let (_, source) = registry.with_pushed_image("app:v1");
    let puller = registry.puller();
    let authfile = registry.scratch("puller.json");
    let authfile_text = authfile.display().to_string();
    let credentials = ["--authfile", authfile_text.as_str()];
    run(&mut registry.skopeo_login(&authfile, &puller));

    let pulled = registry.pull("app:v1", &credentials, "pulled");
    assert_eq!(
        pulled.top_digest(),
        source.top_digest(),
        "pulled manifest digest"
    );

    for target in ["app:v2", "other:v1"] {
        let stderr = run_failing(&mut skopeo_copy(
            &source.oci_reference("latest"),
            &registry.docker(target),
            &credentials,
        ));
        assert_mentions(&stderr, DENIED, &format!("push to {target} as a puller"));
    }
    let stderr = run_failing(&mut registry.inspect("app:v2", &credentials));
    assert_mentions(&stderr, &["manifest unknown"], "the refused tag");
}

#[test]
fn skopeo_login_refuses_a_wrong_token_and_accepts_a_federated_user() {
    let registry = Registry::start(&[]);
    let (pusher, _) = registry.with_pushed_image("app:v1");
    let authfile = registry.scratch("auth.json");

    let stderr = run_failing(&mut registry.skopeo_login(&authfile, &pusher.with_wrong_token()));
    assert_mentions(&stderr, REFUSED, "login with a wrong token");
    let stranger = Login {
        username: login_name("nobody@acme.com"),
        token: pusher.token.clone(),
    };
    let stderr = run_failing(&mut registry.skopeo_login(&authfile, &stranger));
    assert_mentions(&stderr, REFUSED, "login as an unknown user");

    registry.add_user(FEDERATED_USER, "Pushers");
    let federated = registry.login_for(FEDERATED_USER);
    assert_eq!(
        federated.username,
        "acme/oracleidentitycloudservice/jdoe@acme.com"
    );
    run(&mut registry.skopeo_login(&authfile, &federated));
    let authfile_text = authfile.display().to_string();
    let credentials = ["--authfile", authfile_text.as_str()];
    let source = registry.image("federated");
    let pushed = registry.push(&source, "federated/app:v1", &credentials);
    let inspected = json(&run(&mut registry.inspect("federated/app:v1", &credentials)));
    assert_eq!(inspected["Digest"], pushed.as_str(), "{inspected}");
}

// ---------------------------------------------------------------------------------------------
// podman and containerd
// ---------------------------------------------------------------------------------------------

#[test]
fn podman_logs_in_and_pulls_an_image_pushed_with_skopeo() {
    let registry = Registry::start(&[]);
    let (_, source) = registry.with_pushed_image("app:v1");
    let puller = registry.puller();
    let podman = Podman::new();
    let authfile = registry.scratch("podman-auth.json").display().to_string();

    let said = podman.podman(&[
        "login",
        "--tls-verify=false",
        "--authfile",
        &authfile,
        "-u",
        &puller.username,
        "-p",
        &puller.token,
        registry.host(),
    ]);
    assert!(said.contains("Login Succeeded"), "{said}");
    let image = registry.name("app:v1");
    podman.podman(&[
        "pull",
        "--tls-verify=false",
        "--authfile",
        &authfile,
        &image,
    ]);

    let (config, _) = source.image_parts(&source.top_digest());
    let id = podman.inspect(&image)["Id"].as_str().map(str::to_owned);
    assert_eq!(
        id.map(|id| format!("sha256:{id}")),
        Some(config),
        "the image ID is the config digest"
    );
}

#[test]
fn containerd_pulls_with_user_credentials_and_refuses_a_wrong_token() {
    let registry = Registry::start(&[]);
    let (_, source) = registry.with_pushed_image("app:v1");
    let puller = registry.puller();
    let containerd = Containerd::start();
    let image = registry.name("app:v1");
    let pull = |login: &Login| {
        let mut command = containerd.command();
        command
            .args(["images", "pull", "--plain-http", "--snapshotter", "native"])
            .args(["--user", &login.pair(), &image]);
        command
    };

    let stderr = run_failing(&mut pull(&puller.with_wrong_token()));
    assert_mentions(&stderr, REFUSED, "ctr pull with a wrong token");
    run(&mut pull(&puller));
    let listed = containerd.ctr(&["images", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&image) && l.contains(&source.top_digest())),
        "{image} should be listed:\n{listed}"
    );
}

// ---------------------------------------------------------------------------------------------
// Token lifecycle and anonymous access
// ---------------------------------------------------------------------------------------------

#[test]
fn a_revoked_token_is_refused_at_once() {
    let registry = Registry::start(&[]);
    registry.with_pushed_image("app:v1");
    let puller = registry.puller();
    let authfile = registry.scratch("auth.json");
    let authfile_text = authfile.display().to_string();
    let creds = ["--creds", &puller.pair()];
    run(&mut registry.skopeo_login(&authfile, &puller));
    run(&mut registry.inspect("app:v1", &creds));

    let id = registry.token_id("reader", LOGIN_TOKEN);
    assert_eq!(
        registry.admin(&["token", "revoke", NAMESPACE, "reader", &id]),
        "revoked"
    );
    let listed = registry.admin(&["token", "list", NAMESPACE, "reader"]);
    assert!(!listed.contains(&id), "{id} is still listed:\n{listed}");

    let stderr = run_failing(&mut registry.inspect("app:v1", &creds));
    assert_mentions(&stderr, REFUSED, "inspect with a revoked token");
    let stderr = run_failing(&mut registry.inspect("app:v1", &["--authfile", &authfile_text]));
    assert_mentions(
        &stderr,
        REFUSED,
        "inspect with the stored login of a revoked token",
    );
    let stderr = run_failing(&mut registry.skopeo_login(&authfile, &puller));
    assert_mentions(&stderr, REFUSED, "login with a revoked token");
}

#[test]
fn an_expired_bearer_token_is_refused() {
    let registry = Registry::start(&["--token-lifetime-secs", "2"]);
    let (pusher, source) = registry.with_pushed_image("app:v1");
    let http = reqwest::blocking::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("HTTP client");
    let answer = http
        .get(format!("{}/20180419/docker/token", registry.server.url()))
        .query(&[
            ("service", registry.host().to_owned()),
            ("scope", format!("repository:{NAMESPACE}/app:pull")),
        ])
        .basic_auth(&pusher.username, Some(&pusher.token))
        .send()
        .expect("token request");
    let issued = Instant::now();
    assert_eq!(answer.status(), 200, "token endpoint");
    let body = json(&answer.text().expect("token response"));
    assert_eq!(body["expires_in"], 2, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();

    let manifest = || {
        http.get(format!(
            "{}/v2/{NAMESPACE}/app/manifests/v1",
            registry.server.url()
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .bearer_auth(&token)
        .send()
        .expect("manifest request")
    };
    let fresh = manifest();
    assert_eq!(fresh.status(), 200, "manifest with a fresh token");
    let digest = fresh.headers().get("docker-content-digest").cloned();
    assert_eq!(
        digest.as_ref().and_then(|d| d.to_str().ok()),
        Some(source.top_digest().as_str())
    );

    std::thread::sleep(Duration::from_secs(3).saturating_sub(issued.elapsed()));
    let stale = manifest();
    assert_eq!(stale.status(), 401, "manifest with an expired token");
    let challenge = stale.headers().get("www-authenticate").cloned();
    let challenge = challenge
        .as_ref()
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("invalid_token"),
        "challenge: {challenge:?}"
    );
}

#[test]
fn anonymous_users_pull_public_repositories_only() {
    let registry = Registry::start(&[]);
    assert_eq!(
        registry.admin(&["repo", "create", &format!("{NAMESPACE}/public"), "--public"]),
        "public"
    );
    let (pusher, source) = registry.with_pushed_image("public:v1");
    registry.push(&source, "private:v1", &["--dest-creds", &pusher.pair()]);

    let pulled = registry.pull("public:v1", &["--src-no-creds"], "pulled");
    assert_eq!(pulled.top_digest(), source.top_digest(), "anonymous pull");
    let inspected = json(&run(&mut registry.inspect("public:v1", &["--no-creds"])));
    assert_eq!(
        inspected["Digest"],
        source.top_digest().as_str(),
        "{inspected}"
    );

    let stderr = run_failing(&mut registry.inspect("private:v1", &["--no-creds"]));
    assert_mentions(
        &stderr,
        ANONYMOUS_DENIED,
        "anonymous inspect of a private repository",
    );
    let stderr = run_failing(&mut skopeo_copy(
        &source.oci_reference("latest"),
        &registry.docker("public:v2"),
        &["--dest-no-creds"],
    ));
    assert_mentions(&stderr, ANONYMOUS_DENIED, "anonymous push");
}
