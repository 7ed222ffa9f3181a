//! Auth tokens: server-generated secrets used as registry passwords.
//!
//! Tokens are random and high-entropy, so a fast hash is enough to store them (no slow KDF
//! needed: there is nothing to brute-force in 140+ bits); comparisons are constant-time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of generated tokens.
pub const TOKEN_LENGTH: usize = 24;
/// Punctuation mixed into tokens, as managed registries do (it also exercises shell quoting in
/// every place users paste tokens).
const PUNCTUATION: &[u8] = b"]{;)([}-_.+#<>:";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh token: letters, digits and at least three punctuation characters.
pub fn generate() -> String {
    let mut rng = rand::rng();
    loop {
        let token: String = (0..TOKEN_LENGTH)
            .map(|_| {
                if rng.random_ratio(1, 5) {
                    PUNCTUATION[rng.random_range(0..PUNCTUATION.len())] as char
                } else {
                    ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char
                }
            })
            .collect();
        if token.bytes().filter(|b| PUNCTUATION.contains(b)).count() >= 3 {
            return token;
        }
    }
}

/// The stored form of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` hashes to `stored`, in constant time.
pub fn matches(token: &str, stored: &[u8; 32]) -> bool {
    hash(token).ct_eq(stored).into()
}

/// A short public identifier for a token (never derived from the secret).
pub fn generate_id() -> String {
    let bytes: [u8; 8] = rand::rng().random();
    format!("tok-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_contain_punctuation() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LENGTH);
        assert!(a.bytes().filter(|c| PUNCTUATION.contains(c)).count() >= 3);
        assert!(
            a.bytes()
                .all(|c| !c.is_ascii_whitespace() && c != b'"' && c != b'\'')
        );
    }

    #[test]
    fn only_the_exact_token_matches_its_hash() {
        let token = generate();
        let stored = hash(&token);
        assert!(matches(&token, &stored));
        assert!(!matches(&format!("{token} "), &stored));
        assert!(!matches("", &stored));
    }
}
