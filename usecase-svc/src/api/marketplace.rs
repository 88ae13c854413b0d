//! `highwind.usecase.v1.MarketplaceService`: listings, acquiring them, entitlements and forks.

use std::sync::Arc;

use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::usecase::v1::{self as pb, marketplace_service_server::MarketplaceService};
use tonic::{Request, Response, Status};

use super::{
    acquisitions::{self, Acquisition, visible_listing},
    convert::{entitlement_to_proto, listing_to_proto, use_case_to_proto},
    entitlements::{self, EntitlementList},
    forks::{self, Fork},
    paging::page_limit,
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        market::{Listing, ListingCursor, ListingFilter, ListingOrder, ListingQuery, MAX_QUERY, words},
        role::Role,
    },
    error::Error,
    payments::PaymentProvider,
    store::Stores,
};

/// Handlers of `MarketplaceService`.
#[derive(Debug, Clone)]
pub struct MarketplaceApi {
    stores: Stores,
    assets: Arc<dyn AssetDirectory>,
    payments: Arc<dyn PaymentProvider>,
    page_tokens: PageTokens,
}

impl MarketplaceApi {
    /// Handlers over `stores`, charging through `payments` and checking forked versions with `assets`.
    pub fn new(
        stores: Stores,
        assets: Arc<dyn AssetDirectory>,
        payments: Arc<dyn PaymentProvider>,
        page_tokens: PageTokens,
    ) -> Self {
        Self { stores, assets, payments, page_tokens }
    }

    async fn with_entitlement(&self, principal: &Principal, listing: &Listing) -> Result<pb::Listing, Error> {
        let held =
            self.stores.market.entitlement_to(principal.as_str(), listing.use_case_id, listing.release_number).await?;
        Ok(listing_to_proto(listing, held.as_ref()))
    }

    /// One page of listings for ListListings and SearchListings, and the token of the next.
    async fn page(&self, principal: &Principal, page: ListingPage) -> Result<(Vec<pb::Listing>, String), Error> {
        let ListingPage { mut query, scope, token } = page;
        let scope = scope.as_str();
        if !token.is_empty() {
            let cursor: ListingCursor = self
                .page_tokens
                .decode(scope, &token)
                .ok()
                .filter(|c: &ListingCursor| c.order == query.order)
                .ok_or_else(|| {
                    Error::Invalid(Violations::one("page_token", "not a token from a previous page of this list"))
                })?;
            query.after = Some(cursor);
        }
        let mut rows = self.stores.market.query_listings(&query).await?;
        let next = if rows.len() > query.limit {
            rows.truncate(query.limit);
            rows.last().map(|l| self.page_tokens.encode(scope, &query.order.cursor(l))).unwrap_or_default()
        } else {
            String::new()
        };
        let mut listings = Vec::with_capacity(rows.len());
        for listing in &rows {
            listings.push(self.with_entitlement(principal, listing).await?);
        }
        Ok((listings, next))
    }
}

/// A ListListings or SearchListings request, decoded: the query, the scope its page tokens are bound to, and the
/// token sent.
#[derive(Debug)]
struct ListingPage {
    query: ListingQuery,
    scope: String,
    token: String,
}

impl ListingPage {
    /// ListListings: published listings (withdrawn ones too, for insiders, with `show_withdrawn`).
    fn list(request: pb::ListListingsRequest, principal: &Principal) -> Result<Self, Error> {
        let mut violations = Violations::new();
        let limit = page_limit(request.page_size, &mut violations);
        let filter = ListingFilter::parse(&request.filter).unwrap_or_else(|e| {
            violations.add("filter", e);
            ListingFilter::default()
        });
        let order = ListingOrder::parse(&request.order_by, true).unwrap_or_else(|e| {
            violations.add("order_by", e);
            ListingOrder::PublishTimeDesc
        });
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let scope = format!("listings|{principal}|{:?}|{}", filter, request.show_withdrawn);
        let query = ListingQuery {
            words: Vec::new(),
            filter,
            withdrawn_visible_to: request.show_withdrawn.then(|| principal.as_str().to_owned()),
            order,
            after: None,
            limit,
        };
        Ok(Self { query, scope, token: request.page_token })
    }

    /// SearchListings: published listings matching every word of the query.
    fn search(request: pb::SearchListingsRequest, principal: &Principal) -> Result<Self, Error> {
        let mut violations = Violations::new();
        if request.query.chars().count() > MAX_QUERY {
            violations.add("query", format!("at most {MAX_QUERY} characters"));
        }
        let limit = page_limit(request.page_size, &mut violations);
        let filter = ListingFilter::parse(&request.filter).unwrap_or_else(|e| {
            violations.add("filter", e);
            ListingFilter::default()
        });
        let order = ListingOrder::parse(&request.order_by, false).unwrap_or_else(|e| {
            violations.add("order_by", e);
            ListingOrder::PublishTimeDesc
        });
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let mut terms = words(&request.query);
        terms.sort();
        terms.dedup();
        let scope = format!("search|{principal}|{filter:?}|{terms:?}");
        let query = ListingQuery { words: terms, filter, withdrawn_visible_to: None, order, after: None, limit };
        Ok(Self { query, scope, token: request.page_token })
    }
}

#[tonic::async_trait]
impl MarketplaceService for MarketplaceApi {
    async fn get_listing(&self, request: Request<pb::GetListingRequest>) -> Result<Response<pb::Listing>, Status> {
        let principal = Principal::of(&request)?;
        let listing = visible_listing(&self.stores, principal, &request.get_ref().name).await?;
        Ok(Response::new(self.with_entitlement(principal, &listing).await?))
    }

    async fn list_listings(
        &self,
        request: Request<pb::ListListingsRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let page = ListingPage::list(request.into_inner(), &principal)?;
        let (listings, next_page_token) = self.page(&principal, page).await?;
        Ok(Response::new(pb::ListListingsResponse { listings, next_page_token }))
    }

    async fn search_listings(
        &self,
        request: Request<pb::SearchListingsRequest>,
    ) -> Result<Response<pb::SearchListingsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let page = ListingPage::search(request.into_inner(), &principal)?;
        let (listings, next_page_token) = self.page(&principal, page).await?;
        Ok(Response::new(pb::SearchListingsResponse { listings, next_page_token }))
    }

    async fn acquire_listing(
        &self,
        request: Request<pb::AcquireListingRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        let buyer = Principal::of(&request)?.clone();
        let acquisition = Acquisition::try_from(request.into_inner())?;
        let entitlement = acquisitions::acquire(&self.stores, self.payments.as_ref(), &buyer, &acquisition).await?;
        Ok(Response::new(entitlement_to_proto(&entitlement)))
    }

    async fn get_entitlement(
        &self,
        request: Request<pb::GetEntitlementRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        let principal = Principal::of(&request)?;
        let entitlement = entitlements::get(&self.stores, principal, &request.get_ref().name).await?;
        Ok(Response::new(entitlement_to_proto(&entitlement)))
    }

    async fn list_entitlements(
        &self,
        request: Request<pb::ListEntitlementsRequest>,
    ) -> Result<Response<pb::ListEntitlementsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let list = EntitlementList::try_from(request.into_inner())?;
        let (rows, next_page_token) = entitlements::list(&self.stores, &self.page_tokens, &principal, list).await?;
        Ok(Response::new(pb::ListEntitlementsResponse {
            entitlements: rows.iter().map(entitlement_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn fork_release(&self, request: Request<pb::ForkReleaseRequest>) -> Result<Response<pb::UseCase>, Status> {
        let principal = Principal::of(&request)?.clone();
        let fork = Fork::try_from(request.into_inner())?;
        let forked = forks::fork(&self.stores, self.assets.as_ref(), &principal, &fork).await?;
        Ok(Response::new(use_case_to_proto(&forked, Role::Owner)))
    }
}
