//! Where assets are kept: one repository trait, a PostgreSQL and a SQLite implementation, and the conformance
//! suite both must pass.

use std::sync::Arc;

use async_trait::async_trait;
use highwind_common::db::{Database, DbError};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::domain::{asset::Asset, listing::AssetQuery};

mod pg;
mod sqlite;

#[cfg(test)]
mod conformance;

/// Migrations for PostgreSQL.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
/// Migrations for SQLite.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A storage failure. Callers log it and answer INTERNAL: its text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused the statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode into a valid asset.
    #[error("stored asset {id} is corrupt: {reason}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What did not decode.
        reason: String,
    },
}

/// Persistence of assets.
#[async_trait]
pub trait AssetRepository: Send + Sync + std::fmt::Debug {
    /// Inserts `asset`. When the owner already used `request_id`, nothing is inserted and the asset that first
    /// request created is returned instead.
    async fn create(&self, asset: &Asset, request_id: Option<&str>) -> Result<Asset, StoreError>;

    /// The asset with `id`, archived or not.
    async fn get(&self, id: Uuid) -> Result<Option<Asset>, StoreError>;

    /// At most `query.limit + 1` assets matching `query`, in its order, strictly after its cursor.
    async fn list(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError>;

    /// Replaces the stored asset with `asset` if its revision is still `expected_revision`; false when it is not
    /// (or the asset is gone), in which case nothing changed.
    async fn update(&self, asset: &Asset, expected_revision: i64) -> Result<bool, StoreError>;
}

/// Migrates `db` and returns the repository for its backend.
pub async fn open(db: Database) -> Result<Arc<dyn AssetRepository>, DbError> {
    db.migrate(&POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS).await?;
    Ok(match db {
        Database::Postgres(pool) => Arc::new(pg::PgAssets::new(pool)),
        Database::Sqlite(pool) => Arc::new(sqlite::SqliteAssets::new(pool)),
    })
}
