//! `highwind.usecase.v1.MarketplaceService`: listings, acquiring them, entitlements and forks.

use std::sync::Arc;

use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::usecase::v1::{self as pb, marketplace_service_server::MarketplaceService};
use tonic::{Request, Response, Status};

use super::{
    acquisitions::{self, Acquisition, visible_listing},
    convert::{entitlement_to_proto, listing_to_proto, use_case_to_proto},
    forks::{self, Fork},
    paging::{TimeCursor, page_limit},
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        market::{Listing, ListingCursor, ListingFilter, ListingOrder, ListingQuery, MAX_QUERY, words},
        names,
        role::Role,
    },
    error::Error,
    payments::PaymentProvider,
    store::{Stores, market::EntitlementQuery},
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

    /// One page of listings for ListListings and SearchListings; `scope` binds the token to the request.
    async fn page(
        &self,
        principal: &Principal,
        mut query: ListingQuery,
        scope: &str,
        token: &str,
    ) -> Result<(Vec<pb::Listing>, String), Error> {
        if !token.is_empty() {
            let cursor: ListingCursor = self
                .page_tokens
                .decode(scope, token)
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
        let request = request.into_inner();
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
            return Err(Error::Invalid(violations).into());
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
        let (listings, next_page_token) = self.page(&principal, query, &scope, &request.page_token).await?;
        Ok(Response::new(pb::ListListingsResponse { listings, next_page_token }))
    }

    async fn search_listings(
        &self,
        request: Request<pb::SearchListingsRequest>,
    ) -> Result<Response<pb::SearchListingsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
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
            return Err(Error::Invalid(violations).into());
        }
        let mut terms = words(&request.query);
        terms.sort();
        terms.dedup();
        let scope = format!("search|{principal}|{filter:?}|{terms:?}");
        let query = ListingQuery { words: terms, filter, withdrawn_visible_to: None, order, after: None, limit };
        let (listings, next_page_token) = self.page(&principal, query, &scope, &request.page_token).await?;
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
        let name = &request.get_ref().name;
        let id = names::parse_entitlement_name(name).map_err(|e| Error::Invalid(Violations::one("name", e)))?;
        let entitlement = self
            .stores
            .market
            .get_entitlement(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound(name.clone()))?;
        let allowed = entitlement.buyer == principal.as_str()
            || self.stores.use_cases.role_of(entitlement.use_case_id, principal.as_str()).await.map_err(Error::from)?
                == Some(Role::Owner);
        if !allowed {
            return Err(Error::NotFound(name.clone()).into());
        }
        Ok(Response::new(entitlement_to_proto(&entitlement)))
    }

    async fn list_entitlements(
        &self,
        request: Request<pb::ListEntitlementsRequest>,
    ) -> Result<Response<pb::ListEntitlementsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let mut violations = Violations::new();
        let limit = page_limit(request.page_size, &mut violations);
        let descending = match request.order_by.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] | ["create_time", "desc"] => true,
            ["create_time"] | ["create_time", "asc"] => false,
            _ => {
                violations.add("order_by", "use create_time desc (the default) or create_time");
                true
            }
        };
        let mut query = EntitlementQuery {
            buyer: None,
            listing: None,
            use_case: None,
            release: None,
            descending,
            after: None,
            limit,
        };
        match highwind_common::filter::terms(&request.filter) {
            Err(e) => violations.add("filter", e),
            Ok(terms) => {
                for (field, value) in terms {
                    let parsed = match field.as_str() {
                        "listing" => names::parse_listing_name(&value).map(|id| query.listing = Some(id)),
                        "use_case" => names::parse_use_case_name(&value).map(|id| query.use_case = Some(id)),
                        "release" => names::parse_release_name(&value).map(|(u, n)| {
                            query.use_case = Some(u);
                            query.release = Some(n);
                        }),
                        _ => Err(format!(
                            "cannot filter entitlements on {}: use listing, use_case or release",
                            highwind_common::status_bounds::echo(&field)
                        )),
                    };
                    if let Err(e) = parsed {
                        violations.add("filter", format!("{field}: {e}"));
                    }
                }
            }
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        // Sellers see every buyer of their own listing; everyone else sees only what they bought.
        let seller_view = match query.listing {
            Some(listing) => match self.stores.market.get_listing(listing).await.map_err(Error::from)? {
                Some(l) => {
                    self.stores.use_cases.role_of(l.use_case_id, principal.as_str()).await.map_err(Error::from)?
                        == Some(Role::Owner)
                }
                None => false,
            },
            None => false,
        };
        if !seller_view {
            query.buyer = Some(principal.as_str().to_owned());
        }
        let scope = format!("entitlements|{principal}|{:?}|{descending}", request.filter.trim());
        if !request.page_token.is_empty() {
            let cursor: TimeCursor = self.page_tokens.decode(&scope, &request.page_token).map_err(|_| {
                Error::Invalid(Violations::one("page_token", "not a token from a previous page of this list"))
            })?;
            query.after = Some(cursor.after());
        }
        let mut rows = self.stores.market.list_entitlements(&query).await.map_err(Error::from)?;
        let next_page_token = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|e| self.page_tokens.encode(&scope, &TimeCursor::new(e.create_time.timestamp_micros(), e.id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
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
