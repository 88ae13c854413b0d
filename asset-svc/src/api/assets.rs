//! `highwind.asset.v1.AssetService`: asset metadata. Versions, aliases and collection come with asset content.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use highwind_common::{
    page_bytes::{PAGE_BYTES, bounded_page},
    page_token::PageTokens,
    principal::Principal,
    validation::Violations,
};
use highwind_proto::asset::v1::{self as pb, asset_service_server::AssetService};
use tonic::{Request, Response, Status};

use super::{
    access,
    convert::{asset_to_proto, draft_from_proto},
    versions,
};
use crate::{
    blobs::BlobStore,
    domain::{
        asset::{Asset, AssetField, AssetKind},
        names,
        paging::{AssetFilter, AssetQuery, Cursor, Order, page_size},
    },
    error::Error,
    gc,
    store::{AssetRepository, ContentRepository, Stores, grants::GrantRepository},
};

/// Platform-wide housekeeping: who may run it and on what.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// The blob store to collect from.
    pub blobs: BlobStore,
    /// Unreferenced blobs younger than this are kept.
    pub grace: Duration,
    /// Principals allowed to collect garbage.
    pub admins: Vec<String>,
}

/// Handlers of `AssetService`.
#[derive(Debug, Clone)]
pub struct AssetApi {
    repo: Arc<dyn AssetRepository>,
    content: Arc<dyn ContentRepository>,
    grants: Arc<dyn GrantRepository>,
    page_tokens: PageTokens,
    housekeeping: Housekeeping,
    /// Names Docker Repo assets' repositories; `None` without a registry.
    registry: Option<Arc<crate::registry_client::RegistryConfig>>,
}

impl AssetApi {
    /// Handlers over `stores`, signing page tokens with `page_tokens`.
    pub fn new(stores: Stores, page_tokens: PageTokens, housekeeping: Housekeeping) -> Self {
        Self {
            repo: stores.assets,
            content: stores.content,
            grants: stores.grants,
            page_tokens,
            housekeeping,
            registry: None,
        }
    }

    /// Shows Docker Repo assets' repositories in `registry`.
    pub fn with_registry(mut self, registry: Option<crate::registry_client::RegistryConfig>) -> Self {
        self.registry = registry.map(Arc::new);
        self
    }

    /// The wire form of `asset`, with its repository when it is a Docker Repo and a registry is configured.
    fn wire(&self, asset: &Asset) -> pb::Asset {
        let mut wire = asset_to_proto(asset);
        if let (Some(registry), AssetKind::DockerRepo) = (&self.registry, asset.kind) {
            let repository = registry.repository(&asset.owner, asset.id);
            let host = registry.public_host();
            wire.details = Some(pb::asset::Details::DockerRepo(pb::DockerRepoDetails {
                image_uri_prefix: format!("{host}/{repository}"),
                registry: host,
                repository,
            }));
        }
        wire
    }

    fn repos(&self) -> versions::Repos<'_> {
        versions::Repos { assets: self.repo.as_ref(), content: self.content.as_ref(), grants: self.grants.as_ref() }
    }

    /// The asset `name` if `principal` may see it; NOT_FOUND otherwise, so existence is not revealed.
    async fn owned_asset(&self, principal: &Principal, field: &str, name: &str) -> Result<Asset, Error> {
        access::owned_asset(self.repo.as_ref(), self.grants.as_ref(), principal, field, name).await
    }

    /// Stores `next` in place of `current`, which the client saw with `etag` (empty: no check).
    async fn replace(&self, current: &Asset, next: Asset, etag: &str) -> Result<Asset, Error> {
        let name = names::asset_name(current.id);
        if !etag.is_empty() && etag != current.etag() {
            return Err(Error::StaleEtag { name, sent: etag.to_owned() });
        }
        if self.repo.update(&next, current.revision).await? {
            Ok(next)
        } else if etag.is_empty() {
            Err(Error::Concurrent(name))
        } else {
            Err(Error::StaleEtag { name, sent: etag.to_owned() })
        }
    }
}

#[tonic::async_trait]
impl AssetService for AssetApi {
    async fn create_asset(&self, request: Request<pb::CreateAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let owner = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let mut violations = Violations::new();
        let draft = match request.asset {
            Some(asset) => draft_from_proto(asset, "asset", &mut violations),
            None => {
                violations.add("asset", "required");
                return Err(Error::Invalid(violations).into());
            }
        };
        highwind_common::idempotency::check_request_id(&request.request_id, &mut violations);
        let asset = match Asset::create(draft, owner.as_str(), Utc::now()) {
            Ok(asset) if violations.is_empty() => asset,
            Ok(_) => return Err(Error::Invalid(violations).into()),
            Err(more) => {
                violations.merge(more);
                return Err(Error::Invalid(violations).into());
            }
        };
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let stored = self.repo.create(&asset, request_id).await.map_err(Error::from)?;
        tracing::info!(asset = %stored.id, owner = %owner, "asset created");
        Ok(Response::new(self.wire(&stored)))
    }

    async fn get_asset(&self, request: Request<pb::GetAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?;
        let name = &request.get_ref().name;
        let asset = access::readable_asset(self.repo.as_ref(), self.grants.as_ref(), principal, "name", name).await?;
        Ok(Response::new(self.wire(&asset)))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Result<Response<pb::ListAssetsResponse>, Status> {
        let owner = Principal::of(&request)?.as_str().to_owned();
        let request = request.into_inner();
        let mut violations = Violations::new();
        let limit = page_size(request.page_size).unwrap_or_else(|e| {
            violations.add("page_size", e);
            0
        });
        let order = Order::parse(&request.order_by).unwrap_or_else(|e| {
            violations.add("order_by", e);
            Order::default()
        });
        let filter = AssetFilter::parse(&request.filter).unwrap_or_else(|e| {
            violations.add("filter", e);
            AssetFilter::default()
        });
        let include_archived = request.show_deleted || filter.archived == Some(true);
        let mut query = AssetQuery { owner, filter, order, include_archived, after: None, limit };
        if !request.page_token.is_empty() && violations.is_empty() {
            match self.page_tokens.decode::<Cursor>(&query.scope(), &request.page_token) {
                Ok(cursor) if cursor.fits(order) => query.after = Some(cursor),
                _ => violations.add(
                    "page_token",
                    "not a token from a previous page of this same query (caller, filter, order_by, show_deleted)",
                ),
            }
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let rows = self.repo.list(&query).await.map_err(Error::from)?;
        let (assets, resume) = bounded_page(rows, limit, PAGE_BYTES, |a| self.wire(a));
        let next_page_token = resume.map(|last| self.page_tokens.encode(&query.scope(), &Cursor::after(&last, order)));
        Ok(Response::new(pb::ListAssetsResponse { assets, next_page_token: next_page_token.unwrap_or_default() }))
    }

    async fn update_asset(&self, request: Request<pb::UpdateAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let Some(incoming) = request.asset else {
            return Err(Error::Invalid(Violations::one("asset", "required")).into());
        };
        let (name, etag) = (incoming.name.clone(), incoming.etag.clone());
        let mut violations = Violations::new();
        let id = names::parse_asset_name(&name).map_err(|e| violations.add("asset.name", e)).ok();
        let draft = draft_from_proto(incoming, "asset", &mut violations);
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut fields = Vec::new();
        for path in &paths {
            match AssetField::parse(path) {
                Some(named) => fields.extend(named),
                None => violations.add(
                    "update_mask",
                    format!("{path:?} cannot be updated; updatable fields: {}", AssetField::known_paths()),
                ),
            }
        }
        if paths.is_empty() {
            fields = AssetField::set_in(&draft);
            if fields.is_empty() {
                violations.add("update_mask", "names no field and the asset sets none: nothing to update");
            }
        }
        let (Some(_), true) = (id, violations.is_empty()) else {
            return Err(Error::Invalid(violations).into());
        };
        let current = self.owned_asset(&principal, "asset.name", &name).await?;
        if current.archive_time.is_some() {
            return Err(Error::Archived(name).into());
        }
        let next = current.updated(&draft, &fields, Utc::now()).map_err(Error::Invalid)?;
        let stored = self.replace(&current, next, &etag).await?;
        Ok(Response::new(self.wire(&stored)))
    }

    async fn delete_asset(&self, request: Request<pb::DeleteAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?;
        let pb::DeleteAssetRequest { name, etag } = request.get_ref();
        let current = self.owned_asset(principal, "name", name).await?;
        if !etag.is_empty() && *etag != current.etag() {
            return Err(Error::StaleEtag { name: name.clone(), sent: etag.clone() }.into());
        }
        if current.archive_time.is_some() {
            // A retried delete finds its own work done.
            return Ok(Response::new(self.wire(&current)));
        }
        let archived = current.archived(Utc::now());
        let stored = self.replace(&current, archived, etag).await?;
        tracing::info!(asset = %stored.id, "asset archived");
        Ok(Response::new(self.wire(&stored)))
    }

    async fn undelete_asset(&self, request: Request<pb::UndeleteAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?;
        let name = &request.get_ref().name;
        let current = self.owned_asset(principal, "name", name).await?;
        if current.archive_time.is_none() {
            return Err(Error::NotArchived(name.clone()).into());
        }
        let restored = current.unarchived(Utc::now());
        let stored = self.replace(&current, restored, "").await?;
        Ok(Response::new(self.wire(&stored)))
    }

    async fn purge_asset(
        &self,
        request: Request<pb::PurgeAssetRequest>,
    ) -> Result<Response<pb::PurgeAssetResponse>, Status> {
        let principal = Principal::of(&request)?;
        let pb::PurgeAssetRequest { name, etag } = request.get_ref();
        let current = self.owned_asset(principal, "name", name).await?;
        if etag.is_empty() {
            return Err(Error::Invalid(Violations::one("etag", "required: purging cannot be undone")).into());
        }
        if *etag != current.etag() {
            return Err(Error::StaleEtag { name: name.clone(), sent: etag.clone() }.into());
        }
        if current.archive_time.is_none() {
            return Err(Error::NotPurgeable(name.clone()).into());
        }
        let (versions, uploads) = self.content.purge_asset(current.id).await.map_err(Error::from)?;
        for upload in uploads {
            if let Err(error) = self.housekeeping.blobs.discard_staging(upload).await {
                tracing::warn!(upload = %upload, error = %error, "staged data not removed");
            }
        }
        tracing::info!(asset = %current.id, versions, "asset purged");
        Ok(Response::new(pb::PurgeAssetResponse { purged_versions: i64::try_from(versions).unwrap_or(i64::MAX) }))
    }

    async fn collect_garbage(
        &self,
        request: Request<pb::CollectGarbageRequest>,
    ) -> Result<Response<pb::CollectGarbageResponse>, Status> {
        let principal = Principal::of(&request)?;
        if !self.housekeeping.admins.iter().any(|admin| admin == principal.as_str()) {
            return Err(Error::NotTheCallers("garbage collection is for platform administrators".into()).into());
        }
        let keeping = &self.housekeeping;
        let done = gc::collect(self.content.as_ref(), &keeping.blobs, keeping.grace, request.get_ref().dry_run).await?;
        Ok(Response::new(pb::CollectGarbageResponse {
            digests: done.digests,
            bytes: i64::try_from(done.bytes).unwrap_or(i64::MAX),
            kept_in_grace: i64::try_from(done.kept_in_grace).unwrap_or(i64::MAX),
            cutoff_time: Some(super::convert::timestamp(done.cutoff)),
        }))
    }

    async fn get_asset_version(
        &self,
        request: Request<pb::GetAssetVersionRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(versions::get(self.repos(), principal, request.get_ref()).await?))
    }

    async fn list_asset_versions(
        &self,
        request: Request<pb::ListAssetVersionsRequest>,
    ) -> Result<Response<pb::ListAssetVersionsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let page = versions::list(self.repos(), &self.page_tokens, &principal, request.into_inner()).await?;
        Ok(Response::new(page))
    }

    async fn update_asset_version(
        &self,
        request: Request<pb::UpdateAssetVersionRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(versions::update(self.repos(), &principal, request.into_inner()).await?))
    }

    async fn delete_asset_version(
        &self,
        request: Request<pb::DeleteAssetVersionRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(versions::set_archived(self.repos(), principal, &request.get_ref().name, true).await?))
    }

    async fn undelete_asset_version(
        &self,
        request: Request<pb::UndeleteAssetVersionRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(versions::set_archived(self.repos(), principal, &request.get_ref().name, false).await?))
    }

    async fn set_version_alias(
        &self,
        request: Request<pb::SetVersionAliasRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(versions::set_alias(self.repos(), &principal, request.into_inner()).await?))
    }

    async fn delete_version_alias(
        &self,
        request: Request<pb::DeleteVersionAliasRequest>,
    ) -> Result<Response<pb::DeleteVersionAliasResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(versions::delete_alias(self.repos(), &principal, request.into_inner()).await?))
    }
}
