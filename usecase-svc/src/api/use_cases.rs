//! `highwind.usecase.v1.UseCaseService`: use cases themselves here; members, links and releases are handled in
//! their own modules.

use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::usecase::v1::{self as pb, use_case_service_server::UseCaseService};
use tonic::{Request, Response, Status};

use super::{
    convert::{check_schema_type, draft_from_proto, use_case_to_proto},
    filters::UseCaseFilter,
    links, members,
    paging::{READ_BATCH, SortValue, caller_role, check_request_id, idempotency_key, page_limit, page_of, parse_order},
    publishing, releases,
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        names,
        role::Role,
        use_case::{UseCase, UseCaseDraft, UseCaseField},
    },
    error::Error,
    store::{Stores, UseCaseRepository, read_all},
};

/// Handlers of `UseCaseService`.
#[derive(Debug, Clone)]
pub struct UseCaseApi {
    stores: Stores,
    repo: Arc<dyn UseCaseRepository>,
    assets: Arc<dyn AssetDirectory>,
    page_tokens: PageTokens,
}

impl UseCaseApi {
    /// Handlers over `stores`, asking `assets` about linked assets.
    pub fn new(stores: Stores, assets: Arc<dyn AssetDirectory>, page_tokens: PageTokens) -> Self {
        Self { repo: stores.use_cases.clone(), stores, assets, page_tokens }
    }

    /// The use case `name` and the caller's role on it; NOT_FOUND for non-members, so existence stays private.
    async fn membership(&self, principal: &Principal, field: &str, name: &str) -> Result<(UseCase, Role), Error> {
        let (id, role) = caller_role(self.repo.as_ref(), principal, field, name).await?;
        let use_case = self.repo.get(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
        Ok((use_case, role))
    }

    async fn replace(&self, current: &UseCase, next: UseCase, etag: &str) -> Result<UseCase, Error> {
        let name = names::use_case_name(current.id);
        if !etag.is_empty() && etag != current.etag() {
            return Err(Error::StaleEtag(name));
        }
        if self.repo.update(&next, current.revision).await? {
            Ok(next)
        } else if etag.is_empty() {
            Err(Error::Concurrent(name))
        } else {
            Err(Error::StaleEtag(name))
        }
    }

    /// CreateUseCase: stores `new` with its creator as OWNER (once per request id: a retry returns the first).
    async fn create(&self, new: NewUseCase) -> Result<UseCase, Error> {
        let stored = self.repo.create(&new.use_case, &[], new.request_id.as_deref()).await?;
        tracing::info!(use_case = %stored.id, owner = %stored.owner, "use case created");
        Ok(stored)
    }

    /// ListUseCases: one page of the use cases `principal` is a member of, with their role, and the next token.
    async fn list(&self, principal: &Principal, list: UseCaseList) -> Result<(Vec<(UseCase, Role)>, String), Error> {
        let UseCaseList { limit, filter, order, show_deleted: archived, page_token } = list;
        let repo = self.repo.as_ref();
        let who = principal.as_str();
        let rows = read_all(
            READ_BATCH,
            move |after| repo.list_for(who, archived, after, READ_BATCH),
            |(u, _)| (u.create_time.timestamp_micros(), u.id),
        )
        .await?;
        let keyed = rows
            .into_iter()
            .filter(|(u, role)| filter.keeps(u, *role))
            .map(|(u, role)| {
                let value = match order.0 {
                    "display_name" => SortValue::Text(u.display_name.clone()),
                    "update_time" => SortValue::Int(u.update_time.timestamp_micros()),
                    _ => SortValue::Int(u.create_time.timestamp_micros()),
                };
                ((value, u.id.to_string()), (u, role))
            })
            .collect();
        let scope = format!("use-cases|{principal}|{archived}|{filter:?}|{order:?}");
        page_of(keyed, order.1, limit, &self.page_tokens, &scope, &page_token)
    }

    /// UpdateUseCase: editors change a live use case's fields; only owners its price.
    async fn update(&self, principal: &Principal, update: UseCaseUpdate) -> Result<(UseCase, Role), Error> {
        let UseCaseUpdate { name, etag, draft, fields } = update;
        let (current, role) = self.membership(principal, "use_case.name", &name).await?;
        if !role.may_edit() {
            return Err(Error::PermissionDenied(format!("a viewer cannot change {name}")));
        }
        if current.archive_time.is_some() {
            return Err(Error::Archived(name));
        }
        let next = current.updated(&draft, &fields, Utc::now()).map_err(Error::Invalid)?;
        if current.price_changes(&next) && !role.may_change_price() {
            return Err(Error::PermissionDenied(format!("only an owner may change the price of {name}")));
        }
        let stored = self.replace(&current, next, &etag).await?;
        Ok((stored, role))
    }

    async fn set_archived(
        &self,
        principal: &Principal,
        name: &str,
        etag: &str,
        archived: bool,
    ) -> Result<pb::UseCase, Error> {
        let (current, role) = self.membership(principal, "name", name).await?;
        if !role.may_administer() {
            return Err(Error::PermissionDenied(format!("only an owner may archive or restore {name}")));
        }
        let stored = match (archived, current.archive_time.is_some()) {
            (true, true) => current,
            (false, false) => return Err(Error::NotArchived(name.to_owned())),
            (true, false) => {
                let now = Utc::now().trunc_subsecs(6);
                let archived = self.replace(&current, current.with_archive_time(Some(now), now), etag).await?;
                // An archived use case is not for sale; its buyers keep what they acquired.
                if let Some(listing) = self.stores.market.listing_of(current.id).await?.filter(|l| l.active) {
                    self.stores.market.save_listing(&listing.withdrawn(now)).await?;
                }
                self.repo.get(current.id).await?.unwrap_or(archived)
            }
            (false, true) => self.replace(&current, current.with_archive_time(None, Utc::now()), etag).await?,
        };
        Ok(use_case_to_proto(&stored, role))
    }
}

/// A CreateUseCase request, decoded: the use case it makes for its owner, every violation found at once.
#[derive(Debug)]
struct NewUseCase {
    use_case: UseCase,
    request_id: Option<String>,
}

impl NewUseCase {
    fn decode(request: pb::CreateUseCaseRequest, owner: &Principal) -> Result<Self, Error> {
        let Some(incoming) = request.use_case else {
            return Err(Error::Invalid(Violations::one("use_case", "required")));
        };
        let mut violations = Violations::new();
        check_request_id(&request.request_id, &mut violations);
        check_schema_type(incoming.inference_schema_type, &mut violations);
        match UseCase::create(draft_from_proto(incoming), owner.as_str(), Utc::now()) {
            Ok(use_case) if violations.is_empty() => {
                Ok(Self { use_case, request_id: idempotency_key(&request.request_id).map(str::to_owned) })
            }
            Ok(_) => Err(Error::Invalid(violations)),
            Err(more) => {
                violations.merge(more);
                Err(Error::Invalid(violations))
            }
        }
    }
}

/// A ListUseCases request, decoded.
#[derive(Debug)]
struct UseCaseList {
    limit: usize,
    filter: UseCaseFilter,
    order: (&'static str, bool),
    show_deleted: bool,
    page_token: String,
}

impl TryFrom<pb::ListUseCasesRequest> for UseCaseList {
    type Error = Error;

    fn try_from(request: pb::ListUseCasesRequest) -> Result<Self, Error> {
        let mut violations = Violations::new();
        let limit = page_limit(request.page_size, &mut violations);
        let filter = UseCaseFilter::parse(&request.filter).unwrap_or_else(|e| {
            violations.add("filter", e);
            UseCaseFilter::default()
        });
        let fields = ["create_time", "update_time", "display_name"];
        let order = parse_order(&request.order_by, &fields, ("create_time", true)).unwrap_or_else(|e| {
            violations.add("order_by", e);
            ("create_time", true)
        });
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self { limit, filter, order, show_deleted: request.show_deleted, page_token: request.page_token })
    }
}

/// An UpdateUseCase request, decoded: which use case, the fields to change and their new values.
#[derive(Debug)]
struct UseCaseUpdate {
    name: String,
    etag: String,
    draft: UseCaseDraft,
    fields: Vec<UseCaseField>,
}

impl TryFrom<pb::UpdateUseCaseRequest> for UseCaseUpdate {
    type Error = Error;

    fn try_from(request: pb::UpdateUseCaseRequest) -> Result<Self, Error> {
        let Some(incoming) = request.use_case else {
            return Err(Error::Invalid(Violations::one("use_case", "required")));
        };
        let (name, etag, schema_type) = (incoming.name.clone(), incoming.etag.clone(), incoming.inference_schema_type);
        let draft = draft_from_proto(incoming);
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut violations = Violations::new();
        let mut fields = Vec::new();
        for path in &paths {
            match UseCaseField::parse(path) {
                Some(field) => fields.push(field),
                None if path == "*" => fields.extend(UseCaseField::all()),
                None => violations.add(
                    "update_mask",
                    format!("{path:?} cannot be updated here; updatable fields: {}", UseCaseField::known_paths()),
                ),
            }
        }
        if paths.is_empty() {
            fields = UseCaseField::set_in(&draft);
            if schema_type != 0 {
                fields.push(UseCaseField::InferenceSchemaType);
            }
            if fields.is_empty() {
                violations.add("update_mask", "names no field and the use case sets none: nothing to update");
            }
        }
        if fields.contains(&UseCaseField::InferenceSchemaType) {
            check_schema_type(schema_type, &mut violations);
        }
        if let Err(reason) = names::parse_use_case_name(&name) {
            violations.add("use_case.name", reason);
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self { name, etag, draft, fields })
    }
}

#[tonic::async_trait]
impl UseCaseService for UseCaseApi {
    async fn create_use_case(
        &self,
        request: Request<pb::CreateUseCaseRequest>,
    ) -> Result<Response<pb::UseCase>, Status> {
        let owner = Principal::of(&request)?.clone();
        let new = NewUseCase::decode(request.into_inner(), &owner)?;
        let stored = self.create(new).await?;
        Ok(Response::new(use_case_to_proto(&stored, Role::Owner)))
    }

    async fn get_use_case(&self, request: Request<pb::GetUseCaseRequest>) -> Result<Response<pb::UseCase>, Status> {
        let principal = Principal::of(&request)?;
        let (use_case, role) = self.membership(principal, "name", &request.get_ref().name).await?;
        Ok(Response::new(use_case_to_proto(&use_case, role)))
    }

    async fn list_use_cases(
        &self,
        request: Request<pb::ListUseCasesRequest>,
    ) -> Result<Response<pb::ListUseCasesResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let list = UseCaseList::try_from(request.into_inner())?;
        let (page, next_page_token) = self.list(&principal, list).await?;
        Ok(Response::new(pb::ListUseCasesResponse {
            use_cases: page.iter().map(|(u, role)| use_case_to_proto(u, *role)).collect(),
            next_page_token,
        }))
    }

    async fn update_use_case(
        &self,
        request: Request<pb::UpdateUseCaseRequest>,
    ) -> Result<Response<pb::UseCase>, Status> {
        let principal = Principal::of(&request)?.clone();
        let update = UseCaseUpdate::try_from(request.into_inner())?;
        let (stored, role) = self.update(&principal, update).await?;
        Ok(Response::new(use_case_to_proto(&stored, role)))
    }

    async fn delete_use_case(
        &self,
        request: Request<pb::DeleteUseCaseRequest>,
    ) -> Result<Response<pb::UseCase>, Status> {
        let principal = Principal::of(&request)?;
        let pb::DeleteUseCaseRequest { name, etag } = request.get_ref();
        Ok(Response::new(self.set_archived(principal, name, etag, true).await?))
    }

    async fn undelete_use_case(
        &self,
        request: Request<pb::UndeleteUseCaseRequest>,
    ) -> Result<Response<pb::UseCase>, Status> {
        let principal = Principal::of(&request)?;
        let pb::UndeleteUseCaseRequest { name, etag } = request.get_ref();
        Ok(Response::new(self.set_archived(principal, name, etag, false).await?))
    }

    async fn create_member(&self, request: Request<pb::CreateMemberRequest>) -> Result<Response<pb::Member>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(members::create(self.repo.as_ref(), &principal, request.into_inner()).await?))
    }

    async fn get_member(&self, request: Request<pb::GetMemberRequest>) -> Result<Response<pb::Member>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(members::get(self.repo.as_ref(), principal, &request.get_ref().name).await?))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let page = members::list(self.repo.as_ref(), &self.page_tokens, &principal, request.into_inner()).await?;
        Ok(Response::new(page))
    }

    async fn update_member(&self, request: Request<pb::UpdateMemberRequest>) -> Result<Response<pb::Member>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(members::update(self.repo.as_ref(), &principal, request.into_inner()).await?))
    }

    async fn delete_member(&self, request: Request<pb::DeleteMemberRequest>) -> Result<Response<()>, Status> {
        let principal = Principal::of(&request)?.clone();
        members::delete(self.repo.as_ref(), &principal, request.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn create_asset_link(
        &self,
        request: Request<pb::CreateAssetLinkRequest>,
    ) -> Result<Response<pb::AssetLink>, Status> {
        let principal = Principal::of(&request)?.clone();
        let link = links::create(self.repo.as_ref(), self.assets.as_ref(), &principal, request.into_inner()).await?;
        Ok(Response::new(link))
    }

    async fn get_asset_link(
        &self,
        request: Request<pb::GetAssetLinkRequest>,
    ) -> Result<Response<pb::AssetLink>, Status> {
        let principal = Principal::of(&request)?;
        let link = links::get(self.repo.as_ref(), self.assets.as_ref(), principal, &request.get_ref().name).await?;
        Ok(Response::new(link))
    }

    async fn list_asset_links(
        &self,
        request: Request<pb::ListAssetLinksRequest>,
    ) -> Result<Response<pb::ListAssetLinksResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let (repo, assets) = (self.repo.as_ref(), self.assets.as_ref());
        Ok(Response::new(links::list(repo, assets, &self.page_tokens, &principal, request.into_inner()).await?))
    }

    async fn delete_asset_link(&self, request: Request<pb::DeleteAssetLinkRequest>) -> Result<Response<()>, Status> {
        let principal = Principal::of(&request)?;
        links::delete(self.repo.as_ref(), principal, &request.get_ref().name).await?;
        Ok(Response::new(()))
    }

    async fn create_release(
        &self,
        request: Request<pb::CreateReleaseRequest>,
    ) -> Result<Response<pb::Release>, Status> {
        let principal = Principal::of(&request)?.clone();
        let release =
            releases::create(self.repo.as_ref(), self.assets.as_ref(), &principal, request.into_inner()).await?;
        Ok(Response::new(release))
    }

    async fn get_release(&self, request: Request<pb::GetReleaseRequest>) -> Result<Response<pb::Release>, Status> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(releases::get(&self.stores, principal, &request.get_ref().name).await?))
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(
            releases::list(self.repo.as_ref(), &self.page_tokens, &principal, request.into_inner()).await?,
        ))
    }

    async fn diff_releases(
        &self,
        request: Request<pb::DiffReleasesRequest>,
    ) -> Result<Response<pb::DiffReleasesResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(releases::compare(self.repo.as_ref(), &principal, request.into_inner()).await?))
    }

    async fn swap_asset_link(
        &self,
        request: Request<pb::SwapAssetLinkRequest>,
    ) -> Result<Response<pb::AssetLink>, Status> {
        let principal = Principal::of(&request)?.clone();
        let link = links::swap(self.repo.as_ref(), self.assets.as_ref(), &principal, request.into_inner()).await?;
        Ok(Response::new(link))
    }

    async fn publish_use_case(
        &self,
        request: Request<pb::PublishUseCaseRequest>,
    ) -> Result<Response<pb::PublishUseCaseResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(publishing::publish(&self.stores, &principal, request.into_inner()).await?))
    }

    async fn unpublish_use_case(
        &self,
        request: Request<pb::UnpublishUseCaseRequest>,
    ) -> Result<Response<pb::UnpublishUseCaseResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(publishing::unpublish(&self.stores, &principal, request.into_inner()).await?))
    }
}
