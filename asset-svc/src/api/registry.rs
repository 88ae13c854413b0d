//! `highwind.asset.internal.v1.RegistryService`: what the gateway asks on behalf of the registry — which actions a
//! caller may have on a repository (it turns the answer into a registry token), and which repository a push
//! notification named (reconciled from the registry itself; only the gateway's own identity may report pushes).

use std::sync::Arc;

use highwind_common::principal::{CallingService, Principal};
use highwind_proto::asset::internal::v1::{self as pb, registry_service_server::RegistryService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{
        asset::{Asset, AssetKind},
        names,
    },
    error::Error,
    images::Images,
    registry_client::{RegistryConfig, client::PULL_TOKEN_TTL},
    store::{AssetRepository, grants::GrantRepository},
};

/// The only caller of RepositoryPushed.
pub const NOTIFYING_SERVICE: &str = "gateway";

/// The only caller of IssuePullToken: it runs pipeline steps in their creators' images.
pub const PULLING_SERVICE: &str = "pipeline-svc";

/// Handlers of `RegistryService`.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    assets: Arc<dyn AssetRepository>,
    grants: Arc<dyn GrantRepository>,
    naming: Arc<RegistryConfig>,
    images: Option<Images>,
}

impl RegistryApi {
    /// Handlers naming repositories as `naming` does, reconciling through `images` (`None`: no registry, pushes
    /// are ignored).
    pub fn new(
        assets: Arc<dyn AssetRepository>,
        grants: Arc<dyn GrantRepository>,
        naming: RegistryConfig,
        images: Option<Images>,
    ) -> Self {
        Self { assets, grants, naming: Arc::new(naming), images }
    }

    /// The Docker Repo asset whose repository is exactly `repository`.
    async fn owner_of(&self, repository: &str) -> Result<Option<Asset>, Error> {
        let Some(id) = repository.rsplit('/').next().and_then(|id| Uuid::parse_str(id).ok()) else { return Ok(None) };
        let asset = self.assets.get(id).await?;
        // Only the repository the asset really owns counts: another path ending in its id is not it.
        Ok(asset.filter(|a| a.kind == AssetKind::DockerRepo && self.naming.repository(&a.owner, a.id) == repository))
    }

    /// The actions of `asked` that `principal` may have on `repository`.
    async fn granted(&self, principal: &Principal, repository: &str, asked: &[String]) -> Result<Vec<String>, Error> {
        let Some(asset) = self.owner_of(repository).await? else { return Ok(Vec::new()) };
        let owner = asset.is_owned_by(principal.as_str());
        // A deleted (archived) asset takes no more pushes; what it holds stays readable as its versions do.
        let allowed: &[&str] = if owner && asset.archive_time.is_none() {
            &["pull", "push", "delete"]
        } else if owner || self.grants.may_read(principal.as_str(), asset.id, None).await? {
            &["pull"]
        } else {
            &[]
        };
        Ok(allowed.iter().filter(|a| asked.iter().any(|w| w == *a || w == "*")).map(|a| (*a).to_owned()).collect())
    }

    /// RepositoryPushed: the registry's relay tells that `repository` changed; its asset's versions follow its
    /// tags (a pusher that is not a principal is recorded as nobody). Unknown repositories are ignored.
    async fn pushed(
        &self,
        caller: &Principal,
        repository: &str,
        pusher: &str,
    ) -> Result<pb::RepositoryPushedResponse, Error> {
        if !caller.is_service(NOTIFYING_SERVICE) {
            return Err(Error::NotTheCallers(format!("only the {NOTIFYING_SERVICE} relays registry events")));
        }
        let Some(images) = &self.images else { return Ok(pb::RepositoryPushedResponse::default()) };
        let Some(asset) = self.owner_of(repository).await? else {
            return Ok(pb::RepositoryPushedResponse::default());
        };
        let pusher = if Principal::parse(pusher).is_some() { pusher } else { "" };
        let tagged = images.reconcile(&asset, pusher).await?;
        Ok(pb::RepositoryPushedResponse {
            asset: names::asset_name(asset.id),
            tags: i32::try_from(tagged.len()).unwrap_or(i32::MAX),
        })
    }
}

impl RegistryApi {
    /// IssuePullToken: a pull token for `principal` on `repository` of the platform's registry, when `host` is
    /// that registry; only [`PULLING_SERVICE`] asks, on a principal's behalf.
    async fn pull_token(
        &self,
        principal: &Principal,
        caller: Option<&str>,
        request: &pb::IssuePullTokenRequest,
    ) -> Result<pb::IssuePullTokenResponse, Error> {
        if caller != Some(PULLING_SERVICE) {
            return Err(Error::NotTheCallers(format!("only {PULLING_SERVICE} pulls images on a principal's behalf")));
        }
        let Some(images) = &self.images else { return Ok(pb::IssuePullTokenResponse::default()) };
        let registry = images.client().config();
        if !request.host.eq_ignore_ascii_case(&registry.public_host()) {
            return Ok(pb::IssuePullTokenResponse::default());
        }
        let granted = self.granted(principal, &request.repository, &["pull".to_owned()]).await?;
        if granted.is_empty() {
            // As for assets: what the principal may not read does not exist for them.
            return Err(Error::NotFound(format!("image repository {}/{}", request.host, request.repository)));
        }
        let token = images
            .client()
            .pull_token(principal.as_str(), &request.repository)
            .await
            .map_err(|e| Error::RegistryUnavailable(e.to_string()))?;
        Ok(pb::IssuePullTokenResponse {
            platform: true,
            url: registry.url.clone(),
            token,
            expires_in_seconds: i32::try_from(PULL_TOKEN_TTL.as_secs()).unwrap_or(i32::MAX),
        })
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn issue_pull_token(
        &self,
        request: Request<pb::IssuePullTokenRequest>,
    ) -> Result<Response<pb::IssuePullTokenResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let caller = CallingService::of(&request).map(|c| c.0.clone());
        let request = request.into_inner();
        Ok(Response::new(self.pull_token(&principal, caller.as_deref(), &request).await?))
    }

    async fn authorize_repository(
        &self,
        request: Request<pb::AuthorizeRepositoryRequest>,
    ) -> Result<Response<pb::AuthorizeRepositoryResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let granted = self.granted(&principal, &request.repository, &request.actions).await?;
        Ok(Response::new(pb::AuthorizeRepositoryResponse { granted }))
    }

    async fn repository_pushed(
        &self,
        request: Request<pb::RepositoryPushedRequest>,
    ) -> Result<Response<pb::RepositoryPushedResponse>, Status> {
        let caller = Principal::of(&request)?.clone();
        let request = request.into_inner();
        Ok(Response::new(self.pushed(&caller, &request.repository, &request.pusher).await?))
    }
}
