//! Content digests (`algorithm:encoded`) and the streaming hashers that produce them.
//!
//! Parsing follows the image-spec grammar through `oci-spec`; on top of it minato only accepts the
//! algorithms it can compute (sha256, sha512), because a registry must verify every digest it
//! stores.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::DigestAlgorithm;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm minato can compute while streaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the canonical algorithm of the distribution spec.
    Sha256,
    /// SHA-512, optional in the spec and exercised by the conformance suite.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written before the `:` of a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The text does not follow the `algorithm:encoded` grammar.
    #[error("invalid digest {0:?}: {1}")]
    Malformed(String, String),
    /// Well-formed, but an algorithm minato cannot verify.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A saved hasher state could not be restored.
    #[error("corrupt hasher state")]
    CorruptState,
}

/// A validated digest of a supported algorithm, kept in its canonical text form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm: Algorithm,
}

impl Digest {
    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part after the `:`.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The full `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Digest of a byte slice (used for manifests, which are small and held in memory).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finalize()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = oci_spec::image::Digest::from_str(s)
            .map_err(|e| DigestError::Malformed(s.to_owned(), e.to_string()))?;
        let algorithm = match parsed.algorithm() {
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
            DigestAlgorithm::Sha512 => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        Ok(Digest {
            text: s.to_owned(),
            algorithm,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An incremental hasher for one algorithm whose state can be saved and restored, so a resumable
/// upload keeps a one-pass digest across server restarts without re-reading stored bytes.
#[derive(Clone)]
pub enum DigestHasher {
    /// SHA-256 state.
    Sha256(Box<Sha256>),
    /// SHA-512 state.
    Sha512(Box<Sha512>),
}

impl DigestHasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(Box::default()),
            Algorithm::Sha512 => DigestHasher::Sha512(Box::default()),
        }
    }

    /// Which algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            DigestHasher::Sha256(_) => Algorithm::Sha256,
            DigestHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Finishes and returns the digest of everything fed so far.
    pub fn finalize(self) -> Digest {
        let (algorithm, hex) = match self {
            DigestHasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            text: format!("{}:{hex}", algorithm.as_str()),
            algorithm,
        }
    }

    /// The internal state as bytes, to persist between chunks of an upload.
    pub fn save_state(&self) -> Vec<u8> {
        match self {
            DigestHasher::Sha256(h) => h.serialize().to_vec(),
            DigestHasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Rebuilds a hasher from [`DigestHasher::save_state`] output.
    pub fn restore(algorithm: Algorithm, state: &[u8]) -> Result<Self, DigestError> {
        Ok(match algorithm {
            Algorithm::Sha256 => {
                let array = SerializedState::<Sha256>::try_from(state)
                    .map_err(|_| DigestError::CorruptState)?;
                DigestHasher::Sha256(Box::new(
                    Sha256::deserialize(&array).map_err(|_| DigestError::CorruptState)?,
                ))
            }
            Algorithm::Sha512 => {
                let array = SerializedState::<Sha512>::try_from(state)
                    .map_err(|_| DigestError::CorruptState)?;
                DigestHasher::Sha512(Box::new(
                    Sha512::deserialize(&array).map_err(|_| DigestError::CorruptState)?,
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_canonical_digests() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(d.hex().len(), 64);
    }

    #[test]
    fn rejects_malformed_and_unsupported_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            ":abc",
        ] {
            assert!(matches!(
                bad.parse::<Digest>(),
                Err(DigestError::Malformed(..))
            ));
        }
        assert!(matches!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn hashes_empty_input_to_known_values() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").as_str(), EMPTY_SHA256);
        let sha512 = Digest::of(Algorithm::Sha512, b"");
        assert!(sha512.as_str().starts_with("sha512:cf83e1357eefb8bd"));
        assert_eq!(sha512.as_str().parse::<Digest>().unwrap(), sha512);
    }

    #[test]
    fn saved_state_resumes_to_the_same_digest() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = DigestHasher::new(algorithm);
            first.update(b"hello, ");
            let state = first.save_state();
            let mut resumed = DigestHasher::restore(algorithm, &state).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finalize(), Digest::of(algorithm, b"hello, world"));
        }
        assert_eq!(
            DigestHasher::restore(Algorithm::Sha256, b"short").err(),
            Some(DigestError::CorruptState)
        );
    }
}
