//! Connecting to a service's database: PostgreSQL in production, SQLite embedded, picked by the URL's scheme.

use std::{str::FromStr, time::Duration};

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};

mod backends;
mod columns;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use backends::{postgres, sqlite};
pub use columns::{DbTime, DbUuid};

/// A connected, not yet migrated, database.
#[derive(Debug, Clone)]
pub enum Database {
    /// `postgres://` or `postgresql://`.
    Postgres(PgPool),
    /// `sqlite:` (a file; created when missing).
    Sqlite(SqlitePool),
}

/// Why a database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no backend Highwind supports.
    #[error("unsupported database url scheme in {0:?}: use postgres://, postgresql:// or sqlite:")]
    UnsupportedScheme(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Database {
    /// Connects to `url`. SQLite gets WAL, a busy timeout and foreign keys, so readers never wait behind writers
    /// and concurrent writers queue instead of failing at once.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            create_parent_dir(url);
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Self::Sqlite(pool))
        } else {
            Err(DbError::UnsupportedScheme(redact_url(url)))
        }
    }

    /// Applies the service's migrations for this backend.
    pub async fn migrate(&self, postgres: &Migrator, sqlite: &Migrator) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => postgres.run(pool).await?,
            Self::Sqlite(pool) => sqlite.run(pool).await?,
        }
        Ok(())
    }

    /// `postgres` or `sqlite`, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// Creates the directory a SQLite file URL points into, so a default like `sqlite://./data/x.db` works on a fresh
/// machine. Failures surface when the database itself is opened.
fn create_parent_dir(url: &str) {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// The URL without its password, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://hw:s3cret@db:5432/hw"), "postgres://hw:***@db:5432/hw");
        assert_eq!(redact_url("sqlite://./data/a.db"), "sqlite://./data/a.db");
    }

    #[tokio::test]
    async fn a_sqlite_file_in_a_missing_directory_is_created() {
        let dir = std::env::temp_dir().join(format!("highwind-db-{}", std::process::id()));
        let url = format!("sqlite://{}/nested/deeper/x.db", dir.display());
        let db = Database::connect(&url, 1).await.expect("connects");
        assert_eq!(db.backend(), "sqlite");
        assert!(dir.join("nested/deeper/x.db").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        let err = Database::connect("mysql://root@localhost/x", 1).await.expect_err("refused");
        assert!(matches!(err, DbError::UnsupportedScheme(_)));
    }
}
