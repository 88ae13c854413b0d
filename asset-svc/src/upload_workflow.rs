//! The upload workflow: declare files, stream them to staging while hashing, verify each as it completes and
//! move it into the blob store, then commit the version in one transaction.
//!
//! A file is verified the moment its last byte arrives; a mismatch resets it to offset 0. A commit only
//! checks that every file is stored, so nothing half-written can become a version.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex as AsyncMutex;
use uuid::Uuid;

use crate::{
    blobs::{BlobStore, StagedFile, staged_len},
    domain::{
        names,
        upload::{self, Upload, UploadFile, UploadHead, UploadLimits, UploadQuota, UploadState, WriteRefusal},
        version::{FileEntry, Lineage, Version, VersionState, manifest_digest},
    },
    error::Error,
    store::{CommitOutcome, ContentRepository, Opened},
};

/// One staging file's writer, created on first write and dropped once the file is verified.
type Slot = Arc<AsyncMutex<Option<StagedFile>>>;

/// Each open upload's slots by path: a write finds its own without looking at other uploads or files.
type Slots = HashMap<Uuid, HashMap<String, Slot>>;

/// What a new upload declares.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The asset the version will belong to.
    pub asset_id: Uuid,
    /// Who uploads.
    pub creator: String,
    /// Every file of the version.
    pub files: Vec<FileEntry>,
    /// Description of the version.
    pub description: String,
    /// Labels of the version.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Idempotency key.
    pub request_id: Option<String>,
}

/// Uploads over a content repository and a blob store.
#[derive(Debug, Clone)]
pub struct Uploads {
    repo: Arc<dyn ContentRepository>,
    blobs: BlobStore,
    limits: UploadLimits,
    quota: UploadQuota,
    ttl: Duration,
    slots: Arc<Mutex<Slots>>,
}

impl Uploads {
    /// Uploads with the given limits, each user held to `quota`; idle uploads expire after `ttl`.
    pub fn new(
        repo: Arc<dyn ContentRepository>,
        blobs: BlobStore,
        limits: UploadLimits,
        quota: UploadQuota,
        ttl: Duration,
    ) -> Self {
        Self { repo, blobs, limits, quota, ttl, slots: Arc::default() }
    }

    /// The blob store, for reads.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The content repository, for reads.
    pub fn repo(&self) -> &Arc<dyn ContentRepository> {
        &self.repo
    }

    fn expiry(&self) -> chrono::DateTime<Utc> {
        Utc::now().trunc_subsecs(6) + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(1))
    }

    /// Opens an upload. Files the store already holds, and empty files, are complete from the start.
    pub async fn create(&self, new: NewUpload) -> Result<Upload, Error> {
        let mut violations = highwind_common::validation::Violations::new();
        upload::validate_metadata(&new.description, &new.labels, &mut violations);
        let declared = match upload::declare(new.files, self.limits) {
            Ok(declared) if violations.is_empty() => declared,
            Ok(_) => return Err(Error::Invalid(violations)),
            Err(more) => {
                violations.merge(more);
                return Err(Error::Invalid(violations));
            }
        };
        let digests: Vec<String> = declared.iter().map(|f| f.sha256.clone()).collect();
        let missing: std::collections::HashSet<String> = self.repo.missing_blobs(&digests).await?.into_iter().collect();
        let mut files = Vec::with_capacity(declared.len());
        for entry in declared {
            let present = !missing.contains(&entry.sha256);
            if !present && entry.size == 0 {
                self.store_empty(&entry).await?;
            }
            let complete = present || entry.size == 0;
            files.push(UploadFile { entry, complete });
        }
        let now = Utc::now().trunc_subsecs(6);
        let upload = Upload {
            id: Uuid::now_v7(),
            asset_id: new.asset_id,
            creator: new.creator,
            state: UploadState::Open,
            files,
            description: new.description,
            labels: new.labels,
            create_time: now,
            expire_time: self.expiry(),
            version_number: None,
        };
        match self.repo.create_upload(&upload, new.request_id.as_deref(), &self.quota).await? {
            Opened::Upload(upload) => Ok(*upload),
            Opened::OverQuota(why) => Err(Error::QuotaExceeded { subject: upload.creator, why }),
        }
    }

    async fn store_empty(&self, entry: &FileEntry) -> Result<(), Error> {
        let digest = hex::encode(Sha256::digest(b""));
        if entry.sha256 != digest {
            return Err(Error::DigestMismatch {
                path: entry.path.clone(),
                declared: entry.sha256.clone(),
                actual: digest,
            });
        }
        self.blobs.put(&digest, bytes::Bytes::new()).await?;
        self.repo.record_blob(&digest, 0, Utc::now()).await?;
        Ok(())
    }

    /// Each declared file with the number of its bytes stored so far.
    pub async fn progress(&self, upload: &Upload) -> Result<Vec<(UploadFile, u64)>, Error> {
        self.progress_of(upload.id, upload.files.clone()).await
    }

    /// `files` of upload `id` with the number of their bytes stored so far (the staging files looked at on a
    /// blocking thread: an upload declares up to 10,000).
    pub async fn progress_of(&self, id: Uuid, files: Vec<UploadFile>) -> Result<Vec<(UploadFile, u64)>, Error> {
        let staged: Vec<Option<PathBuf>> =
            files.iter().map(|file| (!file.complete).then(|| self.blobs.staging_file(id, &file.entry.path))).collect();
        let lengths = blocking(move || Ok(staged.iter().map(|p| p.as_deref().map(staged_len)).collect::<Vec<_>>()));
        let lengths = lengths.await?;
        Ok(files
            .into_iter()
            .zip(lengths)
            .map(|(file, staged)| {
                let size = file.entry.size;
                (file, staged.unwrap_or(size))
            })
            .collect())
    }

    /// Appends `data` at `offset` to `file` of `upload`; true when this write completed it. When the file is
    /// complete its digest is checked and it moves into the blob store; on a mismatch it is reset to offset 0.
    /// Costs the same however many files the upload declares.
    pub async fn write(
        &self,
        upload: &UploadHead,
        file: &UploadFile,
        offset: u64,
        data: bytes::Bytes,
    ) -> Result<bool, Error> {
        let name = names::upload_name(upload.asset_id, upload.id);
        if upload.state != UploadState::Open {
            return Err(Error::UploadClosed { name, state: upload.state });
        }
        let path = file.entry.path.as_str();
        let slot = self.slot(upload.id, path);
        let mut guard = slot.lock().await;
        let mut staged = match guard.take() {
            Some(staged) => staged,
            None => {
                // First write since start-up, or the file was completed while this call waited for the lock.
                let fresh = self.repo.get_upload_file(upload.id, path).await?;
                if file.complete || fresh.is_some_and(|f| f.complete) {
                    return Err(Error::AlreadyComplete(path.to_owned()));
                }
                let staged_path = self.blobs.staging_file(upload.id, path);
                blocking(move || StagedFile::open(&staged_path)).await?
            }
        };
        if let Err(refusal) = upload::check_write(file, staged.written(), offset, data.len()) {
            *guard = Some(staged);
            return Err(refusal_error(path, refusal));
        }
        staged = blocking(move || {
            let mut staged = staged;
            staged.append(&data).map(|()| staged)
        })
        .await?;
        if staged.written() < file.entry.size {
            *guard = Some(staged);
            return Ok(false);
        }
        let actual = staged.digest();
        if actual != file.entry.sha256 {
            let staged = blocking(move || {
                let mut staged = staged;
                staged.reset().map(|()| staged)
            })
            .await?;
            *guard = Some(staged);
            return Err(Error::DigestMismatch { path: path.to_owned(), declared: file.entry.sha256.clone(), actual });
        }
        blocking(move || staged.sync()).await?;
        self.blobs.promote(&self.blobs.staging_file(upload.id, path), &actual).await?;
        self.repo.record_blob(&actual, file.entry.size, Utc::now()).await?;
        self.repo.complete_file(upload.id, path, self.expiry()).await?;
        drop(guard);
        self.forget_slot(upload.id, path);
        Ok(true)
    }

    /// Makes every byte written to `upload` so far durable (before a write is acknowledged).
    pub async fn sync(&self, upload: Uuid) -> Result<(), Error> {
        let slots: Vec<Slot> = {
            let map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(&upload).map(|files| files.values().cloned().collect()).unwrap_or_default()
        };
        for slot in slots {
            let guard = slot.lock().await;
            if let Some(staged) = guard.as_ref() {
                staged.sync().map_err(crate::blobs::BlobError::from)?;
            }
        }
        Ok(())
    }

    /// Commits `upload` into the asset's next version. Idempotent: committing again returns the same version.
    /// `upload` with every file verified, or which files are still missing. Committing does this itself; a
    /// caller that must look at the content first (a pipeline's IR) calls it before.
    pub async fn complete(&self, upload: &Upload) -> Result<Upload, Error> {
        let name = names::upload_name(upload.asset_id, upload.id);
        let mut upload = upload.clone();
        if upload.state == UploadState::Open {
            // Files whose last byte was staged but not yet verified (the server stopped in between) are
            // verified now.
            let mut finished_any = false;
            let head = upload.head();
            for file in upload.files.iter().filter(|f| !f.complete) {
                let staged = self.blobs.staging_file(upload.id, &file.entry.path);
                if file.entry.size > 0 && blocking(move || Ok(staged_len(&staged))).await? == file.entry.size {
                    self.write(&head, file, file.entry.size, bytes::Bytes::new()).await?;
                    finished_any = true;
                }
            }
            if finished_any {
                upload = self.repo.get_upload(upload.id).await?.ok_or_else(|| Error::NotFound(name.clone()))?;
            }
            let missing: Vec<String> = upload.missing().into_iter().map(str::to_owned).collect();
            if !missing.is_empty() {
                return Err(Error::FilesMissing(missing));
            }
        }
        Ok(upload)
    }

    /// The whole content of a stored file, at most `max` bytes.
    pub async fn read_whole(&self, sha256: &str, size: u64, max: u64) -> Result<bytes::Bytes, Error> {
        if size > max {
            return Err(Error::Invalid(highwind_common::validation::Violations::one(
                "files",
                format!("the file is {size} bytes; at most {max}"),
            )));
        }
        if size == 0 {
            return Ok(bytes::Bytes::new());
        }
        Ok(self.blobs.read(sha256, 0, size).await?)
    }

    /// Commits `upload` into a new version with `metrics` once every file is verified; its lineage is `source`,
    /// or the upload itself when `None`.
    pub async fn commit(
        &self,
        upload: &Upload,
        source: Option<Lineage>,
        metrics: std::collections::BTreeMap<String, f64>,
    ) -> Result<Version, Error> {
        let name = names::upload_name(upload.asset_id, upload.id);
        let upload = self.complete(upload).await?;
        let files = upload.manifest();
        let version = Version {
            id: Uuid::now_v7(),
            asset_id: upload.asset_id,
            number: 0,
            state: VersionState::Ready,
            manifest_digest: manifest_digest(&files),
            total_size: files.iter().map(|f| f.size).sum(),
            files,
            description: upload.description.clone(),
            labels: upload.labels.clone(),
            lineage: source.unwrap_or(Lineage::Upload { upload: upload.id }),
            creator: upload.creator.clone(),
            create_time: Utc::now().trunc_subsecs(6),
            metrics,
            archive_time: None,
            revision: 1,
        };
        match self.repo.commit_upload(&upload, &version).await? {
            CommitOutcome::Committed(version) => {
                self.discard(upload.id).await;
                Ok(*version)
            }
            CommitOutcome::NotOpen(state) => Err(Error::UploadClosed { name, state }),
        }
    }

    /// Cancels an open upload and removes its staged data.
    pub async fn cancel(&self, upload: &UploadHead) -> Result<(), Error> {
        if !self.repo.close_upload(upload.id, UploadState::Cancelled).await? {
            let name = names::upload_name(upload.asset_id, upload.id);
            return Err(Error::UploadClosed { name, state: upload.state });
        }
        self.discard(upload.id).await;
        Ok(())
    }

    /// Expires idle uploads and collects their staged data.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let expired = self.repo.expire_uploads(Utc::now()).await?;
        for id in &expired {
            self.discard(*id).await;
        }
        Ok(expired.len())
    }

    async fn discard(&self, upload: Uuid) {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&upload);
        if let Err(error) = self.blobs.discard_staging(upload).await {
            tracing::warn!(upload = %upload, error = %error, "staged data not removed");
        }
    }

    fn slot(&self, upload: Uuid, path: &str) -> Slot {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(upload).or_default().entry(path.to_owned()).or_default().clone()
    }

    fn forget_slot(&self, upload: Uuid, path: &str) {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(files) = map.get_mut(&upload) {
            files.remove(path);
            if files.is_empty() {
                map.remove(&upload);
            }
        }
    }
}

fn refusal_error(path: &str, refusal: WriteRefusal) -> Error {
    match refusal {
        WriteRefusal::WrongOffset { expected } => Error::WrongOffset { path: path.to_owned(), expected },
        WriteRefusal::PastEnd { size } => Error::PastEnd { path: path.to_owned(), size },
        WriteRefusal::AlreadyComplete => Error::AlreadyComplete(path.to_owned()),
        WriteRefusal::TooLarge => Error::Invalid(highwind_common::validation::Violations::one(
            "data",
            format!("at most {} bytes per write", upload::MAX_CHUNK_BYTES),
        )),
    }
}

/// Runs file I/O on the blocking pool: under CPU contention a dedicated thread writes faster than `tokio::fs`.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(|e| Error::Blob(e.into()))
}
