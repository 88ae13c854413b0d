//! Purging archived assets and collecting blobs nothing references any more.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use crate::{blobs::BlobStore, error::Error, store::ContentRepository};

/// What a collection found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Blobs deleted (or, on a dry run, that would be).
    pub digests: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Unreferenced blobs kept because they are younger than the grace window.
    pub kept_in_grace: u64,
    /// The grace window's end.
    pub cutoff: DateTime<Utc>,
}

/// Deletes (or with `dry_run`, lists) every blob that no version and no open upload references and that was
/// indexed before the grace window. Each deletion re-checks references atomically, so a blob a version or an
/// upload claims meanwhile is kept.
pub async fn collect(
    repo: &dyn ContentRepository,
    blobs: &BlobStore,
    grace: Duration,
    dry_run: bool,
) -> Result<Collection, Error> {
    let cutoff = Utc::now().trunc_subsecs(6) - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::hours(1));
    let (candidates, kept_in_grace) = repo.unreferenced_blobs(cutoff).await?;
    let mut collection = Collection { digests: Vec::new(), bytes: 0, kept_in_grace, cutoff };
    for (sha256, size) in candidates {
        if !dry_run {
            if !repo.drop_blob_if_unreferenced(&sha256).await? {
                continue;
            }
            blobs.delete(&sha256).await?;
        }
        collection.bytes += size;
        collection.digests.push(sha256);
    }
    if !dry_run && !collection.digests.is_empty() {
        tracing::info!(blobs = collection.digests.len(), bytes = collection.bytes, "garbage collected");
    }
    Ok(collection)
}
