//! Access policy statements in the managed-registry grammar:
//!
//! ```text
//! allow group <group> to <inspect|read|use|manage> <repos|keys> in tenancy
//!     [where target.repo.name = '<repo>' | target.repo.name =~ '<glob>']
//! allow any-user to <verb> <resource> in tenancy [where ...]
//! ```
//!
//! Keywords are case-insensitive; names may be quoted with `'...'`. Verbs are cumulative
//! (inspect < read < use < manage). A glob's `*` matches any run of characters, `/` included,
//! and `?` one character. Errors carry the line and column of the offending token.

use std::fmt;

/// What a statement grants, in increasing power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// List repositories and tags (or see keys).
    Inspect,
    /// Pull.
    Read,
    /// Push to existing repositories (or sign with keys).
    Use,
    /// Create, delete, change settings.
    Manage,
}

impl Verb {
    /// The keyword as written in statements.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Inspect => "inspect",
            Verb::Read => "read",
            Verb::Use => "use",
            Verb::Manage => "manage",
        }
    }
}

/// The resource family a statement covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Repositories, their images and signatures.
    Repos,
    /// Signing keys.
    Keys,
}

/// Who a statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Members of one group of the tenancy.
    Group(String),
    /// Every authenticated user of the tenancy.
    AnyUser,
}

/// Which repositories a statement covers (names relative to the tenancy namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// All of them.
    All,
    /// Exactly this repository.
    Exact(String),
    /// Those matching a glob.
    Glob(String),
}

impl Target {
    /// Whether the repository (relative name) is covered.
    pub fn covers(&self, repo: &str) -> bool {
        match self {
            Target::All => true,
            Target::Exact(name) => name == repo,
            Target::Glob(pattern) => glob_match(pattern.as_bytes(), repo.as_bytes()),
        }
    }
}

/// One parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Who.
    pub subject: Subject,
    /// How much.
    pub verb: Verb,
    /// On what kind of resource.
    pub resource: Resource,
    /// Restricted to which repositories.
    pub target: Target,
}

/// A parse error with its position (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// Line of the error.
    pub line: usize,
    /// Column of the error.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    text: &'a str,
    quoted: bool,
    column: usize,
}

fn tokenize(line: &str, line_no: usize) -> Result<Vec<Token<'_>>, PolicyError> {
    let mut tokens = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' {
            let start = i + 1;
            let end = line[start..]
                .find('\'')
                .map(|n| start + n)
                .ok_or(PolicyError {
                    line: line_no,
                    column: i + 1,
                    message: "unterminated quoted name".into(),
                })?;
            tokens.push(Token {
                text: &line[start..end],
                quoted: true,
                column: i + 1,
            });
            i = end + 1;
        } else if line[i..].starts_with("=~") {
            tokens.push(Token {
                text: "=~",
                quoted: false,
                column: i + 1,
            });
            i += 2;
        } else if c == b'=' {
            tokens.push(Token {
                text: "=",
                quoted: false,
                column: i + 1,
            });
            i += 1;
        } else {
            let start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && bytes[i] != b'='
                && bytes[i] != b'\''
            {
                i += 1;
            }
            tokens.push(Token {
                text: &line[start..i],
                quoted: false,
                column: start + 1,
            });
        }
    }
    Ok(tokens)
}

struct Cursor<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
    line: usize,
    end_column: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, message: String) -> PolicyError {
        let column = self
            .tokens
            .get(self.at)
            .map_or(self.end_column, |t| t.column);
        PolicyError {
            line: self.line,
            column,
            message,
        }
    }

    fn next(&mut self, expected: &str) -> Result<Token<'a>, PolicyError> {
        let token =
            self.tokens.get(self.at).cloned().ok_or_else(|| {
                self.error(format!("expected {expected}, found end of statement"))
            })?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, options: &[&str]) -> Result<String, PolicyError> {
        let expected = options
            .iter()
            .map(|o| format!("'{o}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        let token = self.next(&expected)?;
        let lower = token.text.to_ascii_lowercase();
        if !token.quoted && options.contains(&lower.as_str()) {
            Ok(lower)
        } else {
            self.at -= 1;
            Err(self.error(format!("expected {expected}, found {:?}", token.text)))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, PolicyError> {
        let token = self.next(what)?;
        if token.text.is_empty() || (!token.quoted && (token.text == "=" || token.text == "=~")) {
            self.at -= 1;
            return Err(self.error(format!("expected {what}")));
        }
        Ok(token.text.to_owned())
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }
}

/// Parses one statement written on line `line_no` (used in error positions).
pub fn parse_statement(text: &str, line_no: usize) -> Result<Statement, PolicyError> {
    let mut cursor = Cursor {
        tokens: tokenize(text, line_no)?,
        at: 0,
        line: line_no,
        end_column: text.trim_end().len() + 1,
    };
    cursor.keyword(&["allow"])?;
    let subject = match cursor.keyword(&["group", "any-user"])?.as_str() {
        "group" => {
            let group = cursor.name("a group name")?;
            crate::names::validate_group(&group).map_err(|e| {
                cursor.at -= 1;
                cursor.error(e.to_string())
            })?;
            Subject::Group(group)
        }
        _ => Subject::AnyUser,
    };
    cursor.keyword(&["to"])?;
    let verb = match cursor
        .keyword(&["inspect", "read", "use", "manage"])?
        .as_str()
    {
        "inspect" => Verb::Inspect,
        "read" => Verb::Read,
        "use" => Verb::Use,
        _ => Verb::Manage,
    };
    let resource = match cursor.keyword(&["repos", "keys"])?.as_str() {
        "repos" => Resource::Repos,
        _ => Resource::Keys,
    };
    cursor.keyword(&["in"])?;
    cursor.keyword(&["tenancy"])?;
    let target = if cursor.done() {
        Target::All
    } else {
        cursor.keyword(&["where"])?;
        cursor.keyword(&["target.repo.name"])?;
        let operator = cursor.keyword(&["=", "=~"])?;
        let value = cursor.next("a quoted repository name")?;
        if !value.quoted {
            cursor.at -= 1;
            return Err(
                cursor.error("expected a quoted repository name such as 'project01/app'".into())
            );
        }
        if operator == "=" {
            Target::Exact(value.text.to_owned())
        } else {
            Target::Glob(value.text.to_owned())
        }
    };
    if !cursor.done() {
        return Err(cursor.error("unexpected text after the statement".into()));
    }
    Ok(Statement {
        subject,
        verb,
        resource,
        target,
    })
}

/// Parses a policy document: one statement per line, blank lines and `#` comments ignored.
pub fn parse_policy(text: &str) -> Result<Vec<Statement>, PolicyError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let trimmed = line.trim();
            !trimmed.is_empty() && !trimmed.starts_with('#')
        })
        .map(|(index, line)| parse_statement(line, index + 1))
        .collect()
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Group(g) => write!(f, "allow group {g}")?,
            Subject::AnyUser => write!(f, "allow any-user")?,
        }
        let resource = match self.resource {
            Resource::Repos => "repos",
            Resource::Keys => "keys",
        };
        write!(f, " to {} {resource} in tenancy", self.verb.as_str())?;
        match &self.target {
            Target::All => Ok(()),
            Target::Exact(name) => write!(f, " where target.repo.name = '{name}'"),
            Target::Glob(glob) => write!(f, " where target.repo.name =~ '{glob}'"),
        }
    }
}

/// Glob matching with `*` (any run, `/` included) and `?` (one character). Written here
/// because policy globs need exactly these two wildcards over whole repository paths, which
/// path-oriented glob crates treat differently (`*` stopping at `/`).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_statement_form() {
        let s = parse_statement("allow group Pullers to read repos in tenancy", 1).unwrap();
        assert_eq!(s.subject, Subject::Group("Pullers".into()));
        assert_eq!(
            (s.verb, s.resource, s.target),
            (Verb::Read, Resource::Repos, Target::All)
        );

        let s = parse_statement(
            "ALLOW group ci to manage repos in tenancy where target.repo.name = 'project01/app'",
            1,
        )
        .unwrap();
        assert_eq!(s.target, Target::Exact("project01/app".into()));

        let s = parse_statement(
            "allow any-user to use keys in tenancy where target.repo.name =~ 'p*'",
            1,
        )
        .unwrap();
        assert_eq!(
            (&s.subject, s.resource),
            (&Subject::AnyUser, Resource::Keys)
        );
        assert_eq!(s.target, Target::Glob("p*".into()));
        assert_eq!(
            s.to_string(),
            "allow any-user to use keys in tenancy where target.repo.name =~ 'p*'"
        );
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = parse_policy("# comment\n\nallow group g to fly repos in tenancy").unwrap_err();
        assert_eq!((err.line, err.column), (3, 18));
        assert!(
            err.message.contains("'inspect' or 'read'"),
            "{}",
            err.message
        );

        let err = parse_statement(
            "allow group g to read repos in tenancy where target.repo.name = app",
            1,
        )
        .unwrap_err();
        assert_eq!(err.column, 65);
        let err = parse_statement("allow group g to read repos", 1).unwrap_err();
        assert_eq!(err.column, 28);
        assert!(err.message.contains("end of statement"));
        let err = parse_statement("allow group g to read repos in tenancy extra", 1).unwrap_err();
        assert_eq!(err.column, 40);
        assert!(parse_statement("allow group 'a b' to read repos in tenancy", 1).is_err());
        assert!(
            parse_statement(
                "allow group g to read repos in tenancy where target.repo.name = 'x",
                1
            )
            .is_err()
        );
    }

    #[test]
    fn globs_match_whole_paths() {
        let glob = |p: &str, t: &str| Target::Glob(p.into()).covers(t);
        assert!(glob("project01/*", "project01/app/component"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*-lb", "nginx-lb"));
        assert!(!glob("project01/*", "project02/app"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }
}
