//! The access-control seam: every `/v2/` request is parsed into a [`Route`] and an [`Action`]
//! and passed to an [`AccessControl`] before any handler runs. Handlers never look at
//! credentials; the identity layer only implements this trait.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, Method, Uri};
use minato_oci::RepositoryName;

use crate::error::ApiError;
use crate::route::Route;

/// What a request is trying to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `GET /v2/`: check that the API is there and the caller is authenticated.
    Ping,
    /// List repositories.
    Catalog,
    /// List tags or referrers.
    List,
    /// Read manifests and blobs.
    Pull,
    /// Upload blobs and manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

/// The request facts an access decision may depend on.
#[derive(Debug)]
pub struct AccessRequest<'a> {
    /// Method of the request.
    pub method: &'a Method,
    /// Full URI (path and query).
    pub uri: &'a Uri,
    /// Request headers (credentials live here).
    pub headers: &'a HeaderMap,
    /// Client address, when known.
    pub peer: Option<SocketAddr>,
    /// The parsed endpoint.
    pub route: &'a Route,
    /// The action the endpoint performs.
    pub action: Action,
    /// For a cross-repository mount, the source repository (which needs [`Action::Pull`]).
    pub mount_from: Option<RepositoryName>,
}

/// What an allowed caller may see beyond the request itself; handlers that list across
/// repositories consult it.
pub trait AccessDecision: Send + Sync {
    /// Whether a repository may appear in listings for this caller.
    fn can_list(&self, repository: &str) -> bool;
    /// Whether a cross-repository mount from `repository` is permitted.
    fn can_mount_from(&self, repository: &RepositoryName) -> bool;
    /// Whether tags of `repository` may only be set once (a push may not move them).
    fn immutable_tags(&self, repository: &RepositoryName) -> bool;
}

/// The decision attached to an allowed request, available to handlers as an extension.
#[derive(Clone)]
pub struct Grant(pub Arc<dyn AccessDecision>);

/// A future returned by [`AccessControl::check`].
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<Grant, ApiError>> + Send + 'a>>;

/// Decides whether a request may proceed.
pub trait AccessControl: Send + Sync + 'static {
    /// Allows (with what the caller may see) or refuses with a spec-shaped error
    /// (`UNAUTHORIZED` with a challenge, `DENIED`, `TOOMANYREQUESTS`).
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> CheckFuture<'a>;
}

/// Lets everyone do everything: the default until an identity layer is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAccess;

impl AccessDecision for OpenAccess {
    fn can_list(&self, _: &str) -> bool {
        true
    }

    fn can_mount_from(&self, _: &RepositoryName) -> bool {
        true
    }

    fn immutable_tags(&self, _: &RepositoryName) -> bool {
        false
    }
}

/// The one grant open access hands out, shared so the hot path allocates nothing for it.
static OPEN_GRANT: LazyLock<Grant> = LazyLock::new(|| Grant(Arc::new(OpenAccess)));

impl AccessControl for OpenAccess {
    fn check<'a>(&'a self, _: &'a AccessRequest<'a>) -> CheckFuture<'a> {
        Box::pin(async { Ok(OPEN_GRANT.clone()) })
    }
}

/// The action a method on a route performs; `None` when the method is not allowed there.
pub fn action_for(route: &Route, method: &Method) -> Option<Action> {
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Base => read.then_some(Action::Ping),
        Route::Catalog => read.then_some(Action::Catalog),
        Route::Tags(_) | Route::Referrers(..) => read.then_some(Action::List),
        Route::Manifest(..) | Route::Blob(..) if read => Some(Action::Pull),
        Route::Manifest(..) if method == Method::PUT => Some(Action::Push),
        Route::Manifest(..) | Route::Blob(..) if method == Method::DELETE => Some(Action::Delete),
        Route::UploadStart(_) => (method == Method::POST).then_some(Action::Push),
        Route::Upload(..) => [Method::GET, Method::PATCH, Method::PUT, Method::DELETE]
            .contains(method)
            .then_some(Action::Push),
        _ => None,
    }
}
