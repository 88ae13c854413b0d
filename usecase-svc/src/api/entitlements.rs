//! Entitlements through `MarketplaceService`: one by name, and lists of what a buyer holds or a seller sold.

use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::usecase::v1 as pb;

use super::paging::{TimeCursor, page_limit};
use crate::{
    domain::{market::Entitlement, names, role::Role},
    error::Error,
    store::{Stores, market::EntitlementQuery},
};

/// A ListEntitlements request, decoded: the query (its buyer still open) and what its page token binds to.
#[derive(Debug)]
pub struct EntitlementList {
    query: EntitlementQuery,
    /// The filter as sent (trimmed), part of the page token's scope.
    filter: String,
    page_token: String,
}

impl TryFrom<pb::ListEntitlementsRequest> for EntitlementList {
    type Error = Error;

    fn try_from(request: pb::ListEntitlementsRequest) -> Result<Self, Error> {
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
            return Err(Error::Invalid(violations));
        }
        Ok(Self { query, filter: request.filter.trim().to_owned(), page_token: request.page_token })
    }
}

/// GetEntitlement: its buyer and the owners of its use case see it; to everyone else it does not exist.
pub async fn get(stores: &Stores, principal: &Principal, name: &str) -> Result<Entitlement, Error> {
    let id = names::parse_entitlement_name(name).map_err(|e| Error::Invalid(Violations::one("name", e)))?;
    let entitlement = stores.market.get_entitlement(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    let allowed = entitlement.buyer == principal.as_str()
        || stores.use_cases.role_of(entitlement.use_case_id, principal.as_str()).await? == Some(Role::Owner);
    if !allowed {
        return Err(Error::NotFound(name.to_owned()));
    }
    Ok(entitlement)
}

/// ListEntitlements: one page, and the token of the next. Sellers see every buyer of their own listing; everyone
/// else sees only what they bought.
pub async fn list(
    stores: &Stores,
    page_tokens: &PageTokens,
    principal: &Principal,
    list: EntitlementList,
) -> Result<(Vec<Entitlement>, String), Error> {
    let EntitlementList { mut query, filter, page_token } = list;
    let seller_view = match query.listing {
        Some(listing) => match stores.market.get_listing(listing).await? {
            Some(l) => stores.use_cases.role_of(l.use_case_id, principal.as_str()).await? == Some(Role::Owner),
            None => false,
        },
        None => false,
    };
    if !seller_view {
        query.buyer = Some(principal.as_str().to_owned());
    }
    let scope = format!("entitlements|{principal}|{filter:?}|{}", query.descending);
    if !page_token.is_empty() {
        let cursor: TimeCursor = page_tokens.decode(&scope, &page_token).map_err(|_| {
            Error::Invalid(Violations::one("page_token", "not a token from a previous page of this list"))
        })?;
        query.after = Some(cursor.after());
    }
    let limit = query.limit;
    let mut rows = stores.market.list_entitlements(&query).await?;
    let next_page_token = if rows.len() > limit {
        rows.truncate(limit);
        rows.last()
            .map(|e| page_tokens.encode(&scope, &TimeCursor::new(e.create_time.timestamp_micros(), e.id)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((rows, next_page_token))
}
