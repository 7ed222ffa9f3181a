//! SQLite plumbing shared by the metadata store and the identity directory: the connection
//! settings that make a committed transaction survive a crash, and ordered in-repo
//! migrations, so both databases follow one durability and upgrade discipline.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

/// Options for a database file: created if missing, WAL journal, `synchronous=FULL` (a
/// commit is on disk before it is acknowledged), foreign keys enforced, and a busy timeout
/// instead of immediate `SQLITE_BUSY` errors.
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
}

/// Applies the migrations not yet applied, each in its own transaction. Entry `i` of
/// `migrations` brings the schema to `PRAGMA user_version` `i + 1`; the list only grows.
pub async fn migrate(pool: &SqlitePool, migrations: &[&'static str]) -> Result<(), sqlx::Error> {
    let (current,): (i64,) = sqlx::query_as("PRAGMA user_version")
        .fetch_one(pool)
        .await?;
    for (index, migration) in migrations.iter().enumerate().skip(current.max(0) as usize) {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    const MIGRATIONS: &[&str] = &[
        "CREATE TABLE a (x INTEGER);",
        "ALTER TABLE a ADD COLUMN y INTEGER;",
    ];

    #[tokio::test]
    async fn migrations_apply_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        for count in [1, 2, 2] {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(connect_options(&path))
                .await
                .unwrap();
            migrate(&pool, &MIGRATIONS[..count]).await.unwrap();
            let (version,): (i64,) = sqlx::query_as("PRAGMA user_version")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(version, count as i64);
            pool.close().await;
        }
    }
}
