//! `highwind.pipeline.v1.ImageCacheService`: the executor's image store. Anyone pulls what their own steps could
//! run in (resolved with their access); only administrators see or prune everyone's images.

use std::{sync::Arc, time::SystemTime};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::pipeline::v1::{self as pb, image_cache_service_server::ImageCacheService};
use highwind_runtime::store::StoredRoot;
use tonic::{Request, Response, Status};

use crate::{assets::AssetFiles, error::Error, executor::images::Images};

/// Longest reference accepted.
const MAX_REFERENCE: usize = 1_024;

/// Handlers of `ImageCacheService`.
#[derive(Debug, Clone)]
pub struct ImageCacheApi {
    images: Option<Arc<Images>>,
    assets: Arc<dyn AssetFiles>,
    admins: Arc<[String]>,
}

impl ImageCacheApi {
    /// Over the executor's store (`None`: steps run on the host), resolving images as callers through `assets`.
    pub fn new(images: Option<Arc<Images>>, assets: Arc<dyn AssetFiles>, admins: Vec<String>) -> Self {
        Self { images, assets, admins: admins.into() }
    }

    fn store(&self) -> Result<&Images, Error> {
        self.images.as_deref().ok_or(Error::NoImageStore("steps run on the host (executor.images.mode = host)"))
    }

    fn administrator(&self, principal: &Principal, what: &'static str) -> Result<&Images, Error> {
        if !self.admins.iter().any(|admin| admin == principal.as_str()) {
            return Err(Error::NotAdministrator(what));
        }
        self.store()
    }

    async fn pull(&self, principal: &Principal, reference: &str) -> Result<pb::PullImageResponse, Error> {
        if reference.is_empty() || reference.len() > MAX_REFERENCE {
            let why = format!("required, at most {MAX_REFERENCE} characters: registry/repository:tag or @sha256:…");
            return Err(Error::Invalid(Violations::one("reference", why)));
        }
        let images = self.store()?;
        let image = images.root_for(self.assets.as_ref(), principal, reference).await?;
        // Listed while the lease holds it, so it is there to be described.
        let cached = images.cached().await.map_err(Error::ImageStore)?;
        let found = cached.iter().find(|root| root.source == image.source && root.manifest == image.lease.root.digest);
        let described = match found {
            Some(root) => cached_image(root),
            None => pb::CachedImage {
                source: image.source.clone(),
                digest: image.lease.root.digest.to_string(),
                ..Default::default()
            },
        };
        Ok(pb::PullImageResponse { image: Some(described), pulled: image.lease.built })
    }
}

#[tonic::async_trait]
impl ImageCacheService for ImageCacheApi {
    async fn pull_image(
        &self,
        request: Request<pb::PullImageRequest>,
    ) -> Result<Response<pb::PullImageResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.pull(&principal, &request.into_inner().reference).await?))
    }

    async fn list_cached_images(
        &self,
        request: Request<pb::ListCachedImagesRequest>,
    ) -> Result<Response<pb::ListCachedImagesResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let images = self.administrator(&principal, "listing the image store").map_err(Status::from)?;
        let cached = images.cached().await.map_err(|e| Status::from(Error::ImageStore(e)))?;
        Ok(Response::new(pb::ListCachedImagesResponse {
            total_bytes: bytes(cached.iter().map(|root| root.unpacked_bytes).sum()),
            max_bytes: bytes(images.config().max_cache_bytes),
            images: cached.iter().map(cached_image).collect(),
        }))
    }

    async fn prune_images(
        &self,
        request: Request<pb::PruneImagesRequest>,
    ) -> Result<Response<pb::PruneImagesResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let images = self.administrator(&principal, "pruning the image store").map_err(Status::from)?;
        let removed = images.prune().await.map_err(|e| Status::from(Error::ImageStore(e)))?;
        tracing::info!(by = %principal.as_str(), images = removed.len(), "image store pruned");
        Ok(Response::new(pb::PruneImagesResponse {
            freed_bytes: bytes(removed.iter().map(|root| root.unpacked_bytes).sum()),
            removed: removed.iter().map(cached_image).collect(),
        }))
    }
}

fn cached_image(root: &StoredRoot) -> pb::CachedImage {
    pb::CachedImage {
        source: root.source.clone(),
        digest: root.manifest.to_string(),
        compressed_bytes: bytes(root.compressed_bytes),
        unpacked_bytes: bytes(root.unpacked_bytes),
        unpack_time: root.unpacked_at.map(timestamp),
        last_use_time: root.last_used.map(timestamp),
        in_use: i32::try_from(root.in_use).unwrap_or(i32::MAX),
    }
}

fn bytes(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn timestamp(at: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(at)
}
