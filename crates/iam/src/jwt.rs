//! Registry bearer tokens (the Docker token protocol): ES256 JWTs with a `kid` header and
//! `access` claims, signed by keys that persist in `iam.db` and can be rotated. Retired keys
//! keep verifying until every token they signed has expired.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::directory::{IamError, now};

/// Issuer written into every token.
pub const ISSUER: &str = "minato";

/// One grant of the `access` claim, as in the distribution token spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Repository name (or `catalog`).
    pub name: String,
    /// Granted actions (`pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

/// The claims of a registry token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The login, `<namespace>/<user>`, or empty for anonymous.
    pub sub: String,
    /// The service (registry host) it is valid for.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique id.
    pub jti: String,
    /// What the token allows.
    pub access: Vec<Access>,
    /// For refresh tokens: the auth token they derive from (checked on use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// `refresh` for refresh tokens, absent for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, unknown key, expired, wrong audience or malformed.
    #[error("invalid registry token: {0}")]
    Invalid(String),
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
}

struct Keys {
    current: SigningKey,
    verifying: HashMap<String, (DecodingKey, Option<i64>)>,
}

/// Signs and verifies registry tokens.
pub struct TokenService {
    pool: SqlitePool,
    keys: RwLock<Keys>,
    lifetime: Duration,
    refresh_lifetime: Duration,
}

fn public_key(pkcs8: &[u8]) -> Result<DecodingKey, IamError> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|e| IamError::Key(format!("stored signing key is unreadable: {e}")))?;
    Ok(DecodingKey::from_ec_der(pair.public_key().as_ref()))
}

fn new_kid() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

impl TokenService {
    /// Loads the signing keys, creating the first one if there is none.
    pub(crate) async fn load(
        pool: SqlitePool,
        lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Result<TokenService, IamError> {
        let rows: Vec<(String, Vec<u8>, Option<i64>)> =
            sqlx::query_as("SELECT kid, pkcs8, retired_at FROM signing_keys ORDER BY created_at")
                .fetch_all(&pool)
                .await?;
        let mut verifying = HashMap::new();
        let mut current = None;
        for (kid, pkcs8, retired_at) in rows {
            verifying.insert(kid.clone(), (public_key(&pkcs8)?, retired_at));
            if retired_at.is_none() {
                current = Some(SigningKey {
                    kid,
                    encoding: EncodingKey::from_ec_der(&pkcs8),
                });
            }
        }
        let current = match current {
            Some(current) => current,
            None => {
                let (key, decoding) = Self::generate(&pool).await?;
                verifying.insert(key.kid.clone(), (decoding, None));
                key
            }
        };
        Ok(TokenService {
            pool,
            keys: RwLock::new(Keys { current, verifying }),
            lifetime,
            refresh_lifetime,
        })
    }

    async fn generate(pool: &SqlitePool) -> Result<(SigningKey, DecodingKey), IamError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| IamError::Key(format!("generating a signing key: {e}")))?;
        let kid = new_kid();
        sqlx::query("INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES (?, ?, ?)")
            .bind(&kid)
            .bind(pkcs8.as_ref())
            .bind(now())
            .execute(pool)
            .await?;
        Ok((
            SigningKey {
                kid,
                encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            },
            public_key(pkcs8.as_ref())?,
        ))
    }

    /// How long access tokens live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Makes a new key current; the old one keeps verifying until its tokens have expired.
    /// Returns the new key id.
    pub async fn rotate(&self) -> Result<String, IamError> {
        let (key, decoding) = Self::generate(&self.pool).await?;
        let now = now();
        let retired = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.current.kid.clone()
        };
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE kid = ?")
            .bind(now)
            .bind(&retired)
            .execute(&self.pool)
            .await?;
        let horizon = now - self.refresh_lifetime.max(self.lifetime).as_secs() as i64;
        sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?")
            .bind(horizon)
            .execute(&self.pool)
            .await?;
        let kid = key.kid.clone();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = keys.verifying.get_mut(&retired) {
            old.1 = Some(now);
        }
        keys.verifying
            .retain(|_, (_, retired_at)| retired_at.is_none_or(|r| r >= horizon));
        keys.verifying.insert(kid.clone(), (decoding, None));
        keys.current = key;
        Ok(kid)
    }

    fn sign(&self, claims: &Claims) -> Result<String, IamError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.current.kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.current.encoding)
            .map_err(|e| IamError::Key(format!("signing a token: {e}")))
    }

    /// Issues an access token for `subject` with `access` grants for `service`.
    pub fn issue(
        &self,
        subject: &str,
        service: &str,
        access: Vec<Access>,
    ) -> Result<(String, Claims), IamError> {
        let now = now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: subject.to_owned(),
            aud: service.to_owned(),
            exp: now + self.lifetime.as_secs() as i64,
            nbf: now - 1,
            iat: now,
            jti: new_kid(),
            access,
            tid: None,
            typ: None,
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Issues a refresh token bound to the auth token `token_id` of `subject`.
    pub fn issue_refresh(
        &self,
        subject: &str,
        service: &str,
        token_id: Option<&str>,
    ) -> Result<String, IamError> {
        let now = now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: subject.to_owned(),
            aud: service.to_owned(),
            exp: now + self.refresh_lifetime.as_secs() as i64,
            nbf: now - 1,
            iat: now,
            jti: new_kid(),
            access: Vec::new(),
            tid: token_id.map(str::to_owned),
            typ: Some("refresh".to_owned()),
        };
        self.sign(&claims)
    }

    /// Verifies a token's signature, issuer and time window.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid".into()))?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (key, _) = keys
            .verifying
            .get(&kid)
            .ok_or_else(|| TokenError::Invalid("unknown signing key".into()))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service(dir: &std::path::Path) -> TokenService {
        let pool = crate::db::open(&dir.join("iam.db")).await.unwrap();
        TokenService::load(pool, Duration::from_secs(300), Duration::from_secs(3600))
            .await
            .unwrap()
    }

    fn pull(name: &str) -> Vec<Access> {
        vec![Access {
            kind: "repository".into(),
            name: name.into(),
            actions: vec!["pull".into()],
        }]
    }

    #[tokio::test]
    async fn issued_tokens_verify_and_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (token, _) = service(dir.path())
            .await
            .issue("ns/u", "reg", pull("ns/a"))
            .unwrap();
        let reopened = service(dir.path()).await;
        let claims = reopened.verify(&token).unwrap();
        assert_eq!(claims.sub, "ns/u");
        assert_eq!(claims.access, pull("ns/a"));
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::ES256
        );
    }

    #[tokio::test]
    async fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = service(dir.path()).await;
        let (old, _) = tokens.issue("ns/u", "reg", pull("ns/a")).unwrap();
        let kid = tokens.rotate().await.unwrap();
        let (new, _) = tokens.issue("ns/u", "reg", pull("ns/a")).unwrap();
        assert!(tokens.verify(&old).is_ok());
        assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.unwrap(), kid);
        assert!(service(dir.path()).await.verify(&old).is_ok());
    }

    #[tokio::test]
    async fn tampered_and_foreign_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = service(dir.path()).await;
        let (token, _) = tokens.issue("ns/u", "reg", pull("ns/a")).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replace('a', "b");
        assert!(tokens.verify(&parts.join(".")).is_err());
        let other = tempfile::tempdir().unwrap();
        let (foreign, _) = service(other.path())
            .await
            .issue("ns/u", "reg", vec![])
            .unwrap();
        assert!(tokens.verify(&foreign).is_err());
        assert!(tokens.verify("not a token").is_err());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("iam.db")).await.unwrap();
        let tokens = TokenService::load(pool, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap();
        let (token, _) = tokens.issue("ns/u", "reg", vec![]).unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(tokens.verify(&token).is_err());
    }
}
