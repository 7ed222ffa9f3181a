//! Errors in the distribution spec's shape: an HTTP status plus
//! `{"errors":[{"code","message","detail"}]}`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minato_store::StoreError;
use serde::Serialize;

/// The error codes of the distribution spec (plus the reference registry's range and
/// pagination codes, which clients also understand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Toomanyrequests,
    RangeInvalid,
    PaginationNumberInvalid,
    TagInvalid,
    Unknown,
    /// Admin API: the named tenancy, user, group, token or policy does not exist.
    NotFound,
    /// Admin API: the thing to create exists already, or a limit is reached.
    Conflict,
    /// Admin API: a malformed name, statement or request body.
    Invalid,
}

/// An error answer: status, one spec error, and extra headers (e.g. `WWW-Authenticate`).
/// Boxed so that `Result<_, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: Code,
    message: String,
    detail: Option<serde_json::Value>,
    headers: HeaderMap,
}

impl ApiError {
    /// An error with a status, code and human message.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: HeaderMap::new(),
        }))
    }

    /// Adds structured detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.0.detail = Some(detail);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The spec code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// 404 for an unknown route or repository.
    pub fn not_found(code: Code, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 400 with the given code.
    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500 for failures of our own; the cause is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unknown,
            "internal server error",
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: Code,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner {
            status,
            code,
            message,
            detail,
            headers,
        } = *self.0;
        let body = serde_json::to_vec(&Body {
            errors: [Entry {
                code,
                message: &message,
                detail: detail.as_ref(),
            }],
        })
        .expect("error bodies always serialize");
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.headers_mut().extend(headers);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UploadUnknown => {
                ApiError::not_found(Code::BlobUploadUnknown, "upload session unknown")
            }
            StoreError::RangeMismatch { start, offset } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::BlobUploadInvalid,
                format!("chunk starts at byte {start} but the upload has {offset} bytes"),
            )
            .with_header(header::RANGE, crate::headers::upload_range(offset)),
            StoreError::DigestMismatch { expected, actual } => ApiError::bad_request(
                Code::DigestInvalid,
                format!("content digest {actual} does not match {expected}"),
            )
            .with_detail(
                serde_json::json!({"expected": expected.as_str(), "actual": actual.as_str()}),
            ),
            StoreError::Interrupted(e) => ApiError::bad_request(
                Code::BlobUploadInvalid,
                format!("upload body ended early: {e}"),
            ),
            StoreError::ManifestReferenceUnknown(digest) => ApiError::bad_request(
                Code::ManifestBlobUnknown,
                format!("manifest references {digest}, which is not in this repository"),
            )
            .with_detail(serde_json::json!({"digest": digest})),
            StoreError::TagImmutable(tag) => ApiError::new(
                StatusCode::CONFLICT,
                Code::Denied,
                format!(
                    "tag {tag:?} already exists and this repository's tags are immutable; push a new tag instead"
                ),
            ),
            StoreError::UploadComplete { offset } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::BlobUploadInvalid,
                format!("the upload already holds all of its {offset} bytes; finish it with PUT"),
            )
            .with_header(header::RANGE, crate::headers::upload_range(offset)),
            StoreError::CorruptSession => ApiError::internal(&"corrupt upload session state"),
            StoreError::Io(e) => ApiError::internal(&e),
            StoreError::Database(e) => ApiError::internal(&e),
        }
    }
}
