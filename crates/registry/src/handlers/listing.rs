//! Listings: tags, the catalog and referrers, paginated in O(page).

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minato_oci::RepositoryName;
use minato_oci::media_type::OCI_INDEX;
use serde::Serialize;

use super::{parse_digest, query_param};
use crate::access::Grant;
use crate::error::{ApiError, Code};
use crate::headers;
use crate::server::AppState;

/// `n` and `last` of a paginated listing; `n` defaults to and is capped at the configured page.
fn pagination(state: &AppState, request: &Parts) -> Result<(usize, Option<String>), ApiError> {
    let max = state.config.max_page;
    let n = match query_param(request, "n") {
        None => max,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| {
                ApiError::bad_request(
                    Code::PaginationNumberInvalid,
                    format!("n must be a non-negative integer, got {text:?}"),
                )
            })?
            .min(max),
    };
    Ok((n, query_param(request, "last").filter(|l| !l.is_empty())))
}

fn json_page(body: &impl Serialize, next: Option<String>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::to_vec(body).expect("listings always serialize"),
    )
        .into_response();
    if let Some(next) = next {
        response.headers_mut().insert(
            header::LINK,
            headers::value(&format!("<{next}>; rel=\"next\"")),
        );
    }
    response
}

fn next_link(path: &str, n: usize, items: &[String], more: bool) -> Option<String> {
    let last = items.last().filter(|_| more)?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("n", &n.to_string())
        .append_pair("last", last)
        .finish();
    Some(format!("{path}?{query}"))
}

#[derive(Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}

/// `GET /v2/<name>/tags/list[?n=&last=]`.
pub async fn tags(
    state: &AppState,
    name: &RepositoryName,
    request: &Parts,
) -> Result<Response, ApiError> {
    let (n, last) = pagination(state, request)?;
    let page = state
        .store
        .tags(name, n, last.as_deref())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(Code::NameUnknown, "repository name not known to registry")
        })?;
    let next = next_link(&format!("/v2/{name}/tags/list"), n, &page.items, page.more);
    Ok(json_page(
        &TagList {
            name: name.as_str(),
            tags: &page.items,
        },
        next,
    ))
}

#[derive(Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// `GET /v2/_catalog[?n=&last=]`, limited to repositories the caller may list.
pub async fn catalog(
    state: &AppState,
    grant: &Grant,
    request: &Parts,
) -> Result<Response, ApiError> {
    let (n, mut last) = pagination(state, request)?;
    let mut visible = Vec::new();
    // Filter page by page so a caller who sees few repositories still gets full pages, while
    // each database read stays bounded by the page size.
    let more = loop {
        let page = state.store.repositories(n.max(1), last.as_deref()).await?;
        last = page.items.last().cloned();
        visible.extend(page.items.into_iter().filter(|r| grant.0.can_list(r)));
        if visible.len() >= n || !page.more {
            break visible.len() > n || page.more;
        }
    };
    visible.truncate(n);
    let next = next_link("/v2/_catalog", n, &visible, more && n > 0);
    Ok(json_page(
        &Catalog {
            repositories: &visible,
        },
        next,
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: always an index, empty when nothing
/// refers to the digest.
pub async fn referrers(
    state: &AppState,
    name: &RepositoryName,
    digest: &str,
    request: &Parts,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let filter = query_param(request, "artifactType").filter(|t| !t.is_empty());
    let rows = state
        .store
        .referrers(name, &digest, filter.as_deref())
        .await?;
    let manifests = rows
        .into_iter()
        .map(|row| Descriptor {
            media_type: row.media_type,
            digest: row.digest,
            size: row.size,
            artifact_type: row.artifact_type,
            annotations: row.annotations.and_then(|a| serde_json::from_str(&a).ok()),
        })
        .collect();
    let body = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    })
    .expect("indexes always serialize");
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX))],
        body,
    )
        .into_response();
    if filter.is_some() {
        response.headers_mut().insert(
            headers::OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
