//! PostgreSQL storage of assets.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, types::Json};
use uuid::Uuid;

use super::{AssetRepository, StoreError};
use crate::domain::{
    asset::{Asset, AssetKind, ModelDetails},
    paging::{AssetQuery, OrderKey},
};

/// The selected columns, as a literal so statements stay `&'static str`.
macro_rules! columns {
    () => {
        "id, owner, kind, display_name, description, cover_image_uri, labels, model, create_time, \
                       update_time, archive_time, revision, version_count, stored_bytes"
    };
}

/// Assets in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgAssets {
    pool: PgPool,
}

impl PgAssets {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct AssetRow {
    id: Uuid,
    owner: String,
    kind: String,
    display_name: String,
    description: String,
    cover_image_uri: String,
    labels: Json<BTreeMap<String, String>>,
    model: Option<Json<ModelDetails>>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    archive_time: Option<DateTime<Utc>>,
    revision: i64,
    version_count: i64,
    stored_bytes: i64,
}

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;

    fn try_from(row: AssetRow) -> Result<Self, StoreError> {
        let kind = AssetKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt { id: row.id.to_string(), reason: format!("kind {:?}", row.kind) })?;
        Ok(Self {
            id: row.id,
            kind,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            labels: row.labels.0,
            model: row.model.map(|m| m.0),
            owner: row.owner,
            create_time: row.create_time,
            update_time: row.update_time,
            archive_time: row.archive_time,
            revision: row.revision,
            latest_version: (row.version_count > 0).then_some(row.version_count),
            stored_bytes: row.stored_bytes.max(0) as u64,
        })
    }
}

#[async_trait]
impl AssetRepository for PgAssets {
    async fn create(&self, asset: &Asset, request_id: Option<&str>) -> Result<Asset, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO assets (id, owner, kind, display_name, description, cover_image_uri, labels, model, \
             create_time, update_time, archive_time, revision, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
        )
        .bind(asset.id)
        .bind(&asset.owner)
        .bind(asset.kind.as_str())
        .bind(&asset.display_name)
        .bind(&asset.description)
        .bind(&asset.cover_image_uri)
        .bind(Json(&asset.labels))
        .bind(asset.model.as_ref().map(Json))
        .bind(asset.create_time)
        .bind(asset.update_time)
        .bind(asset.archive_time)
        .bind(asset.revision)
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(asset.clone());
        }
        let row: AssetRow =
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM assets WHERE owner = $1 AND request_id = $2"))
                .bind(&asset.owner)
                .bind(request_id)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    async fn get(&self, id: Uuid) -> Result<Option<Asset>, StoreError> {
        let row: Option<AssetRow> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM assets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Asset::try_from).transpose()
    }

    async fn list(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(concat!("SELECT ", columns!(), " FROM assets WHERE owner = "));
        sql.push_bind(&query.owner);
        if !query.include_archived {
            sql.push(" AND archive_time IS NULL");
        }
        match query.filter.archived {
            Some(true) => sql.push(" AND archive_time IS NOT NULL"),
            Some(false) => sql.push(" AND archive_time IS NULL"),
            None => &mut sql,
        };
        if let Some(kind) = query.filter.kind {
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        for (key, value) in &query.filter.labels {
            sql.push(" AND labels ->> ").push_bind(key).push(" = ").push_bind(value);
        }
        let comparison = if query.order.descending { " < " } else { " > " };
        let direction = if query.order.descending { " DESC" } else { " ASC" };
        match query.order.key {
            OrderKey::CreateTime => {
                if let Some(cursor) = &query.after {
                    let time = cursor.create_micros.and_then(DateTime::<Utc>::from_timestamp_micros);
                    sql.push(" AND (create_time, id)").push(comparison).push("(");
                    sql.push_bind(time).push(", ").push_bind(cursor.id).push(")");
                }
                sql.push(format!(" ORDER BY create_time{direction}, id{direction}"));
            }
            OrderKey::DisplayName => {
                if let Some(cursor) = &query.after {
                    sql.push(" AND (display_name COLLATE \"C\", id)").push(comparison).push("(");
                    sql.push_bind(cursor.display_name.clone()).push(" COLLATE \"C\", ").push_bind(cursor.id).push(")");
                }
                sql.push(format!(" ORDER BY display_name COLLATE \"C\"{direction}, id{direction}"));
            }
        }
        sql.push(" LIMIT ").push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<AssetRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(Asset::try_from).collect()
    }

    async fn update(&self, asset: &Asset, expected_revision: i64) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE assets SET display_name = $1, description = $2, cover_image_uri = $3, labels = $4, model = $5, \
             update_time = $6, archive_time = $7, revision = $8 WHERE id = $9 AND revision = $10",
        )
        .bind(&asset.display_name)
        .bind(&asset.description)
        .bind(&asset.cover_image_uri)
        .bind(Json(&asset.labels))
        .bind(asset.model.as_ref().map(Json))
        .bind(asset.update_time)
        .bind(asset.archive_time)
        .bind(asset.revision)
        .bind(asset.id)
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}
