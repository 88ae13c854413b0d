//! PostgreSQL storage of versions, uploads and the blob index.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, types::Json};
use uuid::Uuid;

use super::{CommitOutcome, ContentRepository, Opened, StoreError, VersionQuery};
use crate::domain::{
    aliases::Alias,
    upload::{QuotaUsage, Upload, UploadFile, UploadHead, UploadQuota, UploadState},
    version::{FileEntry, Lineage, Version, VersionState},
};

/// Versions, uploads and blobs in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgContent {
    pool: PgPool,
}

impl PgContent {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn files_of_version(&self, id: Uuid) -> Result<Vec<FileEntry>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT path, size, sha256 FROM version_files WHERE version_id = $1 ORDER BY path")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(path, size, sha256)| FileEntry { path, size: size.max(0) as u64, sha256 }).collect())
    }

    async fn version(&self, row: VersionRow) -> Result<Version, StoreError> {
        let files = self.files_of_version(row.id).await?;
        row.into_version(files)
    }
}

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: Uuid,
    asset_id: Uuid,
    creator: String,
    state: String,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    create_time: DateTime<Utc>,
    expire_time: DateTime<Utc>,
    version_number: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: Uuid,
    asset_id: Uuid,
    number: i64,
    state: String,
    manifest_digest: String,
    total_size: i64,
    description: String,
    labels: Json<BTreeMap<String, String>>,
    lineage: Json<Lineage>,
    creator: String,
    create_time: DateTime<Utc>,
    metrics: Json<BTreeMap<String, f64>>,
    archive_time: Option<DateTime<Utc>>,
    revision: i64,
}

impl VersionRow {
    fn into_version(self, files: Vec<FileEntry>) -> Result<Version, StoreError> {
        let state = VersionState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
            id: self.id.to_string(),
            reason: format!("state {:?}", self.state),
        })?;
        Ok(Version {
            id: self.id,
            asset_id: self.asset_id,
            number: self.number,
            state,
            files,
            manifest_digest: self.manifest_digest,
            total_size: self.total_size.max(0) as u64,
            description: self.description,
            labels: self.labels.0,
            lineage: self.lineage.0,
            creator: self.creator,
            create_time: self.create_time,
            metrics: self.metrics.0,
            archive_time: self.archive_time,
            revision: self.revision,
        })
    }
}

/// Class of the two-key advisory locks that serialize one creator's upload openings ("upld").
const QUOTA_LOCK_CLASS: i32 = 0x7570_6c64;

const VERSION_COLUMNS: &str = "SELECT id, asset_id, number, state, manifest_digest, total_size, description, labels, \
                               lineage, creator, create_time, metrics, archive_time, revision FROM versions";

fn size(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl ContentRepository for PgContent {
    async fn create_upload(
        &self,
        upload: &Upload,
        request_id: Option<&str>,
        quota: &UploadQuota,
    ) -> Result<Opened, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(GC_LOCK).execute(&mut *tx).await?;
        // One creator's openings serialize (the two-key lock space is apart from GC_LOCK's), so the quota is
        // checked against settled usage.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(QUOTA_LOCK_CLASS)
            .bind(&upload.creator)
            .execute(&mut *tx)
            .await?;
        if let Some(request_id) = request_id {
            let earlier: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM uploads WHERE asset_id = $1 AND creator = $2 AND request_id = $3")
                    .bind(upload.asset_id)
                    .bind(&upload.creator)
                    .bind(request_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = earlier {
                tx.rollback().await?;
                let earlier = self.get_upload(id).await?;
                let earlier =
                    earlier.ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: "vanished".into() })?;
                return Ok(Opened::Upload(Box::new(earlier)));
            }
        }
        let (open_uploads, open_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(declared_bytes), 0)::BIGINT FROM uploads \
             WHERE creator = $1 AND state = 'OPEN' AND expire_time >= $2",
        )
        .bind(&upload.creator)
        .bind(upload.create_time)
        .fetch_one(&mut *tx)
        .await?;
        let stored_bytes: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(stored_bytes), 0)::BIGINT FROM assets WHERE owner = $1")
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
            "INSERT INTO uploads (id, asset_id, creator, state, description, labels, create_time, expire_time, \
             request_id, declared_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(upload.id)
        .bind(upload.asset_id)
        .bind(&upload.creator)
        .bind(upload.state.as_str())
        .bind(&upload.description)
        .bind(Json(&upload.labels))
        .bind(upload.create_time)
        .bind(upload.expire_time)
        .bind(request_id)
        .bind(size(upload.declared_bytes()))
        .execute(&mut *tx)
        .await?;
        for file in &upload.files {
            sqlx::query(
                "INSERT INTO upload_files (upload_id, path, size, sha256, complete) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(upload.id)
            .bind(&file.entry.path)
            .bind(size(file.entry.size))
            .bind(&file.entry.sha256)
            .bind(file.complete)
            .execute(&mut *tx)
            .await?;
        }
        // A blob claimed as present may have been collected since it was looked up: such files need bytes.
        let claimed: Vec<String> = upload.files.iter().filter(|f| f.complete).map(|f| f.entry.sha256.clone()).collect();
        let held: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM blobs WHERE sha256 = ANY($1)")
            .bind(&claimed)
            .fetch_all(&mut *tx)
            .await?;
        let gone: Vec<String> = claimed.into_iter().filter(|sha| !held.contains(sha)).collect();
        if !gone.is_empty() {
            sqlx::query("UPDATE upload_files SET complete = FALSE WHERE upload_id = $1 AND sha256 = ANY($2)")
                .bind(upload.id)
                .bind(&gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut stored = upload.clone();
        for file in &mut stored.files {
            file.complete &= !gone.contains(&file.entry.sha256);
        }
        Ok(Opened::Upload(Box::new(stored)))
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let row: Option<UploadRow> = sqlx::query_as(
            "SELECT id, asset_id, creator, state, description, labels, create_time, expire_time, version_number \
             FROM uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let files: Vec<(String, i64, String, bool)> =
            sqlx::query_as("SELECT path, size, sha256, complete FROM upload_files WHERE upload_id = $1 ORDER BY path")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let state = UploadState::parse(&row.state)
            .ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: format!("state {:?}", row.state) })?;
        Ok(Some(Upload {
            id: row.id,
            asset_id: row.asset_id,
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
            create_time: row.create_time,
            expire_time: row.expire_time,
            version_number: row.version_number,
        }))
    }

    async fn get_upload_head(&self, id: Uuid) -> Result<Option<UploadHead>, StoreError> {
        let row: Option<(Uuid, String, String)> =
            sqlx::query_as("SELECT asset_id, creator, state FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((asset_id, creator, state)) = row else { return Ok(None) };
        let state = UploadState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: format!("state {state:?}") })?;
        Ok(Some(UploadHead { id, asset_id, creator, state }))
    }

    async fn get_upload_file(&self, id: Uuid, path: &str) -> Result<Option<UploadFile>, StoreError> {
        let row: Option<(i64, String, bool)> =
            sqlx::query_as("SELECT size, sha256, complete FROM upload_files WHERE upload_id = $1 AND path = $2")
                .bind(id)
                .bind(path)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(size, sha256, complete)| UploadFile {
            entry: FileEntry { path: path.to_owned(), size: size.max(0) as u64, sha256 },
            complete,
        }))
    }

    async fn complete_file(&self, id: Uuid, path: &str, expire_time: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE upload_files SET complete = TRUE WHERE upload_id = $1 AND path = $2")
            .bind(id)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE uploads SET expire_time = GREATEST(expire_time, $2) WHERE id = $1")
            .bind(id)
            .bind(expire_time)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close_upload(&self, id: Uuid, to: UploadState) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE uploads SET state = $2 WHERE id = $1 AND state = 'OPEN'")
            .bind(id)
            .bind(to.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_upload(&self, upload: &Upload, version: &Version) -> Result<CommitOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT state, version_number FROM uploads WHERE id = $1 FOR UPDATE")
                .bind(upload.id)
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
        // The row lock on the asset serializes concurrent commits, so numbers never collide.
        let number: i64 = sqlx::query_scalar(
            "UPDATE assets SET version_count = version_count + 1, stored_bytes = stored_bytes + $2 WHERE id = $1 \
             RETURNING version_count",
        )
        .bind(version.asset_id)
        .bind(size(version.total_size))
        .fetch_one(&mut *tx)
        .await?;
        insert_version(&mut tx, version, number).await?;
        for file in &version.files {
            sqlx::query("INSERT INTO version_files (version_id, path, size, sha256) VALUES ($1, $2, $3, $4)")
                .bind(version.id)
                .bind(&file.path)
                .bind(size(file.size))
                .bind(&file.sha256)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE uploads SET state = 'COMMITTED', version_number = $2 WHERE id = $1")
            .bind(upload.id)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CommitOutcome::Committed(Box::new(Version { number, ..version.clone() })))
    }

    async fn record_image_version(&self, version: &Version) -> Result<Version, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The asset's row lock serializes recorders of its images: the second finds the first's version.
        let locked: Option<i64> = sqlx::query_scalar("SELECT version_count FROM assets WHERE id = $1 FOR UPDATE")
            .bind(version.asset_id)
            .fetch_optional(&mut *tx)
            .await?;
        if locked.is_none() {
            return Err(StoreError::Corrupt { id: version.asset_id.to_string(), reason: "asset gone".into() });
        }
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT number FROM versions WHERE asset_id = $1 AND manifest_digest = $2 LIMIT 1")
                .bind(version.asset_id)
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
            "UPDATE assets SET version_count = version_count + 1, stored_bytes = stored_bytes + $2 WHERE id = $1 \
             RETURNING version_count",
        )
        .bind(version.asset_id)
        .bind(size(version.total_size))
        .fetch_one(&mut *tx)
        .await?;
        insert_version(&mut tx, version, number).await?;
        tx.commit().await?;
        Ok(Version { number, ..version.clone() })
    }

    async fn expire_uploads(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE uploads SET state = 'EXPIRED' WHERE state = 'OPEN' AND expire_time < $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn record_blob(&self, sha256: &str, bytes: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (sha256, size, create_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(sha256)
            .bind(size(bytes))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn missing_blobs(&self, digests: &[String]) -> Result<Vec<String>, StoreError> {
        let present: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM blobs WHERE sha256 = ANY($1)")
            .bind(digests)
            .fetch_all(&self.pool)
            .await?;
        let present: std::collections::HashSet<String> = present.into_iter().collect();
        Ok(digests.iter().filter(|d| !present.contains(*d)).cloned().collect())
    }

    async fn get_version(&self, asset_id: Uuid, number: i64) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(asset_id).push(" AND number = ").push_bind(number);
        let row: Option<VersionRow> = sql.build_query_as().fetch_optional(&self.pool).await?;
        match row {
            Some(row) => Ok(Some(self.version(row).await?)),
            None => Ok(None),
        }
    }

    async fn latest_version(&self, asset_id: Uuid) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ")
            .push_bind(asset_id)
            .push(" AND state = 'READY' AND archive_time IS NULL ORDER BY number DESC LIMIT 1");
        let row: Option<VersionRow> = sql.build_query_as().fetch_optional(&self.pool).await?;
        match row {
            Some(row) => Ok(Some(self.version(row).await?)),
            None => Ok(None),
        }
    }

    async fn list_versions(&self, query: &VersionQuery) -> Result<Vec<Version>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(query.asset_id);
        if let Some(state) = query.state {
            sql.push(" AND state = ").push_bind(state.as_str());
        }
        if !query.include_archived {
            sql.push(" AND archive_time IS NULL");
        }
        for (key, value) in &query.labels {
            sql.push(" AND labels ->> ").push_bind(key.clone()).push(" = ").push_bind(value.clone());
        }
        if let Some(alias) = &query.alias {
            sql.push(" AND number IN (SELECT version_number FROM aliases WHERE asset_id = ").push_bind(query.asset_id);
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
            "UPDATE versions SET description = $1, labels = $2, metrics = $3, archive_time = $4, revision = $5 \
             WHERE id = $6 AND revision = $7",
        )
        .bind(&version.description)
        .bind(Json(&version.labels))
        .bind(Json(&version.metrics))
        .bind(version.archive_time)
        .bind(version.revision)
        .bind(version.id)
        .bind(expected_revision)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_alias(&self, asset_id: Uuid, alias: &Alias, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO aliases (asset_id, alias, version_number, protected, update_time) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (asset_id, alias) DO UPDATE SET version_number = EXCLUDED.version_number, \
             protected = EXCLUDED.protected, update_time = EXCLUDED.update_time",
        )
        .bind(asset_id)
        .bind(&alias.name)
        .bind(alias.version_number)
        .bind(alias.protected)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_alias(&self, asset_id: Uuid, alias: &str) -> Result<Option<Alias>, StoreError> {
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "DELETE FROM aliases WHERE asset_id = $1 AND alias = $2 RETURNING alias, version_number, protected",
        )
        .bind(asset_id)
        .bind(alias)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(name, version_number, protected)| Alias { name, version_number, protected }))
    }

    async fn aliases(&self, asset_id: Uuid) -> Result<Vec<Alias>, StoreError> {
        let rows: Vec<(String, i64, bool)> =
            sqlx::query_as("SELECT alias, version_number, protected FROM aliases WHERE asset_id = $1 ORDER BY alias")
                .bind(asset_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, version_number, protected)| Alias { name, version_number, protected })
            .collect())
    }

    async fn purge_asset(&self, asset_id: Uuid) -> Result<(u64, Vec<Uuid>), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM aliases WHERE asset_id = $1").bind(asset_id).execute(&mut *tx).await?;
        let versions = sqlx::query("DELETE FROM versions WHERE asset_id = $1")
            .bind(asset_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let uploads: Vec<Uuid> = sqlx::query_scalar("DELETE FROM uploads WHERE asset_id = $1 RETURNING id")
            .bind(asset_id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM assets WHERE id = $1").bind(asset_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((versions, uploads))
    }

    async fn unreferenced_blobs(&self, cutoff: DateTime<Utc>) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        let old: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT sha256, size FROM blobs WHERE create_time < $1 AND NOT ",
            super::blob_referenced!(),
            " ORDER BY sha256"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        let young: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM blobs WHERE create_time >= $1 AND NOT ",
            super::blob_referenced!()
        ))
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await?;
        Ok((old.into_iter().map(|(sha, size)| (sha, size.max(0) as u64)).collect(), young.max(0) as u64))
    }

    async fn drop_blob_if_unreferenced(&self, sha256: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Exclusive against uploads being created, which hold the shared side while they claim blobs.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(GC_LOCK).execute(&mut *tx).await?;
        let dropped = sqlx::query(concat!("DELETE FROM blobs WHERE sha256 = $1 AND NOT ", super::blob_referenced!()))
            .bind(sha256)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(dropped == 1)
    }
}

/// Advisory lock key that serializes garbage collection against uploads claiming existing blobs.
const GC_LOCK: i64 = 0x4869_6768_7769_6e64;

/// Inserts the row of `version` under `number` (its files are the caller's).
async fn insert_version(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    version: &Version,
    number: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO versions (id, asset_id, number, state, manifest_digest, total_size, description, labels, \
         lineage, creator, create_time, metrics, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(version.id)
    .bind(version.asset_id)
    .bind(number)
    .bind(version.state.as_str())
    .bind(&version.manifest_digest)
    .bind(size(version.total_size))
    .bind(&version.description)
    .bind(Json(&version.labels))
    .bind(Json(&version.lineage))
    .bind(&version.creator)
    .bind(version.create_time)
    .bind(Json(&version.metrics))
    .bind(version.revision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
