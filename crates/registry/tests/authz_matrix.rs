//! Tenancy authorisation end to end over HTTP. Three tenancies: `sys` (the system tenancy),
//! `acme` with one user per policy verb (inspect, read, use, manage), a manager limited by
//! `where` clauses, a user without policy and an administrator, and `bolt` whose administrator
//! is an outsider to `acme`. Each tenancy has a public and a private repository holding an
//! image. The matrix checks every cell (caller × repository × action) for its exact status,
//! error code and challenge, with Basic credentials, with bearer tokens from the token
//! endpoint (whose granted `access` claims are checked too) and anonymously. The other tests
//! cover malformed usernames, revocation, throttling, token expiry and refresh, immutable
//! tags, auto-creation, existence hiding and the admin API.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use minato_iam::{ADMINISTRATORS, RepoSettings};
use minato_registry::auth::Auth;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use support::{Image, Registry, call, json_body, sha256, to_bytes};

const SYSTEM: &str = "sys";
const ACME: &str = "acme";
const BOLT: &str = "bolt";
/// Private repository of acme, inside its leads' `team/*` glob.
const TEAM_APP: &str = "acme/team/app";
/// Public repository of acme.
const SITE: &str = "acme/site";
/// Private repository of bolt.
const SECRET: &str = "bolt/secret";
/// Public repository of bolt.
const PUBLIC: &str = "bolt/pub";
/// The repositories of the matrix and whether they are public; each holds an image tagged
/// `v1` whose blobs are its own.
const REPOSITORIES: [(&str, bool); 4] = [
    (TEAM_APP, false),
    (SITE, true),
    (SECRET, false),
    (PUBLIC, true),
];
/// Existing repositories that acme and bolt callers mount blobs into.
const ACME_MOUNTS: &str = "acme/team/mounts";
const BOLT_MOUNTS: &str = "bolt/mounts";
/// Path of the token endpoint.
const TOKEN_ENDPOINT: &str = "/20180419/docker/token";
/// Access-token lifetime of most tests.
const LIFETIME: Duration = Duration::from_secs(300);

/// The policy of acme: one group per verb, and leads limited by a glob and an exact name.
const POLICY: &str = "
# one group per verb
allow group Inspectors to inspect repos in tenancy
allow group Readers to read repos in tenancy
allow group Pushers to use repos in tenancy
allow group Managers to manage repos in tenancy
allow group Leads to manage repos in tenancy where target.repo.name =~ 'team/*'
allow group Leads to use repos in tenancy where target.repo.name = 'site'
";

/// A caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    /// acme user without any policy.
    Nobody,
    Inspector,
    Reader,
    /// A federated user (`acme/idp/pusher@acme.com`) with `use`.
    Pusher,
    Manager,
    /// `manage` on `team/*`, `use` on `site`.
    Lead,
    /// acme `Administrators`.
    Admin,
    /// bolt `Administrators`.
    Outsider,
    /// sys `Administrators` (the system tenancy).
    Root,
}

use Who::*;

/// Callers with credentials: tenancy, user name and group.
const USERS: [(Who, &str, &str, Option<&str>); 9] = [
    (Nobody, ACME, "nobody", None),
    (Inspector, ACME, "inspector@acme.com", Some("Inspectors")),
    (Reader, ACME, "reader", Some("Readers")),
    (Pusher, ACME, "idp/pusher@acme.com", Some("Pushers")),
    (Manager, ACME, "manager", Some("Managers")),
    (Lead, ACME, "lead", Some("Leads")),
    (Admin, ACME, "admin", Some(ADMINISTRATORS)),
    (Outsider, BOLT, "admin", Some(ADMINISTRATORS)),
    (Root, SYSTEM, "root", Some(ADMINISTRATORS)),
];

/// What a matrix cell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `GET /v2/_catalog`: whether the repository is listed.
    Catalog,
    /// `GET /v2/<repo>/tags/list`.
    Tags,
    /// `GET /v2/<repo>/manifests/v1`.
    Manifest,
    /// `GET /v2/<repo>/blobs/<layer>`.
    Blob,
    /// A blob upload and a manifest put to the (existing) repository.
    Push,
    /// A push (two blobs, a manifest) creating the sibling repository `<repo>-new-<cell>`.
    Create,
    /// `DELETE /v2/<repo>/manifests/<digest>` of a manifest pushed for the cell.
    Delete,
    /// Mounting the repository's layer into the caller's tenancy (`acme/team/mounts` or
    /// `bolt/mounts`, both existing).
    Mount,
}

/// The matrix columns, in order.
const ACTIONS: [Action; 8] = [
    Action::Catalog,
    Action::Tags,
    Action::Manifest,
    Action::Blob,
    Action::Push,
    Action::Create,
    Action::Delete,
    Action::Mount,
];

/// Expected outcomes, one column per action of [`ACTIONS`]: `y` allowed (catalog: listed),
/// `-` denied (catalog: not listed, or 401 for anonymous callers), `n` mount refused
/// without an error (the upload falls back to a new session, 202).
#[rustfmt::skip]
const MATRIX: [(Who, &str, &str); 36] = [
    //                       catalog, tags, manifest, blob, push, create, delete, mount
    (Anonymous, TEAM_APP, "--------"),
    (Anonymous, SITE,     "-yyy----"),
    (Anonymous, SECRET,   "--------"),
    (Anonymous, PUBLIC,   "-yyy----"),
    (Nobody,    TEAM_APP, "--------"),
    (Nobody,    SITE,     "yyyy----"),
    (Nobody,    SECRET,   "--------"),
    (Nobody,    PUBLIC,   "yyyy----"),
    (Inspector, TEAM_APP, "yy------"),
    (Inspector, SITE,     "yyyy----"),
    (Inspector, SECRET,   "--------"),
    (Inspector, PUBLIC,   "yyyy----"),
    (Reader,    TEAM_APP, "yyyy----"),
    (Reader,    SITE,     "yyyy----"),
    (Reader,    SECRET,   "--------"),
    (Reader,    PUBLIC,   "yyyy----"),
    (Pusher,    TEAM_APP, "yyyyy--y"),
    (Pusher,    SITE,     "yyyyy--y"),
    (Pusher,    SECRET,   "-------n"),
    (Pusher,    PUBLIC,   "yyyy---y"),
    (Manager,   TEAM_APP, "yyyyyyyy"),
    (Manager,   SITE,     "yyyyyyyy"),
    (Manager,   SECRET,   "-------n"),
    (Manager,   PUBLIC,   "yyyy---y"),
    (Lead,      TEAM_APP, "yyyyyyyy"),
    (Lead,      SITE,     "yyyyy--y"),
    (Lead,      SECRET,   "-------n"),
    (Lead,      PUBLIC,   "yyyy---y"),
    (Admin,     TEAM_APP, "yyyyyyyy"),
    (Admin,     SITE,     "yyyyyyyy"),
    (Admin,     SECRET,   "-------n"),
    (Admin,     PUBLIC,   "yyyy---y"),
    (Outsider,  TEAM_APP, "-------n"),
    (Outsider,  SITE,     "yyyy---y"),
    (Outsider,  SECRET,   "yyyyyyyy"),
    (Outsider,  PUBLIC,   "yyyyyyyy"),
];

/// How a caller presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Anonymous,
    /// `<namespace>/<user>` and an auth token.
    Basic,
    /// A registry token from the token endpoint, scoped to the cell.
    Bearer,
}

/// A user's login and auth token.
struct Login {
    username: String,
    password: String,
    token_id: String,
}

/// A registry with the tenancies, users, policies and repositories described above.
struct World {
    registry: Registry,
    auth: Arc<Auth>,
    logins: HashMap<Who, Login>,
}

impl World {
    async fn new(token_lifetime: Duration) -> World {
        let (registry, auth) = Registry::start_with_tenancies(token_lifetime).await;
        let directory = &auth.directory;
        // The first tenancy created is the system tenancy.
        for namespace in [SYSTEM, ACME, BOLT] {
            directory
                .create_tenancy(Some(namespace), None)
                .await
                .unwrap();
        }
        directory.add_policy(ACME, POLICY).await.unwrap();
        let mut logins = HashMap::new();
        for (who, namespace, user, group) in USERS {
            directory.create_user(namespace, user).await.unwrap();
            if let Some(group) = group {
                if group != ADMINISTRATORS {
                    directory.create_group(namespace, group).await.unwrap();
                }
                directory
                    .add_to_group(namespace, group, user)
                    .await
                    .unwrap();
            }
            let (info, password) = directory
                .create_token(namespace, user, "test", None)
                .await
                .unwrap();
            let username = format!("{namespace}/{user}");
            let token_id = info.id;
            logins.insert(
                who,
                Login {
                    username,
                    password,
                    token_id,
                },
            );
        }
        let mounts = [(ACME_MOUNTS, false), (BOLT_MOUNTS, false)];
        for (repository, public) in REPOSITORIES.into_iter().chain(mounts) {
            let (namespace, repo) = repository.split_once('/').unwrap();
            let settings = RepoSettings {
                public,
                immutable: false,
            };
            directory.put_repo(namespace, repo, settings).await.unwrap();
        }
        let world = World {
            registry,
            auth,
            logins,
        };
        for (repository, _) in REPOSITORIES {
            let owner = world.owner(repository);
            let manifest = owner.image(repository, repository).await;
            owner.push_manifest(repository, "v1", &manifest).await;
        }
        world
    }

    /// `host:port`, the service tokens are issued for.
    fn service(&self) -> &str {
        self.registry.base().trim_start_matches("http://")
    }

    /// The expected `WWW-Authenticate` of a refusal.
    fn challenge(&self, scope: &str, error: Option<&str>) -> String {
        let base = self.registry.base();
        let error = error.map(|e| format!(",error=\"{e}\"")).unwrap_or_default();
        format!(
            "Bearer realm=\"{base}{TOKEN_ENDPOINT}\",service=\"{}\",scope=\"{scope}\"{error}",
            self.service()
        )
    }

    /// The `Authorization` value of a user's Basic credentials.
    fn basic(&self, who: Who) -> String {
        let login = &self.logins[&who];
        basic(&login.username, &login.password)
    }

    /// A client sending `who`'s Basic credentials.
    fn as_user(&self, who: Who) -> Registry {
        self.registry.with_authorization(&self.basic(who))
    }

    /// A client of the administrator of tenancy `namespace`.
    fn admin_of(&self, namespace: &str) -> Registry {
        self.as_user(match namespace {
            ACME => Admin,
            BOLT => Outsider,
            _ => Root,
        })
    }

    /// A client of the administrator of `repository`'s tenancy.
    fn owner(&self, repository: &str) -> Registry {
        self.admin_of(repository.split_once('/').unwrap().0)
    }

    /// A registry token for `who` and `scopes` (GET with Basic credentials) and its claims.
    async fn token(&self, who: Who, scopes: &[String]) -> (String, Value) {
        let mut query = vec![("service", self.service())];
        query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
        let response = call(
            self.as_user(who)
                .request(Method::GET, TOKEN_ENDPOINT)
                .query(&query),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "token for {who:?}");
        let token = json_body(response).await["token"]
            .as_str()
            .expect("token in the answer")
            .to_owned();
        let claims = claims(&token);
        (token, claims)
    }

    /// A client presenting a registry token for `who` and `scopes`, and the token's claims.
    async fn bearer(&self, who: Who, scopes: &[String]) -> (Registry, Value) {
        let (token, claims) = self.token(who, scopes).await;
        (self.with_token(&token), claims)
    }

    /// A client presenting a registry token.
    fn with_token(&self, token: &str) -> Registry {
        self.registry.with_authorization(&format!("Bearer {token}"))
    }

    /// Revokes `who`'s auth token through the admin API, as its tenancy's administrator.
    async fn revoke(&self, who: Who) {
        let login = &self.logins[&who];
        let (namespace, user) = login.username.split_once('/').unwrap();
        let path = format!(
            "/admin/tenancies/{namespace}/tokens/{}?user={user}",
            login.token_id
        );
        let response = self.admin_of(namespace).delete(&path).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "revoking {who:?}"
        );
    }

    /// Performs one matrix cell and checks every response and the effect.
    async fn check(&self, cell: &Cell) {
        let client = match cell.mode {
            Mode::Anonymous => self.registry.clone(),
            Mode::Basic => self.as_user(cell.who),
            Mode::Bearer => {
                let wanted = cell.wanted();
                let scopes: Vec<String> = wanted.iter().map(Wanted::scope).collect();
                let (client, claims) = self.bearer(cell.who, &scopes).await;
                let granted: Vec<Value> = wanted
                    .iter()
                    .filter(|w| w.granted)
                    .map(Wanted::claim)
                    .collect();
                assert_eq!(claims["access"], json!(granted), "{cell:?}");
                let username = &self.logins[&cell.who].username;
                assert_eq!(claims["sub"], json!(username), "{cell:?}");
                assert_eq!(claims["aud"], self.service(), "{cell:?}");
                client
            }
        };
        let expected = self.expected(cell);
        for response in self.perform(cell, &client).await {
            let (outcome, body) = observe(response).await;
            assert_eq!(
                outcome,
                expected,
                "{cell:?}: {}",
                String::from_utf8_lossy(&body)
            );
            if cell.action == Action::Catalog && outcome.status == StatusCode::OK {
                let listing: Value = serde_json::from_slice(&body).unwrap();
                let listed = listing["repositories"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(cell.repository));
                assert_eq!(listed, cell.flag() == 'y', "{cell:?}: {listing}");
            }
        }
        if let Some((path, exists)) = cell.effect() {
            let response = self.owner(&cell.target()).head(&path).await;
            assert_eq!(response.status().is_success(), exists, "{cell:?}: {path}");
        }
        if cell.action == Action::Create {
            let created = self.auth.directory.repo_settings(&cell.target()).is_some();
            assert_eq!(created, cell.allowed(), "{cell:?}: settings record");
        }
    }

    /// The cell's requests.
    async fn perform(&self, cell: &Cell, client: &Registry) -> Vec<Response> {
        let repository = cell.repository;
        let image = Image::new(repository);
        let label = cell.label();
        let labelled = with_annotation(&image.manifest, &label);
        match cell.action {
            Action::Catalog => vec![client.get("/v2/_catalog").await],
            Action::Tags => vec![client.get(&format!("/v2/{repository}/tags/list")).await],
            Action::Manifest => vec![client.get(&format!("/v2/{repository}/manifests/v1")).await],
            Action::Blob => {
                let path = format!("/v2/{repository}/blobs/{}", layer(&image));
                vec![client.get(&path).await]
            }
            Action::Push => vec![
                upload(client, repository, label.as_bytes()).await,
                client.put_manifest(repository, &label, &labelled).await,
            ],
            Action::Create => {
                let target = cell.target();
                let fresh = Image::new(&target);
                vec![
                    upload(client, &target, &fresh.config).await,
                    upload(client, &target, &fresh.layer).await,
                    client.put_manifest(&target, "v1", &fresh.manifest).await,
                ]
            }
            Action::Delete => {
                let owner = self.owner(repository);
                let (_, digest) = owner.push_manifest(repository, &label, &labelled).await;
                vec![
                    client
                        .delete(&format!("/v2/{repository}/manifests/{digest}"))
                        .await,
                ]
            }
            Action::Mount => {
                let path = format!(
                    "/v2/{}/blobs/uploads/?mount={}&from={repository}",
                    cell.target(),
                    layer(&image)
                );
                vec![client.send(Method::POST, &path).await]
            }
        }
    }

    /// What every response of the cell must look like.
    fn expected(&self, cell: &Cell) -> Outcome {
        let allowed = match (cell.action, cell.flag()) {
            (Action::Catalog, _) if cell.mode != Mode::Anonymous => Some(StatusCode::OK),
            (Action::Mount, 'y') => Some(StatusCode::CREATED),
            (Action::Mount, 'n') => Some(StatusCode::ACCEPTED),
            (Action::Push | Action::Create, 'y') => Some(StatusCode::CREATED),
            (Action::Delete, 'y') => Some(StatusCode::ACCEPTED),
            (_, 'y') => Some(StatusCode::OK),
            _ => None,
        };
        let challenged = |error| {
            let challenge = self.challenge(&cell.denied_scope(), error);
            Outcome::new(
                StatusCode::UNAUTHORIZED,
                Some("UNAUTHORIZED"),
                Some(challenge),
            )
        };
        match (allowed, cell.mode) {
            (Some(status), _) => Outcome::new(status, None, None),
            (None, Mode::Basic) => Outcome::new(StatusCode::FORBIDDEN, Some("DENIED"), None),
            (None, Mode::Anonymous) => challenged(None),
            (None, Mode::Bearer) => challenged(Some("insufficient_scope")),
        }
    }
}

/// One cell of the matrix: a caller, how it authenticates, a repository and an action.
#[derive(Debug)]
struct Cell {
    who: Who,
    mode: Mode,
    repository: &'static str,
    action: Action,
    row: &'static str,
}

impl Cell {
    /// The expected flag of `action` in this cell's row.
    fn column(&self, action: Action) -> char {
        let index = ACTIONS.iter().position(|a| *a == action).unwrap();
        self.row.as_bytes()[index] as char
    }

    fn flag(&self) -> char {
        self.column(self.action)
    }

    fn allowed(&self) -> bool {
        self.flag() == 'y'
    }

    /// Unique per caller, mode and action: used for tags, annotations and new repositories.
    fn label(&self) -> String {
        format!("{:?}-{:?}-{:?}", self.who, self.mode, self.action).to_lowercase()
    }

    /// The repository whose rights decide a write: the new sibling for [`Action::Create`],
    /// the caller's mount target for [`Action::Mount`].
    fn target(&self) -> String {
        match self.action {
            Action::Create => format!("{}-new-{}", self.repository, self.label()),
            Action::Mount => match USERS.iter().find(|user| user.0 == self.who) {
                Some((_, BOLT, ..)) => BOLT_MOUNTS.to_owned(),
                _ => ACME_MOUNTS.to_owned(),
            },
            _ => self.repository.to_owned(),
        }
    }

    /// The scopes a bearer token is requested with, and whether each must be granted.
    fn wanted(&self) -> Vec<Wanted> {
        let repository = |name: String, action, granted| Wanted {
            kind: "repository",
            name,
            action,
            granted,
        };
        let pull = repository(
            self.repository.to_owned(),
            "pull",
            self.column(Action::Manifest) == 'y',
        );
        match self.action {
            Action::Catalog => vec![Wanted {
                kind: "registry",
                name: "catalog".to_owned(),
                action: "*",
                granted: true,
            }],
            Action::Tags | Action::Manifest | Action::Blob => vec![pull],
            Action::Push | Action::Create => {
                vec![repository(self.target(), "push", self.allowed())]
            }
            Action::Delete => vec![repository(self.target(), "delete", self.allowed())],
            Action::Mount => vec![repository(self.target(), "push", self.flag() != '-'), pull],
        }
    }

    /// The scope a refusal's challenge names.
    fn denied_scope(&self) -> String {
        match self.action {
            Action::Catalog => "registry:catalog:*".to_owned(),
            Action::Tags | Action::Manifest | Action::Blob => {
                format!("repository:{}:pull", self.repository)
            }
            Action::Push | Action::Create | Action::Mount => {
                format!("repository:{}:pull,push", self.target())
            }
            Action::Delete => format!("repository:{}:delete", self.repository),
        }
    }

    /// What the owner of [`Cell::target`] must (or must not) find afterwards: a path and
    /// whether it exists.
    fn effect(&self) -> Option<(String, bool)> {
        let target = self.target();
        let tagged = format!("/v2/{target}/manifests/{}", self.label());
        match self.action {
            Action::Push => Some((tagged, self.allowed())),
            Action::Delete => Some((tagged, !self.allowed())),
            Action::Create => Some((format!("/v2/{target}/manifests/v1"), self.allowed())),
            // Denied mounts are refused before the source is looked at.
            Action::Mount if self.flag() != '-' => {
                let layer = layer(&Image::new(self.repository));
                Some((format!("/v2/{target}/blobs/{layer}"), self.allowed()))
            }
            _ => None,
        }
    }
}

/// A scope of a token request, and whether the token must grant it.
struct Wanted {
    /// `repository` or `registry`.
    kind: &'static str,
    /// Repository name, or `catalog`.
    name: String,
    action: &'static str,
    granted: bool,
}

impl Wanted {
    /// `<type>:<name>:<action>`.
    fn scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.action)
    }

    /// The `access` claim granting it.
    fn claim(&self) -> Value {
        json!({"type": self.kind, "name": self.name, "actions": [self.action]})
    }
}

/// The comparable parts of a response.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: StatusCode,
    /// The spec error code, for errors.
    code: Option<String>,
    /// `WWW-Authenticate`.
    challenge: Option<String>,
}

impl Outcome {
    fn new(status: StatusCode, code: Option<&str>, challenge: Option<String>) -> Outcome {
        let code = code.map(str::to_owned);
        Outcome {
            status,
            code,
            challenge,
        }
    }
}

/// The outcome of a response (the error code read from its body, if any) and its body.
async fn observe(response: Response) -> (Outcome, Vec<u8>) {
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap().to_vec();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|error| error["errors"][0]["code"].as_str().map(str::to_owned));
    let code = code.as_deref();
    (Outcome::new(status, code, challenge), body)
}

/// The layer digest of an image.
fn layer(image: &Image) -> String {
    image.manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A manifest made distinct by an annotation.
fn with_annotation(manifest: &Value, label: &str) -> Value {
    let mut manifest = manifest.clone();
    manifest["annotations"] = json!({"cell": label});
    manifest
}

/// A monolithic blob upload, whatever its answer.
async fn upload(client: &Registry, repository: &str, content: &[u8]) -> Response {
    let path = format!("/v2/{repository}/blobs/uploads/?digest={}", sha256(content));
    call(client.request(Method::POST, &path).body(content.to_vec())).await
}

/// An `Authorization: Basic` value.
fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    )
}

/// The claims of a JWT (its payload, base64url JSON), unverified.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Asserts a brute-force refusal: 429 with a `Retry-After` within the one-minute window.
async fn throttled(response: Response) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    refusal(response, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
}

/// A request with a JSON body.
async fn send_json(client: &Registry, method: Method, path: &str, body: &Value) -> Response {
    let request = client
        .request(method, path)
        .header("content-type", "application/json");
    call(request.body(to_bytes(body))).await
}

/// The `access` claims granting only pull of `repository`.
fn pull_claim(repository: &str) -> Value {
    json!([{"type": "repository", "name": repository, "actions": ["pull"]}])
}

/// A `POST` to the token endpoint with an OAuth2 form.
async fn post_token(registry: &Registry, form: &[(&str, &str)]) -> Response {
    call(registry.request(Method::POST, TOKEN_ENDPOINT).form(form)).await
}

/// The `errors[0]` of a 401 `UNAUTHORIZED` answer.
async fn unauthorized(response: Response) -> Value {
    refusal(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await
}

/// The `errors[0]` of a 403 `DENIED` answer.
async fn denied(response: Response) -> Value {
    refusal(response, StatusCode::FORBIDDEN, "DENIED").await
}

/// The `errors[0]` of an error answer, after checking its status and code.
async fn refusal(response: Response, status: StatusCode, code: &str) -> Value {
    let url = response.url().clone();
    let (outcome, body) = observe(response).await;
    assert_eq!(
        (outcome.status, outcome.code.as_deref()),
        (status, Some(code)),
        "{url}"
    );
    serde_json::from_slice::<Value>(&body).unwrap()["errors"][0].take()
}

#[tokio::test]
async fn every_caller_gets_exactly_what_its_policies_allow() {
    let world = World::new(LIFETIME).await;
    for (who, repository, row) in MATRIX {
        let modes = match who {
            Anonymous => vec![Mode::Anonymous],
            _ => vec![Mode::Basic, Mode::Bearer],
        };
        for mode in modes {
            for action in ACTIONS {
                world
                    .check(&Cell {
                        who,
                        mode,
                        repository,
                        action,
                        row,
                    })
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn anonymous_tokens_grant_pull_of_public_repositories_only() {
    let world = World::new(LIFETIME).await;
    let scopes = [
        format!("repository:{SITE}:pull,push"),
        format!("repository:{TEAM_APP}:pull"),
        "registry:catalog:*".to_owned(),
    ];
    let mut query = vec![("service", world.service()), ("offline_token", "true")];
    query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
    let response = call(
        world
            .registry
            .request(Method::GET, TOKEN_ENDPOINT)
            .query(&query),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_body(response).await;
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    let token = answer["token"].as_str().unwrap();
    let claims = claims(token);
    assert_eq!(claims["sub"], "");
    assert_eq!(claims["access"], pull_claim(SITE));
    let anonymous = world.with_token(token);
    let pulled = anonymous.get(&format!("/v2/{SITE}/manifests/v1")).await;
    assert_eq!(pulled.status(), StatusCode::OK);
    for path in [
        format!("/v2/{TEAM_APP}/manifests/v1"),
        "/v2/_catalog".to_owned(),
    ] {
        denied(anonymous.get(&path).await).await;
    }
}

#[tokio::test]
async fn usernames_without_a_namespace_are_told_the_expected_form() {
    let world = World::new(LIFETIME).await;
    let password = world.logins[&Reader].password.clone();
    let client = world
        .registry
        .with_authorization(&basic("reader", &password));
    let token_path = format!("{TOKEN_ENDPOINT}?service={}", world.service());
    let form = [
        ("grant_type", "password"),
        ("username", "reader"),
        ("password", &password),
    ];
    for response in [
        client.get("/v2/").await,
        client.get(&token_path).await,
        post_token(&world.registry, &form).await,
    ] {
        let challenge = response.headers().get("www-authenticate").cloned();
        let error = unauthorized(response).await;
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("<tenancy-namespace>/<username>"),
            "{message}"
        );
        assert!(
            challenge
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=")
        );
    }
}

#[tokio::test]
async fn revoked_auth_tokens_stop_working_at_once() {
    let world = World::new(LIFETIME).await;
    let reader = world.as_user(Reader);
    let token_path = format!("{TOKEN_ENDPOINT}?service={}", world.service());
    let login = &world.logins[&Reader];
    let form = [
        ("grant_type", "password"),
        ("username", login.username.as_str()),
        ("password", login.password.as_str()),
    ];
    // Used once first, so the credentials are cached.
    assert_eq!(reader.get("/v2/").await.status(), StatusCode::OK);
    assert_eq!(reader.get(&token_path).await.status(), StatusCode::OK);
    assert_eq!(
        post_token(&world.registry, &form).await.status(),
        StatusCode::OK
    );
    world.revoke(Reader).await;
    for response in [
        reader.get("/v2/").await,
        reader.get(&format!("/v2/{TEAM_APP}/manifests/v1")).await,
        reader.get(&token_path).await,
        post_token(&world.registry, &form).await,
    ] {
        unauthorized(response).await;
    }
    let others = world.as_user(Inspector).get("/v2/").await;
    assert_eq!(others.status(), StatusCode::OK);
}

#[tokio::test]
async fn repeated_login_failures_answer_429_with_retry_after() {
    let world = World::new(LIFETIME).await;
    let wrong = world
        .registry
        .with_authorization(&basic("acme/reader", "wrong"));
    for _ in 0..10 {
        unauthorized(wrong.get("/v2/").await).await;
    }
    throttled(wrong.get("/v2/").await).await;
    // The user is blocked even with the right token; other users are not.
    throttled(world.as_user(Reader).get("/v2/").await).await;
    assert_eq!(
        world.as_user(Inspector).get("/v2/").await.status(),
        StatusCode::OK
    );
    // Failures under many names block the client address (50 per minute) for everyone.
    for n in 10..50 {
        let guess = world
            .registry
            .with_authorization(&basic(&format!("acme/guess{n}"), "x"));
        unauthorized(guess.get("/v2/").await).await;
    }
    throttled(world.as_user(Inspector).get("/v2/").await).await;
}

#[tokio::test]
async fn expired_bearer_tokens_are_refused() {
    let world = World::new(Duration::from_secs(1)).await;
    let (client, claims) = world
        .bearer(Reader, &[format!("repository:{TEAM_APP}:pull")])
        .await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );
    let path = format!("/v2/{TEAM_APP}/manifests/v1");
    assert_eq!(client.get(&path).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = client.get(&path).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.ends_with(",error=\"invalid_token\""),
        "{challenge}"
    );
    unauthorized(response).await;
}

#[tokio::test]
async fn refresh_tokens_work_until_their_auth_token_is_revoked() {
    let world = World::new(LIFETIME).await;
    let login = &world.logins[&Reader];
    let scope = format!("repository:{TEAM_APP}:pull");
    let service = world.service();
    let answer = json_body(
        post_token(
            &world.registry,
            &[
                ("grant_type", "password"),
                ("username", &login.username),
                ("password", &login.password),
                ("service", service),
                ("scope", &scope),
            ],
        )
        .await,
    )
    .await;
    let refresh = answer["refresh_token"].as_str().expect("a refresh token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("service", service),
        ("scope", &scope),
    ];
    let refreshed = json_body(post_token(&world.registry, &form).await).await;
    let token = refreshed["access_token"].as_str().unwrap();
    let pull = pull_claim(TEAM_APP);
    assert_eq!(claims(token)["access"], pull);
    let client = world.with_token(token);
    let path = format!("/v2/{TEAM_APP}/manifests/v1");
    assert_eq!(client.get(&path).await.status(), StatusCode::OK);
    // A refresh token is not an access token.
    let misuse = world.with_token(refresh);
    unauthorized(misuse.get(&path).await).await;
    world.revoke(Reader).await;
    let refused = post_token(&world.registry, &form).await;
    unauthorized(refused).await;
}

#[tokio::test]
async fn registry_tokens_as_passwords_never_widen_access() {
    let world = World::new(LIFETIME).await;
    let pull = format!("repository:{TEAM_APP}:pull");
    let pull_push = format!("repository:{TEAM_APP}:pull,push");
    let (token, _) = world.token(Pusher, std::slice::from_ref(&pull)).await;
    let as_token = world
        .registry
        .with_authorization(&basic("BEARER_TOKEN", &token));
    let path = format!("/v2/{TEAM_APP}/manifests/v1");
    assert_eq!(as_token.get(&path).await.status(), StatusCode::OK);
    unauthorized(upload(&as_token, TEAM_APP, b"more").await).await;
    // New tokens (GET or POST) carry at most the presented token's grants, and no refresh
    // token that could outlive it.
    let query = [
        ("service", world.service()),
        ("scope", &pull_push),
        ("offline_token", "true"),
    ];
    let got = call(as_token.request(Method::GET, TOKEN_ENDPOINT).query(&query)).await;
    let form = [
        ("grant_type", "password"),
        ("username", "BEARER_TOKEN"),
        ("password", &token),
        ("service", world.service()),
        ("scope", &pull_push),
    ];
    let posted = post_token(&world.registry, &form).await;
    for response in [got, posted] {
        assert_eq!(response.status(), StatusCode::OK);
        let answer = json_body(response).await;
        assert!(answer.get("refresh_token").is_none(), "{answer}");
        let access = claims(answer["token"].as_str().unwrap())["access"].take();
        assert_eq!(access, pull_claim(TEAM_APP));
    }
}

#[tokio::test]
async fn immutable_repositories_refuse_to_move_tags_but_accept_new_ones() {
    let world = World::new(LIFETIME).await;
    let settings = json!({"name": "team/app", "immutable": true});
    let admin = world.as_user(Admin);
    let response = send_json(
        &admin,
        Method::POST,
        "/admin/tenancies/acme/repositories",
        &settings,
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let manager = world.as_user(Manager);
    let original = Image::new(TEAM_APP).manifest;
    let other = manager.image(TEAM_APP, "another image").await;
    let moved = manager.put_manifest(TEAM_APP, "v1", &other).await;
    let refused = refusal(moved, StatusCode::CONFLICT, "DENIED").await;
    assert!(refused["message"].as_str().unwrap().contains("immutable"));
    manager.push_manifest(TEAM_APP, "v2", &other).await;
    manager.push_manifest(TEAM_APP, "v1", &original).await;
    let current = manager.head(&format!("/v2/{TEAM_APP}/manifests/v1")).await;
    let digest = current.headers()["docker-content-digest"].to_str().unwrap();
    assert_eq!(digest, sha256(&to_bytes(&original)));
}

#[tokio::test]
async fn without_auto_create_not_even_managers_create_repositories_by_pushing() {
    let world = World::new(LIFETIME).await;
    let directory = &world.auth.directory;
    directory.set_auto_create(ACME, false).await.unwrap();
    let fresh = "acme/team/fresh";
    for who in [Manager, Admin, Lead] {
        denied(upload(&world.as_user(who), fresh, b"x").await).await;
    }
    let (bearer, claims) = world
        .bearer(Manager, &[format!("repository:{fresh}:pull,push")])
        .await;
    assert_eq!(claims["access"], pull_claim(fresh));
    unauthorized(upload(&bearer, fresh, b"x").await).await;
    assert!(directory.repo_settings(fresh).is_none());
    // Existing repositories still take pushes, and turning it back on allows creation.
    let manager = world.as_user(Manager);
    assert_eq!(
        upload(&manager, TEAM_APP, b"x").await.status(),
        StatusCode::CREATED
    );
    directory.set_auto_create(ACME, true).await.unwrap();
    assert_eq!(
        upload(&manager, fresh, b"x").await.status(),
        StatusCode::CREATED
    );
    assert!(directory.repo_settings(fresh).is_some());
}

#[tokio::test]
async fn unauthorised_callers_cannot_tell_private_repositories_from_missing_ones() {
    let world = World::new(LIFETIME).await;
    const MISSING: &str = "acme/team/zzz";
    let mut tokens = Vec::new();
    for repository in [TEAM_APP, MISSING] {
        let scopes = ["pull", "push", "delete"].map(|a| format!("repository:{repository}:{a}"));
        let (client, claims) = world.bearer(Nobody, &scopes).await;
        assert_eq!(claims["access"], json!([]), "{repository}");
        tokens.push(client);
    }
    let callers = [
        (
            "anonymous",
            [world.registry.clone(), world.registry.clone()],
            ACME_MOUNTS,
        ),
        (
            "nobody",
            [world.as_user(Nobody), world.as_user(Nobody)],
            ACME_MOUNTS,
        ),
        (
            "outsider",
            [world.as_user(Outsider), world.as_user(Outsider)],
            BOLT_MOUNTS,
        ),
        (
            "nobody's tokens",
            [tokens[0].clone(), tokens[1].clone()],
            ACME_MOUNTS,
        ),
    ];
    for (caller, [for_existing, for_missing], mounts) in callers {
        assert_eq!(
            answers(&for_existing, TEAM_APP, mounts).await,
            answers(&for_missing, MISSING, mounts).await,
            "{caller}"
        );
    }
}

/// Everything a caller sees of the answers about `repository` (reads, writes, deletes and
/// mounting from it into `mounts`), with its name replaced so repositories can be compared.
async fn answers(client: &Registry, repository: &str, mounts: &str) -> Vec<String> {
    let image = Image::new(TEAM_APP);
    let layer = layer(&image);
    let mount = format!("/v2/{mounts}/blobs/uploads/?mount={layer}&from={repository}");
    let mut seen = Vec::new();
    for response in [
        client.get(&format!("/v2/{repository}/tags/list")).await,
        client.get(&format!("/v2/{repository}/manifests/v1")).await,
        client.head(&format!("/v2/{repository}/manifests/v1")).await,
        client.get(&format!("/v2/{repository}/blobs/{layer}")).await,
        client
            .head(&format!("/v2/{repository}/blobs/{layer}"))
            .await,
        upload(client, repository, b"probe").await,
        client
            .put_manifest(repository, "probe", &image.manifest)
            .await,
        client
            .delete(&format!("/v2/{repository}/manifests/v1"))
            .await,
        client.send(Method::POST, &mount).await,
    ] {
        let (outcome, body) = observe(response).await;
        let body = String::from_utf8_lossy(&body);
        seen.push(format!("{outcome:?} {body}").replace(repository, "<repo>"));
    }
    seen
}

#[tokio::test]
async fn admin_api_keeps_administrators_inside_their_tenancy() {
    let world = World::new(LIFETIME).await;
    let (admin, root, reader, lead) = (
        world.as_user(Admin),
        world.as_user(Root),
        world.as_user(Reader),
        world.as_user(Lead),
    );
    let bolt_token = format!(
        "/admin/tenancies/bolt/tokens/{}?user=admin",
        world.logins[&Outsider].token_id
    );
    let new_tenancy = json!({"namespace": "delta"});
    // An acme administrator can do nothing to bolt, nor create tenancies or rotate keys.
    for (method, path, body) in [
        (Method::GET, "/admin/tenancies/bolt/users", json!(null)),
        (
            Method::POST,
            "/admin/tenancies/bolt/users",
            json!({"name": "intruder"}),
        ),
        (
            Method::POST,
            "/admin/tenancies/bolt/groups",
            json!({"name": "Intruders"}),
        ),
        (
            Method::POST,
            "/admin/tenancies/bolt/groups/Administrators/members",
            json!({"user": "admin"}),
        ),
        (
            Method::POST,
            "/admin/tenancies/bolt/tokens",
            json!({"user": "admin"}),
        ),
        (
            Method::POST,
            "/admin/tenancies/bolt/policies",
            json!({"statement": POLICY}),
        ),
        (
            Method::POST,
            "/admin/tenancies/bolt/repositories",
            json!({"name": "secret", "public": true}),
        ),
        (
            Method::PUT,
            "/admin/tenancies/bolt/settings",
            json!({"auto_create_repos": false}),
        ),
        (Method::DELETE, &bolt_token, json!(null)),
        (Method::POST, "/admin/tenancies", new_tenancy.clone()),
        (Method::POST, "/admin/signing-keys/rotate", json!(null)),
    ] {
        let response = send_json(&admin, method, path, &body).await;
        denied(response).await;
    }
    let directory = &world.auth.directory;
    assert!(directory.repo_settings(SECRET).is_some_and(|s| !s.public));
    assert_eq!(directory.tokens(BOLT, "admin").unwrap().len(), 1);
    let whoami = json_body(admin.get("/admin/whoami").await).await;
    assert_eq!(whoami["administers"], json!([ACME]));
    let users = json_body(admin.get("/admin/tenancies/acme/users").await).await;
    assert!(
        users.as_array().unwrap().contains(&json!("nobody")),
        "{users}"
    );
    // System administrators administer every tenancy and may create tenancies.
    let created = send_json(&root, Method::POST, "/admin/tenancies", &new_tenancy).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let bolt_users = root.get("/admin/tenancies/bolt/users").await;
    assert_eq!(bolt_users.status(), StatusCode::OK);
    let rotated = root.send(Method::POST, "/admin/signing-keys/rotate").await;
    assert_eq!(rotated.status(), StatusCode::OK);
    // Other users manage their own tokens, and the settings of repositories they manage.
    let users = reader.get("/admin/tenancies/acme/users").await;
    denied(users).await;
    let tokens = "/admin/tenancies/acme/tokens";
    let own = send_json(&reader, Method::POST, tokens, &json!({"user": "reader"})).await;
    assert_eq!(own.status(), StatusCode::CREATED);
    let theirs = send_json(&reader, Method::POST, tokens, &json!({"user": "nobody"})).await;
    denied(theirs).await;
    let repositories = "/admin/tenancies/acme/repositories";
    let managed = json!({"name": "team/app", "immutable": true});
    let response = send_json(&lead, Method::POST, repositories, &managed).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(
        directory
            .repo_settings(TEAM_APP)
            .is_some_and(|s| s.immutable)
    );
    let used = json!({"name": "site", "public": false});
    let response = send_json(&lead, Method::POST, repositories, &used).await;
    denied(response).await;
    assert!(directory.repo_settings(SITE).is_some_and(|s| s.public));
    // Without credentials: a Basic challenge.
    let anonymous = world.registry.get("/admin/whoami").await;
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    unauthorized(anonymous).await;
}

#[tokio::test]
async fn policy_errors_answer_400_with_line_and_column() {
    let world = World::new(LIFETIME).await;
    let admin = world.as_user(Admin);
    let statement = "# comment\nallow group Readers to read repos in tenancy\nallow group Readers to fly repos in tenancy";
    let body = json!({"statement": statement});
    let response = send_json(
        &admin,
        Method::POST,
        "/admin/tenancies/acme/policies",
        &body,
    )
    .await;
    let error = refusal(response, StatusCode::BAD_REQUEST, "INVALID").await;
    assert_eq!(error["detail"], json!({"line": 3, "column": 24}), "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("line 3, column 24"),
        "{error}"
    );
    // Nothing of the document was stored.
    let policies = json_body(admin.get("/admin/tenancies/acme/policies").await).await;
    assert_eq!(
        policies.as_array().unwrap().len(),
        POLICY.lines().filter(|l| l.starts_with("allow")).count()
    );
}

#[tokio::test]
async fn openapi_document_describes_every_admin_route() {
    let world = World::new(LIFETIME).await;
    let response = world.registry.get("/admin/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document = json_body(response).await;
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().unwrap().keys();
            methods
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin/mod.rs"))
        .expect("admin router source");
    let routed = routes(&source);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without documentation: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
}

/// HTTP methods, as OpenAPI path items and axum method routers name them.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(path, method)` of every `.route("<path>", <method>(...).<method>(...))` in the body of
/// `fn router` of the admin module.
fn routes(source: &str) -> BTreeSet<(String, String)> {
    let start = source.find("pub fn router(").expect("fn router");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("end of fn router")];
    let mut routes = BTreeSet::new();
    for route in body.split(".route(").skip(1) {
        let path = route.split('"').nth(1).expect("quoted route path");
        for method in METHODS {
            let called = route
                .match_indices(&format!("{method}("))
                .any(|(at, _)| !route[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            if called {
                routes.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    assert!(routes.len() > 10, "parsed too few routes: {routes:?}");
    routes
}
