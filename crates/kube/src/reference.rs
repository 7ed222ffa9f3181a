//! Image references as the kubelet reads them (`reference.ParseNormalizedNamed` of the
//! distribution project): Docker Hub short names are qualified (`nginx` →
//! `docker.io/library/nginx`), a missing tag means `latest`, and the repository without tag or
//! digest is the key credentials are looked up with. Also the `imagePullPolicy` default.

use std::fmt;

/// Longest repository name (domain and path) the reference grammar accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference does not parse; the messages are the distribution project's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Syntax error.
    #[error("invalid reference format")]
    Format,
    /// Upper case in the repository path.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// A bare 64-hex-digit string (ambiguous with an image id).
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// More than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A malformed digest.
    #[error("invalid digest format")]
    Digest,
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry host (and port); `docker.io` for Docker Hub.
    pub domain: String,
    /// The repository path within the registry.
    pub path: String,
    /// The tag; `latest` when neither tag nor digest was written.
    pub tag: Option<String>,
    /// The digest, when written.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference as written in a Pod spec.
    pub fn parse(image: &str) -> Result<ImageReference, ReferenceError> {
        if image.len() == 64
            && image
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ReferenceError::HexName(image.to_owned()));
        }
        let (name_and_tag, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Format);
        }
        if let Some(digest) = digest
            && !valid_digest(digest)
        {
            return Err(ReferenceError::Digest);
        }
        let (domain, path) = split_domain(name);
        if path.to_ascii_lowercase() != path {
            return Err(ReferenceError::Uppercase(path));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        if !valid_domain(&domain) || !valid_path(&path) {
            return Err(ReferenceError::Format);
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(ImageReference {
            domain,
            path,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// `domain/path`: the repository the kubelet pulls and looks credentials up for.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The registry host to connect to (Docker Hub's API host for `docker.io`).
    pub fn registry_host(&self) -> &str {
        if self.domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.domain
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The kubelet's wrapping of parse errors (`InvalidImageName` message).
pub fn parse_error_message(image: &str, error: &ReferenceError) -> String {
    format!(
        "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {error}"
    )
}

/// The `imagePullPolicy` the API server fills in when none is written: `Always` for `latest`
/// (or no tag), else `IfNotPresent` (including unparseable references).
pub fn default_pull_policy(image: &str) -> &'static str {
    let tag = ImageReference::parse(image).ok().and_then(|r| r.tag);
    if tag.as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// Splits a trailing `:tag` (a `:` after the last `/`).
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

/// Docker Hub normalization of the domain.
fn split_domain(name: &str) -> (String, String) {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_owned()
    } else {
        domain
    };
    let remainder = if domain == "docker.io" && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    (domain, remainder)
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
        part.as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && encoded.len() >= 32 && encoded.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        return after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    port_ok && !host.is_empty() && host.split('.').all(label_ok)
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|component| minato_oci::RepositoryName::parse(component).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1";

    fn parts(image: &str) -> (String, Option<String>, Option<String>) {
        let r = ImageReference::parse(image).unwrap();
        (r.repository(), r.tag, r.digest)
    }

    #[test]
    fn normalizes_like_the_kubelet() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            parts("nginx"),
            ("docker.io/library/nginx".into(), s("latest"), None)
        );
        assert_eq!(
            parts("jdoe/app:1"),
            ("docker.io/jdoe/app".into(), s("1"), None)
        );
        assert_eq!(
            parts("phx.ocir.io/ansh81vru1zp/project01/ngnix-lb:latest"),
            (
                "phx.ocir.io/ansh81vru1zp/project01/ngnix-lb".into(),
                s("latest"),
                None
            )
        );
        let digest = format!("sha256:{HEX}");
        assert_eq!(
            parts(&format!("phx.ocir.io/ns/repo@{digest}")),
            ("phx.ocir.io/ns/repo".into(), None, Some(digest.clone()))
        );
        assert_eq!(
            parts(&format!("phx.ocir.io/ns/repo:v1@{digest}")),
            ("phx.ocir.io/ns/repo".into(), s("v1"), Some(digest))
        );
        assert_eq!(
            parts("localhost:5000/x"),
            ("localhost:5000/x".into(), s("latest"), None)
        );
        assert_eq!(
            parts("index.docker.io/nginx:1"),
            ("docker.io/library/nginx".into(), s("1"), None)
        );
        assert_eq!(
            parts("[::1]:5000/a/b:c"),
            ("[::1]:5000/a/b".into(), s("c"), None)
        );
        assert_eq!(
            parts("Registry.Example/a"),
            ("Registry.Example/a".into(), s("latest"), None)
        );
    }

    #[test]
    fn refuses_what_the_kubelet_refuses() {
        assert_eq!(
            ImageReference::parse(HEX),
            Err(ReferenceError::HexName(HEX.into()))
        );
        assert!(matches!(
            ImageReference::parse("phx.ocir.io/NS/repo"),
            Err(ReferenceError::Uppercase(_))
        ));
        for bad in [
            "",
            "a:",
            ":a",
            "a//b",
            "a@sha256:abc",
            "a:tag with space",
            "-a",
            "a/-b",
            "a:b:c",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("r.io/{}", "a".repeat(260));
        assert_eq!(
            ImageReference::parse(&long),
            Err(ReferenceError::NameTooLong)
        );
        let message = parse_error_message("a//b", &ReferenceError::Format);
        assert_eq!(
            message,
            "Failed to apply default image tag \"a//b\": couldn't parse image name \"a//b\": invalid reference format"
        );
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("repo"), "Always");
        assert_eq!(default_pull_policy("repo:latest"), "Always");
        assert_eq!(default_pull_policy("repo:v1"), "IfNotPresent");
        assert_eq!(
            default_pull_policy(&format!("repo@sha256:{HEX}")),
            "IfNotPresent"
        );
        assert_eq!(
            default_pull_policy(&format!("repo:latest@sha256:{HEX}")),
            "Always"
        );
        assert_eq!(default_pull_policy("repo:LATEST"), "IfNotPresent");
        assert_eq!(default_pull_policy("Bad//Ref"), "IfNotPresent");
    }
}
