//! `highwind.usecase.v1.MarketplaceService`: listings, acquiring them, entitlements and forks.

use std::sync::Arc;

use chrono::Utc;
use highwind_common::{page_token::PageTokens, principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1::{self as pb, marketplace_service_server::MarketplaceService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    convert::{entitlement_to_proto, listing_to_proto, money_from_proto, use_case_to_proto},
    paging::{TimeCursor, check_request_id, idempotency_key, page_limit},
    publishing::foreign_assets,
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        link::{AssetLink, LinkRole, Selector},
        market::{
            Charge, Entitlement, Listing, ListingCursor, ListingFilter, ListingOrder, ListingQuery, MAX_QUERY, words,
        },
        names,
        role::Role,
        use_case::{UseCase, UseCaseDraft},
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

    /// Whether `principal` is a member of the listed use case or holds an entitlement from the listing: who may
    /// see a withdrawn listing.
    async fn insider(&self, listing: &Listing, principal: &Principal) -> Result<bool, Error> {
        Ok(self.stores.use_cases.role_of(listing.use_case_id, principal.as_str()).await?.is_some()
            || self.stores.market.is_buyer(listing.id, principal.as_str()).await?)
    }

    /// Listing `name` as `principal` may see it: withdrawn ones only for insiders, NOT_FOUND otherwise.
    async fn visible_listing(&self, principal: &Principal, name: &str) -> Result<Listing, Error> {
        let id = names::parse_listing_name(name).map_err(|e| Error::Invalid(Violations::one("name", e)))?;
        let listing = self.stores.market.get_listing(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
        if !listing.active && !self.insider(&listing, principal).await? {
            return Err(Error::NotFound(name.to_owned()));
        }
        Ok(listing)
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

    /// The caller's right to release `number` of `use_case`: a member role, or an entitlement. NOT_FOUND without.
    async fn may_fork(&self, principal: &Principal, name: &str, use_case: Uuid, number: i64) -> Result<(), Error> {
        if self.stores.use_cases.role_of(use_case, principal.as_str()).await?.is_some()
            || self.stores.market.entitlement_to(principal.as_str(), use_case, number).await?.is_some()
        {
            Ok(())
        } else {
            Err(Error::NotFound(name.to_owned()))
        }
    }
}

#[tonic::async_trait]
impl MarketplaceService for MarketplaceApi {
    async fn get_listing(&self, request: Request<pb::GetListingRequest>) -> Result<Response<pb::Listing>, Status> {
        let principal = Principal::of(&request)?;
        let listing = self.visible_listing(principal, &request.get_ref().name).await?;
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
        let request = request.into_inner();
        let mut violations = Violations::new();
        check_request_id(&request.request_id, &mut violations);
        if !request.expected_release.is_empty()
            && let Err(e) = names::parse_release_name(&request.expected_release)
        {
            violations.add("expected_release", e);
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let request_id = idempotency_key(&request.request_id);
        if let Some(id) = request_id
            && let Some(first) =
                self.stores.market.entitlement_by_request(buyer.as_str(), id).await.map_err(Error::from)?
        {
            return Ok(Response::new(entitlement_to_proto(&first)));
        }
        let listing = self.visible_listing(&buyer, &request.name).await?;
        let store = &self.stores.market;
        // Acquiring what one already holds returns it, even after the listing was withdrawn.
        let held = store
            .entitlement_to(buyer.as_str(), listing.use_case_id, listing.release_number)
            .await
            .map_err(Error::from)?;
        if let Some(held) =
            held.filter(|_| request.expected_release.is_empty() || request.expected_release == listing.release_name())
        {
            return Ok(Response::new(entitlement_to_proto(&held)));
        }
        let mut unmet = Vec::new();
        if !listing.active {
            unmet.push(Precondition {
                kind: "LISTING_STATE",
                subject: request.name.clone(),
                description: "the listing is withdrawn and can no longer be acquired".into(),
            });
        }
        if self.stores.use_cases.role_of(listing.use_case_id, buyer.as_str()).await.map_err(Error::from)?.is_some() {
            unmet.push(Precondition {
                kind: "OWN_LISTING",
                subject: request.name.clone(),
                description: "you are a member of the listed use case: it is already yours".into(),
            });
        }
        if !request.expected_release.is_empty() && request.expected_release != listing.release_name() {
            unmet.push(Precondition {
                kind: "EXPECTED_RELEASE",
                subject: "expected_release".into(),
                description: format!("the listing now offers {}", listing.release_name()),
            });
        }
        if let Some(expected) = request.expected_price.map(money_from_proto)
            && !expected.same_amount(&listing.price)
        {
            unmet.push(Precondition {
                kind: "EXPECTED_PRICE",
                subject: "expected_price".into(),
                description: format!("the listing now costs {}", listing.price),
            });
        }
        if unmet.is_empty() {
            // Owners may have left since publishing: what they no longer share cannot be sold.
            let release = self
                .stores
                .use_cases
                .get_release(listing.use_case_id, listing.release_number)
                .await
                .map_err(Error::from)?
                .ok_or_else(|| Error::NotFound(listing.release_name()))?;
            unmet.extend(foreign_assets(&self.stores, &release).await?);
        }
        if !unmet.is_empty() {
            return Err(Error::Unmet(format!("{} cannot be acquired", request.name), "NOT_ACQUIRABLE", unmet).into());
        }
        let now = Utc::now();
        let reference = if listing.is_free() {
            String::new()
        } else {
            let charge = Charge {
                // One charge per buyer, release and amount, however often the call is retried.
                idempotency_key: format!(
                    "{buyer}|{}|{}|{}|{}",
                    listing.release_name(),
                    listing.price.currency_code,
                    listing.price.units,
                    listing.price.nanos
                ),
                payer: buyer.as_str().to_owned(),
                payee: listing.seller.clone(),
                amount: listing.price.clone(),
                time: now,
            };
            self.payments.charge(&charge).await.map_err(Error::from)?
        };
        let entitlement = Entitlement::of(&listing, buyer.as_str(), reference, now);
        let stored = store.add_entitlement(&entitlement, request_id).await.map_err(Error::from)?;
        tracing::info!(listing = %listing.id, entitlement = %stored.id, buyer = %buyer, "listing acquired");
        Ok(Response::new(entitlement_to_proto(&stored)))
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
        let request = request.into_inner();
        let mut violations = Violations::new();
        check_request_id(&request.request_id, &mut violations);
        let parsed = names::parse_release_name(&request.release).map_err(|e| violations.add("release", e)).ok();
        let Some((source, number)) = parsed.filter(|_| violations.is_empty()) else {
            return Err(Error::Invalid(violations).into());
        };
        let request_id = idempotency_key(&request.request_id);
        self.may_fork(&principal, &request.release, source, number).await?;
        let release = self
            .stores
            .use_cases
            .get_release(source, number)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound(request.release.clone()))?;
        let snapshot = &release.snapshot;
        let draft = UseCaseDraft {
            display_name: if request.display_name.is_empty() {
                snapshot.display_name.clone()
            } else {
                request.display_name.clone()
            },
            description: snapshot.description.clone(),
            cover_image_uri: snapshot.cover_image_uri.clone(),
            model_card: snapshot.model_card.clone(),
            inference_schema: snapshot.inference_schema.clone(),
            version_label: snapshot.version_label.clone(),
            price: Default::default(),
            labels: snapshot.labels.clone(),
        };
        let now = Utc::now();
        let mut fork = UseCase::create(draft, principal.as_str(), now).map_err(|v| {
            // Only the display name comes from the request; anything else was valid when released.
            let mut renamed = Violations::new();
            for violation in v.iter() {
                renamed.add(violation.field.replace("use_case.", ""), violation.description.clone());
            }
            Error::Invalid(renamed)
        })?;
        fork.forked_from = Some(request.release.clone());
        let mut unmet = Vec::new();
        let mut links = Vec::with_capacity(release.links.len());
        for frozen in &release.links {
            let version = format!("{}/versions/{}", frozen.asset, frozen.version_number);
            let resolved =
                self.assets.resolve(&principal, &version).await.map_err(|e| Error::Unavailable(e.to_string()))?;
            if resolved.as_ref().is_none_or(|v| !v.usable || v.manifest_digest != frozen.manifest_digest) {
                unmet.push(Precondition {
                    kind: "ASSET_VERSION",
                    subject: version.clone(),
                    description: "the pinned version has been archived or purged since the release".into(),
                });
                continue;
            }
            let role = LinkRole::parse(&frozen.role).ok_or_else(|| Error::Unresolvable(frozen.link.clone()))?;
            links.push(AssetLink {
                asset_owner: frozen.owner.clone(),
                ..AssetLink::new(
                    fork.id,
                    &frozen.asset,
                    role,
                    Selector::Pinned(frozen.version_number),
                    principal.as_str(),
                    now,
                )
            });
        }
        if !unmet.is_empty() {
            return Err(Error::Unmet(format!("{} cannot be forked", request.release), "NOT_FORKABLE", unmet).into());
        }
        let stored = self.stores.use_cases.create(&fork, &links, request_id).await.map_err(Error::from)?;
        tracing::info!(use_case = %stored.id, from = %request.release, owner = %principal, "release forked");
        Ok(Response::new(use_case_to_proto(&stored, Role::Owner)))
    }
}
