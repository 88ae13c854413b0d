//! `highwind.asset.internal.v1.RegistryEventService`: the gateway relays the registry's push notifications; the
//! repository named is reconciled from the registry itself. Only the gateway's own identity may call it.

use std::sync::Arc;

use highwind_common::principal::Principal;
use highwind_proto::asset::internal::v1::{self as pb, registry_event_service_server::RegistryEventService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{asset::AssetKind, names},
    error::Error,
    images::{Images, ImagesError},
    store::AssetRepository,
};

/// The only caller.
pub const NOTIFYING_SERVICE: &str = "gateway";

/// Handlers of `RegistryEventService`.
#[derive(Debug, Clone)]
pub struct RegistryEventApi {
    assets: Arc<dyn AssetRepository>,
    images: Option<Images>,
}

impl RegistryEventApi {
    /// Handlers reconciling through `images` (`None`: no registry configured, events are ignored).
    pub fn new(assets: Arc<dyn AssetRepository>, images: Option<Images>) -> Self {
        Self { assets, images }
    }
}

#[tonic::async_trait]
impl RegistryEventService for RegistryEventApi {
    async fn repository_pushed(
        &self,
        request: Request<pb::RepositoryPushedRequest>,
    ) -> Result<Response<pb::RepositoryPushedResponse>, Status> {
        if !Principal::of(&request)?.is_service(NOTIFYING_SERVICE) {
            return Err(Status::permission_denied(format!("only the {NOTIFYING_SERVICE} relays registry events")));
        }
        let request = request.into_inner();
        let Some(images) = &self.images else { return Ok(Response::new(pb::RepositoryPushedResponse::default())) };
        let asset_id = request.repository.rsplit('/').next().and_then(|id| Uuid::parse_str(id).ok());
        let asset = match asset_id {
            Some(id) => self.assets.get(id).await.map_err(Error::from)?,
            None => None,
        };
        // Only the repository the asset really owns counts: another path ending in its id is not it.
        let Some(asset) =
            asset.filter(|a| a.kind == AssetKind::DockerRepo && images.repository(a) == request.repository)
        else {
            return Ok(Response::new(pb::RepositoryPushedResponse::default()));
        };
        let pusher = if Principal::parse(&request.pusher).is_some() { request.pusher.as_str() } else { "" };
        let tagged = images.reconcile(&asset, pusher).await.map_err(|e| match e {
            ImagesError::Store(e) => Error::Store(e),
            ImagesError::Registry(e) => Error::RegistryUnavailable(e.to_string()),
        })?;
        Ok(Response::new(pb::RepositoryPushedResponse {
            asset: names::asset_name(asset.id),
            tags: i32::try_from(tagged.len()).unwrap_or(i32::MAX),
        }))
    }
}
