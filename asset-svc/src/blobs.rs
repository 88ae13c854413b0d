//! Content-addressed blobs in an `object_store` store, and the local staging area uploads are written to
//! until each file verifies.

use std::{
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem, path::Path as StorePath,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A blob-store or staging failure; logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The object store failed.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    /// The local file system failed.
    #[error("staging: {0}")]
    Io(#[from] std::io::Error),
    /// The configured URL names no supported store.
    #[error("unsupported blob store url {0:?}: use a directory path, file:///… or s3://bucket/prefix")]
    Unsupported(String),
}

/// Bytes per part when a staged file is copied into a remote store.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Where verified content lives (by SHA-256) and where uploads are staged.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Set for a local directory: promotion is then a rename instead of a copy.
    local: Option<Arc<LocalFileSystem>>,
    prefix: String,
    staging: PathBuf,
}

/// Connection settings of an S3-compatible store; empty fields fall back to the `AWS_*` environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint for S3-compatible servers (MinIO, …), e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: highwind_common::config::Secret,
    /// Allow plain-HTTP endpoints.
    pub allow_http: bool,
}

impl BlobStore {
    /// Opens the store at `url` — a directory path, `file:///…`, or `s3://bucket/prefix` — with staging in
    /// `staging_dir`. Local writes are fsynced, so a stored blob survives a crash; S3 acknowledges a write only
    /// once it is durable.
    pub fn open(url: &str, staging_dir: &Path, s3: &S3Options) -> Result<Self, BlobError> {
        std::fs::create_dir_all(staging_dir)?;
        let staging = staging_dir.canonicalize()?;
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (value, set) in [
                (&s3.endpoint, AmazonS3Builder::with_endpoint as fn(AmazonS3Builder, String) -> AmazonS3Builder),
                (&s3.region, AmazonS3Builder::with_region),
                (&s3.access_key_id, AmazonS3Builder::with_access_key_id),
            ] {
                if !value.is_empty() {
                    builder = set(builder, value.clone());
                }
            }
            if !s3.secret_access_key.is_empty() {
                builder = builder.with_secret_access_key(s3.secret_access_key.expose());
            }
            if s3.allow_http {
                builder = builder.with_allow_http(true);
            }
            let store = builder.build()?;
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(Self { store: Arc::new(store), local: None, prefix, staging });
        }
        let dir = match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None if !url.contains("://") => PathBuf::from(url),
            None => return Err(BlobError::Unsupported(url.to_owned())),
        };
        std::fs::create_dir_all(&dir)?;
        let local = Arc::new(LocalFileSystem::new_with_prefix(&dir)?.with_fsync(true));
        Ok(Self { store: local.clone(), local: Some(local), prefix: String::new(), staging })
    }

    fn location(&self, sha256: &str) -> StorePath {
        let key = format!("sha256/{}/{}", &sha256[..2], sha256);
        if self.prefix.is_empty() { StorePath::from(key) } else { StorePath::from(format!("{}/{key}", self.prefix)) }
    }

    /// The staging file of the declared file at `path` of an upload, named by the path's digest: found from the
    /// path alone, and never a client's text on the file system.
    pub fn staging_file(&self, upload: Uuid, path: &str) -> PathBuf {
        self.staging.join(upload.to_string()).join(hex::encode(Sha256::digest(path.as_bytes())))
    }

    /// Removes every staged file of an upload (up to its whole declared content), on a blocking thread.
    pub async fn discard_staging(&self, upload: Uuid) -> Result<(), BlobError> {
        let dir = self.staging.join(upload.to_string());
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Moves a verified staging file into the store under its digest. With the local store this is a rename
    /// followed by a directory fsync, so no byte is copied; a remote store gets a multipart upload.
    pub async fn promote(&self, staged: &Path, sha256: &str) -> Result<(), BlobError> {
        let Some(local) = &self.local else {
            return self.copy_to_remote(staged, sha256).await;
        };
        let target = local.path_to_filesystem(&self.location(sha256))?;
        let staged = staged.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let parent = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)?;
            if target.exists() {
                std::fs::remove_file(&staged)?;
                return Ok(());
            }
            std::fs::rename(&staged, &target)?;
            std::fs::File::open(parent)?.sync_all()
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(())
    }

    async fn copy_to_remote(&self, staged: &Path, sha256: &str) -> Result<(), BlobError> {
        let mut upload =
            WriteMultipart::new_with_chunk_size(self.store.put_multipart(&self.location(sha256)).await?, PART_BYTES);
        let mut file = tokio::fs::File::open(staged).await?;
        let mut buf = vec![0u8; PART_BYTES];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
            if n == 0 {
                break;
            }
            upload.wait_for_capacity(2).await?;
            upload.write(&buf[..n]);
        }
        upload.finish().await?;
        tokio::fs::remove_file(staged).await?;
        Ok(())
    }

    /// Stores `content` under its digest (for content that never went through staging, such as empty files).
    pub async fn put(&self, sha256: &str, content: Bytes) -> Result<(), BlobError> {
        self.store.put(&self.location(sha256), content.into()).await?;
        Ok(())
    }

    /// Deletes a blob; deleting one that is already gone is not an error.
    pub async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.location(sha256)).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `len` bytes of a blob starting at `offset`.
    pub async fn read(&self, sha256: &str, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        Ok(self.store.get_range(&self.location(sha256), offset..offset + len).await?)
    }
}

/// A staging file being written: its handle and the running hash of its bytes.
#[derive(Debug)]
pub struct StagedFile {
    file: std::fs::File,
    hasher: Sha256,
    written: u64,
}

impl StagedFile {
    /// Opens (or creates) the staging file at `path`; bytes already there are hashed again, so a write resumed
    /// after a restart continues the same digest.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).read(true).write(true).truncate(false).open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut written = 0u64;
        file.seek(SeekFrom::Start(0))?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        Ok(Self { file, hasher, written })
    }

    /// Bytes stored so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `data`.
    pub fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.written))?;
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Makes the written bytes durable.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The hex SHA-256 of everything written.
    pub fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Drops everything written, to start the file over.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }
}

/// Bytes already staged for a file, without opening it for writing.
pub fn staged_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
