//! SQLite storage of versions, uploads and the blob index.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, types::Json};
use uuid::Uuid;

use super::{CommitOutcome, ContentRepository, Opened, StoreError, VersionQuery};
use crate::domain::{
    aliases::Alias,
    upload::{QuotaUsage, Upload, UploadFile, UploadHead, UploadQuota, UploadState},
    version::{FileEntry, Lineage, Version, VersionState},
};

/// Versions, uploads and blobs in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteContent {
    pool: SqlitePool,
}

impl SqliteContent {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn files_of_version(&self, id: &str) -> Result<Vec<FileEntry>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT path, size, sha256 FROM version_files WHERE version_id = ? ORDER BY path")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(path, size, sha256)| FileEntry { path, size: size.max(0) as u64, sha256 }).collect())
    }

    async fn version(&self, row: VersionRow) -> Result<Version, StoreError> {
        let files = self.files_of_version(&row.id).await?;
        row.into_version(files)
    }
}

fn uuid(id: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(id).map_err(|e| StoreError::Corrupt { id: id.to_owned(), reason: e.to_string() })
}

fn time(id: &str, micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt { id: id.to_owned(), reason: format!("time {micros}") })
}

fn size(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    asset_id: String,
    creator: String,
    state: String,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    create_micros: i64,
    expire_micros: i64,
    version_number: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: String,
    asset_id: String,
    number: i64,
    state: String,
    manifest_digest: String,
    total_size: i64,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    lineage: Json<Lineage>,
    creator: String,
    create_micros: i64,
    metrics: Json<BTreeMap<String, f64>>,
    archive_micros: Option<i64>,
    revision: i64,
}

impl VersionRow {
    fn into_version(self, files: Vec<FileEntry>) -> Result<Version, StoreError> {
        let state = VersionState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt { id: self.id.clone(), reason: format!("state {:?}", self.state) })?;
        Ok(Version {
            id: uuid(&self.id)?,
            asset_id: uuid(&self.asset_id)?,
            create_time: time(&self.id, self.create_micros)?,
            archive_time: self.archive_micros.map(|m| time(&self.id, m)).transpose()?,
            metrics: self.metrics.0,
            revision: self.revision,
            number: self.number,
            state,
            files,
            manifest_digest: self.manifest_digest,
            total_size: self.total_size.max(0) as u64,
            description: self.description,
            labels: self.labels.0,
            lineage: self.lineage.0,
            creator: self.creator,
        })
    }
}

const VERSION_COLUMNS: &str = "SELECT id, asset_id, number, state, manifest_digest, total_size, description, labels, \
                               lineage, creator, create_micros, metrics, archive_micros, revision FROM versions";

#[async_trait]
impl ContentRepository for SqliteContent {
    async fn create_upload(
        &self,
        upload: &Upload,
        request_id: Option<&str>,
        quota: &UploadQuota,
    ) -> Result<Opened, StoreError> {
        // BEGIN IMMEDIATE serializes every upload opening, so the quota is checked against settled usage.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(request_id) = request_id {
            let earlier: Option<String> =
                sqlx::query_scalar("SELECT id FROM uploads WHERE asset_id = ? AND creator = ? AND request_id = ?")
                    .bind(upload.asset_id.to_string())
                    .bind(&upload.creator)
                    .bind(request_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = earlier {
                tx.rollback().await?;
                let id = uuid(&id)?;
                let earlier = self.get_upload(id).await?;
                let earlier =
                    earlier.ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: "vanished".into() })?;
                return Ok(Opened::Upload(Box::new(earlier)));
            }
        }
        let (open_uploads, open_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(declared_bytes), 0) FROM uploads \
             WHERE creator = ? AND state = 'OPEN' AND expire_micros >= ?",
        )
        .bind(&upload.creator)
        .bind(upload.create_time.timestamp_micros())
        .fetch_one(&mut *tx)
        .await?;
        let stored_bytes: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(stored_bytes), 0) FROM assets WHERE owner = ?")
            .bind(&upload.creator)
            .fetch_one(&mut *tx)
            .await?;
        let usage = QuotaUsage {
            open_uploads: open_uploads.max(0) as u64,
            open_bytes: open_bytes.max(0) as u64,
            stored_bytes: stored_bytes.max(0) as u64,
        };
        if let Some(why) = quota.refusal(usage, upload.declared_bytes()) {
            tx.rollback().await?;
            return Ok(Opened::OverQuota(why));
        }
        sqlx::query(
            "INSERT INTO uploads (id, asset_id, creator, state, description, labels, create_micros, expire_micros, \
             request_id, declared_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(upload.id.to_string())
        .bind(upload.asset_id.to_string())
        .bind(&upload.creator)
        .bind(upload.state.as_str())
        .bind(&upload.description)
        .bind(Json(&upload.labels))
        .bind(upload.create_time.timestamp_micros())
        .bind(upload.expire_time.timestamp_micros())
        .bind(request_id)
        .bind(size(upload.declared_bytes()))
        .execute(&mut *tx)
        .await?;
        for file in &upload.files {
            sqlx::query("INSERT INTO upload_files (upload_id, path, size, sha256, complete) VALUES (?, ?, ?, ?, ?)")
                .bind(upload.id.to_string())
                .bind(&file.entry.path)
                .bind(size(file.entry.size))
                .bind(&file.entry.sha256)
                .bind(file.complete)
                .execute(&mut *tx)
                .await?;
        }
        // A blob claimed as present may have been collected since it was looked up: such files need bytes.
        let mut gone = Vec::new();
        for file in upload.files.iter().filter(|f| f.complete) {
            let held: Option<String> = sqlx::query_scalar("SELECT sha256 FROM blobs WHERE sha256 = ?")
                .bind(&file.entry.sha256)
                .fetch_optional(&mut *tx)
                .await?;
            if held.is_none() {
                sqlx::query("UPDATE upload_files SET complete = 0 WHERE upload_id = ? AND path = ?")
                    .bind(upload.id.to_string())
                    .bind(&file.entry.path)
                    .execute(&mut *tx)
                    .await?;
                gone.push(file.entry.path.clone());
            }
        }
        tx.commit().await?;
        let mut stored = upload.clone();
        for file in &mut stored.files {
            file.complete &= !gone.contains(&file.entry.path);
        }
        Ok(Opened::Upload(Box::new(stored)))
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let row: Option<UploadRow> = sqlx::query_as(
            "SELECT id, asset_id, creator, state, description, labels, create_micros, expire_micros, version_number \
             FROM uploads WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let files: Vec<(String, i64, String, bool)> =
            sqlx::query_as("SELECT path, size, sha256, complete FROM upload_files WHERE upload_id = ? ORDER BY path")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let state = UploadState::parse(&row.state)
            .ok_or_else(|| StoreError::Corrupt { id: row.id.clone(), reason: format!("state {:?}", row.state) })?;
        Ok(Some(Upload {
            id: uuid(&row.id)?,
            asset_id: uuid(&row.asset_id)?,
            create_time: time(&row.id, row.create_micros)?,
            expire_time: time(&row.id, row.expire_micros)?,
            creator: row.creator,
            state,
            files: files
                .into_iter()
                .map(|(path, size, sha256, complete)| UploadFile {
                    entry: FileEntry { path, size: size.max(0) as u64, sha256 },
                    complete,
                })
                .collect(),
            description: row.description,
            labels: row.labels.0,
            version_number: row.version_number,
        }))
    }

    async fn get_upload_head(&self, id: Uuid) -> Result<Option<UploadHead>, StoreError> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT asset_id, creator, state FROM uploads WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some((asset_id, creator, state)) = row else { return Ok(None) };
        let state = UploadState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: format!("state {state:?}") })?;
        Ok(Some(UploadHead { id, asset_id: uuid(&asset_id)?, creator, state }))
    }

    async fn get_upload_file(&self, id: Uuid, path: &str) -> Result<Option<UploadFile>, StoreError> {
        let row: Option<(i64, String, bool)> =
            sqlx::query_as("SELECT size, sha256, complete FROM upload_files WHERE upload_id = ? AND path = ?")
                .bind(id.to_string())
                .bind(path)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(size, sha256, complete)| UploadFile {
            entry: FileEntry { path: path.to_owned(), size: size.max(0) as u64, sha256 },
            complete,
        }))
    }

    async fn complete_file(&self, id: Uuid, path: &str, expire_time: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE upload_files SET complete = 1 WHERE upload_id = ? AND path = ?")
            .bind(id.to_string())
            .bind(path)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE uploads SET expire_micros = MAX(expire_micros, ?) WHERE id = ?")
            .bind(expire_time.timestamp_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close_upload(&self, id: Uuid, to: UploadState) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE uploads SET state = ? WHERE id = ? AND state = 'OPEN'")
            .bind(to.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_upload(&self, upload: &Upload, version: &Version) -> Result<CommitOutcome, StoreError> {
        // BEGIN IMMEDIATE takes the write lock up front, serializing concurrent commits.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT state, version_number FROM uploads WHERE id = ?")
                .bind(upload.id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match state {
            Some((state, Some(number))) if state == UploadState::Committed.as_str() => {
                tx.rollback().await?;
                let existing = self.get_version(upload.asset_id, number).await?;
                return existing
                    .map(|v| CommitOutcome::Committed(Box::new(v)))
                    .ok_or_else(|| StoreError::Corrupt { id: upload.id.to_string(), reason: "version gone".into() });
            }
            Some((state, _)) if state != UploadState::Open.as_str() => {
                let state = UploadState::parse(&state).unwrap_or(UploadState::Expired);
                return Ok(CommitOutcome::NotOpen(state));
            }
            None => return Ok(CommitOutcome::NotOpen(UploadState::Expired)),
            Some(_) => {}
        }
        let number: i64 = sqlx::query_scalar(
            "UPDATE assets SET version_count = version_count + 1, stored_bytes = stored_bytes + ? WHERE id = ? \
             RETURNING version_count",
        )
        .bind(size(version.total_size))
        .bind(version.asset_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        insert_version(&mut tx, version, number).await?;
        for file in &version.files {
            sqlx::query("INSERT INTO version_files (version_id, path, size, sha256) VALUES (?, ?, ?, ?)")
                .bind(version.id.to_string())
                .bind(&file.path)
                .bind(size(file.size))
                .bind(&file.sha256)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE uploads SET state = 'COMMITTED', version_number = ? WHERE id = ?")
            .bind(number)
            .bind(upload.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CommitOutcome::Committed(Box::new(Version { number, ..version.clone() })))
    }

    async fn record_image_version(&self, version: &Version) -> Result<Version, StoreError> {
        // BEGIN IMMEDIATE: two recorders of one image serialize, and the second finds the first's version.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT number FROM versions WHERE asset_id = ? AND manifest_digest = ? LIMIT 1")
                .bind(version.asset_id.to_string())
                .bind(&version.manifest_digest)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(number) = existing {
            tx.rollback().await?;
            return self.get_version(version.asset_id, number).await?.ok_or_else(|| StoreError::Corrupt {
                id: version.asset_id.to_string(),
                reason: "version gone".into(),
            });
        }
        let number: i64 = sqlx::query_scalar(
            "UPDATE assets SET version_count = version_count + 1, stored_bytes = stored_bytes + ? WHERE id = ? \
             RETURNING version_count",
        )
        .bind(size(version.total_size))
        .bind(version.asset_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        insert_version(&mut tx, version, number).await?;
        tx.commit().await?;
        Ok(Version { number, ..version.clone() })
    }

    async fn expire_uploads(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE uploads SET state = 'EXPIRED' WHERE state = 'OPEN' AND expire_micros < ? RETURNING id",
        )
        .bind(now.timestamp_micros())
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| uuid(id)).collect()
    }

    async fn record_blob(&self, sha256: &str, bytes: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (sha256, size, create_micros) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(sha256)
            .bind(size(bytes))
            .bind(now.timestamp_micros())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn missing_blobs(&self, digests: &[String]) -> Result<Vec<String>, StoreError> {
        let mut present = std::collections::HashSet::new();
        // SQLite caps bound parameters per statement; ask in slices.
        for slice in digests.chunks(500) {
            let mut sql = QueryBuilder::<Sqlite>::new("SELECT sha256 FROM blobs WHERE sha256 IN (");
            let mut list = sql.separated(", ");
            for digest in slice {
                list.push_bind(digest);
            }
            sql.push(")");
            let found: Vec<String> = sql.build_query_scalar().fetch_all(&self.pool).await?;
            present.extend(found);
        }
        Ok(digests.iter().filter(|d| !present.contains(*d)).cloned().collect())
    }

    async fn get_version(&self, asset_id: Uuid, number: i64) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(asset_id.to_string()).push(" AND number = ").push_bind(number);
        let row: Option<VersionRow> = sql.build_query_as().fetch_optional(&self.pool).await?;
        match row {
            Some(row) => Ok(Some(self.version(row).await?)),
            None => Ok(None),
        }
    }

    async fn latest_version(&self, asset_id: Uuid) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ")
            .push_bind(asset_id.to_string())
            .push(" AND state = 'READY' AND archive_micros IS NULL ORDER BY number DESC LIMIT 1");
        let row: Option<VersionRow> = sql.build_query_as().fetch_optional(&self.pool).await?;
        match row {
            Some(row) => Ok(Some(self.version(row).await?)),
            None => Ok(None),
        }
    }

    async fn list_versions(&self, query: &VersionQuery) -> Result<Vec<Version>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(query.asset_id.to_string());
        if let Some(state) = query.state {
            sql.push(" AND state = ").push_bind(state.as_str());
        }
        if !query.include_archived {
            sql.push(" AND archive_micros IS NULL");
        }
        for (key, value) in &query.labels {
            // Keys are validated to [a-z0-9_-], so the quoted JSON path cannot be escaped from.
            sql.push(" AND json_extract(labels, ")
                .push_bind(format!("$.\"{key}\""))
                .push(") = ")
                .push_bind(value.clone());
        }
        if let Some(alias) = &query.alias {
            sql.push(" AND number IN (SELECT version_number FROM aliases WHERE asset_id = ")
                .push_bind(query.asset_id.to_string());
            sql.push(" AND alias = ").push_bind(alias.clone()).push(")");
        }
        if let Some(after) = query.after {
            sql.push(if query.descending { " AND number < " } else { " AND number > " }).push_bind(after);
        }
        sql.push(if query.descending { " ORDER BY number DESC" } else { " ORDER BY number ASC" });
        sql.push(" LIMIT ").push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<VersionRow> = sql.build_query_as().fetch_all(&self.pool).await?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in rows {
            versions.push(self.version(row).await?);
        }
        Ok(versions)
    }

    async fn update_version(&self, version: &Version, expected_revision: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE versions SET description = ?, labels = ?, metrics = ?, archive_micros = ?, revision = ? \
             WHERE id = ? AND revision = ?",
        )
        .bind(&version.description)
        .bind(Json(&version.labels))
        .bind(Json(&version.metrics))
        .bind(version.archive_time.map(|t| t.timestamp_micros()))
        .bind(version.revision)
        .bind(version.id.to_string())
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_alias(&self, asset_id: Uuid, alias: &Alias, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO aliases (asset_id, alias, version_number, protected, update_micros) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (asset_id, alias) DO UPDATE SET version_number = excluded.version_number, \
             protected = excluded.protected, update_micros = excluded.update_micros",
        )
        .bind(asset_id.to_string())
        .bind(&alias.name)
        .bind(alias.version_number)
        .bind(alias.protected)
        .bind(now.timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_alias(&self, asset_id: Uuid, alias: &str) -> Result<Option<Alias>, StoreError> {
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "DELETE FROM aliases WHERE asset_id = ? AND alias = ? RETURNING alias, version_number, protected",
        )
        .bind(asset_id.to_string())
        .bind(alias)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(name, version_number, protected)| Alias { name, version_number, protected }))
    }

    async fn aliases(&self, asset_id: Uuid) -> Result<Vec<Alias>, StoreError> {
        let rows: Vec<(String, i64, bool)> =
            sqlx::query_as("SELECT alias, version_number, protected FROM aliases WHERE asset_id = ? ORDER BY alias")
                .bind(asset_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, version_number, protected)| Alias { name, version_number, protected })
            .collect())
    }

    async fn purge_asset(&self, asset_id: Uuid) -> Result<(u64, Vec<Uuid>), StoreError> {
        let id = asset_id.to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM aliases WHERE asset_id = ?").bind(&id).execute(&mut *tx).await?;
        let versions =
            sqlx::query("DELETE FROM versions WHERE asset_id = ?").bind(&id).execute(&mut *tx).await?.rows_affected();
        let uploads: Vec<String> = sqlx::query_scalar("DELETE FROM uploads WHERE asset_id = ? RETURNING id")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM assets WHERE id = ?").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((versions, uploads.iter().map(|u| uuid(u)).collect::<Result<_, _>>()?))
    }

    async fn unreferenced_blobs(&self, cutoff: DateTime<Utc>) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        let old: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT sha256, size FROM blobs WHERE create_micros < ? AND NOT ",
            super::blob_referenced!(),
            " ORDER BY sha256"
        ))
        .bind(cutoff.timestamp_micros())
        .fetch_all(&self.pool)
        .await?;
        let young: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM blobs WHERE create_micros >= ? AND NOT ",
            super::blob_referenced!()
        ))
        .bind(cutoff.timestamp_micros())
        .fetch_one(&self.pool)
        .await?;
        Ok((old.into_iter().map(|(sha, size)| (sha, size.max(0) as u64)).collect(), young.max(0) as u64))
    }

    async fn drop_blob_if_unreferenced(&self, sha256: &str) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE serializes this with uploads being created, which claim blobs in their own
        // immediate transaction.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let dropped = sqlx::query(concat!("DELETE FROM blobs WHERE sha256 = ? AND NOT ", super::blob_referenced!()))
            .bind(sha256)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(dropped == 1)
    }
}

/// Inserts the row of `version` under `number` (its files are the caller's).
async fn insert_version(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    version: &Version,
    number: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO versions (id, asset_id, number, state, manifest_digest, total_size, description, labels, \
         lineage, creator, create_micros, metrics, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(version.id.to_string())
    .bind(version.asset_id.to_string())
    .bind(number)
    .bind(version.state.as_str())
    .bind(&version.manifest_digest)
    .bind(size(version.total_size))
    .bind(&version.description)
    .bind(Json(&version.labels))
    .bind(Json(&version.lineage))
    .bind(&version.creator)
    .bind(version.create_time.timestamp_micros())
    .bind(Json(&version.metrics))
    .bind(version.revision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
