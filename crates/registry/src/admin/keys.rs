//! Handlers of the signing-key endpoints (routed in [`super::router`]) and server-side image
//! signing:
//!
//! - `POST /admin/tenancies/{ns}/keys` creates a key (`manage keys`);
//! - `GET /admin/tenancies/{ns}/keys` and `GET …/keys/{name}` list keys and versions, never
//!   private material (`inspect keys`);
//! - `POST …/keys/{name}/rotate`, `…/disable`, `…/enable` (`manage keys`);
//! - `GET …/keys/{name}/public[?version=V]`: public keys as PEM, for any authenticated user of
//!   the tenancy (verifiers use read-only identities);
//! - `POST …/keys/{name}/sign`: signs an image of the tenancy (`use keys` and pull on the
//!   repository) and stores the signature next to it ([`crate::signatures`]).
//!
//! Tenancy administrators (and system-tenancy administrators) may do everything.

use std::str::FromStr as _;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use minato_iam::{Resource, Verb};
use minato_oci::{Digest, RepositoryName, Tag};
use minato_sign::{KeyAlgorithm, Payload, SigningAlgorithm, VaultError, key_id, key_version_id};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, Caller, JsonBody, created};
use crate::access::Action;
use crate::auth::Caller as RegistryCaller;
use crate::error::{ApiError, Code};
use crate::signatures::{self, SignedImage};

/// Maps a vault error to the API's error shape.
pub(crate) fn vault_error(error: VaultError) -> ApiError {
    match error {
        VaultError::InvalidNamespace(_) | VaultError::InvalidName(_) | VaultError::Algorithm(_) => {
            ApiError::bad_request(Code::Invalid, error.to_string())
        }
        VaultError::AlreadyExists(_) => {
            ApiError::new(StatusCode::CONFLICT, Code::Conflict, error.to_string())
        }
        VaultError::NotFound(_) | VaultError::VersionNotFound(_) => {
            ApiError::not_found(Code::NotFound, error.to_string())
        }
        VaultError::Disabled(_) => {
            ApiError::new(StatusCode::CONFLICT, Code::Denied, error.to_string())
        }
        VaultError::RootKey(_)
        | VaultError::WrongRootKey(_)
        | VaultError::Corrupt(_)
        | VaultError::Crypto(_)
        | VaultError::Io { .. }
        | VaultError::Database(_) => ApiError::internal(&error),
    }
}

/// Requires the caller to administer `namespace` or to hold at least `verb` on its keys.
fn require_keys(
    state: &AdminState,
    caller: &Caller,
    namespace: &str,
    verb: Verb,
) -> Result<(), ApiError> {
    let directory = &state.auth.directory;
    let held = directory.verb(&caller.0, namespace, Resource::Keys, None);
    if held >= Some(verb) || directory.is_admin_of(&caller.0, namespace) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        Code::Denied,
        format!("you may not {} keys in tenancy {namespace}", verb.as_str()),
    ))
}

/// Requires the caller to be a user of `namespace` (or to administer it).
fn require_member(state: &AdminState, caller: &Caller, namespace: &str) -> Result<(), ApiError> {
    if caller.0.login.namespace == namespace
        || state.auth.directory.is_admin_of(&caller.0, namespace)
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        Code::Denied,
        format!("you are not a user of tenancy {namespace}"),
    ))
}

fn audit(state: &AdminState, caller: &Caller, event: &str, detail: Value) {
    state
        .auth
        .audit
        .record(event, &caller.0.login.to_string(), detail);
}

#[derive(Deserialize)]
pub(super) struct NewKey {
    name: String,
    algorithm: String,
}

pub(super) async fn create_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<Response, ApiError> {
    require_keys(&state, &caller, &namespace, Verb::Manage)?;
    let algorithm = KeyAlgorithm::from_str(&body.algorithm)
        .map_err(|e| ApiError::bad_request(Code::Invalid, e.to_string()))?;
    let info = state
        .vault
        .create_key(&namespace, &body.name, algorithm)
        .await
        .map_err(vault_error)?;
    audit(
        &state,
        &caller,
        "key.create",
        json!({"keyId": info.key_id, "algorithm": algorithm.as_str()}),
    );
    Ok(created(json!(info)))
}

pub(super) async fn list_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_keys(&state, &caller, &namespace, Verb::Inspect)?;
    let keys = state.vault.list(&namespace).await.map_err(vault_error)?;
    Ok(Json(json!(keys)))
}

pub(super) async fn get_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_keys(&state, &caller, &namespace, Verb::Inspect)?;
    let key = state
        .vault
        .key(&namespace, &name)
        .await
        .map_err(vault_error)?;
    Ok(Json(json!(key)))
}

pub(super) async fn rotate_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_keys(&state, &caller, &namespace, Verb::Manage)?;
    let info = state
        .vault
        .rotate(&namespace, &name)
        .await
        .map_err(vault_error)?;
    audit(
        &state,
        &caller,
        "key.rotate",
        json!({"keyId": info.key_id, "currentVersion": info.current_version}),
    );
    Ok(Json(json!(info)))
}

/// Body of disable/enable: the whole key, or one version of it.
#[derive(Deserialize, Default)]
pub(super) struct Switch {
    #[serde(default)]
    version: Option<u32>,
}

pub(super) async fn disable_key(
    state: State<AdminState>,
    caller: Caller,
    path: Path<(String, String)>,
    body: OptionalBody<Switch>,
) -> Result<Json<Value>, ApiError> {
    switch_key(state, caller, path, body.0, false).await
}

pub(super) async fn enable_key(
    state: State<AdminState>,
    caller: Caller,
    path: Path<(String, String)>,
    body: OptionalBody<Switch>,
) -> Result<Json<Value>, ApiError> {
    switch_key(state, caller, path, body.0, true).await
}

async fn switch_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    body: Switch,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    require_keys(&state, &caller, &namespace, Verb::Manage)?;
    let info = state
        .vault
        .set_enabled(&namespace, &name, body.version, enabled)
        .await
        .map_err(vault_error)?;
    audit(
        &state,
        &caller,
        if enabled { "key.enable" } else { "key.disable" },
        json!({"keyId": info.key_id, "version": body.version}),
    );
    Ok(Json(json!(info)))
}

/// The `version` query parameter of public-key requests.
pub(super) struct VersionQuery(Option<u32>);

impl<S: Send + Sync> FromRequestParts<S> for VersionQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "version")
            .map(|(_, v)| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(Code::Invalid, format!("version {v:?} is not a number"))
                })
            })
            .transpose()
            .map(VersionQuery)
    }
}

pub(super) async fn public_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    VersionQuery(version): VersionQuery,
) -> Result<Json<Value>, ApiError> {
    require_member(&state, &caller, &namespace)?;
    let key = state
        .vault
        .key(&namespace, &name)
        .await
        .map_err(vault_error)?;
    let mut versions = Vec::new();
    for v in key
        .versions
        .iter()
        .filter(|v| version.is_none_or(|wanted| wanted == v.version))
    {
        let pem = state
            .vault
            .public_key_pem(&namespace, &name, Some(v.version))
            .await
            .map_err(vault_error)?;
        versions.push(json!({
            "version": v.version,
            "keyVersionId": v.key_version_id,
            "state": v.state,
            "publicKeyPem": pem,
        }));
    }
    if let Some(wanted) = version
        && versions.is_empty()
    {
        return Err(vault_error(VaultError::VersionNotFound(key_version_id(
            &namespace, &name, wanted,
        ))));
    }
    Ok(Json(json!({
        "keyId": key.key_id,
        "algorithm": key.algorithm,
        "state": key.state,
        "currentVersion": key.current_version,
        "versions": versions,
    })))
}

/// A JSON body that may be absent (an empty body means the default value).
pub(super) struct OptionalBody<T>(T);

impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> axum::extract::FromRequest<S>
    for OptionalBody<T>
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(Code::Invalid, e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalBody)
            .map_err(|e| ApiError::bad_request(Code::Invalid, e.to_string()))
    }
}

/// Body of a sign request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SignRequest {
    /// Full repository name, `<namespace>/<repo>`.
    repository: String,
    /// Tag or digest of the image manifest.
    reference: String,
    key_version: Option<u32>,
    signing_algorithm: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    metadata: String,
}

pub(super) async fn sign(
    State(state): State<AdminState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<SignRequest>,
) -> Result<Json<Value>, ApiError> {
    let repository = RepositoryName::parse(&body.repository)
        .map_err(|e| ApiError::bad_request(Code::NameInvalid, e.to_string()))?;
    if repository.as_str().split('/').next() != Some(namespace.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Denied,
            format!(
                "keys of tenancy {namespace} sign only repositories of that tenancy, not {repository}"
            ),
        ));
    }
    require_keys(&state, &caller, &namespace, Verb::Use)?;
    let registry_caller = RegistryCaller::User(caller.0.clone());
    if !state
        .auth
        .allows(&registry_caller, repository.as_str(), Action::Pull)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Denied,
            format!("you may not pull {repository}"),
        ));
    }
    let manifest = resolve(&state, &repository, &body.reference).await?;
    let key = state
        .vault
        .key(&namespace, &name)
        .await
        .map_err(vault_error)?;
    let algorithm = match &body.signing_algorithm {
        Some(text) => SigningAlgorithm::from_str(text)
            .map_err(|e| ApiError::bad_request(Code::Invalid, e.to_string()))?,
        None => key.algorithm.default_signing_algorithm(),
    };
    key.algorithm
        .check(algorithm)
        .map_err(|e| ApiError::bad_request(Code::Invalid, e.to_string()))?;
    let version = body.key_version.unwrap_or(key.current_version);
    let payload = Payload {
        description: body.description,
        image_digest: manifest.digest.to_string(),
        kms_key_id: key_id(&namespace, &name),
        kms_key_version_id: key_version_id(&namespace, &name, version),
        metadata: body.metadata,
        region: state.auth.config().service.clone(),
        repository_name: repository.to_string(),
        signing_algorithm: algorithm,
    };
    payload
        .validate()
        .map_err(|e| ApiError::bad_request(Code::Invalid, e.to_string()))?;
    let image = SignedImage {
        repository: &repository,
        manifest: &manifest,
        service: &state.auth.config().service,
        immutable: state
            .auth
            .directory
            .repo_settings(repository.as_str())
            .is_some_and(|s| s.immutable),
    };
    let stored = signatures::sign_and_store(&state.store, &state.vault, &image, &payload).await?;
    audit(
        &state,
        &caller,
        "image.sign",
        json!({
            "repository": repository.as_str(),
            "digest": manifest.digest.as_str(),
            "keyVersionId": stored.signature.key_version_id,
            "signingAlgorithm": algorithm.as_str(),
            "signatureDigest": stored.manifest_digest,
            "cosignTag": stored.cosign_tag,
        }),
    );
    let mut answer = json!({
        "digest": manifest.digest.as_str(),
        "signatureDigest": stored.manifest_digest,
        "kmsKeyId": stored.signature.key_id,
        "kmsKeyVersionId": stored.signature.key_version_id,
        "signingAlgorithm": algorithm.as_str(),
        "message": payload.message(),
        "signature": stored.signature.base64(),
    });
    if let Some(tag) = stored.cosign_tag {
        answer["cosignTag"] = json!(tag);
    }
    Ok(Json(answer))
}

/// The manifest a sign request names, by tag or digest.
async fn resolve(
    state: &AdminState,
    repository: &RepositoryName,
    reference: &str,
) -> Result<std::sync::Arc<minato_store::StoredManifest>, ApiError> {
    let found = if reference.contains(':') {
        let digest: Digest = reference.parse().map_err(|_| {
            ApiError::bad_request(Code::DigestInvalid, format!("invalid digest {reference:?}"))
        })?;
        state.store.manifest_by_digest(repository, &digest).await?
    } else {
        let tag = Tag::parse(reference)
            .map_err(|e| ApiError::bad_request(Code::TagInvalid, e.to_string()))?;
        state
            .store
            .manifest_by_tag(repository, tag.as_str())
            .await?
    };
    found.ok_or_else(|| {
        ApiError::not_found(
            Code::ManifestUnknown,
            format!("no manifest {reference} in {repository}"),
        )
    })
}
