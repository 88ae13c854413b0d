//! Versions, uploads and the blob index.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use sqlx::{QueryBuilder, Transaction, types::Json};
use uuid::Uuid;

use super::super::{
    Content, Db, FOR_UPDATE, begin_write, lock_blob_collection, lock_upload_opening, push_label_equals,
};
use crate::{
    domain::{
        aliases::Alias,
        upload::{QuotaUsage, Upload, UploadFile, UploadHead, UploadQuota, UploadState},
        version::{FileEntry, Version},
    },
    store::{
        CommitOutcome, ContentRepository, Opened, StoreError, VersionQuery,
        rows::{UploadRow, VERSION_COLUMNS, VersionRow, size, unsigned},
    },
};

/// Digests asked about in one statement: SQLite caps the parameters of one statement.
const DIGESTS_PER_STATEMENT: usize = 500;

impl Content {
    async fn files_of_version(&self, id: Uuid) -> Result<Vec<FileEntry>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT path, size, sha256 FROM version_files WHERE version_id = $1 ORDER BY path")
                .bind(DbUuid(id))
                .fetch_all(&self.0)
                .await?;
        Ok(rows.into_iter().map(|(path, size, sha256)| FileEntry { path, size: unsigned(size), sha256 }).collect())
    }

    async fn version(&self, row: VersionRow) -> Result<Version, StoreError> {
        let files = self.files_of_version(row.id.0).await?;
        row.into_version(files)
    }

    async fn version_where(&self, sql: &mut QueryBuilder<Db>) -> Result<Option<Version>, StoreError> {
        let row: Option<VersionRow> = sql.build_query_as().fetch_optional(&self.0).await?;
        match row {
            Some(row) => Ok(Some(self.version(row).await?)),
            None => Ok(None),
        }
    }
}

/// Which of `digests` the blob index holds.
async fn held_blobs(
    connection: &mut <Db as sqlx::Database>::Connection,
    digests: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut held = HashSet::new();
    for slice in digests.chunks(DIGESTS_PER_STATEMENT) {
        let mut sql = QueryBuilder::<Db>::new("SELECT sha256 FROM blobs WHERE sha256 IN (");
        let mut list = sql.separated(", ");
        for digest in slice {
            list.push_bind(digest.clone());
        }
        sql.push(")");
        let found: Vec<String> = sql.build_query_scalar().fetch_all(&mut *connection).await?;
        held.extend(found);
    }
    Ok(held)
}

#[async_trait]
impl ContentRepository for Content {
    async fn create_upload(
        &self,
        upload: &Upload,
        request_id: Option<&str>,
        quota: &UploadQuota,
    ) -> Result<Opened, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        lock_upload_opening(&mut tx, &upload.creator).await?;
        if let Some(request_id) = request_id {
            let earlier: Option<DbUuid> =
                sqlx::query_scalar("SELECT id FROM uploads WHERE asset_id = $1 AND creator = $2 AND request_id = $3")
                    .bind(DbUuid(upload.asset_id))
                    .bind(&upload.creator)
                    .bind(request_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(DbUuid(id)) = earlier {
                tx.rollback().await?;
                let earlier = self.get_upload(id).await?;
                let earlier =
                    earlier.ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: "vanished".into() })?;
                return Ok(Opened::Upload(Box::new(earlier)));
            }
        }
        let (open_uploads, open_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(declared_bytes), 0) AS BIGINT) FROM uploads \
             WHERE creator = $1 AND state = 'OPEN' AND expire_time >= $2",
        )
        .bind(&upload.creator)
        .bind(DbTime(upload.create_time))
        .fetch_one(&mut *tx)
        .await?;
        let stored_bytes: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM assets WHERE owner = $1")
                .bind(&upload.creator)
                .fetch_one(&mut *tx)
                .await?;
        let usage = QuotaUsage {
            open_uploads: unsigned(open_uploads),
            open_bytes: unsigned(open_bytes),
            stored_bytes: unsigned(stored_bytes),
        };
        if let Some(why) = quota.refusal(usage, upload.declared_bytes()) {
            tx.rollback().await?;
            return Ok(Opened::OverQuota(why));
        }
        sqlx::query(
            "INSERT INTO uploads (id, asset_id, creator, state, description, labels, create_time, expire_time, \
             request_id, declared_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(DbUuid(upload.id))
        .bind(DbUuid(upload.asset_id))
        .bind(&upload.creator)
        .bind(upload.state.as_str())
        .bind(&upload.description)
        .bind(Json(&upload.labels))
        .bind(DbTime(upload.create_time))
        .bind(DbTime(upload.expire_time))
        .bind(request_id)
        .bind(size(upload.declared_bytes()))
        .execute(&mut *tx)
        .await?;
        for file in &upload.files {
            sqlx::query(
                "INSERT INTO upload_files (upload_id, path, size, sha256, complete) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(DbUuid(upload.id))
            .bind(&file.entry.path)
            .bind(size(file.entry.size))
            .bind(&file.entry.sha256)
            .bind(file.complete)
            .execute(&mut *tx)
            .await?;
        }
        // A blob claimed as present may have been collected since it was looked up: such files need bytes.
        let claimed: Vec<String> = upload.files.iter().filter(|f| f.complete).map(|f| f.entry.sha256.clone()).collect();
        let held = held_blobs(&mut tx, &claimed).await?;
        let mut stored = upload.clone();
        for file in stored.files.iter_mut().filter(|f| f.complete && !held.contains(&f.entry.sha256)) {
            file.complete = false;
            sqlx::query("UPDATE upload_files SET complete = FALSE WHERE upload_id = $1 AND path = $2")
                .bind(DbUuid(upload.id))
                .bind(&file.entry.path)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Opened::Upload(Box::new(stored)))
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let row: Option<UploadRow> = sqlx::query_as(
            "SELECT id, asset_id, creator, state, description, labels, create_time, expire_time, version_number \
             FROM uploads WHERE id = $1",
        )
        .bind(DbUuid(id))
        .fetch_optional(&self.0)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let files: Vec<(String, i64, String, bool)> =
            sqlx::query_as("SELECT path, size, sha256, complete FROM upload_files WHERE upload_id = $1 ORDER BY path")
                .bind(DbUuid(id))
                .fetch_all(&self.0)
                .await?;
        let files = files
            .into_iter()
            .map(|(path, size, sha256, complete)| UploadFile {
                entry: FileEntry { path, size: unsigned(size), sha256 },
                complete,
            })
            .collect();
        row.into_upload(files).map(Some)
    }

    async fn get_upload_head(&self, id: Uuid) -> Result<Option<UploadHead>, StoreError> {
        let row: Option<(DbUuid, String, String)> =
            sqlx::query_as("SELECT asset_id, creator, state FROM uploads WHERE id = $1")
                .bind(DbUuid(id))
                .fetch_optional(&self.0)
                .await?;
        let Some((asset_id, creator, state)) = row else { return Ok(None) };
        let state = UploadState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { id: id.to_string(), reason: format!("state {state:?}") })?;
        Ok(Some(UploadHead { id, asset_id: asset_id.0, creator, state }))
    }

    async fn get_upload_file(&self, id: Uuid, path: &str) -> Result<Option<UploadFile>, StoreError> {
        let row: Option<(i64, String, bool)> =
            sqlx::query_as("SELECT size, sha256, complete FROM upload_files WHERE upload_id = $1 AND path = $2")
                .bind(DbUuid(id))
                .bind(path)
                .fetch_optional(&self.0)
                .await?;
        Ok(row.map(|(size, sha256, complete)| UploadFile {
            entry: FileEntry { path: path.to_owned(), size: unsigned(size), sha256 },
            complete,
        }))
    }

    async fn complete_file(&self, id: Uuid, path: &str, expire_time: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.0).await?;
        sqlx::query("UPDATE upload_files SET complete = TRUE WHERE upload_id = $1 AND path = $2")
            .bind(DbUuid(id))
            .bind(path)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE uploads SET expire_time = $2 WHERE id = $1 AND expire_time < $2")
            .bind(DbUuid(id))
            .bind(DbTime(expire_time))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close_upload(&self, id: Uuid, to: UploadState) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE uploads SET state = $2 WHERE id = $1 AND state = 'OPEN'")
            .bind(DbUuid(id))
            .bind(to.as_str())
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_upload(&self, upload: &Upload, version: &Version) -> Result<CommitOutcome, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let state: Option<(String, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT state, version_number FROM uploads WHERE id = $1{FOR_UPDATE}"
        )))
        .bind(DbUuid(upload.id))
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
        let number = next_version_number(&mut tx, version).await?;
        insert_version(&mut tx, version, number).await?;
        for file in &version.files {
            sqlx::query("INSERT INTO version_files (version_id, path, size, sha256) VALUES ($1, $2, $3, $4)")
                .bind(DbUuid(version.id))
                .bind(&file.path)
                .bind(size(file.size))
                .bind(&file.sha256)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE uploads SET state = 'COMMITTED', version_number = $2 WHERE id = $1")
            .bind(DbUuid(upload.id))
            .bind(number)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CommitOutcome::Committed(Box::new(Version { number, ..version.clone() })))
    }

    async fn record_image_version(&self, version: &Version) -> Result<Version, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        // The asset's row (or the database) is held, so recorders of one image serialize and the second finds the
        // first's version.
        let locked: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version_count FROM assets WHERE id = $1{FOR_UPDATE}"
        )))
        .bind(DbUuid(version.asset_id))
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Err(StoreError::Corrupt { id: version.asset_id.to_string(), reason: "asset gone".into() });
        }
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT number FROM versions WHERE asset_id = $1 AND manifest_digest = $2 LIMIT 1")
                .bind(DbUuid(version.asset_id))
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
        let number = next_version_number(&mut tx, version).await?;
        insert_version(&mut tx, version, number).await?;
        tx.commit().await?;
        Ok(Version { number, ..version.clone() })
    }

    async fn expire_uploads(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<DbUuid> = sqlx::query_scalar(
            "UPDATE uploads SET state = 'EXPIRED' WHERE state = 'OPEN' AND expire_time < $1 RETURNING id",
        )
        .bind(DbTime(now))
        .fetch_all(&self.0)
        .await?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    async fn record_blob(&self, sha256: &str, bytes: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (sha256, size, create_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(sha256)
            .bind(size(bytes))
            .bind(DbTime(now))
            .execute(&self.0)
            .await?;
        Ok(())
    }

    async fn missing_blobs(&self, digests: &[String]) -> Result<Vec<String>, StoreError> {
        let held = held_blobs(&mut *self.0.acquire().await?, digests).await?;
        Ok(digests.iter().filter(|d| !held.contains(*d)).cloned().collect())
    }

    async fn get_version(&self, asset_id: Uuid, number: i64) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(DbUuid(asset_id)).push(" AND number = ").push_bind(number);
        self.version_where(&mut sql).await
    }

    async fn latest_version(&self, asset_id: Uuid) -> Result<Option<Version>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ")
            .push_bind(DbUuid(asset_id))
            .push(" AND state = 'READY' AND archive_time IS NULL ORDER BY number DESC LIMIT 1");
        self.version_where(&mut sql).await
    }

    async fn list_versions(&self, query: &VersionQuery) -> Result<Vec<Version>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new(VERSION_COLUMNS);
        sql.push(" WHERE asset_id = ").push_bind(DbUuid(query.asset_id));
        if let Some(state) = query.state {
            sql.push(" AND state = ").push_bind(state.as_str());
        }
        if !query.include_archived {
            sql.push(" AND archive_time IS NULL");
        }
        for (key, value) in &query.labels {
            push_label_equals(&mut sql, "labels", None, key, value);
        }
        if let Some(alias) = &query.alias {
            sql.push(" AND number IN (SELECT version_number FROM aliases WHERE asset_id = ")
                .push_bind(DbUuid(query.asset_id));
            sql.push(" AND alias = ").push_bind(alias.clone()).push(")");
        }
        if let Some(after) = query.after {
            sql.push(if query.descending { " AND number < " } else { " AND number > " }).push_bind(after);
        }
        sql.push(if query.descending { " ORDER BY number DESC" } else { " ORDER BY number ASC" });
        sql.push(" LIMIT ").push_bind(i64::try_from(query.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<VersionRow> = sql.build_query_as().fetch_all(&self.0).await?;
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
        .bind(version.archive_time.map(DbTime))
        .bind(version.revision)
        .bind(DbUuid(version.id))
        .bind(expected_revision)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_alias(&self, asset_id: Uuid, alias: &Alias, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO aliases (asset_id, alias, version_number, protected, update_time) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (asset_id, alias) DO UPDATE SET version_number = excluded.version_number, \
             protected = excluded.protected, update_time = excluded.update_time",
        )
        .bind(DbUuid(asset_id))
        .bind(&alias.name)
        .bind(alias.version_number)
        .bind(alias.protected)
        .bind(DbTime(now))
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn delete_alias(&self, asset_id: Uuid, alias: &str) -> Result<Option<Alias>, StoreError> {
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "DELETE FROM aliases WHERE asset_id = $1 AND alias = $2 RETURNING alias, version_number, protected",
        )
        .bind(DbUuid(asset_id))
        .bind(alias)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(|(name, version_number, protected)| Alias { name, version_number, protected }))
    }

    async fn aliases(&self, asset_id: Uuid) -> Result<Vec<Alias>, StoreError> {
        let rows: Vec<(String, i64, bool)> =
            sqlx::query_as("SELECT alias, version_number, protected FROM aliases WHERE asset_id = $1 ORDER BY alias")
                .bind(DbUuid(asset_id))
                .fetch_all(&self.0)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, version_number, protected)| Alias { name, version_number, protected })
            .collect())
    }

    async fn purge_asset(&self, asset_id: Uuid) -> Result<(u64, Vec<Uuid>), StoreError> {
        let id = DbUuid(asset_id);
        let mut tx = begin_write(&self.0).await?;
        sqlx::query("DELETE FROM aliases WHERE asset_id = $1").bind(id).execute(&mut *tx).await?;
        let versions =
            sqlx::query("DELETE FROM versions WHERE asset_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        let uploads: Vec<DbUuid> = sqlx::query_scalar("DELETE FROM uploads WHERE asset_id = $1 RETURNING id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM assets WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((versions, uploads.into_iter().map(|u| u.0).collect()))
    }

    async fn unreferenced_blobs(&self, cutoff: DateTime<Utc>) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        let old: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT sha256, size FROM blobs WHERE create_time < $1 AND NOT ",
            blob_referenced!(),
            " ORDER BY sha256"
        ))
        .bind(DbTime(cutoff))
        .fetch_all(&self.0)
        .await?;
        let young: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM blobs WHERE create_time >= $1 AND NOT ",
            blob_referenced!()
        ))
        .bind(DbTime(cutoff))
        .fetch_one(&self.0)
        .await?;
        Ok((old.into_iter().map(|(sha, size)| (sha, unsigned(size))).collect(), unsigned(young)))
    }

    async fn drop_blob_if_unreferenced(&self, sha256: &str) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        lock_blob_collection(&mut tx).await?;
        let dropped = sqlx::query(concat!("DELETE FROM blobs WHERE sha256 = $1 AND NOT ", blob_referenced!()))
            .bind(sha256)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(dropped == 1)
    }
}

/// Gives `version` its asset's next number and adds its size to what the asset stores. The update holds the
/// asset's row (or the database) until the transaction ends, so concurrent commits never share a number.
async fn next_version_number(tx: &mut Transaction<'static, Db>, version: &Version) -> Result<i64, StoreError> {
    let number = sqlx::query_scalar(
        "UPDATE assets SET version_count = version_count + 1, stored_bytes = stored_bytes + $2 WHERE id = $1 \
         RETURNING version_count",
    )
    .bind(DbUuid(version.asset_id))
    .bind(size(version.total_size))
    .fetch_one(&mut **tx)
    .await?;
    Ok(number)
}

/// Inserts the row of `version` under `number` (its files are the caller's).
async fn insert_version(tx: &mut Transaction<'static, Db>, version: &Version, number: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO versions (id, asset_id, number, state, manifest_digest, total_size, description, labels, \
         lineage, creator, create_time, metrics, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(DbUuid(version.id))
    .bind(DbUuid(version.asset_id))
    .bind(number)
    .bind(version.state.as_str())
    .bind(&version.manifest_digest)
    .bind(size(version.total_size))
    .bind(&version.description)
    .bind(Json(&version.labels))
    .bind(Json(&version.lineage))
    .bind(&version.creator)
    .bind(DbTime(version.create_time))
    .bind(Json(&version.metrics))
    .bind(version.revision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
