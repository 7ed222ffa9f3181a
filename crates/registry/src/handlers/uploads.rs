//! Blob uploads: monolithic, chunked, streamed, resumable, and cross-repository mounts.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minato_oci::{Algorithm, Digest, RepositoryName};

use super::{body_stream, location, parse_digest, query_param};
use crate::access::Grant;
use crate::error::{ApiError, Code};
use crate::headers;
use crate::range::parse_content_range;
use crate::server::AppState;

fn blob_created(name: &RepositoryName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            location(&format!("/v2/{name}/blobs/{digest}")),
            (headers::CONTENT_DIGEST, headers::value(digest.as_str())),
            (header::CONTENT_LENGTH, headers::value("0")),
        ],
    )
        .into_response()
}

fn upload_accepted(status: StatusCode, name: &RepositoryName, id: &str, offset: u64) -> Response {
    (
        status,
        [
            location(&format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, headers::upload_range(offset)),
            (headers::UPLOAD_UUID, headers::value(id)),
            (header::CONTENT_LENGTH, headers::value("0")),
        ],
    )
        .into_response()
}

/// `POST /v2/<name>/blobs/uploads/`: mount, monolithic upload, or a new session.
pub async fn start(
    state: &AppState,
    grant: &Grant,
    name: &RepositoryName,
    request: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(mount) = query_param(request, "mount") {
        let digest = parse_digest(&mount)?;
        if let Some(from) = query_param(request, "from") {
            let from = RepositoryName::parse(&from)
                .map_err(|e| ApiError::bad_request(Code::NameInvalid, e.to_string()))?;
            if grant.0.can_mount_from(&from)
                && state
                    .store
                    .mount_blob(&from, name, &digest)
                    .await?
                    .is_some()
            {
                return Ok(blob_created(name, &digest));
            }
        }
    } else if let Some(digest) = query_param(request, "digest") {
        let digest = parse_digest(&digest)?;
        state
            .store
            .put_blob(name, &digest, body_stream(body))
            .await?;
        return Ok(blob_created(name, &digest));
    }
    let algorithm = match query_param(request, "digest-algorithm") {
        None => Algorithm::Sha256,
        Some(text) => text.parse().map_err(|e: minato_oci::DigestError| {
            ApiError::bad_request(Code::DigestInvalid, e.to_string())
        })?,
    };
    let id = state.store.start_upload(name, algorithm).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, name, &id, 0))
}

/// `GET` on an upload session: how much has been received.
pub async fn status(
    state: &AppState,
    name: &RepositoryName,
    id: &str,
) -> Result<Response, ApiError> {
    let status = state.store.upload_status(name, id).await?;
    Ok(upload_accepted(
        StatusCode::NO_CONTENT,
        name,
        id,
        status.offset,
    ))
}

/// The chunk start a request declares with `Content-Range`, if any.
fn declared_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let range = value
        .to_str()
        .ok()
        .and_then(parse_content_range)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::BlobUploadInvalid,
                "malformed Content-Range",
            )
        })?;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length != range.len()
    {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Code::BlobUploadInvalid,
            format!(
                "Content-Range covers {} bytes but Content-Length is {length}",
                range.len()
            ),
        ));
    }
    Ok(Some(range.start))
}

/// `PATCH` on an upload session: append a chunk (or a stream when no `Content-Range`).
pub async fn patch(
    state: &AppState,
    name: &RepositoryName,
    id: &str,
    request: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let start = declared_start(&request.headers)?;
    let status = state
        .store
        .append_upload(name, id, start, body_stream(body))
        .await?;
    Ok(upload_accepted(
        StatusCode::ACCEPTED,
        name,
        id,
        status.offset,
    ))
}

/// `PUT` on an upload session: optional last chunk, then verify and commit.
pub async fn finish(
    state: &AppState,
    name: &RepositoryName,
    id: &str,
    request: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = query_param(request, "digest").ok_or_else(|| {
        ApiError::bad_request(Code::DigestInvalid, "the digest parameter is required")
    })?;
    let digest = parse_digest(&digest)?;
    let start = declared_start(&request.headers)?;
    state
        .store
        .finish_upload(name, id, &digest, start, body_stream(body))
        .await?;
    Ok(blob_created(name, &digest))
}

/// `DELETE` on an upload session: abandon it.
pub async fn cancel(
    state: &AppState,
    name: &RepositoryName,
    id: &str,
) -> Result<Response, ApiError> {
    state.store.cancel_upload(name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
