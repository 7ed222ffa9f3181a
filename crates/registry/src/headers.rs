//! Header names and values the distribution spec defines.

use axum::http::{HeaderName, HeaderValue};

/// `Docker-Content-Digest`.
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`.
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`, echoed when a pushed manifest has a subject.
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Tag`, one per tag set by a push with `?tag=`.
pub const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
/// `OCI-Filters-Applied`, on filtered referrers listings.
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
/// `Docker-Distribution-API-Version`.
pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Builds a header value from text we produced ourselves (digests, URLs of valid names).
pub fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Range` value describing an upload with `offset` bytes (`0-0` when empty, as the
/// reference registry answers).
pub fn upload_range(offset: u64) -> HeaderValue {
    value(&format!("0-{}", offset.saturating_sub(1)))
}
