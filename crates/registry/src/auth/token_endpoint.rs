//! The token endpoint of the Docker token protocol, at `/20180419/docker/token` (the path
//! managed registries use): `GET` with Basic credentials or anonymous (docker, skopeo,
//! podman), `POST` with `grant_type=password` or `refresh_token` (containerd, docker).
//! The access granted is the requested scope intersected with what policy allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use minato_iam::jwt::Access;
use serde::Serialize;

use super::scope::{self, Scope};
use super::{Auth, Caller, token_principal};
use crate::access::Action;
use crate::error::ApiError;
use crate::server::Peer;

#[derive(Serialize)]
struct TokenResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Which actions of a requested scope the caller gets.
fn grant(auth: &Auth, caller: &Caller, requested: &Scope) -> Option<Access> {
    let actions: Vec<String> = match requested.kind.as_str() {
        "repository" if scope::tenancy_wildcard(&requested.name).is_some() => requested
            .actions
            .iter()
            .filter(|a| a.as_str() == "pull" && !caller_subject(caller).is_empty())
            .cloned()
            .collect(),
        "repository" => {
            let allowed = |action| auth.allows(caller, &requested.name, action);
            requested
                .actions
                .iter()
                .filter(|a| match a.as_str() {
                    "pull" => allowed(Action::Pull),
                    "push" => allowed(Action::Push),
                    "delete" => allowed(Action::Delete),
                    "*" => allowed(Action::Delete) && allowed(Action::Push),
                    _ => false,
                })
                .cloned()
                .collect()
        }
        "registry" if requested.name == "catalog" => requested
            .actions
            .iter()
            .filter(|a| a.as_str() == "*" && !matches!(caller, Caller::Anonymous))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    (!actions.is_empty()).then(|| Access {
        kind: requested.kind.clone(),
        name: requested.name.clone(),
        actions,
    })
}

/// The login a caller acts as (empty for anonymous callers).
fn caller_subject(caller: &Caller) -> String {
    match caller {
        Caller::User(p) => p.login.to_string(),
        Caller::Token(claims) => claims.sub.clone(),
        Caller::Anonymous => String::new(),
    }
}

fn issue(
    auth: &Auth,
    caller: &Caller,
    service: Option<&str>,
    scopes: &[Scope],
    refresh: bool,
) -> Result<Response, ApiError> {
    if let Some(service) = service
        && service != auth.config().service
    {
        return Err(ApiError::bad_request(
            crate::error::Code::Denied,
            format!(
                "unknown service {service:?}; this registry is {:?}",
                auth.config().service
            ),
        ));
    }
    let service = &auth.config().service;
    let access = scopes
        .iter()
        .filter_map(|s| grant(auth, caller, s))
        .collect();
    let subject = caller_subject(caller);
    let token_id = match caller {
        Caller::User(p) => p.token_id.clone(),
        _ => None,
    };
    let (token, claims) = auth
        .tokens
        .issue(&subject, service, access)
        .map_err(|e| ApiError::internal(&e))?;
    // Only logins with an auth token get a refresh token: it is bound to that auth token
    // (revoking it ends the refresh token), and a registry token must not turn into a
    // longer-lived credential with the user's full rights.
    let refresh_token = (refresh && token_id.is_some())
        .then(|| {
            auth.tokens
                .issue_refresh(&subject, service, token_id.as_deref())
        })
        .transpose()
        .map_err(|e| ApiError::internal(&e))?;
    let issued_at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(claims.iat as u64);
    let body = TokenResponse {
        access_token: token.clone(),
        token,
        expires_in: auth.tokens.lifetime().as_secs(),
        issued_at: humantime::format_rfc3339_seconds(issued_at).to_string(),
        refresh_token,
    };
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn values<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn peer_of(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<Peer>().map(|p| p.0)
}

/// `GET /20180419/docker/token?service=&scope=...[&offline_token=true]`.
pub async fn get_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let pairs = query_pairs(&request);
    let result = auth
        .identify(request.headers(), peer_of(&request))
        .and_then(|caller| {
            let scopes = scope::parse_all(values(&pairs, "scope"));
            let refresh = values(&pairs, "offline_token").any(|v| v == "true");
            issue(
                &auth,
                &caller,
                values(&pairs, "service").next(),
                &scopes,
                refresh,
            )
        });
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /20180419/docker/token` with an OAuth2 form (`grant_type=password|refresh_token`).
pub async fn post_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let peer = peer_of(&request);
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::bad_request(
                crate::error::Code::Unsupported,
                "token request body too large or unreadable",
            )
            .into_response();
        }
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |key: &str| values(&pairs, key).next().unwrap_or("").to_owned();
    let caller = match field("grant_type").as_str() {
        "password" => auth.login(&field("username"), &field("password"), peer),
        "refresh_token" => refresh_caller(&auth, &field("refresh_token")),
        other => Err(ApiError::bad_request(
            crate::error::Code::Unsupported,
            format!("unsupported grant_type {other:?}"),
        )),
    };
    let result = caller.and_then(|caller| {
        let scopes = scope::parse_all(values(&pairs, "scope"));
        issue(
            &auth,
            &caller,
            values(&pairs, "service").next(),
            &scopes,
            true,
        )
    });
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The caller a refresh token speaks for, if the auth token it came from is still valid.
fn refresh_caller(auth: &Auth, token: &str) -> Result<Caller, ApiError> {
    let invalid = || {
        auth.challenge(
            None,
            Some("invalid_token"),
            "refresh token is invalid or revoked",
        )
    };
    let claims = auth.tokens.verify(token).map_err(|_| invalid())?;
    if claims.typ.as_deref() != Some("refresh") || claims.aud != auth.config().service {
        return Err(invalid());
    }
    let mut principal = token_principal(&claims).ok_or_else(invalid)?;
    principal.token_id = Some(claims.tid.clone().ok_or_else(invalid)?);
    if !auth.directory.principal_valid(&principal) {
        return Err(invalid());
    }
    Ok(Caller::User(principal))
}
