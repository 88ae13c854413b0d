//! Versions: immutable manifests of files, identified by a digest of their canonical form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path (see `paths::validate`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
}

/// Lifecycle of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Being produced.
    Pending,
    /// Committed and immutable.
    Ready,
    /// Could not be completed.
    Failed,
}

impl VersionState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Ready => "READY",
            Self::Failed => "FAILED",
        }
    }

    /// Parses [`Self::as_str`]'s spelling (also with the `VERSION_STATE_` prefix).
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("VERSION_STATE_").unwrap_or(s) {
            "PENDING" => Some(Self::Pending),
            "READY" => Some(Self::Ready),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Lineage {
    /// Committed from an upload session.
    Upload {
        /// The upload's id.
        upload: Uuid,
    },
}

/// A stored version.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// UUIDv7.
    pub id: Uuid,
    /// The asset it belongs to.
    pub asset_id: Uuid,
    /// 1, 2, 3… per asset.
    pub number: i64,
    /// Lifecycle.
    pub state: VersionState,
    /// Sorted by path.
    pub files: Vec<FileEntry>,
    /// `sha256:` + hex digest of the canonical manifest.
    pub manifest_digest: String,
    /// Sum of file sizes.
    pub total_size: u64,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Origin.
    pub lineage: Lineage,
    /// Who created it.
    pub creator: String,
    /// When it was committed.
    pub create_time: DateTime<Utc>,
}

/// True for 64 lowercase hex digits.
pub fn valid_sha256(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest of a manifest: SHA-256 over one line `<sha256> <size> <path>\n` per file, in path order (paths
/// hold no control characters, so the form is unambiguous). Equal content gives an equal digest.
pub fn manifest_digest(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    for file in sorted {
        hasher.update(format!("{} {} {}\n", file.sha256, file.size, file.path).as_bytes());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry { path: path.into(), size: content.len() as u64, sha256: hex::encode(Sha256::digest(content)) }
    }

    #[test]
    fn digest_ignores_order_and_sees_every_change() {
        let a = [file("train.csv", b"1,2"), file("test.csv", b"3,4")];
        let b = [file("test.csv", b"3,4"), file("train.csv", b"1,2")];
        assert_eq!(manifest_digest(&a), manifest_digest(&b));
        assert!(manifest_digest(&a).starts_with("sha256:"));
        let renamed = [file("train2.csv", b"1,2"), file("test.csv", b"3,4")];
        let changed = [file("train.csv", b"1,3"), file("test.csv", b"3,4")];
        assert_ne!(manifest_digest(&a), manifest_digest(&renamed));
        assert_ne!(manifest_digest(&a), manifest_digest(&changed));
    }

    #[test]
    fn sha256_format() {
        assert!(valid_sha256(&"a".repeat(64)));
        assert!(!valid_sha256(&"A".repeat(64)));
        assert!(!valid_sha256(&"a".repeat(63)));
        assert!(!valid_sha256(&"g".repeat(64)));
    }
}
