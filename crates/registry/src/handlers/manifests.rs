//! Manifest reads, pushes and deletes, by tag or by digest.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use minato_oci::{Algorithm, Digest, ManifestError, RepositoryName, Tag};
use minato_store::{PutManifest, StoredManifest};

use super::{location, query_params};
use crate::access::Grant;
use crate::error::{ApiError, Code};
use crate::headers;
use crate::server::AppState;

/// A manifest reference from the URL: a tag or a digest.
enum Reference {
    Tag(Tag),
    Digest(Digest),
}

fn parse_reference(text: &str) -> Result<Reference, ApiError> {
    if text.contains(':') {
        super::parse_digest(text).map(Reference::Digest)
    } else {
        Tag::parse(text)
            .map(Reference::Tag)
            .map_err(|e| ApiError::bad_request(Code::TagInvalid, e.to_string()))
    }
}

async fn lookup(
    state: &AppState,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<Option<Arc<StoredManifest>>, ApiError> {
    Ok(match reference {
        Reference::Tag(tag) => state.store.manifest_by_tag(name, tag.as_str()).await?,
        Reference::Digest(digest) => state.store.manifest_by_digest(name, digest).await?,
    })
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`: the exact pushed bytes.
pub async fn get(
    state: &AppState,
    name: &RepositoryName,
    reference: &str,
    head: bool,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference)?;
    let manifest = lookup(state, name, &reference).await?.ok_or_else(|| {
        ApiError::not_found(Code::ManifestUnknown, "manifest unknown to registry")
    })?;
    let length = manifest.content.len();
    let body = if head {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(manifest.content.clone())
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, headers::value(&manifest.media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(
        headers::CONTENT_DIGEST,
        headers::value(manifest.digest.as_str()),
    );
    h.insert(
        header::ETAG,
        headers::value(&format!("\"{}\"", manifest.digest)),
    );
    Ok(response)
}

/// Reads a manifest body, refusing more than the configured maximum with 413.
async fn read_limited(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let limit = state.config.max_manifest_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::SizeInvalid,
            format!("manifest larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(
            Code::ManifestInvalid,
            format!("could not read manifest body: {e}"),
        )),
    }
}

/// `PUT /v2/<name>/manifests/<reference>`: validate, check references, store, move tags.
pub async fn put(
    state: &AppState,
    grant: &Grant,
    name: &RepositoryName,
    reference: &str,
    request: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let reference = parse_reference(reference)?;
    let extra_tags = query_params(request, "tag")
        .map(|t| Tag::parse(&t).map_err(|e| ApiError::bad_request(Code::TagInvalid, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content = read_limited(state, &request.headers, body).await?;
    let tagged_by_query = !extra_tags.is_empty();
    let (digest, tags) = match reference {
        Reference::Digest(claimed) => {
            let actual = Digest::of(claimed.algorithm(), &content);
            if actual != claimed {
                return Err(ApiError::bad_request(
                    Code::DigestInvalid,
                    format!("manifest digest {actual} does not match {claimed}"),
                ));
            }
            (actual, extra_tags)
        }
        Reference::Tag(tag) => (Digest::of(Algorithm::Sha256, &content), vec![tag]),
    };
    let parsed =
        minato_oci::manifest::parse(&content, content_type.as_deref()).map_err(|e| match e {
            ManifestError::Invalid(m) => ApiError::bad_request(Code::ManifestInvalid, m),
            ManifestError::Unsupported(t) => ApiError::bad_request(
                Code::ManifestInvalid,
                format!("unsupported manifest media type {t:?}"),
            ),
        })?;
    let tag_names: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    state
        .store
        .put_manifest(
            name,
            PutManifest {
                digest: &digest,
                content,
                parsed: &parsed,
                tags: &tag_names,
                immutable_tags: grant.0.immutable_tags(name),
            },
        )
        .await?;
    let mut response = (
        StatusCode::CREATED,
        [
            location(&format!("/v2/{name}/manifests/{digest}")),
            (headers::CONTENT_DIGEST, headers::value(digest.as_str())),
            (header::CONTENT_LENGTH, headers::value("0")),
        ],
    )
        .into_response();
    if let Some(subject) = &parsed.subject {
        response
            .headers_mut()
            .insert(headers::OCI_SUBJECT, headers::value(subject.as_str()));
    }
    if tagged_by_query {
        for tag in &tag_names {
            response
                .headers_mut()
                .append(headers::OCI_TAG, headers::value(tag));
        }
    }
    Ok(response)
}

/// `DELETE /v2/<name>/manifests/<reference>`: by digest removes the manifest and its tags,
/// by tag removes only the tag.
pub async fn delete(
    state: &AppState,
    name: &RepositoryName,
    reference: &str,
) -> Result<Response, ApiError> {
    let deleted = match parse_reference(reference)? {
        Reference::Digest(digest) => state.store.delete_manifest(name, &digest).await?,
        Reference::Tag(tag) => state.store.delete_tag(name, tag.as_str()).await?,
    };
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(ApiError::not_found(
            Code::ManifestUnknown,
            "manifest unknown to registry",
        ))
    }
}
