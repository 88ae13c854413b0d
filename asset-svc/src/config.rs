//! Configuration of the asset service: `[server]`, `[blobs]` and `[uploads]`, each overridable by
//! `HIGHWIND__ASSET__<SECTION>__<KEY>`.

use std::path::PathBuf;

use highwind_common::config::{ServerConfig, Settings};
use serde::{Deserialize, Serialize};

/// Default port of a stand-alone asset service.
pub const DEFAULT_PORT: u16 = highwind_proto::ASSET_SERVICE.default_port;

/// The asset service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// Listener, database and shared secret.
    pub server: ServerConfig,
    /// Where file content lives.
    pub blobs: BlobsConfig,
    /// Limits and lifetimes of uploads.
    pub uploads: UploadsConfig,
    /// Garbage collection of blobs.
    pub gc: GcConfig,
    /// Principals allowed to run platform-wide operations (garbage collection), e.g. `users/admin`.
    pub admins: Vec<String>,
    /// Where pipeline-svc validates the IR of pipeline versions before they are committed.
    #[serde(default)]
    pub pipelines: PipelinesConfig,
    /// The OCI registry of Docker Repo assets; off while its `url` is empty.
    #[serde(default)]
    pub registry: crate::registry_client::RegistryConfig,
}

/// Where pipeline-svc is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// `http://host:port`.
    pub url: String,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:50063".into() }
    }
}

/// Garbage collection of blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// Unreferenced blobs younger than this many seconds are kept, so content a client is about to reference
    /// (it just asked FindMissingBlobs) is not collected under it.
    pub grace_seconds: u64,
}

/// Where file content lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsConfig {
    /// A local directory (a path or `file:///…`) holding content-addressed blobs.
    pub url: String,
    /// Local directory where uploads are staged until each file verifies.
    pub staging_dir: PathBuf,
    /// Settings for an `s3://` URL.
    #[serde(default)]
    pub s3: crate::blobs::S3Options,
}

/// Limits and lifetimes of uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsConfig {
    /// Most files one version may hold.
    pub max_files: usize,
    /// Largest total size of one version, in bytes.
    pub max_version_bytes: u64,
    /// Seconds an upload may sit idle before it expires and its staged data is collected.
    pub ttl_seconds: u64,
    /// Most uploads one user may have open at once.
    #[serde(default = "default_open_uploads_per_user")]
    pub max_open_per_user: u64,
    /// Most bytes one user's open uploads may declare together.
    #[serde(default = "default_open_bytes_per_user")]
    pub max_open_bytes_per_user: u64,
    /// Most bytes one user's assets may hold in versions, counting what their open uploads declare.
    #[serde(default = "default_stored_bytes_per_user")]
    pub max_stored_bytes_per_user: u64,
}

fn default_open_uploads_per_user() -> u64 {
    100
}

fn default_open_bytes_per_user() -> u64 {
    2 << 40
}

fn default_stored_bytes_per_user() -> u64 {
    10 << 40
}

impl Default for AssetConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::defaults(DEFAULT_PORT, "asset.db"),
            blobs: BlobsConfig {
                url: "./highwind-data/blobs".into(),
                staging_dir: PathBuf::from("./highwind-data/staging"),
                s3: crate::blobs::S3Options::default(),
            },
            uploads: UploadsConfig {
                max_files: 10_000,
                max_version_bytes: 1 << 40,
                ttl_seconds: 24 * 60 * 60,
                max_open_per_user: default_open_uploads_per_user(),
                max_open_bytes_per_user: default_open_bytes_per_user(),
                max_stored_bytes_per_user: default_stored_bytes_per_user(),
            },
            gc: GcConfig { grace_seconds: 60 * 60 },
            admins: Vec::new(),
            pipelines: PipelinesConfig::default(),
            registry: crate::registry_client::RegistryConfig::default(),
        }
    }
}

impl Settings for AssetConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }

    fn validate(&self) -> Result<(), String> {
        self.server.validate()?;
        if self.blobs.url.is_empty() {
            return Err("blobs.url must name a directory".into());
        }
        if self.uploads.max_files == 0 || self.uploads.max_version_bytes == 0 || self.uploads.ttl_seconds == 0 {
            return Err("uploads.max_files, uploads.max_version_bytes and uploads.ttl_seconds must be positive".into());
        }
        let quotas = [
            self.uploads.max_open_per_user,
            self.uploads.max_open_bytes_per_user,
            self.uploads.max_stored_bytes_per_user,
        ];
        if quotas.contains(&0) {
            return Err("uploads.max_open_per_user, uploads.max_open_bytes_per_user and \
                        uploads.max_stored_bytes_per_user must be positive"
                .into());
        }
        Ok(())
    }
}
