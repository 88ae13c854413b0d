//! Read-through caches in front of the repositories, for the hot read path (`GetAsset`, `GetAssetVersion`,
//! `ReadFile`).
//!
//! Writes through this process invalidate their entries at once; entries also expire after a short TTL, which
//! bounds how stale a read can be when several replicas share one database.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AssetRepository, CommitOutcome, ContentRepository, Opened, StoreError, VersionQuery};
use crate::domain::{
    aliases::Alias,
    asset::Asset,
    paging::AssetQuery,
    upload::{Upload, UploadFile, UploadHead, UploadQuota, UploadState},
    version::Version,
};

/// How long an entry may be served without asking the database.
pub const TTL: Duration = Duration::from_secs(2);
/// Entries per cache before it is emptied and refilled.
const CAPACITY: usize = 100_000;

/// A small TTL map. Expired entries are swept out at most once a TTL, on a write, so the map holds about what was
/// read in the last two TTLs rather than everything ever read.
#[derive(Debug)]
struct Ttl<K, V> {
    entries: RwLock<Entries<K, V>>,
}

#[derive(Debug)]
struct Entries<K, V> {
    map: HashMap<K, (Instant, V)>,
    swept: Instant,
}

impl<K: Eq + Hash + Clone, V: Clone> Ttl<K, V> {
    fn new() -> Self {
        Self { entries: RwLock::new(Entries { map: HashMap::new(), swept: Instant::now() }) }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.map.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.swept.elapsed() >= TTL {
            entries.map.retain(|_, (at, _)| at.elapsed() < TTL);
            entries.swept = Instant::now();
        }
        if entries.map.len() >= CAPACITY {
            entries.map.clear();
        }
        entries.map.insert(key, (Instant::now(), value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).map.len()
    }

    fn forget(&self, key: &K) {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner).map.remove(key);
    }

    fn forget_where(&self, keep: impl Fn(&K) -> bool) {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner).map.retain(|k, _| keep(k));
    }
}

/// Assets by id, cached.
#[derive(Debug)]
pub struct CachedAssets {
    inner: Arc<dyn AssetRepository>,
    by_id: Ttl<Uuid, Option<Asset>>,
}

impl CachedAssets {
    /// Caches reads of `inner`.
    pub fn new(inner: Arc<dyn AssetRepository>) -> Self {
        Self { inner, by_id: Ttl::new() }
    }
}

#[async_trait]
impl AssetRepository for CachedAssets {
    async fn create(&self, asset: &Asset, request_id: Option<&str>) -> Result<Asset, StoreError> {
        let stored = self.inner.create(asset, request_id).await?;
        self.by_id.forget(&stored.id);
        Ok(stored)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Asset>, StoreError> {
        if let Some(hit) = self.by_id.get(&id) {
            return Ok(hit);
        }
        let found = self.inner.get(id).await?;
        self.by_id.put(id, found.clone());
        Ok(found)
    }

    async fn list(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        self.inner.list(query).await
    }

    async fn update(&self, asset: &Asset, expected_revision: i64) -> Result<bool, StoreError> {
        let done = self.inner.update(asset, expected_revision).await;
        self.by_id.forget(&asset.id);
        done
    }
}

/// Versions and aliases, cached; uploads and blobs pass straight through.
#[derive(Debug)]
pub struct CachedContent {
    inner: Arc<dyn ContentRepository>,
    assets: Arc<CachedAssets>,
    versions: Ttl<(Uuid, i64), Option<Version>>,
    aliases: Ttl<Uuid, Vec<Alias>>,
}

impl CachedContent {
    /// Caches reads of `inner`; commits also drop the asset's entry in `assets` (its latest version moved).
    pub fn new(inner: Arc<dyn ContentRepository>, assets: Arc<CachedAssets>) -> Self {
        Self { inner, assets, versions: Ttl::new(), aliases: Ttl::new() }
    }
}

#[async_trait]
impl ContentRepository for CachedContent {
    async fn create_upload(
        &self,
        upload: &Upload,
        request_id: Option<&str>,
        quota: &UploadQuota,
    ) -> Result<Opened, StoreError> {
        self.inner.create_upload(upload, request_id, quota).await
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        self.inner.get_upload(id).await
    }

    async fn get_upload_head(&self, id: Uuid) -> Result<Option<UploadHead>, StoreError> {
        self.inner.get_upload_head(id).await
    }

    async fn get_upload_file(&self, id: Uuid, path: &str) -> Result<Option<UploadFile>, StoreError> {
        self.inner.get_upload_file(id, path).await
    }

    async fn complete_file(&self, id: Uuid, path: &str, expire_time: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.complete_file(id, path, expire_time).await
    }

    async fn close_upload(&self, id: Uuid, to: UploadState) -> Result<bool, StoreError> {
        self.inner.close_upload(id, to).await
    }

    async fn commit_upload(&self, upload: &Upload, version: &Version) -> Result<CommitOutcome, StoreError> {
        let outcome = self.inner.commit_upload(upload, version).await;
        self.versions.forget_where(|(asset, _)| *asset != upload.asset_id);
        self.assets.by_id.forget(&upload.asset_id);
        outcome
    }

    async fn record_image_version(&self, version: &Version) -> Result<Version, StoreError> {
        let recorded = self.inner.record_image_version(version).await;
        self.versions.forget_where(|(asset, _)| *asset != version.asset_id);
        self.assets.by_id.forget(&version.asset_id);
        recorded
    }

    async fn expire_uploads(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.inner.expire_uploads(now).await
    }

    async fn record_blob(&self, sha256: &str, size: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.record_blob(sha256, size, now).await
    }

    async fn missing_blobs(&self, digests: &[String]) -> Result<Vec<String>, StoreError> {
        self.inner.missing_blobs(digests).await
    }

    async fn get_version(&self, asset_id: Uuid, number: i64) -> Result<Option<Version>, StoreError> {
        let key = (asset_id, number);
        if let Some(hit) = self.versions.get(&key) {
            return Ok(hit);
        }
        let found = self.inner.get_version(asset_id, number).await?;
        self.versions.put(key, found.clone());
        Ok(found)
    }

    async fn latest_version(&self, asset_id: Uuid) -> Result<Option<Version>, StoreError> {
        self.inner.latest_version(asset_id).await
    }

    async fn list_versions(&self, query: &VersionQuery) -> Result<Vec<Version>, StoreError> {
        self.inner.list_versions(query).await
    }

    async fn update_version(&self, version: &Version, expected_revision: i64) -> Result<bool, StoreError> {
        let done = self.inner.update_version(version, expected_revision).await;
        self.versions.forget(&(version.asset_id, version.number));
        done
    }

    async fn set_alias(&self, asset_id: Uuid, alias: &Alias, now: DateTime<Utc>) -> Result<(), StoreError> {
        let done = self.inner.set_alias(asset_id, alias, now).await;
        self.aliases.forget(&asset_id);
        done
    }

    async fn delete_alias(&self, asset_id: Uuid, alias: &str) -> Result<Option<Alias>, StoreError> {
        let done = self.inner.delete_alias(asset_id, alias).await;
        self.aliases.forget(&asset_id);
        done
    }

    async fn aliases(&self, asset_id: Uuid) -> Result<Vec<Alias>, StoreError> {
        if let Some(hit) = self.aliases.get(&asset_id) {
            return Ok(hit);
        }
        let found = self.inner.aliases(asset_id).await?;
        self.aliases.put(asset_id, found.clone());
        Ok(found)
    }

    async fn purge_asset(&self, asset_id: Uuid) -> Result<(u64, Vec<Uuid>), StoreError> {
        let purged = self.inner.purge_asset(asset_id).await;
        self.versions.forget_where(|(asset, _)| *asset != asset_id);
        self.aliases.forget(&asset_id);
        self.assets.by_id.forget(&asset_id);
        purged
    }

    async fn unreferenced_blobs(&self, cutoff: DateTime<Utc>) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        self.inner.unreferenced_blobs(cutoff).await
    }

    async fn drop_blob_if_unreferenced(&self, sha256: &str) -> Result<bool, StoreError> {
        self.inner.drop_blob_if_unreferenced(sha256).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_leave_the_map_on_a_later_write() {
        let cache: Ttl<u32, Vec<u8>> = Ttl::new();
        for key in 0..1_000 {
            cache.put(key, vec![0; 64]);
        }
        assert_eq!(cache.len(), 1_000);
        assert_eq!(cache.get(&7), Some(vec![0; 64]));
        std::thread::sleep(TTL);
        assert_eq!(cache.get(&7), None, "expired");
        cache.put(5_000, vec![1]);
        assert_eq!(cache.len(), 1, "only the fresh entry is kept");
    }
}
