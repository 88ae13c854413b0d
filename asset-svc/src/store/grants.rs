//! Read grants that usecase-svc derives from use-case membership and entitlements, kept here so a read check is
//! one indexed lookup. Each source's set is replaced whole, in sequence order.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// The grants one source justifies: every principal may read every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSet {
    /// `useCases/{u}` or `entitlements/{e}`.
    pub source: String,
    /// Increases with every change of the source.
    pub sequence: i64,
    /// Who may read.
    pub principals: Vec<String>,
    /// What: an asset and a version number, 0 for every version.
    pub targets: Vec<(Uuid, i64)>,
}

/// Persistence of grants.
#[async_trait]
pub trait GrantRepository: Send + Sync + std::fmt::Debug {
    /// Replaces the source's grants with `set` unless a set with an equal or higher sequence was stored; whether it
    /// was applied.
    async fn replace(&self, set: &GrantSet) -> Result<bool, StoreError>;

    /// Whether some grant lets `principal` read version `version` of `asset` (`None`: some version of it).
    async fn may_read(&self, principal: &str, asset: Uuid, version: Option<i64>) -> Result<bool, StoreError>;

    /// Whether a use case pins version `version` of `asset` (a link or release grants exactly that version).
    async fn is_pinned(&self, asset: Uuid, version: i64) -> Result<bool, StoreError>;
}

/// PostgreSQL grants.
#[derive(Debug)]
pub struct PgGrants(pub sqlx::PgPool);

#[async_trait]
impl GrantRepository for PgGrants {
    async fn replace(&self, set: &GrantSet) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await?;
        // The upsert takes the source's row lock, so concurrent deliveries of one source apply one at a time.
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
        let (principals, assets, versions) = cross(set);
        sqlx::query(
            "INSERT INTO grants (source, principal, asset_id, version_number) \
             SELECT $1, p, a, v FROM UNNEST($2::text[], $3::uuid[], $4::bigint[]) AS t(p, a, v) ON CONFLICT DO NOTHING",
        )
        .bind(&set.source)
        .bind(principals)
        .bind(assets)
        .bind(versions)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn may_read(&self, principal: &str, asset: Uuid, version: Option<i64>) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM grants WHERE principal = $1 AND asset_id = $2 \
             AND ($3::bigint IS NULL OR version_number IN (0, $3)) LIMIT 1",
        )
        .bind(principal)
        .bind(asset)
        .bind(version)
        .fetch_optional(&self.0)
        .await?;
        Ok(found.is_some())
    }

    async fn is_pinned(&self, asset: Uuid, version: i64) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM grants WHERE asset_id = $1 AND version_number = $2 LIMIT 1")
                .bind(asset)
                .bind(version)
                .fetch_optional(&self.0)
                .await?;
        Ok(found.is_some())
    }
}

/// SQLite grants.
#[derive(Debug)]
pub struct SqliteGrants(pub sqlx::SqlitePool);

#[async_trait]
impl GrantRepository for SqliteGrants {
    async fn replace(&self, set: &GrantSet) -> Result<bool, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let stored: Option<i64> = sqlx::query_scalar("SELECT sequence FROM grant_sources WHERE source = ?")
            .bind(&set.source)
            .fetch_optional(&mut *tx)
            .await?;
        if stored.is_some_and(|s| s >= set.sequence) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO grant_sources (source, sequence) VALUES (?, ?) \
             ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence",
        )
        .bind(&set.source)
        .bind(set.sequence)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM grants WHERE source = ?").bind(&set.source).execute(&mut *tx).await?;
        let (principals, assets, versions) = cross(set);
        for ((principal, asset), version) in principals.iter().zip(&assets).zip(&versions) {
            sqlx::query(
                "INSERT INTO grants (source, principal, asset_id, version_number) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&set.source)
            .bind(principal)
            .bind(asset.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn may_read(&self, principal: &str, asset: Uuid, version: Option<i64>) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM grants WHERE principal = ? AND asset_id = ? \
             AND (? IS NULL OR version_number IN (0, ?)) LIMIT 1",
        )
        .bind(principal)
        .bind(asset.to_string())
        .bind(version)
        .bind(version)
        .fetch_optional(&self.0)
        .await?;
        Ok(found.is_some())
    }

    async fn is_pinned(&self, asset: Uuid, version: i64) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM grants WHERE asset_id = ? AND version_number = ? LIMIT 1")
                .bind(asset.to_string())
                .bind(version)
                .fetch_optional(&self.0)
                .await?;
        Ok(found.is_some())
    }
}

/// Every (principal, asset, version) row of `set`, as three columns.
fn cross(set: &GrantSet) -> (Vec<String>, Vec<Uuid>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for principal in &set.principals {
        for (asset, version) in &set.targets {
            columns.0.push(principal.clone());
            columns.1.push(*asset);
            columns.2.push(*version);
        }
    }
    columns
}
