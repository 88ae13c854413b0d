//! Docker Repo images: what each tag of an asset's repository holds, and every pushed digest as an asset version
//! (source: registry push). Reconciling reads the truth from the registry, so running it again — from ListImages,
//! the registry's notification webhook or the periodic sweep — records nothing twice and trusts no event's word.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use highwind_common::registry::scope::is_valid_tag;
use uuid::Uuid;

use crate::{
    domain::{
        asset::{Asset, AssetKind},
        version::{ImageRecord, Lineage, Version, VersionState},
    },
    registry_client::{
        client::{RegistryClient, RegistryError},
        inspect::inspect,
    },
    store::{AssetRepository, ContentRepository, StoreError, VersionQuery},
};

/// One tag as ListImages shows it.
#[derive(Debug, Clone)]
pub struct TaggedImage {
    /// The tag.
    pub tag: String,
    /// The version recording its digest.
    pub version: Version,
    /// What the image is.
    pub image: ImageRecord,
}

/// Why reconciling failed.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Images of Docker Repo assets.
#[derive(Debug, Clone)]
pub struct Images {
    client: RegistryClient,
    assets: Arc<dyn AssetRepository>,
    content: Arc<dyn ContentRepository>,
}

impl Images {
    /// Images read through `client`, versions kept in `content`.
    pub fn new(client: RegistryClient, assets: Arc<dyn AssetRepository>, content: Arc<dyn ContentRepository>) -> Self {
        Self { client, assets, content }
    }

    /// The registry client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The repository of `asset`.
    pub fn repository(&self, asset: &Asset) -> String {
        self.client.config().repository(&asset.owner, asset.id)
    }

    /// Every tag of `asset`'s repository with its version, recording a version for each digest not seen before
    /// (`pusher` names who pushed, when a registry event said so). Images without linux/amd64 are deleted
    /// instead when the registry is configured so.
    pub async fn reconcile(&self, asset: &Asset, pusher: &str) -> Result<Vec<TaggedImage>, ImagesError> {
        let repository = self.repository(asset);
        let mut tags = self.client.tags(&repository).await?;
        tags.retain(|t| is_valid_tag(t));
        tags.sort();
        let mut known: HashMap<String, Version> =
            self.versions(asset.id).await?.into_iter().map(|v| (v.manifest_digest.clone(), v)).collect();
        let mut images = Vec::new();
        for tag in tags {
            let manifest = match self.client.manifest(&repository, &tag).await {
                Ok(manifest) => manifest,
                // Deleted meanwhile.
                Err(RegistryError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let version = match known.get(&manifest.digest) {
                Some(version) => version.clone(),
                None => {
                    let info = match inspect(&self.client, &repository, &manifest.digest).await {
                        Ok(info) => info,
                        // What a pusher put there is unreadable (too large, broken references): that tag is
                        // left out, the others are still listed and recorded.
                        Err(e @ (RegistryError::Unusable(_) | RegistryError::NotFound(_))) => {
                            tracing::warn!(%repository, %tag, error = %e, "a pushed image cannot be read");
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if self.client.config().delete_non_amd64 && info.deployable_digest.is_empty() {
                        tracing::info!(%repository, %tag, digest = %info.digest, "deleted a push without linux/amd64");
                        self.client.delete_manifest(&repository, &info.digest).await?;
                        continue;
                    }
                    let image = ImageRecord {
                        media_type: info.media_type,
                        platforms: info.platforms,
                        deployable_digest: info.deployable_digest,
                        not_deployable_reason: info.not_deployable_reason,
                        compressed_size: info.compressed_size,
                        created: info.created,
                    };
                    let version = self
                        .content
                        .record_image_version(&new_version(asset, &tag, pusher, info.digest, image))
                        .await?;
                    known.insert(version.manifest_digest.clone(), version.clone());
                    version
                }
            };
            if let Lineage::RegistryPush { image, .. } = &version.lineage {
                images.push(TaggedImage { tag, image: image.clone(), version });
            }
        }
        Ok(images)
    }

    async fn versions(&self, asset_id: Uuid) -> Result<Vec<Version>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let query = VersionQuery {
                asset_id,
                state: None,
                descending: false,
                alias: None,
                labels: Vec::new(),
                include_archived: true,
                after,
                limit: 1_000,
            };
            let mut page = self.content.list_versions(&query).await?;
            let more = page.len() > 1_000;
            page.truncate(1_000);
            after = page.last().map(|v| v.number);
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Reconciles every Docker Repo asset whose repository the registry holds.
    pub async fn sweep(&self) -> Result<usize, ImagesError> {
        let prefix = format!("{}/", self.client.config().repository_prefix);
        let mut swept = 0;
        for repository in self.client.catalog().await? {
            let Some(asset_id) =
                repository.strip_prefix(&prefix).and_then(|rest| rest.rsplit_once('/')).map(|(_, id)| id)
            else {
                continue;
            };
            let Ok(asset_id) = Uuid::parse_str(asset_id) else { continue };
            let Some(asset) = self.assets.get(asset_id).await? else { continue };
            if asset.kind != AssetKind::DockerRepo || self.repository(&asset) != repository {
                continue;
            }
            // One repository that cannot be read must not keep the others from being reconciled.
            match self.reconcile(&asset, "").await {
                Ok(_) => swept += 1,
                Err(e) => tracing::warn!(%repository, error = %e, "cannot reconcile a repository"),
            }
        }
        Ok(swept)
    }
}

fn new_version(asset: &Asset, tag: &str, pusher: &str, digest: String, image: ImageRecord) -> Version {
    let now = now();
    Version {
        id: Uuid::now_v7(),
        asset_id: asset.id,
        number: 0,
        state: VersionState::Ready,
        files: Vec::new(),
        manifest_digest: digest,
        total_size: image.compressed_size,
        description: String::new(),
        labels: Default::default(),
        lineage: Lineage::RegistryPush { tag: tag.to_owned(), pusher: pusher.to_owned(), image },
        creator: if pusher.is_empty() { asset.owner.clone() } else { pusher.to_owned() },
        create_time: now,
        metrics: Default::default(),
        archive_time: None,
        revision: 1,
    }
}

fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Sweeps every `every`, logging what failed.
pub async fn sweep_forever(images: Images, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match images.sweep().await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "registry reconciliation failed"),
        }
    }
}
