//! Endpoint handlers, dispatched by route and method after access control.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use std::io;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, TryStreamExt};

use crate::access::Grant;
use crate::error::{ApiError, Code};
use crate::headers;
use crate::route::Route;
use crate::server::AppState;

/// Runs the handler for an already parsed and authorised route.
pub async fn dispatch(state: AppState, route: Route, grant: Grant, request: Request) -> Response {
    let (request, body) = request.into_parts();
    let method = request.method.clone();
    let result = match (&route, &method) {
        (Route::Base, _) => Ok(base()),
        (Route::Catalog, _) => listing::catalog(&state, &grant, &request).await,
        (Route::Tags(name), _) => listing::tags(&state, name, &request).await,
        (Route::Referrers(name, digest), _) => {
            listing::referrers(&state, name, digest, &request).await
        }
        (Route::Manifest(name, reference), &Method::PUT) => {
            manifests::put(&state, &grant, name, reference, &request, body).await
        }
        (Route::Manifest(name, reference), &Method::DELETE) => {
            manifests::delete(&state, name, reference).await
        }
        (Route::Manifest(name, reference), _) => {
            manifests::get(&state, name, reference, method == Method::HEAD).await
        }
        (Route::Blob(name, digest), &Method::DELETE) => blobs::delete(&state, name, digest).await,
        (Route::Blob(name, digest), _) => {
            blobs::get(&state, name, digest, &request, method == Method::HEAD).await
        }
        (Route::UploadStart(name), _) => uploads::start(&state, &grant, name, &request, body).await,
        (Route::Upload(name, id), &Method::GET) => uploads::status(&state, name, id).await,
        (Route::Upload(name, id), &Method::PATCH) => {
            uploads::patch(&state, name, id, &request, body).await
        }
        (Route::Upload(name, id), &Method::PUT) => {
            uploads::finish(&state, name, id, &request, body).await
        }
        (Route::Upload(name, id), _) => uploads::cancel(&state, name, id).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn base() -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        "{}",
    )
        .into_response()
}

/// A request body as the byte stream the store consumes.
fn body_stream(body: Body) -> impl Stream<Item = io::Result<bytes::Bytes>> + Send {
    body.into_data_stream().map_err(io::Error::other)
}

fn parse_digest(text: &str) -> Result<minato_oci::Digest, ApiError> {
    text.parse().map_err(|e: minato_oci::DigestError| {
        ApiError::bad_request(Code::DigestInvalid, e.to_string())
    })
}

fn query_param(request: &Parts, key: &str) -> Option<String> {
    query_params(request, key).next()
}

fn query_params(request: &Parts, key: &str) -> impl Iterator<Item = String> {
    let key = key.to_owned();
    form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
        .filter(move |(k, _)| *k == key)
        .map(|(_, v)| v.into_owned())
        .collect::<Vec<_>>()
        .into_iter()
}

fn location(value: &str) -> (axum::http::HeaderName, axum::http::HeaderValue) {
    (axum::http::header::LOCATION, headers::value(value))
}
