//! The one error type of the use-case service; `api::error` maps it to `tonic::Status`.

use highwind_common::{status::Precondition, validation::Violations};

use crate::{payments::PaymentError, store::StoreError};

/// Why a use-case operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request; every violation listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No such use case, or the caller is not a member.
    #[error("{0} not found")]
    NotFound(String),
    /// The asset a link names does not exist for the caller (missing, or not theirs to read).
    #[error("{0} not found")]
    AssetNotFound(String),
    /// A member whose role does not allow the operation.
    #[error("{0}")]
    PermissionDenied(String),
    /// The client's etag is stale.
    #[error("etag of {0} is stale")]
    StaleEtag(String),
    /// A concurrent write won.
    #[error("{0} changed concurrently")]
    Concurrent(String),
    /// The use case is archived.
    #[error("{0} is archived")]
    Archived(String),
    /// Undelete of a live use case.
    #[error("{0} is not archived")]
    NotArchived(String),
    /// The principal is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(String),
    /// The change would leave the use case without an owner.
    #[error("{0}: a use case keeps at least one owner")]
    LastOwner(String),
    /// The use case already links that asset in that role.
    #[error("{0} is already linked")]
    AlreadyLinked(String),
    /// The use case already has as many links as it may.
    #[error("{0} has the most links a use case may have")]
    TooManyLinks(String),
    /// A link does not resolve to a version the caller may read.
    #[error("{0}")]
    Unresolvable(String),
    /// Publishing, acquiring or forking needs something that is not so; every unmet condition listed.
    #[error("{0}")]
    Unmet(String, &'static str, Vec<Precondition>),
    /// The payment did not go through.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// Another service could not be asked.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
