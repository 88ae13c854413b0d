//! Asset metadata.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use sqlx::{QueryBuilder, types::Json};
use uuid::Uuid;

use super::super::{Assets, BYTEWISE, Db, push_label_equals};
use crate::{
    domain::{
        asset::Asset,
        paging::{AssetQuery, OrderKey},
    },
    store::{
        AssetRepository, StoreError,
        rows::{AssetRow, asset_columns},
    },
};

#[async_trait]
impl AssetRepository for Assets {
    async fn create(&self, asset: &Asset, request_id: Option<&str>) -> Result<Asset, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO assets (id, owner, kind, display_name, description, cover_image_uri, labels, model, \
             create_time, update_time, archive_time, revision, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
        )
        .bind(DbUuid(asset.id))
        .bind(&asset.owner)
        .bind(asset.kind.as_str())
        .bind(&asset.display_name)
        .bind(&asset.description)
        .bind(&asset.cover_image_uri)
        .bind(Json(&asset.labels))
        .bind(asset.model.as_ref().map(Json))
        .bind(DbTime(asset.create_time))
        .bind(DbTime(asset.update_time))
        .bind(asset.archive_time.map(DbTime))
        .bind(asset.revision)
        .bind(request_id)
        .execute(&self.0)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(asset.clone());
        }
        let row: AssetRow =
            sqlx::query_as(concat!("SELECT ", asset_columns!(), " FROM assets WHERE owner = $1 AND request_id = $2"))
                .bind(&asset.owner)
                .bind(request_id)
                .fetch_one(&self.0)
                .await?;
        row.try_into()
    }

    async fn get(&self, id: Uuid) -> Result<Option<Asset>, StoreError> {
        let row: Option<AssetRow> = sqlx::query_as(concat!("SELECT ", asset_columns!(), " FROM assets WHERE id = $1"))
            .bind(DbUuid(id))
            .fetch_optional(&self.0)
            .await?;
        row.map(Asset::try_from).transpose()
    }

    async fn list(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new(concat!("SELECT ", asset_columns!(), " FROM assets WHERE owner = "));
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
            push_label_equals(&mut sql, "labels", None, key, value);
        }
        let comparison = if query.order.descending { " < " } else { " > " };
        let direction = if query.order.descending { " DESC" } else { " ASC" };
        match query.order.key {
            OrderKey::CreateTime => {
                if let Some(cursor) = &query.after {
                    let time = cursor.create_micros.and_then(DateTime::<Utc>::from_timestamp_micros);
                    sql.push(" AND (create_time, id)").push(comparison).push("(");
                    sql.push_bind(time.map(DbTime)).push(", ").push_bind(DbUuid(cursor.id)).push(")");
                }
                sql.push(format!(" ORDER BY create_time{direction}, id{direction}"));
            }
            OrderKey::DisplayName => {
                if let Some(cursor) = &query.after {
                    sql.push(format!(" AND (display_name{BYTEWISE}, id)")).push(comparison).push("(");
                    sql.push_bind(cursor.display_name.clone()).push(BYTEWISE).push(", ");
                    sql.push_bind(DbUuid(cursor.id)).push(")");
                }
                sql.push(format!(" ORDER BY display_name{BYTEWISE}{direction}, id{direction}"));
            }
        }
        sql.push(" LIMIT ").push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<AssetRow> = sql.build_query_as().fetch_all(&self.0).await?;
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
        .bind(DbTime(asset.update_time))
        .bind(asset.archive_time.map(DbTime))
        .bind(asset.revision)
        .bind(DbUuid(asset.id))
        .bind(expected_revision)
        .execute(&self.0)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}
