//! Identity and access for minato: tenancies (namespaces), users (with identity-provider
//! prefixes for federated users), groups, auth tokens, policy statements, repository settings
//! and the registry bearer tokens of the Docker token protocol.
//!
//! The directory lives in memory so that authorising a request never reads the database;
//! every change is written through to `iam.db` first.

pub mod audit;
mod db;
pub mod directory;
pub mod jwt;
pub mod names;
pub mod policy;
pub mod throttle;
pub mod token;

pub use directory::{
    ADMINISTRATORS, AuthError, Directory, IamError, PolicyRecord, Principal, RepoSettings,
    TenancyInfo, TokenInfo,
};
pub use names::Login;
pub use policy::{Resource, Verb};

/// Opens the identity database in `data_dir`: the directory and the token signer.
pub async fn open(
    data_dir: &std::path::Path,
    token_lifetime: std::time::Duration,
    refresh_lifetime: std::time::Duration,
) -> Result<(Directory, jwt::TokenService), IamError> {
    let pool = db::open(&data_dir.join("iam.db")).await?;
    let directory = Directory::load(pool.clone()).await?;
    let tokens = jwt::TokenService::load(pool, token_lifetime, refresh_lifetime).await?;
    Ok((directory, tokens))
}
