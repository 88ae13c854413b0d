//! Where the marketplace is kept: listings, entitlements and the built-in payment ledger.

use async_trait::async_trait;
use uuid::Uuid;

use super::{After, StoreError};
use crate::domain::market::{Charge, Entitlement, Listing, ListingQuery};

/// Which entitlements a list returns, all conditions holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementQuery {
    /// Only this buyer's.
    pub buyer: Option<String>,
    /// Only those acquired from this listing.
    pub listing: Option<Uuid>,
    /// Only those to releases of this use case.
    pub use_case: Option<Uuid>,
    /// Only those to this release number.
    pub release: Option<i64>,
    /// Newest first.
    pub descending: bool,
    /// Resume after.
    pub after: Option<After>,
    /// Page size; up to `limit + 1` are returned.
    pub limit: usize,
}

/// Persistence of the marketplace.
#[async_trait]
pub trait MarketRepository: Send + Sync + std::fmt::Debug {
    /// The listing of use case `use_case_id`, if it was ever published.
    async fn listing_of(&self, use_case_id: Uuid) -> Result<Option<Listing>, StoreError>;

    /// Listing `id`.
    async fn get_listing(&self, id: Uuid) -> Result<Option<Listing>, StoreError>;

    /// Stores `listing` as its use case's one listing (inserted on first publish, replaced after) and returns
    /// what is stored.
    async fn save_listing(&self, listing: &Listing) -> Result<Listing, StoreError>;

    /// At most `query.limit + 1` listings matching `query`, in its order, after its cursor.
    async fn query_listings(&self, query: &ListingQuery) -> Result<Vec<Listing>, StoreError>;

    /// Whether `principal` holds an entitlement acquired from listing `listing_id`.
    async fn is_buyer(&self, listing_id: Uuid, principal: &str) -> Result<bool, StoreError>;

    /// `buyer`'s entitlement to release `release` of `use_case_id`.
    async fn entitlement_to(
        &self,
        buyer: &str,
        use_case_id: Uuid,
        release: i64,
    ) -> Result<Option<Entitlement>, StoreError>;

    /// The entitlement `buyer` acquired with `request_id`.
    async fn entitlement_by_request(&self, buyer: &str, request_id: &str) -> Result<Option<Entitlement>, StoreError>;

    /// Entitlement `id`.
    async fn get_entitlement(&self, id: Uuid) -> Result<Option<Entitlement>, StoreError>;

    /// Records `entitlement`; when its buyer already holds that release, or already used `request_id`, nothing is
    /// recorded and that entitlement is returned.
    async fn add_entitlement(
        &self,
        entitlement: &Entitlement,
        request_id: Option<&str>,
    ) -> Result<Entitlement, StoreError>;

    /// At most `query.limit + 1` entitlements matching `query`, by create time.
    async fn list_entitlements(&self, query: &EntitlementQuery) -> Result<Vec<Entitlement>, StoreError>;

    /// Records `charge` in the payment ledger unless its key was recorded before; the ledger entry's id either way.
    async fn record_charge(&self, charge: &Charge) -> Result<Uuid, StoreError>;
}
