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
    /// An output artifact of a pipeline run.
    PipelineRun {
        /// `runs/{run}`.
        run: String,
        /// The pipeline version the run executed.
        pipeline_version: String,
        /// Every asset version the run read.
        input_versions: Vec<String>,
        /// The producing task's path.
        task: String,
        /// The task's output key.
        output_key: String,
        /// The metadata the task set on the artifact.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        artifact_metadata: serde_json::Map<String, serde_json::Value>,
    },
    /// An image pushed to the asset's registry repository (the version's manifest digest is the image's).
    RegistryPush {
        /// The tag it was found under.
        tag: String,
        /// Who pushed, as the registry's event named them; empty when found by reconciliation.
        pusher: String,
        /// What the image is.
        image: ImageRecord,
    },
}

/// What a pushed image is, as recorded when its version was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ImageRecord {
    /// Manifest or index media type.
    pub media_type: String,
    /// `os/architecture[/variant]`.
    pub platforms: Vec<String>,
    /// The linux/amd64 manifest that gets deployed; empty when there is none.
    pub deployable_digest: String,
    /// Why it cannot be deployed; empty when it can.
    pub not_deployable_reason: String,
    /// Config and layers, compressed.
    pub compressed_size: u64,
    /// The image config's `created`.
    pub created: Option<DateTime<Utc>>,
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
    /// Evaluation metrics (models), e.g. `rmse`.
    pub metrics: BTreeMap<String, f64>,
    /// Set while archived.
    pub archive_time: Option<DateTime<Utc>>,
    /// Incremented on every metadata change; the etag is derived from it.
    pub revision: i64,
}

/// Most metrics one version may carry.
pub const MAX_METRICS: usize = 256;

/// The metadata fields of a version an update may change; its content never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionField {
    /// Free text.
    Description,
    /// Labels.
    Labels,
    /// Metrics.
    Metrics,
}

impl VersionField {
    /// The field a mask path names.
    pub fn parse(path: &str) -> Option<Self> {
        match path {
            "description" => Some(Self::Description),
            "labels" => Some(Self::Labels),
            "metrics" => Some(Self::Metrics),
            _ => None,
        }
    }
}

/// The client-supplied metadata of a version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionDraft {
    /// See [`Version::description`].
    pub description: String,
    /// See [`Version::labels`].
    pub labels: BTreeMap<String, String>,
    /// See [`Version::metrics`].
    pub metrics: BTreeMap<String, f64>,
}

impl Version {
    /// Opaque concurrency token of the version's metadata.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }

    /// This version with `fields` taken from `draft`, or why that would be invalid.
    pub fn updated(
        &self,
        draft: &VersionDraft,
        fields: &[VersionField],
    ) -> Result<Self, highwind_common::validation::Violations> {
        let mut next = self.clone();
        for field in fields {
            match field {
                VersionField::Description => next.description.clone_from(&draft.description),
                VersionField::Labels => next.labels.clone_from(&draft.labels),
                VersionField::Metrics => next.metrics.clone_from(&draft.metrics),
            }
        }
        let mut violations = highwind_common::validation::Violations::new();
        validate_metadata(&next.description, &next.labels, &next.metrics, "asset_version", &mut violations);
        next.revision = self.revision + 1;
        violations.into_result(next)
    }

    /// This version archived at `now` (or unarchived with `None`).
    pub fn with_archive_time(&self, archive_time: Option<DateTime<Utc>>) -> Self {
        Self { archive_time, revision: self.revision + 1, ..self.clone() }
    }
}

/// Checks a version's description, labels and metrics, recording problems under `prefix`.
pub fn validate_metadata(
    description: &str,
    labels: &BTreeMap<String, String>,
    metrics: &BTreeMap<String, f64>,
    prefix: &str,
    violations: &mut highwind_common::validation::Violations,
) {
    let field = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
    if description.chars().count() > super::asset::MAX_DESCRIPTION {
        violations.add(field("description"), format!("at most {} characters", super::asset::MAX_DESCRIPTION));
    }
    highwind_common::labels::validate(labels, &field("labels"), violations);
    if metrics.len() > MAX_METRICS {
        violations.add(field("metrics"), format!("at most {MAX_METRICS} metrics"));
    }
    for (name, value) in metrics {
        if !highwind_common::labels::valid_key(name) {
            violations.add(format!("{}[{name:?}]", field("metrics")), "names follow the label key rules");
        }
        if !value.is_finite() {
            violations.add(format!("{}[{name:?}]", field("metrics")), "must be a finite number");
        }
    }
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
