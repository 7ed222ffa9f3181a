//! The admin API (JSON over HTTP, described by `/admin/openapi.json`): tenancies, users,
//! groups, auth tokens, policies, repository settings and signing-key rotation. Callers
//! authenticate with Basic credentials (`<namespace>/<user>` + auth token); tenancy
//! administrators manage their tenancy, system-tenancy administrators every tenancy, users
//! with `manage` on a repository its settings, and any user may manage their own auth tokens.
//! Signing keys and image signatures live in [`keys`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use minato_iam::{IamError, Principal, RepoSettings, Resource, Verb};
use minato_sign::Vault;
use minato_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Auth, decode_basic};
use crate::error::{ApiError, Code};
use crate::server::Peer;

mod keys;

pub(crate) use keys::vault_error;

/// The OpenAPI document of this API.
const OPENAPI: &str = include_str!("openapi.json");

/// What admin handlers work on: identities, the registry content (signatures are stored as
/// artifacts) and the key vault.
#[derive(Clone)]
pub struct AdminState {
    /// Authentication, the directory and the audit log.
    pub auth: Arc<Auth>,
    /// Registry content.
    pub store: Arc<Store>,
    /// Signing keys of every tenancy.
    pub vault: Arc<Vault>,
}

impl FromRef<AdminState> for Arc<Auth> {
    fn from_ref(state: &AdminState) -> Arc<Auth> {
        state.auth.clone()
    }
}

/// Routes of the admin API.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/openapi.json", get(openapi))
        .route("/admin/whoami", get(whoami))
        .route("/admin/tenancies", get(list_tenancies).post(create_tenancy))
        .route(
            "/admin/tenancies/{namespace}/settings",
            put(update_settings),
        )
        .route(
            "/admin/tenancies/{namespace}/users",
            get(list_users).post(create_user),
        )
        .route(
            "/admin/tenancies/{namespace}/groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/admin/tenancies/{namespace}/groups/{group}/members",
            post(add_member),
        )
        .route(
            "/admin/tenancies/{namespace}/tokens",
            get(list_tokens).post(create_token),
        )
        .route(
            "/admin/tenancies/{namespace}/tokens/{id}",
            delete(revoke_token),
        )
        .route(
            "/admin/tenancies/{namespace}/policies",
            get(list_policies).post(add_policy),
        )
        .route(
            "/admin/tenancies/{namespace}/policies/{id}",
            delete(delete_policy),
        )
        .route(
            "/admin/tenancies/{namespace}/repositories",
            get(list_repositories).post(put_repository),
        )
        .route("/admin/signing-keys/rotate", post(rotate_signing_key))
        .route(
            "/admin/tenancies/{namespace}/keys",
            get(keys::list_keys).post(keys::create_key),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}",
            get(keys::get_key),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}/rotate",
            post(keys::rotate_key),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}/disable",
            post(keys::disable_key),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}/enable",
            post(keys::enable_key),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}/public",
            get(keys::public_keys),
        )
        .route(
            "/admin/tenancies/{namespace}/keys/{name}/sign",
            post(keys::sign),
        )
        .with_state(state)
}

/// A JSON request body whose rejection answers in the API's error shape.
struct JsonBody<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| JsonBody(value))
            .map_err(|e| ApiError::bad_request(Code::Invalid, e.body_text()))
    }
}

/// The `user` query parameter of token requests, refused in the API's error shape.
struct UserQuery {
    user: String,
}

impl<S: Send + Sync> FromRequestParts<S> for UserQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "user")
            .map(|(_, v)| UserQuery {
                user: v.into_owned(),
            })
            .ok_or_else(|| {
                ApiError::bad_request(Code::Invalid, "the user query parameter is required")
            })
    }
}

/// The authenticated caller of an admin request.
struct Caller(Principal);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Auth>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Arc::<Auth>::from_ref(state);
        let basic = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(decode_basic);
        let Some((username, password)) = basic else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthorized,
                "the admin API needs Basic credentials: <tenancy-namespace>/<username> and an auth token",
            )
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"minato admin\"")));
        };
        let peer = parts.extensions.get::<Peer>().map(|p| p.0);
        auth.authenticate(&username, &password, peer).map(Caller)
    }
}

fn iam_error(error: IamError) -> ApiError {
    match error {
        IamError::Name(e) => ApiError::bad_request(Code::Invalid, e.to_string()),
        IamError::Policy(e) => ApiError::bad_request(Code::Invalid, e.to_string())
            .with_detail(json!({"line": e.line, "column": e.column})),
        IamError::NotFound(what) => {
            ApiError::not_found(Code::NotFound, format!("{what} not found"))
        }
        IamError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            Code::Conflict,
            format!("{what} already exists"),
        ),
        IamError::TooManyTokens => {
            ApiError::new(StatusCode::CONFLICT, Code::Conflict, error.to_string())
        }
        IamError::Key(_) | IamError::Database(_) => ApiError::internal(&error),
    }
}

fn denied() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        Code::Denied,
        "you do not administer this tenancy",
    )
}

/// Requires the caller to administer `namespace`.
fn require_admin(auth: &Auth, caller: &Caller, namespace: &str) -> Result<(), ApiError> {
    auth.directory
        .is_admin_of(&caller.0, namespace)
        .then_some(())
        .ok_or_else(denied)
}

/// Requires the caller to administer `namespace` or to be `user` of it.
fn require_admin_or_self(
    auth: &Auth,
    caller: &Caller,
    namespace: &str,
    user: &str,
) -> Result<(), ApiError> {
    let is_self = caller.0.login.namespace == namespace && caller.0.login.user == user;
    if is_self {
        Ok(())
    } else {
        require_admin(auth, caller, namespace)
    }
}

/// Requires the caller to administer `namespace` or to hold `manage` on its repository `repo`.
fn require_manager(
    auth: &Auth,
    caller: &Caller,
    namespace: &str,
    repo: &str,
) -> Result<(), ApiError> {
    let verb = auth
        .directory
        .verb(&caller.0, namespace, Resource::Repos, Some(repo));
    if verb >= Some(Verb::Manage) {
        Ok(())
    } else {
        require_admin(auth, caller, namespace)
    }
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn whoami(State(auth): State<Arc<Auth>>, caller: Caller) -> Json<Value> {
    let administers: Vec<String> = auth
        .directory
        .tenancies()
        .into_iter()
        .filter(|t| auth.directory.is_admin_of(&caller.0, &t.namespace))
        .map(|t| t.namespace)
        .collect();
    Json(json!({
        "username": caller.0.login.to_string(),
        "namespace": caller.0.login.namespace,
        "user": caller.0.login.user,
        "administers": administers,
    }))
}

#[derive(Deserialize)]
struct NewTenancy {
    namespace: Option<String>,
    display_name: Option<String>,
}

async fn create_tenancy(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewTenancy>,
) -> Result<Response, ApiError> {
    if !auth.directory.is_system_admin(&caller.0) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Denied,
            "only administrators of the system tenancy may create tenancies",
        ));
    }
    let namespace = auth
        .directory
        .create_tenancy(body.namespace.as_deref(), body.display_name.as_deref())
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "tenancy.create",
        &caller.0.login.to_string(),
        json!({"namespace": namespace}),
    );
    Ok(created(json!({"namespace": namespace})))
}

async fn list_tenancies(State(auth): State<Arc<Auth>>, caller: Caller) -> Json<Value> {
    let visible: Vec<_> = auth
        .directory
        .tenancies()
        .into_iter()
        .filter(|t| {
            auth.directory.is_admin_of(&caller.0, &t.namespace)
                || t.namespace == caller.0.login.namespace
        })
        .collect();
    Json(json!(visible))
}

#[derive(Deserialize)]
struct Settings {
    auto_create_repos: bool,
}

async fn update_settings(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<Settings>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    auth.directory
        .set_auto_create(&namespace, body.auto_create_repos)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "tenancy.settings",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "auto_create_repos": body.auto_create_repos}),
    );
    Ok(Json(json!({"auto_create_repos": body.auto_create_repos})))
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn create_user(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<Named>,
) -> Result<Response, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    auth.directory
        .create_user(&namespace, &body.name)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "user.create",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "user": body.name}),
    );
    Ok(created(
        json!({"namespace": namespace, "name": body.name, "username": format!("{namespace}/{}", body.name)}),
    ))
}

async fn list_users(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    Ok(Json(json!(
        auth.directory.users(&namespace).map_err(iam_error)?
    )))
}

async fn create_group(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<Named>,
) -> Result<Response, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    auth.directory
        .create_group(&namespace, &body.name)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "group.create",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "group": body.name}),
    );
    Ok(created(json!({"name": body.name, "members": []})))
}

async fn list_groups(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    let groups = auth.directory.groups(&namespace).map_err(iam_error)?;
    Ok(Json(json!(
        groups
            .into_iter()
            .map(|(name, members)| json!({"name": name, "members": members}))
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
struct Member {
    user: String,
}

async fn add_member(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path((namespace, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<Member>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    auth.directory
        .add_to_group(&namespace, &group, &body.user)
        .await
        .map_err(iam_error)?;
    auth.forget_credentials();
    auth.audit.record(
        "group.add-user",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "group": group, "user": body.user}),
    );
    Ok(Json(json!({"group": group, "user": body.user})))
}

#[derive(Deserialize)]
struct NewToken {
    user: String,
    #[serde(default)]
    description: String,
    expires_in_secs: Option<u64>,
}

async fn create_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    require_admin_or_self(&auth, &caller, &namespace, &body.user)?;
    let (info, secret) = auth
        .directory
        .create_token(
            &namespace,
            &body.user,
            &body.description,
            body.expires_in_secs.map(std::time::Duration::from_secs),
        )
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "token.create",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "user": body.user, "token_id": info.id}),
    );
    let mut value = json!(info);
    value["token"] = json!(secret);
    value["username"] = json!(format!("{namespace}/{}", body.user));
    Ok(created(value))
}

async fn list_tokens(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    query: UserQuery,
) -> Result<Json<Value>, ApiError> {
    require_admin_or_self(&auth, &caller, &namespace, &query.user)?;
    Ok(Json(json!(
        auth.directory
            .tokens(&namespace, &query.user)
            .map_err(iam_error)?
    )))
}

async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path((namespace, id)): Path<(String, String)>,
    query: UserQuery,
) -> Result<StatusCode, ApiError> {
    require_admin_or_self(&auth, &caller, &namespace, &query.user)?;
    auth.directory
        .revoke_token(&namespace, &query.user, &id)
        .await
        .map_err(iam_error)?;
    auth.forget_credentials();
    auth.audit.record(
        "token.revoke",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "user": query.user, "token_id": id}),
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewPolicy {
    statement: String,
}

async fn add_policy(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<NewPolicy>,
) -> Result<Response, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    let added = auth
        .directory
        .add_policy(&namespace, &body.statement)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "policy.add",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "statements": added.iter().map(|p| &p.statement).collect::<Vec<_>>()}),
    );
    Ok(created(json!(added)))
}

async fn list_policies(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    Ok(Json(json!(
        auth.directory.policies(&namespace).map_err(iam_error)?
    )))
}

async fn delete_policy(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path((namespace, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(Code::Invalid, format!("policy id {id:?} is not a number"))
    })?;
    auth.directory
        .delete_policy(&namespace, id)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "policy.delete",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "id": id}),
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct RepositoryBody {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    immutable: bool,
}

async fn put_repository(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<RepositoryBody>,
) -> Result<Response, ApiError> {
    require_manager(&auth, &caller, &namespace, &body.name)?;
    let settings = RepoSettings {
        public: body.public,
        immutable: body.immutable,
    };
    auth.directory
        .put_repo(&namespace, &body.name, settings)
        .await
        .map_err(iam_error)?;
    auth.audit.record(
        "repository.update",
        &caller.0.login.to_string(),
        json!({"namespace": namespace, "repository": body.name, "public": body.public, "immutable": body.immutable}),
    );
    Ok(created(
        json!({"name": body.name, "public": body.public, "immutable": body.immutable}),
    ))
}

async fn list_repositories(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&auth, &caller, &namespace)?;
    let repos: BTreeMap<String, RepoSettings> =
        auth.directory.repos(&namespace).map_err(iam_error)?;
    Ok(Json(json!(
        repos
            .into_iter()
            .map(|(name, s)| json!({"name": name, "public": s.public, "immutable": s.immutable}))
            .collect::<Vec<_>>()
    )))
}

async fn rotate_signing_key(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if !auth.directory.is_system_admin(&caller.0) {
        return Err(denied());
    }
    let kid = auth.tokens.rotate().await.map_err(iam_error)?;
    auth.audit.record(
        "signing-key.rotate",
        &caller.0.login.to_string(),
        json!({"kid": kid}),
    );
    Ok(Json(json!({"kid": kid})))
}
