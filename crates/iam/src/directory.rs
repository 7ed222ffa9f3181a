//! The identity directory: tenancies with their users, groups, auth tokens, policies and
//! repository settings, held in memory (every request is authorised without a database read)
//! and written through to `iam.db` on every change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;

use crate::names::{self, Login, NameError};
use crate::policy::{self, PolicyError, Resource, Statement, Subject, Verb};
use crate::token;

/// The group whose members administer their tenancy.
pub const ADMINISTRATORS: &str = "Administrators";
/// Active auth tokens a user may hold.
pub const MAX_TOKENS_PER_USER: usize = 2;

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// A malformed name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A policy that does not parse.
    #[error("invalid policy: {0}")]
    Policy(#[from] PolicyError),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The user already holds the maximum number of tokens.
    #[error("user already has {MAX_TOKENS_PER_USER} auth tokens; revoke one first")]
    TooManyTokens,
    /// Signing-key failure.
    #[error("{0}")]
    Key(String),
    /// Database failure.
    #[error("identity database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Public facts about an auth token (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// Identifier used to revoke it.
    pub id: String,
    /// Free text.
    pub description: String,
    /// Creation time (epoch seconds).
    pub created_at: i64,
    /// Expiry (epoch seconds), if any.
    pub expires_at: Option<i64>,
    /// Last successful use (epoch seconds), if any.
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct TokenRecord {
    info: TokenInfo,
    hash: [u8; 32],
}

impl TokenRecord {
    fn active(&self, at: i64) -> bool {
        self.info.expires_at.is_none_or(|e| e > at)
    }
}

/// Settings of a repository (name relative to its tenancy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RepoSettings {
    /// Anyone may pull without credentials.
    pub public: bool,
    /// Tags may not be moved once set.
    pub immutable: bool,
}

/// A stored policy statement.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRecord {
    /// Identifier used to delete it.
    pub id: i64,
    /// The statement text as given.
    pub statement: String,
    #[serde(skip)]
    parsed: Statement,
}

#[derive(Debug, Default)]
struct Tenancy {
    display_name: String,
    auto_create_repos: bool,
    system: bool,
    users: BTreeMap<String, Vec<TokenRecord>>,
    groups: BTreeMap<String, BTreeSet<String>>,
    policies: Vec<PolicyRecord>,
    repos: BTreeMap<String, RepoSettings>,
}

/// Summary of a tenancy for listings.
#[derive(Debug, Clone, Serialize)]
pub struct TenancyInfo {
    /// Namespace.
    pub namespace: String,
    /// Display name.
    pub display_name: String,
    /// Whether a first push by a manager creates the repository.
    pub auto_create_repos: bool,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Tenancy and user.
    pub login: Login,
    /// The auth token that authenticated it, when one did.
    pub token_id: Option<String>,
}

/// Why credentials were refused (messages are safe to show to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The username lacks the namespace part.
    #[error("{0}")]
    MalformedUsername(String),
    /// Unknown user, wrong or expired token: one message for all, so nothing is revealed.
    #[error(
        "Unauthorized: the username or auth token is incorrect (use <tenancy-namespace>/<username> and an auth token)"
    )]
    BadCredentials,
}

/// The in-memory directory with write-through persistence.
pub struct Directory {
    pool: SqlitePool,
    state: RwLock<HashMap<String, Tenancy>>,
}

type Row3 = (String, String, i64);

impl Directory {
    /// Loads everything from the database.
    pub async fn load(pool: SqlitePool) -> Result<Directory, IamError> {
        let mut state: HashMap<String, Tenancy> = HashMap::new();
        let tenancies: Vec<(String, String, bool, bool)> = sqlx::query_as(
            "SELECT namespace, display_name, auto_create_repos, system FROM tenancies",
        )
        .fetch_all(&pool)
        .await?;
        for (namespace, display_name, auto_create_repos, system) in tenancies {
            state.insert(
                namespace,
                Tenancy {
                    display_name,
                    auto_create_repos,
                    system,
                    ..Tenancy::default()
                },
            );
        }
        let users: Vec<(String, String)> = sqlx::query_as("SELECT namespace, name FROM users")
            .fetch_all(&pool)
            .await?;
        for (namespace, name) in users {
            if let Some(t) = state.get_mut(&namespace) {
                t.users.insert(name, Vec::new());
            }
        }
        let groups: Vec<(String, String)> = sqlx::query_as("SELECT namespace, name FROM groups")
            .fetch_all(&pool)
            .await?;
        for (namespace, name) in groups {
            if let Some(t) = state.get_mut(&namespace) {
                t.groups.insert(name, BTreeSet::new());
            }
        }
        let members: Vec<(String, String, String)> =
            sqlx::query_as("SELECT namespace, group_name, user_name FROM group_members")
                .fetch_all(&pool)
                .await?;
        for (namespace, group, user) in members {
            if let Some(g) = state
                .get_mut(&namespace)
                .and_then(|t| t.groups.get_mut(&group))
            {
                g.insert(user);
            }
        }
        type TokenRow = (
            String,
            String,
            String,
            Vec<u8>,
            String,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let tokens: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, namespace, user_name, hash, description, created_at, expires_at, last_used_at FROM auth_tokens",
        )
        .fetch_all(&pool)
        .await?;
        for (id, namespace, user, hash, description, created_at, expires_at, last_used_at) in tokens
        {
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                continue;
            };
            if let Some(records) = state
                .get_mut(&namespace)
                .and_then(|t| t.users.get_mut(&user))
            {
                records.push(TokenRecord {
                    info: TokenInfo {
                        id,
                        description,
                        created_at,
                        expires_at,
                        last_used_at,
                    },
                    hash,
                });
            }
        }
        let policies: Vec<Row3> =
            sqlx::query_as("SELECT namespace, statement, id FROM policies ORDER BY id")
                .fetch_all(&pool)
                .await?;
        for (namespace, statement, id) in policies {
            let Ok(parsed) = policy::parse_statement(&statement, 1) else {
                tracing::warn!(
                    namespace,
                    id,
                    "skipping stored policy statement that no longer parses"
                );
                continue;
            };
            if let Some(t) = state.get_mut(&namespace) {
                t.policies.push(PolicyRecord {
                    id,
                    statement,
                    parsed,
                });
            }
        }
        let repos: Vec<(String, String, bool, bool)> =
            sqlx::query_as("SELECT namespace, name, public, immutable FROM repositories")
                .fetch_all(&pool)
                .await?;
        for (namespace, name, public, immutable) in repos {
            if let Some(t) = state.get_mut(&namespace) {
                t.repos.insert(name, RepoSettings { public, immutable });
            }
        }
        Ok(Directory {
            pool,
            state: RwLock::new(state),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Tenancy>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Tenancy>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn require_tenancy(&self, namespace: &str) -> Result<(), IamError> {
        self.read()
            .contains_key(namespace)
            .then_some(())
            .ok_or_else(|| IamError::NotFound(format!("tenancy {namespace:?}")))
    }

    fn require_user(&self, namespace: &str, user: &str) -> Result<(), IamError> {
        self.read()
            .get(namespace)
            .is_some_and(|t| t.users.contains_key(user))
            .then_some(())
            .ok_or_else(|| IamError::NotFound(format!("user {namespace}/{user}")))
    }

    /// Whether no tenancy exists yet (first start).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Creates a tenancy with its `Administrators` group; generates the namespace when none
    /// is given. The first tenancy ever created is the system tenancy, whose administrators
    /// may create further tenancies.
    pub async fn create_tenancy(
        &self,
        namespace: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<String, IamError> {
        let namespace = match namespace {
            Some(ns) => {
                names::validate_namespace(ns)?;
                ns.to_owned()
            }
            None => names::generate_namespace(),
        };
        if self.read().contains_key(&namespace) {
            return Err(IamError::Conflict(format!("tenancy {namespace:?}")));
        }
        let system = self.is_empty();
        let display_name = display_name.unwrap_or(&namespace).to_owned();
        let now = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tenancies (namespace, display_name, auto_create_repos, system, created_at) VALUES (?, ?, 1, ?, ?)")
            .bind(&namespace)
            .bind(&display_name)
            .bind(system)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO groups (namespace, name, created_at) VALUES (?, ?, ?)")
            .bind(&namespace)
            .bind(ADMINISTRATORS)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut tenancy = Tenancy {
            display_name,
            auto_create_repos: true,
            system,
            ..Tenancy::default()
        };
        tenancy
            .groups
            .insert(ADMINISTRATORS.to_owned(), BTreeSet::new());
        self.write().insert(namespace.clone(), tenancy);
        Ok(namespace)
    }

    /// Every tenancy.
    pub fn tenancies(&self) -> Vec<TenancyInfo> {
        let mut list: Vec<TenancyInfo> = self
            .read()
            .iter()
            .map(|(namespace, t)| TenancyInfo {
                namespace: namespace.clone(),
                display_name: t.display_name.clone(),
                auto_create_repos: t.auto_create_repos,
            })
            .collect();
        list.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        list
    }

    /// Turns repository creation on first push on or off for a tenancy.
    pub async fn set_auto_create(&self, namespace: &str, enabled: bool) -> Result<(), IamError> {
        self.require_tenancy(namespace)?;
        sqlx::query("UPDATE tenancies SET auto_create_repos = ? WHERE namespace = ?")
            .bind(enabled)
            .bind(namespace)
            .execute(&self.pool)
            .await?;
        if let Some(t) = self.write().get_mut(namespace) {
            t.auto_create_repos = enabled;
        }
        Ok(())
    }

    /// Creates a user (an email is a valid name; `idp/user` for federated users).
    pub async fn create_user(&self, namespace: &str, user: &str) -> Result<(), IamError> {
        names::validate_user(user)?;
        self.require_tenancy(namespace)?;
        if self.require_user(namespace, user).is_ok() {
            return Err(IamError::Conflict(format!("user {namespace}/{user}")));
        }
        sqlx::query("INSERT INTO users (namespace, name, created_at) VALUES (?, ?, ?)")
            .bind(namespace)
            .bind(user)
            .bind(now())
            .execute(&self.pool)
            .await?;
        if let Some(t) = self.write().get_mut(namespace) {
            t.users.insert(user.to_owned(), Vec::new());
        }
        Ok(())
    }

    /// Users of a tenancy.
    pub fn users(&self, namespace: &str) -> Result<Vec<String>, IamError> {
        self.require_tenancy(namespace)?;
        Ok(self.read()[namespace].users.keys().cloned().collect())
    }

    /// Creates a group.
    pub async fn create_group(&self, namespace: &str, group: &str) -> Result<(), IamError> {
        names::validate_group(group)?;
        self.require_tenancy(namespace)?;
        if self.read()[namespace].groups.contains_key(group) {
            return Err(IamError::Conflict(format!("group {group:?}")));
        }
        sqlx::query("INSERT INTO groups (namespace, name, created_at) VALUES (?, ?, ?)")
            .bind(namespace)
            .bind(group)
            .bind(now())
            .execute(&self.pool)
            .await?;
        if let Some(t) = self.write().get_mut(namespace) {
            t.groups.insert(group.to_owned(), BTreeSet::new());
        }
        Ok(())
    }

    /// Groups of a tenancy with their members.
    pub fn groups(&self, namespace: &str) -> Result<BTreeMap<String, BTreeSet<String>>, IamError> {
        self.require_tenancy(namespace)?;
        Ok(self.read()[namespace].groups.clone())
    }

    /// Adds a user to a group (idempotent).
    pub async fn add_to_group(
        &self,
        namespace: &str,
        group: &str,
        user: &str,
    ) -> Result<(), IamError> {
        self.require_user(namespace, user)?;
        if !self.read()[namespace].groups.contains_key(group) {
            return Err(IamError::NotFound(format!("group {group:?}")));
        }
        sqlx::query("INSERT INTO group_members (namespace, group_name, user_name) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(namespace)
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?;
        if let Some(g) = self
            .write()
            .get_mut(namespace)
            .and_then(|t| t.groups.get_mut(group))
        {
            g.insert(user.to_owned());
        }
        Ok(())
    }

    /// Issues an auth token; returns its public facts and the secret, which is never stored.
    pub async fn create_token(
        &self,
        namespace: &str,
        user: &str,
        description: &str,
        expires_in: Option<Duration>,
    ) -> Result<(TokenInfo, String), IamError> {
        self.require_user(namespace, user)?;
        let now = now();
        let active = self.read()[namespace].users[user]
            .iter()
            .filter(|t| t.active(now))
            .count();
        if active >= MAX_TOKENS_PER_USER {
            return Err(IamError::TooManyTokens);
        }
        let secret = token::generate();
        let record = TokenRecord {
            info: TokenInfo {
                id: token::generate_id(),
                description: description.to_owned(),
                created_at: now,
                expires_at: expires_in.map(|d| now + d.as_secs() as i64),
                last_used_at: None,
            },
            hash: token::hash(&secret),
        };
        sqlx::query(
            "INSERT INTO auth_tokens (id, namespace, user_name, hash, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.info.id)
        .bind(namespace)
        .bind(user)
        .bind(record.hash.as_slice())
        .bind(description)
        .bind(now)
        .bind(record.info.expires_at)
        .execute(&self.pool)
        .await?;
        let info = record.info.clone();
        if let Some(records) = self
            .write()
            .get_mut(namespace)
            .and_then(|t| t.users.get_mut(user))
        {
            records.push(record);
        }
        Ok((info, secret))
    }

    /// A user's tokens (without secrets).
    pub fn tokens(&self, namespace: &str, user: &str) -> Result<Vec<TokenInfo>, IamError> {
        self.require_user(namespace, user)?;
        Ok(self.read()[namespace].users[user]
            .iter()
            .map(|t| t.info.clone())
            .collect())
    }

    /// Revokes a token; effective for every later authentication.
    pub async fn revoke_token(
        &self,
        namespace: &str,
        user: &str,
        id: &str,
    ) -> Result<(), IamError> {
        self.require_user(namespace, user)?;
        let result =
            sqlx::query("DELETE FROM auth_tokens WHERE id = ? AND namespace = ? AND user_name = ?")
                .bind(id)
                .bind(namespace)
                .bind(user)
                .execute(&self.pool)
                .await?;
        if result.rows_affected() == 0 {
            return Err(IamError::NotFound(format!("auth token {id:?}")));
        }
        if let Some(records) = self
            .write()
            .get_mut(namespace)
            .and_then(|t| t.users.get_mut(user))
        {
            records.retain(|t| t.info.id != id);
        }
        Ok(())
    }

    /// Checks a login and auth token in memory. Returns the principal and whether the token's
    /// last-used time should be refreshed.
    pub fn authenticate(&self, username: &str, password: &str) -> Result<Principal, AuthError> {
        let login = Login::parse(username).map_err(|e| match e {
            NameError::MissingNamespace(_) => AuthError::MalformedUsername(e.to_string()),
            _ => AuthError::BadCredentials,
        })?;
        let now = now();
        let state = self.read();
        let records = state
            .get(&login.namespace)
            .and_then(|t| t.users.get(&login.user))
            .ok_or(AuthError::BadCredentials)?;
        // Compare against every token so timing does not tell which one matched.
        let mut matched = None;
        for record in records {
            if token::matches(password, &record.hash) && record.active(now) {
                matched = Some(record.info.id.clone());
            }
        }
        let token_id = matched.ok_or(AuthError::BadCredentials)?;
        Ok(Principal {
            login,
            token_id: Some(token_id),
        })
    }

    /// Whether the principal's token (if any) is still valid, e.g. for refresh-token grants.
    pub fn principal_valid(&self, principal: &Principal) -> bool {
        let state = self.read();
        let Some(records) = state
            .get(&principal.login.namespace)
            .and_then(|t| t.users.get(&principal.login.user))
        else {
            return false;
        };
        principal
            .token_id
            .as_ref()
            .is_none_or(|id| records.iter().any(|r| &r.info.id == id && r.active(now())))
    }

    /// Records a successful use of a token (best effort).
    pub async fn touch_token(&self, namespace: &str, user: &str, id: &str) {
        let now = now();
        if let Some(record) = self
            .write()
            .get_mut(namespace)
            .and_then(|t| t.users.get_mut(user))
            .and_then(|records| records.iter_mut().find(|r| r.info.id == id))
        {
            record.info.last_used_at = Some(now);
        }
        if let Err(e) = sqlx::query("UPDATE auth_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "could not record token use");
        }
    }

    /// Adds the statements of a policy text (one per line); all or none are stored.
    pub async fn add_policy(
        &self,
        namespace: &str,
        text: &str,
    ) -> Result<Vec<PolicyRecord>, IamError> {
        self.require_tenancy(namespace)?;
        let statements = policy::parse_policy(text)?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut tx = self.pool.begin().await?;
        let mut added = Vec::new();
        for (parsed, line) in statements.into_iter().zip(lines) {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO policies (namespace, statement, created_at) VALUES (?, ?, ?) RETURNING id",
            )
            .bind(namespace)
            .bind(line)
            .bind(now())
            .fetch_one(&mut *tx)
            .await?;
            added.push(PolicyRecord {
                id,
                statement: line.to_owned(),
                parsed,
            });
        }
        tx.commit().await?;
        if let Some(t) = self.write().get_mut(namespace) {
            t.policies.extend(added.iter().cloned());
        }
        Ok(added)
    }

    /// Policy statements of a tenancy.
    pub fn policies(&self, namespace: &str) -> Result<Vec<PolicyRecord>, IamError> {
        self.require_tenancy(namespace)?;
        Ok(self.read()[namespace].policies.clone())
    }

    /// Removes one statement.
    pub async fn delete_policy(&self, namespace: &str, id: i64) -> Result<(), IamError> {
        self.require_tenancy(namespace)?;
        let result = sqlx::query("DELETE FROM policies WHERE id = ? AND namespace = ?")
            .bind(id)
            .bind(namespace)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(IamError::NotFound(format!("policy {id}")));
        }
        if let Some(t) = self.write().get_mut(namespace) {
            t.policies.retain(|p| p.id != id);
        }
        Ok(())
    }

    /// Creates or updates a repository's settings (`repo` relative to the namespace).
    pub async fn put_repo(
        &self,
        namespace: &str,
        repo: &str,
        settings: RepoSettings,
    ) -> Result<(), IamError> {
        self.require_tenancy(namespace)?;
        minato_oci::RepositoryName::parse(&format!("{namespace}/{repo}"))
            .map_err(|e| IamError::Name(NameError::User(e.to_string())))?;
        sqlx::query(
            "INSERT INTO repositories (namespace, name, public, immutable, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (namespace, name) DO UPDATE SET public = excluded.public, immutable = excluded.immutable",
        )
        .bind(namespace)
        .bind(repo)
        .bind(settings.public)
        .bind(settings.immutable)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if let Some(t) = self.write().get_mut(namespace) {
            t.repos.insert(repo.to_owned(), settings);
        }
        Ok(())
    }

    /// Repositories of a tenancy with their settings.
    pub fn repos(&self, namespace: &str) -> Result<BTreeMap<String, RepoSettings>, IamError> {
        self.require_tenancy(namespace)?;
        Ok(self.read()[namespace].repos.clone())
    }

    /// Settings of a repository given by full name (`<namespace>/<repo>`), if it is known.
    pub fn repo_settings(&self, full_name: &str) -> Option<RepoSettings> {
        let (namespace, repo) = full_name.split_once('/')?;
        self.read().get(namespace)?.repos.get(repo).copied()
    }

    /// Whether the tenancy of `full_name` creates repositories on first push.
    pub fn auto_creates(&self, full_name: &str) -> bool {
        full_name
            .split_once('/')
            .and_then(|(ns, _)| self.read().get(ns).map(|t| t.auto_create_repos))
            .unwrap_or(false)
    }

    /// The strongest verb `principal` holds on `resource` in tenancy `namespace`, for the
    /// repository `repo` (relative name; `None` for tenancy-wide questions such as catalog).
    pub fn verb(
        &self,
        principal: &Principal,
        namespace: &str,
        resource: Resource,
        repo: Option<&str>,
    ) -> Option<Verb> {
        if principal.login.namespace != namespace {
            return None;
        }
        let state = self.read();
        let tenancy = state.get(namespace)?;
        let user = &principal.login.user;
        tenancy.users.get(user)?;
        let member = |group: &str| tenancy.groups.get(group).is_some_and(|m| m.contains(user));
        if member(ADMINISTRATORS) {
            return Some(Verb::Manage);
        }
        tenancy
            .policies
            .iter()
            .map(|p| &p.parsed)
            .filter(|s| s.resource == resource)
            .filter(|s| match &s.subject {
                Subject::AnyUser => true,
                Subject::Group(g) => member(g),
            })
            .filter(|s| repo.is_none_or(|r| s.target.covers(r)))
            .map(|s| s.verb)
            .max()
    }

    /// Whether the principal administers `namespace` (or, for the system tenancy's
    /// administrators, every tenancy).
    pub fn is_admin_of(&self, principal: &Principal, namespace: &str) -> bool {
        let state = self.read();
        let Some(home) = state.get(&principal.login.namespace) else {
            return false;
        };
        let admin = home
            .groups
            .get(ADMINISTRATORS)
            .is_some_and(|m| m.contains(&principal.login.user))
            && home.users.contains_key(&principal.login.user);
        admin && (principal.login.namespace == namespace || home.system)
    }

    /// Whether the principal is an administrator of the system tenancy.
    pub fn is_system_admin(&self, principal: &Principal) -> bool {
        self.read()
            .get(&principal.login.namespace)
            .is_some_and(|t| t.system)
            && self.is_admin_of(principal, &principal.login.namespace)
    }
}
