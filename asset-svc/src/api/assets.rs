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
        asset::{Asset, AssetDraft, AssetField, AssetKind},
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
}

#[tonic::async_trait]
impl AssetService for AssetApi {
    async fn create_asset(&self, request: Request<pb::CreateAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let owner = Principal::of(&request)?.clone();
        let new = NewAsset::decode(request.into_inner(), &owner)?;
        let stored = create(self.repos(), new).await?;
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
        let owner = Principal::of(&request)?;
        let query = decode_query(&self.page_tokens, owner, request.get_ref())?;
        let rows = self.repo.list(&query).await.map_err(Error::from)?;
        let (assets, resume) = bounded_page(rows, query.limit, PAGE_BYTES, |a| self.wire(a));
        let next_page_token =
            resume.map(|last| self.page_tokens.encode(&query.scope(), &Cursor::after(&last, query.order)));
        Ok(Response::new(pb::ListAssetsResponse { assets, next_page_token: next_page_token.unwrap_or_default() }))
    }

    async fn update_asset(&self, request: Request<pb::UpdateAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?.clone();
        let update = AssetUpdate::try_from(request.into_inner())?;
        let stored = update_asset(self.repos(), &principal, update).await?;
        Ok(Response::new(self.wire(&stored)))
    }

    async fn delete_asset(&self, request: Request<pb::DeleteAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?;
        let pb::DeleteAssetRequest { name, etag } = request.get_ref();
        let stored = set_archived(self.repos(), principal, name, etag, true).await?;
        Ok(Response::new(self.wire(&stored)))
    }

    async fn undelete_asset(&self, request: Request<pb::UndeleteAssetRequest>) -> Result<Response<pb::Asset>, Status> {
        let principal = Principal::of(&request)?;
        let stored = set_archived(self.repos(), principal, &request.get_ref().name, "", false).await?;
        Ok(Response::new(self.wire(&stored)))
    }

    async fn purge_asset(
        &self,
        request: Request<pb::PurgeAssetRequest>,
    ) -> Result<Response<pb::PurgeAssetResponse>, Status> {
        let principal = Principal::of(&request)?;
        let pb::PurgeAssetRequest { name, etag } = request.get_ref();
        let versions = purge(self.repos(), &self.housekeeping.blobs, principal, name, etag).await?;
        Ok(Response::new(pb::PurgeAssetResponse { purged_versions: i64::try_from(versions).unwrap_or(i64::MAX) }))
    }

    async fn collect_garbage(
        &self,
        request: Request<pb::CollectGarbageRequest>,
    ) -> Result<Response<pb::CollectGarbageResponse>, Status> {
        let principal = Principal::of(&request)?;
        let done = collect_garbage(self.repos(), &self.housekeeping, principal, request.get_ref().dry_run).await?;
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

/// A CreateAsset request, decoded: the asset it makes for its owner, every violation found at once.
#[derive(Debug)]
struct NewAsset {
    asset: Asset,
    request_id: Option<String>,
}

impl NewAsset {
    fn decode(request: pb::CreateAssetRequest, owner: &Principal) -> Result<Self, Error> {
        let mut violations = Violations::new();
        let Some(asset) = request.asset else {
            violations.add("asset", "required");
            return Err(Error::Invalid(violations));
        };
        let draft = draft_from_proto(asset, "asset", &mut violations);
        highwind_common::idempotency::check_request_id(&request.request_id, &mut violations);
        match Asset::create(draft, owner.as_str(), Utc::now()) {
            Ok(asset) if violations.is_empty() => {
                Ok(Self { asset, request_id: Some(request.request_id).filter(|id| !id.is_empty()) })
            }
            Ok(_) => Err(Error::Invalid(violations)),
            Err(more) => {
                violations.merge(more);
                Err(Error::Invalid(violations))
            }
        }
    }
}

/// An UpdateAsset request, decoded: which asset, the fields to change and their new values.
#[derive(Debug)]
struct AssetUpdate {
    name: String,
    etag: String,
    draft: AssetDraft,
    fields: Vec<AssetField>,
}

impl TryFrom<pb::UpdateAssetRequest> for AssetUpdate {
    type Error = Error;

    fn try_from(request: pb::UpdateAssetRequest) -> Result<Self, Error> {
        let Some(incoming) = request.asset else {
            return Err(Error::Invalid(Violations::one("asset", "required")));
        };
        let (name, etag) = (incoming.name.clone(), incoming.etag.clone());
        let mut violations = Violations::new();
        if let Err(e) = names::parse_asset_name(&name) {
            violations.add("asset.name", e);
        }
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
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self { name, etag, draft, fields })
    }
}

/// A ListAssets request, decoded into the query for `owner`'s assets, resuming after its page token.
fn decode_query(
    page_tokens: &PageTokens,
    owner: &Principal,
    request: &pb::ListAssetsRequest,
) -> Result<AssetQuery, Error> {
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
    let mut query =
        AssetQuery { owner: owner.as_str().to_owned(), filter, order, include_archived, after: None, limit };
    if !request.page_token.is_empty() && violations.is_empty() {
        match page_tokens.decode::<Cursor>(&query.scope(), &request.page_token) {
            Ok(cursor) if cursor.fits(order) => query.after = Some(cursor),
            _ => violations.add(
                "page_token",
                "not a token from a previous page of this same query (caller, filter, order_by, show_deleted)",
            ),
        }
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    Ok(query)
}

/// CreateAsset: stores `new` (once per request id: a retry returns the first).
async fn create(repos: versions::Repos<'_>, new: NewAsset) -> Result<Asset, Error> {
    let stored = repos.assets.create(&new.asset, new.request_id.as_deref()).await?;
    tracing::info!(asset = %stored.id, owner = %stored.owner, "asset created");
    Ok(stored)
}

/// The asset `name` if `principal` owns it; NOT_FOUND to those who may not see it, so existence is not revealed.
async fn owned(repos: versions::Repos<'_>, principal: &Principal, field: &str, name: &str) -> Result<Asset, Error> {
    access::owned_asset(repos.assets, repos.grants, principal, field, name).await
}

/// UpdateAsset: the owner changes the fields of a live asset.
async fn update_asset(repos: versions::Repos<'_>, principal: &Principal, update: AssetUpdate) -> Result<Asset, Error> {
    let current = owned(repos, principal, "asset.name", &update.name).await?;
    if current.archive_time.is_some() {
        return Err(Error::Archived(update.name));
    }
    let next = current.updated(&update.draft, &update.fields, Utc::now()).map_err(Error::Invalid)?;
    replace(repos, &current, next, &update.etag).await
}

/// DeleteAsset (`archive`) and UndeleteAsset: the owner archives or restores the asset. Archiving an archived
/// asset finds a retry's work done; restoring a live one is refused.
async fn set_archived(
    repos: versions::Repos<'_>,
    principal: &Principal,
    name: &str,
    etag: &str,
    archive: bool,
) -> Result<Asset, Error> {
    let current = owned(repos, principal, "name", name).await?;
    if !etag.is_empty() && etag != current.etag() {
        return Err(Error::StaleEtag { name: name.to_owned(), sent: etag.to_owned() });
    }
    match (archive, current.archive_time.is_some()) {
        (true, true) => Ok(current),
        (false, false) => Err(Error::NotArchived(name.to_owned())),
        (true, false) => {
            let stored = replace(repos, &current, current.archived(Utc::now()), etag).await?;
            tracing::info!(asset = %stored.id, "asset archived");
            Ok(stored)
        }
        (false, true) => replace(repos, &current, current.unarchived(Utc::now()), "").await,
    }
}

/// PurgeAsset: the owner removes an archived asset for good (its etag required), with its versions and uploads;
/// how many versions went. Blobs stay for garbage collection.
async fn purge(
    repos: versions::Repos<'_>,
    blobs: &BlobStore,
    principal: &Principal,
    name: &str,
    etag: &str,
) -> Result<u64, Error> {
    let current = owned(repos, principal, "name", name).await?;
    if etag.is_empty() {
        return Err(Error::Invalid(Violations::one("etag", "required: purging cannot be undone")));
    }
    if etag != current.etag() {
        return Err(Error::StaleEtag { name: name.to_owned(), sent: etag.to_owned() });
    }
    if current.archive_time.is_none() {
        return Err(Error::NotPurgeable(name.to_owned()));
    }
    let (versions, uploads) = repos.content.purge_asset(current.id).await?;
    for upload in uploads {
        if let Err(error) = blobs.discard_staging(upload).await {
            tracing::warn!(upload = %upload, error = %error, "staged data not removed");
        }
    }
    tracing::info!(asset = %current.id, versions, "asset purged");
    Ok(versions)
}

/// CollectGarbage: platform administrators only.
async fn collect_garbage(
    repos: versions::Repos<'_>,
    housekeeping: &Housekeeping,
    principal: &Principal,
    dry_run: bool,
) -> Result<gc::Collection, Error> {
    if !housekeeping.admins.iter().any(|admin| admin == principal.as_str()) {
        return Err(Error::NotTheCallers("garbage collection is for platform administrators".into()));
    }
    gc::collect(repos.content, &housekeeping.blobs, housekeeping.grace, dry_run).await
}

/// Stores `next` in place of `current`, which the client saw with `etag` (empty: no check).
async fn replace(repos: versions::Repos<'_>, current: &Asset, next: Asset, etag: &str) -> Result<Asset, Error> {
    let name = names::asset_name(current.id);
    if !etag.is_empty() && etag != current.etag() {
        return Err(Error::StaleEtag { name, sent: etag.to_owned() });
    }
    if repos.assets.update(&next, current.revision).await? {
        Ok(next)
    } else if etag.is_empty() {
        Err(Error::Concurrent(name))
    } else {
        Err(Error::StaleEtag { name, sent: etag.to_owned() })
    }
}
