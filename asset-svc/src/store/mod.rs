//! Where assets are kept: the repository traits, one implementation of them (`repository/`) compiled for
//! PostgreSQL (`pg.rs`) and for SQLite (`sqlite.rs`), and the conformance suite both must pass.

use std::sync::Arc;

use async_trait::async_trait;
use highwind_common::db::{Database, DbError};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::domain::{
    aliases::Alias,
    asset::Asset,
    paging::AssetQuery,
    upload::{Upload, UploadFile, UploadHead, UploadQuota, UploadState},
    version::{Version, VersionState},
};

/// The condition, in SQL both backends speak, that blob `blobs.sha256` is referenced by a version (live or
/// archived) or by an open upload. A macro, so statements built with it stay literals.
macro_rules! blob_referenced {
    () => {
        "(EXISTS (SELECT 1 FROM version_files vf WHERE vf.sha256 = blobs.sha256) \
          OR EXISTS (SELECT 1 FROM upload_files uf JOIN uploads u ON u.id = uf.upload_id \
                     WHERE uf.sha256 = blobs.sha256 AND u.state = 'OPEN'))"
    };
}

/// The repositories of one database.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Asset metadata.
    pub assets: Arc<dyn AssetRepository>,
    /// Versions, uploads and blobs.
    pub content: Arc<dyn ContentRepository>,
    /// Read grants from use cases and entitlements.
    pub grants: Arc<dyn grants::GrantRepository>,
}

/// Migrates `db` and returns the repositories for its backend, behind read caches.
pub async fn open(db: Database) -> Result<Stores, DbError> {
    let raw = open_uncached(db).await?;
    let assets = Arc::new(cached::CachedAssets::new(raw.assets));
    let content = Arc::new(cached::CachedContent::new(raw.content, assets.clone()));
    Ok(Stores { assets, content, grants: raw.grants })
}

/// Migrates `db` and returns the bare repositories for its backend.
pub async fn open_uncached(db: Database) -> Result<Stores, DbError> {
    db.migrate(&POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS).await?;
    Ok(match db {
        Database::Postgres(pool) => Stores {
            assets: Arc::new(pg::Assets(pool.clone())),
            content: Arc::new(pg::Content(pool.clone())),
            grants: Arc::new(pg::Grants(pool)),
        },
        Database::Sqlite(pool) => Stores {
            assets: Arc::new(sqlite::Assets(pool.clone())),
            content: Arc::new(sqlite::Content(pool.clone())),
            grants: Arc::new(sqlite::Grants(pool)),
        },
    })
}

mod cached;
pub mod grants;
mod pg;
mod rows;
mod sqlite;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod upgrade;

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

/// A page of an asset's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionQuery {
    /// Whose versions.
    pub asset_id: Uuid,
    /// Only versions in this state.
    pub state: Option<VersionState>,
    /// Highest number first.
    pub descending: bool,
    /// Only the version holding this alias.
    pub alias: Option<String>,
    /// Only versions carrying every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Include archived versions.
    pub include_archived: bool,
    /// Strictly after this number, in the list's order.
    pub after: Option<i64>,
    /// Rows to return; the store fetches one more.
    pub limit: usize,
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// The version was created, or had been by an earlier commit of the same upload.
    Committed(Box<Version>),
    /// The upload is no longer open (cancelled or expired).
    NotOpen(UploadState),
}

/// What became of opening an upload.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// The upload as stored: new, or the one an earlier request with the same `request_id` opened.
    Upload(Box<Upload>),
    /// The creator's quota does not admit it (why, as the caller is told); nothing was stored.
    OverQuota(String),
}

/// Persistence of versions, uploads and the blob index.
#[async_trait]
pub trait ContentRepository: Send + Sync + std::fmt::Debug {
    /// Inserts `upload` with its files if its creator's usage stays within `quota`, checked atomically with
    /// the insert so concurrent requests cannot both slip under it. When `request_id` was already used by the
    /// same creator for the same asset, nothing is inserted and that upload is returned.
    async fn create_upload(
        &self,
        upload: &Upload,
        request_id: Option<&str>,
        quota: &UploadQuota,
    ) -> Result<Opened, StoreError>;

    /// The upload with `id`.
    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError>;

    /// The upload with `id`, without its files: one row however many it declares.
    async fn get_upload_head(&self, id: Uuid) -> Result<Option<UploadHead>, StoreError>;

    /// The declared file of upload `id` at `path`: one row however many it declares.
    async fn get_upload_file(&self, id: Uuid, path: &str) -> Result<Option<UploadFile>, StoreError>;

    /// Marks a file's content as stored and pushes the upload's expiry to `expire_time`.
    async fn complete_file(&self, id: Uuid, path: &str, expire_time: DateTime<Utc>) -> Result<(), StoreError>;

    /// Moves an OPEN upload to `to`; false when it was not open.
    async fn close_upload(&self, id: Uuid, to: UploadState) -> Result<bool, StoreError>;

    /// In one transaction: checks the upload is open, gives the version the asset's next number, stores it
    /// with its files and marks the upload committed. Committing a committed upload returns its version.
    async fn commit_upload(&self, upload: &Upload, version: &Version) -> Result<CommitOutcome, StoreError>;

    /// In one transaction: the version of `version.asset_id` whose manifest digest is `version.manifest_digest`
    /// if one exists, else `version` stored under the asset's next number (an image found in the registry,
    /// recorded once however often it is seen).
    async fn record_image_version(&self, version: &Version) -> Result<Version, StoreError>;

    /// Marks every OPEN upload whose expiry is before `now` EXPIRED and returns their ids.
    async fn expire_uploads(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;

    /// Records that the blob store holds `sha256` (idempotent).
    async fn record_blob(&self, sha256: &str, size: u64, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Which of `digests` the blob store does not hold, in their order.
    async fn missing_blobs(&self, digests: &[String]) -> Result<Vec<String>, StoreError>;

    /// Version `number` of an asset.
    async fn get_version(&self, asset_id: Uuid, number: i64) -> Result<Option<Version>, StoreError>;

    /// The highest-numbered READY version of an asset.
    async fn latest_version(&self, asset_id: Uuid) -> Result<Option<Version>, StoreError>;

    /// At most `query.limit + 1` versions matching `query`.
    async fn list_versions(&self, query: &VersionQuery) -> Result<Vec<Version>, StoreError>;

    /// Replaces a version's metadata (description, labels, metrics, archive time, revision) if its revision is
    /// still `expected_revision`; its files never change.
    async fn update_version(&self, version: &Version, expected_revision: i64) -> Result<bool, StoreError>;

    /// Points `alias` at its version, moving it from any other version of the asset.
    async fn set_alias(&self, asset_id: Uuid, alias: &Alias, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Removes an alias, returning what it was.
    async fn delete_alias(&self, asset_id: Uuid, alias: &str) -> Result<Option<Alias>, StoreError>;

    /// Every alias of an asset, by name.
    async fn aliases(&self, asset_id: Uuid) -> Result<Vec<Alias>, StoreError>;

    /// Removes an asset with its versions, uploads and aliases; returns how many versions went and the ids of
    /// the uploads (whose staged data the caller removes). Blobs stay for garbage collection.
    async fn purge_asset(&self, asset_id: Uuid) -> Result<(u64, Vec<Uuid>), StoreError>;

    /// Blobs no version and no open upload references: those indexed before `cutoff` (to collect), and how
    /// many younger ones are kept by the grace window.
    async fn unreferenced_blobs(&self, cutoff: DateTime<Utc>) -> Result<(Vec<(String, u64)>, u64), StoreError>;

    /// Drops `sha256` from the index if still unreferenced, atomically with respect to new uploads claiming
    /// it; true when dropped (the caller then deletes the object).
    async fn drop_blob_if_unreferenced(&self, sha256: &str) -> Result<bool, StoreError>;
}
