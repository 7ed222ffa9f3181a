//! Persistence of the identity state in its own SQLite file (`iam.db`).
//!
//! The whole state is small (tenancies, users, groups, token hashes, policies, repository
//! settings, signing keys) and is loaded into memory at start; this module only reads it all
//! once and writes each change through.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

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
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let (current,): (i64,) = sqlx::query_as("PRAGMA user_version")
        .fetch_one(&pool)
        .await?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(*migration).execute(&mut *tx).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            index + 1
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(pool)
}
