//! Token scopes of the Docker token protocol: `repository:<name>:<action>[,<action>...]` and
//! `registry:catalog:*`, parsed from token requests and matched against token claims.

use minato_iam::jwt::{Access, Claims};

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry` (a `repository(plugin)` class suffix is dropped).
    pub kind: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Requested actions.
    pub actions: Vec<String>,
}

/// Parses one scope string; `None` when malformed.
pub fn parse(text: &str) -> Option<Scope> {
    let (rest, actions) = text.rsplit_once(':')?;
    let (kind, name) = rest.split_once(':')?;
    let kind = kind.split('(').next().unwrap_or(kind);
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(Scope {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Parses every scope of a request (`scope` may repeat and may hold space-separated scopes).
pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
    values
        .into_iter()
        .flat_map(|v| v.split(' '))
        .filter_map(parse)
        .collect()
}

/// The namespace of a tenancy-wide pull scope (`repository:<namespace>/*:pull`), which node
/// credential providers request because the kubelet caches their answer per registry.
pub fn tenancy_wildcard(name: &str) -> Option<&str> {
    name.strip_suffix("/*")
        .filter(|ns| !ns.is_empty() && !ns.contains(['/', '*']))
}

/// Whether `claims` hold a tenancy-wide pull grant covering `repository`.
pub fn claims_allow_tenancy_pull(claims: &Claims, repository: &str) -> bool {
    claims.access.iter().any(|a: &Access| {
        a.kind == "repository"
            && tenancy_wildcard(&a.name).is_some_and(|ns| {
                repository
                    .strip_prefix(ns)
                    .is_some_and(|r| r.starts_with('/'))
            })
            && a.actions.iter().any(|x| x == "pull")
    })
}

/// Whether `claims` allow `action` on repository `name` (`*` allows everything).
pub fn claims_allow(claims: &Claims, kind: &str, name: &str, action: &str) -> bool {
    claims.access.iter().any(|a: &Access| {
        a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action || x == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_and_catalog_scopes() {
        let s = parse("repository:ns/p/app:pull,push").unwrap();
        assert_eq!(
            (s.kind.as_str(), s.name.as_str()),
            ("repository", "ns/p/app")
        );
        assert_eq!(s.actions, vec!["pull", "push"]);
        let s = parse("repository(plugin):ns/x:pull").unwrap();
        assert_eq!(s.kind, "repository");
        let s = parse("registry:catalog:*").unwrap();
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.actions[0].as_str()),
            ("registry", "catalog", "*")
        );
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("repository::pull"), None);
        let all = parse_all([
            "repository:a/b:pull repository:a/c:push",
            "registry:catalog:*",
        ]);
        assert_eq!(all.len(), 3);
    }
}
