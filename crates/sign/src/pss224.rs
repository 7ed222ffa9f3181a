//! RSA-PSS with SHA-224 (salt length 28, MGF1 with SHA-224): one of the managed service's
//! signing algorithms that aws-lc-rs does not offer, so the RustCrypto `rsa` crate computes
//! it. Every other algorithm goes through aws-lc-rs.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::pss::{Signature, SigningKey, VerifyingKey};
use rsa::rand_core::UnwrapErr;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::{PrivateKey, PublicKey};
use sha2::Sha224;

/// Signs `message` with a PKCS#8 RSA private key.
pub fn sign(pkcs8: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    let key = PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())?;
    let signature = SigningKey::<Sha224>::new(key)
        .try_sign_with_rng(&mut UnwrapErr(getrandom::SysRng), message)
        .map_err(|e| e.to_string())?;
    Ok(signature.to_vec())
}

/// Verifies a signature with an RSA public key in SubjectPublicKeyInfo or PKCS#1 DER.
pub fn verify(public_key_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let key = PublicKey::from_public_key_der(public_key_der)
        .or_else(|_| PublicKey::from_pkcs1_der(public_key_der));
    let (Ok(key), Ok(signature)) = (key, Signature::try_from(signature)) else {
        return false;
    };
    VerifyingKey::<Sha224>::new(key)
        .verify(message, &signature)
        .is_ok()
}
