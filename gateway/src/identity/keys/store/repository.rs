//! The key repository, written once: `pg.rs` and `sqlite.rs` each compile this file against their own `Pool`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use uuid::Uuid;

use super::Keys;
use crate::identity::keys::{
    ApiKey,
    store::{KeyRow, KeyStore, limit},
};

#[async_trait]
impl KeyStore for Keys {
    async fn insert(&self, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_keys (id, owner, display_name, salt, hash, create_time, expire_time, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(DbUuid(key.id))
        .bind(&key.owner)
        .bind(&key.display_name)
        .bind(&key.salt)
        .bind(&key.hash)
        .bind(DbTime(key.create_time))
        .bind(key.expire_time.map(DbTime))
        .bind(key.parent.map(DbUuid))
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent_id \
             FROM api_keys WHERE id = $1",
        )
        .bind(DbUuid(id))
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(ApiKey::from))
    }

    async fn list(&self, owner: &str, after: Option<Uuid>, n: usize) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent_id \
             FROM api_keys WHERE owner = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(owner)
        .bind(after.map(DbUuid))
        .bind(limit(n))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn revoke(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH RECURSIVE made_from(id) AS \
             (SELECT $1 UNION SELECT k.id FROM api_keys k JOIN made_from m ON k.parent_id = m.id) \
             UPDATE api_keys SET revoke_time = $2 WHERE id IN (SELECT id FROM made_from) AND revoke_time IS NULL",
        )
        .bind(DbUuid(id))
        .bind(DbTime(at))
        .execute(&self.0)
        .await?;
        Ok(())
    }
}
