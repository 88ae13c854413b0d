//! The rows the repositories read, derived once for both backends: ids and times go through `DbUuid` and
//! `DbTime`, documents through `Json`.

use std::collections::BTreeMap;

use highwind_common::db::{DbTime, DbUuid};
use sqlx::types::Json;

use super::StoreError;
use crate::domain::{
    asset::{Asset, AssetKind, ModelDetails},
    upload::{Upload, UploadFile, UploadState},
    version::{FileEntry, Lineage, Version, VersionState},
};

/// The `assets` columns an [`AssetRow`] reads, as a literal so statements stay `&'static str`.
macro_rules! asset_columns {
    () => {
        "id, owner, kind, display_name, description, cover_image_uri, labels, model, create_time, update_time, \
         archive_time, revision, version_count, stored_bytes"
    };
}
pub(super) use asset_columns;

/// The `versions` columns a [`VersionRow`] reads.
pub(super) const VERSION_COLUMNS: &str = "SELECT id, asset_id, number, state, manifest_digest, total_size, \
                                          description, labels, lineage, creator, create_time, metrics, \
                                          archive_time, revision FROM versions";

/// A byte count as the signed integer both backends store.
pub(super) fn size(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored byte count (never negative unless corrupt) as a size.
pub(super) fn unsigned(value: i64) -> u64 {
    value.max(0) as u64
}

#[derive(sqlx::FromRow)]
pub(super) struct AssetRow {
    id: DbUuid,
    owner: String,
    kind: String,
    display_name: String,
    description: String,
    cover_image_uri: String,
    labels: Json<BTreeMap<String, String>>,
    model: Option<Json<ModelDetails>>,
    create_time: DbTime,
    update_time: DbTime,
    archive_time: Option<DbTime>,
    revision: i64,
    version_count: i64,
    stored_bytes: i64,
}

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;

    fn try_from(row: AssetRow) -> Result<Self, StoreError> {
        let kind = AssetKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt { id: row.id.0.to_string(), reason: format!("kind {:?}", row.kind) })?;
        Ok(Self {
            id: row.id.0,
            kind,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            labels: row.labels.0,
            model: row.model.map(|m| m.0),
            owner: row.owner,
            create_time: row.create_time.0,
            update_time: row.update_time.0,
            archive_time: row.archive_time.map(|t| t.0),
            revision: row.revision,
            latest_version: (row.version_count > 0).then_some(row.version_count),
            stored_bytes: unsigned(row.stored_bytes),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UploadRow {
    id: DbUuid,
    asset_id: DbUuid,
    creator: String,
    state: String,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    create_time: DbTime,
    expire_time: DbTime,
    version_number: Option<i64>,
}

impl UploadRow {
    pub(super) fn into_upload(self, files: Vec<UploadFile>) -> Result<Upload, StoreError> {
        let state = UploadState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
            id: self.id.0.to_string(),
            reason: format!("state {:?}", self.state),
        })?;
        Ok(Upload {
            id: self.id.0,
            asset_id: self.asset_id.0,
            creator: self.creator,
            state,
            files,
            description: self.description,
            labels: self.labels.0,
            create_time: self.create_time.0,
            expire_time: self.expire_time.0,
            version_number: self.version_number,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) id: DbUuid,
    asset_id: DbUuid,
    number: i64,
    state: String,
    manifest_digest: String,
    total_size: i64,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    lineage: Json<Lineage>,
    creator: String,
    create_time: DbTime,
    metrics: Json<BTreeMap<String, f64>>,
    archive_time: Option<DbTime>,
    revision: i64,
}

impl VersionRow {
    pub(super) fn into_version(self, files: Vec<FileEntry>) -> Result<Version, StoreError> {
        let state = VersionState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
            id: self.id.0.to_string(),
            reason: format!("state {:?}", self.state),
        })?;
        Ok(Version {
            id: self.id.0,
            asset_id: self.asset_id.0,
            number: self.number,
            state,
            files,
            manifest_digest: self.manifest_digest,
            total_size: unsigned(self.total_size),
            description: self.description,
            labels: self.labels.0,
            lineage: self.lineage.0,
            creator: self.creator,
            create_time: self.create_time.0,
            metrics: self.metrics.0,
            archive_time: self.archive_time.map(|t| t.0),
            revision: self.revision,
        })
    }
}
