//! Tenancy namespaces and login names.
//!
//! A login name is `<namespace>/<user>` or, for a federated user, `<namespace>/<idp>/<user>`;
//! the user part may be an email address. The namespace is what repositories are named under
//! (`<namespace>/<repo path>`), so it follows the repository-name alphabet.

use rand::Rng;

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Namespaces are 2–63 lowercase letters and digits.
    #[error("invalid tenancy namespace {0:?}: use 2 to 63 lowercase letters and digits")]
    Namespace(String),
    /// User names are non-empty, without whitespace, `:` or control characters.
    #[error("invalid user name {0:?}")]
    User(String),
    /// Group names are non-empty words without whitespace or quotes.
    #[error("invalid group name {0:?}")]
    Group(String),
    /// A login without a namespace part.
    #[error("username {0:?} must have the form <tenancy-namespace>/<username>")]
    MissingNamespace(String),
}

/// Checks a tenancy namespace.
pub fn validate_namespace(namespace: &str) -> Result<(), NameError> {
    let ok = (2..=63).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| NameError::Namespace(namespace.to_owned()))
}

/// A random namespace in the style of managed registries (`ansh81vru1zp`): 12 characters,
/// starting with a letter.
pub fn generate_namespace() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut out = String::with_capacity(12);
    out.push(LETTERS[rng.random_range(0..LETTERS.len())] as char);
    for _ in 1..12 {
        out.push(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char);
    }
    out
}

/// Checks a user name, which may carry an identity-provider prefix (`idp/user`).
pub fn validate_user(name: &str) -> Result<(), NameError> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 128
                && p.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != ':')
        });
    ok.then_some(())
        .ok_or_else(|| NameError::User(name.to_owned()))
}

/// Checks a group name.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    ok.then_some(())
        .ok_or_else(|| NameError::Group(name.to_owned()))
}

/// A login name split into tenancy namespace and user name (which keeps any `idp/` prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login {
    /// Tenancy namespace.
    pub namespace: String,
    /// User within the tenancy, e.g. `jdoe@acme.com` or `oracleidentitycloudservice/jdoe@acme.com`.
    pub user: String,
}

impl Login {
    /// Splits `<namespace>/<user>` or `<namespace>/<idp>/<user>`.
    pub fn parse(login: &str) -> Result<Login, NameError> {
        let (namespace, user) = login
            .split_once('/')
            .ok_or_else(|| NameError::MissingNamespace(login.to_owned()))?;
        validate_namespace(namespace).map_err(|_| NameError::MissingNamespace(login.to_owned()))?;
        validate_user(user)?;
        Ok(Login {
            namespace: namespace.to_owned(),
            user: user.to_owned(),
        })
    }
}

impl std::fmt::Display for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_split_namespace_and_user() {
        let plain = Login::parse("ansh81vru1zp/jdoe@acme.com").unwrap();
        assert_eq!(plain.namespace, "ansh81vru1zp");
        assert_eq!(plain.user, "jdoe@acme.com");
        let federated =
            Login::parse("ansh81vru1zp/oracleidentitycloudservice/jdoe@acme.com").unwrap();
        assert_eq!(federated.user, "oracleidentitycloudservice/jdoe@acme.com");
        assert_eq!(
            federated.to_string(),
            "ansh81vru1zp/oracleidentitycloudservice/jdoe@acme.com"
        );
    }

    #[test]
    fn logins_without_namespace_name_the_expected_form() {
        let err = Login::parse("jdoe@acme.com").unwrap_err();
        assert!(err.to_string().contains("<tenancy-namespace>/<username>"));
        assert!(Login::parse("Acme/jdoe").is_err());
        assert!(Login::parse("ns/a/b/c").is_err());
        assert!(Login::parse("ns/").is_err());
    }

    #[test]
    fn namespaces_are_short_lowercase_alphanumerics() {
        assert!(validate_namespace("ansh81vru1zp").is_ok());
        for bad in ["a", "Acme", "acme-dev", &"a".repeat(64), ""] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
        for _ in 0..50 {
            let generated = generate_namespace();
            assert!(validate_namespace(&generated).is_ok());
            assert!(generated.as_bytes()[0].is_ascii_lowercase());
        }
    }
}
