//! Blob reads and deletes.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minato_oci::RepositoryName;

use super::parse_digest;
use crate::blob_body::blob_body;
use crate::error::{ApiError, Code};
use crate::headers;
use crate::range::{RangeRequest, parse_range};
use crate::server::AppState;

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`, with single-range support.
pub async fn get(
    state: &AppState,
    name: &RepositoryName,
    digest: &str,
    request: &Parts,
    head: bool,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    let blob = state
        .store
        .blob(name, &digest)
        .await?
        .ok_or_else(|| ApiError::not_found(Code::BlobUnknown, "blob unknown to registry"))?;
    let range_header = request
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, len) = match parse_range(range_header, blob.size) {
        RangeRequest::Full => (StatusCode::OK, 0, blob.size),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, range.start, range.len()),
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::RangeInvalid,
                "requested range is not satisfiable",
            )
            .with_header(
                header::CONTENT_RANGE,
                headers::value(&format!("bytes */{}", blob.size)),
            ));
        }
    };
    let body = if head {
        axum::body::Body::empty()
    } else {
        blob_body(blob.path, start, len)
            .await
            .map_err(|e| ApiError::internal(&e))?
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(headers::CONTENT_DIGEST, headers::value(digest.as_str()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, headers::value(&format!("\"{digest}\"")));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            headers::value(&format!(
                "bytes {}-{}/{}",
                start,
                start + len - 1,
                blob.size
            )),
        );
    }
    Ok(response)
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository.
pub async fn delete(
    state: &AppState,
    name: &RepositoryName,
    digest: &str,
) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    if state.store.unlink_blob(name, &digest).await? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(ApiError::not_found(
            Code::BlobUnknown,
            "blob unknown to registry",
        ))
    }
}
