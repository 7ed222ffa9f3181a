//! Persistence of the identity state in its own SQLite file (`iam.db`).
//!
//! The whole state is small (tenancies, users, groups, token hashes, policies, repository
//! settings, signing keys) and is loaded into memory at start; this module only reads it all
//! once and writes each change through.

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;

/// Ordered schema migrations; index + 1 is the resulting `user_version`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE tenancies (
    namespace         TEXT PRIMARY KEY,
    display_name      TEXT NOT NULL,
    auto_create_repos INTEGER NOT NULL,
    system            INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE TABLE users (
    namespace  TEXT NOT NULL REFERENCES tenancies(namespace),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE groups (
    namespace  TEXT NOT NULL REFERENCES tenancies(namespace),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE group_members (
    namespace  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    PRIMARY KEY (namespace, group_name, user_name),
    FOREIGN KEY (namespace, group_name) REFERENCES groups(namespace, name),
    FOREIGN KEY (namespace, user_name) REFERENCES users(namespace, name)
);
CREATE TABLE auth_tokens (
    id           TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    hash         BLOB NOT NULL,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    FOREIGN KEY (namespace, user_name) REFERENCES users(namespace, name)
);
CREATE TABLE policies (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT NOT NULL REFERENCES tenancies(namespace),
    statement  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE repositories (
    namespace  TEXT NOT NULL REFERENCES tenancies(namespace),
    name       TEXT NOT NULL,
    public     INTEGER NOT NULL,
    immutable  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    pkcs8      BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
"#];

/// Opens (creating if needed) the identity database and applies migrations.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(minato_db::connect_options(path))
        .await?;
    minato_db::migrate(&pool, MIGRATIONS).await?;
    Ok(pool)
}
