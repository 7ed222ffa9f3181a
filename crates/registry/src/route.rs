//! One parser for every `/v2/...` path.
//!
//! Repository names contain `/` and may be of any depth, so routes are recognised from the
//! right: the last segments (`manifests/<ref>`, `blobs/<digest>`, `blobs/uploads/[<id>]`,
//! `tags/list`, `referrers/<digest>`) name the endpoint and everything before them is the
//! repository name. References, digests and session ids are single segments, so this is
//! unambiguous even for repositories with components called `blobs` or `manifests`.

use minato_oci::{NameError, RepositoryName};

/// A recognised API endpoint (before method dispatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepositoryName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, String),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, String),
}

impl Route {
    /// The repository the route acts on, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::Blob(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Why a path is not a route.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No endpoint has this shape.
    NotFound,
    /// The endpoint is known but the repository name is invalid.
    InvalidName(NameError),
}

/// Parses a request path (without query string).
pub fn parse(path: &str) -> Result<Route, RouteError> {
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let tail = |k: usize| segments[n - k..].to_vec();
    let name = |k: usize| -> Result<RepositoryName, RouteError> {
        if n <= k {
            return Err(RouteError::NotFound);
        }
        RepositoryName::parse(&segments[..n - k].join("/")).map_err(RouteError::InvalidName)
    };
    if n >= 3 && tail(2) == ["tags", "list"] {
        return Ok(Route::Tags(name(2)?));
    }
    if n >= 4 && tail(3)[..2] == ["blobs", "uploads"] {
        let id = segments[n - 1];
        return if id.is_empty() {
            Ok(Route::UploadStart(name(3)?))
        } else {
            Ok(Route::Upload(name(3)?, id.to_owned()))
        };
    }
    if n >= 3 && tail(2) == ["blobs", "uploads"] {
        return Ok(Route::UploadStart(name(2)?));
    }
    if n >= 3 && !segments[n - 1].is_empty() {
        let last = segments[n - 1].to_owned();
        match segments[n - 2] {
            "manifests" => return Ok(Route::Manifest(name(2)?, last)),
            "blobs" => return Ok(Route::Blob(name(2)?, last)),
            "referrers" => return Ok(Route::Referrers(name(2)?, last)),
            _ => {}
        }
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn recognises_every_endpoint() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/v2"), Ok(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(parse("/v2/a/b/tags/list"), Ok(Route::Tags(name("a/b"))));
        assert_eq!(
            parse("/v2/ns/p/nginx/manifests/latest"),
            Ok(Route::Manifest(name("ns/p/nginx"), "latest".into()))
        );
        assert_eq!(
            parse("/v2/a/blobs/sha256:abc"),
            Ok(Route::Blob(name("a"), "sha256:abc".into()))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/"),
            Ok(Route::UploadStart(name("a")))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads"),
            Ok(Route::UploadStart(name("a")))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/1234"),
            Ok(Route::Upload(name("a"), "1234".into()))
        );
        assert_eq!(
            parse("/v2/a/referrers/sha256:abc"),
            Ok(Route::Referrers(name("a"), "sha256:abc".into()))
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            parse("/v2/blobs/manifests/manifests/v1"),
            Ok(Route::Manifest(name("blobs/manifests"), "v1".into()))
        );
        assert_eq!(
            parse("/v2/tags/list/tags/list"),
            Ok(Route::Tags(name("tags/list")))
        );
    }

    #[test]
    fn rejects_unknown_shapes_and_bad_names() {
        for path in [
            "/",
            "/v1/",
            "/v2x",
            "/v2/a",
            "/v2/a/manifests/",
            "/v2/manifests/x",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
        assert!(matches!(
            parse("/v2/A/manifests/x"),
            Err(RouteError::InvalidName(_))
        ));
        assert!(matches!(
            parse("/v2/a//b/tags/list"),
            Err(RouteError::InvalidName(_))
        ));
    }
}
