//! The key vault: signing keys per tenancy in their own SQLite file (`<data-dir>/keys.db`).
//!
//! A key (`<namespace>/<name>`, the `kmsKeyId`) has numbered versions
//! (`<namespace>/<name>/<version>`, the `kmsKeyVersionId`); rotation adds a version and makes
//! it current, and old versions keep verifying what they signed. A key or a single version
//! can be disabled: it then neither signs nor verifies.
//!
//! Private keys never leave the vault through any API. Each is stored as PKCS#8 sealed with
//! AES-256-GCM under the [`RootKey`], with a random 96-bit nonce per key and, as associated
//! data, the key version id, the algorithm and the public key (so a sealed key cannot be moved
//! to another row, and a public key cannot be swapped under it). Public keys are stored in the
//! clear next to a GMAC tag under the root key, so verification never trusts a public key that
//! someone with write access to `keys.db` but without the root key put there. A private key is
//! decrypted only inside [`Vault::sign`], into a [`Zeroizing`] buffer that is wiped as soon as
//! the signature is made.
//!
//! The root key is checked when the vault opens (a sealed known value is stored on first
//! use), so a wrong `MINATO_ROOT_KEY` fails at start with [`VaultError::WrongRootKey`] rather
//! than producing garbage later.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PSS_SHA256, RSA_PSS_SHA384,
    RSA_PSS_SHA512, RsaEncoding,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::algorithms::{AlgorithmError, KeyAlgorithm, SigningAlgorithm, pem_encode};
use crate::verification::{TrustedKey, TrustedKeyVersion};

/// File name of the vault database inside the data directory.
pub const KEYS_DB: &str = "keys.db";

/// Ordered schema migrations of `keys.db`; index + 1 is the resulting `user_version`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE vault (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    check_nonce BLOB NOT NULL,
    check_box   BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE keys (
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    current_version INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE key_versions (
    namespace          TEXT NOT NULL,
    name               TEXT NOT NULL,
    version            INTEGER NOT NULL,
    enabled            INTEGER NOT NULL,
    public_key         BLOB NOT NULL,
    public_key_tag     BLOB NOT NULL,
    nonce              BLOB NOT NULL,
    sealed_private_key BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (namespace, name, version),
    FOREIGN KEY (namespace, name) REFERENCES keys(namespace, name)
);
"#];

/// Plaintext sealed into the `vault` row to recognise the root key at open.
const CHECK_PLAINTEXT: &[u8] = b"minato-sign vault root key check v1";
const CHECK_AAD: &[u8] = b"minato-sign/vault-check/v1";

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The root key could not be read, created or decoded.
    #[error("root key: {0}")]
    RootKey(String),
    /// The vault was created under another root key.
    #[error(
        "the root key does not open the key vault {0}: it is not the root key this vault was \
         created with (check MINATO_ROOT_KEY or the root key file)"
    )]
    WrongRootKey(PathBuf),
    /// A stored key failed its integrity check (tampered or corrupted row).
    #[error(
        "stored key {0} failed its integrity check: the key database was modified or is corrupt"
    )]
    Corrupt(String),
    /// A tenancy namespace that does not follow the namespace rules.
    #[error("invalid tenancy namespace {0:?}: use 2 to 63 lowercase letters and digits")]
    InvalidNamespace(String),
    /// A key name that does not follow the key name rules.
    #[error(
        "invalid key name {0:?}: use 1 to 100 letters, digits, '.', '_' or '-', starting with a \
         letter or digit"
    )]
    InvalidName(String),
    /// A key with this id already exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// No key with this id.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key exists but not this version.
    #[error("key version {0} not found")]
    VersionNotFound(String),
    /// The key, or the requested version, is disabled.
    #[error("key {0} is disabled")]
    Disabled(String),
    /// The signing algorithm does not fit the key or is not supported.
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    /// The crypto library refused an operation (key generation, signing).
    #[error("crypto operation failed: {0}")]
    Crypto(String),
    /// A file-system error, with the path it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("key database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The 32-byte key that seals every private key in the vault. Wiped from memory when dropped;
/// never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey([u8; RootKey::LEN]);

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

impl RootKey {
    /// Length of a root key in bytes (an AES-256 key).
    pub const LEN: usize = 32;

    /// A new random root key.
    pub fn generate() -> Result<RootKey, VaultError> {
        let mut bytes = [0u8; Self::LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| VaultError::RootKey("the system random generator failed".into()))?;
        Ok(RootKey(bytes))
    }

    /// Wraps existing key bytes (the caller should wipe its copy).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> RootKey {
        RootKey(bytes)
    }

    /// Reads the root key from `text`, the value of `MINATO_ROOT_KEY`: standard base64 of
    /// exactly 32 bytes (surrounding whitespace ignored). The error never repeats the text.
    pub fn from_env_base64(text: &str) -> Result<RootKey, VaultError> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            VaultError::RootKey(
                "MINATO_ROOT_KEY is not standard base64 (generate one with `openssl rand -base64 32`)"
                    .into(),
            )
        })?);
        Self::from_slice(&decoded, "MINATO_ROOT_KEY")
    }

    fn from_slice(bytes: &[u8], origin: &str) -> Result<RootKey, VaultError> {
        let array: [u8; Self::LEN] = bytes.try_into().map_err(|_| {
            VaultError::RootKey(format!(
                "{origin} holds {} bytes; a root key is exactly {} bytes",
                bytes.len(),
                Self::LEN
            ))
        })?;
        Ok(RootKey(array))
    }

    /// Reads the root key file at `path`, creating it with 32 random bytes and mode 0600 on
    /// first start. Creation is atomic (a temporary file hard-linked into place), so a crash
    /// never leaves a short key file, and two processes starting together agree on one key.
    pub fn load_or_create(path: &Path) -> Result<RootKey, VaultError> {
        match Self::load(path) {
            Err(VaultError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            other => return other,
        }
        let io = |context: String| move |source| VaultError::Io { context, source };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let key = Self::generate()?;
        let mut suffix = [0u8; 8];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| VaultError::RootKey("the system random generator failed".into()))?;
        let temp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("root-key"),
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let written = (|| -> Result<(), VaultError> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options
                .open(&temp)
                .map_err(io(format!("creating {}", temp.display())))?;
            file.write_all(&key.0)
                .and_then(|()| file.sync_all())
                .map_err(io(format!("writing {}", temp.display())))?;
            match std::fs::hard_link(&temp, path) {
                Ok(()) => Ok(()),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(io(format!("creating {}", path.display()))(e)),
            }
        })();
        let _ = std::fs::remove_file(&temp);
        written?;
        if let Ok(handle) = std::fs::File::open(&dir) {
            let _ = handle.sync_all();
        }
        Self::load(path)
    }

    fn load(path: &Path) -> Result<RootKey, VaultError> {
        let file = std::fs::File::open(path).map_err(|source| VaultError::Io {
            context: format!("reading root key file {}", path.display()),
            source,
        })?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(Self::LEN + 1));
        file.take(Self::LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| VaultError::Io {
                context: format!("reading root key file {}", path.display()),
                source,
            })?;
        Self::from_slice(&bytes, &format!("root key file {}", path.display()))
    }

    fn sealing_key(&self) -> Result<LessSafeKey, VaultError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.0)
            .map_err(|_| VaultError::Crypto("AES-256-GCM key setup".into()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

/// Whether a key or key version may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyState {
    /// Signs (if current or named) and verifies.
    Enabled,
    /// Neither signs nor verifies.
    Disabled,
}

impl KeyState {
    fn from_flag(enabled: bool) -> KeyState {
        if enabled {
            KeyState::Enabled
        } else {
            KeyState::Disabled
        }
    }
}

/// One version of a key, as listed (never with private material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersionInfo {
    /// Version number, from 1.
    pub version: u32,
    /// `<namespace>/<name>/<version>`, the payload's `kmsKeyVersionId`.
    pub key_version_id: String,
    /// Whether this version may be used.
    pub state: KeyState,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: i64,
}

/// A key, as listed (never with private material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// Tenancy namespace owning the key.
    pub namespace: String,
    /// Key name, unique within the tenancy.
    pub name: String,
    /// `<namespace>/<name>`, the payload's `kmsKeyId`.
    pub key_id: String,
    /// Key type and size.
    pub algorithm: KeyAlgorithm,
    /// Whether the key as a whole may be used.
    pub state: KeyState,
    /// The version that signs when none is named.
    pub current_version: u32,
    /// Every version, oldest first.
    pub versions: Vec<KeyVersionInfo>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: i64,
}

/// A signature made by the vault, with the ids of the key version that made it.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    /// `<namespace>/<name>`.
    pub key_id: String,
    /// `<namespace>/<name>/<version>`.
    pub key_version_id: String,
    /// The algorithm used.
    pub algorithm: SigningAlgorithm,
    /// The signature bytes (RSA-PSS: modulus length; ECDSA: ASN.1 DER).
    pub bytes: Vec<u8>,
}

impl Signature {
    /// The signature bytes in standard base64, as stored in annotations and APIs.
    pub fn base64(&self) -> String {
        STANDARD.encode(&self.bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("key_version_id", &self.key_version_id)
            .field("algorithm", &self.algorithm)
            .field("bytes", &self.base64())
            .finish()
    }
}

/// `<namespace>/<name>`: the `kmsKeyId` of a key.
pub fn key_id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `<namespace>/<name>/<version>`: the `kmsKeyVersionId` of a key version.
pub fn key_version_id(namespace: &str, name: &str, version: u32) -> String {
    format!("{namespace}/{name}/{version}")
}

/// Splits a `kmsKeyVersionId` into namespace, name and version; `None` if it does not have
/// that shape (a version is a decimal number from 1, without leading zeros).
pub fn parse_key_version_id(text: &str) -> Option<(&str, &str, u32)> {
    let mut parts = text.split('/');
    let (namespace, name, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || validate_namespace(namespace).is_err()
        || validate_name(name).is_err()
        || version.starts_with('0')
        || !version.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((namespace, name, version.parse().ok()?))
}

fn validate_namespace(namespace: &str) -> Result<(), VaultError> {
    let ok = (2..=63).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| VaultError::InvalidNamespace(namespace.to_owned()))
}

fn validate_name(name: &str) -> Result<(), VaultError> {
    let ok = (1..=100).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(())
        .ok_or_else(|| VaultError::InvalidName(name.to_owned()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| VaultError::Crypto("the system random generator failed".into()))?;
    Ok(nonce)
}

/// Associated data binding a sealed private key to its row and its public key.
fn private_aad(version_id: &str, algorithm: KeyAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let mut aad = format!("minato-sign/private-key/v1\0{version_id}\0{algorithm}\0").into_bytes();
    aad.extend_from_slice(public_key);
    aad
}

/// Associated data of the GMAC tag over a public key.
fn public_aad(version_id: &str, algorithm: KeyAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let mut aad = format!("minato-sign/public-key/v1\0{version_id}\0{algorithm}\0").into_bytes();
    aad.extend_from_slice(public_key);
    aad
}

/// A freshly generated key version, private part still in the clear (wiped on drop).
struct NewKeyMaterial {
    pkcs8: Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
}

fn generate_key(algorithm: KeyAlgorithm) -> Result<NewKeyMaterial, VaultError> {
    let crypto = |what: &str| VaultError::Crypto(format!("generating a {algorithm} key: {what}"));
    match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            let document =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                    .map_err(|_| crypto("key generation"))?;
            let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
                .map_err(|_| crypto("reading the new key"))?;
            let public_key = pair
                .public_key()
                .as_der()
                .map_err(|_| crypto("encoding the public key"))?
                .as_ref()
                .to_vec();
            Ok(NewKeyMaterial { pkcs8, public_key })
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match algorithm {
                KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let pair = RsaKeyPair::generate(size).map_err(|_| crypto("key generation"))?;
            let document = pair
                .as_der()
                .map_err(|_| crypto("encoding the private key"))?;
            let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
            let public_key = pair
                .public_key()
                .as_der()
                .map_err(|_| crypto("encoding the public key"))?
                .as_ref()
                .to_vec();
            Ok(NewKeyMaterial { pkcs8, public_key })
        }
    }
}

/// Signs with a decrypted PKCS#8 key. Runs on a blocking thread (RSA is slow).
fn sign_with(
    algorithm: KeyAlgorithm,
    signing: SigningAlgorithm,
    pkcs8: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let rng = SystemRandom::new();
    let failed = |what: &str| VaultError::Crypto(format!("signing with {signing}: {what}"));
    if !algorithm.is_rsa() {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .map_err(|_| failed("stored key unreadable"))?;
        let signature = pair.sign(&rng, message).map_err(|_| failed("sign"))?;
        return Ok(signature.as_ref().to_vec());
    }
    let encoding: &'static dyn RsaEncoding = match signing {
        SigningAlgorithm::Sha256RsaPkcsPss => &RSA_PSS_SHA256,
        SigningAlgorithm::Sha384RsaPkcsPss => &RSA_PSS_SHA384,
        SigningAlgorithm::Sha512RsaPkcsPss => &RSA_PSS_SHA512,
        SigningAlgorithm::Sha224RsaPkcsPss => {
            return crate::pss224::sign(pkcs8, message).map_err(|e| failed(&e));
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            return Err(AlgorithmError::Mismatch {
                key: algorithm,
                signing,
            }
            .into());
        }
    };
    let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| failed("stored key unreadable"))?;
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(encoding, &rng, message, &mut signature)
        .map_err(|_| failed("sign"))?;
    Ok(signature)
}

/// One stored key version row.
struct VersionRow {
    version: u32,
    enabled: bool,
    public_key: Vec<u8>,
    public_key_tag: Vec<u8>,
    created_at: i64,
}

/// `version, enabled, public_key, public_key_tag, created_at` of `key_versions`.
type VersionColumns = (i64, bool, Vec<u8>, Vec<u8>, i64);

/// One stored key row.
struct KeyRow {
    algorithm: KeyAlgorithm,
    enabled: bool,
    current_version: u32,
    created_at: i64,
}

/// The signing-key vault of a minato instance. Cheap to share behind an `Arc`; all methods
/// take `&self`.
pub struct Vault {
    pool: SqlitePool,
    sealing: LessSafeKey,
    path: PathBuf,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("path", &self.path).finish()
    }
}

impl Vault {
    /// Opens (creating if needed) `<data_dir>/keys.db`, applies migrations, and checks that
    /// `root` is the key the vault was created with ([`VaultError::WrongRootKey`] otherwise).
    pub async fn open(data_dir: &Path, root: RootKey) -> Result<Vault, VaultError> {
        std::fs::create_dir_all(data_dir).map_err(|source| VaultError::Io {
            context: format!("creating {}", data_dir.display()),
            source,
        })?;
        let path = data_dir.join(KEYS_DB);
        // One connection: writes are rare and SQLite serialises them anyway; this also keeps
        // read-then-write transactions (rotation) free of lock upgrades.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(minato_db::connect_options(&path))
            .await?;
        minato_db::migrate(&pool, MIGRATIONS).await?;
        let sealing = root.sealing_key()?;
        drop(root);
        let vault = Vault {
            pool,
            sealing,
            path,
        };
        vault.check_root_key().await?;
        Ok(vault)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the database (waits for the connection to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn check_root_key(&self) -> Result<(), VaultError> {
        let nonce = random_nonce()?;
        let mut sealed = CHECK_PLAINTEXT.to_vec();
        self.sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(CHECK_AAD),
                &mut sealed,
            )
            .map_err(|_| VaultError::Crypto("sealing the root key check".into()))?;
        sqlx::query(
            "INSERT OR IGNORE INTO vault (id, check_nonce, check_box, created_at) VALUES (1, ?, ?, ?)",
        )
        .bind(nonce.as_slice())
        .bind(&sealed)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let (nonce, mut sealed): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT check_nonce, check_box FROM vault WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        let nonce = Nonce::try_assume_unique_for_key(&nonce)
            .map_err(|_| VaultError::WrongRootKey(self.path.clone()))?;
        match self
            .sealing
            .open_in_place(nonce, Aad::from(CHECK_AAD), &mut sealed)
        {
            Ok(plain) if plain == CHECK_PLAINTEXT => Ok(()),
            _ => Err(VaultError::WrongRootKey(self.path.clone())),
        }
    }

    fn seal(
        &self,
        version_id: &str,
        algorithm: KeyAlgorithm,
        material: &NewKeyMaterial,
    ) -> Result<SealedVersion, VaultError> {
        let nonce = random_nonce()?;
        // Encrypt in a wiped buffer: it holds the plaintext until sealing overwrites it.
        let mut buffer = Zeroizing::new(material.pkcs8.to_vec());
        let tag = self
            .sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(private_aad(version_id, algorithm, &material.public_key)),
                buffer.as_mut_slice(),
            )
            .map_err(|_| VaultError::Crypto("sealing a private key".into()))?;
        let mut sealed = buffer.to_vec();
        sealed.extend_from_slice(tag.as_ref());
        // The public key's tag: GMAC (AES-GCM over nothing) with the key as associated data,
        // under its own random nonce, stored as nonce || tag.
        let public_nonce = random_nonce()?;
        let public_tag = self
            .sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(public_nonce),
                Aad::from(public_aad(version_id, algorithm, &material.public_key)),
                &mut [],
            )
            .map_err(|_| VaultError::Crypto("tagging a public key".into()))?;
        let mut public_key_tag = public_nonce.to_vec();
        public_key_tag.extend_from_slice(public_tag.as_ref());
        Ok(SealedVersion {
            nonce,
            sealed,
            public_key: material.public_key.clone(),
            public_key_tag,
        })
    }

    /// Checks the GMAC tag of a stored public key.
    fn check_public_key(
        &self,
        version_id: &str,
        algorithm: KeyAlgorithm,
        row: &VersionRow,
    ) -> Result<(), VaultError> {
        let corrupt = || VaultError::Corrupt(version_id.to_owned());
        if row.public_key_tag.len() != NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(corrupt());
        }
        let (nonce, tag) = row.public_key_tag.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut tag = tag.to_vec();
        self.sealing
            .open_in_place(
                nonce,
                Aad::from(public_aad(version_id, algorithm, &row.public_key)),
                &mut tag,
            )
            .map_err(|_| corrupt())?;
        Ok(())
    }

    /// Creates key `<namespace>/<name>` of type `algorithm` with its first version. RSA key
    /// generation takes up to seconds and runs on a blocking thread.
    pub async fn create_key(
        &self,
        namespace: &str,
        name: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyInfo, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let id = key_id(namespace, name);
        if self.key_row(namespace, name).await?.is_some() {
            return Err(VaultError::AlreadyExists(id));
        }
        let material = generate(algorithm).await?;
        let version_id = key_version_id(namespace, name, 1);
        let sealed = self.seal(&version_id, algorithm, &material)?;
        drop(material);
        let now = now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO keys (namespace, name, algorithm, enabled, current_version, created_at)
             VALUES (?, ?, ?, 1, 1, ?)",
        )
        .bind(namespace)
        .bind(name)
        .bind(algorithm.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(VaultError::AlreadyExists(id));
        }
        insert_version(&mut tx, namespace, name, 1, &sealed, now).await?;
        tx.commit().await?;
        self.key(namespace, name).await
    }

    /// Adds a new version to a key and makes it current. Older versions stay enabled (they
    /// keep verifying what they signed) unless disabled separately. A disabled key cannot be
    /// rotated.
    pub async fn rotate(&self, namespace: &str, name: &str) -> Result<KeyInfo, VaultError> {
        let id = key_id(namespace, name);
        let row = self
            .key_row(namespace, name)
            .await?
            .ok_or_else(|| VaultError::NotFound(id.clone()))?;
        if !row.enabled {
            return Err(VaultError::Disabled(id));
        }
        let material = generate(row.algorithm).await?;
        let mut tx = self.pool.begin().await?;
        let (latest,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) FROM key_versions WHERE namespace = ? AND name = ?",
        )
        .bind(namespace)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let version = u32::try_from(latest + 1).map_err(|_| VaultError::Corrupt(id.clone()))?;
        let version_id = key_version_id(namespace, name, version);
        let sealed = self.seal(&version_id, row.algorithm, &material)?;
        drop(material);
        insert_version(&mut tx, namespace, name, version, &sealed, now()).await?;
        sqlx::query("UPDATE keys SET current_version = ? WHERE namespace = ? AND name = ?")
            .bind(version)
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.key(namespace, name).await
    }

    /// Enables or disables a key (`version` `None`) or one of its versions. Disabled keys
    /// and versions neither sign nor verify; enabling restores both.
    pub async fn set_enabled(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
        enabled: bool,
    ) -> Result<KeyInfo, VaultError> {
        let changed = match version {
            None => sqlx::query("UPDATE keys SET enabled = ? WHERE namespace = ? AND name = ?")
                .bind(enabled)
                .bind(namespace)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected(),
            Some(version) => sqlx::query(
                "UPDATE key_versions SET enabled = ? WHERE namespace = ? AND name = ? AND version = ?",
            )
            .bind(enabled)
            .bind(namespace)
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?
            .rows_affected(),
        };
        if changed == 0 {
            self.key_row(namespace, name)
                .await?
                .ok_or_else(|| VaultError::NotFound(key_id(namespace, name)))?;
            return Err(VaultError::VersionNotFound(key_version_id(
                namespace,
                name,
                version.unwrap_or(0),
            )));
        }
        self.key(namespace, name).await
    }

    /// Every key of a tenancy, by name.
    pub async fn list(&self, namespace: &str) -> Result<Vec<KeyInfo>, VaultError> {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM keys WHERE namespace = ? ORDER BY name")
                .bind(namespace)
                .fetch_all(&self.pool)
                .await?;
        let mut keys = Vec::with_capacity(names.len());
        for (name,) in names {
            keys.push(self.key(namespace, &name).await?);
        }
        Ok(keys)
    }

    /// One key with its versions.
    pub async fn key(&self, namespace: &str, name: &str) -> Result<KeyInfo, VaultError> {
        let row = self
            .key_row(namespace, name)
            .await?
            .ok_or_else(|| VaultError::NotFound(key_id(namespace, name)))?;
        let versions = self
            .version_rows(namespace, name)
            .await?
            .into_iter()
            .map(|v| KeyVersionInfo {
                version: v.version,
                key_version_id: key_version_id(namespace, name, v.version),
                state: KeyState::from_flag(v.enabled),
                created_at: v.created_at,
            })
            .collect();
        Ok(KeyInfo {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key_id: key_id(namespace, name),
            algorithm: row.algorithm,
            state: KeyState::from_flag(row.enabled),
            current_version: row.current_version,
            versions,
            created_at: row.created_at,
        })
    }

    /// The public key of a version (the current one for `None`) as SubjectPublicKeyInfo PEM,
    /// for `cosign verify --key`, `openssl` or policy configuration. Available for disabled
    /// keys too: a public key is not secret, and disabling is enforced where keys are used.
    pub async fn public_key_pem(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<String, VaultError> {
        let (row, version) = self.resolve(namespace, name, version).await?;
        let version_id = key_version_id(namespace, name, version.version);
        self.check_public_key(&version_id, row.algorithm, &version)?;
        Ok(pem_encode("PUBLIC KEY", &version.public_key))
    }

    /// The public half of a key, every version with its state, for [`crate::verify_record`].
    /// Every public key is checked against its integrity tag first.
    pub async fn trusted_key(&self, namespace: &str, name: &str) -> Result<TrustedKey, VaultError> {
        let row = self
            .key_row(namespace, name)
            .await?
            .ok_or_else(|| VaultError::NotFound(key_id(namespace, name)))?;
        let mut versions = Vec::new();
        for version in self.version_rows(namespace, name).await? {
            let version_id = key_version_id(namespace, name, version.version);
            self.check_public_key(&version_id, row.algorithm, &version)?;
            versions.push(TrustedKeyVersion {
                key_version_id: version_id,
                public_key_der: version.public_key,
                enabled: version.enabled,
            });
        }
        Ok(TrustedKey {
            key_id: key_id(namespace, name),
            algorithm: row.algorithm,
            enabled: row.enabled,
            versions,
        })
    }

    /// Signs `message` with a version of the key (the current one for `None`), like KMS `Sign`
    /// with message type `RAW`: the algorithm hashes the message itself. The private key is
    /// decrypted for this call only, on a blocking thread, and wiped right after.
    pub async fn sign(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
        algorithm: SigningAlgorithm,
        message: &[u8],
    ) -> Result<Signature, VaultError> {
        let (row, version) = self.resolve(namespace, name, version).await?;
        row.algorithm.check(algorithm)?;
        let key_id = key_id(namespace, name);
        if !row.enabled {
            return Err(VaultError::Disabled(key_id));
        }
        let version_id = key_version_id(namespace, name, version.version);
        if !version.enabled {
            return Err(VaultError::Disabled(version_id));
        }
        let (nonce, sealed): (Vec<u8>, Vec<u8>) = sqlx::query_as(
            "SELECT nonce, sealed_private_key FROM key_versions
             WHERE namespace = ? AND name = ? AND version = ?",
        )
        .bind(namespace)
        .bind(name)
        .bind(version.version)
        .fetch_one(&self.pool)
        .await?;
        let aad = private_aad(&version_id, row.algorithm, &version.public_key);
        let message = message.to_vec();
        let key_algorithm = row.algorithm;
        let corrupt_id = version_id.clone();
        // AES-GCM is fast: decrypt here, into a buffer wiped on drop, and hand only that
        // buffer to the blocking thread that does the (slow, for RSA) signature.
        let nonce = Nonce::try_assume_unique_for_key(&nonce)
            .map_err(|_| VaultError::Corrupt(corrupt_id.clone()))?;
        let mut buffer = Zeroizing::new(sealed);
        let plain_len = self
            .sealing
            .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| VaultError::Corrupt(corrupt_id))?
            .len();
        buffer.truncate(plain_len);
        let bytes = tokio::task::spawn_blocking(move || {
            let pkcs8 = buffer;
            sign_with(key_algorithm, algorithm, &pkcs8, &message)
        })
        .await
        .map_err(|e| VaultError::Crypto(format!("signing task failed: {e}")))??;
        Ok(Signature {
            key_id,
            key_version_id: version_id,
            algorithm,
            bytes,
        })
    }

    /// Verifies a signature with a version of the key (the current one for `None`), like KMS
    /// `Verify`. A disabled key or version gives [`VaultError::Disabled`], not `false`.
    pub async fn verify(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
        algorithm: SigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, VaultError> {
        let (row, version) = self.resolve(namespace, name, version).await?;
        row.algorithm.check(algorithm)?;
        if !row.enabled {
            return Err(VaultError::Disabled(key_id(namespace, name)));
        }
        let version_id = key_version_id(namespace, name, version.version);
        if !version.enabled {
            return Err(VaultError::Disabled(version_id));
        }
        self.check_public_key(&version_id, row.algorithm, &version)?;
        Ok(crate::algorithms::verify(
            &version.public_key,
            algorithm,
            message,
            signature,
        ))
    }

    async fn resolve(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<(KeyRow, VersionRow), VaultError> {
        let row = self
            .key_row(namespace, name)
            .await?
            .ok_or_else(|| VaultError::NotFound(key_id(namespace, name)))?;
        let wanted = version.unwrap_or(row.current_version);
        let found = self
            .version_rows(namespace, name)
            .await?
            .into_iter()
            .find(|v| v.version == wanted)
            .ok_or_else(|| VaultError::VersionNotFound(key_version_id(namespace, name, wanted)))?;
        Ok((row, found))
    }

    async fn key_row(&self, namespace: &str, name: &str) -> Result<Option<KeyRow>, VaultError> {
        let row: Option<(String, bool, i64, i64)> = sqlx::query_as(
            "SELECT algorithm, enabled, current_version, created_at FROM keys
             WHERE namespace = ? AND name = ?",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(algorithm, enabled, current_version, created_at)| {
            let corrupt = || VaultError::Corrupt(key_id(namespace, name));
            Ok(KeyRow {
                algorithm: algorithm.parse().map_err(|_| corrupt())?,
                enabled,
                current_version: u32::try_from(current_version).map_err(|_| corrupt())?,
                created_at,
            })
        })
        .transpose()
    }

    async fn version_rows(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<VersionRow>, VaultError> {
        let rows: Vec<VersionColumns> = sqlx::query_as(
            "SELECT version, enabled, public_key, public_key_tag, created_at FROM key_versions
             WHERE namespace = ? AND name = ? ORDER BY version",
        )
        .bind(namespace)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(version, enabled, public_key, public_key_tag, created_at)| {
                    Ok(VersionRow {
                        version: u32::try_from(version)
                            .map_err(|_| VaultError::Corrupt(key_id(namespace, name)))?,
                        enabled,
                        public_key,
                        public_key_tag,
                        created_at,
                    })
                },
            )
            .collect()
    }
}

/// A new version row: the sealed private key and the tagged public key.
struct SealedVersion {
    nonce: [u8; NONCE_LEN],
    sealed: Vec<u8>,
    public_key: Vec<u8>,
    public_key_tag: Vec<u8>,
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    namespace: &str,
    name: &str,
    version: u32,
    row: &SealedVersion,
    created_at: i64,
) -> Result<(), VaultError> {
    sqlx::query(
        "INSERT INTO key_versions
         (namespace, name, version, enabled, public_key, public_key_tag, nonce, sealed_private_key, created_at)
         VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
    )
    .bind(namespace)
    .bind(name)
    .bind(version)
    .bind(&row.public_key)
    .bind(&row.public_key_tag)
    .bind(row.nonce.as_slice())
    .bind(&row.sealed)
    .bind(created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn generate(algorithm: KeyAlgorithm) -> Result<NewKeyMaterial, VaultError> {
    tokio::task::spawn_blocking(move || generate_key(algorithm))
        .await
        .map_err(|e| VaultError::Crypto(format!("key generation task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::verify;

    async fn vault(dir: &Path) -> Vault {
        Vault::open(dir, RootKey::from_bytes([7; 32]))
            .await
            .unwrap()
    }

    #[test]
    fn root_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/root.key");
        let first = RootKey::load_or_create(&path).unwrap();
        let second = RootKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, second.0);
        assert_ne!(first.0, [0; 32]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, first.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("root.key")]);
        assert!(!format!("{first:?}").contains('7'));
    }

    #[test]
    fn root_key_file_of_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        std::fs::write(&path, [1u8; 31]).unwrap();
        let error = RootKey::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("holds 31 bytes"), "{error}");
        std::fs::write(&path, [1u8; 40]).unwrap();
        let error = RootKey::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("holds 33 bytes"), "{error}");
    }

    #[test]
    fn root_key_from_env() {
        let key = RootKey::from_env_base64(&format!(" {}\n", STANDARD.encode([9u8; 32]))).unwrap();
        assert_eq!(key.0, [9; 32]);
        let secretish = STANDARD.encode([9u8; 16]);
        let error = RootKey::from_env_base64(&secretish)
            .unwrap_err()
            .to_string();
        assert!(error.contains("MINATO_ROOT_KEY holds 16 bytes"), "{error}");
        assert!(!error.contains(&secretish));
        let error = RootKey::from_env_base64("not base64!")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not standard base64"), "{error}");
        assert!(!error.contains("not base64!"));
    }

    #[tokio::test]
    async fn wrong_root_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "release", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        vault.close().await;
        let error = Vault::open(dir.path(), RootKey::from_bytes([8; 32]))
            .await
            .unwrap_err();
        assert!(matches!(error, VaultError::WrongRootKey(_)), "{error:?}");
        assert!(error.to_string().contains("not the root key this vault"));
        // The right key still opens it.
        let vault = Vault::open(dir.path(), RootKey::from_bytes([7; 32]))
            .await
            .unwrap();
        assert_eq!(vault.list("acme1").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn create_sign_verify_each_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        for algorithm in KeyAlgorithm::ALL {
            let name = format!("k-{algorithm}");
            let info = vault.create_key("acme1", &name, algorithm).await.unwrap();
            assert_eq!(info.key_id, format!("acme1/{name}"));
            assert_eq!(info.algorithm, algorithm);
            assert_eq!(info.current_version, 1);
            assert_eq!(info.state, KeyState::Enabled);
            assert_eq!(info.versions.len(), 1);
            assert_eq!(info.versions[0].key_version_id, format!("acme1/{name}/1"));
            let pem = vault.public_key_pem("acme1", &name, None).await.unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
            let signing = algorithm.default_signing_algorithm();
            let signature = vault
                .sign("acme1", &name, None, signing, b"message")
                .await
                .unwrap();
            assert_eq!(signature.key_id, info.key_id);
            assert_eq!(signature.key_version_id, info.versions[0].key_version_id);
            assert_eq!(signature.algorithm, signing);
            let expected_len = match algorithm {
                KeyAlgorithm::Rsa2048 => Some(256),
                KeyAlgorithm::Rsa3072 => Some(384),
                KeyAlgorithm::Rsa4096 => Some(512),
                KeyAlgorithm::EcdsaP256 => None,
            };
            if let Some(len) = expected_len {
                assert_eq!(signature.bytes.len(), len);
            } else {
                assert_eq!(signature.bytes[0], 0x30, "ECDSA signatures are DER");
            }
            assert!(verify(
                pem.as_bytes(),
                signing,
                b"message",
                &signature.bytes
            ));
            assert!(!verify(pem.as_bytes(), signing, b"other", &signature.bytes));
            assert!(
                vault
                    .verify(
                        "acme1",
                        &name,
                        Some(1),
                        signing,
                        b"message",
                        &signature.bytes
                    )
                    .await
                    .unwrap()
            );
        }
        // Every PSS hash works with an RSA key.
        for signing in [
            SigningAlgorithm::Sha384RsaPkcsPss,
            SigningAlgorithm::Sha512RsaPkcsPss,
        ] {
            let signature = vault
                .sign("acme1", "k-rsa-2048", None, signing, b"m")
                .await
                .unwrap();
            let pem = vault
                .public_key_pem("acme1", "k-rsa-2048", None)
                .await
                .unwrap();
            assert!(verify(pem.as_bytes(), signing, b"m", &signature.bytes));
        }
    }

    #[tokio::test]
    async fn algorithm_mismatch_and_sha224_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "ec", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        vault
            .create_key("acme1", "rsa", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let error = vault
            .sign(
                "acme1",
                "ec",
                None,
                SigningAlgorithm::Sha256RsaPkcsPss,
                b"m",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                VaultError::Algorithm(AlgorithmError::Mismatch { .. })
            ),
            "{error:?}"
        );
        let error = vault
            .sign(
                "acme1",
                "rsa",
                None,
                SigningAlgorithm::EcdsaP256Sha256,
                b"m",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                VaultError::Algorithm(AlgorithmError::Mismatch { .. })
            ),
            "{error:?}"
        );
        let signature = vault
            .sign(
                "acme1",
                "rsa",
                None,
                SigningAlgorithm::Sha224RsaPkcsPss,
                b"m",
            )
            .await
            .unwrap();
        let public = vault.public_key_pem("acme1", "rsa", None).await.unwrap();
        assert!(crate::algorithms::verify(
            public.as_bytes(),
            SigningAlgorithm::Sha224RsaPkcsPss,
            b"m",
            &signature.bytes
        ));
    }

    #[tokio::test]
    async fn names_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "release", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        assert!(matches!(
            vault
                .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
                .await,
            Err(VaultError::AlreadyExists(id)) if id == "acme1/release"
        ));
        // Same name in another tenancy is another key.
        vault
            .create_key("other2", "release", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        for namespace in ["A", "a", "Acme", "acme/x", ""] {
            assert!(matches!(
                vault
                    .create_key(namespace, "k", KeyAlgorithm::EcdsaP256)
                    .await,
                Err(VaultError::InvalidNamespace(_))
            ));
        }
        for name in ["", "a/b", "-x", "a b", &"x".repeat(101)] {
            assert!(matches!(
                vault
                    .create_key("acme1", name, KeyAlgorithm::EcdsaP256)
                    .await,
                Err(VaultError::InvalidName(_))
            ));
        }
        assert!(matches!(
            vault.sign("acme1", "missing", None, SigningAlgorithm::EcdsaP256Sha256, b"m").await,
            Err(VaultError::NotFound(id)) if id == "acme1/missing"
        ));
        assert!(matches!(
            vault.sign("acme1", "release", Some(9), SigningAlgorithm::EcdsaP256Sha256, b"m").await,
            Err(VaultError::VersionNotFound(id)) if id == "acme1/release/9"
        ));
        assert!(matches!(
            vault.public_key_pem("nobody1", "release", None).await,
            Err(VaultError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_old_versions_verifying() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let alg = SigningAlgorithm::Sha256RsaPkcsPss;
        let old = vault
            .sign("acme1", "release", None, alg, b"m")
            .await
            .unwrap();
        let old_pem = vault
            .public_key_pem("acme1", "release", None)
            .await
            .unwrap();
        let info = vault.rotate("acme1", "release").await.unwrap();
        assert_eq!(info.current_version, 2);
        assert_eq!(
            info.versions
                .iter()
                .map(|v| (v.version, v.state))
                .collect::<Vec<_>>(),
            vec![(1, KeyState::Enabled), (2, KeyState::Enabled)]
        );
        let new = vault
            .sign("acme1", "release", None, alg, b"m")
            .await
            .unwrap();
        assert_eq!(new.key_version_id, "acme1/release/2");
        let new_pem = vault
            .public_key_pem("acme1", "release", None)
            .await
            .unwrap();
        assert_ne!(old_pem, new_pem);
        assert_eq!(
            vault
                .public_key_pem("acme1", "release", Some(1))
                .await
                .unwrap(),
            old_pem
        );
        assert!(
            vault
                .verify("acme1", "release", Some(1), alg, b"m", &old.bytes)
                .await
                .unwrap()
        );
        assert!(
            !vault
                .verify("acme1", "release", Some(2), alg, b"m", &old.bytes)
                .await
                .unwrap()
        );
        assert!(
            vault
                .verify("acme1", "release", None, alg, b"m", &new.bytes)
                .await
                .unwrap()
        );
        // Explicitly signing with the old version still works.
        let again = vault
            .sign("acme1", "release", Some(1), alg, b"m")
            .await
            .unwrap();
        assert_eq!(again.key_version_id, "acme1/release/1");
        assert_eq!(
            vault
                .rotate("acme1", "release")
                .await
                .unwrap()
                .current_version,
            3
        );
        assert!(matches!(
            vault.rotate("acme1", "missing").await,
            Err(VaultError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn disabling_stops_signing_and_verifying() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "release", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        let alg = SigningAlgorithm::EcdsaP256Sha256;
        let signature = vault
            .sign("acme1", "release", None, alg, b"m")
            .await
            .unwrap();

        let info = vault
            .set_enabled("acme1", "release", None, false)
            .await
            .unwrap();
        assert_eq!(info.state, KeyState::Disabled);
        assert!(matches!(
            vault.sign("acme1", "release", None, alg, b"m").await,
            Err(VaultError::Disabled(id)) if id == "acme1/release"
        ));
        assert!(matches!(
            vault
                .verify("acme1", "release", None, alg, b"m", &signature.bytes)
                .await,
            Err(VaultError::Disabled(_))
        ));
        assert!(matches!(
            vault.rotate("acme1", "release").await,
            Err(VaultError::Disabled(_))
        ));
        // The public key stays readable.
        vault
            .public_key_pem("acme1", "release", None)
            .await
            .unwrap();
        let trusted = vault.trusted_key("acme1", "release").await.unwrap();
        assert!(!trusted.enabled);

        vault
            .set_enabled("acme1", "release", None, true)
            .await
            .unwrap();
        vault.rotate("acme1", "release").await.unwrap();
        let info = vault
            .set_enabled("acme1", "release", Some(1), false)
            .await
            .unwrap();
        assert_eq!(info.versions[0].state, KeyState::Disabled);
        assert_eq!(info.versions[1].state, KeyState::Enabled);
        assert!(matches!(
            vault.sign("acme1", "release", Some(1), alg, b"m").await,
            Err(VaultError::Disabled(id)) if id == "acme1/release/1"
        ));
        assert!(matches!(
            vault
                .verify("acme1", "release", Some(1), alg, b"m", &signature.bytes)
                .await,
            Err(VaultError::Disabled(_))
        ));
        vault
            .sign("acme1", "release", None, alg, b"m")
            .await
            .unwrap();
        let trusted = vault.trusted_key("acme1", "release").await.unwrap();
        assert!(trusted.enabled);
        assert_eq!(
            trusted
                .versions
                .iter()
                .map(|v| v.enabled)
                .collect::<Vec<_>>(),
            vec![false, true]
        );
        vault
            .set_enabled("acme1", "release", Some(1), true)
            .await
            .unwrap();
        assert!(
            vault
                .verify("acme1", "release", Some(1), alg, b"m", &signature.bytes)
                .await
                .unwrap()
        );

        assert!(matches!(
            vault.set_enabled("acme1", "release", Some(7), false).await,
            Err(VaultError::VersionNotFound(id)) if id == "acme1/release/7"
        ));
        assert!(matches!(
            vault.set_enabled("acme1", "nope", None, false).await,
            Err(VaultError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn list_is_per_tenancy_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        for name in ["zeta", "alpha"] {
            vault
                .create_key("acme1", name, KeyAlgorithm::EcdsaP256)
                .await
                .unwrap();
        }
        vault
            .create_key("other2", "beta", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        let keys = vault.list("acme1").await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            ["alpha", "zeta"]
        );
        assert!(keys[0].created_at > 0);
        assert_eq!(keys[0].versions[0].created_at, keys[0].created_at);
        assert!(vault.list("nobody1").await.unwrap().is_empty());
        // The JSON form carries no key material.
        let json = serde_json::to_string(&keys[0]).unwrap();
        assert!(json.contains(r#""keyId":"acme1/alpha""#), "{json}");
        assert!(json.contains(r#""state":"ENABLED""#), "{json}");
        assert!(json.contains(r#""algorithm":"ecdsa-p256""#), "{json}");
    }

    #[tokio::test]
    async fn keys_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "release", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let pem = vault
            .public_key_pem("acme1", "release", None)
            .await
            .unwrap();
        vault.close().await;
        drop(vault);
        let vault = Vault::open(dir.path(), RootKey::from_bytes([7; 32]))
            .await
            .unwrap();
        assert_eq!(vault.path(), dir.path().join(KEYS_DB));
        let alg = SigningAlgorithm::Sha512RsaPkcsPss;
        let signature = vault
            .sign("acme1", "release", None, alg, b"m")
            .await
            .unwrap();
        assert!(verify(pem.as_bytes(), alg, b"m", &signature.bytes));
    }

    /// Reads the decrypted private key of a version (test only: no API does this).
    async fn private_key(vault: &Vault, name: &str, version: u32) -> Zeroizing<Vec<u8>> {
        let (row, version_row) = vault.resolve("acme1", name, Some(version)).await.unwrap();
        let (nonce, sealed): (Vec<u8>, Vec<u8>) = sqlx::query_as(
            "SELECT nonce, sealed_private_key FROM key_versions WHERE namespace = 'acme1' AND name = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_one(&vault.pool)
        .await
        .unwrap();
        assert_eq!(nonce.len(), 12);
        let mut buffer = Zeroizing::new(sealed);
        let aad = private_aad(
            &key_version_id("acme1", name, version),
            row.algorithm,
            &version_row.public_key,
        );
        let len = vault
            .sealing
            .open_in_place(
                Nonce::try_assume_unique_for_key(&nonce).unwrap(),
                Aad::from(aad),
                buffer.as_mut_slice(),
            )
            .unwrap()
            .len();
        buffer.truncate(len);
        buffer
    }

    #[tokio::test]
    async fn private_keys_are_encrypted_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        vault
            .create_key("acme1", "ec", KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        vault
            .create_key("acme1", "rsa", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let ec = private_key(&vault, "ec", 1).await;
        let rsa = private_key(&vault, "rsa", 1).await;
        // They really are the PKCS#8 private keys.
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &ec).unwrap();
        RsaKeyPair::from_pkcs8(&rsa).unwrap();
        // Neither the database nor its WAL holds any 32-byte window of them.
        let mut stored = Vec::new();
        for file in ["keys.db", "keys.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                stored.extend(bytes);
            }
        }
        assert!(!stored.is_empty());
        for (name, secret) in [("ec", &ec), ("rsa", &rsa)] {
            // PKCS#8 also carries public parts (algorithm identifiers, the EC public point,
            // the RSA modulus), which are stored in the clear on purpose: look only at the
            // windows that do not occur in the public key.
            let public = vault
                .resolve("acme1", name, None)
                .await
                .unwrap()
                .1
                .public_key;
            let private_windows: Vec<&[u8]> = secret
                .windows(32)
                .filter(|w| !public.windows(32).any(|p| p == *w))
                .collect();
            assert!(private_windows.len() > 16, "{name}");
            for window in private_windows {
                assert!(
                    !stored.windows(32).any(|w| w == window),
                    "{name}: private key bytes found in clear"
                );
            }
        }
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path()).await;
        for name in ["a", "b"] {
            vault
                .create_key("acme1", name, KeyAlgorithm::EcdsaP256)
                .await
                .unwrap();
        }
        // Put b's public key under a: verification must not trust it.
        sqlx::query(
            "UPDATE key_versions SET public_key = (SELECT public_key FROM key_versions WHERE name = 'b')
             WHERE name = 'a'",
        )
        .execute(&vault.pool)
        .await
        .unwrap();
        assert!(matches!(
            vault.public_key_pem("acme1", "a", None).await,
            Err(VaultError::Corrupt(id)) if id == "acme1/a/1"
        ));
        assert!(matches!(
            vault.trusted_key("acme1", "a").await,
            Err(VaultError::Corrupt(_))
        ));
        assert!(matches!(
            vault
                .verify(
                    "acme1",
                    "a",
                    None,
                    SigningAlgorithm::EcdsaP256Sha256,
                    b"m",
                    b"s"
                )
                .await,
            Err(VaultError::Corrupt(_))
        ));
        // The private key no longer matches its (swapped) public key either.
        assert!(matches!(
            vault
                .sign("acme1", "a", None, SigningAlgorithm::EcdsaP256Sha256, b"m")
                .await,
            Err(VaultError::Corrupt(_))
        ));
        // Move b's sealed key into a new row of another key name: it does not open there.
        vault.rotate("acme1", "b").await.unwrap();
        sqlx::query(
            "UPDATE key_versions SET sealed_private_key = (SELECT sealed_private_key FROM key_versions WHERE name = 'b' AND version = 1),
                                     nonce = (SELECT nonce FROM key_versions WHERE name = 'b' AND version = 1)
             WHERE name = 'b' AND version = 2",
        )
        .execute(&vault.pool)
        .await
        .unwrap();
        assert!(matches!(
            vault
                .sign("acme1", "b", None, SigningAlgorithm::EcdsaP256Sha256, b"m")
                .await,
            Err(VaultError::Corrupt(id)) if id == "acme1/b/2"
        ));
        vault
            .sign(
                "acme1",
                "b",
                Some(1),
                SigningAlgorithm::EcdsaP256Sha256,
                b"m",
            )
            .await
            .unwrap();
    }

    #[test]
    fn key_ids() {
        assert_eq!(key_id("acme1", "release"), "acme1/release");
        assert_eq!(key_version_id("acme1", "release", 3), "acme1/release/3");
        assert_eq!(
            parse_key_version_id("acme1/release/12"),
            Some(("acme1", "release", 12))
        );
        for bad in [
            "acme1/release",
            "acme1/release/0",
            "acme1/release/01",
            "acme1/release/x",
            "acme1/release/1/2",
            "ACME/release/1",
            "acme1/re lease/1",
            "acme1/release/99999999999",
        ] {
            assert_eq!(parse_key_version_id(bad), None, "{bad}");
        }
    }
}
