//! The one error type of the asset service. `api::error` maps it to `tonic::Status`, once.

use highwind_common::validation::Violations;

use crate::store::StoreError;

/// Why an asset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No such resource, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(String),
    /// The client's etag no longer matches.
    #[error("etag {sent} of {name} is stale")]
    StaleEtag {
        /// The resource.
        name: String,
        /// What the client sent.
        sent: String,
    },
    /// Another write won a race the client did not guard with an etag.
    #[error("{0} was changed concurrently")]
    Concurrent(String),
    /// The operation needs a live resource, but it is archived.
    #[error("{0} is archived")]
    Archived(String),
    /// Undelete of a resource that is not archived.
    #[error("{0} is not archived")]
    NotArchived(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Violations> for Error {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}
