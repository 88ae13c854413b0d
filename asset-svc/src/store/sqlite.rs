//! SQLite storage of assets, for the embedded platform.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, types::Json};
use uuid::Uuid;

use super::{AssetRepository, StoreError};
use crate::domain::{
    asset::{Asset, AssetKind, ModelDetails},
    paging::{AssetQuery, OrderKey},
};

/// The selected columns, as a literal so statements stay `&'static str`.
macro_rules! columns {
    () => {
        "id, owner, kind, display_name, description, cover_image_uri, labels, model, create_micros, \
                       update_micros, archive_micros, revision, version_count, stored_bytes"
    };
}

/// Assets in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteAssets {
    pool: SqlitePool,
}

impl SqliteAssets {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct AssetRow {
    id: String,
    owner: String,
    kind: String,
    display_name: String,
    description: String,
    cover_image_uri: String,
    labels: Json<BTreeMap<String, String>>,
    model: Option<Json<ModelDetails>>,
    create_micros: i64,
    update_micros: i64,
    archive_micros: Option<i64>,
    revision: i64,
    version_count: i64,
    stored_bytes: i64,
}

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;

    fn try_from(row: AssetRow) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { id: row.id.clone(), reason };
        let time = |micros: i64| {
            DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("time {micros}")))
        };
        Ok(Self {
            id: Uuid::try_parse(&row.id).map_err(|e| corrupt(e.to_string()))?,
            kind: AssetKind::parse(&row.kind).ok_or_else(|| corrupt(format!("kind {:?}", row.kind)))?,
            create_time: time(row.create_micros)?,
            update_time: time(row.update_micros)?,
            archive_time: row.archive_micros.map(time).transpose()?,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            labels: row.labels.0,
            model: row.model.map(|m| m.0),
            owner: row.owner,
            revision: row.revision,
            latest_version: (row.version_count > 0).then_some(row.version_count),
            stored_bytes: row.stored_bytes.max(0) as u64,
        })
    }
}

#[async_trait]
impl AssetRepository for SqliteAssets {
    async fn create(&self, asset: &Asset, request_id: Option<&str>) -> Result<Asset, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO assets (id, owner, kind, display_name, description, cover_image_uri, labels, model, \
             create_micros, update_micros, archive_micros, revision, request_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(asset.id.to_string())
        .bind(&asset.owner)
        .bind(asset.kind.as_str())
        .bind(&asset.display_name)
        .bind(&asset.description)
        .bind(&asset.cover_image_uri)
        .bind(Json(&asset.labels))
        .bind(asset.model.as_ref().map(Json))
        .bind(asset.create_time.timestamp_micros())
        .bind(asset.update_time.timestamp_micros())
        .bind(asset.archive_time.map(|t| t.timestamp_micros()))
        .bind(asset.revision)
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(asset.clone());
        }
        let row: AssetRow =
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM assets WHERE owner = ? AND request_id = ?"))
                .bind(&asset.owner)
                .bind(request_id)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    async fn get(&self, id: Uuid) -> Result<Option<Asset>, StoreError> {
        let row: Option<AssetRow> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM assets WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Asset::try_from).transpose()
    }

    async fn list(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!("SELECT ", columns!(), " FROM assets WHERE owner = "));
        sql.push_bind(&query.owner);
        if !query.include_archived {
            sql.push(" AND archive_micros IS NULL");
        }
        match query.filter.archived {
            Some(true) => sql.push(" AND archive_micros IS NOT NULL"),
            Some(false) => sql.push(" AND archive_micros IS NULL"),
            None => &mut sql,
        };
        if let Some(kind) = query.filter.kind {
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        for (key, value) in &query.filter.labels {
            // Keys are validated to [a-z0-9_-], so the quoted JSON path cannot be escaped from.
            sql.push(" AND json_extract(labels, ").push_bind(format!("$.\"{key}\"")).push(") = ").push_bind(value);
        }
        let comparison = if query.order.descending { " < " } else { " > " };
        let direction = if query.order.descending { " DESC" } else { " ASC" };
        match query.order.key {
            OrderKey::CreateTime => {
                if let Some(cursor) = &query.after {
                    sql.push(" AND (create_micros, id)").push(comparison).push("(");
                    sql.push_bind(cursor.create_micros).push(", ").push_bind(cursor.id.to_string()).push(")");
                }
                sql.push(format!(" ORDER BY create_micros{direction}, id{direction}"));
            }
            OrderKey::DisplayName => {
                if let Some(cursor) = &query.after {
                    sql.push(" AND (display_name, id)").push(comparison).push("(");
                    sql.push_bind(cursor.display_name.clone()).push(", ").push_bind(cursor.id.to_string()).push(")");
                }
                sql.push(format!(" ORDER BY display_name{direction}, id{direction}"));
            }
        }
        sql.push(" LIMIT ").push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<AssetRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(Asset::try_from).collect()
    }

    async fn update(&self, asset: &Asset, expected_revision: i64) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE assets SET display_name = ?, description = ?, cover_image_uri = ?, labels = ?, model = ?, \
             update_micros = ?, archive_micros = ?, revision = ? WHERE id = ? AND revision = ?",
        )
        .bind(&asset.display_name)
        .bind(&asset.description)
        .bind(&asset.cover_image_uri)
        .bind(Json(&asset.labels))
        .bind(asset.model.as_ref().map(Json))
        .bind(asset.update_time.timestamp_micros())
        .bind(asset.archive_time.map(|t| t.timestamp_micros()))
        .bind(asset.revision)
        .bind(asset.id.to_string())
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}
