//! AcquireListing's rule: what a buyer must meet to acquire a listing, the charge, and the entitlement it makes.

use chrono::Utc;
use highwind_common::{principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1 as pb;

use super::{
    convert::money_from_proto,
    paging::{check_request_id, idempotency_key},
    publishing::foreign_assets,
};
use crate::{
    domain::{
        market::{Charge, Entitlement, Listing},
        names,
        use_case::Money,
    },
    error::Error,
    payments::PaymentProvider,
    store::Stores,
};

/// An AcquireListing request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquisition {
    /// `listings/{l}`, as the caller named it.
    pub listing: String,
    /// The caller's idempotency key, if any.
    pub request_id: Option<String>,
    /// The release the caller expects the listing to offer, if they said.
    pub expected_release: Option<String>,
    /// The price the caller expects to pay, if they said.
    pub expected_price: Option<Money>,
}

impl TryFrom<pb::AcquireListingRequest> for Acquisition {
    type Error = Error;

    fn try_from(request: pb::AcquireListingRequest) -> Result<Self, Error> {
        let mut violations = Violations::new();
        check_request_id(&request.request_id, &mut violations);
        if !request.expected_release.is_empty()
            && let Err(e) = names::parse_release_name(&request.expected_release)
        {
            violations.add("expected_release", e);
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self {
            request_id: idempotency_key(&request.request_id).map(str::to_owned),
            listing: request.name,
            expected_release: Some(request.expected_release).filter(|r| !r.is_empty()),
            expected_price: request.expected_price.map(money_from_proto),
        })
    }
}

/// Whether `principal` is a member of the listed use case or holds an entitlement from the listing: who may see a
/// withdrawn listing.
async fn insider(stores: &Stores, listing: &Listing, principal: &Principal) -> Result<bool, Error> {
    Ok(stores.use_cases.role_of(listing.use_case_id, principal.as_str()).await?.is_some()
        || stores.market.is_buyer(listing.id, principal.as_str()).await?)
}

/// Listing `name` as `principal` may see it: withdrawn ones only for insiders, NOT_FOUND otherwise.
pub async fn visible_listing(stores: &Stores, principal: &Principal, name: &str) -> Result<Listing, Error> {
    let id = names::parse_listing_name(name).map_err(|e| Error::Invalid(Violations::one("name", e)))?;
    let listing = stores.market.get_listing(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    if !listing.active && !insider(stores, &listing, principal).await? {
        return Err(Error::NotFound(name.to_owned()));
    }
    Ok(listing)
}

/// Acquires what `acquisition` names for `buyer`: the entitlement a retry or an earlier acquisition already made,
/// or a new one once every precondition holds and the price is charged (once per buyer, release and amount).
pub async fn acquire(
    stores: &Stores,
    payments: &dyn PaymentProvider,
    buyer: &Principal,
    acquisition: &Acquisition,
) -> Result<Entitlement, Error> {
    let request_id = acquisition.request_id.as_deref();
    if let Some(id) = request_id
        && let Some(first) = stores.market.entitlement_by_request(buyer.as_str(), id).await?
    {
        return Ok(first);
    }
    let listing = visible_listing(stores, buyer, &acquisition.listing).await?;
    let offers_expected = acquisition.expected_release.as_ref().is_none_or(|r| *r == listing.release_name());
    // Acquiring what one already holds returns it, even after the listing was withdrawn.
    let held = stores.market.entitlement_to(buyer.as_str(), listing.use_case_id, listing.release_number).await?;
    if let Some(held) = held.filter(|_| offers_expected) {
        return Ok(held);
    }
    let unmet = unmet_preconditions(stores, buyer, acquisition, &listing).await?;
    if !unmet.is_empty() {
        return Err(Error::Unmet(format!("{} cannot be acquired", acquisition.listing), "NOT_ACQUIRABLE", unmet));
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
        payments.charge(&charge).await?
    };
    let entitlement = Entitlement::of(&listing, buyer.as_str(), reference, now);
    let stored = stores.market.add_entitlement(&entitlement, request_id).await?;
    tracing::info!(listing = %listing.id, entitlement = %stored.id, buyer = %buyer, "listing acquired");
    Ok(stored)
}

/// Every reason `buyer` may not acquire `listing` now: withdrawn, their own, not the release or price they
/// expect, or holding assets its owners no longer share.
async fn unmet_preconditions(
    stores: &Stores,
    buyer: &Principal,
    acquisition: &Acquisition,
    listing: &Listing,
) -> Result<Vec<Precondition>, Error> {
    let mut unmet = Vec::new();
    if !listing.active {
        unmet.push(Precondition {
            kind: "LISTING_STATE",
            subject: acquisition.listing.clone(),
            description: "the listing is withdrawn and can no longer be acquired".into(),
        });
    }
    if stores.use_cases.role_of(listing.use_case_id, buyer.as_str()).await?.is_some() {
        unmet.push(Precondition {
            kind: "OWN_LISTING",
            subject: acquisition.listing.clone(),
            description: "you are a member of the listed use case: it is already yours".into(),
        });
    }
    if acquisition.expected_release.as_ref().is_some_and(|r| *r != listing.release_name()) {
        unmet.push(Precondition {
            kind: "EXPECTED_RELEASE",
            subject: "expected_release".into(),
            description: format!("the listing now offers {}", listing.release_name()),
        });
    }
    if acquisition.expected_price.as_ref().is_some_and(|expected| !expected.same_amount(&listing.price)) {
        unmet.push(Precondition {
            kind: "EXPECTED_PRICE",
            subject: "expected_price".into(),
            description: format!("the listing now costs {}", listing.price),
        });
    }
    if unmet.is_empty() {
        // Owners may have left since publishing: what they no longer share cannot be sold.
        let release = stores
            .use_cases
            .get_release(listing.use_case_id, listing.release_number)
            .await?
            .ok_or_else(|| Error::NotFound(listing.release_name()))?;
        unmet.extend(foreign_assets(stores, &release).await?);
    }
    Ok(unmet)
}
