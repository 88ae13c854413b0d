//! Read grants.

use async_trait::async_trait;
use highwind_common::db::DbUuid;
use uuid::Uuid;

use super::super::{Grants, begin_write, insert_grants};
use crate::store::{
    StoreError,
    grants::{GrantRepository, GrantSet, cross},
};

#[async_trait]
impl GrantRepository for Grants {
    async fn replace(&self, set: &GrantSet) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        // The upsert takes the source's row (PostgreSQL) or the database (SQLite), so concurrent deliveries of one
        // source apply one at a time, and only a higher sequence replaces what is stored.
        let newer: Option<i64> = sqlx::query_scalar(
            "INSERT INTO grant_sources (source, sequence) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence \
             WHERE grant_sources.sequence < excluded.sequence RETURNING sequence",
        )
        .bind(&set.source)
        .bind(set.sequence)
        .fetch_optional(&mut *tx)
        .await?;
        if newer.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM grants WHERE source = $1").bind(&set.source).execute(&mut *tx).await?;
        insert_grants(&mut tx, &set.source, cross(set)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn may_read(&self, principal: &str, asset: Uuid, version: Option<i64>) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT version_number FROM grants WHERE principal = $1 AND asset_id = $2 \
             AND ($3 IS NULL OR version_number IN (0, $3)) LIMIT 1",
        )
        .bind(principal)
        .bind(DbUuid(asset))
        .bind(version)
        .fetch_optional(&self.0)
        .await?;
        Ok(found.is_some())
    }

    async fn is_pinned(&self, asset: Uuid, version: i64) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT version_number FROM grants WHERE asset_id = $1 AND version_number = $2 LIMIT 1")
                .bind(DbUuid(asset))
                .bind(version)
                .fetch_optional(&self.0)
                .await?;
        Ok(found.is_some())
    }
}
