//! Key types, signing algorithms, which of them go together, and signature verification with
//! a public key.
//!
//! The signing algorithm names are OCI KMS's (`SHA_256_RSA_PKCS_PSS`, `ECDSA_P256_SHA_256`, …)
//! because they are written into OCIR-style payloads and must read the same there. RSA-PSS
//! always uses MGF1 with the message hash and a salt as long as the hash (what KMS services and
//! `openssl -sigopt rsa_pss_saltlen:digest` do).
//!
//! aws-lc-rs offers RSA-PSS only with SHA-256/384/512; `SHA_224_RSA_PKCS_PSS`, which OCIR
//! also signs with, is computed by the RustCrypto `rsa` crate (module `pss224`).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384,
    RSA_PSS_2048_8192_SHA512, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an algorithm name or combination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// Not one of the key algorithms minato can create.
    #[error("unknown key algorithm {0:?}: use rsa-2048, rsa-3072, rsa-4096 or ecdsa-p256")]
    UnknownKeyAlgorithm(String),
    /// Not one of the signing algorithm names.
    #[error(
        "unknown signing algorithm {0:?}: use SHA_256_RSA_PKCS_PSS, SHA_384_RSA_PKCS_PSS, \
         SHA_512_RSA_PKCS_PSS (RSA keys) or ECDSA_P256_SHA_256 (ECDSA keys)"
    )]
    UnknownSigningAlgorithm(String),
    /// The signing algorithm does not fit the key type (e.g. ECDSA with an RSA key).
    #[error("signing algorithm {signing} cannot be used with a {key} key")]
    Mismatch {
        /// The key's algorithm.
        key: KeyAlgorithm,
        /// The requested signing algorithm.
        signing: SigningAlgorithm,
    },
}

/// The type and size of a signing key. RSA keys are what OCIR image signing requires; ECDSA
/// P-256 is cosign's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// ECDSA on the NIST P-256 curve.
    EcdsaP256,
}

impl KeyAlgorithm {
    /// Every key algorithm, for listings and help texts.
    pub const ALL: [KeyAlgorithm; 4] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcdsaP256,
    ];

    /// The name used in the API, the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// Whether this is an RSA key (which signs with the PSS algorithms).
    pub fn is_rsa(self) -> bool {
        !matches!(self, KeyAlgorithm::EcdsaP256)
    }

    /// The algorithm used when a caller does not name one: SHA-256 PSS for RSA keys (OCIR's
    /// usual choice), ECDSA P-256 SHA-256 for ECDSA keys.
    pub fn default_signing_algorithm(self) -> SigningAlgorithm {
        if self.is_rsa() {
            SigningAlgorithm::Sha256RsaPkcsPss
        } else {
            SigningAlgorithm::EcdsaP256Sha256
        }
    }

    /// Whether `signing` belongs to this key type, regardless of whether it is supported.
    pub fn fits(self, signing: SigningAlgorithm) -> bool {
        self.is_rsa() == signing.is_rsa()
    }

    /// Checks that a key of this type can sign with `signing`: the types fit and the
    /// algorithm is supported.
    pub fn check(self, signing: SigningAlgorithm) -> Result<(), AlgorithmError> {
        if !self.fits(signing) {
            return Err(AlgorithmError::Mismatch { key: self, signing });
        }
        Ok(())
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = AlgorithmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AlgorithmError::UnknownKeyAlgorithm(s.to_owned()))
    }
}

impl Serialize for KeyAlgorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A signing algorithm, named as OCI KMS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSA-PSS with SHA-224 (computed by the `rsa` crate, see the module documentation).
    Sha224RsaPkcsPss,
    /// RSA-PSS with SHA-256.
    Sha256RsaPkcsPss,
    /// RSA-PSS with SHA-384.
    Sha384RsaPkcsPss,
    /// RSA-PSS with SHA-512.
    Sha512RsaPkcsPss,
    /// ECDSA on P-256 with SHA-256; the signature is ASN.1 DER (as cosign and KMS write it).
    EcdsaP256Sha256,
}

impl SigningAlgorithm {
    /// Every signing algorithm.
    pub const ALL: [SigningAlgorithm; 5] = [
        SigningAlgorithm::Sha224RsaPkcsPss,
        SigningAlgorithm::Sha256RsaPkcsPss,
        SigningAlgorithm::Sha384RsaPkcsPss,
        SigningAlgorithm::Sha512RsaPkcsPss,
        SigningAlgorithm::EcdsaP256Sha256,
    ];

    /// The KMS name, as written into payloads and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Sha224RsaPkcsPss => "SHA_224_RSA_PKCS_PSS",
            SigningAlgorithm::Sha256RsaPkcsPss => "SHA_256_RSA_PKCS_PSS",
            SigningAlgorithm::Sha384RsaPkcsPss => "SHA_384_RSA_PKCS_PSS",
            SigningAlgorithm::Sha512RsaPkcsPss => "SHA_512_RSA_PKCS_PSS",
            SigningAlgorithm::EcdsaP256Sha256 => "ECDSA_P256_SHA_256",
        }
    }

    /// Whether this is one of the RSA-PSS algorithms.
    pub fn is_rsa(self) -> bool {
        !matches!(self, SigningAlgorithm::EcdsaP256Sha256)
    }

    /// The aws-lc-rs verification parameters, `None` for SHA-224 PSS (verified by `pss224`).
    fn verification(self) -> Option<&'static dyn VerificationAlgorithm> {
        match self {
            SigningAlgorithm::Sha224RsaPkcsPss => None,
            SigningAlgorithm::Sha256RsaPkcsPss => Some(&RSA_PSS_2048_8192_SHA256),
            SigningAlgorithm::Sha384RsaPkcsPss => Some(&RSA_PSS_2048_8192_SHA384),
            SigningAlgorithm::Sha512RsaPkcsPss => Some(&RSA_PSS_2048_8192_SHA512),
            SigningAlgorithm::EcdsaP256Sha256 => Some(&ECDSA_P256_SHA256_ASN1),
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = AlgorithmError;

    /// Case-insensitive, like the OCI CLI's `--signing-algorithm` choice.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AlgorithmError::UnknownSigningAlgorithm(s.to_owned()))
    }
}

impl Serialize for SigningAlgorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Verifies `signature` over `message` with a public key given as PEM text (`PUBLIC KEY`, or
/// `RSA PUBLIC KEY` for RSA) or as DER (SubjectPublicKeyInfo, or PKCS#1 for RSA). Returns
/// false for a bad signature, an unreadable key, a key of the wrong type or size (RSA below
/// 2048 bits).
pub fn verify(
    public_key_pem_or_der: &[u8],
    algorithm: SigningAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let der = if looks_like_pem(public_key_pem_or_der) {
        match pem_decode(public_key_pem_or_der) {
            Some((label, der))
                if label == "PUBLIC KEY" || (label == "RSA PUBLIC KEY" && algorithm.is_rsa()) =>
            {
                der
            }
            _ => return false,
        }
    } else {
        public_key_pem_or_der.to_vec()
    };
    match algorithm.verification() {
        Some(parameters) => UnparsedPublicKey::new(parameters, der)
            .verify(message, signature)
            .is_ok(),
        None => crate::pss224::verify(&der, message, signature),
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// Encodes DER bytes as PEM with the given label (`PUBLIC KEY` for SubjectPublicKeyInfo),
/// 64 characters per line, ending with a newline, the form `openssl` and cosign read.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block of `text`: its label and DER bytes. `None` when there is no
/// well-formed block (mismatched labels, bad base64, headers).
pub fn pem_decode(text: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let rest = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest[..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if body.contains(':') {
        return None;
    }
    let der = STANDARD.decode(body).ok()?;
    Some((label.to_owned(), der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PSS_SHA256, RSA_PSS_SHA384,
        RSA_PSS_SHA512, RsaEncoding,
    };

    #[test]
    fn names_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.to_string().parse::<KeyAlgorithm>(), Ok(algorithm));
        }
        for algorithm in SigningAlgorithm::ALL {
            assert_eq!(
                algorithm.to_string().parse::<SigningAlgorithm>(),
                Ok(algorithm)
            );
        }
        assert_eq!(
            "sha_384_rsa_pkcs_pss".parse::<SigningAlgorithm>(),
            Ok(SigningAlgorithm::Sha384RsaPkcsPss)
        );
        assert_eq!(
            "RSA-4096".parse::<KeyAlgorithm>(),
            Ok(KeyAlgorithm::Rsa4096)
        );
        assert!(matches!(
            "rsa-1024".parse::<KeyAlgorithm>(),
            Err(AlgorithmError::UnknownKeyAlgorithm(_))
        ));
        assert!(matches!(
            "SHA_256_RSA_PKCS1".parse::<SigningAlgorithm>(),
            Err(AlgorithmError::UnknownSigningAlgorithm(_))
        ));
        assert_eq!(
            serde_json::to_string(&SigningAlgorithm::EcdsaP256Sha256).unwrap(),
            "\"ECDSA_P256_SHA_256\""
        );
        assert_eq!(
            serde_json::from_str::<KeyAlgorithm>("\"ecdsa-p256\"").unwrap(),
            KeyAlgorithm::EcdsaP256
        );
    }

    #[test]
    fn combinations_and_defaults() {
        for key in KeyAlgorithm::ALL {
            assert!(key.fits(key.default_signing_algorithm()));
            assert_eq!(key.check(key.default_signing_algorithm()), Ok(()));
            for signing in SigningAlgorithm::ALL {
                let expected = if key.is_rsa() != signing.is_rsa() {
                    Err(AlgorithmError::Mismatch { key, signing })
                } else {
                    Ok(())
                };
                assert_eq!(key.check(signing), expected, "{key} with {signing}");
            }
        }
        assert_eq!(
            KeyAlgorithm::Rsa2048.default_signing_algorithm(),
            SigningAlgorithm::Sha256RsaPkcsPss
        );
        assert_eq!(
            KeyAlgorithm::EcdsaP256.default_signing_algorithm(),
            SigningAlgorithm::EcdsaP256Sha256
        );
    }

    #[test]
    fn pem_round_trip_and_rejects() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = pem_encode("PUBLIC KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(
            pem_decode(pem.as_bytes()),
            Some(("PUBLIC KEY".to_owned(), der))
        );
        assert_eq!(
            pem_decode(b"-----BEGIN A-----\nAAAA\n-----END B-----\n"),
            None
        );
        assert_eq!(
            pem_decode(b"-----BEGIN A-----\nProc-Type: 4\nAAAA\n-----END A-----\n"),
            None
        );
        assert_eq!(
            pem_decode(b"-----BEGIN A-----\n!!!!\n-----END A-----\n"),
            None
        );
    }

    fn rsa_case(size: KeySize, signing: SigningAlgorithm, encoding: &'static dyn RsaEncoding) {
        let pair = aws_lc_rs::rsa::KeyPair::generate(size).unwrap();
        let message = b"payload bytes";
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(encoding, &SystemRandom::new(), message, &mut signature)
            .unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let pem = pem_encode("PUBLIC KEY", spki.as_ref());
        assert!(verify(spki.as_ref(), signing, message, &signature));
        assert!(verify(pem.as_bytes(), signing, message, &signature));
        // PKCS#1 RSAPublicKey is accepted too.
        let pkcs1 = pem_encode("RSA PUBLIC KEY", pair.public_key().as_ref());
        assert!(verify(pkcs1.as_bytes(), signing, message, &signature));
        assert!(!verify(pem.as_bytes(), signing, b"other bytes", &signature));
        let mut tampered = signature.clone();
        tampered[10] ^= 1;
        assert!(!verify(pem.as_bytes(), signing, message, &tampered));
        // Another hash, and ECDSA, do not verify a PSS signature.
        for other in SigningAlgorithm::ALL.into_iter().filter(|a| *a != signing) {
            assert!(
                !verify(pem.as_bytes(), other, message, &signature),
                "{other}"
            );
        }
    }

    #[test]
    fn rsa_pss_verification() {
        rsa_case(
            KeySize::Rsa2048,
            SigningAlgorithm::Sha256RsaPkcsPss,
            &RSA_PSS_SHA256,
        );
        rsa_case(
            KeySize::Rsa2048,
            SigningAlgorithm::Sha384RsaPkcsPss,
            &RSA_PSS_SHA384,
        );
        rsa_case(
            KeySize::Rsa3072,
            SigningAlgorithm::Sha512RsaPkcsPss,
            &RSA_PSS_SHA512,
        );
    }

    #[test]
    fn ecdsa_verification() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let message = b"cosign payload";
        let signature = pair.sign(&rng, message).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let pem = pem_encode("PUBLIC KEY", spki.as_ref());
        let alg = SigningAlgorithm::EcdsaP256Sha256;
        assert!(verify(pem.as_bytes(), alg, message, signature.as_ref()));
        assert!(verify(spki.as_ref(), alg, message, signature.as_ref()));
        assert!(!verify(pem.as_bytes(), alg, b"x", signature.as_ref()));
        assert!(!verify(
            pem.as_bytes(),
            SigningAlgorithm::Sha256RsaPkcsPss,
            message,
            signature.as_ref()
        ));
        // An RSA-labelled block never carries an EC key.
        let mislabelled = pem_encode("RSA PUBLIC KEY", spki.as_ref());
        assert!(!verify(
            mislabelled.as_bytes(),
            alg,
            message,
            signature.as_ref()
        ));
        assert!(!verify(b"garbage", alg, message, signature.as_ref()));
    }

    #[test]
    fn sha224_signatures_verify_only_as_sha224() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let pkcs8 =
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let signature = crate::pss224::sign(pkcs8.as_ref(), b"m").unwrap();
        assert!(verify(
            spki.as_ref(),
            SigningAlgorithm::Sha224RsaPkcsPss,
            b"m",
            &signature
        ));
        assert!(!verify(
            spki.as_ref(),
            SigningAlgorithm::Sha224RsaPkcsPss,
            b"n",
            &signature
        ));
        assert!(!verify(
            spki.as_ref(),
            SigningAlgorithm::Sha256RsaPkcsPss,
            b"m",
            &signature
        ));
    }
}
