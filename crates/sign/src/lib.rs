//! Image signing for minato: tenancy signing keys held by the server, and the two signature
//! formats clusters check.
//!
//! - [`vault`]: keys per tenancy in `keys.db`, private keys sealed under a root key and used
//!   only inside [`Vault::sign`]; rotation, enable/disable, public keys as PEM.
//! - [`algorithms`]: key types and KMS signing-algorithm names, which go together, and
//!   [`verify`] with a public key.
//! - [`payload`]: the OCIR-style signed payload (byte-identical to the OCI CLI's).
//! - [`artifact`]: how minato stores such a signature in the registry (an OCI 1.1 referrer).
//! - [`cosign`]: cosign's simple-signing payload and `.sig` manifest, for ECDSA keys.
//! - [`verification`]: whether a signature vouches for an image, with a reason when not.
//!
//! Nothing here speaks HTTP: the registry wires the vault to its admin API and pushes the
//! artifacts through its store.

pub mod algorithms;
pub mod artifact;
pub mod cosign;
mod jsonfmt;
pub mod payload;
mod pss224;
pub mod vault;
pub mod verification;

pub use algorithms::{AlgorithmError, KeyAlgorithm, SigningAlgorithm, verify};
pub use artifact::{
    ArtifactError, Descriptor, SignatureRecord, parse_signature_manifest, signature_manifest,
};
pub use payload::{Payload, PayloadError};
pub use vault::{
    KeyInfo, KeyState, KeyVersionInfo, RootKey, Signature, Vault, VaultError, key_id,
    key_version_id, parse_key_version_id,
};
pub use verification::{
    TrustedKey, TrustedKeyVersion, VerifyFailure, verify_cosign, verify_record,
};
