//! Repository names and tags, per the distribution spec grammar.
//!
//! The grammar is small and sits on every request's hot path, so it is checked by hand rather
//! than through a regex engine:
//! `name = component ("/" component)*`, `component = [a-z0-9]+ (separator [a-z0-9]+)*`,
//! `separator = "." | "_" | "__" | "-"+`; tags are `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.

use std::fmt;

/// Longest repository name accepted (the reference registry's limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// Why a repository name or tag was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The repository name breaks the grammar.
    #[error("invalid repository name {0:?}")]
    InvalidName(String),
    /// The repository name is longer than [`MAX_NAME_LEN`].
    #[error("repository name longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    /// The tag breaks the grammar.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
}

/// A validated repository name such as `ansh81vru1zp/project01/nginx-lb`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates `name` against the spec grammar.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        if name.split('/').all(is_valid_component) {
            Ok(RepositoryName(name.to_owned()))
        } else {
            Err(NameError::InvalidName(name.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run_start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > sep_start);
    }
}

/// A validated tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `tag` against the spec grammar.
    pub fn parse(tag: &str) -> Result<Self, NameError> {
        let bytes = tag.as_bytes();
        let valid_first = bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let valid_rest = bytes[1.min(bytes.len())..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid_first && valid_rest && bytes.len() <= MAX_TAG_LEN {
            Ok(Tag(tag.to_owned()))
        } else {
            Err(NameError::InvalidTag(tag.to_owned()))
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_any_depth_with_all_separators() {
        for good in [
            "a",
            "library/nginx",
            "ansh81vru1zp/project01/nginx-lb",
            "a/b/c/d/e/f/g/h/i/j",
            "a.b_c__d---e",
            "0/1",
        ] {
            assert_eq!(RepositoryName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_names_outside_the_grammar() {
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a_", ".a", "a/B", "a b",
            "a:b", "ä",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            RepositoryName::parse(&"a".repeat(256)),
            Err(NameError::NameTooLong)
        );
        assert!(RepositoryName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for good in ["latest", "v1.0.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(Tag::parse(good).is_ok(), "{good:?} refused");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a@b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
