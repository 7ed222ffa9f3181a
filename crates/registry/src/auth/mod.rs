//! Tenancy authentication and authorisation for the registry API: Basic credentials
//! (`<namespace>/<user>` + auth token, or `BEARER_TOKEN` + registry token), Bearer registry
//! tokens, brute-force throttling, the token endpoint and repository policies.
//!
//! Nothing here reads the database on the request path: bearer tokens are verified by
//! signature (and cached by their text), Basic credentials are checked against the in-memory
//! directory once and cached briefly.

pub mod scope;
pub mod token_endpoint;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use minato_iam::audit::AuditLog;
use minato_iam::jwt::{Claims, TokenService};
use minato_iam::throttle::Throttle;
use minato_iam::{AuthError, Directory, Login, Principal, RepoSettings, Resource, Verb};
use minato_oci::RepositoryName;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use crate::access::{AccessControl, AccessDecision, AccessRequest, Action, CheckFuture, Grant};
use crate::error::{ApiError, Code};

/// Username that carries a registry token as its password (managed-registry convention).
pub const BEARER_USERNAME: &str = "BEARER_TOKEN";

/// Settings of the authentication layer.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Full URL of the token endpoint, announced in challenges.
    pub realm: String,
    /// Service name (the registry host), announced in challenges and checked in tokens.
    pub service: String,
    /// How long verified Basic credentials are remembered.
    pub credential_cache_ttl: Duration,
    /// Failed logins per user name per minute before it is blocked.
    pub failures_per_user: u32,
    /// Failed logins per client address per minute before it is blocked.
    pub failures_per_address: u32,
}

impl AuthConfig {
    /// Settings for a registry reachable at `public_url`.
    pub fn for_public_url(public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        let service = base
            .split_once("://")
            .map_or(base, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or(base)
            .to_owned();
        AuthConfig {
            realm: format!("{base}/20180419/docker/token"),
            service,
            credential_cache_ttl: Duration::from_secs(30),
            failures_per_user: 10,
            failures_per_address: 50,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user authenticated with an auth token (Basic).
    User(Principal),
    /// A registry token.
    Token(Arc<Claims>),
}

/// The authentication and authorisation engine.
pub struct Auth {
    /// The identity directory.
    pub directory: Arc<Directory>,
    /// Registry token signer.
    pub tokens: Arc<TokenService>,
    /// Audit log.
    pub audit: Arc<AuditLog>,
    config: AuthConfig,
    credentials: Cache<[u8; 32], (Principal, Instant)>,
    verified: Cache<String, Arc<Claims>>,
    user_failures: Throttle,
    address_failures: Throttle,
}

impl Auth {
    /// Builds the engine.
    pub fn new(
        directory: Arc<Directory>,
        tokens: Arc<TokenService>,
        audit: Arc<AuditLog>,
        config: AuthConfig,
    ) -> Self {
        let window = Duration::from_secs(60);
        Auth {
            user_failures: Throttle::new(config.failures_per_user, window),
            address_failures: Throttle::new(config.failures_per_address, window),
            directory,
            tokens,
            audit,
            config,
            credentials: Cache::new(10_000),
            verified: Cache::new(10_000),
        }
    }

    /// Settings in force.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Drops every cached credential, so a revocation takes effect for the next request.
    pub fn forget_credentials(&self) {
        self.credentials.clear();
    }

    /// A 401 with the Bearer challenge for `scope` (and an `error` hint when given).
    pub fn challenge(&self, scope: Option<&str>, error: Option<&str>, message: &str) -> ApiError {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.config.realm, self.config.service
        );
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer")),
        )
    }

    /// Verifies a registry token (cached by its text until it expires).
    pub fn verify_token(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        let now = minato_iam::directory::now();
        if let Some(claims) = self.verified.get(token)
            && claims.exp > now
        {
            return Ok(claims);
        }
        let claims = self
            .tokens
            .verify(token)
            .map_err(|e| self.challenge(None, Some("invalid_token"), &e.to_string()))?;
        if claims.typ.is_some() || claims.aud != self.config.service {
            return Err(self.challenge(
                None,
                Some("invalid_token"),
                "token not valid for this registry",
            ));
        }
        let claims = Arc::new(claims);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Checks a login and auth token, with throttling, caching and auditing.
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Principal, ApiError> {
        let address = peer.map(|p| p.ip().to_string()).unwrap_or_default();
        if let Some(wait) = self
            .user_failures
            .blocked_for(username)
            .or_else(|| self.address_failures.blocked_for(&address))
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::Toomanyrequests,
                "too many failed logins; try again later",
            )
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            ));
        }
        let key: [u8; 32] = {
            let mut hasher = Sha256::new();
            hasher.update(username.as_bytes());
            hasher.update([0]);
            hasher.update(password.as_bytes());
            hasher.finalize().into()
        };
        if let Some((principal, at)) = self.credentials.get(&key)
            && at.elapsed() < self.config.credential_cache_ttl
        {
            return Ok(principal);
        }
        match self.directory.authenticate(username, password) {
            Ok(principal) => {
                self.user_failures.succeed(username);
                self.credentials
                    .insert(key, (principal.clone(), Instant::now()));
                self.audit.record(
                    "login.success",
                    username,
                    serde_json::json!({"address": address}),
                );
                if let Some(id) = principal.token_id.clone() {
                    let directory = self.directory.clone();
                    let login = principal.login.clone();
                    tokio::spawn(async move {
                        directory
                            .touch_token(&login.namespace, &login.user, &id)
                            .await;
                    });
                }
                Ok(principal)
            }
            Err(error) => {
                self.user_failures.fail(username);
                self.address_failures.fail(&address);
                self.audit.record(
                    "login.failure",
                    username,
                    serde_json::json!({"address": address, "reason": error.to_string()}),
                );
                let message = match &error {
                    AuthError::MalformedUsername(m) => m.clone(),
                    AuthError::BadCredentials => error.to_string(),
                };
                Err(self.challenge(None, None, &message))
            }
        }
    }

    /// Identifies the caller from the `Authorization` header.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let text = value
            .to_str()
            .map_err(|_| self.challenge(None, None, "malformed Authorization header"))?;
        let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.verify_token(credentials.trim()).map(Caller::Token);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(self.challenge(None, None, "unsupported authorization scheme"));
        }
        let (username, password) = decode_basic(credentials)
            .ok_or_else(|| self.challenge(None, None, "malformed Basic credentials"))?;
        self.login(&username, &password, peer)
    }

    /// Checks a username and password: a login with an auth token, or [`BEARER_USERNAME`]
    /// with a registry token.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, ApiError> {
        if username == BEARER_USERNAME {
            return self.verify_token(password).map(Caller::Token);
        }
        self.authenticate(username, password, peer)
            .map(Caller::User)
    }

    /// The strongest verb a caller holds on a repository (by full name), counting public
    /// repositories as readable by everyone.
    pub fn repository_verb(&self, caller: &Caller, repository: &str) -> Option<Verb> {
        let (namespace, repo) = repository.split_once('/')?;
        let public = self
            .directory
            .repo_settings(repository)
            .is_some_and(|s| s.public)
            .then_some(Verb::Read);
        let principal = match caller {
            Caller::Anonymous => None,
            Caller::User(p) => Some(p.clone()),
            Caller::Token(claims) => token_principal(claims),
        };
        let granted = principal.and_then(|p| {
            self.directory
                .verb(&p, namespace, Resource::Repos, Some(repo))
        });
        granted.max(public)
    }

    /// Whether `caller` may perform `action` on `repository`, as a user (Basic or the subject
    /// of a token when the token's own grants are not the question).
    fn user_may(&self, caller: &Caller, repository: &str, action: Action) -> bool {
        let verb = self.repository_verb(caller, repository);
        match action {
            Action::List => verb >= Some(Verb::Inspect),
            Action::Pull => verb >= Some(Verb::Read),
            Action::Push => {
                if self.directory.repo_settings(repository).is_some() {
                    verb >= Some(Verb::Use)
                } else {
                    verb >= Some(Verb::Manage) && self.directory.auto_creates(repository)
                }
            }
            Action::Delete => verb >= Some(Verb::Manage),
            Action::Ping | Action::Catalog => !matches!(caller, Caller::Anonymous),
        }
    }

    /// Whether a registry token allows `action` on `repository`.
    fn token_allows(&self, claims: &Arc<Claims>, repository: &str, action: Action) -> bool {
        // A tenancy-wide pull grant speaks for its subject: it allows exactly the pulls the
        // subject's policies allow right now.
        if matches!(action, Action::Pull | Action::List)
            && scope::claims_allow_tenancy_pull(claims, repository)
            && self.user_may(&Caller::Token(claims.clone()), repository, action)
        {
            return true;
        }
        let wanted = match action {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::List => {
                return scope::claims_allow(claims, "repository", repository, "pull")
                    || self.user_may(&Caller::Token(claims.clone()), repository, Action::List);
            }
            Action::Ping => return true,
            Action::Catalog => return scope::claims_allow(claims, "registry", "catalog", "*"),
        };
        scope::claims_allow(claims, "repository", repository, wanted)
    }

    /// Whether `caller` may perform `action` on `repository`.
    pub fn allows(&self, caller: &Caller, repository: &str, action: Action) -> bool {
        match caller {
            Caller::Token(claims) => self.token_allows(claims, repository, action),
            _ => self.user_may(caller, repository, action),
        }
    }

    /// Creates the settings record of a repository on its first push.
    async fn create_on_first_push(
        &self,
        caller: &Caller,
        repository: &str,
    ) -> Result<(), ApiError> {
        if self.directory.repo_settings(repository).is_some() {
            return Ok(());
        }
        let Some((namespace, repo)) = repository.split_once('/') else {
            return Ok(());
        };
        self.directory
            .put_repo(namespace, repo, RepoSettings::default())
            .await
            .map_err(|e| ApiError::internal(&e))?;
        self.audit.record(
            "repository.create",
            &caller_name(caller),
            serde_json::json!({"repository": repository, "on": "first push"}),
        );
        Ok(())
    }

    fn deny(&self, caller: &Caller, repository: Option<&str>, action: Action) -> ApiError {
        let scope = match (repository, action) {
            (_, Action::Catalog) => Some("registry:catalog:*".to_owned()),
            (Some(r), Action::Push) => Some(format!("repository:{r}:pull,push")),
            (Some(r), Action::Delete) => Some(format!("repository:{r}:delete")),
            (Some(r), _) => Some(format!("repository:{r}:pull")),
            (None, _) => None,
        };
        match caller {
            Caller::Anonymous => self.challenge(
                scope.as_deref(),
                None,
                "authentication required: log in as <tenancy-namespace>/<username> with an auth token (anonymous users may only pull public repositories)",
            ),
            Caller::Token(claims) if claims.sub.is_empty() => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Denied,
                "Anonymous users are only allowed read access on public repos",
            ),
            Caller::Token(_) => self.challenge(
                scope.as_deref(),
                Some("insufficient_scope"),
                "the registry token does not grant this access",
            ),
            Caller::User(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Denied,
                "requested access to the resource is denied",
            ),
        }
    }

    async fn check_request(
        self: Arc<Self>,
        request: &AccessRequest<'_>,
    ) -> Result<Grant, ApiError> {
        let caller = self.identify(request.headers, request.peer)?;
        let repository = request.route.repository().map(RepositoryName::as_str);
        let allowed = match (request.action, repository) {
            (Action::Ping, _) | (Action::Catalog, _) => match &caller {
                Caller::Anonymous => false,
                Caller::Token(claims) => {
                    request.action == Action::Ping || self.token_allows(claims, "", Action::Catalog)
                }
                Caller::User(_) => true,
            },
            (action, Some(repository)) => self.allows(&caller, repository, action),
            (_, None) => false,
        };
        if !allowed {
            return Err(self.deny(&caller, repository, request.action));
        }
        if let (Action::Push, Some(repository)) = (request.action, repository) {
            self.create_on_first_push(&caller, repository).await?;
        }
        if request.action == Action::Delete {
            self.audit.record(
                "delete",
                &caller_name(&caller),
                serde_json::json!({"path": request.uri.path()}),
            );
        }
        Ok(Grant(Arc::new(CallerGrant {
            auth: self.clone(),
            caller,
        })))
    }
}

/// The principal a registry token speaks for (its subject), without a token id.
fn token_principal(claims: &Claims) -> Option<Principal> {
    Login::parse(&claims.sub).ok().map(|login| Principal {
        login,
        token_id: None,
    })
}

fn caller_name(caller: &Caller) -> String {
    match caller {
        Caller::Anonymous => "anonymous".to_owned(),
        Caller::User(p) => p.login.to_string(),
        Caller::Token(c) => c.sub.clone(),
    }
}

/// Splits `base64(user:password)`.
pub fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// What an authenticated request may see beyond itself.
struct CallerGrant {
    auth: Arc<Auth>,
    caller: Caller,
}

impl AccessDecision for CallerGrant {
    fn can_list(&self, repository: &str) -> bool {
        self.auth.repository_verb(&self.caller, repository) >= Some(Verb::Inspect)
    }

    fn can_mount_from(&self, repository: &RepositoryName) -> bool {
        self.auth
            .allows(&self.caller, repository.as_str(), Action::Pull)
    }

    fn immutable_tags(&self, repository: &RepositoryName) -> bool {
        self.auth
            .directory
            .repo_settings(repository.as_str())
            .is_some_and(|s| s.immutable)
    }
}

/// [`AccessControl`] backed by the tenancy directory.
#[derive(Clone)]
pub struct TenancyAccess(pub Arc<Auth>);

impl AccessControl for TenancyAccess {
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> CheckFuture<'a> {
        Box::pin(self.0.clone().check_request(request))
    }
}
