//! Where API keys are kept: PostgreSQL or SQLite, by URL scheme, like every service's data; one implementation
//! (`repository.rs`) compiled for each.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{Database, DbTime, DbUuid};
use uuid::Uuid;

#[cfg(test)]
mod conformance;
mod pg;
mod sqlite;
#[cfg(test)]
mod upgrade;

use super::ApiKey;

/// Persistence of API keys.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Stores a new key.
    async fn insert(&self, key: &ApiKey) -> Result<(), sqlx::Error>;
    /// The key with `id`.
    async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error>;
    /// At most `limit + 1` of `owner`'s keys, newest first, older than `after`.
    async fn list(&self, owner: &str, after: Option<Uuid>, limit: usize) -> Result<Vec<ApiKey>, sqlx::Error>;
    /// Marks key `id` revoked at `at`, and every key created with it (transitively) that is not revoked yet.
    async fn revoke(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error>;
}

/// The key store of the gateway's (migrated) database.
pub fn open(db: &Database) -> Arc<dyn KeyStore> {
    match db {
        Database::Postgres(pool) => Arc::new(pg::Keys(pool.clone())),
        Database::Sqlite(pool) => Arc::new(sqlite::Keys(pool.clone())),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n + 1).unwrap_or(i64::MAX)
}

/// An `api_keys` row.
#[derive(sqlx::FromRow)]
struct KeyRow {
    id: DbUuid,
    owner: String,
    display_name: String,
    salt: String,
    hash: String,
    create_time: DbTime,
    expire_time: Option<DbTime>,
    revoke_time: Option<DbTime>,
    parent_id: Option<DbUuid>,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id.0,
            owner: row.owner,
            display_name: row.display_name,
            salt: row.salt,
            hash: row.hash,
            create_time: row.create_time.0,
            expire_time: row.expire_time.map(|t| t.0),
            revoke_time: row.revoke_time.map(|t| t.0),
            parent: row.parent_id.map(|p| p.0),
        }
    }
}
