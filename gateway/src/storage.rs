//! The gateway's own database (API keys, the audit log): PostgreSQL or SQLite by URL scheme, migrated on open.

use highwind_common::db::{Database, DbError};
use sqlx::migrate::Migrator;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
pub(crate) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connects to `url` and migrates it.
pub async fn open(url: &str) -> Result<Database, DbError> {
    let db = Database::connect(url, 4).await?;
    migrate(&db).await?;
    Ok(db)
}

/// Applies the gateway's migrations to `db`.
pub async fn migrate(db: &Database) -> Result<(), DbError> {
    db.migrate(&POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS).await
}
